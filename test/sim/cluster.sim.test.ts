import { describe, expect, it } from 'vitest';
import { readContext } from '../../src/core/versioning/context.js';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { liveSiblings, type VersionedObject } from '../../src/core/versioning/versioned-object.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Simulation of whole clusters in one process (docs/ARCHITECTURE.md#the-simulator): real engines on a
 * simulated network with a virtual clock, faults drawn from a seeded PRNG. Every failure message
 * names its seed; `SIM_SEED=<seed> npx vitest run test/sim` replays just that seed.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 12);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 1000 + index);

function setOf(object: VersionedObject | undefined): Set<string> {
  const elements = new Set<string>();
  for (const sibling of object === undefined ? [] : liveSiblings(object)) {
    const text = Buffer.from(sibling.value).toString('utf8');
    for (const element of text.split(',')) if (element !== '') elements.add(element);
  }
  return elements;
}

/** One client step of the set workload: read with r=quorum, add an element to the union of the siblings, write back with the context. */
async function addElement(coordinator: SimMember, key: string, element: string): Promise<'ok' | 'fail' | 'info'> {
  try {
    const read = await coordinator.node.get('set', key, {});
    const elements = setOf(read);
    elements.add(element);
    await coordinator.node.put({
      bucket: 'set',
      key,
      value: Buffer.from([...elements].sort().join(','), 'utf8'),
      contentType: 'text/plain',
      context: read === undefined ? undefined : readContext(read.clock),
      options: {},
    });
    return 'ok';
  } catch (error) {
    // A read that failed means nothing was written; a write that failed may still have landed.
    return (error as { code?: string }).code === 'KV_TIMEOUT' ? 'info' : 'fail';
  }
}

/** Heals the network, restarts every crashed node and waits for gossip to settle and every hint to be delivered. */
async function healAndDrain(cluster: SimCluster): Promise<void> {
  cluster.network.heal();
  cluster.network.faults.dropProbability = 0;
  for (const member of cluster.members) if (!member.running) await cluster.restart(member);
  await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles after heal');
  await cluster.runUntil(() => cluster.members.every((member) => member.node.hintStore.pending === 0), 120_000, 'hints drain');
}

describe('simulation: no acknowledged write is lost once faults heal', () => {
  it.each(seeds)('seed %i: a set workload under partitions, crashes and message loss keeps every acknowledged element', async (seed) => {
    const cluster = await SimCluster.start(seed, 5);
    const random = cluster.random.fork();
    const keys = ['a', 'b', 'c'];
    const acknowledged = new Map<string, Set<string>>(keys.map((key) => [key, new Set()]));
    const attempted = new Map<string, Set<string>>(keys.map((key) => [key, new Set()]));
    try {
      for (let round = 0; round < 12; round++) {
        // A fault for this round, drawn from the seed.
        const fault = random.int(4);
        if (fault === 0) {
          const addresses = cluster.members.map((member) => member.address);
          const cut = 1 + random.int(addresses.length - 1);
          cluster.network.partition([addresses.slice(0, cut), addresses.slice(cut)]);
        } else if (fault === 1) {
          const victim = cluster.members[random.int(cluster.members.length)] as SimMember;
          if (victim.running && cluster.members.filter((member) => member.running).length > 3) await cluster.crash(victim);
        } else if (fault === 2) {
          cluster.network.faults.dropProbability = 0.1;
        } else {
          cluster.network.heal();
          cluster.network.faults.dropProbability = 0;
          for (const member of cluster.members) if (!member.running) await cluster.restart(member);
        }
        // Concurrent clients, each on a random live coordinator.
        const operations = Array.from({ length: 6 }, (_, client) => {
          const key = keys[random.int(keys.length)] as string;
          const element = `r${round}c${client}`;
          const running = cluster.members.filter((member) => member.running);
          const coordinator = running[random.int(running.length)] as SimMember;
          attempted.get(key)?.add(element);
          return addElement(coordinator, key, element).then((outcome) => {
            if (outcome === 'ok') acknowledged.get(key)?.add(element);
          });
        });
        await cluster.drive(Promise.all(operations));
        await cluster.clock.advance(random.int(2000));
      }
      await healAndDrain(cluster);

      for (const key of keys) {
        const final = await cluster.drive(cluster.members[0]!.node.get('set', key, { r: 'all' }));
        const present = setOf(final);
        const lost = [...(acknowledged.get(key) ?? [])].filter((element) => !present.has(element));
        const unexpected = [...present].filter((element) => !attempted.get(key)?.has(element));
        expect(lost, `seed ${seed}: acknowledged elements lost from key ${key}`).toEqual([]);
        expect(unexpected, `seed ${seed}: elements never attempted appeared in key ${key}`).toEqual([]);
      }
      const totalAcknowledged = [...acknowledged.values()].reduce((sum, set) => sum + set.size, 0);
      expect(totalAcknowledged, `seed ${seed}: the workload should get some writes through`).toBeGreaterThan(10);
    } finally {
      await cluster.stop();
    }
  });
});

describe('simulation: siblings appear only for truly concurrent writes', () => {
  it.each(seeds.slice(0, 6))('seed %i: sequential read-modify-writes through random coordinators never make siblings', async (seed) => {
    const cluster = await SimCluster.start(seed, 4);
    const random = cluster.random.fork();
    try {
      let expected = '';
      for (let step = 0; step < 30; step++) {
        const coordinator = cluster.members[random.int(cluster.members.length)] as SimMember;
        // r + w > n: every read sees the last acknowledged write, so each write supersedes it.
        const read = await cluster.drive(coordinator.node.get('seq', 'key', { r: 'quorum' }));
        const siblings = read === undefined ? [] : liveSiblings(read);
        expect(siblings.length, `seed ${seed}: step ${step} read ${siblings.length} siblings`).toBeLessThanOrEqual(1);
        if (siblings.length === 1) expect(Buffer.from(siblings[0]!.value).toString()).toBe(expected);
        expected = `value-${step}`;
        await cluster.drive(
          coordinator.node.put({
            bucket: 'seq',
            key: 'key',
            value: Buffer.from(expected),
            contentType: 'text/plain',
            context: read === undefined ? undefined : readContext(read.clock),
            options: { w: 'quorum' },
          }),
        );
      }
      const final = await cluster.drive(cluster.members[0]!.node.get('seq', 'key', { r: 'all' }));
      expect(final === undefined ? [] : liveSiblings(final).map((sibling) => Buffer.from(sibling.value).toString())).toEqual([expected]);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds.slice(0, 6))('seed %i: two writes from the same context on different nodes become exactly two siblings', async (seed) => {
    const cluster = await SimCluster.start(seed, 3);
    try {
      const [first, second] = cluster.members as [SimMember, SimMember];
      const base = await cluster.drive(
        first.node.put({ bucket: 'c', key: 'k', value: Buffer.from('base'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
      );
      await cluster.drive(
        Promise.all([
          first.node.put({ bucket: 'c', key: 'k', value: Buffer.from('left'), contentType: 'text/plain', context: base.context, options: {} }),
          second.node.put({ bucket: 'c', key: 'k', value: Buffer.from('right'), contentType: 'text/plain', context: base.context, options: {} }),
        ]),
      );
      const read = await cluster.drive(first.node.get('c', 'k', { r: 'all' }));
      const values = (read === undefined ? [] : liveSiblings(read)).map((sibling) => Buffer.from(sibling.value).toString()).sort();
      expect(values, `seed ${seed}`).toEqual(['left', 'right']);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds.slice(0, 4))('seed %i: in an lww bucket, concurrent writes leave one value on every replica', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, { buckets: { last: { conflictMode: 'lww' } } });
    try {
      await cluster.drive(
        Promise.all(
          cluster.members.map((member, index) =>
            member.node.put({
              bucket: 'last',
              key: 'k',
              value: Buffer.from(`v${index}`),
              contentType: 'text/plain',
              context: undefined,
              options: { w: 'all' },
            }),
          ),
        ),
      );
      const read = await cluster.drive(cluster.members[0]!.node.get('last', 'k', { r: 'all' }));
      expect(read === undefined ? 0 : liveSiblings(read).length, `seed ${seed}`).toBe(1);
    } finally {
      await cluster.stop();
    }
  });
});

describe('simulation: hinted handoff', () => {
  it.each(seeds.slice(0, 6))('seed %i: writes made while a replica was down reach it after it returns, and the hints drain', async (seed) => {
    const cluster = await SimCluster.start(seed, 4);
    try {
      const victim = cluster.members[1] as SimMember;
      await cluster.crash(victim);
      const observer = cluster.members[0] as SimMember;
      // Judged down by every other node: a write the observer is no replica of is forwarded to its
      // coordinating replica, whose view plans the write (and its hint).
      const others = cluster.members.filter((member) => member !== victim);
      await cluster.runUntil(
        () => others.every((member) => !member.node.gossiper.isUp(victim.nodeId)),
        30_000,
        'the crashed node is judged down by every other',
      );
      const keys = Array.from({ length: 40 }, (_, index) => `k${index}`);
      for (const key of keys) {
        await cluster.drive(observer.node.put({ bucket: 'h', key, value: Buffer.from(key), contentType: 'text/plain', context: undefined, options: { w: 2 } }));
      }
      const pending = cluster.members.reduce((sum, member) => sum + member.node.hintStore.pending, 0);
      expect(pending, `seed ${seed}: some writes should have left hints for the down node`).toBeGreaterThan(0);
      await cluster.restart(victim);
      await healAndDrain(cluster);
      const ring = victim.node.gossiper.ring!;
      for (const key of keys) {
        if (!preferenceList(ring, partitionOf('h', key, ring.partitionCount), 3).includes(victim.nodeId)) continue;
        const local = await victim.node.localReplica.readByDataKey(encodeDataKey('h', key));
        expect(local === undefined ? [] : liveSiblings(local).map((sibling) => Buffer.from(sibling.value).toString()), `seed ${seed}: key ${key}`).toEqual([
          key,
        ]);
      }
    } finally {
      await cluster.stop();
    }
  });
});
