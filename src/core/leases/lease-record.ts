import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';

/**
 * Leases and ephemeral keys (README, "Leases and ephemeral keys"; docs/CONSENSUS.md, "Leases").
 * A lease is itself a consistent key: its record lives in the reserved consistent bucket
 * `leaseBucket` under the lease id, so granting, keeping alive, attaching a key and ending are
 * each a compare-and-set of that record, judged by the one Paxos path of consistent buckets.
 */

/** The reserved consistent bucket of lease records; users cannot name a bucket with U+0000. */
export const leaseBucket = '\u0000leases';

/** The most keys one lease holds (beyond it a PUT with the lease is 409 KV_LEASE_FULL). */
export const maxLeaseKeys = 1000;

/** The shortest and longest ttl a lease may be granted with, in seconds. */
export const minLeaseTtlSeconds = 1;
/** The longest ttl (one day): a holder that wants longer keeps the lease alive. */
export const maxLeaseTtlSeconds = 86_400;

/** A lease id: 16 lowercase hex digits, drawn by the granting node. */
export const leaseIdPattern = /^[0-9a-f]{16}$/;

/** One key attached to a lease. */
export interface LeaseKey {
  readonly bucket: string;
  readonly key: string;
}

/**
 * A lease's record. `refresh` grows with every keep-alive only: an expiry sweeper measures the
 * ttl from when it first saw a refresh number, so attaching keys or pruning (which also write the
 * record) never prolong a lease, and a keep-alive always does. `ending` is set by the first step
 * of a revoke or an expiry: from then on nothing attaches and no keep-alive succeeds, and whoever
 * sees it finishes the end (deletes the keys, then the record).
 */
export interface LeaseRecord {
  readonly ttlSeconds: number;
  readonly refresh: number;
  readonly ending: boolean;
  /** The keys attached, in attach order; a key rewritten without the lease since may still be listed until pruned. */
  readonly keys: readonly LeaseKey[];
}

/**
 * Layout, format 1 (house rule 6, docs/ARCHITECTURE.md#house-rules: versioned): u8 format,
 * varint ttl seconds, varint refresh, u8 ending, varint key count, then per key string bucket,
 * string key.
 */
export const leaseRecordFormat = 1;

/** The record bytes of a lease. */
export function encodeLeaseRecord(record: LeaseRecord): Uint8Array {
  const writer = new ByteWriter()
    .u8(leaseRecordFormat)
    .varint(record.ttlSeconds)
    .varint(record.refresh)
    .u8(record.ending ? 1 : 0)
    .varint(record.keys.length);
  for (const { bucket, key } of record.keys) writer.string(bucket).string(key);
  return writer.finish();
}

/** Decodes what encodeLeaseRecord wrote; anything else is KV_STORAGE. */
export function decodeLeaseRecord(bytes: Uint8Array): LeaseRecord {
  try {
    const reader = new ByteReader(bytes);
    const format = reader.u8();
    if (format !== leaseRecordFormat) throw new Error(`format ${format}, not ${leaseRecordFormat}`);
    const ttlSeconds = reader.varint();
    const refresh = reader.varint();
    const ending = reader.u8() === 1;
    const count = reader.varint();
    if (count > maxLeaseKeys) throw new Error(`${count} keys, over ${maxLeaseKeys}`);
    const keys: LeaseKey[] = [];
    for (let index = 0; index < count; index++) keys.push({ bucket: reader.string(), key: reader.string() });
    if (!reader.done()) throw new Error('trailing bytes');
    return { ttlSeconds, refresh, ending, keys };
  } catch (error) {
    throw new KvError('KV_STORAGE', `a lease record is malformed (${(error as Error).message}); run a ringkv version that knows its format`, { cause: error });
  }
}

/** A new lease's record: refresh 1, no keys. */
export function grantedLease(ttlSeconds: number): LeaseRecord {
  return { ttlSeconds, refresh: 1, ending: false, keys: [] };
}

/** Whether `key` of `bucket` is attached. */
export function holdsKey(record: LeaseRecord, bucket: string, key: string): boolean {
  return record.keys.some((entry) => entry.bucket === bucket && entry.key === key);
}

/** The record with `key` attached (unchanged when it already is); 'full' at maxLeaseKeys. */
export function attachKey(record: LeaseRecord, bucket: string, key: string): LeaseRecord | 'full' {
  if (holdsKey(record, bucket, key)) return record;
  if (record.keys.length >= maxLeaseKeys) return 'full';
  return { ...record, keys: [...record.keys, { bucket, key }] };
}

/** The record keeping only the keys `keep` says still belong to it (the others were rewritten without the lease or deleted). */
export function pruneKeys(record: LeaseRecord, keep: (entry: LeaseKey) => boolean): LeaseRecord {
  return { ...record, keys: record.keys.filter(keep) };
}

/**
 * What an expiry sweeper knows of one lease: the refresh number it last saw and its own
 * monotonic time (the sum of its sweep timers' intervals, never a wall clock) when it first saw
 * it. Rate drift is the only clock error this can suffer: no node's absolute time is read.
 */
export interface LeaseSighting {
  readonly refresh: number;
  readonly firstSeenAtMs: number;
}

/** The sighting after seeing `refresh` at monotonic time `nowMs`: the first time a refresh number is seen starts its ttl. */
export function sightLease(previous: LeaseSighting | undefined, refresh: number, nowMs: number): LeaseSighting {
  return previous !== undefined && previous.refresh === refresh ? previous : { refresh, firstSeenAtMs: nowMs };
}

/**
 * Whether a lease may be ended: the sweeper's own monotonic clock has run at least the ttl since
 * it first saw the refresh number it still sees. A keep-alive in between changes the refresh
 * number, so the compare-and-set that ends the lease (on the version read with it) fails.
 */
export function leaseExpired(sighting: LeaseSighting, ttlSeconds: number, nowMs: number): boolean {
  return nowMs - sighting.firstSeenAtMs >= ttlSeconds * 1000;
}
