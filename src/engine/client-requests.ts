import { emptyContext, writeTimeMs } from '../core/versioning/context.js';
import type { VersionedObject } from '../core/versioning/versioned-object.js';
import type { ForwardPutRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import type { Coordinator } from './coordinator.js';
import type { ConsistentCoordinator } from './consistent-coordinator.js';
import { decodeConsistentValue, encodeConsistentValue } from '../core/consensus/consistent-value.js';
import type { ConsistentCommand, ConsistentOutcome, DeleteCommand, PutCommand, ReadOptions, WriteOutcome } from './kv-service.js';
import { type ListPage, type ListQuery, listKeys } from './key-listing.js';
import type { Replica } from './replica.js';
import type { NodeContext } from './node-context.js';

/** What the client requests need from their node. */
export type ClientRequestsOptions = Pick<NodeContext, 'selfId' | 'clock' | 'requireRing' | 'isUp' | 'bucketProperties' | 'send'> & {
  readonly coordinator: Coordinator;
  readonly consistentCoordinator: ConsistentCoordinator;
  readonly replica: Replica;
  /** limits.maxInFlightRequests and limits.requestTimeoutMs. */
  readonly limits: { readonly maxInFlightRequests: number; readonly requestTimeoutMs: number };
};

/**
 * The client side of a node (riak_kv's riak_client): admits a client request under the in-flight
 * bound, turns it into a coordinated read, write or key listing, and answers it.
 */
export class ClientRequests {
  private inFlightCount = 0;

  constructor(private readonly options: ClientRequestsOptions) {}

  /** Client requests in flight now (for /status). */
  get inFlight(): number {
    return this.inFlightCount;
  }

  /**
   * Sheds load beyond the in-flight bound with 503 and Retry-After instead of queueing without
   * limit. Public so that other client operations (data types) count against the same bound.
   */
  async admit<T>(work: () => Promise<T>): Promise<T> {
    if (this.inFlightCount >= this.options.limits.maxInFlightRequests) {
      throw new KvError(
        'KV_OVERLOADED',
        `node has ${this.inFlightCount} requests in flight (limit ${this.options.limits.maxInFlightRequests}); retry after a short pause`,
        { retryAfterSeconds: 1 },
      );
    }
    this.inFlightCount += 1;
    try {
      return await work();
    } finally {
      this.inFlightCount -= 1;
    }
  }

  /** Coordinated read over the key's primaries, with read repair of stale replicas it saw. */
  async get(bucket: string, key: string, options: ReadOptions): Promise<VersionedObject | undefined> {
    return this.admit(async () => this.options.coordinator.read(bucket, key, options));
  }

  /** This node's own copy, without coordination or read repair. */
  async getLocal(bucket: string, key: string): Promise<VersionedObject | undefined> {
    return this.options.replica.read(bucket, key);
  }

  /** Coordinated write; answers the new object and the context its writer may chain into the next write. */
  async put(command: PutCommand): Promise<WriteOutcome> {
    return this.admit(async () =>
      this.options.coordinator.write(
        command.bucket,
        command.key,
        command.options,
        {
          value: command.value,
          contentType: command.contentType,
          tombstone: false,
          context: command.context ?? emptyContext,
          // Stamped after every version the context names (a hybrid logical clock), so lww keeps it under clock skew.
          nowMs: writeTimeMs(this.options.clock.nowMs(), command.context ?? emptyContext),
          // A write without its own ttl takes the bucket's; 0 means it never expires.
          ttlSeconds: command.ttlSeconds ?? this.options.bucketProperties(command.bucket).ttlSeconds ?? 0,
        },
        command.precondition,
      ),
    );
  }

  /** A write another node handed here to coordinate (forward-put): admitted like a client write of this node. */
  async forwarded(request: ForwardPutRequest): Promise<WriteOutcome> {
    return this.admit(async () => this.options.coordinator.writeForwarded(request));
  }

  /** Coordinated delete: a tombstone written like any other version. */
  async delete(command: DeleteCommand): Promise<WriteOutcome> {
    return this.admit(async () =>
      this.options.coordinator.write(command.bucket, command.key, command.options, {
        value: new Uint8Array(0),
        contentType: 'application/octet-stream',
        tombstone: true,
        context: command.context ?? emptyContext,
        nowMs: writeTimeMs(this.options.clock.nowMs(), command.context ?? emptyContext),
      }),
    );
  }

  /** A linearizable operation on a consistent bucket's key (src/engine/consistent-coordinator.ts). */
  async consistent(bucket: string, key: string, command: ConsistentCommand, timeoutMs?: number): Promise<ConsistentOutcome> {
    if (this.options.bucketProperties(bucket).consistent !== true) {
      throw new KvError(
        'KV_CONSISTENT_BUCKET',
        `bucket ${JSON.stringify(bucket)} is not consistent, so it has no linearizable operations; set "consistent": true for it in the config's buckets when the cluster is founded`,
      );
    }
    const operation =
      command.kind === 'read'
        ? ({ kind: 'read' } as const)
        : ({ kind: 'write', value: command.value === null ? null : encodeConsistentValue(command.value), condition: command.condition } as const);
    const result = await this.admit(async () =>
      this.options.consistentCoordinator.run(bucket, key, operation, timeoutMs ?? this.options.limits.requestTimeoutMs),
    );
    const outcome: ConsistentOutcome = { version: result.state.version, value: result.state.value === null ? null : decodeConsistentValue(result.state.value) };
    if (result.outcome === 'precondition-failed') {
      const now = outcome.value === null ? 'absent' : `at version ${outcome.version}`;
      throw new KvError(
        'KV_PRECONDITION_FAILED',
        `the condition of the write does not hold: key '${key}' is ${now}; read it again (its x-ringkv-version is the one to send in If-Match) and decide`,
        {
          details: { version: outcome.version, absent: outcome.value === null },
        },
      );
    }
    return outcome;
  }

  /** One page of a bucket's keys: a coverage query over every partition (src/engine/key-listing.ts). */
  async list(query: ListQuery): Promise<ListPage> {
    const properties = this.options.bucketProperties(query.bucket);
    return this.admit(async () =>
      listKeys(
        {
          selfId: this.options.selfId,
          ring: this.options.requireRing(),
          nVal: properties.nVal,
          mode: properties.conflictMode,
          nowMs: this.options.clock.nowMs(),
          isUp: this.options.isUp,
          send: this.options.send,
          timeoutMs: query.timeoutMs ?? this.options.limits.requestTimeoutMs,
        },
        query,
      ),
    );
  }
}
