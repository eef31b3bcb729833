import { describe, expect, it } from 'vitest';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { type VersionedObject, isDeleted } from '../../src/core/versioning/versioned-object.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: a value written with a TTL reads as deleted on every replica once it has expired (each
 * by its own skewed clock), no read repair or anti-entropy exchange brings it back, a replica
 * that missed the write receives it through anti-entropy already expired, and after the
 * tombstone grace period the reaper removes it like a delete. Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 2);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 7000 + index);

const ttlConfig = (tombstoneGraceMs: number) => ({
  // Hints off, so a replica that missed the write can only get it from anti-entropy.
  hintedHandoff: { enabled: false },
  antiEntropy: { enabled: true, intervalMs: 500, tombstoneGraceMs, maxKeysPerSecond: 100_000 },
});

function replicasOf(cluster: SimCluster, bucket: string, key: string): SimMember[] {
  const ring = cluster.members[0]!.node.gossiper.ring!;
  const list = preferenceList(ring, partitionOf(bucket, key, ring.partitionCount), 3);
  return cluster.members.filter((member) => list.includes(member.nodeId));
}

/** The expiry of the one sibling stored on `member`, or undefined when it stores nothing. */
async function storedExpiry(member: SimMember, bucket: string, key: string): Promise<number | undefined> {
  const object = await member.node.getLocal(bucket, key);
  return object?.siblings[0]?.expiresAtMs;
}

async function expectDeletedEverywhere(cluster: SimCluster, replicas: SimMember[], bucket: string, key: string, when: string): Promise<void> {
  for (const member of replicas) {
    const local = await member.node.getLocal(bucket, key);
    expect(local === undefined || isDeleted(local, member.clock.nowMs()), `seed ${cluster.seed}, ${when}: ${key} on ${member.nodeId}`).toBe(true);
    const read: VersionedObject | undefined = await cluster.drive(member.node.get(bucket, key, { r: 'all' }));
    expect(read === undefined || isDeleted(read, member.clock.nowMs()), `seed ${cluster.seed}, ${when}: a read of ${key} through ${member.nodeId}`).toBe(true);
  }
}

describe('simulation: TTL', () => {
  it.each(seeds)('seed %i: an expired value reads as deleted everywhere, stays so through repair, and is reaped after grace', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, ttlConfig(2000));
    try {
      const [bucket, key] = ['ttl', 'session'];
      const replicas = replicasOf(cluster, bucket, key);
      const coordinator = replicas[0]!;
      await cluster.drive(
        coordinator.node.put({
          bucket,
          key,
          value: Buffer.from('short-lived'),
          contentType: 'text/plain',
          context: undefined,
          options: { w: 'all' },
          ttlSeconds: 1,
        }),
      );
      const expiries = await Promise.all(replicas.map(async (member) => storedExpiry(member, bucket, key)));
      expect(new Set(expiries).size, `seed ${seed}: every replica stores the same expiry`).toBe(1);
      expect(expiries[0]).toBeDefined();
      // Readable before it expires (each node's clock is off by up to 2 s, so ask the writer).
      const fresh = await cluster.drive(coordinator.node.get(bucket, key, { r: 'one' }));
      expect(fresh !== undefined && !isDeleted(fresh, coordinator.clock.nowMs()), `seed ${seed}: readable at once`).toBe(true);
      // Past the expiry plus the largest clock skew, but short of the grace period.
      await cluster.clock.advance(1000 + 2000 + 200);
      await expectDeletedEverywhere(cluster, replicas, bucket, key, 'after expiry, with read repair');
      const dataKey = encodeDataKey(bucket, key);
      for (const member of replicas) {
        expect(await storedExpiry(member, bucket, key), `seed ${seed}: repair kept the expiry on ${member.nodeId}`).toBe(expiries[0]);
      }
      await cluster.runUntil(
        async () => {
          for (const member of replicas) if ((await member.node.localReplica.readBytes(dataKey)) !== undefined) return false;
          return true;
        },
        60_000,
        `the expired ${bucket}/${key} is reaped on every replica`,
      );
      await cluster.clock.advance(3000);
      await expectDeletedEverywhere(cluster, replicas, bucket, key, 'after the reap');
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: a replica that missed the write gets it through anti-entropy, still expired', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, ttlConfig(600_000));
    try {
      const [bucket, key] = ['ttl', 'missed'];
      const replicas = replicasOf(cluster, bucket, key);
      const [coordinator, second, third] = replicas as [SimMember, SimMember, SimMember];
      cluster.network.partition([[coordinator.address, second.address], [third.address]]);
      await cluster.drive(
        coordinator.node.put({ bucket, key, value: Buffer.from('v'), contentType: 'text/plain', context: undefined, options: { w: 2 }, ttlSeconds: 1 }),
      );
      const expiry = await storedExpiry(coordinator, bucket, key);
      expect(await third.node.getLocal(bucket, key), `seed ${seed}: the third replica missed the write`).toBeUndefined();
      await cluster.clock.advance(4000);
      cluster.network.heal();
      await cluster.runUntil(async () => (await third.node.getLocal(bucket, key)) !== undefined, 60_000, `anti-entropy brings ${key} to ${third.nodeId}`);
      expect(await storedExpiry(third, bucket, key), `seed ${seed}: it arrives with its expiry`).toBe(expiry);
      await expectDeletedEverywhere(cluster, replicas, bucket, key, 'after anti-entropy');
    } finally {
      await cluster.stop();
    }
  });
});
