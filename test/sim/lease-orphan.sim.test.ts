import { afterEach, describe, expect, it } from 'vitest';
import { decodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { encodeLeaseRecord, grantedLease, leaseBucket } from '../../src/core/leases/lease-record.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import type { ConsistentCommand } from '../../src/engine/kv-service.js';
import { Leases } from '../../src/engine/leases.js';
import type { WatchItem } from '../../src/engine/watches.js';
import { silentLogger } from '../../src/ports/logger.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal (issue 22, README "Leases and ephemeral keys"): no leased key outlives its lease, even when
 * the node that wrote it dies between the key's write and the confirmation that finds the lease
 * live. The writer here is a node whose leased PUT is stopped there: the lease ends (revoked, or
 * expired) after the attach and before the key's write lands, the write lands (its value names
 * the ended lease), and the writer crashes before confirming. The key's replicas find it in their
 * own acceptor state and finish what the writer left: the key is deleted by a consistent delete,
 * which a watcher on another node sees, within a bounded virtual time. The prune variant: a full
 * lease pruned the key (it read the key before the write landed) while it stayed live; the key is
 * attached again, and ends with the lease. SIM_SEED=<n> replays one seed.
 */

const bucket = 'locks';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2801, 2802, 2803];
/** Virtual time within which the key's replicas must have found and settled the orphan. */
const boundMs = 20_000;

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const valueOf = (text: string) => ({ contentType: 'text/plain', value: Buffer.from(text) });

/** The decided events a watcher saw of one key: version and whether it held a value. */
function decided(items: readonly WatchItem[], key: string): { version: number; value: string | null }[] {
  return items.flatMap((item) =>
    item.kind === 'decided' && item.bucket === bucket && item.key === key
      ? [{ version: item.version, value: item.value === null ? null : Buffer.from(decodeConsistentValue(item.value).value).toString() }]
      : [],
  );
}

/** A prefix watch of the bucket on `member`, ready; `items` fills as it runs. */
async function watch(sim: SimCluster, member: SimMember): Promise<{ items: WatchItem[]; close: () => Promise<void> }> {
  const items: WatchItem[] = [];
  const stream = member.node.watch({ bucket, kind: 'prefix', name: '' });
  const reading = (async () => {
    for await (const item of stream) items.push(item);
  })();
  await sim.runUntil(() => items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
  return {
    items,
    close: async () => {
      stream.close();
      await sim.drive(reading);
    },
  };
}

/**
 * Starts a leased PUT of `key` on `writer` (through Leases on the writer's own consistent
 * operations) that runs `beforeWrite` just before the key's write, and crashes the writer as soon
 * as that write is decided: its confirmation never runs. Resolves with the version written.
 */
async function putAndDie(sim: SimCluster, writer: SimMember, leaseId: string, key: string, beforeWrite: () => Promise<unknown>): Promise<number> {
  let written: number | undefined;
  const consistent = async (name: string, target: string, command: ConsistentCommand, timeoutMs?: number) => {
    const isKeyWrite = name === bucket && target === key && command.kind === 'write';
    if (isKeyWrite) await beforeWrite();
    const outcome = await writer.node.consistent(name, target, command, timeoutMs);
    if (isKeyWrite) {
      written = outcome.version;
      await sim.crash(writer);
      // The process is gone: nothing after the write runs.
      return new Promise<never>(() => undefined);
    }
    return outcome;
  };
  const leases = new Leases({
    consistent,
    clock: sim.clock,
    random: sim.random.fork(),
    logger: silentLogger,
    scan: async () => ({ leases: [], wrapped: true }),
    leasedKeys: async () => ({ keys: [], wrapped: true }),
  });
  leases.put(bucket, key, valueOf('held'), { kind: 'none' }, leaseId).then(
    () => undefined,
    () => undefined,
  );
  await sim.runUntil(() => written !== undefined && !writer.running, 60_000, `the writer wrote ${key} and crashed`);
  return written!;
}

/** Whether the lease record is gone (deleted): the lease ended. */
async function leaseGone(sim: SimCluster, member: SimMember, id: string): Promise<boolean> {
  return (await member.node.consistent(leaseBucket, id, { kind: 'read' })).value === null;
}

describe('simulation: a leased key whose writer died before confirming', () => {
  for (const ending of ['revoked', 'expired'] as const) {
    it.each(seeds)(
      `seed %i: the lease ${ending} between the attach and the write: the key is deleted, and a watcher sees it`,
      async (seed) => {
        const sim = (cluster = await SimCluster.start(seed, 3, config));
        const [survivor, writer, watcherNode] = sim.members as [SimMember, SimMember, SimMember];
        const watcher = await watch(sim, watcherNode);
        const { id } = await sim.drive(survivor.node.leases.grant(ending === 'revoked' ? 600 : 2));
        const key = `orphan-${ending}`;
        const version = await putAndDie(sim, writer, id, key, async () => {
          if (ending === 'revoked') await survivor.node.leases.revoke(id);
          // Nobody keeps it alive: its sweeper ends it after its ttl.
          else while (!(await leaseGone(sim, survivor, id))) await sim.clock.sleep(500);
        });
        expect(await sim.drive(leaseGone(sim, survivor, id)), 'the lease ended before the write landed').toBe(true);
        const left = await sim.drive(survivor.node.consistent(bucket, key, { kind: 'read' }));
        expect(left, 'the writer left the key naming the ended lease').toMatchObject({ version, value: { lease: id } });

        const deleted = () => decided(watcher.items, key).some((event) => event.value === null && event.version > version);
        await sim.runUntil(deleted, boundMs, `seed ${seed}: the watcher on ${watcherNode.nodeId} sees ${key} (naming lease ${id}, ${ending}) deleted`);
        await watcher.close();
        expect(decided(watcher.items, key), `seed ${seed}: what the watcher saw of ${key}`).toEqual([
          { version, value: 'held' },
          { version: version + 1, value: null },
        ]);
        const read = await sim.drive(watcherNode.node.consistent(bucket, key, { kind: 'read' }));
        expect(read, `seed ${seed}: ${key} after the watcher saw it go`).toMatchObject({ version: version + 1, value: null });
      },
      600_000,
    );
  }

  it.each(seeds)(
    "seed %i: the key's first replica never held the write: another of the first majority of its replicas finds and deletes it",
    async (seed) => {
      const sim = (cluster = await SimCluster.start(seed, 3, config));
      const [first, writer, survivor] = sim.members as [SimMember, SimMember, SimMember];
      const ring = first.node.gossiper.ring!;
      const key = Array.from({ length: 100 }, (_, index) => `orphan-unheld-${index}`).find(
        (name) => preferenceList(ring, partitionOf(bucket, name, ring.partitionCount), 3)[0] === first.nodeId,
      )!;
      expect(key, `no key of 100 had ${first.nodeId} first`).toBeDefined();
      const { id } = await sim.drive(survivor.node.leases.grant(600));
      // The key's first replica is cut off for the PUT only (healed long before gossip could judge it down): it never holds the key.
      sim.network.partition([[first.address], [writer.address, survivor.address]]);
      const version = await putAndDie(sim, writer, id, key, async () => survivor.node.leases.revoke(id));
      sim.network.heal();
      expect(await first.storage.paxos.get(encodeDataKey(bucket, key)), `${first.nodeId} holds no Paxos state of ${key}`).toBeUndefined();
      expect(first.node.gossiper.isUp(survivor.nodeId) && survivor.node.gossiper.isUp(first.nodeId), 'the cut was healed before gossip judged it').toBe(true);

      const read = async () => sim.drive(survivor.node.consistent(bucket, key, { kind: 'read' }));
      const deadline = sim.clock.nowMs() + boundMs;
      while ((await read()).value !== null && sim.clock.nowMs() < deadline) await sim.clock.advance(500);
      expect(await read(), `seed ${seed}: ${key}, which its first replica ${first.nodeId} never held, deleted within ${boundMs} ms`).toMatchObject({
        version: version + 1,
        value: null,
      });
    },
    600_000,
  );

  it.each(seeds)('seed %i: a lease id is never granted twice, not even once its lease has ended', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 3, config));
    const node = sim.members[0]!.node;
    // Draws the same 16 hex digits for the first three ids, then others: the third grant draws again.
    const draws = [...Array<number>(12).fill(0xabcd), 0x1234, 0x1234, 0x1234, 0x1234];
    const leases = new Leases({
      consistent: async (name, target, command, timeoutMs) => node.consistent(name, target, command, timeoutMs),
      clock: sim.clock,
      random: { next: () => 0, int: () => draws.shift()! },
      logger: silentLogger,
      scan: async () => ({ leases: [], wrapped: true }),
      leasedKeys: async () => ({ keys: [], wrapped: true }),
    });
    const first = await sim.drive(leases.grant(600));
    expect(first.id).toBe('abcdabcdabcdabcd');
    await sim.drive(leases.revoke(first.id));
    // An orphan naming the ended lease must never be held by a lease granted later under its id.
    const second = await sim.drive(leases.grant(600));
    expect(second.id, `seed ${seed}: the id of the ended lease was granted again`).toBe('1234123412341234');
    expect(draws, 'the grant drew ids until one was never used').toEqual([]);
  });

  it.each(seeds)(
    'seed %i: a full lease pruned the key before its write landed: the key is listed again, and deleted when the lease ends',
    async (seed) => {
      const sim = (cluster = await SimCluster.start(seed, 3, config));
      const [survivor, writer, watcherNode] = sim.members as [SimMember, SimMember, SimMember];
      const { id } = await sim.drive(survivor.node.leases.grant(600));
      // The lease holds 999 keys that no longer name it (never written here): the next attach fills
      // it, and the one after prunes every key whose value does not name the lease.
      const stale = Array.from({ length: 999 }, (_, index) => ({ bucket, key: `gone-${index}` }));
      const granted = await sim.drive(survivor.node.consistent(leaseBucket, id, { kind: 'read' }));
      await sim.drive(
        survivor.node.consistent(leaseBucket, id, {
          kind: 'write',
          value: { contentType: 'application/octet-stream', value: encodeLeaseRecord({ ...grantedLease(600), keys: stale }) },
          condition: { kind: 'version', version: granted.version },
        }),
        600_000,
      );
      const key = 'orphan-pruned';
      const version = await putAndDie(sim, writer, id, key, async () => {
        // A PUT of another key finds the lease full and prunes it: it reads `key` before its write lands.
        await survivor.node.leases.put(bucket, 'other', valueOf('other'), { kind: 'none' }, id);
        expect((await survivor.node.leases.describe(id)).keys, 'the prune removed the key').toEqual([{ bucket, key: 'other' }]);
      });
      const left = await sim.drive(survivor.node.consistent(bucket, key, { kind: 'read' }));
      expect(left, 'the writer left the key naming the live lease').toMatchObject({ version, value: { lease: id } });

      const listed = async () => (await survivor.node.leases.describe(id)).keys.some((entry) => entry.key === key);
      const deadline = sim.clock.nowMs() + boundMs;
      while (!(await sim.drive(listed())) && sim.clock.nowMs() < deadline) await sim.clock.advance(500);
      expect(await sim.drive(listed()), `seed ${seed}: ${key} listed again on lease ${id} within ${boundMs} ms`).toBe(true);

      const watcher = await watch(sim, watcherNode);
      await sim.drive(survivor.node.leases.revoke(id));
      await sim.runUntil(() => decided(watcher.items, key).length > 0, 10_000, `the watcher sees the revoke delete ${key}`);
      await watcher.close();
      expect(decided(watcher.items, key), `seed ${seed}: the revoke deleted ${key}`).toEqual([{ version: version + 1, value: null }]);
    },
    600_000,
  );
});
