import { decodeDataKey } from '../core/keys.js';
import type { BatchOperation, KeySpace, SpaceBatchOperation } from '../ports/storage.js';

/**
 * The per-node bucket index: for every stored key, an entry in the meta space keyed by
 * [prefix][bucket length u16][bucket][key] whose value is [live flag u8][ring position u32].
 * Data keys start with the ring position (so a partition is one range), which scatters a
 * bucket over the whole data space; this index keeps each bucket's keys together in byte
 * order, so a listing page reads only that bucket's entries after its cursor.
 *
 * Crash safety: the replica writes a stored version and its entry (live or dead) in one atomic
 * cross-space write (leaving the entry out when a live version replaces a live one, whose entry
 * already says live), and deletes an entry only after it removed the key. A crash in between
 * leaves an entry that says live while the data says otherwise, never the reverse, and listing
 * reads the object of every live entry before answering it.
 */

const entryPrefix = Buffer.from('bidx/', 'latin1');
/** Set once a full rebuild has finished, so a database written before the index existed is indexed once. */
const builtMarker = Buffer.from('bidx-built', 'latin1');
const liveFlag = 1;
const deadFlag = 0;

/** The bytes every entry of a bucket starts with. */
function bucketBase(bucket: string): Buffer {
  const bucketBytes = Buffer.from(bucket, 'utf8');
  const length = Buffer.alloc(2);
  length.writeUInt16BE(bucketBytes.length, 0);
  return Buffer.concat([entryPrefix, length, bucketBytes]);
}

/** The first byte string after every string that starts with `bytes`. */
function prefixEnd(bytes: Buffer): Buffer {
  const end = Buffer.from(bytes);
  for (let index = end.length - 1; index >= 0; index--) {
    if (end[index]! < 0xff) {
      end[index] = end[index]! + 1;
      return end.subarray(0, index + 1);
    }
  }
  // Unreachable: every entry starts with the ASCII prefix.
  return Buffer.concat([bytes, Buffer.from([0])]);
}

function entryKey(bucket: string, key: string): Buffer {
  return Buffer.concat([bucketBase(bucket), Buffer.from(key, 'utf8')]);
}

function entryValue(live: boolean, position: number): Buffer {
  const value = Buffer.alloc(5);
  value.writeUInt8(live ? liveFlag : deadFlag, 0);
  value.writeUInt32BE(position, 1);
  return value;
}

/** One entry met by a scan. */
export interface IndexEntry {
  readonly key: string;
  readonly live: boolean;
  /** The key's ring position (its partition follows from the partition count). */
  readonly position: number;
}

/** What one bounded scan of a bucket saw. */
export interface IndexScan {
  readonly entries: readonly IndexEntry[];
  /** True when the scan stopped at its budget: entries after the last one may exist. */
  readonly more: boolean;
}

/** The per-node, per-bucket index of stored keys in byte order (see the module comment). */
export class BucketIndex {
  /** Index entries read by scans, in total (a test's measure of the work a listing did). */
  entriesRead = 0;
  /** Index entries read by scans, per bucket scanned. */
  readonly entriesReadByBucket = new Map<string, number>();

  constructor(private readonly meta: KeySpace) {}

  /**
   * The meta-space operation that marks a key live or dead, for a caller that writes it in one
   * atomic batch with the key's data (which needs no ordering: both land or neither does).
   */
  entryOperation(dataKey: Uint8Array, live: boolean): SpaceBatchOperation {
    const { bucket, key, position } = decodeDataKey(dataKey);
    return { space: 'meta', type: 'put', key: entryKey(bucket, key), value: entryValue(live, position) };
  }

  /** Marks a key live (call before its live version is stored). */
  async markLive(dataKey: Uint8Array): Promise<void> {
    const { bucket, key, position } = decodeDataKey(dataKey);
    await this.meta.put(entryKey(bucket, key), entryValue(true, position));
  }

  /** Marks a key dead (call after its tombstone is stored). */
  async markDead(dataKey: Uint8Array): Promise<void> {
    const { bucket, key, position } = decodeDataKey(dataKey);
    await this.meta.put(entryKey(bucket, key), entryValue(false, position));
  }

  /** Forgets a key (call after it was removed from the data space). */
  async forget(dataKey: Uint8Array): Promise<void> {
    const { bucket, key } = decodeDataKey(dataKey);
    await this.meta.del(entryKey(bucket, key));
  }

  /**
   * Builds the index from the data space if it has never been built here: one scan, like the
   * Merkle build, in batches. `isLive` tells a live stored value from a tombstone.
   */
  async buildIfMissing(data: KeySpace, isLive: (bytes: Uint8Array) => boolean, batchSize = 1000): Promise<number> {
    if ((await this.meta.get(builtMarker)) !== undefined) return 0;
    let indexed = 0;
    let batch: BatchOperation[] = [];
    for await (const [dataKey, bytes] of data.entries()) {
      const { bucket, key, position } = decodeDataKey(dataKey);
      batch.push({ type: 'put', key: entryKey(bucket, key), value: entryValue(isLive(bytes), position) });
      indexed += 1;
      if (batch.length >= batchSize) {
        await this.meta.batch(batch);
        batch = [];
      }
    }
    if (batch.length > 0) await this.meta.batch(batch);
    await this.meta.put(builtMarker, Buffer.from([1]), { sync: true });
    return indexed;
  }

  /**
   * Reads at most `budget` entries of `bucket` in byte order of their keys: those after `after`
   * (exclusive) that start with `prefix`. Never reads another bucket's entries. Lazy: a caller
   * that stops early reads (and is counted for) only what it took.
   */
  async *entries(bucket: string, options: { readonly after?: string; readonly prefix?: string; readonly budget: number }): AsyncGenerator<IndexEntry> {
    const base = bucketBase(bucket);
    const prefixed = Buffer.concat([base, Buffer.from(options.prefix ?? '', 'utf8')]);
    // The smallest byte string after `after` is `after` followed by a zero byte.
    const afterBound = options.after === undefined ? undefined : Buffer.concat([base, Buffer.from(options.after, 'utf8'), Buffer.from([0])]);
    const gte = afterBound !== undefined && Buffer.compare(afterBound, prefixed) > 0 ? afterBound : prefixed;
    const lt = prefixEnd(prefixed);
    if (Buffer.compare(gte, lt) >= 0) return;
    for await (const [entry, value] of this.meta.entries({ gte, lt, limit: options.budget })) {
      this.entriesRead += 1;
      this.entriesReadByBucket.set(bucket, (this.entriesReadByBucket.get(bucket) ?? 0) + 1);
      const bytes = Buffer.from(value);
      yield { key: Buffer.from(entry).toString('utf8', base.length), live: bytes.readUInt8(0) === liveFlag, position: bytes.readUInt32BE(1) };
    }
  }

  /** Every entry `entries` yields, and whether the budget ended the scan (entries after the last one may exist). */
  async scan(bucket: string, options: { readonly after?: string; readonly prefix?: string; readonly budget: number }): Promise<IndexScan> {
    const entries: IndexEntry[] = [];
    for await (const entry of this.entries(bucket, options)) entries.push(entry);
    return { entries, more: entries.length >= options.budget };
  }
}
