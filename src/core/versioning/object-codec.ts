import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';
import type { DataTypeKind, Sibling, VersionedObject } from './versioned-object.js';
import { newVector } from './version-vector.js';

/**
 * The on-disk (and on-wire) encoding of a VersionedObject. The first byte is the format version,
 * so a later format can be read beside this one.
 *
 * v1: [1][clock entries]{node, counter}*[sibling count]{node, counter, flags, lastModifiedMs, contentType, value}*
 * v2: [2] as v1, but a sibling whose flags have bit 2 (expires) set has an f64 expiresAtMs right after lastModifiedMs.
 *
 * v3: [3][kind: 1 counter, 2 set] then as v2: the state of a data type (src/core/datatypes/).
 *
 * v2 is written only when some sibling has an expiry. An object without one keeps its v1 bytes, so
 * nodes of an older release (which read only v1) still read it during a rolling upgrade, and the
 * Merkle digests of anti-entropy (taken over the stored bytes) agree between old and new nodes
 * instead of repairing every key forever. Both versions are always read.
 */
export const objectFormatVersion = 2;

/** The format of objects without any expiry. */
const plainFormatVersion = 1;

/** The format of a data type's state; only such objects use it, so older nodes never meet it on plain keys. */
const dataTypeFormatVersion = 3;
const kindCodes = { counter: 1, set: 2 } as const;

const tombstoneFlag = 1;
const expiresFlag = 2;

/** Writes an object into an existing writer (used inside wire messages). */
export function writeObject(writer: ByteWriter, object: VersionedObject): void {
  const expiring = object.siblings.some((sibling) => sibling.expiresAtMs !== undefined);
  if (object.kind !== undefined) writer.u8(dataTypeFormatVersion).u8(kindCodes[object.kind]);
  else writer.u8(expiring ? objectFormatVersion : plainFormatVersion);
  const entries = Object.entries(object.clock);
  writer.varint(entries.length);
  for (const [node, counter] of entries) writer.string(node).varint(counter);
  writer.varint(object.siblings.length);
  for (const sibling of object.siblings) {
    writer
      .string(sibling.dot.node)
      .varint(sibling.dot.counter)
      .u8((sibling.tombstone ? tombstoneFlag : 0) | (sibling.expiresAtMs === undefined ? 0 : expiresFlag))
      .f64(sibling.lastModifiedMs);
    if (sibling.expiresAtMs !== undefined) writer.f64(sibling.expiresAtMs);
    writer.string(sibling.contentType).bytes(sibling.value);
  }
}

/** Reads an object written by writeObject. */
export function readObject(reader: ByteReader): VersionedObject {
  const version = reader.u8();
  if (version !== objectFormatVersion && version !== plainFormatVersion && version !== dataTypeFormatVersion) {
    throw new KvError(
      'KV_STORAGE',
      `stored object has format version ${version}, this ringkv reads ${plainFormatVersion} to ${dataTypeFormatVersion}; upgrade ringkv`,
    );
  }
  let kind: DataTypeKind | undefined;
  if (version === dataTypeFormatVersion) {
    const code = reader.u8();
    kind = code === kindCodes.counter ? 'counter' : code === kindCodes.set ? 'set' : undefined;
    if (kind === undefined) throw new KvError('KV_STORAGE', `stored data type has kind ${code}, this ringkv knows counter (1) and set (2); upgrade ringkv`);
  }
  const clock = newVector();
  const entryCount = reader.varint();
  for (let index = 0; index < entryCount; index++) clock[reader.string()] = reader.varint();
  const siblingCount = reader.varint();
  const siblings: Sibling[] = [];
  for (let index = 0; index < siblingCount; index++) {
    const node = reader.string();
    const counter = reader.varint();
    const flags = reader.u8();
    const lastModifiedMs = reader.f64();
    // v1 has no expiry field, so its flag is honoured only in v2.
    const expiresAtMs = version !== plainFormatVersion && (flags & expiresFlag) !== 0 ? reader.f64() : undefined;
    const contentType = reader.string();
    // Copy the value out so a stored object never pins the whole read buffer.
    const value = Buffer.from(reader.bytes());
    const tombstone = (flags & tombstoneFlag) !== 0;
    siblings.push(
      expiresAtMs === undefined
        ? { dot: { node, counter }, value, contentType, lastModifiedMs, tombstone }
        : { dot: { node, counter }, value, contentType, lastModifiedMs, tombstone, expiresAtMs },
    );
  }
  return kind === undefined ? { clock, siblings } : { clock, siblings, kind };
}

/** Encodes an object as a standalone value. */
export function encodeObject(object: VersionedObject): Buffer {
  const writer = new ByteWriter();
  writeObject(writer, object);
  return writer.finish();
}

/** Decodes a standalone value written by encodeObject. */
export function decodeObject(bytes: Uint8Array): VersionedObject {
  const reader = new ByteReader(bytes);
  const object = readObject(reader);
  if (!reader.done())
    throw new KvError(
      'KV_STORAGE',
      'a stored object has trailing bytes: this copy is damaged or was written by another ringkv version; run the same ringkv version on every node, or restore the data directory from a backup',
    );
  return object;
}
