import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';
import type { Sibling, VersionedObject } from './versioned-object.js';

/**
 * The on-disk (and on-wire) encoding of a VersionedObject. The first byte is the format version,
 * so a later format can be read beside this one.
 *
 * v1: [1][clock entries]{node, counter}*[sibling count]{node, counter, flags, lastModifiedMs, contentType, value}*
 */
export const objectFormatVersion = 1;

const tombstoneFlag = 1;

/** Writes an object into an existing writer (used inside wire messages). */
export function writeObject(writer: ByteWriter, object: VersionedObject): void {
  writer.u8(objectFormatVersion);
  const entries = Object.entries(object.clock);
  writer.varint(entries.length);
  for (const [node, counter] of entries) writer.string(node).varint(counter);
  writer.varint(object.siblings.length);
  for (const sibling of object.siblings) {
    writer
      .string(sibling.dot.node)
      .varint(sibling.dot.counter)
      .u8(sibling.tombstone ? tombstoneFlag : 0)
      .f64(sibling.lastModifiedMs)
      .string(sibling.contentType)
      .bytes(sibling.value);
  }
}

/** Reads an object written by writeObject. */
export function readObject(reader: ByteReader): VersionedObject {
  const version = reader.u8();
  if (version !== objectFormatVersion) {
    throw new KvError('KV_STORAGE', `stored object has format version ${version}, this ringkv reads ${objectFormatVersion}; upgrade ringkv`);
  }
  const clock: Record<string, number> = {};
  const entryCount = reader.varint();
  for (let index = 0; index < entryCount; index++) clock[reader.string()] = reader.varint();
  const siblingCount = reader.varint();
  const siblings: Sibling[] = [];
  for (let index = 0; index < siblingCount; index++) {
    const node = reader.string();
    const counter = reader.varint();
    const flags = reader.u8();
    const lastModifiedMs = reader.f64();
    const contentType = reader.string();
    // Copy the value out so a stored object never pins the whole read buffer.
    const value = Buffer.from(reader.bytes());
    siblings.push({ dot: { node, counter }, value, contentType, lastModifiedMs, tombstone: (flags & tombstoneFlag) !== 0 });
  }
  return { clock, siblings };
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
  if (!reader.done()) throw new KvError('KV_STORAGE', 'trailing bytes after a stored object');
  return object;
}
