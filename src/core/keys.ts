import { hash } from 'node:crypto';
import { assert } from '../util/assert.js';

/**
 * The storage layout of data keys: [ring position: 4 bytes big-endian][bucket length: 2 bytes]
 * [bucket utf-8][key utf-8]. The ring position comes first so that a partition of the ring is
 * one contiguous key range: handoff and Merkle rebuilds are a single range scan.
 */

/**
 * Positions of recently seen keys, by bucket then key: a request hashes its key on the coordinator
 * and again on each replica path. Two levels, so a lookup hashes the request's own bucket and key
 * strings (V8 keeps a string's hash once computed) instead of building and hashing their join.
 */
const recentPositions = new Map<string, Map<string, number>>();
let recentPositionCount = 0;
const recentPositionsLimit = 8192;

/** A key's place on the ring: the first 32 bits of SHA-1(bucket, 0x00, key), as Riak hashes {Bucket, Key} with SHA-1. */
export function ringPosition(bucket: string, key: string): number {
  let positions = recentPositions.get(bucket);
  const known = positions?.get(key);
  if (known !== undefined) return known;
  const position = hash('sha1', `${bucket}\u0000${key}`, 'buffer').readUInt32BE(0);
  // A bounded memo: cleared when full, which is cheaper than keeping LRU order per lookup.
  if (recentPositionCount >= recentPositionsLimit) {
    recentPositions.clear();
    recentPositionCount = 0;
    positions = undefined;
  }
  if (positions === undefined) {
    positions = new Map();
    recentPositions.set(bucket, positions);
  }
  positions.set(key, position);
  recentPositionCount += 1;
  return position;
}

/** The partition (0..partitionCount-1) that holds a ring position; partitionCount is a power of two. */
export function partitionOfPosition(position: number, partitionCount: number): number {
  return Math.floor(position / (2 ** 32 / partitionCount));
}

/** The partition of a bucket/key. */
export function partitionOf(bucket: string, key: string, partitionCount: number): number {
  return partitionOfPosition(ringPosition(bucket, key), partitionCount);
}

/** The storage key of a bucket/key. */
export function encodeDataKey(bucket: string, key: string): Buffer {
  const bucketBytes = Buffer.from(bucket, 'utf8');
  const keyBytes = Buffer.from(key, 'utf8');
  assert(bucketBytes.length < 65_536, 'bucket too long for the key layout');
  const out = Buffer.allocUnsafe(6 + bucketBytes.length + keyBytes.length);
  out.writeUInt32BE(ringPosition(bucket, key), 0);
  out.writeUInt16BE(bucketBytes.length, 4);
  bucketBytes.copy(out, 6);
  keyBytes.copy(out, 6 + bucketBytes.length);
  return out;
}

/** A decoded storage key. */
export interface DataKey {
  readonly position: number;
  readonly bucket: string;
  readonly key: string;
}

/** Decodes a storage key written by encodeDataKey. */
export function decodeDataKey(bytes: Uint8Array): DataKey {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assert(buffer.length >= 6, 'data key too short');
  const position = buffer.readUInt32BE(0);
  const bucketLength = buffer.readUInt16BE(4);
  const bucket = buffer.toString('utf8', 6, 6 + bucketLength);
  const key = buffer.toString('utf8', 6 + bucketLength);
  return { position, bucket, key };
}

/** The storage key range [gte, lt) of one partition; the last partition has no upper bound. */
export function partitionKeyRange(partition: number, partitionCount: number): { gte: Buffer; lt?: Buffer } {
  const width = 2 ** 32 / partitionCount;
  const gte = Buffer.alloc(4);
  gte.writeUInt32BE(partition * width, 0);
  if (partition === partitionCount - 1) return { gte };
  const lt = Buffer.alloc(4);
  lt.writeUInt32BE((partition + 1) * width, 0);
  return { gte, lt };
}
