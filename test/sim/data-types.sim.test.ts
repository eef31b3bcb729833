import { describe, expect, it } from 'vitest';
import { type DataTypeValue, dataTypeKey, dataTypeValue } from '../../src/core/datatypes/data-type.js';
import { decodeContext } from '../../src/core/versioning/context.js';
import { partitionOf } from '../../src/core/keys.js';
import { preferenceList, ringMembers } from '../../src/core/ring/ring.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goals of counters and sets in simulation (3 nodes, n_val 3, simulated network and clocks):
 * updates on both sides of a partition merge exactly once it heals (increments sum, a concurrent
 * add survives a remove), acknowledged updates survive crashes and restarts, and anti-entropy
 * alone brings a replica that missed updates to the same state. Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 3);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 7100 + index);

async function increment(cluster: SimCluster, member: SimMember, key: string, delta: number, w: number | 'all' | 'quorum' = 'quorum'): Promise<void> {
  await cluster.drive(member.node.dataTypes.update('dt', key, { type: 'counter', increment: delta }, { w }));
}

async function read(cluster: SimCluster, member: SimMember, key: string, r: number | 'all' | 'quorum' = 'quorum'): Promise<DataTypeValue | undefined> {
  return cluster.drive(member.node.dataTypes.read('dt', key, { r }));
}

async function localValue(member: SimMember, key: string): Promise<DataTypeValue | undefined> {
  return dataTypeValue(await member.node.getLocal('dt', dataTypeKey(key)));
}

describe('simulation: counters and sets', () => {
  it.each(seeds)('seed %i: increments on both sides of a partition sum exactly once it heals', async (seed) => {
    const cluster = await SimCluster.start(seed, 3);
    try {
      const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
      await increment(cluster, first, 'hits', 100, 'all');
      cluster.network.partition([[first.address, second.address], [third.address]]);
      await cluster.runUntil(
        () => !first.node.gossiper.isUp(third.nodeId) && !third.node.gossiper.isUp(first.nodeId),
        30_000,
        'each side judges the other down',
      );
      let expected = 100;
      for (let round = 0; round < 10; round++) {
        await increment(cluster, round % 2 === 0 ? first : second, 'hits', round + 1, 'quorum');
        await increment(cluster, third, 'hits', -(round * 3), 1);
        expected += round + 1 - round * 3;
      }
      // Each side sees only its own updates.
      expect((await read(cluster, third, 'hits', 1))?.value, `seed ${seed}`).toBe(100 - 135);
      cluster.network.heal();
      await cluster.runUntil(
        () => cluster.members.every((member) => cluster.members.every((other) => member.node.gossiper.isUp(other.nodeId))),
        30_000,
        'the partition heals',
      );
      for (const member of cluster.members)
        expect(await read(cluster, member, 'hits', 'all'), `seed ${seed}: read at ${member.nodeId}`).toEqual({ type: 'counter', value: expected });
      // Read repair (and the hints the partition left) bring every replica's own copy to the sum.
      await cluster.runUntil(
        async () => {
          for (const member of cluster.members) if ((await localValue(member, 'hits'))?.value !== expected) return false;
          return true;
        },
        60_000,
        'every replica holds the sum',
      );
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: an add concurrent with a remove survives it; what only the remover saw is removed', async (seed) => {
    const cluster = await SimCluster.start(seed, 3);
    try {
      const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
      await cluster.drive(first.node.dataTypes.update('dt', 'tags', { type: 'set', add: ['kept', 'readded', 'dropped'], remove: [] }, { w: 'all' }));
      cluster.network.partition([[first.address, second.address], [third.address]]);
      await cluster.runUntil(
        () => !first.node.gossiper.isUp(third.nodeId) && !third.node.gossiper.isUp(first.nodeId),
        30_000,
        'each side judges the other down',
      );
      const seen = await read(cluster, first, 'tags');
      expect(seen, `seed ${seed}`).toMatchObject({ type: 'set', value: ['dropped', 'kept', 'readded'] });
      const context = decodeContext((seen as { context: string }).context);
      // One side removes two elements it read; the other, not seeing that, adds one of them again.
      await cluster.drive(second.node.dataTypes.update('dt', 'tags', { type: 'set', add: [], remove: ['readded', 'dropped'], context }, { w: 'quorum' }));
      await cluster.drive(third.node.dataTypes.update('dt', 'tags', { type: 'set', add: ['readded', 'new'], remove: [] }, { w: 1 }));
      expect((await read(cluster, first, 'tags'))?.value, `seed ${seed}`).toEqual(['kept']);
      cluster.network.heal();
      await cluster.runUntil(
        () => cluster.members.every((member) => cluster.members.every((other) => member.node.gossiper.isUp(other.nodeId))),
        30_000,
        'the partition heals',
      );
      for (const member of cluster.members)
        expect((await read(cluster, member, 'tags', 'all'))?.value, `seed ${seed}: read at ${member.nodeId}`).toEqual(['kept', 'new', 'readded']);
      await cluster.runUntil(
        async () => {
          for (const member of cluster.members)
            if (JSON.stringify((await localValue(member, 'tags'))?.value) !== JSON.stringify(['kept', 'new', 'readded'])) return false;
          return true;
        },
        60_000,
        'every replica holds the merged set',
      );
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: acknowledged updates survive power losses and restarts, and the restarted node counts on from its new incarnation', async (seed) => {
    const cluster = await SimCluster.start(seed, 3);
    try {
      const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
      let expected = 0;
      for (let round = 0; round < 6; round++) {
        // dw=all: every replica has fsynced the update before it is acknowledged.
        await cluster.drive(third.node.dataTypes.update('dt', 'durable', { type: 'counter', increment: 10 }, { w: 'all', dw: 'all' }));
        expected += 10;
      }
      // w alone: acknowledged by every replica's memory; a power loss of one replica may lose its copy, not the others'.
      for (let round = 0; round < 4; round++) {
        await increment(cluster, third, 'durable', 1, 'all');
        expected += 1;
      }
      await cluster.drive(third.node.dataTypes.update('dt', 'members', { type: 'set', add: ['a', 'b'], remove: [] }, { w: 'all', dw: 'all' }));
      await cluster.crash(third, 'power-loss');
      await cluster.crash(first, 'process');
      await cluster.restart(first);
      await cluster.restart(third);
      await cluster.runUntil(
        () => cluster.ringSettled() && cluster.members.every((member) => cluster.members.every((other) => member.node.gossiper.isUp(other.nodeId))),
        60_000,
        'the nodes are back',
      );
      // The restarted node coordinates again, under a new actor: its earlier entries live on in the other replicas.
      for (let round = 0; round < 3; round++) {
        await increment(cluster, third, 'durable', 5, 'all');
        expected += 5;
      }
      for (const member of [first, second, third])
        expect(await read(cluster, member, 'durable', 'all'), `seed ${seed}: read at ${member.nodeId}`).toEqual({ type: 'counter', value: expected });
      expect((await read(cluster, second, 'members', 'all'))?.value, `seed ${seed}`).toEqual(['a', 'b']);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: a replica that missed updates (no hints) converges by anti-entropy alone', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, {
      hintedHandoff: { enabled: false },
      antiEntropy: { enabled: true, intervalMs: 1000, maxKeysPerSecond: 100_000 },
    });
    try {
      const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
      await cluster.drive(first.node.dataTypes.update('dt', 'ae-set', { type: 'set', add: ['gone'], remove: [] }, { w: 'all' }));
      await cluster.crash(third);
      await cluster.runUntil(() => !first.node.gossiper.isUp(third.nodeId), 30_000, 'node 3 is judged down');
      const keys = Array.from({ length: 20 }, (_, index) => `ae-${index}`);
      for (const [index, key] of keys.entries()) {
        await increment(cluster, index % 2 === 0 ? first : second, key, index + 1);
        await increment(cluster, index % 2 === 0 ? second : first, key, index + 1);
      }
      const seen = await read(cluster, first, 'ae-set');
      await cluster.drive(
        second.node.dataTypes.update(
          'dt',
          'ae-set',
          { type: 'set', add: ['one', 'two'], remove: ['gone'], context: decodeContext((seen as { context: string }).context) },
          { w: 'quorum' },
        ),
      );
      expect(await localValue(third, 'ae-0'), `seed ${seed}`).toBeUndefined();
      await cluster.restart(third);
      await cluster.runUntil(
        async () => {
          for (const [index, key] of keys.entries()) if ((await localValue(third, key))?.value !== 2 * (index + 1)) return false;
          return JSON.stringify((await localValue(third, 'ae-set'))?.value) === JSON.stringify(['one', 'two']);
        },
        120_000,
        'node 3 holds every counter and the set',
      );
      expect(
        third.node.antiEntropyService.status().keysRepaired +
          first.node.antiEntropyService.status().keysRepaired +
          second.node.antiEntropyService.status().keysRepaired,
      ).toBeGreaterThan(0);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds.slice(0, 2))('seed %i: counters and sets stream to a joining node by handoff and keep counting through the ring change', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, {
      handoff: { intervalMs: 200, batchSize: 50, cleanupDelayMs: 1000 },
      antiEntropy: { enabled: true, intervalMs: 2000, maxKeysPerSecond: 100_000 },
    });
    const random = cluster.random.fork();
    try {
      const keys = Array.from({ length: 24 }, (_, index) => `moving-${index}`);
      const expected = new Map<string, number>(keys.map((key) => [key, 0]));
      const step = async (): Promise<void> => {
        // Through the three first nodes: the joiner has no ring until it has joined.
        const key = keys[random.int(keys.length)]!;
        await cluster.drive(cluster.members[random.int(3)]!.node.dataTypes.update('dt', key, { type: 'counter', increment: 1 }, { w: 'quorum' }));
        expected.set(key, (expected.get(key) ?? 0) + 1);
      };
      for (let index = 0; index < 120; index++) await step();
      await cluster.drive(cluster.members[0]!.node.dataTypes.update('dt', 'moving-set', { type: 'set', add: ['p', 'q'], remove: [] }, { w: 'all' }));
      const joiner = await cluster.addMember();
      const settled = (): boolean =>
        cluster.members.every((member) => {
          const ring = member.node.gossiper.ring;
          return ring !== null && ring.next === null && ringMembers(ring).length === 4;
        });
      const deadline = cluster.clock.nowMs() + 300_000;
      while (!settled()) {
        if (cluster.clock.nowMs() > deadline) throw new Error(`seed ${seed}: the 4th node never owned its share`);
        await step();
        await cluster.clock.advance(50);
      }
      const ring = joiner.node.gossiper.ring!;
      await cluster.runUntil(
        () =>
          cluster.members.every((member) =>
            member.node.antiEntropyService.heldPartitions().every((partition) => preferenceList(ring, partition, 3).includes(member.nodeId)),
          ),
        120_000,
        'old replicas hand off and delete what they no longer replicate',
      );
      for (let index = 0; index < 60; index++) await step();
      for (const key of keys) expect(await read(cluster, joiner, key, 'all'), `seed ${seed}: ${key}`).toEqual({ type: 'counter', value: expected.get(key) });
      // The joiner's own copies, streamed to it and updated since, are whole for the keys it replicates.
      const replicated = keys.filter((key) => preferenceList(ring, partitionOf('dt', dataTypeKey(key), ring.partitionCount), 3).includes(joiner.nodeId));
      expect(replicated.length, `seed ${seed}`).toBeGreaterThan(0);
      await cluster.runUntil(
        async () => {
          for (const key of replicated) if ((await localValue(joiner, key))?.value !== expected.get(key)) return false;
          return true;
        },
        120_000,
        'the joiner holds every counter it replicates',
      );
      expect((await read(cluster, joiner, 'moving-set', 'all'))?.value, `seed ${seed}`).toEqual(['p', 'q']);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds.slice(0, 2))(
    'seed %i: a remove whose context came from a replica ahead of the coordinator still applies (the coordinator asks every replica)',
    async (seed) => {
      const cluster = await SimCluster.start(seed, 3, { hintedHandoff: { enabled: false }, antiEntropy: { enabled: false } });
      try {
        const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
        await cluster.drive(first.node.dataTypes.update('dt', 'ahead', { type: 'set', add: ['old'], remove: [] }, { w: 'all' }));
        // Only the first node takes the next add: the others are cut off while it is made.
        cluster.network.partition([[first.address], [second.address, third.address]]);
        await cluster.runUntil(
          () => !first.node.gossiper.isUp(second.nodeId) && !first.node.gossiper.isUp(third.nodeId),
          30_000,
          'node 1 judges the others down',
        );
        await cluster.drive(first.node.dataTypes.update('dt', 'ahead', { type: 'set', add: ['new'], remove: [] }, { w: 1 }));
        cluster.network.heal();
        await cluster.runUntil(
          () => cluster.members.every((member) => cluster.members.every((other) => member.node.gossiper.isUp(other.nodeId))),
          30_000,
          'the partition heals',
        );
        const seen = await cluster.drive(first.node.dataTypes.read('dt', 'ahead', { r: 1 }));
        expect(seen?.value, `seed ${seed}`).toEqual(['new', 'old']);
        expect((await localValue(second, 'ahead'))?.value, `seed ${seed}: node 2 has not seen the new add`).toEqual(['old']);
        // Coordinated at node 2 with r=1: its own copy has not seen everything the context names.
        await cluster.drive(
          second.node.dataTypes.update(
            'dt',
            'ahead',
            { type: 'set', add: [], remove: ['new', 'old'], context: decodeContext((seen as { context: string }).context) },
            { w: 'all', r: 1 },
          ),
        );
        for (const member of cluster.members)
          expect((await read(cluster, member, 'ahead', 'all'))?.value, `seed ${seed}: read at ${member.nodeId}`).toEqual([]);
      } finally {
        await cluster.stop();
      }
    },
  );

  it('an lww bucket merges its counters as counters: increments coordinated at every node all count', async () => {
    const cluster = await SimCluster.start(seeds[0]!, 3, { buckets: { latest: { conflictMode: 'lww' } } });
    try {
      for (let round = 0; round < 9; round++) {
        await cluster.drive(cluster.members[round % 3]!.node.dataTypes.update('latest', 'hits', { type: 'counter', increment: 2 }, { w: 1 }));
      }
      for (const member of cluster.members)
        expect(await cluster.drive(member.node.dataTypes.read('latest', 'hits', { r: 'all' }))).toEqual({ type: 'counter', value: 18 });
    } finally {
      await cluster.stop();
    }
  });
});
