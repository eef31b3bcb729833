import { partitionOf, encodeDataKey } from '../core/keys.js';
import { type PlacementView, type WritePlan, planRead, planWrite } from '../core/coordination/plan.js';
import { type ReadEffect, type ReadEvent, startRead, stepRead } from '../core/coordination/read-coordinator.js';
import { type WriteEffect, type WriteEvent, startWrite, stepWrite } from '../core/coordination/write-coordinator.js';
import type { ForwardPutRequest, PeerReply, PeerRequest } from '../core/wire/messages.js';
import { type CausalContext, emptyContext, encodeContext, objectContext } from '../core/versioning/context.js';
import type { DataTypeUpdate } from '../core/datatypes/data-type.js';
import type { Precondition } from '../core/versioning/preconditions.js';
import { type WriteOperation, checkBeforeRetrying } from '../core/quorum/quorum.js';
import { type Dot, type VersionedObject, type WriteIntent, emptyObject, mergeObjects } from '../core/versioning/versioned-object.js';
import { descends } from '../core/versioning/version-vector.js';
import { KvError, isKvError } from '../util/errors.js';
import type { TimerHandle } from '../ports/clock.js';
import type { BucketProperties } from '../config/schema.js';
import type { HintStore } from './hint-store.js';
import type { ReadOptions, WriteOptions, WriteOutcome } from './kv-service.js';
import type { NodeContext } from './node-context.js';
import { clientRefusalCodes } from './peer-service.js';

/** The refusal of a plain operation (a replica write, a /dt update, a restore) on a consistent bucket. */
export function consistentBucketRefusal(bucket: string, what: string): KvError {
  return new KvError(
    'KV_CONSISTENT_BUCKET',
    `bucket ${JSON.stringify(bucket)} is consistent (every operation on its keys is a Paxos round), so ${what} refuses it; use GET, PUT and DELETE on /kv (linearizable there), not /dt, ?local=true or a restore`,
  );
}

/** What the coordinator needs from its node, handed to it rather than imported (no cycle). */
export type CoordinatorDependencies = Pick<NodeContext, 'selfId' | 'clock' | 'logger' | 'requireRing' | 'isUp' | 'bucketProperties' | 'send'> & {
  readonly hints: HintStore;
  readonly settings: () => { readonly requestTimeoutMs: number; readonly speculativeRetryMs: number; readonly hintedHandoff: boolean };
};

/**
 * Runs the pure read and write coordinators of src/core/coordination: plans the request,
 * feeds the machine its events (answers, failures, the deadline) and carries out the effects
 * it returns (peer calls, timers, hints, read repair, the reply). One deadline covers the
 * whole request: every peer call gets what is left of it.
 */
export class Coordinator {
  /**
   * Client requests this node took for a key it holds no replica of (README, "Shards"): writes
   * handed whole to the coordinating replica, and reads that asked only other members. A
   * shard-aware client sends each key to a replica, so these stay at 0 under its load.
   */
  readonly offReplica = { forwardedWrites: 0, reads: 0 };

  constructor(private readonly deps: CoordinatorDependencies) {}

  private view(bucket: string, key: string): { view: PlacementView; properties: BucketProperties } {
    const ring = this.deps.requireRing();
    const properties = this.deps.bucketProperties(bucket);
    // A consistent bucket's keys live only in Paxos rounds (src/engine/consistent-coordinator.ts):
    // a quorum read, write, data type update or restore here would bypass them, with fallbacks and hints.
    if (properties.consistent === true) throw consistentBucketRefusal(bucket, 'the plain read and write path');
    return {
      view: { ring, partition: partitionOf(bucket, key, ring.partitionCount), nVal: properties.nVal, self: this.deps.selfId, isUp: this.deps.isUp },
      properties,
    };
  }

  /** A coordinated read: the merged object of `r` replicas (undefined when none has the key). */
  async read(bucket: string, key: string, options: ReadOptions): Promise<VersionedObject | undefined> {
    const { view, properties } = this.view(bucket, key);
    const settings = this.deps.settings();
    const timeoutMs = options.timeoutMs ?? settings.requestTimeoutMs;
    const plan = planRead(view, { r: options.r ?? properties.r, ...(options.pr === undefined ? {} : { pr: options.pr }) });
    if (!plan.primaries.includes(this.deps.selfId)) this.offReplica.reads++;
    const mode = properties.conflictMode;
    const deadlineAtMs = this.deps.clock.nowMs() + timeoutMs;
    return new Promise<VersionedObject | undefined>((resolve, reject) => {
      let state = startRead(plan, mode, timeoutMs);
      const timers: TimerHandle[] = [];
      const feed = (event: ReadEvent): void => {
        const [next, effects] = stepRead(state, event);
        state = next;
        for (const effect of effects) perform(effect);
        if (state.decided && state.repaired) for (const timer of timers) timer.cancel();
      };
      const perform = (effect: ReadEffect): void => {
        switch (effect.type) {
          case 'arm-deadline':
          case 'arm-spares': {
            const event: ReadEvent = effect.type === 'arm-deadline' ? { type: 'deadline' } : { type: 'spares-due' };
            timers.push(this.deps.clock.setTimer(Math.max(0, effect.atMs - this.deps.clock.nowMs()), () => feed(event)));
            return;
          }
          case 'ask':
            this.deps
              .send(effect.node, { type: 'replica-get', bucket, key }, this.remainingMs(deadlineAtMs))
              .then(
                (reply) =>
                  feed(
                    reply.type === 'replica-get-reply' ? { type: 'answered', node: effect.node, object: reply.object } : { type: 'failed', node: effect.node },
                  ),
                () => feed({ type: 'failed', node: effect.node }),
              )
              .catch((error: unknown) => this.deps.logger.warn({ error: String(error) }, 'read step failed'));
            return;
          case 'reply':
            resolve(effect.object);
            return;
          case 'fail':
            reject(effect.error);
            return;
          case 'repair':
            for (const node of effect.nodes) {
              this.deps
                .send(node, { type: 'replica-put', bucket, key, object: effect.object, mode, sync: false }, this.deps.settings().requestTimeoutMs)
                .catch((error: unknown) => this.deps.logger.debug({ node, error: String(error) }, 'read repair failed'));
            }
            return;
        }
      };
      feed({ type: 'start', nowMs: this.deps.clock.nowMs(), speculativeRetryMs: settings.speculativeRetryMs, isUp: this.deps.isUp });
    });
  }

  /**
   * A coordinated write (or delete): the context its writer may chain. When this node is not the
   * key's coordinating replica, the write is handed whole to that replica (forward-put), which
   * runs it and replicates it from there, so the value crosses the network once per replica
   * (Riak's put forwarding) instead of entry -> coordinator -> entry -> replicas.
   */
  async write(bucket: string, key: string, options: WriteOptions, intent: WriteIntent, precondition?: Precondition): Promise<WriteOutcome> {
    if (precondition === undefined) {
      // One plan serves both the choice of coordinating replica and the write run here.
      const planned = this.plannedWrite(bucket, key, options);
      const coordinating = this.forwardTarget(planned.plan);
      return coordinating === undefined ? this.writeOnce(planned, bucket, key, options, intent) : this.forward(coordinating, bucket, key, options, intent);
    }
    // A conditional write first reads r replicas; the coordinating replica checks the
    // precondition against that read merged with its own copy, under its key lock. One deadline
    // covers the read, the write and the read of the refusal's context.
    const deadline = this.deadlineOf(options);
    const base = (await this.read(bucket, key, { timeoutMs: deadline.timeoutMs })) ?? null;
    try {
      const writeOptions = this.restOfDeadline(options, deadline, 'conditional write');
      return await this.writeOnce(this.plannedWrite(bucket, key, writeOptions), bucket, key, writeOptions, intent, { precondition, base });
    } catch (error) {
      if (!isKvError(error) || error.code !== 'KV_PRECONDITION_FAILED') throw error;
      // The refusal carries the current context, so the client can read the key's state from it and decide.
      const leftMs = deadline.leftMs();
      const current = leftMs < 1 ? undefined : await this.read(bucket, key, { timeoutMs: leftMs }).catch(() => undefined);
      throw new KvError('KV_PRECONDITION_FAILED', error.message, { details: { context: encodeContext(objectContext(current ?? base ?? emptyObject)) } });
    }
  }

  /**
   * A write another node forwarded here (forward-put): coordinated here whatever this node's own
   * plan says, never forwarded again, so two nodes whose rings differ cannot pass a write back and forth.
   */
  async writeForwarded(request: ForwardPutRequest): Promise<WriteOutcome> {
    const { w, pw, dw } = request;
    const options: WriteOptions = {
      timeoutMs: request.timeoutMs,
      ...(w === undefined ? {} : { w }),
      ...(pw === undefined ? {} : { pw }),
      ...(dw === undefined ? {} : { dw }),
    };
    return this.writeOnce(this.plannedWrite(request.bucket, request.key, options), request.bucket, request.key, options, request.write);
  }

  /**
   * The node a write is forwarded to: the coordinating replica of the write's plan when it is
   * another node. Undefined when this node coordinates, or when the plan cannot be met (the write
   * then fails here, saying why, without a round trip).
   */
  private forwardTarget(plan: WritePlan): string | undefined {
    return plan.impossible || plan.coordinating === this.deps.selfId ? undefined : plan.coordinating;
  }

  /** The plan of a write (or update, or restored version) of a key, and its bucket's properties, from the ring as it is now. */
  private plannedWrite(bucket: string, key: string, options: WriteOptions): PlannedWrite {
    const { view, properties } = this.view(bucket, key);
    return { plan: planWrite(view, this.quorumsOf(options, properties), this.deps.settings().hintedHandoff), properties };
  }

  /** Hands a write to its coordinating replica and answers what it answered; one deadline covers both hops. */
  private async forward(node: string, bucket: string, key: string, options: WriteOptions, intent: WriteIntent): Promise<WriteOutcome> {
    this.offReplica.forwardedWrites++;
    const timeoutMs = options.timeoutMs ?? this.deps.settings().requestTimeoutMs;
    const { w, pw, dw } = options;
    const request: ForwardPutRequest = {
      type: 'forward-put',
      bucket,
      key,
      write: intent,
      timeoutMs,
      ...(w === undefined ? {} : { w }),
      ...(pw === undefined ? {} : { pw }),
      ...(dw === undefined ? {} : { dw }),
    };
    const operation: WriteOperation = intent.tombstone ? 'delete' : 'write';
    let reply: PeerReply;
    try {
      reply = await this.deps.send(node, request, timeoutMs + peerCallGraceMs);
    } catch (error) {
      // The coordinating replica's own answer (a quorum not met, a refusal) reaches the client as it
      // is; a replica that could not be reached, or did not answer in time, is this node's to explain.
      if (isKvError(error) && error.code !== 'KV_PEER_UNREACHABLE' && error.code !== 'KV_TIMEOUT') throw error;
      throw coordinatingFailure(operation, node, timeoutMs, error);
    }
    if (reply.type !== 'forward-put-reply')
      throw new KvError(
        'KV_INTERNAL',
        `the replica answered ${reply.type} to forward-put, which no ringkv of this version answers; run the same ringkv version on every node`,
      );
    return { context: reply.context };
  }

  /** A write's quorums: the request's, else the bucket's w. */
  private quorumsOf(
    options: WriteOptions,
    properties: BucketProperties,
  ): { readonly w: BucketProperties['w']; readonly pw?: BucketProperties['w']; readonly dw?: BucketProperties['w'] } {
    return { w: options.w ?? properties.w, ...(options.pw === undefined ? {} : { pw: options.pw }), ...(options.dw === undefined ? {} : { dw: options.dw }) };
  }

  /** One deadline for a request made of several steps: its length, and what is left of it now. */
  private deadlineOf(options: WriteOptions): { readonly timeoutMs: number; leftMs(): number } {
    const timeoutMs = options.timeoutMs ?? this.deps.settings().requestTimeoutMs;
    const deadlineAtMs = this.deps.clock.nowMs() + timeoutMs;
    return { timeoutMs, leftMs: () => Math.floor(deadlineAtMs - this.deps.clock.nowMs()) };
  }

  /** The options of a write that follows a read in the same request: what the read left of the deadline. */
  private restOfDeadline(options: WriteOptions, deadline: { readonly timeoutMs: number; leftMs(): number }, what: string): WriteOptions {
    const leftMs = deadline.leftMs();
    if (leftMs < 1)
      throw new KvError(
        'KV_TIMEOUT',
        `the read this ${what} makes first took the whole deadline of ${deadline.timeoutMs} ms; the ${what} was not sent (retry with a longer timeout_ms)`,
      );
    return { ...options, timeoutMs: leftMs };
  }

  private async writeOnce(
    planned: PlannedWrite,
    bucket: string,
    key: string,
    options: WriteOptions,
    intent: WriteIntent,
    condition?: { readonly precondition: Precondition; readonly base: VersionedObject | null },
  ): Promise<WriteOutcome> {
    const mode = planned.properties.conflictMode;
    return this.replicated(planned, bucket, key, options, intent.context, intent.tombstone ? 'delete' : 'write', async (node, sync, timeoutMs) => {
      const reply = await this.deps.send(
        node,
        { type: 'coordinate-put', bucket, key, write: intent, mode, sync, ...(condition === undefined ? {} : condition) },
        timeoutMs,
      );
      if (reply.type !== 'coordinate-put-reply')
        throw new KvError(
          'KV_INTERNAL',
          `the replica answered ${reply.type} to coordinate-put, which no ringkv of this version answers; run the same ringkv version on every node`,
        );
      return reply;
    });
  }

  /**
   * Merges a stored version from elsewhere (a backup being restored) into the key's replicas, as
   * read repair and handoff do: every replica merges it with what it holds by the clocks (a
   * replica-put), so it can add what a replica lacks but never remove or overwrite a newer
   * version. The write machine counts acknowledgements against `w` (and hints for down
   * replicas) exactly as for a client write; no dot is issued, the version keeps its own.
   */
  async mergeVersion(bucket: string, key: string, object: VersionedObject, options: WriteOptions): Promise<void> {
    const planned = this.plannedWrite(bucket, key, options);
    const mode = planned.properties.conflictMode;
    await this.replicated(planned, bucket, key, options, emptyContext, 'restore', async (node, sync, timeoutMs) => {
      const reply = await this.deps.send(node, { type: 'replica-put', bucket, key, object, mode, sync }, timeoutMs);
      if (reply.type !== 'replica-put-reply')
        throw new KvError(
          'KV_INTERNAL',
          `the replica answered ${reply.type} to replica-put, which no ringkv of this version answers; run the same ringkv version on every node`,
        );
      // The other replicas get the same version to merge; the dot only feeds the write machine.
      return { object, durable: reply.durable, dot: { node: '', counter: 0 } };
    });
  }

  /**
   * A data type update (src/core/datatypes/): applied at one replica, which issues its dots, and
   * the resulting state replicated to the others with w, hints and deadline exactly as a write.
   * A remove first reads r replicas, so the applying replica has seen what its context names.
   */
  async updateDataType(bucket: string, key: string, options: WriteOptions & { readonly r?: ReadOptions['r'] }, update: DataTypeUpdate): Promise<void> {
    const needsBase = update.type === 'set' && update.remove.length > 0;
    let writeOptions: WriteOptions = options;
    let base: VersionedObject | null = null;
    if (needsBase) {
      // One deadline covers the read and the update: the update gets what the read left of it.
      const deadline = this.deadlineOf(options);
      base = (await this.read(bucket, key, { ...(options.r === undefined ? {} : { r: options.r }), timeoutMs: deadline.timeoutMs })) ?? null;
      // The remove's context came from replicas this read did not reach (or that were ahead of
      // them): asking every replica, while the deadline allows, spares the client a 412 and a re-read.
      if (update.context !== undefined && !descends(base?.clock ?? {}, update.context.vector)) {
        const leftForReadMs = deadline.leftMs();
        const everyone = leftForReadMs < 1 ? undefined : await this.read(bucket, key, { r: 'all', timeoutMs: leftForReadMs }).catch(() => undefined);
        if (everyone !== undefined) base = base === null ? everyone : mergeObjects(base, everyone, 'siblings');
      }
      writeOptions = this.restOfDeadline(options, deadline, 'remove');
    }
    await this.replicated(this.plannedWrite(bucket, key, writeOptions), bucket, key, writeOptions, emptyContext, 'update', async (node, sync, timeoutMs) => {
      const reply = await this.deps.send(node, { type: 'dt-update', bucket, key, update, sync, base }, timeoutMs);
      if (reply.type !== 'dt-update-reply')
        throw new KvError(
          'KV_INTERNAL',
          `the replica answered ${reply.type} to dt-update, which no ringkv of this version answers; run the same ringkv version on every node`,
        );
      // A data type update hands no context back: the dot only feeds the write machine.
      return { object: reply.object, durable: reply.durable, dot: { node: '', counter: 0 } };
    });
  }

  /**
   * Runs the write machine on a plan its caller made: `coordinate` has the coordinating replica apply the change and answer
   * the new object, which then goes to the other targets (and hints) until the quorum is met.
   */
  private async replicated(
    planned: PlannedWrite,
    bucket: string,
    key: string,
    options: WriteOptions,
    context: CausalContext,
    operation: WriteOperation,
    coordinate: (node: string, sync: boolean, timeoutMs: number) => Promise<{ readonly object: VersionedObject; readonly dot: Dot; readonly durable: boolean }>,
  ): Promise<WriteOutcome> {
    const { plan, properties } = planned;
    const timeoutMs = options.timeoutMs ?? this.deps.settings().requestTimeoutMs;
    const mode = properties.conflictMode;
    const deadlineAtMs = this.deps.clock.nowMs() + timeoutMs;
    return new Promise<WriteOutcome>((resolve, reject) => {
      let state = startWrite(plan, context, timeoutMs, operation);
      let deadline: TimerHandle | undefined;
      const feed = (event: WriteEvent): void => {
        const [next, effects] = stepWrite(state, event);
        state = next;
        for (const effect of effects) perform(effect);
      };
      const perform = (effect: WriteEffect): void => {
        switch (effect.type) {
          case 'arm-deadline':
            deadline = this.deps.clock.setTimer(Math.max(0, effect.atMs - this.deps.clock.nowMs()), () => feed({ type: 'deadline' }));
            return;
          case 'coordinate':
            coordinate(effect.node, plan.sync, this.remainingMs(deadlineAtMs))
              .then(
                (reply) => feed({ type: 'coordinated', object: reply.object, dot: reply.dot, durable: reply.durable }),
                (error: unknown) => feed({ type: 'coordinate-failed', error: coordinatingFailure(operation, effect.node, timeoutMs, error) }),
              )
              .catch((error: unknown) => this.deps.logger.warn({ error: String(error) }, 'write step failed'));
            return;
          case 'replicate': {
            const { target } = effect;
            const request: PeerRequest = {
              type: 'replica-put',
              bucket,
              key,
              object: effect.object,
              mode,
              sync: effect.sync,
              ...(target.hintFor === undefined ? {} : { hintFor: target.hintFor }),
            };
            this.deps
              .send(target.node, request, this.remainingMs(deadlineAtMs))
              .then(
                (reply) =>
                  feed({
                    type: 'replicated',
                    node: target.node,
                    ok: reply.type === 'replica-put-reply',
                    durable: reply.type === 'replica-put-reply' && reply.durable,
                  }),
                () => feed({ type: 'replicated', node: target.node, ok: false, durable: false }),
              )
              .catch((error: unknown) => this.deps.logger.warn({ error: String(error) }, 'write step failed'));
            return;
          }
          case 'keep-hints':
            this.keepHints(effect.nodes, encodeDataKey(bucket, key), effect.object, mode, effect.sync)
              .catch((error: unknown) =>
                this.deps.logger.warn({ error: String(error) }, 'a kept hint could not be stored; anti-entropy will repair the replica'),
              )
              .finally(() => feed({ type: 'hints-kept' }))
              .catch((error: unknown) => this.deps.logger.warn({ error: String(error) }, 'write step failed'));
            return;
          case 'reply':
            deadline?.cancel();
            resolve({ context: effect.context });
            return;
          case 'fail':
            deadline?.cancel();
            reject(effect.error);
            return;
        }
      };
      feed({ type: 'start', nowMs: this.deps.clock.nowMs() });
    });
  }

  private async keepHints(
    nodes: readonly string[],
    dataKey: Buffer,
    object: VersionedObject,
    mode: BucketProperties['conflictMode'],
    sync: boolean,
  ): Promise<void> {
    for (const node of nodes) await this.deps.hints.add(node, dataKey, object, mode, this.deps.clock.nowMs(), sync);
  }

  /**
   * The timeout of a peer call within a request: what is left of its deadline, plus a little, so
   * the request's own deadline always fires first and the client hears 504 (the outcome is
   * unknown), never a 503 made of replica calls that merely timed out with it.
   */
  private remainingMs(deadlineAtMs: number): number {
    return Math.max(1, deadlineAtMs - this.deps.clock.nowMs()) + peerCallGraceMs;
  }
}

/** A write's plan and the properties of its bucket, taken together from one view of the ring. */
interface PlannedWrite {
  readonly plan: WritePlan;
  readonly properties: BucketProperties;
}

/** How much longer than its request's deadline a peer call may wait (see remainingMs). */
const peerCallGraceMs = 5;

/** The error of a coordinating replica that could not take the write, delete, update or restored version. */
function coordinatingFailure(operation: WriteOperation, node: string, timeoutMs: number, error: unknown): KvError {
  // The coordinating replica refused the change itself, for a reason the client can act on.
  if (isKvError(error) && clientRefusalCodes.has(error.code)) return error;
  if (isKvError(error) && error.code === 'KV_TIMEOUT') {
    return new KvError(
      'KV_TIMEOUT',
      `${operation} timed out after ${timeoutMs} ms waiting for the coordinating replica ${node}; it may have applied the ${operation} before the deadline, so ${checkBeforeRetrying(operation)}`,
    );
  }
  return new KvError(
    'KV_INSUFFICIENT_REPLICAS',
    `the coordinating replica ${node} could not take the ${operation} (${String(error instanceof Error ? error.message : error)}); no other replica was sent it, but that one may have applied it, so ${checkBeforeRetrying(operation)}`,
    {
      details: { required: 1, succeeded: 0 },
      retryAfterSeconds: 1,
    },
  );
}
