import { KvError } from '../../util/errors.js';
import { readObject, writeObject } from '../versioning/object-codec.js';
import { type CausalContext, type ContextDot, maxContextDots } from '../versioning/context.js';
import type { VersionVector } from '../versioning/version-vector.js';
import type { ConflictMode } from '../versioning/versioned-object.js';
import { ByteReader, ByteWriter } from './bytes.js';
import type { PeerReply, PeerRequest } from './messages.js';

/**
 * The binary encoding of peer traffic. A body is one batch: [protocol version][count]{message}*,
 * so that concurrent messages to the same peer travel in one HTTP request. Each message starts
 * with a one-byte tag. Tags are append-only (house rule 6): a new message gets a new tag and an
 * old tag never changes meaning, so nodes of neighbouring versions still understand each other.
 */
export const wireProtocolVersion = 1;

/** The most messages one batch may carry, so a hostile body cannot make a node allocate without bound. */
export const maxBatchMessages = 4096;

// coordinate-put moved to tag 6 when its context gained dots, and its reply to tag 7 when it
// gained the created dot; the old tags 2 are still read (a context without dots, no dot).
const requestTags = { 'replica-get': 1, 'coordinate-put': 6, 'replica-put': 3, gossip: 4, control: 5 } as const;
const legacyCoordinatePutTag = 2;
const replyTags = {
  'replica-get-reply': 1,
  'coordinate-put-reply': 7,
  'replica-put-reply': 3,
  'gossip-reply': 4,
  'control-reply': 5,
  error: 6,
} as const;
const legacyCoordinatePutReplyTag = 2;

/** The most dots a forwarded context may carry (the HTTP edge allows no more). */
const maxWireContextDots = maxContextDots;

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

/** Gossip and control payloads are small, rare and shaped like JSON, so they travel as JSON text. */
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

function writeRequest(writer: ByteWriter, request: PeerRequest): void {
  writer.u8(requestTags[request.type]);
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
  }
}

function readRequest(reader: ByteReader): PeerRequest {
  const tag = reader.u8();
  switch (tag) {
    case requestTags['replica-get']:
      return { type: 'replica-get', bucket: reader.string(), key: reader.string() };
    case legacyCoordinatePutTag:
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
      return { type: 'coordinate-put', bucket, key, write: { value, contentType, tombstone, nowMs, context }, mode, sync };
    }
    case requestTags['replica-put']: {
      const bucket = reader.string();
      const key = reader.string();
      const object = readObject(reader);
      const mode = readMode(reader);
      const sync = reader.u8() === 1;
      const hintFor = reader.string();
      return { type: 'replica-put', bucket, key, object, mode, sync, ...(hintFor === '' ? {} : { hintFor }) };
    }
    case requestTags.gossip:
      return { type: 'gossip', state: readJson(reader) };
    case requestTags.control: {
      const operation = reader.string();
      return { type: 'control', operation, payload: readJson(reader) };
    }
    default:
      throw new KvError('KV_BAD_REQUEST', `unknown peer request tag ${tag}; is the peer a newer ringkv?`);
  }
}

function writeReply(writer: ByteWriter, reply: PeerReply): void {
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
  }
}

function readReply(reader: ByteReader): PeerReply {
  const tag = reader.u8();
  switch (tag) {
    case replyTags['replica-get-reply']:
      return { type: 'replica-get-reply', object: reader.u8() === 1 ? readObject(reader) : null };
    case legacyCoordinatePutReplyTag:
    case replyTags['coordinate-put-reply']: {
      const object = readObject(reader);
      const durable = reader.u8() === 1;
      // An old peer does not say which dot it created: an empty dot makes the reply's context cover only what the writer sent.
      const dot = tag === legacyCoordinatePutReplyTag ? { node: '', counter: 0 } : readDot(reader);
      return { type: 'coordinate-put-reply', object, durable, dot };
    }
    case replyTags['replica-put-reply']:
      return { type: 'replica-put-reply', durable: reader.u8() === 1 };
    case replyTags['gossip-reply']:
      return { type: 'gossip-reply', state: readJson(reader) };
    case replyTags['control-reply']:
      return { type: 'control-reply', payload: readJson(reader) };
    case replyTags.error: {
      const code = reader.string();
      return { type: 'error', code, message: reader.string() };
    }
    default:
      throw new KvError('KV_BAD_REQUEST', `unknown peer reply tag ${tag}; is the peer a newer ringkv?`);
  }
}

function encodeBatch<T>(items: readonly T[], write: (writer: ByteWriter, item: T) => void): Buffer {
  const writer = new ByteWriter().u8(wireProtocolVersion).varint(items.length);
  for (const item of items) write(writer, item);
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

/** Encodes requests to one peer as one body. */
export function encodeRequestBatch(requests: readonly PeerRequest[]): Buffer {
  return encodeBatch(requests, writeRequest);
}

/** Decodes a request body; throws KV_BAD_REQUEST on anything malformed. */
export function decodeRequestBatch(bytes: Uint8Array): PeerRequest[] {
  return decodeBatch(bytes, readRequest);
}

/** Encodes the replies to a batch, in the batch's order. */
export function encodeReplyBatch(replies: readonly PeerReply[]): Buffer {
  return encodeBatch(replies, writeReply);
}

/** Decodes a reply body; throws KV_BAD_REQUEST on anything malformed. */
export function decodeReplyBatch(bytes: Uint8Array): PeerReply[] {
  return decodeBatch(bytes, readReply);
}
