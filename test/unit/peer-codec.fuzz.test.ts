import type { Ballot } from '../../src/core/consensus/ballot.js';
import type { AcceptorReply, Proposal } from '../../src/core/consensus/acceptor.js';
import { recentWritesKept } from '../../src/core/consensus/compare-and-set.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { merkleFanout, merkleLeafCount } from '../../src/core/antientropy/merkle-tree.js';
import { encodeDataKey } from '../../src/core/keys.js';
import { type VersionedObject, maxTtlSeconds } from '../../src/core/versioning/versioned-object.js';
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from '../../src/core/wire/codec.js';
import { ByteWriter } from '../../src/core/wire/bytes.js';
import type { Limit } from '../../src/core/wire/fields.js';
import {
  type MessageEntry,
  type PeerMessage,
  repliesByTag,
  replyMessages,
  requestMessages,
  requestsByTag,
  retiredTags,
  wireLimits,
} from '../../src/core/wire/message-table.js';
import { decodeClusterState, encodeClusterState, viewWireLimits } from '../../src/core/wire/state-codec.js';
import type { ClusterView } from '../../src/core/membership/membership.js';
import type { SwimRecord } from '../../src/core/membership/swim-messages.js';
import { type NodeLocation, createRing } from '../../src/core/ring/ring.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { KvError } from '../../src/util/errors.js';

/**
 * Goal: every message of the message table (src/core/wire/message-table.ts) round-trips, every
 * bound its reader checks holds at the bound and refuses one past it, and no byte string makes
 * the codec do anything but answer a well-formed message or throw a KvError. The checks iterate
 * the table, so a new message is fuzzed as soon as it has an entry (and it needs a case below to
 * compile). Random bytes and mutations of valid encodings (flipped, inserted, deleted bytes,
 * truncation) either decode to messages that encode and decode again to the same messages, or
 * are refused with a KvError; never any other exception.
 */

const nodeId = fc.stringMatching(/^n[0-9a-f]{4}$/);
const vector = fc
  .uniqueArray(fc.tuple(nodeId, fc.integer({ min: 1, max: 1000 })), { selector: ([node]) => node, maxLength: 3 })
  .map((entries) => Object.fromEntries(entries));
const context = fc.record({ vector, dots: fc.array(fc.record({ node: nodeId, counter: fc.integer({ min: 1, max: 1000 }) }), { maxLength: 3 }) });
const dataKey = fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 24 })).map(([bucket, key]) => encodeDataKey(bucket, key));
const object: fc.Arbitrary<VersionedObject> = fc.record({
  clock: fc
    .uniqueArray(fc.tuple(nodeId, fc.integer({ min: 1, max: 1000 })), { selector: ([node]) => node, maxLength: 3 })
    .map((entries) => Object.fromEntries(entries)),
  siblings: fc.array(
    fc.record({
      dot: fc.record({ node: nodeId, counter: fc.integer({ min: 1, max: 1000 }) }),
      value: fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
      contentType: fc.constantFrom('text/plain', 'application/octet-stream'),
      lastModifiedMs: fc.integer({ min: 0, max: 2 ** 45 }),
      tombstone: fc.boolean(),
    }),
    { maxLength: 2 },
  ),
});
/** A data type's state (object format 3): the same shape with a kind. */
const dataTypeObject: fc.Arbitrary<VersionedObject> = fc
  .tuple(object, fc.constantFrom('counter' as const, 'set' as const))
  .map(([state, kind]) => ({ ...state, kind }));
const dataTypeUpdate = fc.oneof(
  fc.record({ type: fc.constant('counter' as const), increment: fc.maxSafeInteger() }),
  fc.record(
    {
      type: fc.constant('set' as const),
      add: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
      remove: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
      context,
    },
    { requiredKeys: ['type', 'add', 'remove'] },
  ),
);
const partition = fc.integer({ min: 0, max: 255 });
const digest = fc.stringMatching(/^[0-9a-f]{16}$/);
const item = fc.record({ dataKey, object });
/** The hashes of every branch of a tree, or of every leaf under one branch. */
const hashes = fc.array(digest, { minLength: merkleFanout, maxLength: merkleFanout });

/** A placement label (--placement-host, --zone): flags 2 and 4 of a member, ring kinds 3 and 4. */
const location: fc.Arbitrary<NodeLocation> = fc
  .record({ host: fc.constantFrom('host-a', 'host-b', 'rack-3.example'), zone: fc.option(fc.constantFrom('zone-1', 'zone-2'), { nil: undefined }) })
  .map(({ host, zone }) => (zone === undefined ? { host } : { host, zone }));

/** SWIM records: a member's state and lifecycle, with and without a location. */
const swimRecord: fc.Arbitrary<SwimRecord> = fc
  .record({
    id: nodeId,
    address: fc.tuple(fc.constantFrom('127.0.0.1', 'node-b.example'), fc.integer({ min: 1, max: 65_535 })).map(([host, port]) => `${host}:${port}`),
    generation: fc.integer({ min: 0, max: 2 ** 40 }),
    version: fc.integer({ min: 0, max: 2 ** 40 }),
    state: fc.constantFrom('alive' as const, 'suspect' as const, 'dead' as const, 'left' as const, 'removed' as const),
    lifecycle: fc.constantFrom('joining' as const, 'up' as const, 'leaving' as const, 'left' as const, 'removed' as const),
    accuser: fc.oneof(fc.constant(''), nodeId),
    transfersDoneForRing: fc.nat(),
    location: fc.option(location, { nil: undefined }),
  })
  .map(({ location: where, ...record }) => (where === undefined ? record : { ...record, location: where }));
const swimRecords = fc.array(swimRecord, { minLength: 1, maxLength: 4 });
const sequence = fc.integer({ min: 0, max: 2 ** 40 });
const ringHash = fc.nat({ max: 0xffff_ffff });
const digestEntry = fc.record({
  id: nodeId,
  generation: sequence,
  version: sequence,
  state: fc.constantFrom('alive' as const, 'suspect' as const, 'dead' as const, 'left' as const, 'removed' as const),
});
const quorumSetting = fc.oneof(fc.constantFrom('one' as const, 'quorum' as const, 'all' as const), fc.integer({ min: 1, max: 64 }));
const bucketEntry = fc.record(
  {
    nVal: fc.integer({ min: 1, max: 16 }),
    r: quorumSetting,
    w: quorumSetting,
    conflictMode: fc.constantFrom('siblings' as const, 'lww' as const),
    ttlSeconds: fc.nat(),
    consistent: fc.boolean(),
  },
  { requiredKeys: [] },
);
/** Cluster states as cluster-state-reply carries them: a ring (maybe with a pending change) naming some members, bucket properties. */
const clusterState: fc.Arbitrary<Omit<ClusterView, 'members'>> = fc
  .record({
    members: fc.uniqueArray(nodeId, { maxLength: 6 }),
    ring: fc.option(fc.tuple(fc.constantFrom(1, 8, 64), fc.integer({ min: 1, max: 2 ** 40 }), fc.boolean(), fc.nat(), fc.array(location, { maxLength: 6 })), {
      nil: null,
    }),
    bucketProperties: fc.dictionary(fc.string({ maxLength: 10 }), bucketEntry, { maxKeys: 3 }),
    bucketPropertiesVersion: fc.nat(),
  })
  .map(({ members, ring, bucketProperties, bucketPropertiesVersion }) => {
    const ids = members.length === 0 ? ['n0000'] : members;
    // Locations for some of the ring's ids (the ring keeps only those that differ from the default: own host, no zone).
    const locations = ring === null ? {} : Object.fromEntries(ring[4].slice(0, ids.length).map((where, index) => [ids[index] as string, where]));
    const base = ring === null ? null : { ...createRing(ring[0], ids, locations), version: ring[1] };
    const withNext =
      base !== null && ring !== null && ring[2]
        ? { ...base, next: base.owners.map((_, partition) => ids[(partition + ring[3]) % ids.length] as string) }
        : base;
    return { ring: withNext, bucketProperties, bucketPropertiesVersion };
  });

const mode = fc.constantFrom('siblings' as const, 'lww' as const);
const forwardQuorum = fc.oneof(fc.constantFrom('one' as const, 'quorum' as const, 'all' as const), fc.integer({ min: 1, max: 16 }));

const ballot: fc.Arbitrary<Ballot> = fc.record({ round: fc.nat(), proposer: fc.string() });
const operationIds = fc.array(
  fc.uint8Array({ minLength: 8, maxLength: 8 }).map((bytes) => Buffer.from(bytes).toString('hex')),
  { maxLength: recentWritesKept },
);
const registerState = fc
  .record({
    version: fc.nat(),
    value: fc.option(
      fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
      { nil: null },
    ),
    writes: operationIds,
  })
  .map((state) => ({ ...state, version: Math.max(state.version, state.writes.length) }));
const proposal: fc.Arbitrary<Proposal> = fc.record({ ballot, state: registerState });

type RequestOf<K extends PeerRequest['type']> = Extract<PeerRequest, { type: K }>;
type ReplyOf<K extends PeerReply['type']> = Extract<PeerReply, { type: K }>;

/**
 * A fuzz case for every entry of the message table, keyed by its name: a message added to the
 * table without one does not compile, and each case reaches every field the entry's limits name
 * (the limit probe below fails, naming the field, when none of its samples does).
 */
const requestCases: { readonly [K in PeerRequest['type']]: fc.Arbitrary<RequestOf<K>> } = {
  'replica-get': fc.record({ type: fc.constant('replica-get' as const), bucket: fc.string(), key: fc.string() }),
  'coordinate-put': fc
    .tuple(
      fc.record({
        type: fc.constant('coordinate-put' as const),
        bucket: fc.string(),
        key: fc.string(),
        write: fc.record(
          {
            value: fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
            contentType: fc.string(),
            tombstone: fc.boolean(),
            nowMs: fc.integer({ min: 0, max: 2 ** 45 }),
            context,
            ttlSeconds: fc.integer({ min: 0, max: maxTtlSeconds }),
          },
          { requiredKeys: ['value', 'contentType', 'tombstone', 'nowMs', 'context'] },
        ),
        mode,
        sync: fc.boolean(),
      }),
      fc.option(
        fc.record({
          precondition: fc.oneof(fc.constant({ kind: 'absent' as const }), fc.record({ kind: fc.constant('matches' as const), vector })),
          base: fc.option(object, { nil: null }),
        }),
        { nil: undefined },
      ),
    )
    .map(([request, condition]) => ({ ...request, ...condition })),
  'forward-put': fc.record(
    {
      type: fc.constant('forward-put' as const),
      bucket: fc.string(),
      key: fc.string(),
      write: fc.record(
        {
          value: fc.uint8Array({ maxLength: 40 }).map((bytes) => Buffer.from(bytes)),
          contentType: fc.string(),
          tombstone: fc.boolean(),
          nowMs: fc.integer({ min: 0, max: 2 ** 45 }),
          context,
          ttlSeconds: fc.integer({ min: 0, max: maxTtlSeconds }),
        },
        { requiredKeys: ['value', 'contentType', 'tombstone', 'nowMs', 'context'] },
      ),
      w: forwardQuorum,
      pw: forwardQuorum,
      dw: forwardQuorum,
      timeoutMs: fc.integer({ min: 1, max: 600_000 }),
    },
    { requiredKeys: ['type', 'bucket', 'key', 'write', 'timeoutMs'] },
  ),
  'replica-put': fc.record(
    {
      type: fc.constant('replica-put' as const),
      bucket: fc.string(),
      key: fc.string(),
      object,
      mode,
      sync: fc.boolean(),
      hintFor: fc.string({ minLength: 1 }),
    },
    { requiredKeys: ['type', 'bucket', 'key', 'object', 'mode', 'sync'] },
  ),
  'swim-ping': fc.record({ type: fc.constant('swim-ping' as const), sequence, from: nodeId, target: nodeId, updates: swimRecords }),
  'swim-ping-req': fc.record({ type: fc.constant('swim-ping-req' as const), sequence, from: nodeId, target: nodeId, updates: swimRecords }),
  'swim-gossip': fc.record({ type: fc.constant('swim-gossip' as const), from: nodeId, updates: swimRecords }),
  'swim-records': fc.record({ type: fc.constant('swim-records' as const), from: nodeId, records: swimRecords }),
  'swim-digest': fc.record({
    type: fc.constant('swim-digest' as const),
    sequence,
    from: nodeId,
    afterId: nodeId,
    throughId: nodeId,
    ringVersion: sequence,
    ringHash,
    bucketPropertiesVersion: sequence,
    entries: fc.array(digestEntry, { minLength: 1, maxLength: 4 }),
  }),
  'cluster-state': fc.constant({ type: 'cluster-state' as const }),
  'handoff-held': fc.record({ type: fc.constant('handoff-held' as const), partitions: fc.array(partition, { maxLength: 8 }) }),
  'handoff-fetch': fc.record({
    type: fc.constant('handoff-fetch' as const),
    partition,
    after: fc.option(dataKey, { nil: null }),
    maxKeys: fc.integer({ min: 1, max: wireLimits.maxPageKeys }),
    maxBytes: fc.integer({ min: 1, max: wireLimits.maxPageBytes }),
  }),
  'ae-keys': fc.record({
    type: fc.constant('ae-keys' as const),
    partition,
    leaves: fc.array(fc.integer({ min: 0, max: merkleLeafCount - 1 }), { maxLength: 8 }),
    items: fc.array(fc.record({ dataKey, digest }), { maxLength: 4 }),
  }),
  'ae-fetch': fc.record({
    type: fc.constant('ae-fetch' as const),
    partition,
    keys: fc.array(dataKey, { maxLength: 4 }),
    maxBytes: fc.integer({ min: 1, max: 1 << 22 }),
  }),
  'ae-push': fc.record({ type: fc.constant('ae-push' as const), partition, items: fc.array(item, { maxLength: 3 }) }),
  'list-keys': fc.record({
    type: fc.constant('list-keys' as const),
    bucket: fc.string(),
    partitions: fc.array(partition, { maxLength: 6 }),
    after: fc.option(fc.string(), { nil: null }),
    prefix: fc.string(),
    limit: fc.integer({ min: 1, max: wireLimits.maxListKeys }),
  }),
  'dt-update': fc.record({
    type: fc.constant('dt-update' as const),
    bucket: fc.string(),
    key: fc.string(),
    update: dataTypeUpdate,
    sync: fc.boolean(),
    base: fc.option(dataTypeObject, { nil: null }),
  }),
  'ae-summary': fc.record({ type: fc.constant('ae-summary' as const), roots: fc.array(fc.record({ partition, root: digest }), { maxLength: 6 }) }),
  'ae-leaves': fc.record({
    type: fc.constant('ae-leaves' as const),
    partition,
    branches: fc.array(fc.integer({ min: 0, max: merkleFanout - 1 }), { maxLength: merkleFanout }),
  }),
  'ae-digest': fc.record({ type: fc.constant('ae-digest' as const), dataKey }),
  'ae-reap': fc.record({ type: fc.constant('ae-reap' as const), dataKey, digest }),
  'paxos-prepare': fc.record({ type: fc.constant('paxos-prepare' as const), bucket: fc.string(), key: fc.string(), epoch: fc.nat(), ballot }),
  'paxos-propose': fc.record({ type: fc.constant('paxos-propose' as const), bucket: fc.string(), key: fc.string(), epoch: fc.nat(), proposal }),
  'paxos-commit': fc.record({ type: fc.constant('paxos-commit' as const), bucket: fc.string(), key: fc.string(), proposal }),
  'paxos-keys': fc.record({
    type: fc.constant('paxos-keys' as const),
    partition,
    after: fc.option(dataKey, { nil: null }),
    maxKeys: fc.integer({ min: 1, max: wireLimits.maxPageKeys }),
  }),
  'watch-poll': fc.record({
    type: fc.constant('watch-poll' as const),
    filter: fc.record({ bucket: fc.string(), kind: fc.constantFrom('key' as const, 'prefix' as const), name: fc.string() }),
    cursor: fc.option(fc.record({ epoch: fc.stringMatching(/^[0-9a-f]{0,16}$/), seq: fc.integer({ min: 0, max: 2 ** 40 }) }), { nil: null }),
    waitMs: fc.integer({ min: 0, max: wireLimits.maxWatchWaitMs }),
    maxWrites: fc.integer({ min: 1, max: wireLimits.maxWatchWrites }),
  }),
};

const acceptorReply: fc.Arbitrary<AcceptorReply | null> = fc.oneof(
  fc.constant(null),
  fc.record({ type: fc.constant('promise' as const), ballot, accepted: fc.option(proposal, { nil: null }), committed: fc.option(proposal, { nil: null }) }),
  fc.record({ type: fc.constantFrom('prepare-rejected' as const, 'propose-rejected' as const), ballot, promised: ballot, epoch: fc.nat() }),
  fc.record({ type: fc.constant('accepted' as const), ballot }),
);

const replyCases: { readonly [K in PeerReply['type']]: fc.Arbitrary<ReplyOf<K>> } = {
  'replica-get-reply': fc.record({ type: fc.constant('replica-get-reply' as const), object: fc.option(object, { nil: null }) }),
  'coordinate-put-reply': fc.record({
    type: fc.constant('coordinate-put-reply' as const),
    object,
    durable: fc.boolean(),
    dot: fc.record({ node: nodeId, counter: fc.integer({ min: 1, max: 1000 }) }),
  }),
  'forward-put-reply': fc.record({ type: fc.constant('forward-put-reply' as const), context }),
  'replica-put-reply': fc.record({ type: fc.constant('replica-put-reply' as const), durable: fc.boolean() }),
  'swim-ack': fc.record({ type: fc.constant('swim-ack' as const), sequence, from: nodeId, updates: swimRecords }),
  'swim-nack': fc.record({ type: fc.constant('swim-nack' as const), sequence, from: nodeId }),
  'swim-digest-reply': fc.record({
    type: fc.constant('swim-digest-reply' as const),
    sequence,
    from: nodeId,
    coveredThroughId: nodeId,
    ringVersion: sequence,
    ringHash,
    bucketPropertiesVersion: sequence,
    wanted: fc.array(nodeId, { minLength: 1, maxLength: 4 }),
    records: swimRecords,
  }),
  'swim-done': fc.constant({ type: 'swim-done' as const }),
  'cluster-state-reply': fc.record({ type: fc.constant('cluster-state-reply' as const), from: nodeId, state: clusterState }),
  'handoff-held-reply': fc.record({ type: fc.constant('handoff-held-reply' as const), held: fc.array(partition, { maxLength: 8 }) }),
  error: fc.record(
    {
      type: fc.constant('error' as const),
      code: fc.constant('KV_BAD_REQUEST'),
      message: fc.string(),
      details: fc
        .dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean()), { maxKeys: 3 })
        .map((details) => JSON.stringify(details)),
      retryAfterSeconds: fc.integer({ min: 0, max: 86_400 }),
    },
    { requiredKeys: ['type', 'code', 'message'] },
  ),
  'object-page': fc.record({ type: fc.constant('object-page' as const), items: fc.array(item, { maxLength: 3 }), done: fc.boolean() }),
  'ae-keys-reply': fc.record({
    type: fc.constant('ae-keys-reply' as const),
    differing: fc.array(dataKey, { maxLength: 4 }),
    need: fc.array(dataKey, { maxLength: 4 }),
    truncated: fc.boolean(),
  }),
  'paxos-keys-reply': fc.record({ type: fc.constant('paxos-keys-reply' as const), keys: fc.array(dataKey, { maxLength: 4 }), done: fc.boolean() }),
  'ae-push-reply': fc.record({ type: fc.constant('ae-push-reply' as const), repaired: fc.integer({ min: 0, max: 200 }) }),
  'list-keys-reply': fc.record({
    type: fc.constant('list-keys-reply' as const),
    entries: fc.array(fc.record({ key: fc.string(), version: object }), { maxLength: 3 }),
    more: fc.boolean(),
    scannedTo: fc.string(),
  }),
  'dt-update-reply': fc.record({ type: fc.constant('dt-update-reply' as const), object: dataTypeObject, durable: fc.boolean() }),
  'ae-summary-reply': fc.record({
    type: fc.constant('ae-summary-reply' as const),
    differing: fc.array(fc.record({ partition, branches: hashes }), { maxLength: 3 }),
    notReady: fc.array(partition, { maxLength: 4 }),
  }),
  'ae-leaves-reply': fc.record({
    type: fc.constant('ae-leaves-reply' as const),
    branches: fc.array(fc.record({ branch: fc.integer({ min: 0, max: merkleFanout - 1 }), leaves: hashes }), { maxLength: 3 }),
  }),
  'ae-digest-reply': fc.record({ type: fc.constant('ae-digest-reply' as const), digest: fc.option(digest, { nil: null }) }),
  'ae-reap-reply': fc.record({ type: fc.constant('ae-reap-reply' as const), removed: fc.boolean() }),
  'paxos-reply': fc.record({ type: fc.constant('paxos-reply' as const), reply: acceptorReply }),
  'watch-poll-reply': fc.record({
    type: fc.constant('watch-poll-reply' as const),
    epoch: fc.stringMatching(/^[0-9a-f]{0,16}$/),
    next: fc.integer({ min: 0, max: 2 ** 40 }),
    gap: fc.boolean(),
    writes: fc.array(
      fc.oneof(
        fc.record({
          seq: fc.integer({ min: 1, max: 2 ** 40 }),
          key: fc.string(),
          kind: fc.constant('plain' as const),
          object,
          dot: fc.record({ node: nodeId, counter: fc.integer({ min: 1, max: 1000 }) }),
        }),
        fc.record({
          seq: fc.integer({ min: 1, max: 2 ** 40 }),
          key: fc.string(),
          kind: fc.constant('consistent' as const),
          version: fc.integer({ min: 1, max: 2 ** 40 }),
          value: fc.option(
            fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes)),
            { nil: null },
          ),
        }),
      ),
      { maxLength: 3 },
    ),
  }),
};

/** One direction of the table with its fuzz cases and its codec, so every check below runs over both. */
interface Direction {
  readonly name: 'request' | 'reply';
  readonly table: Readonly<Record<string, MessageEntry<PeerMessage>>>;
  readonly byTag: readonly (MessageEntry<PeerMessage> | undefined)[];
  readonly cases: Readonly<Record<string, fc.Arbitrary<PeerMessage>>>;
  readonly retired: readonly number[];
  readonly encode: (message: PeerMessage) => Buffer;
  readonly decode: (bytes: Uint8Array) => PeerMessage;
}

const requests: Direction = {
  name: 'request',
  table: requestMessages as unknown as Record<string, MessageEntry<PeerMessage>>,
  byTag: requestsByTag as readonly (MessageEntry<PeerMessage> | undefined)[],
  cases: requestCases as unknown as Record<string, fc.Arbitrary<PeerMessage>>,
  retired: retiredTags.request,
  encode: (message) => encodeRequest(message as PeerRequest),
  decode: decodeRequest,
};
const replies: Direction = {
  name: 'reply',
  table: replyMessages as unknown as Record<string, MessageEntry<PeerMessage>>,
  byTag: repliesByTag as readonly (MessageEntry<PeerMessage> | undefined)[],
  cases: replyCases as unknown as Record<string, fc.Arbitrary<PeerMessage>>,
  retired: retiredTags.reply,
  encode: (message) => encodeReply(message as PeerReply),
  decode: decodeReply,
};
const directions: readonly Direction[] = [requests, replies];

/** One change to a valid encoding. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bits: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
);

type Mutation = { readonly kind: string; readonly at: number; readonly bits?: number; readonly value?: number };

function mutate(bytes: Buffer, mutations: readonly Mutation[]): Buffer {
  let result = Buffer.from(bytes);
  for (const change of mutations) {
    if (result.length === 0) return result;
    const at = change.at % result.length;
    switch (change.kind) {
      case 'flip':
        result[at] = (result[at] as number) ^ (change.bits as number);
        break;
      case 'set':
        result[at] = change.value as number;
        break;
      case 'insert':
        result = Buffer.concat([result.subarray(0, at), Buffer.of(change.value as number), result.subarray(at)]);
        break;
      case 'delete':
        result = Buffer.concat([result.subarray(0, at), result.subarray(at + 1)]);
        break;
      default:
        result = result.subarray(0, at);
    }
  }
  return result;
}

/** Decodes; a refusal must be a KvError, and anything accepted must be a message that encodes and decodes to itself. */
function checkDecode(bytes: Uint8Array, direction: Direction): void {
  let decoded: PeerMessage;
  try {
    decoded = direction.decode(bytes);
  } catch (error) {
    if (!(error instanceof KvError)) throw new Error(`decoding a ${direction.name} threw ${String(error)} instead of a KvError`, { cause: error });
    return;
  }
  expect(direction.decode(direction.encode(decoded))).toEqual(decoded);
}

/** The steps of a limit's field path: 'roots[].partition' is roots, each element, partition. */
function steps(field: string): string[] {
  return field.split('.').flatMap((part) => (part.endsWith('[]') ? [part.slice(0, -2), '[]'] : [part]));
}

/** The value at a path (the first element where it says `[]`), or undefined when the message does not reach it. */
function at(message: unknown, path: readonly string[]): unknown {
  let node = message;
  for (const step of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = step === '[]' ? (Array.isArray(node) ? node[0] : undefined) : (node as Record<string, unknown>)[step];
  }
  return node;
}

/** A copy of the message with the value at the path (the first element where it says `[]`) replaced. */
function replaced(message: unknown, path: readonly string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [step, ...rest] = path as [string, ...string[]];
  if (step === '[]') {
    const list = message as unknown[];
    return [replaced(list[0], rest, value), ...list.slice(1)];
  }
  const record = message as Record<string, unknown>;
  return { ...record, [step]: replaced(record[step], rest, value) };
}

/** The kind of value a limit bounds, as the probe checks a sample reaches it. */
function reaches(limit: Limit, value: unknown): boolean {
  if (limit.kind === 'value') return typeof value === 'number';
  if (limit.kind === 'count') return Array.isArray(value) && value.length > 0;
  return typeof value === 'string';
}

/** The values at the bounds and one past them: [value, whether the reader must accept it]. */
function probes(limit: Limit, sample: unknown): [unknown, boolean][] {
  if (limit.kind === 'value')
    return [[limit.max, true], [limit.max + 1, false], [limit.min, true], ...(limit.min > 0 ? [[limit.min - 1, false] as [unknown, boolean]] : [])];
  if (limit.kind === 'count') {
    const element = (sample as unknown[])[0];
    return [
      [new Array<unknown>(limit.max).fill(element), true],
      [new Array<unknown>(limit.max + 1).fill(element), false],
    ];
  }
  return [
    ['x'.repeat(limit.max), true],
    ['x'.repeat(limit.max + 1), false],
  ];
}

const runs = Number(process.env.FUZZ_RUNS ?? 600);

describe('peer codec fuzz, over the message table', () => {
  it.each(directions)('has a fuzz case for every $name entry, and one entry per tag, none of them retired', (direction) => {
    expect(Object.keys(direction.cases).sort()).toEqual(Object.keys(direction.table).sort());
    for (const [name, entry] of Object.entries(direction.table)) {
      expect(entry.name).toBe(name);
      expect(direction.byTag[entry.tag]).toBe(entry);
      expect(direction.retired).not.toContain(entry.tag);
    }
  });

  for (const direction of directions) {
    for (const [name, entry] of Object.entries(direction.table)) {
      it(`${direction.name} ${name} (tag ${entry.tag}) round-trips, starts with its tag, and mutations of it decode to messages or a KvError`, () => {
        const messages = direction.cases[name]!;
        fc.assert(
          fc.property(messages, fc.array(mutation, { minLength: 1, maxLength: 4 }), (message, mutations) => {
            const bytes = direction.encode(message);
            expect(bytes[0]).toBe(entry.tag);
            expect(direction.decode(bytes)).toEqual(normalise(message));
            checkDecode(mutate(bytes, mutations), direction);
          }),
          { numRuns: Math.ceil(runs / 4) },
        );
      });

      for (const [key, limit] of Object.entries(entry.limits)) {
        it(`${direction.name} ${name} holds its limit ${key} (${limit.kind} of ${limit.field}, ${limit.min}..${limit.max}) at the bound and refuses one past it`, () => {
          const path = steps(limit.field);
          const sample = fc.sample(direction.cases[name]!, { seed: 19, numRuns: 500 }).find((message) => reaches(limit, at(message, path)));
          if (sample === undefined) expect.fail(`no fuzz case of ${name} reaches ${limit.field}; make its arbitrary produce one`);
          for (const [value, accepted] of probes(limit, at(sample, path))) {
            const bytes = direction.encode(replaced(sample, path, value) as PeerMessage);
            if (accepted) {
              const decoded = at(direction.decode(bytes), path);
              if (limit.kind === 'count') expect((decoded as unknown[]).length).toBe(limit.max);
              else expect(decoded).toEqual(value);
            } else {
              expect(() => direction.decode(bytes)).toThrow(KvError);
              expect(() => direction.decode(bytes)).toThrow(limit.field);
            }
          }
        });
      }
    }
  }

  it.each(directions)('refuses every $name tag the table does not hold, retired ones included, naming the tag', (direction) => {
    for (let tag = 0; tag < 256; tag++) {
      if (direction.byTag[tag] !== undefined) continue;
      expect(() => direction.decode(Buffer.of(tag, 0, 0, 0))).toThrow(`unknown peer ${direction.name} tag ${tag}`);
    }
    for (const tag of direction.retired) expect(direction.byTag[tag]).toBeUndefined();
  });

  it('random bytes decode to valid messages or a KvError, never another exception', () => {
    const tags = [...new Set([...Object.values(requestMessages), ...Object.values(replyMessages)].map((entry) => entry.tag))];
    const bytes = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.tuple(fc.constantFrom(...tags), fc.uint8Array({ maxLength: 200 })).map(([tag, tail]) => Buffer.concat([Buffer.of(tag), tail])),
    );
    fc.assert(
      fc.property(bytes, (body) => {
        checkDecode(body, requests);
        checkDecode(body, replies);
      }),
      { numRuns: runs * 4 },
    );
  });

  it("refuses to send a cluster state outside the binary layout: a malformed state is the sender's bug, not a message", () => {
    for (const state of [
      { members: {}, ring: null, bucketProperties: {}, bucketPropertiesVersion: 0 },
      { ring: null, bucketProperties: {}, bucketPropertiesVersion: 0, extra: 1 },
      [1, 2],
      null,
    ]) {
      expect(encodeClusterState(state)).toBeUndefined();
      expect(() => encodeReply({ type: 'cluster-state-reply', from: 'n1', state })).toThrow(/cluster state outside its layout/);
    }
    // A bucket property this build does not know: refused, so nothing is silently dropped.
    expect(encodeClusterState({ ring: null, bucketProperties: { b: { dataType: 'counter' } }, bucketPropertiesVersion: 0 })).toBeUndefined();
  });

  it('refuses binary cluster states over their bounds while decoding', () => {
    // A ring of two partitions whose second owner points past its one-name table.
    const badOwner = new ByteWriter().u8(1).varint(2).varint(1).varint(1).string('n1').varint(0).varint(1).finish();
    expect(() => decodeClusterState(badOwner)).toThrow(/ring owner index 1 outside 0..0/);
    const hugeRing = new ByteWriter()
      .u8(1)
      .varint(viewWireLimits.maxPartitionCount + 1)
      .finish();
    expect(() => decodeClusterState(hugeRing)).toThrow(/partition count/);
    const longName = new ByteWriter()
      .u8(1)
      .varint(2)
      .varint(1)
      .varint(1)
      .string('n'.repeat(viewWireLimits.maxIdBytes + 1))
      .finish();
    expect(() => decodeClusterState(longName)).toThrow(/129 bytes/);
  });

  it('makes a fetched cluster state of a 256-partition ring a fraction of its JSON text', () => {
    for (const nodes of [5, 100]) {
      const ids = Array.from({ length: nodes }, (_, index) => `node-${index}`);
      const state: Omit<ClusterView, 'members'> = {
        ring: createRing(256, ids),
        bucketProperties: { '': { nVal: 3, r: 'quorum', w: 'quorum', conflictMode: 'siblings' } },
        bucketPropertiesVersion: 1,
      };
      const binary = encodeClusterState(state)!;
      expect(decodeClusterState(binary)).toEqual(state);
      expect(binary.length).toBeLessThan(Buffer.byteLength(JSON.stringify(state)) / 2);
    }
  });

  it('refuses a malformed storage key, and a hash that is not 16 hex digits before it is sent', () => {
    expect(() => decodeRequest(encodeRequest({ type: 'ae-fetch', partition: 0, keys: [Buffer.of(1, 2, 3)], maxBytes: 10 }))).toThrow(/storage key/);
    expect(() => encodeRequest({ type: 'ae-reap', dataKey: encodeDataKey('b', 'k'), digest: 'not-a-hash' })).toThrow(KvError);
  });

  it("anti-entropy's tree questions carry 8 bytes per hash, no hex text", () => {
    const root = '0123456789abcdef';
    const roots = Array.from({ length: 256 }, (_, index) => ({ partition: index, root }));
    const summary = encodeRequest({ type: 'ae-summary', roots });
    // Tag, count, then per root a varint partition (1-2 bytes) and a length-prefixed 8-byte hash.
    expect(summary.length).toBeLessThan(256 * 12 + 8);
    expect(summary.includes(Buffer.from(root))).toBe(false);
    const branches = Array.from({ length: merkleFanout }, () => root);
    const reply = encodeReply({ type: 'ae-summary-reply', differing: [{ partition: 3, branches }], notReady: [] });
    expect(reply.includes(Buffer.from(root))).toBe(false);
    expect(decodeReply(reply)).toEqual({ type: 'ae-summary-reply', differing: [{ partition: 3, branches }], notReady: [] });
  });
});

/** What a message decodes to: byte fields come back as Buffers. */
function normalise<T>(message: T): T {
  return JSON.parse(JSON.stringify(message), (_key, value: unknown) =>
    value !== null && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)
      ? Buffer.from((value as { data: number[] }).data)
      : value,
  ) as T;
}

describe('string fields', () => {
  // A fuzz run (seed -199885035) found a swim-ping-req whose mutated target held invalid UTF-8:
  // decoded leniently, each bad byte became U+FFFD (3 bytes), so the accepted message encoded
  // again with a target of 156 bytes, over its 128.
  it('refuses a string field that is not valid UTF-8, so an accepted message always encodes within its bounds', () => {
    const valid = encodeRequest({ type: 'swim-ping-req', sequence: 1, from: 'n1', target: 'x'.repeat(52), updates: [] });
    const at = valid.indexOf('x'.repeat(52));
    const invalid = Buffer.from(valid);
    invalid.fill(0xff, at, at + 52);
    expect(() => decodeRequest(invalid)).toThrow(/target that is not valid UTF-8/);
    expect(decodeRequest(valid)).toMatchObject({ target: 'x'.repeat(52) });
  });
});
