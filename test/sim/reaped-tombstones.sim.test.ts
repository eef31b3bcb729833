import { readContext } from '../../src/core/versioning/context.js';
import { describe, expect, it } from 'vitest';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { type ConflictMode, type VersionedObject, liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: once a tombstone is reaped, a node that still holds the key's old live version (an
 * ex-owner whose clean-up push failed, a removed node that restarts with its old data) can never
 * bring the key back, whichever way it pushes: an anti-entropy exchange, a hint it delivers, or a
 * plain replica-put. The grace period is short so reaping happens within the run. Seeds replay
 * with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 2);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 4000 + index);

const reapConfig = {
  hintedHandoff: { enabled: true, windowMs: 1000 },
  antiEntropy: { enabled: true, intervalMs: 500, tombstoneGraceMs: 2000, maxKeysPerSecond: 100_000 },
  // The ex-owner keeps the old version: its clean-up push is the case that "failed".
  handoff: { cleanupDelayMs: 86_400_000 },
  buckets: { lastwins: { conflictMode: 'lww' } },
};

const bucketOf: Record<ConflictMode, string> = { siblings: 'reap', lww: 'lastwins' };

async function localValues(member: SimMember, bucket: string, key: string): Promise<string[]> {
  const object = await member.node.getLocal(bucket, key);
  return object === undefined ? [] : liveSiblings(object).map((sibling) => Buffer.from(sibling.value).toString());
}

/** A key whose preference list leaves out `outsider`, with that list. */
function keyOutside(cluster: SimCluster, outsider: SimMember, bucket: string): { key: string; partition: number; replicas: SimMember[] } {
  const ring = cluster.members[0]!.node.gossiper.ring!;
  for (let index = 0; ; index++) {
    const key = `k-${index}`;
    const partition = partitionOf(bucket, key, ring.partitionCount);
    const list = preferenceList(ring, partition, 3);
    if (!list.includes(outsider.nodeId)) return { key, partition, replicas: cluster.members.filter((member) => list.includes(member.nodeId)) };
  }
}

/** Writes the key, deletes it with the read context, and waits until every replica has reaped the tombstone; answers the old live version. */
async function writeDeleteAndReap(cluster: SimCluster, replicas: SimMember[], bucket: string, key: string): Promise<VersionedObject> {
  const coordinator = replicas[0]!;
  await cluster.drive(coordinator.node.put({ bucket, key, value: Buffer.from('alive'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }));
  const old = await coordinator.node.getLocal(bucket, key);
  expect(old === undefined ? [] : liveSiblings(old).length).toBe(1);
  const read = await cluster.drive(coordinator.node.get(bucket, key, { r: 'all' }));
  await cluster.drive(coordinator.node.delete({ bucket, key, context: read === undefined ? undefined : readContext(read.clock), options: { w: 'all' } }));
  const dataKey = encodeDataKey(bucket, key);
  await cluster.runUntil(
    async () => {
      for (const member of replicas) if ((await member.node.localReplica.readBytes(dataKey)) !== undefined) return false;
      return true;
    },
    60_000,
    `the tombstone of ${bucket}/${key} is reaped on every replica`,
  );
  return old as VersionedObject;
}

async function expectStillDeleted(cluster: SimCluster, replicas: SimMember[], bucket: string, key: string, how: string): Promise<void> {
  // Several anti-entropy sweeps and hint rounds, so whatever came in has spread to every replica.
  await cluster.clock.advance(5000);
  for (const member of replicas) expect(await localValues(member, bucket, key), `seed ${cluster.seed}, ${how}: ${key} on ${member.nodeId}`).toEqual([]);
  const read = await cluster.drive(replicas[0]!.node.get(bucket, key, { r: 'all' }));
  expect(read === undefined ? [] : liveSiblings(read), `seed ${cluster.seed}, ${how}: a read of ${key}`).toEqual([]);
}

type PushPath = 'anti-entropy' | 'hint delivery' | 'replica-put';

/** The outsider pushes `old` to every replica one way. */
async function pushBack(
  cluster: SimCluster,
  outsider: SimMember,
  replicas: SimMember[],
  path: PushPath,
  target: { bucket: string; key: string; partition: number; old: VersionedObject; mode: ConflictMode },
): Promise<void> {
  const { bucket, key, partition, old, mode } = target;
  if (path === 'anti-entropy') {
    // An exchange it starts with every replica (a stale ring would make it do so).
    for (const replica of replicas) await cluster.drive(outsider.node.antiEntropyService.exchange(partition, replica.nodeId));
  } else if (path === 'hint delivery') {
    for (const replica of replicas) {
      // Stamped by the outsider's own clock, as its engine would (node clocks are skewed in simulation).
      await outsider.node.hintStore.add(replica.nodeId, encodeDataKey(bucket, key), old, mode, outsider.clock.nowMs(), false);
    }
    await cluster.drive(outsider.node.hintedHandoffService.deliverHints());
    expect(outsider.node.hintStore.pending, `seed ${cluster.seed}: the hints were delivered`).toBe(0);
  } else {
    const transport = cluster.network.transportFor(outsider.address);
    for (const replica of replicas) {
      const reply = await cluster.drive(
        transport.request(replica.address, { type: 'replica-put', bucket, key, object: old, mode, sync: false }, { timeoutMs: 1000 }),
      );
      expect(reply.type).toBe('replica-put-reply');
    }
  }
}

const cases = (['siblings', 'lww'] as const).flatMap((mode) =>
  (['anti-entropy', 'hint delivery', 'replica-put'] as const).flatMap((path) => seeds.map((seed) => [seed, mode, path] as const)),
);

describe('simulation: a reaped delete never comes back', () => {
  it.each(cases)('seed %i (%s): the old version pushed back by %s from a node outside the preference list is refused', async (seed, mode, path) => {
    const cluster = await SimCluster.start(seed, 4, reapConfig);
    try {
      const outsider = cluster.members[3] as SimMember;
      const bucket = bucketOf[mode];
      const { key, partition, replicas } = keyOutside(cluster, outsider, bucket);
      const old = await writeDeleteAndReap(cluster, replicas, bucket, key);
      // The outsider held the old version all along (say its clean-up push failed).
      await outsider.node.localReplica.merge(bucket, key, old, mode, false);
      await pushBack(cluster, outsider, replicas, path, { bucket, key, partition, old, mode });
      await expectStillDeleted(cluster, replicas, bucket, key, path);
      // (Anti-entropy answers the outsider with the reaped tombstone instead of asking for its copy.)
      if (path !== 'anti-entropy') {
        const refused = replicas.reduce((sum, member) => sum + member.node.antiEntropyService.status().staleVersionsRefused, 0);
        expect(refused, `seed ${seed}: refusals are counted`).toBeGreaterThan(0);
      }
    } finally {
      await cluster.stop();
    }
  });
});

describe('simulation: what a reaped tombstone leaves behind', () => {
  it.each(seeds)('seed %i: a key written again after its reap keeps only the new value when the old one is pushed back', async (seed) => {
    const cluster = await SimCluster.start(seed, 4, reapConfig);
    try {
      const outsider = cluster.members[3] as SimMember;
      const { key, replicas } = keyOutside(cluster, outsider, 'reap');
      const old = await writeDeleteAndReap(cluster, replicas, 'reap', key);
      // A blind write (no context: the key reads as missing), coordinated by another replica than
      // the first write, so its dot is not from the actor whose counter issued the old one.
      await cluster.drive(
        replicas[1]!.node.put({ bucket: 'reap', key, value: Buffer.from('again'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
      );
      const transport = cluster.network.transportFor(outsider.address);
      for (const replica of replicas)
        await cluster.drive(
          transport.request(replica.address, { type: 'replica-put', bucket: 'reap', key, object: old, mode: 'siblings', sync: false }, { timeoutMs: 1000 }),
        );
      // At once (before anti-entropy could mend anything) and after several sweeps.
      for (const member of replicas) expect(await localValues(member, 'reap', key), `seed ${seed}: ${key} on ${member.nodeId}, at once`).toEqual(['again']);
      await cluster.clock.advance(5000);
      for (const member of replicas) expect(await localValues(member, 'reap', key), `seed ${seed}: ${key} on ${member.nodeId}`).toEqual(['again']);
      const read = await cluster.drive(replicas[1]!.node.get('reap', key, { r: 'all' }));
      expect(read === undefined ? [] : liveSiblings(read).map((sibling) => Buffer.from(sibling.value).toString())).toEqual(['again']);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: the record of a reaped tombstone is forgotten after antiEntropy.reapedRetentionMs', async (seed) => {
    const cluster = await SimCluster.start(seed, 4, { ...reapConfig, antiEntropy: { ...reapConfig.antiEntropy, reapedRetentionMs: 3000 } });
    try {
      const { key, replicas } = keyOutside(cluster, cluster.members[3] as SimMember, 'reap');
      await writeDeleteAndReap(cluster, replicas, 'reap', key);
      const dataKey = encodeDataKey('reap', key);
      for (const member of replicas) expect(await member.node.localReplica.reapedBytes(dataKey), `seed ${seed}: remembered on ${member.nodeId}`).toBeDefined();
      await cluster.runUntil(
        async () => {
          for (const member of replicas) if ((await member.node.localReplica.reapedBytes(dataKey)) !== undefined) return false;
          return true;
        },
        30_000,
        'every replica forgot the reaped tombstone',
      );
      expect(replicas.every((member) => member.node.antiEntropyService.status().reapedRecordsForgotten >= 1)).toBe(true);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: replicas that restart after the reap still refuse the old version', async (seed) => {
    const cluster = await SimCluster.start(seed, 4, reapConfig);
    try {
      const outsider = cluster.members[3] as SimMember;
      const { key, partition, replicas } = keyOutside(cluster, outsider, 'reap');
      const old = await writeDeleteAndReap(cluster, replicas, 'reap', key);
      for (const replica of replicas) {
        await cluster.crash(replica);
        await cluster.restart(replica);
      }
      await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles after the restarts');
      await outsider.node.localReplica.merge('reap', key, old, 'siblings', false);
      await pushBack(cluster, outsider, replicas, 'anti-entropy', { bucket: 'reap', key, partition, old, mode: 'siblings' });
      await expectStillDeleted(cluster, replicas, 'reap', key, 'anti-entropy after restarts');
    } finally {
      await cluster.stop();
    }
  });
});

function settledWithout(cluster: SimCluster, gone: SimMember): boolean {
  const stayers = cluster.members.filter((member) => member !== gone);
  return stayers.every((member) => {
    const ring = member.node.gossiper.ring;
    return ring !== null && ring.next === null && !ring.owners.includes(gone.nodeId) && stayers.every((other) => ring.owners.includes(other.nodeId));
  });
}

describe('simulation: a removed node that restarts with old data does not undo a reaped delete', () => {
  it.each(seeds)('seed %i: keys deleted and reaped after `remove` stay deleted when the removed node comes back', async (seed) => {
    const cluster = await SimCluster.start(seed, 4, { ...reapConfig, handoff: { cleanupDelayMs: 2000 } });
    try {
      const lost = cluster.members[1] as SimMember;
      const stayers = cluster.members.filter((member) => member !== lost);
      const keys = Array.from({ length: 30 }, (_, index) => `r-${index}`);
      for (const key of keys)
        await cluster.drive(
          stayers[0]!.node.put({ bucket: 'reap', key, value: Buffer.from('alive'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
        );
      await cluster.crash(lost);
      await cluster.runUntil(() => !stayers[0]!.node.gossiper.isUp(lost.nodeId), 30_000, 'the lost node is judged down');
      stayers[0]!.node.removeMember(lost.nodeId);
      await cluster.runUntil(() => settledWithout(cluster, lost), 120_000, 'ring of the 3 others');
      for (const key of keys) {
        const read = await cluster.drive(stayers[0]!.node.get('reap', key, { r: 'all' }));
        await cluster.drive(
          stayers[0]!.node.delete({ bucket: 'reap', key, context: read === undefined ? undefined : readContext(read.clock), options: { w: 'all' } }),
        );
      }
      await cluster.runUntil(
        async () => {
          for (const member of stayers)
            for (const key of keys) if ((await member.node.localReplica.readBytes(encodeDataKey('reap', key))) !== undefined) return false;
          return true;
        },
        120_000,
        'every tombstone is reaped on the three others',
      );
      // The removed node comes back with every key still alive on its disk, and runs its background work.
      let stillHolding = 0;
      for (const key of keys) if ((await localValues(lost, 'reap', key)).length > 0) stillHolding += 1;
      expect(stillHolding, `seed ${seed}: the removed node still holds old versions`).toBeGreaterThan(0);
      await cluster.restart(lost);
      await cluster.clock.advance(30_000);
      // A removed id stays removed: the node learns it from gossip and moves no data, so the old
      // versions on its disk stay inert there, and no other replica or read ever sees them again.
      expect(lost.node.gossiper.ownStatus, `seed ${seed}: the node that came back knows it was removed`).toBe('removed');
      for (const key of keys) {
        for (const member of stayers) expect(await localValues(member, 'reap', key), `seed ${seed}: ${key} on ${member.nodeId}`).toEqual([]);
        const read = await cluster.drive(stayers[0]!.node.get('reap', key, { r: 'all' }));
        expect(read === undefined ? [] : liveSiblings(read), `seed ${seed}: a read of ${key}`).toEqual([]);
      }
    } finally {
      await cluster.stop();
    }
  });
});
