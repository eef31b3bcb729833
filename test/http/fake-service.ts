import type { RepairProgress } from '../../src/engine/anti-entropy.js';
import defaults from '../../config/default.json' with { type: 'json' };
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { type VersionedObject, applyWrite, emptyObject, isDeleted, mergeObjects } from '../../src/core/versioning/versioned-object.js';
import { type BucketProperties, type NodeConfig } from '../../src/config/schema.js';
import { bucketProperties, mergeConfig, validateConfig } from '../../src/config/validate.js';
import type {
  ConsistentCommand,
  ConsistentOutcome,
  DeleteCommand,
  KvService,
  NodeStatus,
  PutCommand,
  ReadOptions,
  WriteOutcome,
} from '../../src/engine/kv-service.js';
import { conditionHolds } from '../../src/core/consensus/compare-and-set.js';
import { type ListPage, type ListQuery, compareKeys } from '../../src/engine/key-listing.js';
import { emptyContext, writeContext } from '../../src/core/versioning/context.js';
import { KvError } from '../../src/util/errors.js';
import { type DataTypeUpdate, type DataTypeValue, applyDataTypeUpdate, dataTypeKey, dataTypeValue } from '../../src/core/datatypes/data-type.js';
import type { DataTypeService, DataTypeWriteOptions } from '../../src/engine/kv-service.js';
import type { WatchFilter } from '../../src/core/watch/watch-cursor.js';
import { WatchLog } from '../../src/engine/watch-log.js';
import { encodeObject } from '../../src/core/versioning/object-codec.js';
import { type WatchStream, Watches } from '../../src/engine/watches.js';
import { systemClock } from '../../src/adapters/system-clock.js';
import { silentLogger } from '../../src/ports/logger.js';
import { Leases } from '../../src/engine/leases.js';
import { decodeLeaseRecord, leaseBucket } from '../../src/core/leases/lease-record.js';

/** The secret the fake accepts on the peer route. */
export const fakeSecret = 'fake-cluster-secret-0123456789';

/** A validated NodeConfig: config/default.json with `overrides` merged over it. */
export function testConfig(overrides: unknown = {}): NodeConfig {
  return validateConfig(mergeConfig(defaults, overrides));
}

/** The fixed status the fake reports, with figures the /metrics test can look for. */
export const fakeStatus: NodeStatus = {
  node: { id: 'fake', address: '127.0.0.1:17101', generation: 1, startedAtMs: 0 },
  members: [
    { id: 'fake', address: '127.0.0.1:17101', status: 'up', generation: 1, partitionsOwned: 256, host: 'fake' },
    { id: 'other', address: '127.0.0.1:17102', status: 'down', generation: 3, partitionsOwned: 0, host: 'other-host', zone: 'zone-b' },
  ],
  partitionCount: 256,
  storage: {
    engine: 'fake',
    levels: [
      { level: 0, files: 2, bytes: 4096 },
      { level: 1, files: 5, bytes: 81920 },
    ],
    compactions: 7,
    approximateBytes: 86016,
    keys: 42,
  },
  hints: { pending: 3, delivered: 11, expired: 1, dropped: 4 },
  gossip: { bytesSent: 123_456, rounds: 300, healthScore: 0 },
};

/**
 * A KvService test double: one in-memory replica that versions writes exactly as a real replica
 * does (applyWrite / mergeObjects), records what it was asked, and can be told to fail.
 */
export class FakeKvService implements KvService {
  readonly nodeId = 'fake';
  /** The stored objects by `bucket/key`. */
  readonly objects = new Map<string, VersionedObject>();
  /** Every call, in order, with its arguments. */
  readonly calls: { method: string; args: unknown[] }[] = [];
  compactions = 0;
  /** The fake's clock: it stamps writes and decides expiry on reads; a test may move it on. */
  clockMs = Date.UTC(2024, 0, 2, 3, 4, 5);
  private nextError: Error | undefined;
  /** The data types (/dt) by `bucket/key`, applied with the real core functions as one actor. */
  readonly dataTypeStates = new Map<string, VersionedObject>();
  readonly dataTypes: DataTypeService = {
    read: async (bucket: string, key: string, options: ReadOptions): Promise<DataTypeValue | undefined> => {
      this.record('dt.read', bucket, key, options);
      return dataTypeValue(this.dataTypeStates.get(`${bucket}/${key}`));
    },
    update: async (bucket: string, key: string, update: DataTypeUpdate, options: DataTypeWriteOptions): Promise<void> => {
      this.record('dt.update', bucket, key, update, options);
      const state = this.dataTypeStates.get(`${bucket}/${key}`) ?? emptyObject;
      const { maxSetElements, maxSetBytes } = this.config.limits;
      const updated = applyDataTypeUpdate(state, this.nodeId, update, this.clockMs, { maxSetElements, maxSetBytes });
      this.dataTypeStates.set(`${bucket}/${key}`, updated);
      // As the applying replica does: the update is reported under its stored key with the dot it issued.
      this.watchLog.append(bucket, dataTypeKey(key), encodeObject(updated), { node: this.nodeId, counter: updated.clock[this.nodeId] ?? 0 });
    },
  };

  /** The fake's log of its writes, which its watches read as the one member ('fake'): the real engine classes. */
  readonly watchLog: WatchLog;
  readonly watches: Watches;

  /**
   * Leases: the real engine class over the fake's registers; its sweeper (started by a test that
   * needs expiry, on the system clock) watches every lease of the fake.
   */
  readonly leases: Leases;

  constructor(readonly config: NodeConfig = testConfig()) {
    this.leases = new Leases({
      consistent: async (bucket, key, command, timeoutMs) => this.consistent(bucket, key, command, timeoutMs),
      clock: systemClock,
      random: { next: Math.random, int: (bound) => Math.floor(Math.random() * bound) },
      logger: silentLogger,
      scan: async () => ({
        leases: [...this.registers]
          .filter(([name, register]) => name.startsWith(`${leaseBucket}/`) && register.value !== null)
          .map(([name, register]) => {
            const record = decodeLeaseRecord((register.value as { value: Uint8Array }).value);
            return { id: name.slice(leaseBucket.length + 1), refresh: record.refresh, ending: record.ending, ttlSeconds: record.ttlSeconds };
          }),
        wrapped: true,
      }),
      // The fake's registers hold no acceptor state: no leased key is found for an orphan check.
      leasedKeys: async () => ({ keys: [], wrapped: true }),
      sweepIntervalMs: 100,
    });
    this.watchLog = new WatchLog(systemClock, { next: Math.random, int: (bound) => Math.floor(Math.random() * bound) }, () => config.watch);
    this.watches = new Watches({
      clock: systemClock,
      logger: silentLogger,
      members: () => [this.nodeId],
      departed: () => false,
      // The fake is the one member and never departs.
      fenceDeparture: async () => undefined,
      send: async (_node, request) => {
        if (request.type !== 'watch-poll') throw new Error(`the fake's watches send only watch-poll, not ${request.type}`);
        return this.watchLog.poll(request);
      },
      settings: () => ({ ...config.watch, peerTimeoutMs: config.limits.peerTimeoutMs }),
    });
  }

  watch(filter: WatchFilter, resumeFrom?: string): WatchStream {
    this.record('watch', filter, resumeFrom);
    return this.watches.watch(filter, resumeFrom);
  }

  /** Makes the next service call (get, getLocal, put, delete, handlePeer, compact) throw `error`. */
  failNextWith(error: Error): void {
    this.nextError = error;
  }

  /** The arguments of the calls to `method`. */
  callsOf(method: string): unknown[][] {
    return this.calls.filter((call) => call.method === method).map((call) => call.args);
  }

  private record(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
    const error = this.nextError;
    this.nextError = undefined;
    if (error !== undefined) throw error;
  }

  nowMs(): number {
    return this.clockMs;
  }

  private store(
    bucket: string,
    key: string,
    value: Uint8Array,
    contentType: string,
    tombstone: boolean,
    context: PutCommand['context'],
    ttlSeconds = 0,
  ): WriteOutcome {
    const local = this.objects.get(`${bucket}/${key}`) ?? emptyObject;
    // Each write gets a later timestamp so last-modified values are distinct and predictable.
    this.clockMs += 1000;
    const seen = context ?? emptyContext;
    const written = applyWrite(
      local,
      this.nodeId,
      { value, contentType, tombstone, context: seen, nowMs: this.clockMs, ttlSeconds },
      this.bucketProperties(bucket).conflictMode,
    );
    this.objects.set(`${bucket}/${key}`, written);
    const dot = { node: this.nodeId, counter: written.clock[this.nodeId] ?? 0 };
    this.watchLog.append(bucket, key, encodeObject(written), dot);
    // As the write coordinator does: the context carries the new version's time.
    const created = written.siblings.find((sibling) => sibling.dot.node === dot.node && sibling.dot.counter === dot.counter);
    return { context: writeContext(seen, dot, created?.lastModifiedMs) };
  }

  async get(bucket: string, key: string, options: ReadOptions): Promise<VersionedObject | undefined> {
    this.record('get', bucket, key, options);
    return this.objects.get(`${bucket}/${key}`);
  }

  /** Lists the bucket's live keys in byte order, one page (the coverage query's answer on one node). */
  async list(query: ListQuery): Promise<ListPage> {
    this.record('list', query);
    const prefix = `${query.bucket}/`;
    const keys = [...this.objects]
      .filter(([name, object]) => name.startsWith(prefix) && !isDeleted(object))
      .map(([name]) => name.slice(prefix.length))
      .filter((key) => key.startsWith(query.prefix ?? '') && (query.after === undefined || compareKeys(key, query.after) > 0))
      .sort(compareKeys);
    const page = keys.slice(0, query.limit);
    return { keys: page, next: keys.length > query.limit ? page[page.length - 1]! : null };
  }

  async getLocal(bucket: string, key: string): Promise<VersionedObject | undefined> {
    this.record('getLocal', bucket, key);
    return this.objects.get(`${bucket}/${key}`);
  }

  async put(command: PutCommand): Promise<WriteOutcome> {
    this.record('put', command);
    return this.store(
      command.bucket,
      command.key,
      command.value,
      command.contentType,
      false,
      command.context,
      command.ttlSeconds ?? this.bucketProperties(command.bucket).ttlSeconds,
    );
  }

  /** The consistent keys' states by `bucket/key`. */
  readonly registers = new Map<string, ConsistentOutcome>();

  /** A consistent operation on one in-memory register, judged with the core's conditionHolds as a Paxos round judges it. */
  async consistent(bucket: string, key: string, command: ConsistentCommand, timeoutMs?: number): Promise<ConsistentOutcome> {
    this.record('consistent', bucket, key, command, timeoutMs);
    const current = this.registers.get(`${bucket}/${key}`) ?? { version: 0, value: null };
    if (command.kind === 'read') return current;
    if (!conditionHolds({ version: current.version, value: current.value === null ? null : current.value.value, writes: [] }, command.condition)) {
      throw new KvError('KV_PRECONDITION_FAILED', `the condition does not hold at version ${current.version}`, {
        details: { version: current.version, absent: current.value === null },
      });
    }
    const next: ConsistentOutcome = { version: current.version + 1, value: command.value };
    this.registers.set(`${bucket}/${key}`, next);
    return next;
  }

  async delete(command: DeleteCommand): Promise<WriteOutcome> {
    this.record('delete', command);
    return this.store(command.bucket, command.key, new Uint8Array(0), 'application/octet-stream', true, command.context);
  }

  bucketProperties(bucket: string): BucketProperties {
    return bucketProperties(this.config, bucket);
  }

  async handlePeer(request: PeerRequest): Promise<PeerReply> {
    this.record('handlePeer', request);
    switch (request.type) {
      case 'replica-get':
        return { type: 'replica-get-reply', object: this.objects.get(`${request.bucket}/${request.key}`) ?? null };
      case 'replica-put': {
        const local = this.objects.get(`${request.bucket}/${request.key}`) ?? emptyObject;
        this.objects.set(`${request.bucket}/${request.key}`, mergeObjects(local, request.object, request.mode));
        return { type: 'replica-put-reply', durable: request.sync };
      }
      case 'swim-ping':
      case 'swim-ping-req':
      case 'swim-gossip':
      case 'swim-digest':
      case 'swim-records':
      case 'cluster-state':
        throw new KvError('KV_NOT_READY', 'the fake does not gossip');
      default:
        throw new Error(`the fake cannot handle ${request.type}`);
    }
  }

  async status(): Promise<NodeStatus> {
    this.record('status');
    return fakeStatus;
  }

  /** Anti-entropy is not modelled: a repair finishes at once with nothing to do. */
  repair(): RepairProgress {
    this.record('repair');
    return this.repairProgress();
  }

  /** Progress of the (instant) repair. */
  repairProgress(): RepairProgress {
    return { running: false, partitionsDone: 0, partitionsTotal: 0, keysRepaired: 0, startedAtMs: undefined, finishedAtMs: undefined };
  }

  /** A one-node fake cannot leave. */
  async leave(): Promise<{ status: string }> {
    throw new KvError('KV_CONFLICT', 'this is the only live member');
  }

  /** The fake knows no other members. */
  removeMember(nodeId: string): { status: string } {
    throw new KvError('KV_UNKNOWN_NODE', `no member ${nodeId}`);
  }

  async compact(start?: Uint8Array, end?: Uint8Array): Promise<void> {
    this.record('compact', start, end);
    this.compactions += 1;
  }
}
