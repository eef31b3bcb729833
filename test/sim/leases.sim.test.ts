import { afterEach, describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { leaseBucket } from '../../src/core/leases/lease-record.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import type { ConsistentOutcome } from '../../src/engine/kv-service.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * Goals of leases (README, "Leases and ephemeral keys"; docs/CONSENSUS.md, "Leases") on real
 * RingNode engines in the simulated cluster, with node clocks up to a minute apart (far more than
 * the ttl) and drifting by up to 1e-3:
 * - a lease kept alive at ttl/3 through any node keeps its key, however far the sweeping node's
 *   clock is ahead; once its holder pauses, the key vanishes (a consistent delete: the version
 *   grows), and never before ttl after the last keep-alive was sent, even when the node sweeping
 *   the lease crashed after the pause (the next primary takes over);
 * - a lock built on a lease (If-None-Match: * with ?lease, kept alive at ttl/3, released by
 *   revoking) is held by one client at a time, with paused holders among them: the next holder
 *   acquires only after the previous one's lease ran out as the holder itself counts it (its last
 *   keep-alive sent plus the ttl), and the fencing tokens grow with every acquisition.
 * The seed is printed by SimCluster on failure; SIM_SEED=<n> replays one.
 */

const bucket = 'locks';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2231, 2232];
const skew = { clockSkewMs: 60_000, clockDrift: 1e-3 };
const ttlSeconds = 3;
/** The ttl as the scheduler measures it when the sweeper's clock runs fast by the most drift allowed. */
const ttlFloorMs = (ttlSeconds * 1000) / (1 + 2 * skew.clockDrift);

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** An operation through a node, bounded on the client side (a node that crashed under it never answers): its value, or the error code. */
async function attempt<T>(sim: SimCluster, operation: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; code: string }> {
  const answered = operation.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => {
      if (!isKvError(error)) throw error;
      return { ok: false as const, code: error.code };
    },
  );
  const silence = sim.clock.sleep(4000).then(() => ({ ok: false as const, code: 'client-timeout' }));
  return Promise.race([answered, silence]);
}

const running = (sim: SimCluster): SimMember[] => sim.members.filter((member) => member.running);
const valueOf = (name: string) => ({ contentType: 'text/plain', value: Buffer.from(name) });

describe('simulation: leases', () => {
  it.each(seeds)(
    'seed %i: a kept-alive key stays under a minute of clock skew; after its holder pauses it vanishes, never within ttl of the last keep-alive, though its sweeper crashed',
    async (seed) => {
      const sim = (cluster = await SimCluster.start(seed, 4, config, skew));
      const offsets = sim.members.map((member) => member.clockError.offsetMs);
      expect(Math.max(...offsets) - Math.min(...offsets), `seed ${seed}: the clocks are further apart than the ttl`).toBeGreaterThan(ttlSeconds * 1000);
      const [first] = sim.members as [SimMember];
      const { id } = await sim.drive(first.node.leases.grant(ttlSeconds));
      const written = await sim.drive(first.node.leases.put(bucket, 'ephemeral', valueOf('holder'), { kind: 'absent' }, id));

      let holderPaused = false;
      let lastKeepAliveSentAtMs = sim.clock.nowMs();
      const holderProblems: string[] = [];
      const holder = (async () => {
        for (let round = 0; !holderPaused; round++) {
          await sim.clock.sleep((ttlSeconds * 1000) / 3);
          if (holderPaused) return;
          const members = running(sim);
          const sentAtMs = sim.clock.nowMs();
          const kept = await attempt(sim, members[round % members.length]!.node.leases.keepAlive(id));
          if (kept.ok) lastKeepAliveSentAtMs = Math.max(lastKeepAliveSentAtMs, sentAtMs);
          else if (kept.code === 'KV_LEASE_NOT_FOUND') holderProblems.push(`the lease ended while kept alive (keep-alive sent at ${sentAtMs})`);
        }
      })();
      /** Reads of the key: when each answered, and whether it was there. */
      const reads: { answeredAtMs: number; present: boolean; version: number }[] = [];
      let gone = false;
      const reader = (async () => {
        for (let round = 0; !gone; round++) {
          await sim.clock.sleep(250);
          const members = running(sim);
          const read = await attempt<ConsistentOutcome>(sim, members[round % members.length]!.node.consistent(bucket, 'ephemeral', { kind: 'read' }));
          if (!read.ok) continue;
          reads.push({ answeredAtMs: sim.clock.nowMs(), present: read.value.value !== null, version: read.value.version });
          gone = read.value.value === null;
        }
      })();
      // Kept alive for ten ttls, through every node in turn.
      await sim.drive(sim.clock.sleep(ttlSeconds * 10_000), 120_000);
      expect(gone, `seed ${seed}: the key vanished while its lease was kept alive`).toBe(false);
      holderPaused = true;
      await sim.drive(holder);
      // The node sweeping the lease (its key's first up primary) crashes: another must take over.
      const ring = first.node.gossiper.ring!;
      const sweeperId = preferenceList(ring, partitionOf(leaseBucket, id, ring.partitionCount), first.node.bucketProperties(leaseBucket).nVal)[0];
      const sweeper = sim.members.find((member) => member.nodeId === sweeperId)!;
      await sim.crash(sweeper);
      await sim.drive(reader, 120_000);

      expect(holderProblems, `seed ${seed}`).toEqual([]);
      const vanished = reads.find((read) => !read.present)!;
      const early = reads.filter((read) => !read.present && read.answeredAtMs < lastKeepAliveSentAtMs + ttlFloorMs);
      expect(early, `seed ${seed}: the key was gone within ttl of the last keep-alive (sent at ${lastKeepAliveSentAtMs})`).toEqual([]);
      expect(vanished.version, `seed ${seed}: deleted by a consistent delete (the version grew)`).toBe(written.version + 1);
      const lease = await sim.drive(attempt(sim, running(sim)[0]!.node.leases.describe(id)));
      expect(lease, `seed ${seed}: the lease is gone with its key`).toEqual({ ok: false, code: 'KV_LEASE_NOT_FOUND' });
    },
  );

  it.each(seeds)('seed %i: a lease lock with paused holders under a minute of clock skew: holders never overlap and fencing tokens grow', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 4, config, skew));
    /** One holding: its token, when its acquire answered, and until when its holder believed it held the lock. */
    const holdings: { client: number; token: number; acquiredAtMs: number; heldUntilMs: number; paused: boolean }[] = [];
    const endAtMs = sim.clock.nowMs() + 40_000;
    const client = async (index: number): Promise<void> => {
      const member = sim.members[index % sim.members.length]!;
      while (sim.clock.nowMs() < endAtMs) {
        const granted = await attempt(sim, member.node.leases.grant(ttlSeconds));
        if (!granted.ok) continue;
        const { id } = granted.value;
        let acquired: { token: number; atMs: number } | undefined;
        let lastSentAtMs = 0;
        while (acquired === undefined && sim.clock.nowMs() < endAtMs) {
          // Acquiring keeps the lease alive too, so a long wait never loses it.
          const sentAtMs = sim.clock.nowMs();
          const kept = await attempt(sim, member.node.leases.keepAlive(id));
          if (!kept.ok) break;
          lastSentAtMs = sentAtMs;
          const put = await attempt(sim, member.node.leases.put(bucket, 'lock', valueOf(`client-${index}`), { kind: 'absent' }, id));
          if (put.ok) acquired = { token: put.value.version, atMs: sim.clock.nowMs() };
          else await sim.clock.sleep(200 + sim.random.int(300));
        }
        if (acquired === undefined) continue;
        const pauses = sim.random.next() < 0.4;
        const holdUntilMs = sim.clock.nowMs() + 1000 + sim.random.int(4000);
        let lost = false;
        while (!pauses && !lost && sim.clock.nowMs() < holdUntilMs) {
          await sim.clock.sleep((ttlSeconds * 1000) / 3);
          const sentAtMs = sim.clock.nowMs();
          const kept = await attempt(sim, member.node.leases.keepAlive(id));
          if (kept.ok) lastSentAtMs = sentAtMs;
          else lost = kept.code === 'KV_LEASE_NOT_FOUND';
        }
        // A paused (or lost) holder believes in the lock until its last keep-alive sent plus the ttl; one that releases, until it revokes.
        const heldUntilMs = pauses || lost ? lastSentAtMs + ttlFloorMs : sim.clock.nowMs();
        holdings.push({ client: index, token: acquired.token, acquiredAtMs: acquired.atMs, heldUntilMs, paused: pauses || lost });
        if (pauses) await sim.clock.sleep(2 * ttlSeconds * 1000);
        else await attempt(sim, member.node.leases.revoke(id));
      }
    };
    await sim.drive(Promise.all([0, 1, 2].map(client)), 200_000);

    holdings.sort((left, right) => left.acquiredAtMs - right.acquiredAtMs);
    expect(holdings.length, `seed ${seed}: the lock changed hands (the run did something)`).toBeGreaterThan(4);
    expect(
      holdings.some((holding) => holding.paused),
      `seed ${seed}: some holder paused`,
    ).toBe(true);
    const problems: string[] = [];
    for (let index = 1; index < holdings.length; index++) {
      const [previous, next] = [holdings[index - 1]!, holdings[index]!];
      if (next.token <= previous.token) problems.push(`token ${next.token} of client ${next.client} after ${previous.token}`);
      if (next.acquiredAtMs < previous.heldUntilMs)
        problems.push(`client ${next.client} acquired at ${next.acquiredAtMs} while client ${previous.client} held it until ${previous.heldUntilMs}`);
    }
    expect(problems, `seed ${seed}: ${JSON.stringify(holdings)}`).toEqual([]);
  });
});
