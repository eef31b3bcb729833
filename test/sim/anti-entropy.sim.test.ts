import { describe, expect, it } from 'vitest';
import { readContext } from '../../src/core/versioning/context.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Anti-entropy in simulation: Merkle exchanges alone bring a replica back, send bytes in
 * proportion to the differences, and never bring a deleted key back. Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 6);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 2000 + index);

const antiEntropyConfig = {
  hintedHandoff: { enabled: false },
  antiEntropy: { enabled: true, intervalMs: 1000, tombstoneGraceMs: 5000, maxKeysPerSecond: 100_000 },
};

async function write(
  cluster: SimCluster,
  member: SimMember,
  bucket: string,
  key: string,
  value: string,
  w: number | 'all' | 'quorum' = 'quorum',
): Promise<void> {
  await cluster.drive(member.node.put({ bucket, key, value: Buffer.from(value), contentType: 'text/plain', context: undefined, options: { w } }));
}

async function localValue(member: SimMember, bucket: string, key: string): Promise<string[]> {
  const object = await member.node.getLocal(bucket, key);
  return object === undefined ? [] : liveSiblings(object).map((sibling) => Buffer.from(sibling.value).toString());
}

function exchangedBytes(cluster: SimCluster): number {
  return cluster.members.reduce((sum, member) => sum + member.node.antiEntropyService.status().bytesExchanged, 0);
}

describe('simulation: Merkle anti-entropy', () => {
  it.each(seeds)('seed %i: a replica that missed writes (no hints) catches up by anti-entropy alone', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, antiEntropyConfig);
    try {
      const [first, , third] = cluster.members as [SimMember, SimMember, SimMember];
      await cluster.crash(third);
      await cluster.runUntil(() => !first.node.gossiper.isUp(third.nodeId), 30_000, 'node 3 is judged down');
      const keys = Array.from({ length: 300 }, (_, index) => `key-${index}`);
      for (const key of keys) await write(cluster, first, 'ae', key, `value-${key}`);
      for (const key of keys.slice(0, 5)) expect(await localValue(third, 'ae', key), `seed ${seed}`).toEqual([]);
      await cluster.restart(third);
      await cluster.runUntil(
        async () => {
          for (const key of keys) if ((await localValue(third, 'ae', key)).length !== 1) return false;
          return true;
        },
        120_000,
        'node 3 holds every key',
      );
      for (const key of keys) expect(await localValue(third, 'ae', key)).toEqual([`value-${key}`]);
      expect(third.node.antiEntropyService.status().keysRepaired + first.node.antiEntropyService.status().keysRepaired).toBeGreaterThan(0);
    } finally {
      await cluster.stop();
    }
  });

  it('sends bytes in proportion to the differing keys, not to the keys stored', async () => {
    const measure = async (storedKeys: number): Promise<number> => {
      const cluster = await SimCluster.start(77, 2, {
        ...antiEntropyConfig,
        bucketDefaults: { nVal: 2 },
        antiEntropy: { ...antiEntropyConfig.antiEntropy, intervalMs: 3_600_000 },
      });
      try {
        const [first, second] = cluster.members as [SimMember, SimMember];
        for (let index = 0; index < storedKeys; index++) await write(cluster, first, 'bulk', `k${index}`, 'x'.repeat(20), 'all');
        // Ten keys differ: written while the second node was away.
        await cluster.crash(second);
        await cluster.runUntil(() => !first.node.gossiper.isUp(second.nodeId), 30_000, 'node 2 is judged down');
        for (let index = 0; index < 10; index++) await write(cluster, first, 'diff', `d${index}`, 'y'.repeat(20), 1);
        await cluster.restart(second);
        await cluster.runUntil(() => cluster.ringSettled(), 30_000, 'ring settles');
        const before = exchangedBytes(cluster);
        first.node.repair();
        await cluster.runUntil(() => !first.node.repairProgress().running, 120_000, 'repair finishes');
        for (let index = 0; index < 10; index++) expect(await localValue(second, 'diff', `d${index}`)).toEqual(['y'.repeat(20)]);
        return exchangedBytes(cluster) - before;
      } finally {
        await cluster.stop();
      }
    };
    const small = await measure(10);
    const large = await measure(2000);
    // 200 times the stored keys, the same 10 differing keys: the exchange may grow a little with
    // fuller leaves, but nowhere near in proportion to the data.
    expect(large).toBeLessThan(small * 3);
  });
});

describe('simulation: deleted keys never come back', () => {
  it.each(seeds)('seed %i: deletes made while a replica was down stay deleted after anti-entropy and tombstone reaping', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, antiEntropyConfig);
    try {
      const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
      const keys = Array.from({ length: 40 }, (_, index) => `gone-${index}`);
      for (const key of keys) await write(cluster, first, 'del', key, 'alive', 'all');
      await cluster.crash(third);
      await cluster.runUntil(() => !first.node.gossiper.isUp(third.nodeId), 30_000, 'node 3 is judged down');
      for (const key of keys) {
        const read = await cluster.drive(second.node.get('del', key, { r: 'quorum' }));
        await cluster.drive(
          second.node.delete({ bucket: 'del', key, context: read === undefined ? undefined : readContext(read.clock), options: { w: 'quorum' } }),
        );
      }
      // Node 3 still has every key alive; it comes back, and anti-entropy runs well past the grace period.
      await cluster.restart(third);
      await cluster.runUntil(() => cluster.ringSettled(), 30_000, 'ring settles');
      await cluster.runUntil(
        () => cluster.members.every((member) => member.node.antiEntropyService.status().tombstonesPending === 0),
        120_000,
        'every tombstone is reaped',
      );
      await cluster.clock.advance(10_000);
      for (const key of keys) {
        for (const member of cluster.members) expect(await localValue(member, 'del', key), `seed ${seed}: ${key} on ${member.nodeId}`).toEqual([]);
        const read = await cluster.drive(first.node.get('del', key, { r: 'all' }));
        expect(read === undefined ? [] : liveSiblings(read), `seed ${seed}: ${key}`).toEqual([]);
      }
      const reaped = cluster.members.reduce((sum, member) => sum + member.node.antiEntropyService.status().tombstonesReaped, 0);
      expect(reaped).toBeGreaterThanOrEqual(keys.length);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds.slice(0, 3))('seed %i: deletes on one side of a partition win over the stale side once it heals', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, antiEntropyConfig);
    try {
      const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
      const keys = Array.from({ length: 20 }, (_, index) => `p-${index}`);
      for (const key of keys) await write(cluster, first, 'part', key, 'alive', 'all');
      cluster.network.partition([[first.address, second.address], [third.address]]);
      for (const key of keys) {
        const read = await cluster.drive(first.node.get('part', key, { r: 'quorum' }));
        await cluster.drive(
          first.node.delete({ bucket: 'part', key, context: read === undefined ? undefined : readContext(read.clock), options: { w: 'quorum' } }),
        );
      }
      cluster.network.heal();
      await cluster.runUntil(
        () => cluster.members.every((member) => member.node.antiEntropyService.status().tombstonesPending === 0),
        120_000,
        'every tombstone is reaped',
      );
      for (const key of keys) {
        const read = await cluster.drive(third.node.get('part', key, { r: 'all' }));
        expect(read === undefined ? [] : liveSiblings(read), `seed ${seed}: ${key}`).toEqual([]);
      }
    } finally {
      await cluster.stop();
    }
  });
});
