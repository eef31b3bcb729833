import { merkleFanout, merkleLeafCount } from '../antientropy/merkle-tree.js';
import type { Ballot } from '../consensus/ballot.js';
import type { AcceptorReply, Proposal } from '../consensus/acceptor.js';
import { readRegisterState, writeRegisterState } from '../consensus/acceptor-codec.js';
import type { DataTypeUpdate } from '../datatypes/data-type.js';
import { maxContextDots } from '../versioning/context.js';
import { writeObject } from '../versioning/object-codec.js';
import type { Precondition } from '../versioning/preconditions.js';
import { maxTtlSeconds } from '../versioning/versioned-object.js';
import type { ByteReader, ByteWriter } from './bytes.js';
import {
  type Limit,
  countLimit,
  lengthLimit,
  malformed,
  maxDataKeyBytes,
  readContext,
  readCount,
  readDataKey,
  readDataKeys,
  readDigests,
  readDot,
  readFlag,
  readHash,
  readHashes,
  readItems,
  readMode,
  readOptionalObject,
  readText,
  readValue,
  readValues,
  readVector,
  readWireObject,
  valueLimit,
  writeContext,
  writeDataKey,
  writeDataKeys,
  writeDigests,
  writeDot,
  writeFlag,
  writeHash,
  writeHashes,
  writeItems,
  writeMode,
  writeOptionalObject,
  writeValues,
  writeVector,
} from './fields.js';
import type { QuorumSetting } from '../buckets.js';
import type { WriteIntent } from '../versioning/versioned-object.js';
import type { CoordinatePutRequest, ForwardPutRequest, LoggedWrite, PeerReply, PeerRequest } from './messages.js';
import { decodeClusterState, encodeClusterState } from './state-codec.js';
import type { SwimDigestEntry, SwimPing, SwimPingRequest, SwimRecord, SwimState } from '../membership/swim-messages.js';
import type { MemberLifecycle } from '../membership/membership.js';
import { viewLimits } from '../membership/view-validation.js';
import { KvError } from '../../util/errors.js';

/**
 * Every peer message, defined once: its tag, its name (the message's `type`), how it is written
 * and read, and the bounds its reader checks. codec.ts is a driver over these two tables; the
 * fuzz test iterates them; docs/WIRE.md describes them. A message on the wire is
 * [u8 tag][fields], one per frame (src/core/wire/frames.ts), requests and replies in tag spaces
 * of their own (the frame type says which).
 *
 * Tags are append-only: a new message, or a new layout of an old one, gets a new tag, and a
 * retired tag is never reused (the list below the tables). Changing the tables changes the
 * protocol: bump protocolVersions in frames.ts and follow docs/WIRE.md's version policy.
 */

/** Shared numbers senders stay inside and readers check (the entries' limits are built from them). */
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
  /** A storage key: position, bucket length, bucket and key. */
  maxDataKeyBytes,
  /** Keys per listing page (the HTTP edge allows limit 1..10,000). */
  maxListKeys: 10_000,
  /** A key, bucket, prefix or cursor in a listing, in UTF-8 bytes (the config caps keys at 60,000 bytes). */
  maxListKeyBytes: 65_536,
  /** A digest's text (16 hex digits today). */
  maxDigestLength: 64,
  /** Elements added or removed by one data type update (the HTTP body limit keeps real ones far below). */
  maxSetUpdateElements: 1_000_000,
  /** Records, digest entries or wanted ids in one SWIM message (senders cap a message at about 1 KiB, so about 100 fit). */
  maxSwimItems: 1024,
  /** A node id, placement host or zone in a SWIM record, in UTF-8 bytes. */
  maxSwimIdBytes: viewLimits.maxIdLength,
  /** A member's peer address, host:port. */
  maxSwimAddressBytes: viewLimits.maxAddressLength,
  /** An error reply's details as JSON text, in UTF-8 bytes (a sender leaves out details that do not fit). */
  maxErrorDetailsBytes: 4096,
  /** The longest Retry-After an error reply carries: a day. */
  maxRetryAfterSeconds: 86_400,
  /** The largest numeric quorum (n_val is at most 16). */
  maxQuorum: 16,
  /** The longest deadline a forwarded write carries, and so the longest a client request may ask for (src/core/client-limits.ts). */
  maxTimeoutMs: 600_000,
  /** Writes per watch poll answer. */
  maxWatchWrites: 10_000,
  /** The longest a watch poll waits on the peer (config watch.pollWaitMs allows at most 60 s). */
  maxWatchWaitMs: 60_000,
  /** A watch log's epoch (16 hex digits today). */
  maxEpochLength: 64,
} as const;

/** Any message a peer sends. */
export type PeerMessage = PeerRequest | PeerReply;

/** One message of the table. `read` checks `limits` as it decodes; `write` trusts the sender. */
export interface MessageEntry<M extends PeerMessage> {
  readonly tag: number;
  readonly name: M['type'];
  readonly limits: Readonly<Record<string, Limit>>;
  readonly write: (writer: ByteWriter, message: M) => void;
  readonly read: (reader: ByteReader) => M;
}

type EntryTable<U extends PeerMessage> = { readonly [K in U['type']]: MessageEntry<Extract<U, { type: K }>> };

/** Builds an entry whose reader is handed its own limits, so the bounds it checks are the ones the entry lists. */
function message<M extends PeerMessage, L extends Readonly<Record<string, Limit>>>(entry: {
  readonly tag: number;
  readonly name: M['type'];
  readonly limits: L;
  readonly write: (writer: ByteWriter, message: M) => void;
  readonly read: (reader: ByteReader, limits: L) => M;
}): MessageEntry<M> {
  const { tag, name, limits, write, read } = entry;
  return { tag, name, limits, write, read: (reader) => read(reader, limits) };
}

const partitionLimit = (field: string): Limit => valueLimit(field, 0, wireLimits.maxPartition);
const partitionsLimit = (field: string): Limit => countLimit(field, wireLimits.maxPartition + 1);

/** coordinate-put's option bits: a TTL in seconds follows; a precondition and the read it is checked against follow. */
const ttlOption = 1;
const preconditionOption = 2;

/** A forwarded write's quorum: absent, a level, or a number that follows. */
const quorumKinds = [undefined, 'one', 'quorum', 'all'] as const;
const numericQuorum = 4;

function writeQuorum(writer: ByteWriter, quorum: QuorumSetting | undefined): void {
  if (typeof quorum === 'number') writer.u8(numericQuorum).varint(quorum);
  else writer.u8(quorumKinds.indexOf(quorum));
}

function readQuorum(reader: ByteReader, limit: Limit): QuorumSetting | undefined {
  const kind = reader.u8();
  if (kind === numericQuorum) return readValue(reader, limit);
  if (kind >= quorumKinds.length) throw malformed(`a forwarded write with an unknown quorum kind ${kind}`);
  return quorumKinds[kind];
}

/** A client write's fields, as coordinate-put and forward-put carry them: [value][content type][tombstone][now f64][context][optional ttl]. */
function writeIntent(writer: ByteWriter, write: WriteIntent): void {
  writer.bytes(write.value).string(write.contentType);
  writeFlag(writer, write.tombstone);
  writer.f64(write.nowMs);
  writeContext(writer, write.context);
  writeFlag(writer, write.ttlSeconds !== undefined);
  if (write.ttlSeconds !== undefined) writer.varint(write.ttlSeconds);
}

function readIntent(reader: ByteReader, limits: { readonly dots: Limit; readonly ttlSeconds: Limit }): WriteIntent {
  const value = Buffer.from(reader.bytes());
  const contentType = reader.string();
  const tombstone = readFlag(reader, 'write.tombstone');
  const nowMs = reader.f64();
  const context = readContext(reader, limits.dots);
  const base = { value, contentType, tombstone, nowMs, context };
  return readFlag(reader, 'write.ttl') ? { ...base, ttlSeconds: readValue(reader, limits.ttlSeconds) } : base;
}

/** Data type update kinds. */
const counterUpdate = 1;
const setUpdate = 2;

function writeDataTypeUpdate(writer: ByteWriter, update: DataTypeUpdate): void {
  if (update.type === 'counter') {
    writer.u8(counterUpdate).f64(update.increment);
    return;
  }
  writer.u8(setUpdate).varint(update.add.length);
  for (const element of update.add) writer.string(element);
  writer.varint(update.remove.length);
  for (const element of update.remove) writer.string(element);
  writeFlag(writer, update.context !== undefined);
  if (update.context !== undefined) writeContext(writer, update.context);
}

function readStrings(reader: ByteReader, count: Limit): string[] {
  const length = readCount(reader, count);
  const elements: string[] = [];
  for (let index = 0; index < length; index++) elements.push(reader.string());
  return elements;
}

function readDataTypeUpdate(reader: ByteReader, limits: { add: Limit; remove: Limit; dots: Limit }): DataTypeUpdate {
  const kind = reader.u8();
  if (kind === counterUpdate) {
    const increment = reader.f64();
    if (!Number.isSafeInteger(increment)) throw malformed(`a counter increment ${increment} that is not a safe integer`);
    return { type: 'counter', increment };
  }
  if (kind !== setUpdate) throw malformed(`an unknown data type update ${kind}`);
  const add = readStrings(reader, limits.add);
  const remove = readStrings(reader, limits.remove);
  return readFlag(reader, 'context') ? { type: 'set', add, remove, context: readContext(reader, limits.dots) } : { type: 'set', add, remove };
}

function writeClusterState(writer: ByteWriter, state: unknown): void {
  const bytes = encodeClusterState(state);
  if (bytes === undefined) throw new KvError('KV_INTERNAL', 'a cluster state outside its layout (src/core/wire/state-codec.ts); this is a bug in the sender');
  writer.bytes(bytes);
}

/** A ballot: [round][proposer]. */
function writeBallot(writer: ByteWriter, ballot: Ballot): void {
  writer.varint(ballot.round).string(ballot.proposer);
}

function readBallot(reader: ByteReader): Ballot {
  return { round: reader.varint(), proposer: reader.string() };
}

/** A proposal: [ballot][register state] (writeRegisterState: version, value, the ids of its newest writes). */
function writeProposal(writer: ByteWriter, proposal: Proposal): void {
  writeBallot(writer, proposal.ballot);
  writeRegisterState(writer, proposal.state);
}

function readProposal(reader: ByteReader): Proposal {
  const ballot = readBallot(reader);
  return { ballot, state: readRegisterState(reader) };
}

function writeOptionalProposal(writer: ByteWriter, proposal: Proposal | null): void {
  writeFlag(writer, proposal !== null);
  if (proposal !== null) writeProposal(writer, proposal);
}

function readOptionalProposal(reader: ByteReader, field: string): Proposal | null {
  return readFlag(reader, field) ? readProposal(reader) : null;
}

/** The kinds of acceptor answer in a paxos-reply, by their byte. Append-only, like tags. */
const acceptorReplyKinds = ['none', 'promise', 'prepare-rejected', 'accepted', 'propose-rejected'] as const;

function writeAcceptorReply(writer: ByteWriter, reply: AcceptorReply | null): void {
  if (reply === null) {
    writer.u8(0);
    return;
  }
  writer.u8(acceptorReplyKinds.indexOf(reply.type));
  writeBallot(writer, reply.ballot);
  switch (reply.type) {
    case 'promise':
      writeOptionalProposal(writer, reply.accepted);
      writeOptionalProposal(writer, reply.committed);
      return;
    case 'prepare-rejected':
    case 'propose-rejected':
      writeBallot(writer, reply.promised);
      writer.varint(reply.epoch);
      return;
    case 'accepted':
      return;
  }
}

function readAcceptorReply(reader: ByteReader): AcceptorReply | null {
  const kind = acceptorReplyKinds[reader.u8()];
  if (kind === undefined) throw malformed('an unknown acceptor answer');
  if (kind === 'none') return null;
  const ballot = readBallot(reader);
  switch (kind) {
    case 'promise':
      return { type: 'promise', ballot, accepted: readOptionalProposal(reader, 'accepted'), committed: readOptionalProposal(reader, 'committed') };
    case 'prepare-rejected':
    case 'propose-rejected':
      return { type: kind, ballot, promised: readBallot(reader), epoch: reader.varint() };
    case 'accepted':
      return { type: 'accepted', ballot };
  }
}

/** SWIM states and member lifecycles by their number on the wire. Append-only, like tags. */
const swimStates: readonly SwimState[] = ['alive', 'suspect', 'dead', 'left', 'removed'];
const lifecycles: readonly MemberLifecycle[] = ['joining', 'up', 'leaving', 'left', 'removed'];

/** The limits of a list of SWIM records under `field` (each record's strings bounded). */
function recordLimits(field: string) {
  return {
    [`${field}Count`]: countLimit(field, wireLimits.maxSwimItems),
    [`${field}Id`]: lengthLimit(`${field}[].id`, wireLimits.maxSwimIdBytes),
    [`${field}Address`]: lengthLimit(`${field}[].address`, wireLimits.maxSwimAddressBytes),
    [`${field}Accuser`]: lengthLimit(`${field}[].accuser`, wireLimits.maxSwimIdBytes),
    [`${field}Host`]: lengthLimit(`${field}[].location.host`, wireLimits.maxSwimIdBytes),
    [`${field}Zone`]: lengthLimit(`${field}[].location.zone`, wireLimits.maxSwimIdBytes),
  } as Readonly<Record<string, Limit>>;
}

function swimState(reader: ByteReader): SwimState {
  const number = reader.u8();
  const state = swimStates[number];
  if (state === undefined) throw malformed(`a SWIM state ${number} this node does not know`);
  return state;
}

/** [id][address][generation][version][u8 state][u8 lifecycle][accuser][transfersDoneForRing][host, '' for none][zone, '' for none]. */
function writeRecords(writer: ByteWriter, records: readonly SwimRecord[]): void {
  writer.varint(records.length);
  for (const record of records) {
    writer.string(record.id).string(record.address).varint(record.generation).varint(record.version);
    writer.u8(swimStates.indexOf(record.state)).u8(lifecycles.indexOf(record.lifecycle)).string(record.accuser).varint(record.transfersDoneForRing);
    writer.string(record.location?.host ?? '').string(record.location?.zone ?? '');
  }
}

function readRecords(reader: ByteReader, limits: Readonly<Record<string, Limit>>, field: string): SwimRecord[] {
  const limit = (name: string): Limit => limits[`${field}${name}`] as Limit;
  const count = readCount(reader, limit('Count'));
  const records: SwimRecord[] = [];
  for (let index = 0; index < count; index++) {
    const id = readText(reader, limit('Id'));
    const address = readText(reader, limit('Address'));
    const generation = reader.varint();
    const version = reader.varint();
    const state = swimState(reader);
    const lifecycleNumber = reader.u8();
    const lifecycle = lifecycles[lifecycleNumber];
    if (lifecycle === undefined) throw malformed(`a member lifecycle ${lifecycleNumber} this node does not know`);
    const accuser = readText(reader, limit('Accuser'));
    const transfersDoneForRing = reader.varint();
    const host = readText(reader, limit('Host'));
    const zone = readText(reader, limit('Zone'));
    if (host === '' && zone !== '') throw malformed('a member location with a zone but no host');
    const location = host === '' ? undefined : zone === '' ? { host } : { host, zone };
    records.push({ id, address, generation, version, state, lifecycle, accuser, transfersDoneForRing, ...(location === undefined ? {} : { location }) });
  }
  return records;
}

function writeDigestEntries(writer: ByteWriter, entries: readonly SwimDigestEntry[]): void {
  writer.varint(entries.length);
  for (const entry of entries) writer.string(entry.id).varint(entry.generation).varint(entry.version).u8(swimStates.indexOf(entry.state));
}

function readDigestEntries(reader: ByteReader, count: Limit, id: Limit): SwimDigestEntry[] {
  const length = readCount(reader, count);
  const entries: SwimDigestEntry[] = [];
  for (let index = 0; index < length; index++)
    entries.push({ id: readText(reader, id), generation: reader.varint(), version: reader.varint(), state: swimState(reader) });
  return entries;
}

const swimFrom = lengthLimit('from', wireLimits.maxSwimIdBytes);
const swimTarget = lengthLimit('target', wireLimits.maxSwimIdBytes);

/** The one layout of swim-ping and swim-ping-req: [sequence][from][target][records]. */
const probeLimits = { from: swimFrom, target: swimTarget, ...recordLimits('updates') };

function writeProbe(writer: ByteWriter, probe: SwimPing | SwimPingRequest): void {
  writer.varint(probe.sequence).string(probe.from).string(probe.target);
  writeRecords(writer, probe.updates);
}

function readProbe(reader: ByteReader, limits: typeof probeLimits): Omit<SwimPing, 'type'> {
  const sequence = reader.varint();
  const from = readText(reader, limits.from);
  const target = readText(reader, limits.target);
  return { sequence, from, target, updates: readRecords(reader, limits, 'updates') };
}
/** Every request a peer can send. */
export const requestMessages: EntryTable<PeerRequest> = {
  'replica-get': message({
    tag: 1,
    name: 'replica-get',
    limits: {},
    write: (writer, request) => writer.string(request.bucket).string(request.key),
    read: (reader) => ({ type: 'replica-get', bucket: reader.string(), key: reader.string() }),
  }),
  'replica-put': message({
    tag: 3,
    name: 'replica-put',
    limits: {},
    write: (writer, request) => {
      writer.string(request.bucket).string(request.key);
      writeObject(writer, request.object);
      writeMode(writer, request.mode);
      writeFlag(writer, request.sync);
      // '' when the receiver is a primary; a fallback's hint names the primary the write belongs to.
      writer.string(request.hintFor ?? '');
    },
    read: (reader) => {
      const bucket = reader.string();
      const key = reader.string();
      const object = readWireObject(reader);
      const mode = readMode(reader);
      const sync = readFlag(reader, 'sync');
      const hintFor = reader.string();
      return { type: 'replica-put', bucket, key, object, mode, sync, ...(hintFor === '' ? {} : { hintFor }) };
    },
  }),
  'handoff-fetch': message({
    tag: 6,
    name: 'handoff-fetch',
    limits: {
      partition: partitionLimit('partition'),
      maxKeys: valueLimit('maxKeys', 1, wireLimits.maxPageKeys),
      maxBytes: valueLimit('maxBytes', 1, wireLimits.maxPageBytes),
    },
    write: (writer, request) => {
      writer.varint(request.partition);
      writeFlag(writer, request.after !== null);
      if (request.after !== null) writeDataKey(writer, request.after);
      writer.varint(request.maxKeys).varint(request.maxBytes);
    },
    read: (reader, limits) => {
      const partition = readValue(reader, limits.partition);
      const after = readFlag(reader, 'cursor') ? readDataKey(reader) : null;
      const maxKeys = readValue(reader, limits.maxKeys);
      return { type: 'handoff-fetch', partition, after, maxKeys, maxBytes: readValue(reader, limits.maxBytes) };
    },
  }),
  /** Handoff's question before it streams: which of these partitions the source holds keys of. [count][partition]... */
  'handoff-held': message({
    tag: 42,
    name: 'handoff-held',
    limits: { partitions: partitionsLimit('partitions'), partition: partitionLimit('partitions[]') },
    write: (writer, request) => writeValues(writer, request.partitions),
    read: (reader, limits) => ({ type: 'handoff-held', partitions: readValues(reader, limits.partitions, limits.partition) }),
  }),
  'ae-keys': message({
    tag: 7,
    name: 'ae-keys',
    limits: {
      partition: partitionLimit('partition'),
      leaves: countLimit('leaves', merkleLeafCount),
      leaf: valueLimit('leaves[]', 0, merkleLeafCount - 1),
      items: countLimit('items', wireLimits.maxKeys),
      digest: lengthLimit('items[].digest', wireLimits.maxDigestLength),
    },
    write: (writer, request) => {
      writer.varint(request.partition);
      writeValues(writer, request.leaves);
      writeDigests(writer, request.items);
    },
    read: (reader, limits) => {
      const partition = readValue(reader, limits.partition);
      const leaves = readValues(reader, limits.leaves, limits.leaf);
      return { type: 'ae-keys', partition, leaves, items: readDigests(reader, limits.items, limits.digest) };
    },
  }),
  'ae-fetch': message({
    tag: 8,
    name: 'ae-fetch',
    limits: {
      partition: partitionLimit('partition'),
      keys: countLimit('keys', wireLimits.maxKeys),
      maxBytes: valueLimit('maxBytes', 1, wireLimits.maxPageBytes),
    },
    write: (writer, request) => {
      writer.varint(request.partition);
      writeDataKeys(writer, request.keys);
      writer.varint(request.maxBytes);
    },
    read: (reader, limits) => {
      const partition = readValue(reader, limits.partition);
      const keys = readDataKeys(reader, limits.keys);
      return { type: 'ae-fetch', partition, keys, maxBytes: readValue(reader, limits.maxBytes) };
    },
  }),
  'ae-push': message({
    tag: 9,
    name: 'ae-push',
    limits: { partition: partitionLimit('partition'), items: countLimit('items', wireLimits.maxItems) },
    write: (writer, request) => {
      writer.varint(request.partition);
      writeItems(writer, request.items);
    },
    read: (reader, limits) => {
      const partition = readValue(reader, limits.partition);
      return { type: 'ae-push', partition, items: readItems(reader, limits.items) };
    },
  }),
  'list-keys': message({
    tag: 12,
    name: 'list-keys',
    limits: {
      bucket: lengthLimit('bucket', wireLimits.maxListKeyBytes),
      partitions: partitionsLimit('partitions'),
      partition: partitionLimit('partitions[]'),
      after: lengthLimit('after', wireLimits.maxListKeyBytes),
      prefix: lengthLimit('prefix', wireLimits.maxListKeyBytes),
      limit: valueLimit('limit', 1, wireLimits.maxListKeys),
    },
    write: (writer, request) => {
      writer.string(request.bucket);
      writeValues(writer, request.partitions);
      writeFlag(writer, request.after !== null);
      if (request.after !== null) writer.string(request.after);
      writer.string(request.prefix).varint(request.limit);
    },
    read: (reader, limits) => {
      const bucket = readText(reader, limits.bucket);
      const partitions = readValues(reader, limits.partitions, limits.partition);
      const after = readFlag(reader, 'cursor') ? readText(reader, limits.after) : null;
      const prefix = readText(reader, limits.prefix);
      return { type: 'list-keys', bucket, partitions, after, prefix, limit: readValue(reader, limits.limit) };
    },
  }),
  /**
   * A client write for this replica to coordinate: [bucket][key][value][content type][tombstone]
   * [now f64][context][mode][sync][u8 options] then, by option bit, [ttl] and [precondition kind
   * (0 absent, 1 matches)][vector if matches][base object or none].
   */
  'coordinate-put': message({
    tag: 20,
    name: 'coordinate-put',
    limits: { dots: countLimit('write.context.dots', maxContextDots), ttlSeconds: valueLimit('write.ttlSeconds', 0, maxTtlSeconds) },
    write: (writer, request) => {
      const { write } = request;
      writer.string(request.bucket).string(request.key).bytes(write.value).string(write.contentType);
      writeFlag(writer, write.tombstone);
      writer.f64(write.nowMs);
      writeContext(writer, write.context);
      writeMode(writer, request.mode);
      writeFlag(writer, request.sync);
      writer.u8((write.ttlSeconds === undefined ? 0 : ttlOption) | (request.precondition === undefined ? 0 : preconditionOption));
      if (write.ttlSeconds !== undefined) writer.varint(write.ttlSeconds);
      if (request.precondition === undefined) return;
      writer.u8(request.precondition.kind === 'absent' ? 0 : 1);
      if (request.precondition.kind === 'matches') writeVector(writer, request.precondition.vector);
      writeOptionalObject(writer, request.base ?? null);
    },
    read: (reader, limits) => {
      const bucket = reader.string();
      const key = reader.string();
      const value = Buffer.from(reader.bytes());
      const contentType = reader.string();
      const tombstone = readFlag(reader, 'tombstone');
      const nowMs = reader.f64();
      const context = readContext(reader, limits.dots);
      const mode = readMode(reader);
      const sync = readFlag(reader, 'sync');
      const options = reader.u8();
      if ((options & ~(ttlOption | preconditionOption)) !== 0) throw malformed(`a forwarded write with unknown options ${options}`);
      const base = { value, contentType, tombstone, nowMs, context };
      const write = (options & ttlOption) !== 0 ? { ...base, ttlSeconds: readValue(reader, limits.ttlSeconds) } : base;
      const request: CoordinatePutRequest = { type: 'coordinate-put', bucket, key, write, mode, sync };
      if ((options & preconditionOption) === 0) return request;
      const kind = reader.u8();
      if (kind > 1) throw malformed(`a conditional write with an unknown precondition kind ${kind}`);
      const precondition: Precondition = kind === 0 ? { kind: 'absent' } : { kind: 'matches', vector: readVector(reader) };
      return { ...request, precondition, base: readOptionalObject(reader, 'base') };
    },
  }),
  /**
   * A client write handed to its coordinating replica: [bucket][key][value][content type]
   * [tombstone][now f64][context][optional ttl][w][pw][dw][timeoutMs], each quorum a u8 kind (0
   * absent, 1 one, 2 quorum, 3 all, 4 a varint follows).
   */
  'forward-put': message({
    tag: 21,
    name: 'forward-put',
    limits: {
      dots: countLimit('write.context.dots', maxContextDots),
      ttlSeconds: valueLimit('write.ttlSeconds', 0, maxTtlSeconds),
      w: valueLimit('w', 1, wireLimits.maxQuorum),
      pw: valueLimit('pw', 1, wireLimits.maxQuorum),
      dw: valueLimit('dw', 1, wireLimits.maxQuorum),
      timeoutMs: valueLimit('timeoutMs', 1, wireLimits.maxTimeoutMs),
    },
    write: (writer, request) => {
      writer.string(request.bucket).string(request.key);
      writeIntent(writer, request.write);
      writeQuorum(writer, request.w);
      writeQuorum(writer, request.pw);
      writeQuorum(writer, request.dw);
      writer.varint(request.timeoutMs);
    },
    read: (reader, limits) => {
      const bucket = reader.string();
      const key = reader.string();
      const write = readIntent(reader, limits);
      const w = readQuorum(reader, limits.w);
      const pw = readQuorum(reader, limits.pw);
      const dw = readQuorum(reader, limits.dw);
      const request: ForwardPutRequest = { type: 'forward-put', bucket, key, write, timeoutMs: readValue(reader, limits.timeoutMs) };
      return { ...request, ...(w === undefined ? {} : { w }), ...(pw === undefined ? {} : { pw }), ...(dw === undefined ? {} : { dw }) };
    },
  }),
  'dt-update': message({
    tag: 30,
    name: 'dt-update',
    limits: {
      add: countLimit('update.add', wireLimits.maxSetUpdateElements),
      remove: countLimit('update.remove', wireLimits.maxSetUpdateElements),
      dots: countLimit('update.context.dots', maxContextDots),
    },
    write: (writer, request) => {
      writer.string(request.bucket).string(request.key);
      writeDataTypeUpdate(writer, request.update);
      writeFlag(writer, request.sync);
      writeOptionalObject(writer, request.base);
    },
    read: (reader, limits) => {
      const bucket = reader.string();
      const key = reader.string();
      const update = readDataTypeUpdate(reader, limits);
      const sync = readFlag(reader, 'sync');
      return { type: 'dt-update', bucket, key, update, sync, base: readOptionalObject(reader, 'base') };
    },
  }),
  'ae-summary': message({
    tag: 50,
    name: 'ae-summary',
    limits: { roots: partitionsLimit('roots'), partition: partitionLimit('roots[].partition') },
    write: (writer, request) => {
      writer.varint(request.roots.length);
      for (const entry of request.roots) {
        writer.varint(entry.partition);
        writeHash(writer, entry.root);
      }
    },
    read: (reader, limits) => {
      const count = readCount(reader, limits.roots);
      const roots = [];
      for (let index = 0; index < count; index++) roots.push({ partition: readValue(reader, limits.partition), root: readHash(reader) });
      return { type: 'ae-summary', roots };
    },
  }),
  'ae-leaves': message({
    tag: 51,
    name: 'ae-leaves',
    limits: { partition: partitionLimit('partition'), branches: countLimit('branches', merkleFanout), branch: valueLimit('branches[]', 0, merkleFanout - 1) },
    write: (writer, request) => {
      writer.varint(request.partition);
      writeValues(writer, request.branches);
    },
    read: (reader, limits) => {
      const partition = readValue(reader, limits.partition);
      return { type: 'ae-leaves', partition, branches: readValues(reader, limits.branches, limits.branch) };
    },
  }),
  'ae-digest': message({
    tag: 52,
    name: 'ae-digest',
    limits: {},
    write: (writer, request) => writeDataKey(writer, request.dataKey),
    read: (reader) => ({ type: 'ae-digest', dataKey: readDataKey(reader) }),
  }),
  'ae-reap': message({
    tag: 53,
    name: 'ae-reap',
    limits: {},
    write: (writer, request) => {
      writeDataKey(writer, request.dataKey);
      writeHash(writer, request.digest);
    },
    read: (reader) => {
      const dataKey = readDataKey(reader);
      return { type: 'ae-reap', dataKey, digest: readHash(reader) };
    },
  }),
  /** Paxos phase 1a (docs/CONSENSUS.md): [bucket][key][epoch][ballot]. */
  'paxos-prepare': message({
    tag: 70,
    name: 'paxos-prepare',
    limits: {},
    write: (writer, request) => {
      writer.string(request.bucket).string(request.key).varint(request.epoch);
      writeBallot(writer, request.ballot);
    },
    read: (reader) => ({ type: 'paxos-prepare', bucket: reader.string(), key: reader.string(), epoch: reader.varint(), ballot: readBallot(reader) }),
  }),
  /** Paxos phase 2a: [bucket][key][epoch][proposal]. */
  'paxos-propose': message({
    tag: 71,
    name: 'paxos-propose',
    limits: {},
    write: (writer, request) => {
      writer.string(request.bucket).string(request.key).varint(request.epoch);
      writeProposal(writer, request.proposal);
    },
    read: (reader) => ({ type: 'paxos-propose', bucket: reader.string(), key: reader.string(), epoch: reader.varint(), proposal: readProposal(reader) }),
  }),
  /** Paxos learn: [bucket][key][proposal]. */
  'paxos-commit': message({
    tag: 72,
    name: 'paxos-commit',
    limits: {},
    write: (writer, request) => {
      writer.string(request.bucket).string(request.key);
      writeProposal(writer, request.proposal);
    },
    read: (reader) => ({ type: 'paxos-commit', bucket: reader.string(), key: reader.string(), proposal: readProposal(reader) }),
  }),
  /** A backup's listing of a replica's acceptor keys in a partition: [partition][optional after (storage key)][maxKeys]. */
  'paxos-keys': message({
    tag: 73,
    name: 'paxos-keys',
    limits: { partition: partitionLimit('partition'), maxKeys: valueLimit('maxKeys', 1, wireLimits.maxPageKeys) },
    write: (writer, request) => {
      writer.varint(request.partition);
      writeFlag(writer, request.after !== null);
      if (request.after !== null) writeDataKey(writer, request.after);
      writer.varint(request.maxKeys);
    },
    read: (reader, limits) => {
      const partition = readValue(reader, limits.partition);
      const after = readFlag(reader, 'cursor') ? readDataKey(reader) : null;
      return { type: 'paxos-keys', partition, after, maxKeys: readValue(reader, limits.maxKeys) };
    },
  }),
  /** SWIM (src/core/membership/swim.ts): [sequence][from][target][records]; answered by swim-ack, or swim-done when the target is not this node. */
  'swim-ping': message({
    tag: 60,
    name: 'swim-ping',
    limits: probeLimits,
    write: writeProbe,
    read: (reader, limits) => ({ type: 'swim-ping', ...readProbe(reader, limits) }),
  }),
  /** SWIM's indirect probe, as swim-ping; answered (within half a probe timeout) by the relayed swim-ack or a swim-nack. */
  'swim-ping-req': message({
    tag: 62,
    name: 'swim-ping-req',
    limits: probeLimits,
    write: writeProbe,
    read: (reader, limits) => ({ type: 'swim-ping-req', ...readProbe(reader, limits) }),
  }),
  /** News: [from][records]; answered by swim-done. */
  'swim-gossip': message({
    tag: 64,
    name: 'swim-gossip',
    limits: { from: swimFrom, ...recordLimits('updates') },
    write: (writer, request) => {
      writer.string(request.from);
      writeRecords(writer, request.updates);
    },
    read: (reader, limits) => {
      const from = readText(reader, limits.from);
      return { type: 'swim-gossip', from, updates: readRecords(reader, limits, 'updates') };
    },
  }),
  /** A digest window: [sequence][from][afterId][throughId][ringVersion][ringHash][bucketPropertiesVersion][entries: id, generation, version, u8 state]; answered by swim-digest-reply. */
  'swim-digest': message({
    tag: 65,
    name: 'swim-digest',
    limits: {
      from: swimFrom,
      afterId: lengthLimit('afterId', wireLimits.maxSwimIdBytes),
      throughId: lengthLimit('throughId', wireLimits.maxSwimIdBytes),
      ringHash: valueLimit('ringHash', 0, 0xffff_ffff),
      entries: countLimit('entries', wireLimits.maxSwimItems),
      entryId: lengthLimit('entries[].id', wireLimits.maxSwimIdBytes),
    },
    write: (writer, request) => {
      writer.varint(request.sequence).string(request.from).string(request.afterId).string(request.throughId);
      writer.varint(request.ringVersion).varint(request.ringHash).varint(request.bucketPropertiesVersion);
      writeDigestEntries(writer, request.entries);
    },
    read: (reader, limits) => {
      const sequence = reader.varint();
      const from = readText(reader, limits.from);
      const afterId = readText(reader, limits.afterId);
      const throughId = readText(reader, limits.throughId);
      const ringVersion = reader.varint();
      const ringHash = readValue(reader, limits.ringHash);
      const bucketPropertiesVersion = reader.varint();
      return {
        type: 'swim-digest',
        sequence,
        from,
        afterId,
        throughId,
        ringVersion,
        ringHash,
        bucketPropertiesVersion,
        entries: readDigestEntries(reader, limits.entries, limits.entryId),
      };
    },
  }),
  /** The records a digest reply wanted: [from][records]; answered by swim-done. */
  'swim-records': message({
    tag: 67,
    name: 'swim-records',
    limits: { from: swimFrom, ...recordLimits('records') },
    write: (writer, request) => {
      writer.string(request.from);
      writeRecords(writer, request.records);
    },
    read: (reader, limits) => {
      const from = readText(reader, limits.from);
      return { type: 'swim-records', from, records: readRecords(reader, limits, 'records') };
    },
  }),
  /** Fetch the ring and bucket properties whole: no fields; answered by cluster-state-reply. */
  'cluster-state': message({
    tag: 68,
    name: 'cluster-state',
    limits: {},
    write: () => undefined,
    read: () => ({ type: 'cluster-state' }),
  }),
  /** A watch's long poll: [bucket][u8 0 key, 1 prefix][key or prefix][optional cursor: epoch, seq][waitMs][maxWrites]. */
  'watch-poll': message({
    tag: 80,
    name: 'watch-poll',
    limits: {
      bucket: lengthLimit('filter.bucket', wireLimits.maxListKeyBytes),
      name: lengthLimit('filter.name', wireLimits.maxListKeyBytes),
      epoch: lengthLimit('cursor.epoch', wireLimits.maxEpochLength),
      waitMs: valueLimit('waitMs', 0, wireLimits.maxWatchWaitMs),
      maxWrites: valueLimit('maxWrites', 1, wireLimits.maxWatchWrites),
    },
    write: (writer, request) => {
      writer
        .string(request.filter.bucket)
        .u8(request.filter.kind === 'key' ? 0 : 1)
        .string(request.filter.name);
      writeFlag(writer, request.cursor !== null);
      if (request.cursor !== null) writer.string(request.cursor.epoch).varint(request.cursor.seq);
      writer.varint(request.waitMs).varint(request.maxWrites);
    },
    read: (reader, limits) => {
      const bucket = readText(reader, limits.bucket);
      const kind = reader.u8();
      if (kind > 1) throw malformed(`a watch filter of unknown kind ${kind}`);
      const name = readText(reader, limits.name);
      const cursor = readFlag(reader, 'cursor') ? { epoch: readText(reader, limits.epoch), seq: reader.varint() } : null;
      const waitMs = readValue(reader, limits.waitMs);
      return {
        type: 'watch-poll',
        filter: { bucket, kind: kind === 0 ? 'key' : 'prefix', name },
        cursor,
        waitMs,
        maxWrites: readValue(reader, limits.maxWrites),
      };
    },
  }),
};

/** Every reply a peer can send. */
export const replyMessages: EntryTable<PeerReply> = {
  'replica-get-reply': message({
    tag: 1,
    name: 'replica-get-reply',
    limits: {},
    write: (writer, reply) => writeOptionalObject(writer, reply.object),
    read: (reader) => ({ type: 'replica-get-reply', object: readOptionalObject(reader, 'object') }),
  }),
  'replica-put-reply': message({
    tag: 3,
    name: 'replica-put-reply',
    limits: {},
    write: (writer, reply) => writeFlag(writer, reply.durable),
    read: (reader) => ({ type: 'replica-put-reply', durable: readFlag(reader, 'durable') }),
  }),
  /** [code][message][details flag][details: JSON object text][retry-after flag][seconds] */
  error: message({
    tag: 6,
    name: 'error',
    limits: {
      details: lengthLimit('details', wireLimits.maxErrorDetailsBytes),
      retryAfter: valueLimit('retryAfterSeconds', 0, wireLimits.maxRetryAfterSeconds),
    },
    write: (writer, reply) => {
      writer.string(reply.code).string(reply.message);
      writeFlag(writer, reply.details !== undefined);
      if (reply.details !== undefined) writer.string(reply.details);
      writeFlag(writer, reply.retryAfterSeconds !== undefined);
      if (reply.retryAfterSeconds !== undefined) writer.varint(reply.retryAfterSeconds);
    },
    read: (reader, limits) => {
      const code = reader.string();
      const message = reader.string();
      const details = readFlag(reader, 'details') ? readText(reader, limits.details) : undefined;
      const retryAfterSeconds = readFlag(reader, 'retryAfterSeconds') ? readValue(reader, limits.retryAfter) : undefined;
      return { type: 'error', code, message, ...(details === undefined ? {} : { details }), ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) };
    },
  }),
  /** The partitions among those asked that this node holds keys of. [count][partition]... */
  'handoff-held-reply': message({
    tag: 42,
    name: 'handoff-held-reply',
    limits: { held: partitionsLimit('held'), partition: partitionLimit('held[]') },
    write: (writer, reply) => writeValues(writer, reply.held),
    read: (reader, limits) => ({ type: 'handoff-held-reply', held: readValues(reader, limits.held, limits.partition) }),
  }),
  'object-page': message({
    tag: 7,
    name: 'object-page',
    limits: { items: countLimit('items', wireLimits.maxItems) },
    write: (writer, reply) => {
      writeItems(writer, reply.items);
      writeFlag(writer, reply.done);
    },
    read: (reader, limits) => {
      const items = readItems(reader, limits.items);
      return { type: 'object-page', items, done: readFlag(reader, 'done') };
    },
  }),
  'ae-keys-reply': message({
    tag: 8,
    name: 'ae-keys-reply',
    limits: { differing: countLimit('differing', wireLimits.maxKeys), need: countLimit('need', wireLimits.maxKeys) },
    write: (writer, reply) => {
      writeDataKeys(writer, reply.differing);
      writeDataKeys(writer, reply.need);
      writeFlag(writer, reply.truncated);
    },
    read: (reader, limits) => {
      const differing = readDataKeys(reader, limits.differing);
      const need = readDataKeys(reader, limits.need);
      return { type: 'ae-keys-reply', differing, need, truncated: readFlag(reader, 'truncated') };
    },
  }),
  'ae-push-reply': message({
    tag: 9,
    name: 'ae-push-reply',
    limits: { repaired: valueLimit('repaired', 0, wireLimits.maxItems) },
    write: (writer, reply) => writer.varint(reply.repaired),
    read: (reader, limits) => ({ type: 'ae-push-reply', repaired: readValue(reader, limits.repaired) }),
  }),
  'coordinate-put-reply': message({
    tag: 10,
    name: 'coordinate-put-reply',
    limits: {},
    write: (writer, reply) => {
      writeObject(writer, reply.object);
      writeFlag(writer, reply.durable);
      writeDot(writer, reply.dot);
    },
    read: (reader) => {
      const object = readWireObject(reader);
      const durable = readFlag(reader, 'durable');
      return { type: 'coordinate-put-reply', object, durable, dot: readDot(reader) };
    },
  }),
  'forward-put-reply': message({
    tag: 21,
    name: 'forward-put-reply',
    limits: { dots: countLimit('context.dots', maxContextDots) },
    write: (writer, reply) => writeContext(writer, reply.context),
    read: (reader, limits) => ({ type: 'forward-put-reply', context: readContext(reader, limits.dots) }),
  }),
  'list-keys-reply': message({
    tag: 12,
    name: 'list-keys-reply',
    limits: {
      entries: countLimit('entries', wireLimits.maxListKeys),
      key: lengthLimit('entries[].key', wireLimits.maxListKeyBytes),
      scannedTo: lengthLimit('scannedTo', wireLimits.maxListKeyBytes),
    },
    write: (writer, reply) => {
      writer.varint(reply.entries.length);
      for (const entry of reply.entries) {
        writer.string(entry.key);
        writeObject(writer, entry.version);
      }
      writeFlag(writer, reply.more);
      writer.string(reply.scannedTo);
    },
    read: (reader, limits) => {
      const count = readCount(reader, limits.entries);
      const entries = [];
      for (let index = 0; index < count; index++) entries.push({ key: readText(reader, limits.key), version: readWireObject(reader) });
      const more = readFlag(reader, 'more');
      return { type: 'list-keys-reply', entries, more, scannedTo: readText(reader, limits.scannedTo) };
    },
  }),
  'dt-update-reply': message({
    tag: 30,
    name: 'dt-update-reply',
    limits: {},
    write: (writer, reply) => {
      writeObject(writer, reply.object);
      writeFlag(writer, reply.durable);
    },
    read: (reader) => {
      const object = readWireObject(reader);
      return { type: 'dt-update-reply', object, durable: readFlag(reader, 'durable') };
    },
  }),
  'ae-summary-reply': message({
    tag: 50,
    name: 'ae-summary-reply',
    limits: {
      differing: partitionsLimit('differing'),
      partition: partitionLimit('differing[].partition'),
      notReady: partitionsLimit('notReady'),
      notReadyPartition: partitionLimit('notReady[]'),
    },
    write: (writer, reply) => {
      writer.varint(reply.differing.length);
      for (const entry of reply.differing) {
        writer.varint(entry.partition);
        writeHashes(writer, entry.branches);
      }
      writeValues(writer, reply.notReady);
    },
    read: (reader, limits) => {
      const count = readCount(reader, limits.differing);
      const differing = [];
      for (let index = 0; index < count; index++) differing.push({ partition: readValue(reader, limits.partition), branches: readHashes(reader) });
      return { type: 'ae-summary-reply', differing, notReady: readValues(reader, limits.notReady, limits.notReadyPartition) };
    },
  }),
  'ae-leaves-reply': message({
    tag: 51,
    name: 'ae-leaves-reply',
    limits: { branches: countLimit('branches', merkleFanout), branch: valueLimit('branches[].branch', 0, merkleFanout - 1) },
    write: (writer, reply) => {
      writer.varint(reply.branches.length);
      for (const entry of reply.branches) {
        writer.varint(entry.branch);
        writeHashes(writer, entry.leaves);
      }
    },
    read: (reader, limits) => {
      const count = readCount(reader, limits.branches);
      const branches = [];
      for (let index = 0; index < count; index++) branches.push({ branch: readValue(reader, limits.branch), leaves: readHashes(reader) });
      return { type: 'ae-leaves-reply', branches };
    },
  }),
  'ae-digest-reply': message({
    tag: 52,
    name: 'ae-digest-reply',
    limits: {},
    write: (writer, reply) => {
      writeFlag(writer, reply.digest !== null);
      if (reply.digest !== null) writeHash(writer, reply.digest);
    },
    read: (reader) => ({ type: 'ae-digest-reply', digest: readFlag(reader, 'digest') ? readHash(reader) : null }),
  }),
  'ae-reap-reply': message({
    tag: 53,
    name: 'ae-reap-reply',
    limits: {},
    write: (writer, reply) => writeFlag(writer, reply.removed),
    read: (reader) => ({ type: 'ae-reap-reply', removed: readFlag(reader, 'removed') }),
  }),
  /** The answer to paxos-keys: [storage keys][done]. */
  'paxos-keys-reply': message({
    tag: 73,
    name: 'paxos-keys-reply',
    limits: { keys: countLimit('keys', wireLimits.maxPageKeys) },
    write: (writer, reply) => {
      writeDataKeys(writer, reply.keys);
      writeFlag(writer, reply.done);
    },
    read: (reader, limits) => {
      const keys = readDataKeys(reader, limits.keys);
      return { type: 'paxos-keys-reply', keys, done: readFlag(reader, 'done') };
    },
  }),
  /** An acceptor's answer: [u8 kind: 0 none (to a commit), 1 promise, 2 prepare-rejected, 3 accepted, 4 propose-rejected][ballot][by kind]. */
  'paxos-reply': message({
    tag: 70,
    name: 'paxos-reply',
    limits: {},
    write: (writer, reply) => writeAcceptorReply(writer, reply.reply),
    read: (reader) => ({ type: 'paxos-reply', reply: readAcceptorReply(reader) }),
  }),
  /** SWIM's ack: [sequence][from][records]. */
  'swim-ack': message({
    tag: 61,
    name: 'swim-ack',
    limits: { from: swimFrom, ...recordLimits('updates') },
    write: (writer, reply) => {
      writer.varint(reply.sequence).string(reply.from);
      writeRecords(writer, reply.updates);
    },
    read: (reader, limits) => {
      const sequence = reader.varint();
      const from = readText(reader, limits.from);
      return { type: 'swim-ack', sequence, from, updates: readRecords(reader, limits, 'updates') };
    },
  }),
  /** Lifeguard's nack: [sequence][from]. */
  'swim-nack': message({
    tag: 63,
    name: 'swim-nack',
    limits: { from: swimFrom },
    write: (writer, reply) => writer.varint(reply.sequence).string(reply.from),
    read: (reader, limits) => {
      const sequence = reader.varint();
      return { type: 'swim-nack', sequence, from: readText(reader, limits.from) };
    },
  }),
  /** [sequence][from][coveredThroughId][ringVersion][ringHash][bucketPropertiesVersion][wanted ids][records]. */
  'swim-digest-reply': message({
    tag: 66,
    name: 'swim-digest-reply',
    limits: {
      from: swimFrom,
      coveredThroughId: lengthLimit('coveredThroughId', wireLimits.maxSwimIdBytes),
      ringHash: valueLimit('ringHash', 0, 0xffff_ffff),
      wanted: countLimit('wanted', wireLimits.maxSwimItems),
      wantedId: lengthLimit('wanted[]', wireLimits.maxSwimIdBytes),
      ...recordLimits('records'),
    },
    write: (writer, reply) => {
      writer.varint(reply.sequence).string(reply.from).string(reply.coveredThroughId);
      writer.varint(reply.ringVersion).varint(reply.ringHash).varint(reply.bucketPropertiesVersion);
      writer.varint(reply.wanted.length);
      for (const id of reply.wanted) writer.string(id);
      writeRecords(writer, reply.records);
    },
    read: (reader, limits) => {
      const sequence = reader.varint();
      const from = readText(reader, limits.from);
      const coveredThroughId = readText(reader, limits.coveredThroughId);
      const ringVersion = reader.varint();
      const ringHash = readValue(reader, limits.ringHash);
      const bucketPropertiesVersion = reader.varint();
      const wanted: string[] = [];
      const count = readCount(reader, limits.wanted);
      for (let index = 0; index < count; index++) wanted.push(readText(reader, limits.wantedId));
      return {
        type: 'swim-digest-reply',
        sequence,
        from,
        coveredThroughId,
        ringVersion,
        ringHash,
        bucketPropertiesVersion,
        wanted,
        records: readRecords(reader, limits, 'records'),
      };
    },
  }),
  /** The answer of a SWIM request with nothing to say: no fields. */
  'swim-done': message({
    tag: 69,
    name: 'swim-done',
    limits: {},
    write: () => undefined,
    read: () => ({ type: 'swim-done' }),
  }),
  /** [from][bytes: ring and bucket properties in state-codec.ts's layout, bounded by its viewWireLimits]. */
  'cluster-state-reply': message({
    tag: 68,
    name: 'cluster-state-reply',
    limits: { from: swimFrom },
    write: (writer, reply) => {
      writer.string(reply.from);
      writeClusterState(writer, reply.state);
    },
    read: (reader, limits) => {
      const from = readText(reader, limits.from);
      return { type: 'cluster-state-reply', from, state: decodeClusterState(reader.bytes()) };
    },
  }),
  /** The writes of a watch poll: [epoch][next][gap flag][list of [seq][key][consistent flag][object][dot] or [seq][key][consistent flag][version][flag][value]]. */
  'watch-poll-reply': message({
    tag: 80,
    name: 'watch-poll-reply',
    limits: {
      epoch: lengthLimit('epoch', wireLimits.maxEpochLength),
      writes: countLimit('writes', wireLimits.maxWatchWrites),
      key: lengthLimit('writes[].key', wireLimits.maxListKeyBytes),
    },
    write: (writer, reply) => {
      writer.string(reply.epoch).varint(reply.next);
      writeFlag(writer, reply.gap);
      writer.varint(reply.writes.length);
      for (const write of reply.writes) {
        writer.varint(write.seq).string(write.key);
        writeFlag(writer, write.kind === 'consistent');
        if (write.kind === 'plain') {
          writeObject(writer, write.object);
          writeDot(writer, write.dot);
        } else {
          writer.varint(write.version);
          writeFlag(writer, write.value !== null);
          if (write.value !== null) writer.bytes(write.value);
        }
      }
    },
    read: (reader, limits) => {
      const epoch = readText(reader, limits.epoch);
      const next = reader.varint();
      const gap = readFlag(reader, 'gap');
      const count = readCount(reader, limits.writes);
      const writes: LoggedWrite[] = [];
      for (let index = 0; index < count; index++) {
        const seq = reader.varint();
        const key = readText(reader, limits.key);
        if (readFlag(reader, 'writes[].consistent')) {
          const version = reader.varint();
          const value = readFlag(reader, 'writes[].value') ? Buffer.from(reader.bytes()) : null;
          writes.push({ seq, key, kind: 'consistent', version, value });
        } else {
          const object = readWireObject(reader);
          writes.push({ seq, key, kind: 'plain', object, dot: readDot(reader) });
        }
      }
      return { type: 'watch-poll-reply', epoch, next, gap, writes };
    },
  }),
};

/**
 * Tags that meant something in earlier protocol versions and are never used again: requests 2
 * (coordinate-put without dots), 4 and 5 (gossip and control as JSON text), 10 (coordinate-put
 * without options), 11 (list-keys with keys only), 41 (version 3's control, a self-describing
 * JSON-shaped value); replies 2 (coordinate-put-reply without a dot), 4 and 5 (JSON text), 41
 * (control-reply). Request and reply 40 (whole-view gossip) were retired by protocol version 5,
 * which gossips by SWIM (tags 60-69).
 */
export const retiredTags = { request: [2, 4, 5, 10, 11, 40, 41], reply: [2, 4, 5, 40, 41] } as const;

/** The entries of a table by tag; throws at load when two entries share a tag or take a retired one. */
function byTag<U extends PeerMessage>(table: EntryTable<U>, retired: readonly number[]): readonly (MessageEntry<U> | undefined)[] {
  const entries: (MessageEntry<U> | undefined)[] = new Array<MessageEntry<U> | undefined>(256).fill(undefined);
  for (const [name, entry] of Object.entries(table) as [string, MessageEntry<U>][]) {
    if (entry.name !== name) throw new Error(`message table: the entry filed as ${name} is named ${entry.name}`);
    if (!Number.isInteger(entry.tag) || entry.tag < 1 || entry.tag > 255) throw new Error(`message table: ${name} has tag ${entry.tag}, not 1..255`);
    if (retired.includes(entry.tag)) throw new Error(`message table: ${name} takes retired tag ${entry.tag}`);
    const holder = entries[entry.tag];
    if (holder !== undefined) throw new Error(`message table: ${name} and ${holder.name} share tag ${entry.tag}`);
    entries[entry.tag] = entry;
  }
  return entries;
}

/** Request entries indexed by tag (undefined: no such request). */
export const requestsByTag = byTag(requestMessages, retiredTags.request);

/** Reply entries indexed by tag (undefined: no such reply). */
export const repliesByTag = byTag(replyMessages, retiredTags.reply);
