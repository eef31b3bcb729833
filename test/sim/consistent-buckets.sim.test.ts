import { afterEach, describe, expect, it } from 'vitest';
import { preferenceList } from '../../src/core/ring/ring.js';
import { partitionOf } from '../../src/core/keys.js';
import type { ConsistentCommand, ConsistentOutcome } from '../../src/engine/kv-service.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * Goals of consistent buckets on real RingNode engines in the simulated cluster (README,
 * "Consistent buckets"; docs/CONSENSUS.md), with partitions and crashes from the seed:
 * - a counter incremented by read-then-If-Match from several coordinators never loses an
 *   acknowledged increment and never counts one twice (the final value lies between the
 *   acknowledged increments and those plus the unknown ones), and no read returns a version
 *   older than one acknowledged before the read began;
 * - two If-None-Match: * writes on the two sides of a partition: at most one succeeds, and the
 *   loser's answer says it did not happen (never a fallback, never a hint);
 * - a power loss of the key's primaries keeps what their acceptors synced: an acknowledged write
 *   is still read after two of the three lose power and come back.
 * The seed is printed by SimCluster on failure; SIM_SEED=<n> replays one.
 */

const bucket = 'locks';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2201, 2202, 2203];

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

type Outcome = { ok: true; result: ConsistentOutcome } | { ok: false; code: string; applied: 'no' | 'unknown' };

/**
 * One operation through `member`, bounded on the client side too: an operation on a node that
 * crashes under it never answers (as a client of a dead server hears nothing), which counts as
 * unknown.
 */
async function attempt(sim: SimCluster, member: SimMember, key: string, command: ConsistentCommand): Promise<Outcome> {
  const node = member.node;
  const operation = node.consistent(bucket, key, command, 1000).then(
    (result): Outcome => ({ ok: true, result }),
    (error: unknown): Outcome => {
      if (!isKvError(error)) throw error;
      const applied = error.code === 'KV_PRECONDITION_FAILED' || error.details?.applied === 'no' ? 'no' : 'unknown';
      return { ok: false, code: error.code, applied };
    },
  );
  const silence = sim.clock.sleep(3000).then((): Outcome => ({ ok: false, code: 'client-timeout', applied: 'unknown' }));
  return Promise.race([operation, silence]);
}

const numberOf = (outcome: ConsistentOutcome): number => (outcome.value === null ? 0 : Number(Buffer.from(outcome.value.value).toString()));

describe('simulation: consistent buckets', () => {
  it.each(seeds)(
    'seed %i: a read-then-If-Match counter from every node, under partitions and a crash, loses no increment and counts none twice',
    async (seed) => {
      const sim = (cluster = await SimCluster.start(seed, 4, config));
      const key = 'counter';
      let acknowledged = 0;
      let unknown = 0;
      /** Versions acknowledged (written or read) and when: no read that began later may return an older one. */
      const acknowledgedAt: { version: number; atMs: number }[] = [];
      const staleReads: string[] = [];
      /** Every running member's client does `operations` read-then-If-Match increments at once. */
      const increments = (operations: number) =>
        sim.members.map(async (member, client) => {
          for (let index = 0; index < operations && member.running; index++) {
            const startedAtMs = sim.clock.nowMs();
            const read = await attempt(sim, member, key, { kind: 'read' });
            if (!read.ok) continue;
            const floor = Math.max(0, ...acknowledgedAt.filter((entry) => entry.atMs < startedAtMs).map((entry) => entry.version));
            if (read.result.version < floor) staleReads.push(`client ${client} read version ${read.result.version} after version ${floor} was acknowledged`);
            acknowledgedAt.push({ version: read.result.version, atMs: sim.clock.nowMs() });
            const next = String(numberOf(read.result) + 1);
            const condition = read.result.value === null ? ({ kind: 'absent' } as const) : ({ kind: 'version', version: read.result.version } as const);
            const write = await attempt(sim, member, key, { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from(next) }, condition });
            if (write.ok) {
              acknowledged += 1;
              acknowledgedAt.push({ version: write.result.version, atMs: sim.clock.nowMs() });
            } else if (write.applied === 'unknown') unknown += 1;
          }
        });
      const [first, second, third, fourth] = sim.members as [SimMember, SimMember, SimMember, SimMember];
      // Contention with every node up, then across a 2 | 2 split, then with a node that lost power
      // mid-run (its in-flight operations never answer), then after it came back with a node cut off.
      await sim.drive(Promise.all(increments(4)));
      sim.network.partition([
        [first.address, second.address],
        [third.address, fourth.address],
      ]);
      await sim.drive(Promise.all(increments(3)));
      sim.network.heal();
      const running = Promise.all(increments(4));
      await sim.drive(sim.clock.sleep(15));
      await sim.crash(third, 'power-loss');
      await sim.drive(running);
      await sim.restart(third);
      sim.network.partition([[fourth.address], [first.address, second.address, third.address]]);
      await sim.drive(Promise.all(increments(4)));
      sim.network.heal();
      const final = await sim.drive(attempt(sim, sim.members[0]!, key, { kind: 'read' }));
      expect(final.ok, `seed ${seed}: the final read answers`).toBe(true);
      const value = final.ok ? numberOf(final.result) : -1;
      expect(acknowledged, `seed ${seed}: some increments were acknowledged (the run did something)`).toBeGreaterThan(3);
      expect(value, `seed ${seed}: no acknowledged increment lost (${acknowledged} acknowledged, ${unknown} unknown)`).toBeGreaterThanOrEqual(acknowledged);
      expect(value, `seed ${seed}: no increment counted twice (${acknowledged} acknowledged, ${unknown} unknown)`).toBeLessThanOrEqual(acknowledged + unknown);
      expect(staleReads, `seed ${seed}: no read older than an acknowledged version`).toEqual([]);
    },
  );

  it.each(seeds)('seed %i: two If-None-Match: * on the two sides of a partition: at most one succeeds, the other did not happen', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 5, config));
    const [a, b, c, d, e] = sim.members as [SimMember, SimMember, SimMember, SimMember, SimMember];
    sim.network.partition([
      [a.address, b.address],
      [c.address, d.address, e.address],
    ]);
    const outcomes: string[] = [];
    for (let index = 0; index < 8; index++) {
      const key = `claim-${index}`;
      const [left, right] = await sim.drive(
        Promise.all([
          attempt(sim, a, key, { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from('left') }, condition: { kind: 'absent' } }),
          attempt(sim, e, key, { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from('right') }, condition: { kind: 'absent' } }),
        ]),
      );
      outcomes.push(`${key}: ${left.ok ? 'left ok' : `left ${left.code}`}, ${right.ok ? 'right ok' : `right ${right.code}`}`);
      expect(left.ok && right.ok, `seed ${seed}: ${key}: both sides claimed it`).toBe(false);
      // The side without a majority of the key's primaries fails, saying it did not happen.
      for (const side of [left, right]) if (!side.ok) expect(side.applied, `seed ${seed}: ${key}: ${side.code}`).toBe('no');
    }
    sim.network.heal();
    // After the heal every claim reads as what the one winner wrote (or absent when neither could).
    for (const [index, line] of outcomes.entries()) {
      const read = await sim.drive(attempt(sim, c, `claim-${index}`, { kind: 'read' }));
      const expected = line.includes('left ok') ? 'left' : line.includes('right ok') ? 'right' : null;
      expect(read.ok && (read.result.value === null ? null : Buffer.from(read.result.value.value).toString()), `seed ${seed}: ${line}`).toBe(expected);
    }
  });

  it.each(seeds)('seed %i: an acknowledged write survives a power loss of two of its three primaries (acceptor state is synced)', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 3, config));
    const key = 'durable';
    const [first] = sim.members as [SimMember];
    const written = await sim.drive(
      attempt(sim, first, key, { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from('kept') }, condition: { kind: 'absent' } }),
    );
    expect(written.ok).toBe(true);
    const ring = first.node.gossiper.ring!;
    const primaries = preferenceList(ring, partitionOf(bucket, key, ring.partitionCount), 3).map((id) => sim.members.find((member) => member.nodeId === id)!);
    const [lost, alsoLost, survivor] = primaries as [SimMember, SimMember, SimMember];
    await sim.crash(lost, 'power-loss');
    await sim.crash(alsoLost, 'power-loss');
    await sim.restart(lost);
    await sim.restart(alsoLost);
    // The one that kept its disk is cut off: the read's quorum is the two that lost power.
    sim.network.partition([[survivor.address], [lost.address, alsoLost.address]]);
    const read = await sim.drive(attempt(sim, lost, key, { kind: 'read' }));
    expect(read.ok && read.result.value !== null && Buffer.from(read.result.value.value).toString(), `seed ${seed}: the acknowledged write is read back`).toBe(
      'kept',
    );
  });

  it('a replica write or a data type update of a consistent bucket is refused by the replica itself', async () => {
    const sim = (cluster = await SimCluster.start(2204, 3, config));
    const node = sim.members[1]!.node;
    const object = { clock: {}, siblings: [] };
    const reply = await sim.drive(node.handlePeer({ type: 'replica-put', bucket, key: 'k', object, mode: 'siblings', sync: true }));
    expect(reply).toMatchObject({ type: 'error', code: 'KV_CONSISTENT_BUCKET' });
    const plain = await sim.drive(
      node.put({ bucket, key: 'k', value: Buffer.from('x'), contentType: 'text/plain', context: undefined, options: {} }).catch((error: unknown) => error),
    );
    expect(plain).toMatchObject({ code: 'KV_CONSISTENT_BUCKET' });
  });
});
