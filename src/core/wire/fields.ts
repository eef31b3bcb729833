import { KvError } from '../../util/errors.js';
import { merkleFanout } from '../antientropy/merkle-tree.js';
import { readObject, writeObject } from '../versioning/object-codec.js';
import type { CausalContext, ContextDot } from '../versioning/context.js';
import { type VersionVector, newVector } from '../versioning/version-vector.js';
import type { ConflictMode, VersionedObject } from '../versioning/versioned-object.js';
import { decodeUtf8, type ByteReader, type ByteWriter } from './bytes.js';
import type { KeyDigest, StoredItem } from './messages.js';

/**
 * The field helpers the message table (message-table.ts) writes and reads its messages with:
 * hand-written byte-level code, each read checked against a named bound while it decodes, so a
 * malformed or hostile message is refused before any of it reaches the node's state.
 */

/**
 * A bound a message's reader checks, and which field of the message it bounds: `field` is a path
 * into the decoded message ('partition', 'update.add', 'roots[].partition'; `[]` is each element
 * of a list). `value` bounds a number, `count` the length of a list, `length` the UTF-8 bytes of
 * a string. The fuzz test (test/unit/peer-codec.fuzz.test.ts) probes every bound of every entry
 * through this path: at the bound it round-trips, one past it the reader refuses.
 */
export interface Limit {
  readonly field: string;
  readonly kind: 'value' | 'count' | 'length';
  readonly min: number;
  readonly max: number;
}

/** A number field within [min, max]. */
export function valueLimit(field: string, min: number, max: number): Limit {
  return { field, kind: 'value', min, max };
}

/** A list field of at most `max` elements. */
export function countLimit(field: string, max: number): Limit {
  return { field, kind: 'count', min: 0, max };
}

/** A string field of at most `max` UTF-8 bytes. */
export function lengthLimit(field: string, max: number): Limit {
  return { field, kind: 'length', min: 0, max };
}

/** The refusal of a message that breaks the layout or a bound: the peer's fault, KV_BAD_REQUEST. */
export function malformed(what: string): KvError {
  return new KvError('KV_BAD_REQUEST', `a peer message carries ${what}; run ringkv versions that share a protocol version on every node (docs/WIRE.md)`);
}

/** A varint within the limit, or KV_BAD_REQUEST naming the field. */
export function readValue(reader: ByteReader, limit: Limit): number {
  const value = reader.varint();
  if (value < limit.min || value > limit.max) throw malformed(`${limit.field} ${value} outside ${limit.min}..${limit.max}`);
  return value;
}

/** The length of a list, bounded, so a hostile count cannot make the reader loop or allocate without end. */
export function readCount(reader: ByteReader, limit: Limit): number {
  const count = reader.varint();
  if (count > limit.max) throw malformed(`${count} elements of ${limit.field}, over ${limit.max}`);
  return count;
}

/** A list of varints, each within `each`, at most `count.max` of them. */
export function readValues(reader: ByteReader, count: Limit, each: Limit): number[] {
  const length = readCount(reader, count);
  const values: number[] = [];
  for (let index = 0; index < length; index++) values.push(readValue(reader, each));
  return values;
}

export function writeValues(writer: ByteWriter, values: readonly number[]): void {
  writer.varint(values.length);
  for (const value of values) writer.varint(value);
}

/** The text of a string field's bytes, which must be valid UTF-8 (decodeUtf8 says why). */
export function utf8Text(bytes: Uint8Array, field: string, refuse: (what: string) => KvError = malformed): string {
  const buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = decodeUtf8(buffer, 0, buffer.length);
  if (text === null) throw refuse(`a ${field} that is not valid UTF-8`);
  return text;
}

/** A string of at most `limit.max` UTF-8 bytes, checked before it is decoded. */
export function readText(reader: ByteReader, limit: Limit): string {
  const bytes = reader.bytes();
  if (bytes.length > limit.max) throw malformed(`a ${limit.field} of ${bytes.length} bytes, over ${limit.max}`);
  return utf8Text(bytes, limit.field);
}

export function writeFlag(writer: ByteWriter, flag: boolean): void {
  writer.u8(flag ? 1 : 0);
}

/** A boolean: 0 or 1, anything else refused. */
export function readFlag(reader: ByteReader, field: string): boolean {
  const value = reader.u8();
  if (value > 1) throw malformed(`a ${field} flag of ${value}`);
  return value === 1;
}

export function writeMode(writer: ByteWriter, mode: ConflictMode): void {
  writer.u8(mode === 'lww' ? 1 : 0);
}

export function readMode(reader: ByteReader): ConflictMode {
  const value = reader.u8();
  if (value > 1) throw malformed(`conflict mode ${value}`);
  return value === 1 ? 'lww' : 'siblings';
}

/** The largest storage key: position, bucket length, bucket and key (the config caps bucket and key at 60,000 bytes each). */
export const maxDataKeyBytes = 6 + 2 * 65_536;

export function writeDataKey(writer: ByteWriter, dataKey: Uint8Array): void {
  writer.bytes(dataKey);
}

/** A storage key: [position u32][bucket length u16][bucket][key], checked so decodeDataKey can trust it. */
export function readDataKey(reader: ByteReader): Buffer {
  const bytes = reader.bytes();
  if (bytes.length < 6 || bytes.length > maxDataKeyBytes || 6 + bytes.readUInt16BE(4) > bytes.length) throw malformed('a malformed storage key');
  // A copy, so a kept key never pins the whole message buffer.
  return Buffer.from(bytes);
}

export function writeDataKeys(writer: ByteWriter, keys: readonly Uint8Array[]): void {
  writer.varint(keys.length);
  for (const key of keys) writeDataKey(writer, key);
}

export function readDataKeys(reader: ByteReader, count: Limit): Buffer[] {
  const length = readCount(reader, count);
  const keys: Buffer[] = [];
  for (let index = 0; index < length; index++) keys.push(readDataKey(reader));
  return keys;
}

/** An object inside a message; a bad format is the peer's fault here, not a storage failure. */
export function readWireObject(reader: ByteReader): VersionedObject {
  try {
    return readObject(reader);
  } catch (error) {
    if (error instanceof KvError && error.code === 'KV_STORAGE') throw malformed(`an unreadable object (${error.message})`);
    throw error;
  }
}

/** An object or null, behind a presence flag. */
export function writeOptionalObject(writer: ByteWriter, object: VersionedObject | null): void {
  writeFlag(writer, object !== null);
  if (object !== null) writeObject(writer, object);
}

export function readOptionalObject(reader: ByteReader, field: string): VersionedObject | null {
  return readFlag(reader, field) ? readWireObject(reader) : null;
}

export function writeItems(writer: ByteWriter, items: readonly StoredItem[]): void {
  writer.varint(items.length);
  for (const item of items) {
    writeDataKey(writer, item.dataKey);
    writeObject(writer, item.object);
  }
}

export function readItems(reader: ByteReader, count: Limit): StoredItem[] {
  const length = readCount(reader, count);
  const items: StoredItem[] = [];
  for (let index = 0; index < length; index++) items.push({ dataKey: readDataKey(reader), object: readWireObject(reader) });
  return items;
}

export function writeDigests(writer: ByteWriter, items: readonly KeyDigest[]): void {
  writer.varint(items.length);
  for (const item of items) {
    writeDataKey(writer, item.dataKey);
    writer.string(item.digest);
  }
}

export function readDigests(reader: ByteReader, count: Limit, digest: Limit): KeyDigest[] {
  const length = readCount(reader, count);
  const items: KeyDigest[] = [];
  for (let index = 0; index < length; index++) items.push({ dataKey: readDataKey(reader), digest: readText(reader, digest) });
  return items;
}

/** A 64-bit Merkle hash or key digest: 16 hex digits in memory, 8 bytes on the wire. */
export function writeHash(writer: ByteWriter, text: string): void {
  const bytes = Buffer.from(text, 'hex');
  if (bytes.length !== 8 || text.length !== 16)
    throw new KvError('KV_INTERNAL', `a Merkle hash must be 16 hex digits, not ${JSON.stringify(text.slice(0, 32))}`);
  writer.bytes(bytes);
}

export function readHash(reader: ByteReader): string {
  const bytes = reader.bytes();
  if (bytes.length !== 8) throw malformed(`a hash of ${bytes.length} bytes instead of 8`);
  return bytes.toString('hex');
}

/** The hashes of every branch, or of every leaf under a branch: exactly merkleFanout of them, no count on the wire. */
export function writeHashes(writer: ByteWriter, hashes: readonly string[]): void {
  if (hashes.length !== merkleFanout) throw new KvError('KV_INTERNAL', `a list of ${hashes.length} Merkle hashes instead of ${merkleFanout}`);
  for (const hash of hashes) writeHash(writer, hash);
}

export function readHashes(reader: ByteReader): string[] {
  const hashes: string[] = [];
  for (let index = 0; index < merkleFanout; index++) hashes.push(readHash(reader));
  return hashes;
}

export function writeVector(writer: ByteWriter, vector: VersionVector): void {
  const entries = Object.entries(vector);
  writer.varint(entries.length);
  for (const [node, counter] of entries) writer.string(node).varint(counter);
}

export function readVector(reader: ByteReader): VersionVector {
  const vector = newVector();
  const count = reader.varint();
  for (let index = 0; index < count; index++) vector[reader.string()] = reader.varint();
  return vector;
}

export function writeDot(writer: ByteWriter, dot: ContextDot): void {
  writer.string(dot.node).varint(dot.counter);
}

export function readDot(reader: ByteReader): ContextDot {
  return { node: reader.string(), counter: reader.varint() };
}

export function writeContext(writer: ByteWriter, context: CausalContext): void {
  writeVector(writer, context.vector);
  writer.varint(context.dots.length);
  for (const dot of context.dots) writeDot(writer, dot);
}

/** A causal context: its vector, then at most `dots.max` dots. */
export function readContext(reader: ByteReader, dots: Limit): CausalContext {
  const vector = readVector(reader);
  const count = readCount(reader, dots);
  const list: ContextDot[] = [];
  for (let index = 0; index < count; index++) list.push(readDot(reader));
  return { vector, dots: list };
}
