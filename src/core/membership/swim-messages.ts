/**
 * The messages of SWIM membership (src/core/membership/swim.ts) and their size on the framed
 * peer wire. Each message is one frame: the 13-byte frame header of src/core/wire/frames.ts,
 * then the message: a one-byte tag and the fields
 * as the message table writes them (src/core/wire/message-table.ts, tags 60-69: unsigned LEB128
 * varints, length-prefixed UTF-8 strings). The table is the one definition of the layout;
 * `swimMessageBytes` counts the same bytes without encoding, because the member sizes its
 * piggybacked news with it on every message and the simulator counts millions of messages.
 * test/unit/swim.test.ts checks it equals the table's encoding for arbitrary messages.
 */
import type { NodeLocation } from '../ring/ring.js';
import { frameHeaderBytes } from '../wire/frames.js';
import type { MemberLifecycle } from './membership.js';

/**
 * What a member believes of another (SWIM's alive / suspect / dead; `left` is a member that said
 * goodbye; `removed` one that `ringkv remove` took out for good, which no later record undoes).
 */
export type SwimState = 'alive' | 'suspect' | 'dead' | 'left' | 'removed';

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
  /** The ring version whose incoming partitions this member has all streamed in (0: none yet); the claimant completes a ring change on it. */
  readonly transfersDoneForRing: number;
  /** Where the member runs (`--placement-host`, `--zone`); absent for a host of its own in no zone. */
  readonly location?: NodeLocation;
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
  /** A hash of the sender's ring (ringHash in src/core/ring/ring.ts): two rings of one version that differ are told apart and settled. */
  readonly ringHash: number;
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
  readonly ringHash: number;
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
  return (
    stringBytes(record.id) +
    stringBytes(record.address) +
    varintBytes(record.generation) +
    varintBytes(record.version) +
    2 +
    stringBytes(record.accuser) +
    varintBytes(record.transfersDoneForRing) +
    stringBytes(record.location?.host ?? '') +
    stringBytes(record.location?.zone ?? '')
  );
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
        varintBytes(message.ringHash) +
        varintBytes(message.bucketPropertiesVersion)
      );
    case 'swim-digest-reply':
      return (
        1 +
        varintBytes(message.sequence) +
        stringBytes(message.from) +
        stringBytes(message.coveredThroughId) +
        varintBytes(message.ringVersion) +
        varintBytes(message.ringHash) +
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
