import type { BatchOperation, KeyRange, KeySpace } from '../ports/storage.js';
import { KvError } from '../util/errors.js';

/** The format version of a reaped record, first byte of its value. */
const reapedFormatVersion = 1;

/** Record of a reaped key: prefix, then the storage key. */
const recordPrefix = Buffer.from('reaped/k/', 'latin1');
/** The first key after every record. */
const recordEnd = Buffer.from('reaped/k0', 'latin1');
/** Expiry index: prefix, then the reap time (8 bytes, big-endian ms), then the storage key, so expired records are one range scan. */
const indexPrefix = Buffer.from('reaped/t/', 'latin1');
/** The first key after every index entry. */
const indexEnd = Buffer.from('reaped/t0', 'latin1');

function recordKey(dataKey: Uint8Array): Buffer {
  return Buffer.concat([recordPrefix, dataKey]);
}

function timeBytes(ms: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(BigInt(Math.max(0, Math.floor(ms))), 0);
  return bytes;
}

function indexKey(reapedAtMs: number, dataKey: Uint8Array): Buffer {
  return Buffer.concat([indexPrefix, timeBytes(reapedAtMs), dataKey]);
}

function encodeRecord(reapedAtMs: number, tombstoneBytes: Uint8Array): Buffer {
  const header = Buffer.alloc(9);
  header.writeUInt8(reapedFormatVersion, 0);
  header.writeDoubleBE(reapedAtMs, 1);
  return Buffer.concat([header, tombstoneBytes]);
}

function decodeRecord(value: Uint8Array): { reapedAtMs: number; tombstoneBytes: Buffer } {
  const bytes = Buffer.from(value);
  const version = bytes.readUInt8(0);
  if (version !== reapedFormatVersion)
    throw new KvError('KV_STORAGE', `reaped-tombstone record format ${version} is not readable by this ringkv; upgrade ringkv`);
  return { reapedAtMs: bytes.readDoubleBE(1), tombstoneBytes: bytes.subarray(9) };
}

/**
 * What a replica remembers of the tombstones it reaped: per key, the stored tombstone (its
 * version vector and tombstone dots, no value), for a bounded time after the reap
 * (`antiEntropy.reapedRetentionMs`). A version pushed later by a node that missed the delete (an
 * ex-owner whose clean-up push failed, a removed node that restarts with its old disk) is merged
 * against it, so what the tombstone had superseded stays superseded although the key itself is
 * gone. Kept in the meta space beside an expiry index, so forgetting is a range scan of the
 * expired entries only.
 */
export class ReapedTombstones {
  constructor(private readonly meta: KeySpace) {}

  /** Remembers the tombstone of a key being reaped now. */
  async remember(dataKey: Uint8Array, tombstoneBytes: Uint8Array, nowMs: number): Promise<void> {
    const key = recordKey(dataKey);
    const previous = await this.meta.get(key);
    const operations: BatchOperation[] = [];
    // A key reaped a second time keeps one record: the older index entry goes with it.
    if (previous !== undefined) operations.push({ type: 'del', key: indexKey(decodeRecord(previous).reapedAtMs, dataKey) });
    operations.push({ type: 'put', key, value: encodeRecord(nowMs, tombstoneBytes) });
    operations.push({ type: 'put', key: indexKey(nowMs, dataKey), value: Buffer.alloc(0) });
    await this.meta.batch(operations);
  }

  /** The stored bytes of the reaped tombstone of a key, or undefined when none is remembered. */
  async lookup(dataKey: Uint8Array): Promise<Uint8Array | undefined> {
    const value = await this.meta.get(recordKey(dataKey));
    return value === undefined ? undefined : decodeRecord(value).tombstoneBytes;
  }

  /**
   * The records of the keys in a data-key range (a partition's, for a backup), in key order: one
   * iterator, so one snapshot of the meta space.
   */
  async *recordsIn(range: KeyRange): AsyncGenerator<{ dataKey: Buffer; reapedAtMs: number; tombstoneBytes: Buffer }> {
    const upper = range.lt === undefined ? recordEnd : recordKey(range.lt);
    const gte = range.gte === undefined ? recordPrefix : recordKey(range.gte);
    for await (const [key, value] of this.meta.entries({ gte, lt: upper })) {
      yield { dataKey: Buffer.from(key).subarray(recordPrefix.length), ...decodeRecord(value) };
    }
  }

  /** Forgets up to `limit` records of keys reaped before `cutoffMs`; answers how many it forgot. */
  async forgetReapedBefore(cutoffMs: number, limit: number): Promise<number> {
    const upper = Buffer.concat([indexPrefix, timeBytes(cutoffMs)]);
    const expired: Buffer[] = [];
    for await (const [key] of this.meta.entries({ gte: indexPrefix, lt: upper.compare(indexEnd) < 0 ? upper : indexEnd, limit }))
      expired.push(Buffer.from(key));
    let forgotten = 0;
    for (const entry of expired) {
      const dataKey = entry.subarray(indexPrefix.length + 8);
      const reapedAtMs = Number(entry.readBigUInt64BE(indexPrefix.length));
      const record = await this.meta.get(recordKey(dataKey));
      // A key reaped again later has a newer record (and index entry): only this entry goes.
      const current = record !== undefined && Math.floor(decodeRecord(record).reapedAtMs) === reapedAtMs;
      await this.meta.batch(
        current
          ? [
              { type: 'del', key: entry },
              { type: 'del', key: recordKey(dataKey) },
            ]
          : [{ type: 'del', key: entry }],
      );
      if (current) forgotten += 1;
    }
    return forgotten;
  }
}
