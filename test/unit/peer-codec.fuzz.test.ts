import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { merkleFanout } from '../../src/core/antientropy/merkle-tree.js';
import { encodeDataKey } from '../../src/core/keys.js';
import type { VersionedObject } from '../../src/core/versioning/versioned-object.js';
import { decodeReplyBatch, decodeRequestBatch, encodeReplyBatch, encodeRequestBatch, peerProtocolVersions, wireLimits } from '../../src/core/wire/codec.js';
import { ByteWriter } from '../../src/core/wire/bytes.js';
import { controlWireLimits, decodeControlPayload, decodeViewState, encodeControlPayload, encodeViewState, viewWireLimits } from '../../src/core/wire/state-codec.js';
import type { ClusterView, MemberRecord } from '../../src/core/membership/membership.js';
import { createRing } from '../../src/core/ring/ring.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { KvError } from '../../src/util/errors.js';

/**
 * Goal: no byte string makes the peer codec do anything but answer a well-formed message or throw
 * a KvError. Random bytes and mutations of valid encodings (flipped, inserted, deleted bytes,
 * truncation) either decode to messages that encode and decode again to the same messages, or
 * are refused with a KvError; never any other exception. Every message type round-trips.
 */

const nodeId = fc.stringMatching(/^n[0-9a-f]{4}$/);
const dataKey = fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.string({ maxLength: 24 })).map(([bucket, key]) => encodeDataKey(bucket, key));
const object: fc.Arbitrary<VersionedObject> = fc.record({
  clock: fc.uniqueArray(fc.tuple(nodeId, fc.integer({ min: 1, max: 1000 })), { selector: ([node]) => node, maxLength: 3 }).map((entries) => Object.fromEntries(entries)),
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
const dataTypeObject: fc.Arbitrary<VersionedObject> = fc.tuple(object, fc.constantFrom('counter' as const, 'set' as const)).map(([state, kind]) => ({ ...state, kind }));
const dataTypeUpdate = fc.oneof(
  fc.record({ type: fc.constant('counter' as const), increment: fc.maxSafeInteger() }),
  fc.record(
    {
      type: fc.constant('set' as const),
      add: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
      remove: fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
      context: fc.record({ vector: fc.uniqueArray(fc.tuple(nodeId, fc.integer({ min: 1, max: 1000 })), { selector: ([node]) => node, maxLength: 3 }).map((entries) => Object.fromEntries(entries)), dots: fc.constant([]) }),
    },
    { requiredKeys: ['type', 'add', 'remove'] },
  ),
);
const partition = fc.integer({ min: 0, max: 255 });
const digest = fc.stringMatching(/^[0-9a-f]{16}$/);
const item = fc.record({ dataKey, object });
/** The hashes of every branch of a tree, or of every leaf under one branch. */
const hashes = fc.array(digest, { minLength: merkleFanout, maxLength: merkleFanout });
const json = fc.jsonValue({ maxDepth: 3 });

const member: fc.Arbitrary<MemberRecord> = fc
  .record({
    id: nodeId,
    address: fc.tuple(fc.constantFrom('127.0.0.1', 'node-b.example'), fc.integer({ min: 1, max: 65_535 })).map(([host, port]) => `${host}:${port}`),
    generation: fc.integer({ min: 0, max: 2 ** 40 }),
    heartbeat: fc.integer({ min: 0, max: 2 ** 48 }),
    status: fc.constantFrom('joining' as const, 'up' as const, 'leaving' as const, 'left' as const, 'removed' as const),
    transfersDoneForRing: fc.option(fc.nat(), { nil: undefined }),
  })
  .map(({ transfersDoneForRing, ...record }) => (transfersDoneForRing === undefined ? record : { ...record, transfersDoneForRing }));
const quorumSetting = fc.oneof(fc.constantFrom('one' as const, 'quorum' as const, 'all' as const), fc.integer({ min: 1, max: 64 }));
const bucketEntry = fc.record(
  { nVal: fc.integer({ min: 1, max: 16 }), r: quorumSetting, w: quorumSetting, conflictMode: fc.constantFrom('siblings' as const, 'lww' as const), ttlSeconds: fc.nat() },
  { requiredKeys: [] },
);
/** Cluster views as gossip carries them: members by id, a ring (maybe with a pending change) naming some of them, bucket properties. */
const view: fc.Arbitrary<ClusterView> = fc
  .record({
    members: fc.uniqueArray(member, { selector: (record) => record.id, maxLength: 6 }),
    ring: fc.option(fc.tuple(fc.constantFrom(1, 8, 64), fc.integer({ min: 1, max: 2 ** 40 }), fc.boolean(), fc.nat()), { nil: null }),
    bucketProperties: fc.dictionary(fc.string({ maxLength: 10 }), bucketEntry, { maxKeys: 3 }),
    bucketPropertiesVersion: fc.nat(),
  })
  .map(({ members, ring, bucketProperties, bucketPropertiesVersion }) => {
    const ids = members.length === 0 ? ['n0000'] : members.map((record) => record.id);
    const base = ring === null ? null : { ...createRing(ring[0], ids), version: ring[1] };
    const withNext = base !== null && ring !== null && ring[2] ? { ...base, next: base.owners.map((_, partition) => ids[(partition + ring[3]) % ids.length] as string) } : base;
    return { members: Object.fromEntries(members.map((record) => [record.id, record])), ring: withNext, bucketProperties, bucketPropertiesVersion };
  });
const heldQuestion = fc.record({ partitions: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }) });

const request: fc.Arbitrary<PeerRequest> = fc.oneof(
  fc.record({ type: fc.constant('replica-get' as const), bucket: fc.string(), key: fc.string() }),
  fc.record({
    type: fc.constant('replica-put' as const),
    bucket: fc.string(),
    key: fc.string(),
    object,
    mode: fc.constantFrom('siblings' as const, 'lww' as const),
    sync: fc.boolean(),
  }),
  fc.record({ type: fc.constant('gossip' as const), state: json }),
  fc.record({ type: fc.constant('gossip' as const), state: view }),
  fc.record({ type: fc.constant('control' as const), operation: fc.constantFrom('ae-root', 'ae-leaves', 'ae-digest'), payload: json }),
  fc.record({ type: fc.constant('control' as const), operation: fc.constant('handoff-held'), payload: heldQuestion }),
  fc.record({
    type: fc.constant('handoff-fetch' as const),
    partition,
    after: fc.option(dataKey, { nil: null }),
    maxKeys: fc.integer({ min: 1, max: wireLimits.maxPageKeys }),
    maxBytes: fc.integer({ min: 1, max: wireLimits.maxPageBytes }),
  }),
  fc.record({
    type: fc.constant('ae-keys' as const),
    partition,
    leaves: fc.array(fc.integer({ min: 0, max: 1023 }), { maxLength: 8 }),
    items: fc.array(fc.record({ dataKey, digest }), { maxLength: 4 }),
  }),
  fc.record({ type: fc.constant('ae-fetch' as const), partition, keys: fc.array(dataKey, { maxLength: 4 }), maxBytes: fc.integer({ min: 1, max: 1 << 22 }) }),
  fc.record({ type: fc.constant('ae-push' as const), partition, items: fc.array(item, { maxLength: 3 }) }),
  fc.record({ type: fc.constant('dt-update' as const), bucket: fc.string(), key: fc.string(), update: dataTypeUpdate, sync: fc.boolean(), base: fc.option(dataTypeObject, { nil: null }) }),
  fc.record({ type: fc.constant('ae-summary' as const), roots: fc.array(fc.record({ partition, root: digest }), { maxLength: 6 }) }),
  fc.record({ type: fc.constant('ae-leaves' as const), partition, branches: fc.array(fc.integer({ min: 0, max: merkleFanout - 1 }), { maxLength: merkleFanout }) }),
  fc.record({ type: fc.constant('ae-digest' as const), dataKey }),
  fc.record({ type: fc.constant('ae-reap' as const), dataKey, digest }),
);

const reply: fc.Arbitrary<PeerReply> = fc.oneof(
  fc.record({ type: fc.constant('replica-get-reply' as const), object: fc.option(object, { nil: null }) }),
  fc.record({ type: fc.constant('replica-put-reply' as const), durable: fc.boolean() }),
  fc.record({ type: fc.constant('control-reply' as const), payload: json }),
  fc.record({ type: fc.constant('gossip-reply' as const), state: fc.oneof(view, json) }),
  fc.record({ type: fc.constant('error' as const), code: fc.constant('KV_BAD_REQUEST'), message: fc.string() }),
  fc.record({ type: fc.constant('object-page' as const), items: fc.array(item, { maxLength: 3 }), done: fc.boolean() }),
  fc.record({ type: fc.constant('ae-keys-reply' as const), differing: fc.array(dataKey, { maxLength: 4 }), need: fc.array(dataKey, { maxLength: 4 }), truncated: fc.boolean() }),
  fc.record({ type: fc.constant('ae-push-reply' as const), repaired: fc.integer({ min: 0, max: 200 }) }),
  fc.record({ type: fc.constant('dt-update-reply' as const), object: dataTypeObject, durable: fc.boolean() }),
  fc.record({
    type: fc.constant('ae-summary-reply' as const),
    differing: fc.array(fc.record({ partition, branches: hashes }), { maxLength: 3 }),
    notReady: fc.array(partition, { maxLength: 4 }),
  }),
  fc.record({ type: fc.constant('ae-leaves-reply' as const), branches: fc.array(fc.record({ branch: fc.integer({ min: 0, max: merkleFanout - 1 }), leaves: hashes }), { maxLength: 3 }) }),
  fc.record({ type: fc.constant('ae-digest-reply' as const), digest: fc.option(digest, { nil: null }) }),
  fc.record({ type: fc.constant('ae-reap-reply' as const), removed: fc.boolean() }),
);

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
function checkDecode<T>(bytes: Uint8Array, decode: (bytes: Uint8Array) => T[], encode: (messages: readonly T[]) => Buffer): void {
  let decoded: T[];
  try {
    decoded = decode(bytes);
  } catch (error) {
    if (!(error instanceof KvError)) throw new Error(`decoding threw ${String(error)} instead of a KvError`, { cause: error });
    return;
  }
  expect(decode(encode(decoded))).toEqual(decoded);
}

const runs = Number(process.env.FUZZ_RUNS ?? 600);

describe('peer codec fuzz', () => {
  it('every request and reply type round-trips, in the forms of protocol version 1 and of version 2', () => {
    fc.assert(
      fc.property(
        fc.array(request, { minLength: 1, maxLength: 4 }),
        fc.array(reply, { minLength: 1, maxLength: 4 }),
        fc.constantFrom(peerProtocolVersions.jsonState, peerProtocolVersions.binaryState),
        (requests, replies, version) => {
          expect(decodeRequestBatch(encodeRequestBatch(requests, version))).toEqual(requests.map((message) => normalise(message)));
          expect(decodeReplyBatch(encodeReplyBatch(replies, version))).toEqual(replies.map((message) => normalise(message)));
        },
      ),
      { numRuns: runs },
    );
  });

  it('writes every gossiped view and every JSON control payload in binary at version 2 (tags 40 and 41), and as JSON text at version 1 (tags 4 and 5)', () => {
    fc.assert(
      fc.property(view, json, (state, payload) => {
        const tags = (version: number): number[] =>
          [
            encodeRequestBatch([{ type: 'gossip', state }], version),
            encodeRequestBatch([{ type: 'control', operation: 'handoff-held', payload }], version),
            encodeReplyBatch([{ type: 'gossip-reply', state }], version),
            encodeReplyBatch([{ type: 'control-reply', payload }], version),
          ].map((bytes) => bytes[2] as number);
        expect(tags(peerProtocolVersions.binaryState)).toEqual([40, 41, 40, 41]);
        expect(tags(peerProtocolVersions.jsonState)).toEqual([4, 5, 4, 5]);
      }),
      { numRuns: runs },
    );
  });

  it('keeps the JSON form for a state outside the binary layout, so a malformed view still reaches the receiver\'s validation', () => {
    for (const state of [{ members: 'nope' }, { members: {}, ring: null, bucketProperties: {}, bucketPropertiesVersion: 0, extra: 1 }, [1, 2], null]) {
      expect(encodeViewState(state)).toBeUndefined();
      const bytes = encodeRequestBatch([{ type: 'gossip', state }]);
      expect(bytes[2]).toBe(4);
      expect(decodeRequestBatch(bytes)).toEqual([{ type: 'gossip', state }]);
    }
    // A member filed under another id, a bucket property this build does not know: JSON, so nothing is silently dropped.
    const base = { members: {}, ring: null, bucketProperties: {}, bucketPropertiesVersion: 0 };
    expect(encodeViewState({ ...base, members: { n1: { id: 'n2', address: 'a:1', generation: 1, heartbeat: 1, status: 'up' } } })).toBeUndefined();
    expect(encodeViewState({ ...base, bucketProperties: { b: { dataType: 'counter' } } })).toBeUndefined();
    expect(encodeControlPayload(Number.NaN)).toBeUndefined();
    expect(encodeControlPayload(Buffer.from('x'))).toBeUndefined();
  });

  it('refuses binary views and control payloads over their bounds while decoding', () => {
    const members = (count: number): Buffer => new ByteWriter().varint(count).finish();
    expect(() => decodeViewState(members(viewWireLimits.maxMembers + 1))).toThrow(/member count 1025 outside 0..1024/);
    const longId = new ByteWriter().varint(1).string('n'.repeat(viewWireLimits.maxIdBytes + 1)).finish();
    expect(() => decodeViewState(longId)).toThrow(/member id of 129 bytes/);
    // A ring of two partitions whose second owner points past its one-name table.
    const badOwner = new ByteWriter().varint(0).u8(1).varint(2).varint(1).varint(1).string('n1').varint(0).varint(1).finish();
    expect(() => decodeViewState(badOwner)).toThrow(/ring owner index 1 outside 0..0/);
    const hugeRing = new ByteWriter().varint(0).u8(1).varint(viewWireLimits.maxPartitionCount + 1).finish();
    expect(() => decodeViewState(hugeRing)).toThrow(/partition count/);
    const status = new ByteWriter().varint(1).string('n1').string('a:1').varint(1).varint(1).u8(9).finish();
    expect(() => decodeViewState(status)).toThrow(/member status 9/);
    let nested = new ByteWriter();
    for (let depth = 0; depth <= controlWireLimits.maxDepth; depth++) nested = nested.u8(7).varint(1);
    expect(() => decodeControlPayload(nested.u8(0).finish())).toThrow(/nested deeper than 16/);
    expect(() => decodeControlPayload(new ByteWriter().u8(7).varint(controlWireLimits.maxItems + 1).finish())).toThrow(/array elements/);
    expect(() => decodeControlPayload(new ByteWriter().u8(99).finish())).toThrow(/value kind 99/);
    // A key named __proto__ is a plain field, never the object's prototype.
    const proto = decodeControlPayload(new ByteWriter().u8(8).varint(1).string('__proto__').u8(2).finish()) as Record<string, unknown>;
    expect(Object.keys(proto)).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(proto)).toBeNull();
  });

  it('makes a gossiped view of a 256-partition ring a fraction of its JSON text', () => {
    for (const nodes of [5, 100]) {
      const ids = Array.from({ length: nodes }, (_, index) => `node-${index}`);
      const state: ClusterView = {
        members: Object.fromEntries(ids.map((id, index) => [id, { id, address: `10.0.${index >> 8}.${index & 255}:17101`, generation: 1_764_000_000, heartbeat: 123_456, status: 'up' }])),
        ring: createRing(256, ids),
        bucketProperties: { '': { nVal: 3, r: 'quorum', w: 'quorum', conflictMode: 'siblings' } },
        bucketPropertiesVersion: 1,
      };
      const binary = encodeViewState(state)!;
      expect(decodeViewState(binary)).toEqual(state);
      expect(binary.length).toBeLessThan(Buffer.byteLength(JSON.stringify(state)) / 2);
    }
  });

  it('random bytes decode to valid messages or a KvError, never another exception', () => {
    const bytes = fc.oneof(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 200 }).map((tail) => Buffer.concat([Buffer.of(1, 1), tail])));
    fc.assert(
      fc.property(bytes, (body) => {
        checkDecode(body, decodeRequestBatch, encodeRequestBatch);
        checkDecode(body, decodeReplyBatch, encodeReplyBatch);
      }),
      { numRuns: runs * 4 },
    );
  });

  it('mutated valid requests decode to valid messages or a KvError, never another exception', () => {
    fc.assert(
      fc.property(fc.array(request, { minLength: 1, maxLength: 3 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (requests, mutations) => {
        checkDecode(mutate(encodeRequestBatch(requests), mutations), decodeRequestBatch, encodeRequestBatch);
      }),
      { numRuns: runs * 4 },
    );
  });

  it('mutated valid replies decode to valid messages or a KvError, never another exception', () => {
    fc.assert(
      fc.property(fc.array(reply, { minLength: 1, maxLength: 3 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (replies, mutations) => {
        checkDecode(mutate(encodeReplyBatch(replies), mutations), decodeReplyBatch, encodeReplyBatch);
      }),
      { numRuns: runs * 4 },
    );
  });

  it('refuses counts, partitions and page sizes beyond the wire limits while decoding', () => {
    const page = (maxKeys: number, maxBytes: number, partitionNumber: number): Buffer =>
      encodeRequestBatch([{ type: 'handoff-fetch', partition: partitionNumber, after: null, maxKeys, maxBytes }]);
    for (const body of [page(wireLimits.maxPageKeys + 1, 1024, 0), page(0, 1024, 0), page(10, wireLimits.maxPageBytes + 1, 0), page(10, 1024, wireLimits.maxPartition + 1)]) {
      expect(() => decodeRequestBatch(body)).toThrow(KvError);
    }
    const leaves = encodeRequestBatch([{ type: 'ae-keys', partition: 0, leaves: [1024], items: [] }]);
    expect(() => decodeRequestBatch(leaves)).toThrow(/leaf 1024/);
    const shortKey = encodeRequestBatch([{ type: 'ae-fetch', partition: 0, keys: [Buffer.of(1, 2, 3)], maxBytes: 10 }]);
    expect(() => decodeRequestBatch(shortKey)).toThrow(/storage key/);
  });

  it("anti-entropy's tree questions are binary: 8 bytes per hash, no JSON text, and bounded while decoding", () => {
    const root = '0123456789abcdef';
    const roots = Array.from({ length: 256 }, (_, index) => ({ partition: index, root }));
    const summary = encodeRequestBatch([{ type: 'ae-summary', roots }]);
    // Tag, count, then per root a varint partition (1-2 bytes) and a length-prefixed 8-byte hash.
    expect(summary.length).toBeLessThan(256 * 12 + 8);
    expect(summary.includes(Buffer.from(root))).toBe(false);
    const branches = Array.from({ length: merkleFanout }, () => root);
    const reply = encodeReplyBatch([{ type: 'ae-summary-reply', differing: [{ partition: 3, branches }], notReady: [] }]);
    expect(reply.includes(Buffer.from(root))).toBe(false);
    expect(decodeReplyBatch(reply)).toEqual([{ type: 'ae-summary-reply', differing: [{ partition: 3, branches }], notReady: [] }]);
    // A branch number past the fanout, and a partition past the wire limit, are refused while decoding.
    expect(() => decodeRequestBatch(encodeRequestBatch([{ type: 'ae-leaves', partition: 0, branches: [merkleFanout] }]))).toThrow(/branch/);
    expect(() => decodeRequestBatch(encodeRequestBatch([{ type: 'ae-summary', roots: [{ partition: wireLimits.maxPartition + 1, root }] }]))).toThrow(/partition/);
    // A hash that is not 16 hex digits is the sender's bug: it is refused before it is sent.
    expect(() => encodeRequestBatch([{ type: 'ae-reap', dataKey: encodeDataKey('b', 'k'), digest: 'not-a-hash' }])).toThrow(KvError);
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
