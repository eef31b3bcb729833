import { createHmac, timingSafeEqual } from 'node:crypto';
import { KvError } from '../../util/errors.js';

/**
 * The frame layout of the framed peer protocol (src/adapters/framed-transport.ts and
 * framed-peer-server.ts): node-to-node traffic on persistent connections, as Cassandra's
 * internode messaging and memberlist's wire do it, instead of one HTTP request per batch.
 *
 * Every frame is
 *
 *     [u32 length][u8 frame type][u32 request id][u32 deadline ms][payload]
 *
 * big-endian, where `length` counts the bytes after itself (9 + the payload). The request id
 * pairs a reply with its request, so many requests are in flight on one connection at once.
 * The deadline is the time the sender still waits, in milliseconds, at the moment it sent the
 * frame: relative, because the two nodes' clocks need not agree. Request and reply payloads
 * are one message each in the binary encoding of src/core/wire/codec.ts (docs/WIRE.md).
 *
 * A connection starts with a handshake that agrees a protocol version and proves that both
 * ends hold the cluster secret without sending it (a challenge and response with HMAC-SHA256):
 *
 *     client -> hello     {magic, minVersion, maxVersion, clientNonce}
 *     server -> challenge {chosenVersion, serverNonce, serverProof}
 *     client -> proof     {clientProof}
 *     server -> accepted  {}
 *
 * Either side sends `refused` with a reason and closes on a wrong proof or when the version
 * ranges do not meet. The proofs cover both nonces, both version ranges and the chosen
 * version, so a replayed or downgraded handshake does not verify.
 */

/** Frame types. Append-only (house rule 6, docs/ARCHITECTURE.md#house-rules): a new frame type gets a new number, an old one never changes meaning. */
export const frameTypes = { hello: 1, challenge: 2, proof: 3, accepted: 4, refused: 5, request: 6, reply: 7 } as const;

/** A frame type's number. */
export type FrameType = (typeof frameTypes)[keyof typeof frameTypes];

/**
 * The protocol versions this build speaks, the one pair that says so: a handshake picks the
 * highest version both ends speak and refuses a peer whose range does not meet this one. A
 * version names the frame layout and the message table (message-table.ts); docs/WIRE.md says
 * when it changes and which older versions a node still talks to. Version 7 is the message
 * table with SWIM membership (tags 60-69) in place of whole-view gossip (tag 40), handoff-held
 * in place of control (tag 41), forward-put, the Paxos messages and the watches' long poll;
 * version 8 adds consistent keys' decided writes to `watch-poll-reply`; version 9 adds
 * `paxos-keys` (a backup's listing of a replica's acceptor keys). Versions 1 to 8, before any
 * release, are not spoken.
 */
export const protocolVersions: VersionRange = { min: 9, max: 9 };

/** A range of protocol versions, both ends included. */
export interface VersionRange {
  readonly min: number;
  readonly max: number;
}

/** The bytes before the payload: length, type, request id, deadline. */
export const frameHeaderBytes = 13;

/** The bytes of the length field, which does not count itself. */
const lengthFieldBytes = 4;

/** The default cap on one frame (its length field): 64 MiB. */
export const defaultMaxFrameBytes = 64 * 1024 * 1024;

/** The cap on frames before the handshake has finished: hello, challenge, proof and refusal are all far smaller. */
export const handshakeMaxFrameBytes = 4096;

/** The largest value a u32 field holds. */
const maxU32 = 0xffff_ffff;

/** The bytes of a nonce and of a proof (an HMAC-SHA256). */
export const nonceBytes = 32;
const proofBytes = 32;

/** The first bytes of a hello: something that is not a ringkv node (an HTTP client, a port scanner) is told apart at once. */
const helloMagic = Buffer.from('RKVP', 'latin1');

/** The longest reason a `refused` frame carries. */
const maxReasonBytes = 1024;

/** One decoded frame. `payload` may share memory with the bytes it was read from. */
export interface Frame {
  readonly type: number;
  readonly requestId: number;
  readonly deadlineMs: number;
  readonly payload: Buffer;
}

/** The header of a frame that carries `payloadBytes` bytes; the payload is written after it. */
export function encodeFrameHeader(type: FrameType, requestId: number, deadlineMs: number, payloadBytes: number): Buffer {
  const header = Buffer.allocUnsafe(frameHeaderBytes);
  header.writeUInt32BE(frameHeaderBytes - lengthFieldBytes + payloadBytes, 0);
  header.writeUInt8(type, 4);
  header.writeUInt32BE(requestId >>> 0, 5);
  header.writeUInt32BE(Math.max(0, Math.min(maxU32, Math.ceil(deadlineMs))), 9);
  return header;
}

/** Writes a frame header into `target` at `offset` (the payload goes right after it); the same bytes as encodeFrameHeader. */
export function writeFrameHeader(target: Buffer, offset: number, type: FrameType, requestId: number, deadlineMs: number, payloadBytes: number): void {
  target.writeUInt32BE(frameHeaderBytes - lengthFieldBytes + payloadBytes, offset);
  target[offset + 4] = type;
  target.writeUInt32BE(requestId >>> 0, offset + 5);
  target.writeUInt32BE(Math.max(0, Math.min(maxU32, Math.ceil(deadlineMs))), offset + 9);
}

/** A whole frame in one buffer (for the small handshake frames; requests write header and payload separately). */
export function encodeFrame(type: FrameType, requestId: number, deadlineMs: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodeFrameHeader(type, requestId, deadlineMs, payload.byteLength), payload]);
}

/** The bytes a frame with this payload takes on the wire, as its length field counts them. */
export function frameLengthOf(payloadBytes: number): number {
  return frameHeaderBytes - lengthFieldBytes + payloadBytes;
}

/**
 * The one size rule of peer messages, for the framed transport (peer-connection.ts,
 * framed-peer-server.ts) and the simulated network (src/sim/simulated-transport.ts) alike: the
 * error a request or reply gets instead of being sent when its frame would be over
 * `maxFrameBytes`, or undefined when it fits.
 */
export function oversizedFrameError(side: 'request' | 'reply', messageType: string, payloadBytes: number, maxFrameBytes: number): KvError | undefined {
  const bytes = frameLengthOf(payloadBytes);
  if (bytes <= maxFrameBytes) return undefined;
  return new KvError(
    'KV_VALUE_TOO_LARGE',
    side === 'request'
      ? `a ${messageType} of ${bytes} bytes is over the peer frame cap of ${maxFrameBytes} bytes, so it was not sent; keep values below limits.maxValueBytes and objects below limits.maxObjectBytes`
      : `the ${messageType} of ${bytes} bytes is over the peer frame cap of ${maxFrameBytes} bytes, so it was not sent; ask for less at a time`,
  );
}

/**
 * A frame whose length field is over the receiver's cap. The header was read, so the receiver
 * knows the request id and can answer it with an error before it closes the connection (the
 * rest of the stream cannot be trusted to be read: skipping the payload would mean buffering it).
 */
export class FrameTooLargeError extends KvError {
  constructor(
    readonly frameType: number,
    readonly requestId: number,
    readonly lengthBytes: number,
    readonly maxFrameBytes: number,
  ) {
    super('KV_VALUE_TOO_LARGE', `a peer frame of ${lengthBytes} bytes is over the cap of ${maxFrameBytes} bytes; keep values below limits.maxValueBytes`);
  }
}

/**
 * Splits a byte stream into frames. Pure and incremental: `push` takes the chunks a socket
 * delivers, in order, and returns the frames they complete. It copies only when a frame spans
 * chunks; a frame inside one chunk is a view of it.
 */
export class FrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** How many bytes `pending` must hold before parsing can make progress: a header, or the whole frame once its header is known. */
  private neededBytes = 0;

  /**
   * The cap on each frame's length field. Connections start with handshakeMaxFrameBytes and
   * raise it once the peer is authenticated, so a stranger cannot make a node buffer 64 MiB.
   */
  maxFrameBytes: number;

  constructor(maxFrameBytes: number = defaultMaxFrameBytes) {
    this.maxFrameBytes = maxFrameBytes;
  }

  /** The bytes received but not yet part of a whole frame. */
  get bufferedBytes(): number {
    return this.pendingBytes;
  }

  /** Takes the next chunk; returns the frames now complete. Throws FrameTooLargeError once a header over the cap is seen. */
  push(chunk: Buffer): Frame[] {
    let buffer: Buffer;
    if (this.pendingBytes === 0) {
      buffer = chunk;
    } else {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      // A large frame arrives in many chunks: they are joined once, when it is whole, not on every chunk.
      if (this.pendingBytes < this.neededBytes) return [];
      buffer = Buffer.concat(this.pending, this.pendingBytes);
    }
    const frames: Frame[] = [];
    let offset = 0;
    let needed = frameHeaderBytes;
    while (buffer.length - offset >= frameHeaderBytes) {
      const length = buffer.readUInt32BE(offset);
      const type = buffer.readUInt8(offset + 4);
      const requestId = buffer.readUInt32BE(offset + 5);
      if (length > this.maxFrameBytes) throw new FrameTooLargeError(type, requestId, length, this.maxFrameBytes);
      if (length < frameHeaderBytes - lengthFieldBytes) throw new KvError('KV_BAD_REQUEST', `a peer frame claims ${length} bytes, fewer than its own header`);
      const end = offset + lengthFieldBytes + length;
      if (end > buffer.length) {
        needed = lengthFieldBytes + length;
        break;
      }
      frames.push({ type, requestId, deadlineMs: buffer.readUInt32BE(offset + 9), payload: buffer.subarray(offset + frameHeaderBytes, end) });
      offset = end;
      needed = frameHeaderBytes;
    }
    const rest = buffer.length - offset;
    this.pending = rest === 0 ? [] : [buffer.subarray(offset)];
    this.pendingBytes = rest;
    this.neededBytes = needed;
    return frames;
  }
}

/** The highest version both ranges hold, or undefined when they do not meet. */
export function chooseVersion(local: VersionRange, remote: VersionRange): number | undefined {
  const chosen = Math.min(local.max, remote.max);
  return chosen >= Math.max(local.min, remote.min) ? chosen : undefined;
}

/** A client's hello. */
export interface Hello {
  readonly versions: VersionRange;
  readonly clientNonce: Buffer;
}

/** The server's answer to a hello. */
export interface Challenge {
  readonly chosenVersion: number;
  readonly serverNonce: Buffer;
  readonly serverProof: Buffer;
}

/** Encodes a hello payload. */
export function encodeHello(hello: Hello): Buffer {
  const payload = Buffer.alloc(helloMagic.length + 4 + nonceBytes);
  helloMagic.copy(payload, 0);
  payload.writeUInt16BE(hello.versions.min, 4);
  payload.writeUInt16BE(hello.versions.max, 6);
  hello.clientNonce.copy(payload, 8);
  return payload;
}

/** Decodes a hello payload; throws KV_BAD_REQUEST when it is not one. */
export function decodeHello(payload: Buffer): Hello {
  if (payload.length !== helloMagic.length + 4 + nonceBytes || !payload.subarray(0, 4).equals(helloMagic)) {
    throw new KvError('KV_BAD_REQUEST', 'the first frame is not a ringkv peer hello; only ringkv nodes speak on the peer port');
  }
  return { versions: { min: payload.readUInt16BE(4), max: payload.readUInt16BE(6) }, clientNonce: Buffer.from(payload.subarray(8)) };
}

/** Encodes a challenge payload. */
export function encodeChallenge(challenge: Challenge): Buffer {
  const payload = Buffer.alloc(2 + nonceBytes + proofBytes);
  payload.writeUInt16BE(challenge.chosenVersion, 0);
  challenge.serverNonce.copy(payload, 2);
  challenge.serverProof.copy(payload, 2 + nonceBytes);
  return payload;
}

/** Decodes a challenge payload; throws KV_BAD_REQUEST when malformed. */
export function decodeChallenge(payload: Buffer): Challenge {
  if (payload.length !== 2 + nonceBytes + proofBytes) throw new KvError('KV_BAD_REQUEST', 'malformed peer handshake challenge');
  return {
    chosenVersion: payload.readUInt16BE(0),
    serverNonce: Buffer.from(payload.subarray(2, 2 + nonceBytes)),
    serverProof: Buffer.from(payload.subarray(2 + nonceBytes)),
  };
}

/** Encodes a refusal's reason, cut to a bounded length. */
export function encodeReason(reason: string): Buffer {
  const bytes = Buffer.from(reason, 'utf8');
  return bytes.subarray(0, maxReasonBytes);
}

/** Which end a proof is made by: the labels keep a server's proof from being replayed as a client's. */
export type ProofRole = 'server' | 'client';

/** What a proof covers: the whole negotiation, so that nothing in it can be changed or replayed. */
export interface HandshakeTranscript {
  readonly clientNonce: Buffer;
  readonly serverNonce: Buffer;
  readonly offered: VersionRange;
  readonly chosenVersion: number;
}

/** HMAC-SHA256 under the cluster secret of the transcript and the role that proves. */
export function handshakeProof(secret: string, role: ProofRole, transcript: HandshakeTranscript): Buffer {
  const numbers = Buffer.alloc(6);
  numbers.writeUInt16BE(transcript.offered.min, 0);
  numbers.writeUInt16BE(transcript.offered.max, 2);
  numbers.writeUInt16BE(transcript.chosenVersion, 4);
  // The client's nonce comes first in the server's proof and second in the client's, as the handshake has it.
  const [first, second] = role === 'server' ? [transcript.clientNonce, transcript.serverNonce] : [transcript.serverNonce, transcript.clientNonce];
  return createHmac('sha256', secret).update(first).update(second).update(numbers).update(role, 'latin1').digest();
}

/** True when `presented` is the expected proof, compared in constant time. */
export function proofMatches(secret: string, role: ProofRole, transcript: HandshakeTranscript, presented: Buffer): boolean {
  const expected = handshakeProof(secret, role, transcript);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}
