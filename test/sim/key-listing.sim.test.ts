import { describe, expect, it } from 'vitest';
import { preferenceList } from '../../src/core/ring/ring.js';
import { readContext } from '../../src/core/versioning/context.js';
import { isDeleted } from '../../src/core/versioning/versioned-object.js';
import { compareKeys } from '../../src/engine/key-listing.js';
import type { ListPage } from '../../src/engine/key-listing.js';
import { KvError } from '../../src/util/errors.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: a key listing is a coverage query over a real simulated cluster: 3 nodes, 2 buckets,
 * listing one bucket in pages returns every live key exactly once in byte order while writes go
 * on, no deleted key, and no node reads a single index entry of the other bucket; and a partition
 * whose replica does not answer fails the page with 503 KV_INSUFFICIENT_REPLICAS naming it.
 */

const config = { buckets: { listed: { nVal: 2 }, other: { nVal: 2 }, single: { nVal: 1, r: 1, w: 1 } } };

async function put(cluster: SimCluster, member: SimMember, bucket: string, key: string): Promise<void> {
  await cluster.drive(member.node.put({ bucket, key, value: Buffer.from(key), contentType: 'text/plain', context: undefined, options: {} }));
}

async function remove(cluster: SimCluster, member: SimMember, bucket: string, key: string): Promise<void> {
  const read = await cluster.drive(member.node.get(bucket, key, { r: 'all' }));
  await cluster.drive(member.node.delete({ bucket, key, context: read === undefined ? undefined : readContext(read.clock), options: { w: 'all' } }));
}

describe('simulation: key listing', () => {
  it.each([7, 8, 9])('seed %i: pages of one bucket list each live key once, deleted keys never, and read no other bucket', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, config);
    try {
      const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
      const name = (index: number): string => `k${index.toString().padStart(4, '0')}`;
      for (let index = 0; index < 300; index++) {
        await put(cluster, cluster.members[index % 3]!, 'listed', name(index));
        await put(cluster, cluster.members[(index + 1) % 3]!, 'other', name(index));
      }
      const deleted = new Set<string>();
      for (let index = 0; index < 300; index += 7) {
        await remove(cluster, second, 'listed', name(index));
        deleted.add(name(index));
      }
      for (const member of cluster.members) member.node.localReplica.bucketIndex.entriesReadByBucket.clear();

      const listed: string[] = [];
      const touched = new Set<string>();
      let after: string | undefined;
      let pages = 0;
      for (;;) {
        const page: ListPage = await cluster.drive(first.node.list({ bucket: 'listed', limit: 25, ...(after === undefined ? {} : { after }) }));
        listed.push(...page.keys);
        pages += 1;
        if (page.next === null) break;
        after = page.next;
        // Writes go on between pages: a new key and a rewrite, from another coordinator.
        const newKey = `${name((pages * 37) % 300)}-new`;
        touched.add(newKey);
        await put(cluster, third, 'listed', newKey);
        expect(pages).toBeLessThan(100);
      }
      expect(new Set(listed).size, `seed ${seed}: a key listed twice`).toBe(listed.length);
      expect([...listed].sort(compareKeys)).toEqual(listed);
      for (let index = 0; index < 300; index++) expect(listed.includes(name(index)), `seed ${seed}: ${name(index)}`).toBe(!deleted.has(name(index)));
      for (const key of listed) expect(key.startsWith('k')).toBe(true);
      const readByBucket = cluster.members.map((member) => Object.fromEntries(member.node.localReplica.bucketIndex.entriesReadByBucket));
      for (const counts of readByBucket) expect(counts.other, `seed ${seed}: a node read the other bucket's index`).toBeUndefined();
      // Every node answered for some partitions (n_val 2 of 3 nodes), so the merge was a real one.
      expect(readByBucket.filter((counts) => (counts.listed ?? 0) > 0).length).toBeGreaterThan(1);
      console.log(`seed ${seed}: ${listed.length} keys in ${pages} pages; index entries read per node: ${JSON.stringify(readByBucket)}`);
    } finally {
      await cluster.stop();
    }
  });

  it.each([7, 8, 9])('seed %i: an expired key is not listed once a read of it answers not found, through any node', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, config);
    try {
      const [first] = cluster.members as [SimMember, SimMember, SimMember];
      await cluster.drive(
        first.node.put({
          bucket: 'listed',
          key: 'lease',
          value: Buffer.from('x'),
          contentType: 'text/plain',
          context: undefined,
          options: { w: 'all' },
          ttlSeconds: 1,
        }),
      );
      await put(cluster, first, 'listed', 'stays');
      // Past the expiry by more than any node's clock is off (up to 2 s each way).
      await cluster.clock.advance(1000 + 4000 + 500);
      for (const member of cluster.members) {
        const read = await cluster.drive(member.node.get('listed', 'lease', { r: 'all' }));
        expect(read === undefined || isDeleted(read, member.clock.nowMs()), `seed ${seed}: a read of the expired key through ${member.nodeId}`).toBe(true);
        const page: ListPage = await cluster.drive(member.node.list({ bucket: 'listed', limit: 10 }));
        expect(page.keys, `seed ${seed}: the listing through ${member.nodeId}`).toEqual(['stays']);
      }
    } finally {
      await cluster.stop();
    }
  });

  it.each([7, 8, 9])('seed %i: a listing through a replica that was down during quorum writes and deletes lists exactly the live keys', async (seed) => {
    // Hints and anti-entropy off, so the replica that was down catches up on nothing by itself.
    const cluster = await SimCluster.start(seed, 3, {
      ...config,
      hintedHandoff: { enabled: false },
      antiEntropy: { enabled: false },
      buckets: { quorum: { nVal: 3 } },
    });
    try {
      const [first, , third] = cluster.members as [SimMember, SimMember, SimMember];
      const name = (index: number): string => `q${index.toString().padStart(3, '0')}`;
      const deleted = new Set<string>();
      for (let index = 0; index < 20; index++) {
        await cluster.drive(
          first.node.put({ bucket: 'quorum', key: name(index), value: Buffer.from('v'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
        );
      }
      await cluster.crash(third);
      // At the bucket's default w (a quorum, 2 of 3): acknowledged without the crashed replica.
      for (let index = 20; index < 60; index++) await put(cluster, first, 'quorum', name(index));
      for (let index = 0; index < 20; index += 3) {
        const read = await cluster.drive(first.node.get('quorum', name(index), {}));
        await cluster.drive(
          first.node.delete({ bucket: 'quorum', key: name(index), context: read === undefined ? undefined : readContext(read.clock), options: {} }),
        );
        deleted.add(name(index));
      }
      await cluster.restart(third);
      await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'the restarted node is up everywhere');
      const expected = Array.from({ length: 60 }, (_, index) => name(index)).filter((key) => !deleted.has(key));
      for (const member of cluster.members) {
        const listed: string[] = [];
        let after: string | undefined;
        for (let pages = 0; pages < 100; pages++) {
          const page: ListPage = await cluster.drive(member.node.list({ bucket: 'quorum', limit: 7, ...(after === undefined ? {} : { after }) }));
          listed.push(...page.keys);
          if (page.next === null) break;
          after = page.next;
        }
        expect(listed, `seed ${seed}: the listing through ${member.nodeId}`).toEqual(expected);
      }
    } finally {
      await cluster.stop();
    }
  });

  it('names the partitions whose only replica did not answer', async () => {
    const cluster = await SimCluster.start(11, 3, config);
    try {
      const [first, , third] = cluster.members as [SimMember, SimMember, SimMember];
      await put(cluster, first, 'single', 'a');
      const ring = first.node.gossiper.ring!;
      const lost = Array.from({ length: ring.partitionCount }, (_, partition) => partition).filter(
        (partition) => preferenceList(ring, partition, 1)[0] === third.nodeId,
      );
      expect(lost.length).toBeGreaterThan(0);
      await cluster.crash(third);
      const failure = await cluster.drive(
        first.node.list({ bucket: 'single', limit: 10 }).then(
          () => undefined,
          (error: unknown) => error,
        ),
      );
      expect(failure).toBeInstanceOf(KvError);
      expect((failure as KvError).code).toBe('KV_INSUFFICIENT_REPLICAS');
      expect((failure as KvError).details?.partitions).toEqual(lost);
    } finally {
      await cluster.stop();
    }
  });
});
