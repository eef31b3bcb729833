import { describe, expect, it } from 'vitest';
import { decodeDataKey } from '../../src/core/keys.js';
import { readContext } from '../../src/core/versioning/context.js';
import { compareKeys } from '../../src/engine/key-listing.js';
import type { ListPage } from '../../src/engine/key-listing.js';
import { RecordingStorage, type SpaceName } from '../../src/sim/recording-storage.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal (issue 13): a listing of a large bucket in pages touches only that bucket's index, and
 * returns each key that stays live exactly once while writes go on. 4 simulated nodes (n_val 3)
 * on storage that reports every key read; bucket `listed` holds SIM_LISTING_KEYS keys (3,000 in
 * npm test; `npm run sim:listing-scale` runs 100,000 in pages of 1,000), three other buckets
 * hold keys too, named to sit right beside it in the index's byte order (`liste`, a prefix of
 * it; `listee`, the next name of the same length; `other`). Each page is driven together with
 * writes: new keys and rewrites in `listed`, writes to the other buckets.
 *
 * How it is measured: every storage read (a get, each key of a getMany, each entry a range scan
 * yields) is classified by its key: a meta-space key `bidx/<len><bucket><key>` is an index entry
 * of that bucket, a data-space key names its bucket after the ring position. Index reads of
 * another bucket are counted over the whole listing, writes included (writes never read the
 * index); data reads are counted per page, and checked to be of `listed` alone in a final pass
 * without writes (while writes go on, their own read-before-write reads other buckets' data).
 */

const keyCount = Number(process.env.SIM_LISTING_KEYS ?? 3000);
const pageSize = Number(process.env.SIM_LISTING_PAGE ?? 100);
const otherKeys = Math.max(100, Math.round(keyCount / 10));
const seed = Number(process.env.SIM_SEED ?? 4242);
const listed = 'listed';
const neighbours = ['liste', 'listee', 'other'];

const indexPrefix = Buffer.from('bidx/', 'latin1');

/** The bucket a key read belongs to, or a label for what else it is. */
function bucketOfRead(space: SpaceName, key: Buffer): string {
  if (space === 'data') return decodeDataKey(key).bucket;
  if (space === 'meta' && key.length >= 7 && key.subarray(0, indexPrefix.length).equals(indexPrefix)) {
    const length = key.readUInt16BE(indexPrefix.length);
    return key.toString('utf8', indexPrefix.length + 2, indexPrefix.length + 2 + length);
  }
  return `(${space})`;
}

/** Reads per space and bucket, summed over the nodes. */
class ReadTally {
  readonly index = new Map<string, number>();
  readonly data = new Map<string, number>();

  count(space: SpaceName, key: Buffer): void {
    const bucket = bucketOfRead(space, key);
    const target = space === 'data' ? this.data : space === 'meta' && !bucket.startsWith('(') ? this.index : undefined;
    target?.set(bucket, (target.get(bucket) ?? 0) + 1);
  }

  clear(): void {
    this.index.clear();
    this.data.clear();
  }
}

const name = (index: number): string => `k${index.toString().padStart(6, '0')}`;

async function putAll(cluster: SimCluster, writes: readonly { member: SimMember; bucket: string; key: string }[]): Promise<void> {
  for (let start = 0; start < writes.length; start += 500) {
    await cluster.drive(
      Promise.all(
        writes
          .slice(start, start + 500)
          .map(({ member, bucket, key }) =>
            member.node.put({ bucket, key, value: Buffer.from(key), contentType: 'text/plain', context: undefined, options: {} }),
          ),
      ),
      600_000,
    );
  }
}

describe('simulation: listing a large bucket', () => {
  it(`lists ${keyCount} keys in pages of ${pageSize} while writes go on: each live key once, and no other bucket's index read`, async () => {
    const tally = new ReadTally();
    let counting = false;
    const cluster = await SimCluster.start(
      seed,
      4,
      // No anti-entropy: its scans read every bucket's data, and would blur what the listing read.
      { antiEntropy: { enabled: false }, limits: { maxInFlightRequests: 100_000 } },
      {
        storage: () => {
          const storage = new RecordingStorage();
          storage.onRead((space, key) => {
            if (counting) tally.count(space, key);
          });
          return storage;
        },
      },
    );
    try {
      const members = cluster.members;
      const loadStart = performance.now();
      await putAll(
        cluster,
        Array.from({ length: keyCount }, (_, index) => ({ member: members[index % members.length]!, bucket: listed, key: name(index) })),
      );
      await putAll(
        cluster,
        neighbours.flatMap((bucket, offset) =>
          Array.from({ length: otherKeys }, (_, index) => ({ member: members[(index + offset) % members.length]!, bucket, key: name(index) })),
        ),
      );
      // Some keys deleted before the listing: they must never be listed.
      const deleted = new Set<string>();
      for (let index = 0; index < keyCount; index += 97) {
        const member = members[index % members.length]!;
        const read = await cluster.drive(member.node.get(listed, name(index), { r: 'all' }));
        await cluster.drive(
          member.node.delete({ bucket: listed, key: name(index), context: read === undefined ? undefined : readContext(read.clock), options: { w: 'all' } }),
        );
        deleted.add(name(index));
      }
      const loadMs = performance.now() - loadStart;

      const keys: string[] = [];
      const pages: { indexReads: number; dataReads: number; keys: number }[] = [];
      const written = new Set<string>();
      let after: string | undefined;
      let writeCount = 0;
      counting = true;
      const listStart = performance.now();
      for (;;) {
        tally.clear();
        const coordinator = members[pages.length % members.length]!;
        const writes = Array.from({ length: 8 }, (_, index) => {
          writeCount += 1;
          const bucket = index < 2 ? listed : neighbours[index % neighbours.length]!;
          // New keys in `listed` land anywhere in its order (before and after the cursor); the others rewrite existing keys.
          const key = index === 0 ? `${name((writeCount * 7919) % keyCount)}-new` : name((writeCount * 104_729) % Math.min(keyCount, otherKeys));
          if (bucket === listed) written.add(key);
          return members[(writeCount + index) % members.length]!.node.put({
            bucket,
            key,
            value: Buffer.from('again'),
            contentType: 'text/plain',
            context: undefined,
            options: {},
          });
        });
        const [page] = await cluster.drive(
          Promise.all([coordinator.node.list({ bucket: listed, limit: pageSize, ...(after === undefined ? {} : { after }) }) as Promise<ListPage>, ...writes]),
        );
        keys.push(...page.keys);
        pages.push({ indexReads: tally.index.get(listed) ?? 0, dataReads: tally.data.get(listed) ?? 0, keys: page.keys.length });
        for (const bucket of neighbours) expect(tally.index.get(bucket), `page ${pages.length}: the listing read ${bucket}'s index`).toBeUndefined();
        expect(
          [...tally.index.keys()].filter((bucket) => bucket !== listed),
          `page ${pages.length}: index reads outside ${listed}`,
        ).toEqual([]);
        if (page.next === null) break;
        after = page.next;
        expect(pages.length, 'the listing ends').toBeLessThan((keyCount / pageSize) * 3 + 10);
      }
      const listMs = performance.now() - listStart;

      // Each key live throughout is listed exactly once, in order; no deleted key; nothing of another bucket.
      expect(new Set(keys).size, 'a key listed twice').toBe(keys.length);
      expect([...keys].sort(compareKeys)).toEqual(keys);
      const listedSet = new Set(keys);
      const missing = Array.from({ length: keyCount }, (_, index) => name(index)).filter((key) => !deleted.has(key) && !listedSet.has(key));
      expect(missing, 'keys live throughout that the listing missed').toEqual([]);
      const unexpected = keys.filter((key) => (deleted.has(key) && !written.has(key)) || (!/^k\d{6}$/.test(key) && !written.has(key)));
      expect(unexpected, 'listed keys that were deleted or never written to the bucket').toEqual([]);

      // A pass without writes: every read, index or data, is of the listed bucket.
      tally.clear();
      let quietAfter: string | undefined;
      let quietPages = 0;
      for (;;) {
        const page: ListPage = await cluster.drive(
          members[0]!.node.list({ bucket: listed, limit: pageSize, ...(quietAfter === undefined ? {} : { after: quietAfter }) }),
        );
        quietPages += 1;
        if (page.next === null) break;
        quietAfter = page.next;
      }
      expect(Object.fromEntries(tally.index), 'index reads of a listing without writes').toEqual({ [listed]: tally.index.get(listed) });
      expect(Object.fromEntries(tally.data), 'data reads of a listing without writes').toEqual({ [listed]: tally.data.get(listed) });
      counting = false;

      const perPage = (field: 'indexReads' | 'dataReads'): string => {
        const values = pages.map((page) => page[field]);
        return `mean ${(values.reduce((sum, value) => sum + value, 0) / values.length).toFixed(0)}, max ${Math.max(...values)}`;
      };
      console.log(
        `listing ${keyCount} keys (${deleted.size} deleted before; ${otherKeys} keys in each of ${neighbours.join(', ')}), pages of ${pageSize}, 4 nodes, n_val 3: ` +
          `${keys.length} keys in ${pages.length} pages with ${writeCount} writes alongside; ` +
          `index entries of ${listed} read per page (all nodes) ${perPage('indexReads')}; data reads of ${listed} per page ${perPage('dataReads')}; ` +
          `index reads of other buckets 0; quiet pass ${quietPages} pages, ${tally.index.get(listed) ?? 0} index and ${tally.data.get(listed) ?? 0} data reads, all of ${listed}; ` +
          `load ${(loadMs / 1000).toFixed(1)} s, listing ${(listMs / 1000).toFixed(1)} s wall (${(listMs / pages.length).toFixed(1)} ms a page, simulated)`,
      );
    } finally {
      await cluster.stop();
    }
  }, 3_600_000);
});
