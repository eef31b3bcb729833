import { describe, expect, it } from 'vitest';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: the bucket properties of the founding node's config are the cluster's, on every node and
 * across restarts. They travel in the gossiped view and in the persisted view, both validated
 * field by field, so a field the validation does not know is dropped on the way: a bucket's
 * ttlSeconds set only on the founder must still make a write through another node expire, and
 * through the founder itself after it restarts from its persisted view.
 */

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [8100, 8101];

const bucket = 'sessions';

/** The expiry stamped on the version a write through `member` made. */
async function writeAndExpiry(cluster: SimCluster, member: SimMember, key: string): Promise<number | undefined> {
  await cluster.drive(member.node.put({ bucket, key, value: Buffer.from('token'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }));
  const read = await cluster.drive(member.node.get(bucket, key, { r: 'all' }));
  return read?.siblings[0]?.expiresAtMs;
}

describe('simulation: bucket properties spread from the founder', () => {
  it.each(seeds)('seed %i: a bucket ttlSeconds set on the founder applies to writes through other nodes and survives a restart', async (seed) => {
    // The founder alone has the bucket in its config; the others only the defaults (ttlSeconds 0).
    const cluster = await SimCluster.launch(seed, 0, {}, { clockSkewMs: 0 });
    try {
      const founder = await cluster.addMember({ buckets: { [bucket]: { ttlSeconds: 60, conflictMode: 'lww' } } });
      await cluster.addMember();
      await cluster.addMember();
      await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles');
      const other = cluster.members[1]!;
      expect(other.node.bucketProperties(bucket), `seed ${seed}: node2 took the founder's properties`).toMatchObject({ ttlSeconds: 60, conflictMode: 'lww' });

      const before = other.clock.nowMs();
      const expiry = await writeAndExpiry(cluster, other, 'through-node2');
      expect(expiry, `seed ${seed}: a write through node2 (whose config has no ttl) expires by the bucket's ttlSeconds`).toBeDefined();
      expect(expiry! - before).toBeGreaterThanOrEqual(60_000);
      expect(expiry! - before).toBeLessThan(70_000);

      // The founder's restart reads its persisted view, validated the same way as gossip.
      await cluster.crash(founder);
      await cluster.restart(founder);
      await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles after the restart');
      expect(founder.node.bucketProperties(bucket), `seed ${seed}: the founder kept the properties across its restart`).toMatchObject({ ttlSeconds: 60 });
      expect(await writeAndExpiry(cluster, founder, 'through-founder'), `seed ${seed}: a write through the restarted founder expires`).toBeDefined();
    } finally {
      await cluster.stop();
    }
  });
});
