import { KvError } from '../../util/errors.js';
import { merkleFanout, merkleLeafCount } from '../antientropy/merkle-tree.js';
import { readObject, writeObject } from '../versioning/object-codec.js';
import { type CausalContext, type ContextDot, maxContextDots } from '../versioning/context.js';
import type { VersionVector } from '../versioning/version-vector.js';
import { type ConflictMode, maxTtlSeconds } from '../versioning/versioned-object.js';
import { ByteReader, ByteWriter } from './bytes.js';
import { decodeControlPayload, decodeViewState, encodeControlPayload, encodeViewState } from './state-codec.js';
import type { CoordinatePutRequest, KeyDigest, ListedKey, PeerReply, PeerRequest, StoredItem } from './messages.js';
import type { Precondition } from '../versioning/preconditions.js';
import type { DataTypeUpdate } from '../datatypes/data-type.js';

/**
 * The binary encoding of peer traffic. A body is one batch: [protocol version][count]{message}*,
 * so that concurrent messages to the same peer travel in one HTTP request. Each message starts
 * with a one-byte tag. Tags are append-only (house rule 6, docs/ARCHITECTURE.md#house-rules): a new message gets a new tag and an
 * old tag never changes meaning, so nodes of neighbouring versions still understand each other.
 */
export const wireProtocolVersion = 1;

/**
 * The peer protocol versions a framed connection's handshake agrees on (src/core/wire/frames.ts).
 * They choose how gossip state and control payloads are written: version 1 as JSON text (tags 4
 * and 5), version 2 in binary (tags 40 and 41, src/core/wire/state-codec.ts). Every version
 * reads both, so a node only writes what its peer agreed to read. The HTTP peer route has no
 * handshake and stays on version 1, which nodes from before the binary forms understand.
 */
export const peerProtocolVersions = { jsonState: 1, binaryState: 2 } as const;

/** The version the simulated transport and callers that name none write. */
export const latestPeerProtocolVersion = peerProtocolVersions.binaryState;

/** The longest control operation name (they are short words such as 'handoff-held'). */
const maxOperationBytes = 256;

/** The most messages one batch may carry, so a hostile body cannot make a node allocate without bound. */
export const maxBatchMessages = 4096;

/**
 * Bounds every decoded message is checked against, so a malformed or hostile message is refused
 * while it is decoded, before any of it reaches the node's state. Senders stay inside them.
 */
export const wireLimits = {
  /** The largest partition number (the config allows at most 65,536 partitions). */
  maxPartition: 65_535,
  /** Keys per handoff page (the config's handoff.batchSize is at most 10,000). */
  maxPageKeys: 10_000,
  /** The largest byte budget a page request may ask for; a page still carries one object beyond it. */
  maxPageBytes: 256 * 1024 * 1024,
  /** Objects per page or push. */
  maxItems: 10_000,
  /** Keys (with digests) per anti-entropy key comparison, and keys in its answer. */
  maxKeys: 65_536,
  /** A storage key: position, bucket length, bucket and key (the config caps bucket and key at 60,000 bytes each). */
  maxDataKeyBytes: 6 + 2 * 65_536,
  /** Keys per listing page (the HTTP edge allows limit 1..10,000). */
  maxListKeys: 10_000,
  /** A key or cursor in a listing (the config caps keys at 60,000 bytes). */
  maxListKeyLength: 65_536,
  /** A digest's text (16 hex digits today). */
  maxDigestLength: 64,
  /** Elements added or removed by one data type update (the HTTP body limit keeps real ones far below). */
  maxSetUpdateElements: 1_000_000,
} as const;

/**
 * Tags are append-only: 6 to 9 came with binary handoff and anti-entropy pages; coordinate-put
 * moved to 10 when its context gained dots (and its reply to 10 when it gained the created
 * dot). The old tags 2 are still read: a context without dots, a reply without a dot.
 * 50 to 53 are anti-entropy's summary, leaf-hash, digest and reap questions in binary; they
 * replace its JSON control operations, which are still answered for older nodes.
 * list-keys moved to 12 when its reply gained each key's version (a listing merges r replicas'
 * versions); an older node refuses tag 12 as unknown, so a mixed cluster's listing answers 503
 * rather than a page judged from one replica.
 */
const requestTags = {
  'replica-get': 1,
  'coordinate-put': 10,
  'replica-put': 3,
  gossip: 4,
  control: 5,
  'handoff-fetch': 6,
  'ae-keys': 7,
  'ae-fetch': 8,
  'ae-push': 9,
  // 11 was list-keys with keys only in its reply; it is neither written nor read any more.
  'list-keys': 12,
  // 30-39 are the data types' (src/core/datatypes/).
  'dt-update': 30,
  'ae-summary': 50,
  'ae-leaves': 51,
  'ae-digest': 52,
  'ae-reap': 53,
} as const;
const legacyCoordinatePutTag = 2;
/**
 * A coordinate-put with options, tag 20: tag 10's fields, then a flags byte (1: a TTL in seconds
 * follows; 2: a precondition, If-None-Match or If-Match, and the read it is checked against
 * follow). A plain write keeps tag 10 and its bytes, so it stays readable by older nodes; an
 * older node refuses tag 20 as unknown rather than storing a write without its expiry or check.
 */
const coordinatePutWithOptionsTag = 20;
/**
 * Gossip and control in binary (protocol version 2), tags 40 and 41 of requests and replies:
 * gossip is [bytes: the view in state-codec's layout], control [operation][bytes: the payload]
 * and its reply [bytes: the payload]. Tags 4 and 5 (JSON text) stay readable.
 */
const binaryGossipTag = 40;
const binaryControlTag = 41;
const ttlOption = 1;
const preconditionOption = 2;
const replyTags = {
  'replica-get-reply': 1,
  'coordinate-put-reply': 10,
  'replica-put-reply': 3,
  'gossip-reply': 4,
  'control-reply': 5,
  error: 6,
  'object-page': 7,
  'ae-keys-reply': 8,
  'ae-push-reply': 9,
  'list-keys-reply': 12,
  'dt-update-reply': 30,
  'ae-summary-reply': 50,
  'ae-leaves-reply': 51,
  'ae-digest-reply': 52,
  'ae-reap-reply': 53,
} as const;
const legacyCoordinatePutReplyTag = 2;

/** The most dots a forwarded context may carry (the HTTP edge allows no more). */
const maxWireContextDots = maxContextDots;

function malformed(what: string): KvError {
  return new KvError('KV_BAD_REQUEST', `a peer message carries ${what}; run the same ringkv version on every node`);
}

/** A varint within [min, max], or KV_BAD_REQUEST naming the field. */
function readBounded(reader: ByteReader, field: string, min: number, max: number): number {
  const value = reader.varint();
  if (value < min || value > max) throw malformed(`${field} ${value} outside ${min}..${max}`);
  return value;
}

/** A count of list elements, bounded, so a hostile count cannot make the reader loop or allocate without end. */
function readCount(reader: ByteReader, field: string, max: number): number {
  return readBounded(reader, `a count of ${field}`, 0, max);
}

function writeDataKey(writer: ByteWriter, dataKey: Uint8Array): void {
  writer.bytes(dataKey);
}

/** A storage key: [position u32][bucket length u16][bucket][key], checked so decodeDataKey can trust it. */
function readDataKey(reader: ByteReader): Buffer {
  const bytes = reader.bytes();
  if (bytes.length < 6 || bytes.length > wireLimits.maxDataKeyBytes || 6 + bytes.readUInt16BE(4) > bytes.length) throw malformed('a malformed storage key');
  // A copy, so a kept key never pins the whole message buffer.
  return Buffer.from(bytes);
}

function writeItems(writer: ByteWriter, items: readonly StoredItem[]): void {
  writer.varint(items.length);
  for (const item of items) {
    writeDataKey(writer, item.dataKey);
    writeObject(writer, item.object);
  }
}

function readItems(reader: ByteReader): StoredItem[] {
  const count = readCount(reader, 'objects', wireLimits.maxItems);
  const items: StoredItem[] = [];
  for (let index = 0; index < count; index++) items.push({ dataKey: readDataKey(reader), object: readWireObject(reader) });
  return items;
}

/** An object inside a message; a bad format is the peer's fault here, not a storage failure. */
function readWireObject(reader: ByteReader): ReturnType<typeof readObject> {
  try {
    return readObject(reader);
  } catch (error) {
    if (error instanceof KvError && error.code === 'KV_STORAGE') throw malformed(`an unreadable object (${error.message})`);
    throw error;
  }
}

function writeKeys(writer: ByteWriter, keys: readonly Uint8Array[]): void {
  writer.varint(keys.length);
  for (const key of keys) writeDataKey(writer, key);
}

function readKeys(reader: ByteReader): Buffer[] {
  const count = readCount(reader, 'keys', wireLimits.maxKeys);
  const keys: Buffer[] = [];
  for (let index = 0; index < count; index++) keys.push(readDataKey(reader));
  return keys;
}

function writeDigests(writer: ByteWriter, items: readonly KeyDigest[]): void {
  writer.varint(items.length);
  for (const item of items) {
    writeDataKey(writer, item.dataKey);
    writer.string(item.digest);
  }
}

function readDigests(reader: ByteReader): KeyDigest[] {
  const count = readCount(reader, 'key digests', wireLimits.maxKeys);
  const items: KeyDigest[] = [];
  for (let index = 0; index < count; index++) {
    const dataKey = readDataKey(reader);
    const digest = reader.string();
    if (digest.length > wireLimits.maxDigestLength) throw malformed('a digest that is too long');
    items.push({ dataKey, digest });
  }
  return items;
}

/**
 * A 64-bit Merkle hash or key digest: 16 hex digits in memory, 8 bytes on the wire (anti-entropy's
 * messages of tags 50-53 carry them in binary; the JSON control operations they replace sent text).
 */
function writeHash(writer: ByteWriter, text: string): void {
  const bytes = Buffer.from(text, 'hex');
  if (bytes.length !== 8 || text.length !== 16) throw new KvError('KV_INTERNAL', `a Merkle hash must be 16 hex digits, not ${JSON.stringify(text.slice(0, 32))}`);
  writer.bytes(bytes);
}

function readHash(reader: ByteReader): string {
  const bytes = reader.bytes();
  if (bytes.length !== 8) throw malformed(`a hash of ${bytes.length} bytes instead of 8`);
  return bytes.toString('hex');
}

/** The hashes of every branch, or of every leaf under a branch: exactly merkleFanout of them. */
function writeHashes(writer: ByteWriter, hashes: readonly string[]): void {
  if (hashes.length !== merkleFanout) throw new KvError('KV_INTERNAL', `a list of ${hashes.length} Merkle hashes instead of ${merkleFanout}`);
  for (const hash of hashes) writeHash(writer, hash);
}

function readHashes(reader: ByteReader): string[] {
  const hashes: string[] = [];
  for (let index = 0; index < merkleFanout; index++) hashes.push(readHash(reader));
  return hashes;
}

function readPartition(reader: ByteReader): number {
  return readBounded(reader, 'partition', 0, wireLimits.maxPartition);
}

/** A list of partitions or branch numbers, each below `bound`, at most `max` of them. */
function readNumbers(reader: ByteReader, field: string, max: number, bound: number): number[] {
  const count = readCount(reader, `${field}s`, max);
  const numbers: number[] = [];
  for (let index = 0; index < count; index++) numbers.push(readBounded(reader, field, 0, bound - 1));
  return numbers;
}

function writeNumbers(writer: ByteWriter, numbers: readonly number[]): void {
  writer.varint(numbers.length);
  for (const number of numbers) writer.varint(number);
}

/** A string of a listing (bucket, key, cursor, prefix), bounded. */
function readListString(reader: ByteReader, field: string): string {
  const text = reader.string();
  if (text.length > wireLimits.maxListKeyLength) throw malformed(`a ${field} that is too long`);
  return text;
}

function readFlag(reader: ByteReader, field: string): boolean {
  const value = reader.u8();
  if (value > 1) throw malformed(`a ${field} flag of ${value}`);
  return value === 1;
}

function writeMode(writer: ByteWriter, mode: ConflictMode): void {
  writer.u8(mode === 'lww' ? 1 : 0);
}

function readMode(reader: ByteReader): ConflictMode {
  return reader.u8() === 1 ? 'lww' : 'siblings';
}

function writeVector(writer: ByteWriter, vector: VersionVector): void {
  const entries = Object.entries(vector);
  writer.varint(entries.length);
  for (const [node, counter] of entries) writer.string(node).varint(counter);
}

function readVector(reader: ByteReader): VersionVector {
  const vector: Record<string, number> = {};
  const count = reader.varint();
  for (let index = 0; index < count; index++) vector[reader.string()] = reader.varint();
  return vector;
}

function writeDot(writer: ByteWriter, dot: ContextDot): void {
  writer.string(dot.node).varint(dot.counter);
}

function readDot(reader: ByteReader): ContextDot {
  return { node: reader.string(), counter: reader.varint() };
}

function writeContext(writer: ByteWriter, context: CausalContext): void {
  writeVector(writer, context.vector);
  writer.varint(context.dots.length);
  for (const dot of context.dots) writeDot(writer, dot);
}

function readContext(reader: ByteReader): CausalContext {
  const vector = readVector(reader);
  const count = reader.varint();
  if (count > maxWireContextDots) throw new KvError('KV_BAD_REQUEST', `a forwarded context has ${count} dots, over ${maxWireContextDots}`);
  const dots: ContextDot[] = [];
  for (let index = 0; index < count; index++) dots.push(readDot(reader));
  return { vector, dots };
}

/**
 * Protocol version 1's form of gossip and control payloads: JSON text (version 2 writes them in
 * binary, and also falls back to this for a value outside the binary layout). Anything carrying
 * objects has a binary message of its own, since values as base64 inside one JSON text would
 * soon exceed the largest string V8 can build.
 */
function writeJson(writer: ByteWriter, value: unknown): void {
  writer.string(JSON.stringify(value ?? null));
}

function readJson(reader: ByteReader): unknown {
  const text = reader.string();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new KvError('KV_BAD_REQUEST', 'a peer message carries malformed JSON');
  }
}

/** The option flags a coordinate-put needs on the wire (0: none, tag 10). */
function coordinatePutOptions(request: CoordinatePutRequest): number {
  const ttl = request.write.ttlSeconds !== undefined && request.write.ttlSeconds > 0 ? ttlOption : 0;
  return ttl | (request.precondition === undefined ? 0 : preconditionOption);
}

/** A control operation's name, bounded. */
function readOperation(reader: ByteReader): string {
  const bytes = reader.bytes();
  if (bytes.length > maxOperationBytes) throw malformed(`a control operation name of ${bytes.length} bytes`);
  return bytes.toString('utf8');
}

/**
 * Writes a gossip or control message in binary when the protocol version allows it and the
 * value fits the binary layout; answers false when the caller has to write the JSON form.
 */
function writeBinaryState(writer: ByteWriter, message: PeerRequest | PeerReply, protocolVersion: number): boolean {
  if (protocolVersion < peerProtocolVersions.binaryState) return false;
  switch (message.type) {
    case 'gossip':
    case 'gossip-reply': {
      const state = encodeViewState(message.state);
      if (state === undefined) return false;
      writer.u8(binaryGossipTag).bytes(state);
      return true;
    }
    case 'control':
    case 'control-reply': {
      const payload = encodeControlPayload(message.payload);
      if (payload === undefined) return false;
      writer.u8(binaryControlTag);
      if (message.type === 'control') writer.string(message.operation);
      writer.bytes(payload);
      return true;
    }
    default:
      return false;
  }
}

const counterUpdateCode = 1;
const setUpdateCode = 2;

function writeDataTypeUpdate(writer: ByteWriter, update: DataTypeUpdate): void {
  if (update.type === 'counter') {
    writer.u8(counterUpdateCode).f64(update.increment);
    return;
  }
  writer.u8(setUpdateCode).varint(update.add.length);
  for (const element of update.add) writer.string(element);
  writer.varint(update.remove.length);
  for (const element of update.remove) writer.string(element);
  writer.u8(update.context === undefined ? 0 : 1);
  if (update.context !== undefined) writeContext(writer, update.context);
}

function readElements(reader: ByteReader, field: string): string[] {
  const count = readCount(reader, field, wireLimits.maxSetUpdateElements);
  const elements: string[] = [];
  for (let index = 0; index < count; index++) elements.push(reader.string());
  return elements;
}

function readDataTypeUpdate(reader: ByteReader): DataTypeUpdate {
  const code = reader.u8();
  if (code === counterUpdateCode) {
    const increment = reader.f64();
    if (!Number.isSafeInteger(increment)) throw malformed(`a counter increment ${increment} that is not a safe integer`);
    return { type: 'counter', increment };
  }
  if (code !== setUpdateCode) throw malformed(`an unknown data type update ${code}`);
  const add = readElements(reader, 'added elements');
  const remove = readElements(reader, 'removed elements');
  return readFlag(reader, 'context') ? { type: 'set', add, remove, context: readContext(reader) } : { type: 'set', add, remove };
}

function writeRequest(writer: ByteWriter, request: PeerRequest, protocolVersion: number): void {
  if (writeBinaryState(writer, request, protocolVersion)) return;
  const options = request.type === 'coordinate-put' ? coordinatePutOptions(request) : 0;
  writer.u8(options !== 0 ? coordinatePutWithOptionsTag : requestTags[request.type]);
  switch (request.type) {
    case 'replica-get':
      writer.string(request.bucket).string(request.key);
      return;
    case 'coordinate-put':
      writer.string(request.bucket).string(request.key);
      writer.bytes(request.write.value).string(request.write.contentType).u8(request.write.tombstone ? 1 : 0).f64(request.write.nowMs);
      writeContext(writer, request.write.context);
      writeMode(writer, request.mode);
      writer.u8(request.sync ? 1 : 0);
      if (options !== 0) {
        writer.u8(options);
        if ((options & ttlOption) !== 0) writer.varint(request.write.ttlSeconds ?? 0);
        if (request.precondition !== undefined) {
          writer.u8(request.precondition.kind === 'absent' ? 0 : 1);
          if (request.precondition.kind === 'matches') writeVector(writer, request.precondition.vector);
          writer.u8(request.base === undefined || request.base === null ? 0 : 1);
          if (request.base !== undefined && request.base !== null) writeObject(writer, request.base);
        }
      }
      return;
    case 'replica-put':
      writer.string(request.bucket).string(request.key);
      writeObject(writer, request.object);
      writeMode(writer, request.mode);
      writer.u8(request.sync ? 1 : 0);
      writer.string(request.hintFor ?? '');
      return;
    case 'gossip':
      writeJson(writer, request.state);
      return;
    case 'control':
      writer.string(request.operation);
      writeJson(writer, request.payload);
      return;
    case 'handoff-fetch':
      writer.varint(request.partition).u8(request.after === null ? 0 : 1);
      if (request.after !== null) writeDataKey(writer, request.after);
      writer.varint(request.maxKeys).varint(request.maxBytes);
      return;
    case 'ae-keys':
      writer.varint(request.partition).varint(request.leaves.length);
      for (const leaf of request.leaves) writer.varint(leaf);
      writeDigests(writer, request.items);
      return;
    case 'ae-fetch':
      writer.varint(request.partition);
      writeKeys(writer, request.keys);
      writer.varint(request.maxBytes);
      return;
    case 'ae-push':
      writer.varint(request.partition);
      writeItems(writer, request.items);
      return;
    case 'list-keys':
      writer.string(request.bucket).varint(request.partitions.length);
      for (const partition of request.partitions) writer.varint(partition);
      writer.u8(request.after === null ? 0 : 1);
      if (request.after !== null) writer.string(request.after);
      writer.string(request.prefix).varint(request.limit);
      return;
    case 'dt-update':
      writer.string(request.bucket).string(request.key);
      writeDataTypeUpdate(writer, request.update);
      writer.u8(request.sync ? 1 : 0).u8(request.base === null ? 0 : 1);
      if (request.base !== null) writeObject(writer, request.base);
      return;
    case 'ae-summary':
      writer.varint(request.roots.length);
      for (const entry of request.roots) {
        writer.varint(entry.partition);
        writeHash(writer, entry.root);
      }
      return;
    case 'ae-leaves':
      writer.varint(request.partition);
      writeNumbers(writer, request.branches);
      return;
    case 'ae-digest':
      writeDataKey(writer, request.dataKey);
      return;
    case 'ae-reap':
      writeDataKey(writer, request.dataKey);
      writeHash(writer, request.digest);
      return;
  }
}

function readRequest(reader: ByteReader): PeerRequest {
  const tag = reader.u8();
  switch (tag) {
    case requestTags['replica-get']:
      return { type: 'replica-get', bucket: reader.string(), key: reader.string() };
    case legacyCoordinatePutTag:
    case coordinatePutWithOptionsTag:
    case requestTags['coordinate-put']: {
      const bucket = reader.string();
      const key = reader.string();
      const value = Buffer.from(reader.bytes());
      const contentType = reader.string();
      const tombstone = reader.u8() === 1;
      const nowMs = reader.f64();
      const context = tag === legacyCoordinatePutTag ? { vector: readVector(reader), dots: [] } : readContext(reader);
      const mode = readMode(reader);
      const sync = reader.u8() === 1;
      const options = tag === coordinatePutWithOptionsTag ? reader.u8() : 0;
      if ((options & ~(ttlOption | preconditionOption)) !== 0) throw new KvError('KV_BAD_REQUEST', `a forwarded write carries unknown options ${options}`);
      const ttlSeconds = (options & ttlOption) !== 0 ? reader.varint() : 0;
      if (ttlSeconds > maxTtlSeconds) throw new KvError('KV_BAD_REQUEST', `a forwarded write has a ttl of ${ttlSeconds} s, over ${maxTtlSeconds}`);
      const write = ttlSeconds > 0 ? { value, contentType, tombstone, nowMs, context, ttlSeconds } : { value, contentType, tombstone, nowMs, context };
      const request: CoordinatePutRequest = { type: 'coordinate-put', bucket, key, write, mode, sync };
      if ((options & preconditionOption) === 0) return request;
      const kind = reader.u8();
      if (kind > 1) throw new KvError('KV_BAD_REQUEST', `a conditional write carries an unknown precondition kind ${kind}`);
      const precondition: Precondition = kind === 0 ? { kind: 'absent' } : { kind: 'matches', vector: readVector(reader) };
      const base = readFlag(reader, 'base') ? readWireObject(reader) : null;
      return { ...request, precondition, base };
    }
    case requestTags['replica-put']: {
      const bucket = reader.string();
      const key = reader.string();
      const object = readWireObject(reader);
      const mode = readMode(reader);
      const sync = reader.u8() === 1;
      const hintFor = reader.string();
      return { type: 'replica-put', bucket, key, object, mode, sync, ...(hintFor === '' ? {} : { hintFor }) };
    }
    case requestTags.gossip:
      return { type: 'gossip', state: readJson(reader) };
    case binaryGossipTag:
      return { type: 'gossip', state: decodeViewState(reader.bytes()) };
    case requestTags.control: {
      const operation = readOperation(reader);
      return { type: 'control', operation, payload: readJson(reader) };
    }
    case binaryControlTag: {
      const operation = readOperation(reader);
      return { type: 'control', operation, payload: decodeControlPayload(reader.bytes()) };
    }
    case requestTags['handoff-fetch']: {
      const partition = readBounded(reader, 'partition', 0, wireLimits.maxPartition);
      const after = readFlag(reader, 'cursor') ? readDataKey(reader) : null;
      const maxKeys = readBounded(reader, 'page keys', 1, wireLimits.maxPageKeys);
      const maxBytes = readBounded(reader, 'page bytes', 1, wireLimits.maxPageBytes);
      return { type: 'handoff-fetch', partition, after, maxKeys, maxBytes };
    }
    case requestTags['ae-keys']: {
      const partition = readBounded(reader, 'partition', 0, wireLimits.maxPartition);
      const leafCount = readCount(reader, 'leaves', merkleLeafCount);
      const leaves: number[] = [];
      for (let index = 0; index < leafCount; index++) leaves.push(readBounded(reader, 'leaf', 0, merkleLeafCount - 1));
      return { type: 'ae-keys', partition, leaves, items: readDigests(reader) };
    }
    case requestTags['ae-fetch']: {
      const partition = readBounded(reader, 'partition', 0, wireLimits.maxPartition);
      const keys = readKeys(reader);
      const maxBytes = readBounded(reader, 'page bytes', 1, wireLimits.maxPageBytes);
      return { type: 'ae-fetch', partition, keys, maxBytes };
    }
    case requestTags['ae-push']: {
      const partition = readBounded(reader, 'partition', 0, wireLimits.maxPartition);
      return { type: 'ae-push', partition, items: readItems(reader) };
    }
    case requestTags['list-keys']: {
      const bucket = readListString(reader, 'bucket');
      const partitionCount = readCount(reader, 'partitions', wireLimits.maxPartition + 1);
      const partitions: number[] = [];
      for (let index = 0; index < partitionCount; index++) partitions.push(readBounded(reader, 'partition', 0, wireLimits.maxPartition));
      const after = readFlag(reader, 'cursor') ? readListString(reader, 'cursor') : null;
      const prefix = readListString(reader, 'prefix');
      const limit = readBounded(reader, 'listing limit', 1, wireLimits.maxListKeys);
      return { type: 'list-keys', bucket, partitions, after, prefix, limit };
    }
    case requestTags['dt-update']: {
      const bucket = reader.string();
      const key = reader.string();
      const update = readDataTypeUpdate(reader);
      const sync = readFlag(reader, 'sync');
      const base = readFlag(reader, 'base') ? readWireObject(reader) : null;
      return { type: 'dt-update', bucket, key, update, sync, base };
    }
    case requestTags['ae-summary']: {
      const count = readCount(reader, 'partition roots', wireLimits.maxPartition + 1);
      const roots = [];
      for (let index = 0; index < count; index++) roots.push({ partition: readPartition(reader), root: readHash(reader) });
      return { type: 'ae-summary', roots };
    }
    case requestTags['ae-leaves']: {
      const partition = readPartition(reader);
      return { type: 'ae-leaves', partition, branches: readNumbers(reader, 'branch', merkleFanout, merkleFanout) };
    }
    case requestTags['ae-digest']:
      return { type: 'ae-digest', dataKey: readDataKey(reader) };
    case requestTags['ae-reap']: {
      const dataKey = readDataKey(reader);
      return { type: 'ae-reap', dataKey, digest: readHash(reader) };
    }
    default:
      throw new KvError('KV_BAD_REQUEST', `unknown peer request tag ${tag}; is the peer a newer ringkv?`);
  }
}

function writeReply(writer: ByteWriter, reply: PeerReply, protocolVersion: number): void {
  if (writeBinaryState(writer, reply, protocolVersion)) return;
  writer.u8(replyTags[reply.type]);
  switch (reply.type) {
    case 'replica-get-reply':
      writer.u8(reply.object === null ? 0 : 1);
      if (reply.object !== null) writeObject(writer, reply.object);
      return;
    case 'coordinate-put-reply':
      writeObject(writer, reply.object);
      writer.u8(reply.durable ? 1 : 0);
      writeDot(writer, reply.dot);
      return;
    case 'replica-put-reply':
      writer.u8(reply.durable ? 1 : 0);
      return;
    case 'gossip-reply':
      writeJson(writer, reply.state);
      return;
    case 'control-reply':
      writeJson(writer, reply.payload);
      return;
    case 'error':
      writer.string(reply.code).string(reply.message);
      return;
    case 'object-page':
      writeItems(writer, reply.items);
      writer.u8(reply.done ? 1 : 0);
      return;
    case 'ae-keys-reply':
      writeKeys(writer, reply.differing);
      writeKeys(writer, reply.need);
      writer.u8(reply.truncated ? 1 : 0);
      return;
    case 'ae-push-reply':
      writer.varint(reply.repaired);
      return;
    case 'list-keys-reply':
      writer.varint(reply.entries.length);
      for (const entry of reply.entries) {
        writer.string(entry.key);
        writeObject(writer, entry.version);
      }
      writer.u8(reply.more ? 1 : 0).string(reply.scannedTo);
      return;
    case 'dt-update-reply':
      writeObject(writer, reply.object);
      writer.u8(reply.durable ? 1 : 0);
      return;
    case 'ae-summary-reply':
      writer.varint(reply.differing.length);
      for (const entry of reply.differing) {
        writer.varint(entry.partition);
        writeHashes(writer, entry.branches);
      }
      writeNumbers(writer, reply.notReady);
      return;
    case 'ae-leaves-reply':
      writer.varint(reply.branches.length);
      for (const entry of reply.branches) {
        writer.varint(entry.branch);
        writeHashes(writer, entry.leaves);
      }
      return;
    case 'ae-digest-reply':
      writer.u8(reply.digest === null ? 0 : 1);
      if (reply.digest !== null) writeHash(writer, reply.digest);
      return;
    case 'ae-reap-reply':
      writer.u8(reply.removed ? 1 : 0);
      return;
  }
}

function readReply(reader: ByteReader): PeerReply {
  const tag = reader.u8();
  switch (tag) {
    case replyTags['replica-get-reply']:
      return { type: 'replica-get-reply', object: readFlag(reader, 'object') ? readWireObject(reader) : null };
    case legacyCoordinatePutReplyTag:
    case replyTags['coordinate-put-reply']: {
      const object = readWireObject(reader);
      const durable = reader.u8() === 1;
      // An old peer does not say which dot it created: an empty dot makes the reply's context cover only what the writer sent.
      const dot = tag === legacyCoordinatePutReplyTag ? { node: '', counter: 0 } : readDot(reader);
      return { type: 'coordinate-put-reply', object, durable, dot };
    }
    case replyTags['replica-put-reply']:
      return { type: 'replica-put-reply', durable: reader.u8() === 1 };
    case replyTags['gossip-reply']:
      return { type: 'gossip-reply', state: readJson(reader) };
    case binaryGossipTag:
      return { type: 'gossip-reply', state: decodeViewState(reader.bytes()) };
    case replyTags['control-reply']:
      return { type: 'control-reply', payload: readJson(reader) };
    case binaryControlTag:
      return { type: 'control-reply', payload: decodeControlPayload(reader.bytes()) };
    case replyTags.error: {
      const code = reader.string();
      return { type: 'error', code, message: reader.string() };
    }
    case replyTags['object-page']: {
      const items = readItems(reader);
      return { type: 'object-page', items, done: readFlag(reader, 'done') };
    }
    case replyTags['ae-keys-reply']: {
      const differing = readKeys(reader);
      const need = readKeys(reader);
      return { type: 'ae-keys-reply', differing, need, truncated: readFlag(reader, 'truncated') };
    }
    case replyTags['ae-push-reply']:
      return { type: 'ae-push-reply', repaired: readBounded(reader, 'repaired keys', 0, wireLimits.maxItems) };
    case replyTags['list-keys-reply']: {
      const count = readCount(reader, 'listed keys', wireLimits.maxListKeys);
      const entries: ListedKey[] = [];
      for (let index = 0; index < count; index++) entries.push({ key: readListString(reader, 'listed key'), version: readWireObject(reader) });
      const more = readFlag(reader, 'more');
      return { type: 'list-keys-reply', entries, more, scannedTo: readListString(reader, 'scan position') };
    }
    case replyTags['dt-update-reply']: {
      const object = readWireObject(reader);
      return { type: 'dt-update-reply', object, durable: readFlag(reader, 'durable') };
    }
    case replyTags['ae-summary-reply']: {
      const count = readCount(reader, 'differing partitions', wireLimits.maxPartition + 1);
      const differing = [];
      for (let index = 0; index < count; index++) differing.push({ partition: readPartition(reader), branches: readHashes(reader) });
      return { type: 'ae-summary-reply', differing, notReady: readNumbers(reader, 'partition', wireLimits.maxPartition + 1, wireLimits.maxPartition + 1) };
    }
    case replyTags['ae-leaves-reply']: {
      const count = readCount(reader, 'branches', merkleFanout);
      const branches = [];
      for (let index = 0; index < count; index++) branches.push({ branch: readBounded(reader, 'branch', 0, merkleFanout - 1), leaves: readHashes(reader) });
      return { type: 'ae-leaves-reply', branches };
    }
    case replyTags['ae-digest-reply']:
      return { type: 'ae-digest-reply', digest: readFlag(reader, 'digest') ? readHash(reader) : null };
    case replyTags['ae-reap-reply']:
      return { type: 'ae-reap-reply', removed: readFlag(reader, 'removed') };
    default:
      throw new KvError('KV_BAD_REQUEST', `unknown peer reply tag ${tag}; is the peer a newer ringkv?`);
  }
}

function encodeBatch<T>(items: readonly T[], write: (writer: ByteWriter, item: T, protocolVersion: number) => void, protocolVersion: number): Buffer {
  const writer = new ByteWriter().u8(wireProtocolVersion).varint(items.length);
  for (const item of items) write(writer, item, protocolVersion);
  return writer.finish();
}

function decodeBatch<T>(bytes: Uint8Array, read: (reader: ByteReader) => T): T[] {
  const reader = new ByteReader(bytes);
  const version = reader.u8();
  if (version !== wireProtocolVersion) {
    throw new KvError('KV_BAD_REQUEST', `peer protocol version ${version} is not spoken here (this node speaks ${wireProtocolVersion}); run the same ringkv version on every node`);
  }
  const count = reader.varint();
  if (count > maxBatchMessages) throw new KvError('KV_BAD_REQUEST', `a peer batch of ${count} messages is over the limit of ${maxBatchMessages}`);
  const items: T[] = [];
  for (let index = 0; index < count; index++) items.push(read(reader));
  if (!reader.done()) throw new KvError('KV_BAD_REQUEST', 'trailing bytes after a peer batch');
  return items;
}

/** Encodes requests to one peer as one body, in the forms `protocolVersion` allows (see peerProtocolVersions). */
export function encodeRequestBatch(requests: readonly PeerRequest[], protocolVersion: number = latestPeerProtocolVersion): Buffer {
  return encodeBatch(requests, writeRequest, protocolVersion);
}

/** Decodes a request body; throws KV_BAD_REQUEST on anything malformed. */
export function decodeRequestBatch(bytes: Uint8Array): PeerRequest[] {
  return decodeBatch(bytes, readRequest);
}

/** Encodes the replies to a batch, in the batch's order, in the forms `protocolVersion` allows. */
export function encodeReplyBatch(replies: readonly PeerReply[], protocolVersion: number = latestPeerProtocolVersion): Buffer {
  return encodeBatch(replies, writeReply, protocolVersion);
}

/** Decodes a reply body; throws KV_BAD_REQUEST on anything malformed. */
export function decodeReplyBatch(bytes: Uint8Array): PeerReply[] {
  return decodeBatch(bytes, readReply);
}
