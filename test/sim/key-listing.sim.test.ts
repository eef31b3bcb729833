import { describe, expect, it } from 'vitest';
import { preferenceList } from '../../src/core/ring/ring.js';
import { readContext } from '../../src/core/versioning/context.js';
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
        const newKey = `${name(pages * 37 % 300)}-new`;
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

  it('names the partitions whose only replica did not answer', async () => {
    const cluster = await SimCluster.start(11, 3, config);
    try {
      const [first, , third] = cluster.members as [SimMember, SimMember, SimMember];
      await put(cluster, first, 'single', 'a');
      const ring = first.node.membership.ring!;
      const lost = Array.from({ length: ring.partitionCount }, (_, partition) => partition).filter((partition) => preferenceList(ring, partition, 1)[0] === third.nodeId);
      expect(lost.length).toBeGreaterThan(0);
      await cluster.crash(third);
      const failure = await cluster.drive(first.node.list({ bucket: 'single', limit: 10 }).then(() => undefined, (error: unknown) => error));
      expect(failure).toBeInstanceOf(KvError);
      expect((failure as KvError).code).toBe('KV_INSUFFICIENT_REPLICAS');
      expect((failure as KvError).details?.partitions).toEqual(lost);
    } finally {
      await cluster.stop();
    }
  });
});
