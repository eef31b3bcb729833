/**
 * The messages of SWIM membership (src/core/membership/swim.ts) and their size on the framed
 * peer wire. Each message is one frame: the 13-byte frame header of src/core/wire/frames.ts,
 * then the message: a one-byte tag and the fields
 * as the wire codec writes them (unsigned LEB128 varints, length-prefixed UTF-8 strings, through
 * ByteWriter); `encodeSwimMessage` writes the tag and fields. `swimMessageBytes`
 * counts those bytes without encoding (the simulator counts millions of messages);
 * test/unit/swim.test.ts checks it against `encodeSwimMessage` and the round trip through
 * `decodeSwimMessage` for arbitrary messages.
 *
 * The tags are not in the wire's message table yet (src/core/wire/messages.ts, being reshaped by
 * issue 19): when SWIM is wired in they are appended there, as new tags an older node refuses as
 * unknown, so a mixed cluster keeps the old gossip until every node speaks the new one.
 */
import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';
import { frameHeaderBytes } from '../wire/frames.js';
import type { MemberLifecycle } from './membership.js';

/** What a member believes of another (SWIM's alive / suspect / dead; `left` is a member that said goodbye). */
export type SwimState = 'alive' | 'suspect' | 'dead' | 'left';

/**
 * One member as SWIM disseminates it. (generation, version) orders a member's records:
 * `generation` grows on every restart (ringkv's MemberRecord.generation), `version` is SWIM's
 * incarnation number, raised only by the member itself (to refute a suspicion, or to publish a
 * change of its own lifecycle). At one (generation, version), dead beats suspect beats alive.
 */
export interface SwimRecord {
  readonly id: string;
  readonly address: string;
  readonly generation: number;
  readonly version: number;
  readonly state: SwimState;
  readonly lifecycle: MemberLifecycle;
  /** Who suspected or declared it (for Lifeguard's independent confirmations); '' for alive. */
  readonly accuser: string;
}

/** A member as the digest names it: enough to tell who has the newer record, not the record. */
export interface SwimDigestEntry {
  readonly id: string;
  readonly generation: number;
  readonly version: number;
  readonly state: SwimState;
}

/** Are you alive? Carries news (`updates`) both ways, as SWIM's piggybacking does. */
export interface SwimPing {
  readonly type: 'swim-ping';
  readonly sequence: number;
  readonly from: string;
  /** The member the sender means to reach, so a reused address is not taken for it. */
  readonly target: string;
  readonly updates: readonly SwimRecord[];
}

/** The answer to a ping (also relayed back by an indirect prober). */
export interface SwimAck {
  readonly type: 'swim-ack';
  readonly sequence: number;
  readonly from: string;
  readonly updates: readonly SwimRecord[];
}

/** Please ping `target` for me and relay its ack (SWIM's indirect probe). */
export interface SwimPingRequest {
  readonly type: 'swim-ping-req';
  readonly sequence: number;
  readonly from: string;
  readonly target: string;
  readonly updates: readonly SwimRecord[];
}

/** Lifeguard's nack: the indirect prober is alive and tried, but `target` did not answer in time. */
export interface SwimNack {
  readonly type: 'swim-nack';
  readonly sequence: number;
  readonly from: string;
}

/** News only, sent every gossip interval to a few members while there is news. */
export interface SwimGossip {
  readonly type: 'swim-gossip';
  readonly from: string;
  readonly updates: readonly SwimRecord[];
}

/**
 * A window of the sender's membership as digests: the entries whose ids follow `afterId` in id
 * order, through `throughId` ('' when the window runs to the end of the sender's list). The
 * cluster state (ring, bucket properties) travels as its versions only.
 */
export interface SwimDigest {
  readonly type: 'swim-digest';
  readonly sequence: number;
  readonly from: string;
  readonly afterId: string;
  readonly throughId: string;
  readonly ringVersion: number;
  readonly bucketPropertiesVersion: number;
  readonly entries: readonly SwimDigestEntry[];
}

/**
 * The answer to a digest: the receiver's records in the window that are newer or unknown to the
 * sender, the ids it wants because the sender's are newer, and how far it covered
 * (`coveredThroughId`, '' for the end): records stop at the byte budget, and the sender's next
 * window starts after the last one sent.
 */
export interface SwimDigestReply {
  readonly type: 'swim-digest-reply';
  readonly sequence: number;
  readonly from: string;
  readonly coveredThroughId: string;
  readonly ringVersion: number;
  readonly bucketPropertiesVersion: number;
  readonly records: readonly SwimRecord[];
  readonly wanted: readonly string[];
}

/** The records a digest reply wanted (the third message of Cassandra's SYN/ACK/ACK2). */
export interface SwimRecords {
  readonly type: 'swim-records';
  readonly from: string;
  readonly records: readonly SwimRecord[];
}

/** Every SWIM message. */
export type SwimMessage = SwimPing | SwimAck | SwimPingRequest | SwimNack | SwimGossip | SwimDigest | SwimDigestReply | SwimRecords;

/** Payload tags, proposed for the wire's table (append-only there, after its last tag). */
const tags = {
  'swim-ping': 60,
  'swim-ack': 61,
  'swim-ping-req': 62,
  'swim-nack': 63,
  'swim-gossip': 64,
  'swim-digest': 65,
  'swim-digest-reply': 66,
  'swim-records': 67,
} as const satisfies Record<SwimMessage['type'], number>;

const states: readonly SwimState[] = ['alive', 'suspect', 'dead', 'left'];
const lifecycles: readonly MemberLifecycle[] = ['joining', 'up', 'leaving', 'left', 'removed'];

/** The bytes before a message in a frame: the frame header (a frame carries one message). */
export const swimFramingBytes = frameHeaderBytes;

/** The bytes of `value` as an unsigned LEB128 varint. */
export function varintBytes(value: number): number {
  let bytes = 1;
  let remaining = value;
  while (remaining >= 0x80) {
    remaining = Math.floor(remaining / 0x80);
    bytes++;
  }
  return bytes;
}

/** The bytes of a length-prefixed UTF-8 string. */
export function stringBytes(value: string): number {
  const length = Buffer.byteLength(value, 'utf8');
  return varintBytes(length) + length;
}

/** The bytes one record takes inside a message. */
export function recordBytes(record: SwimRecord): number {
  return stringBytes(record.id) + stringBytes(record.address) + varintBytes(record.generation) + varintBytes(record.version) + 2 + stringBytes(record.accuser);
}

/** The bytes one digest entry takes inside a message. */
export function digestEntryBytes(entry: SwimDigestEntry): number {
  return stringBytes(entry.id) + varintBytes(entry.generation) + varintBytes(entry.version) + 1;
}

function listBytes<T>(items: readonly T[], itemBytes: (item: T) => number): number {
  let total = varintBytes(items.length);
  for (const item of items) total += itemBytes(item);
  return total;
}

/** The payload bytes of `message` apart from its list of records (what piggybacked news has to fit beside). */
function fixedPayloadBytes(message: SwimMessage): number {
  switch (message.type) {
    case 'swim-ping':
    case 'swim-ping-req':
      return 1 + varintBytes(message.sequence) + stringBytes(message.from) + stringBytes(message.target);
    case 'swim-ack':
      return 1 + varintBytes(message.sequence) + stringBytes(message.from);
    case 'swim-nack':
      return 1 + varintBytes(message.sequence) + stringBytes(message.from);
    case 'swim-gossip':
    case 'swim-records':
      return 1 + stringBytes(message.from);
    case 'swim-digest':
      return (
        1 +
        varintBytes(message.sequence) +
        stringBytes(message.from) +
        stringBytes(message.afterId) +
        stringBytes(message.throughId) +
        varintBytes(message.ringVersion) +
        varintBytes(message.bucketPropertiesVersion)
      );
    case 'swim-digest-reply':
      return (
        1 +
        varintBytes(message.sequence) +
        stringBytes(message.from) +
        stringBytes(message.coveredThroughId) +
        varintBytes(message.ringVersion) +
        varintBytes(message.bucketPropertiesVersion) +
        listBytes(message.wanted, stringBytes)
      );
  }
}

/** The bytes `message` takes on the framed wire: frame header, tag and fields. */
export function swimMessageBytes(message: SwimMessage): number {
  const fixed = swimFramingBytes + fixedPayloadBytes(message);
  switch (message.type) {
    case 'swim-nack':
      return fixed;
    case 'swim-digest':
      return fixed + listBytes(message.entries, digestEntryBytes);
    case 'swim-ping':
    case 'swim-ack':
    case 'swim-ping-req':
    case 'swim-gossip':
      return fixed + listBytes(message.updates, recordBytes);
    case 'swim-digest-reply':
    case 'swim-records':
      return fixed + listBytes(message.records, recordBytes);
  }
}

function writeRecord(writer: ByteWriter, record: SwimRecord): void {
  writer.string(record.id).string(record.address).varint(record.generation).varint(record.version);
  writer.u8(states.indexOf(record.state)).u8(lifecycles.indexOf(record.lifecycle)).string(record.accuser);
}

function readRecord(reader: ByteReader): SwimRecord {
  const id = reader.string();
  const address = reader.string();
  const generation = reader.varint();
  const version = reader.varint();
  const state = states[reader.u8()];
  const lifecycle = lifecycles[reader.u8()];
  if (state === undefined || lifecycle === undefined) throw new KvError('KV_BAD_REQUEST', 'a SWIM record with an unknown state or lifecycle; is the peer a newer ringkv?');
  return { id, address, generation, version, state, lifecycle, accuser: reader.string() };
}

function writeList<T>(writer: ByteWriter, items: readonly T[], write: (item: T) => void): void {
  writer.varint(items.length);
  for (const item of items) write(item);
}

function readList<T>(reader: ByteReader, read: () => T): T[] {
  const count = reader.varint();
  const items: T[] = [];
  for (let index = 0; index < count; index++) items.push(read());
  return items;
}

/** The tag and fields of `message` (what follows the frame header). */
export function encodeSwimMessage(message: SwimMessage): Buffer {
  const writer = new ByteWriter().u8(tags[message.type]);
  const records = (items: readonly SwimRecord[]): void => writeList(writer, items, (record) => writeRecord(writer, record));
  switch (message.type) {
    case 'swim-ping':
    case 'swim-ping-req':
      writer.varint(message.sequence).string(message.from).string(message.target);
      records(message.updates);
      break;
    case 'swim-ack':
      writer.varint(message.sequence).string(message.from);
      records(message.updates);
      break;
    case 'swim-nack':
      writer.varint(message.sequence).string(message.from);
      break;
    case 'swim-gossip':
      writer.string(message.from);
      records(message.updates);
      break;
    case 'swim-records':
      writer.string(message.from);
      records(message.records);
      break;
    case 'swim-digest':
      writer.varint(message.sequence).string(message.from).string(message.afterId).string(message.throughId);
      writer.varint(message.ringVersion).varint(message.bucketPropertiesVersion);
      writeList(writer, message.entries, (entry) => writer.string(entry.id).varint(entry.generation).varint(entry.version).u8(states.indexOf(entry.state)));
      break;
    case 'swim-digest-reply':
      writer.varint(message.sequence).string(message.from).string(message.coveredThroughId);
      writer.varint(message.ringVersion).varint(message.bucketPropertiesVersion);
      writeList(writer, message.wanted, (id) => writer.string(id));
      records(message.records);
      break;
  }
  return Buffer.from(writer.finish());
}

/** Reads what encodeSwimMessage wrote; a malformed payload throws KV_BAD_REQUEST. */
export function decodeSwimMessage(payload: Uint8Array): SwimMessage {
  const reader = new ByteReader(payload);
  const tag = reader.u8();
  const records = (): SwimRecord[] => readList(reader, () => readRecord(reader));
  let message: SwimMessage;
  switch (tag) {
    case tags['swim-ping']:
    case tags['swim-ping-req']: {
      const type = tag === tags['swim-ping'] ? 'swim-ping' : 'swim-ping-req';
      message = { type, sequence: reader.varint(), from: reader.string(), target: reader.string(), updates: records() };
      break;
    }
    case tags['swim-ack']:
      message = { type: 'swim-ack', sequence: reader.varint(), from: reader.string(), updates: records() };
      break;
    case tags['swim-nack']:
      message = { type: 'swim-nack', sequence: reader.varint(), from: reader.string() };
      break;
    case tags['swim-gossip']:
      message = { type: 'swim-gossip', from: reader.string(), updates: records() };
      break;
    case tags['swim-records']:
      message = { type: 'swim-records', from: reader.string(), records: records() };
      break;
    case tags['swim-digest']:
      message = {
        type: 'swim-digest',
        sequence: reader.varint(),
        from: reader.string(),
        afterId: reader.string(),
        throughId: reader.string(),
        ringVersion: reader.varint(),
        bucketPropertiesVersion: reader.varint(),
        entries: readList(reader, () => {
          const id = reader.string();
          const generation = reader.varint();
          const version = reader.varint();
          const state = states[reader.u8()];
          if (state === undefined) throw new KvError('KV_BAD_REQUEST', 'a SWIM digest entry with an unknown state; is the peer a newer ringkv?');
          return { id, generation, version, state };
        }),
      };
      break;
    case tags['swim-digest-reply']:
      message = {
        type: 'swim-digest-reply',
        sequence: reader.varint(),
        from: reader.string(),
        coveredThroughId: reader.string(),
        ringVersion: reader.varint(),
        bucketPropertiesVersion: reader.varint(),
        wanted: readList(reader, () => reader.string()),
        records: records(),
      };
      break;
    default:
      throw new KvError('KV_BAD_REQUEST', `unknown SWIM message tag ${tag}; is the peer a newer ringkv?`);
  }
  if (!reader.done()) throw new KvError('KV_BAD_REQUEST', `${message.type} has bytes after its last field`);
  return message;
}
