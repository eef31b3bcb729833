import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { encodeDataKey } from '../../src/core/keys.js';
import { createRing } from '../../src/core/ring/ring.js';
import { emptyContext, readContext } from '../../src/core/versioning/context.js';
import { decodeObject } from '../../src/core/versioning/object-codec.js';
import { type VersionedObject, applyWrite, emptyObject, isDeleted } from '../../src/core/versioning/versioned-object.js';
import type { ListKeysReply } from '../../src/core/wire/messages.js';
import { BucketIndex } from '../../src/engine/bucket-index.js';
import { type ListPage, answerListKeys, compareKeys, listKeys, mergePages, versionOnly } from '../../src/engine/key-listing.js';
import { Replica } from '../../src/engine/replica.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';

/**
 * Goal: the bucket index keeps each bucket's keys in byte order apart from every other bucket, a
 * page reads only the bucket's entries after its cursor, tombstones and removed keys are not
 * listed, the merge of several nodes' answers never skips a key, and a 100,000-key listing in
 * pages of 1,000 returns every live key exactly once while writes go on.
 */

async function replicaOnMemory(): Promise<{ replica: Replica; storage: MemoryStorage }> {
  const storage = new MemoryStorage();
  await storage.open();
  return { replica: new Replica(storage, 'n1', new SeededRandom(1)), storage };
}

/** A write (or delete) that follows a read of the key, so it supersedes what was there. */
async function write(replica: Replica, bucket: string, key: string, tombstone = false): Promise<void> {
  const before = await replica.read(bucket, key);
  const context = before === undefined ? emptyContext : readContext(before.clock);
  await replica.coordinateWrite(
    bucket,
    key,
    { value: Buffer.from(tombstone ? '' : key), contentType: 'text/plain', tombstone, context, nowMs: 1 },
    'siblings',
    false,
  );
}

/** Lists a whole bucket through the coverage coordinator of a one-node ring, page by page. */
async function listAll(
  replica: Replica,
  bucket: string,
  limit: number,
  between: (page: ListPage) => Promise<void> = async () => undefined,
  prefix?: string,
): Promise<string[]> {
  const ring = createRing(8, ['n1']);
  const deps = {
    selfId: 'n1',
    ring,
    nVal: 1,
    mode: 'siblings',
    nowMs: 1,
    isUp: () => true,
    timeoutMs: 1000,
    send: async (_node: string, request: Parameters<typeof answerListKeys>[1]) =>
      answerListKeys({ index: replica.bucketIndex, replica, partitionCount: () => 8 }, request),
  };
  const listed: string[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 100_000; pages++) {
    const page = await listKeys(deps as never, { bucket, limit, ...(after === undefined ? {} : { after }), ...(prefix === undefined ? {} : { prefix }) });
    listed.push(...page.keys);
    if (page.next === null) return listed;
    after = page.next;
    await between(page);
  }
  throw new Error('the listing never ended');
}

describe('bucket index', () => {
  it('scans one bucket in byte order, after a cursor and within a prefix, reading no other bucket', async () => {
    const { storage } = await replicaOnMemory();
    const index = new BucketIndex(storage.meta);
    for (const [bucket, key] of [
      ['b', 'z'],
      ['b', 'a'],
      ['b', 'é'],
      ['b', 'ab'],
      ['bb', 'a'],
      ['a', 'q'],
      ['b', 'b'],
      ['b', 'a\u0000'],
    ] as const)
      await index.markLive(encodeDataKey(bucket, key));
    const all = await index.scan('b', { budget: 100 });
    expect(all.entries.map((entry) => entry.key)).toEqual(['a', 'a\u0000', 'ab', 'b', 'z', 'é']);
    expect(all.more).toBe(false);
    expect((await index.scan('b', { after: 'a', budget: 100 })).entries.map((entry) => entry.key)).toEqual(['a\u0000', 'ab', 'b', 'z', 'é']);
    expect((await index.scan('b', { prefix: 'a', budget: 100 })).entries.map((entry) => entry.key)).toEqual(['a', 'a\u0000', 'ab']);
    expect((await index.scan('b', { prefix: 'a', after: 'a\u0000', budget: 100 })).entries.map((entry) => entry.key)).toEqual(['ab']);
    expect((await index.scan('b', { prefix: 'a', after: 'zz', budget: 100 })).entries).toEqual([]);
    const bounded = await index.scan('b', { budget: 2 });
    expect(bounded).toMatchObject({ more: true, entries: [{ key: 'a' }, { key: 'a\u0000' }] });
    expect(index.entriesReadByBucket.get('bb')).toBeUndefined();
    expect(index.entriesReadByBucket.get('a')).toBeUndefined();
  });

  it('is kept by the replica: tombstones are marked dead, removed keys are forgotten, and a rebuild from the data space agrees', async () => {
    const { replica, storage } = await replicaOnMemory();
    for (const key of ['k1', 'k2', 'k3']) await write(replica, 'b', key);
    await write(replica, 'b', 'k2', true);
    const removed = encodeDataKey('b', 'k3');
    expect(await replica.remove(removed, (await replica.readBytes(removed))!)).toBe(true);
    const scan = await replica.bucketIndex.scan('b', { budget: 10 });
    expect(scan.entries.map((entry) => [entry.key, entry.live])).toEqual([
      ['k1', true],
      ['k2', false],
    ]);
    expect(await listAll(replica, 'b', 10)).toEqual(['k1']);
    // A database from before the index: a fresh index over the same data builds once and agrees.
    const fresh = new MemoryStorage();
    await fresh.open();
    const index = new BucketIndex(fresh.meta);
    expect(await index.buildIfMissing(storage.data, (bytes) => !isDeleted(decodeObject(bytes)))).toBe(2);
    expect(await index.buildIfMissing(storage.data, () => true)).toBe(0);
    expect((await index.scan('b', { budget: 10 })).entries.map((entry) => [entry.key, entry.live])).toEqual([
      ['k1', true],
      ['k2', false],
    ]);
  });

  it('lists a live entry whose data is a tombstone (a crash between the two writes) as absent', async () => {
    const { replica } = await replicaOnMemory();
    await write(replica, 'b', 'gone', true);
    await replica.bucketIndex.markLive(encodeDataKey('b', 'gone'));
    expect(await listAll(replica, 'b', 10)).toEqual([]);
  });
});

describe('merging the nodes of a coverage query', () => {
  const written = (value: string, base = emptyObject, tombstone = false): VersionedObject =>
    versionOnly(
      applyWrite(base, 'n1.1', { value: Buffer.from(value), contentType: 'text/plain', tombstone, context: readContext(base.clock), nowMs: 1 }, 'siblings'),
    );
  const live = written('v');
  const reply = (keys: string[], more: boolean, scannedTo = keys[keys.length - 1] ?? ''): ListKeysReply => ({
    type: 'list-keys-reply',
    entries: keys.map((key) => ({ key, version: live })),
    more,
    scannedTo,
  });
  const merge = (replies: ListKeysReply[], limit: number): ListPage => mergePages(replies, limit, 'siblings', 100);

  it('stops at the lowest position a node may still have keys after, so no key is skipped', () => {
    expect(merge([reply(['a', 'c', 'e'], true), reply(['b', 'd'], false)], 10)).toEqual({ keys: ['a', 'b', 'c', 'd', 'e'], next: 'e' });
    expect(merge([reply(['a', 'c'], true, 'c'), reply(['b', 'd', 'f'], false)], 10)).toEqual({ keys: ['a', 'b', 'c'], next: 'c' });
    // A node that read its whole budget of other partitions' entries ends the page early, with its scan position as the cursor.
    expect(merge([reply([], true, 'm'), reply(['b', 'x'], false)], 10)).toEqual({ keys: ['b'], next: 'm' });
    expect(merge([reply(['a', 'b'], false), reply(['c'], false)], 2)).toEqual({ keys: ['a', 'b'], next: 'b' });
    expect(merge([reply(['a', 'b'], false), reply([], false)], 2)).toEqual({ keys: ['a', 'b'], next: null });
    expect(['é', 'z', 'a'].sort(compareKeys)).toEqual(['a', 'z', 'é']);
  });

  it("merges each key's versions from the replicas asked: a newer delete hides a stale live copy, a write one replica missed is listed", () => {
    const deleted = written('', live, true);
    const stale: ListKeysReply = { type: 'list-keys-reply', entries: [{ key: 'gone', version: live }], more: false, scannedTo: 'gone' };
    const current: ListKeysReply = {
      type: 'list-keys-reply',
      entries: [
        { key: 'gone', version: deleted },
        { key: 'new', version: live },
      ],
      more: false,
      scannedTo: 'new',
    };
    expect(merge([stale, current], 10)).toEqual({ keys: ['new'], next: null });
    expect(merge([current, stale], 10)).toEqual({ keys: ['new'], next: null });
    const expiring = versionOnly(
      applyWrite(
        emptyObject,
        'n1.1',
        { value: Buffer.from('v'), contentType: 'text/plain', tombstone: false, context: emptyContext, nowMs: 1, ttlSeconds: 1 },
        'siblings',
      ),
    );
    const lease: ListKeysReply = { type: 'list-keys-reply', entries: [{ key: 'lease', version: expiring }], more: false, scannedTo: 'lease' };
    expect(mergePages([lease], 10, 'siblings', 1000)).toEqual({ keys: ['lease'], next: null });
    expect(mergePages([lease], 10, 'siblings', 1001)).toEqual({ keys: [], next: null });
  });
});

describe('a listing of 100,000 keys in pages of 1,000 while writes go on', () => {
  it('returns every key that stayed live exactly once, no deleted key, and reads only that bucket', { timeout: 300_000 }, async () => {
    const { replica } = await replicaOnMemory();
    const keyCount = 100_000;
    const name = (index: number): string => `key-${index.toString().padStart(6, '0')}`;
    for (let index = 0; index < keyCount; index++) await write(replica, 'listed', name(index));
    for (let index = 0; index < 20_000; index++) await write(replica, 'other', name(index));
    // Every tenth key is deleted before the listing starts.
    for (let index = 0; index < keyCount; index += 10) await write(replica, 'listed', name(index), true);
    const changedDuringListing = new Set<string>();
    let page = 0;
    const listed = await listAll(replica, 'listed', 1000, async () => {
      // Between pages: a new key, a delete of a live key, a rewrite; all over the key space.
      page += 1;
      const at = (page * 7919) % keyCount;
      for (const key of [`${name(at)}-new`, name(at + 1), name(at + 2)]) changedDuringListing.add(key);
      await write(replica, 'listed', `${name(at)}-new`);
      await write(replica, 'listed', name(at + 1), true);
      await write(replica, 'listed', name(at + 2));
    });
    expect(new Set(listed).size).toBe(listed.length);
    expect([...listed].sort(compareKeys)).toEqual(listed);
    const listedSet = new Set(listed);
    for (let index = 0; index < keyCount; index++) {
      const key = name(index);
      if (changedDuringListing.has(key)) continue;
      expect(listedSet.has(key), key).toBe(index % 10 !== 0);
    }
    const read = replica.bucketIndex.entriesReadByBucket;
    expect(read.get('other')).toBeUndefined();
    // Each entry of the bucket is read about once: the pages' scans do not overlap.
    const entries = keyCount + 3 * page;
    expect(read.get('listed')).toBeLessThanOrEqual(entries);
    console.log(
      `listing: ${listed.length} keys in ${page + 1} pages; index entries read: listed=${read.get('listed')}, other=${read.get('other') ?? 0}; bucket entries ${entries}`,
    );
  });
});
