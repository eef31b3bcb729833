import { createHash, timingSafeEqual } from 'node:crypto';
import { encodeDataKey } from '../core/keys.js';
import { type Ring, partitionsOwnedBy, ringMembers } from '../core/ring/ring.js';
import type { MemberRecord } from '../core/membership/membership.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import { emptyContext } from '../core/versioning/context.js';
import type { VersionedObject } from '../core/versioning/versioned-object.js';
import { KvError, type KvErrorCode, isKvError } from '../util/errors.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Random } from '../ports/random.js';
import type { Storage } from '../ports/storage.js';
import type { Transport } from '../ports/transport.js';
import { type BucketProperties, type NodeConfig, bucketProperties } from './config.js';
import { Gossiper } from './gossiper.js';
import { HintStore } from './hint-store.js';
import type { DeleteCommand, KvService, MemberStatus, NodeStatus, PutCommand, ReadOptions, WriteOutcome } from './kv-service.js';
import { Coordinator, clientRefusalCodes } from './coordinator.js';
import { AntiEntropy, type RepairProgress } from './anti-entropy.js';
import { Handoff } from './handoff.js';
import { PeriodicTask } from './periodic-task.js';
import { Replica } from './replica.js';
import { type ListPage, type ListQuery, answerListKeys, listKeys } from './key-listing.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { isDeleted } from '../core/versioning/versioned-object.js';
import { DataTypes } from './data-types.js';

/** Who this node is; persisted in its data directory by main.ts. */
export interface NodeIdentity {
  readonly nodeId: string;
  readonly generation: number;
  readonly clusterSecret: string;
  readonly address: string;
}

/** The ports and settings a node runs on. */
export interface RingNodeOptions {
  readonly identity: NodeIdentity;
  readonly config: NodeConfig;
  readonly storage: Storage;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Memory figures of the process for /status (main.ts reads them; simulation has none). */
  readonly processFigures?: () => Readonly<Record<string, number>>;
}




const viewMetaKey = Buffer.from('cluster-view');

/**
 * One ringkv node: coordinates client requests over the key's replicas (Dynamo's coordinator),
 * serves its own replica to peers, keeps and delivers hints, and gossips membership.
 */
export class RingNode implements KvService {
  readonly nodeId: string;
  private readonly replica: Replica;
  private readonly hints: HintStore;
  private gossiper!: Gossiper;
  private readonly hintDelivery: PeriodicTask;
  private readonly lifecycleCheck: PeriodicTask;
  private readonly antiEntropy: AntiEntropy;
  private readonly handoff: Handoff;
  private readonly coordinator: Coordinator;
  /** Counters and sets (/dt): src/engine/data-types.ts. */
  readonly dataTypes: DataTypes;
  private inFlight = 0;
  /** Called once this node has left the cluster (main.ts exits then). */
  onLeft: (() => void) | undefined;
  private readonly startedAtMs: number;
  private readonly secretDigest: Buffer;

  constructor(private readonly options: RingNodeOptions) {
    this.nodeId = options.identity.nodeId;
    // The actor id changes with every start, so a dot is never issued twice (see Replica).
    const actorId = `${this.nodeId}.${options.identity.generation.toString(36)}`;
    const { siblingsWarn, maxSiblings } = options.config.limits;
    this.replica = new Replica(options.storage, actorId, options.config.limits.maxVectorEntries, { siblingsWarn, maxSiblings }, (bucket, key, siblings) =>
      options.logger.warn({ bucket, key, siblings, siblingsWarn }, 'a key has many siblings: its writers should read, merge and write back with the read context'),
    );
    this.hints = new HintStore(options.storage.hints, options.config.hintedHandoff);
    this.startedAtMs = options.clock.nowMs();
    this.secretDigest = createHash('sha256').update(options.identity.clusterSecret).digest();
    const { config } = options;
    const shared = {
      selfId: this.nodeId,
      data: options.storage.data,
      replica: this.replica,
      clock: options.clock,
      logger: options.logger,
      ring: () => this.gossiper?.ring ?? null,
      isUp: (node: string) => this.gossiper.isUp(node),
      send: (node: string, request: PeerRequest) => this.send(node, request),
      bucketProperties: (bucket: string) => this.bucketProperties(bucket),
      maxNVal: () => this.maxNVal(),
    };
    this.antiEntropy = new AntiEntropy({
      ...shared,
      settings: { ...config.antiEntropy, peerTimeoutMs: config.limits.peerTimeoutMs, maxPageBytes: config.handoff.maxPageBytes },
    });
    this.handoff = new Handoff({
      ...shared,
      settings: config.handoff,
      heldPartitions: () => this.antiEntropy.heldPartitions(),
      reportTransfersDone: (version) => this.gossiper.reportTransfersDone(version),
    });
    this.replica.onChange((dataKey, before, after, object) => this.antiEntropy.track(dataKey, before, after, object));
    this.coordinator = new Coordinator({
      selfId: this.nodeId,
      clock: options.clock,
      logger: options.logger,
      hints: this.hints,
      settings: () => ({ requestTimeoutMs: config.limits.requestTimeoutMs, speculativeRetryMs: config.limits.speculativeRetryMs, hintedHandoff: config.hintedHandoff.enabled }),
      requireRing: () => this.requireRing(),
      isUp: (node) => this.gossiper.isUp(node),
      bucketProperties: (bucket) => this.bucketProperties(bucket),
      send: (node, request, timeoutMs) => this.send(node, request, timeoutMs),
    });
    this.dataTypes = new DataTypes({
      coordinator: this.coordinator,
      replica: this.replica,
      clock: options.clock,
      limits: () => ({ maxSetElements: config.limits.maxSetElements, maxSetBytes: config.limits.maxSetBytes }),
      admit: (work) => this.admit(work),
    });
    this.hintDelivery = new PeriodicTask(
      options.clock,
      () => this.deliverHints(),
      (error) => options.logger.warn({ error: String(error) }, 'hint delivery failed'),
      () => config.hintedHandoff.intervalMs,
    );
    this.lifecycleCheck = new PeriodicTask(
      options.clock,
      async () => this.checkLifecycle(),
      (error) => options.logger.warn({ error: String(error) }, 'lifecycle check failed'),
      () => (this.gossiper.ownStatus === 'left' ? undefined : config.gossip.intervalMs),
    );
  }

  /** The largest n_val of any bucket: ring changes and anti-entropy compare replica sets of this size. */
  maxNVal(): number {
    const shared = this.gossiper?.view.bucketProperties ?? {};
    const configured = [this.options.config.bucketDefaults.nVal, ...Object.values(this.options.config.buckets).map((properties) => properties.nVal ?? 0)];
    return Math.max(...configured, ...Object.values(shared).map((properties) => properties.nVal ?? 0));
  }

  /** The replica this node serves (for anti-entropy and tests). */
  get localReplica(): Replica {
    return this.replica;
  }

  /** The hint store (for tests and status). */
  get hintStore(): HintStore {
    return this.hints;
  }

  /** The membership view and failure detector. */
  get membership(): Gossiper {
    return this.gossiper;
  }

  /** Loads persisted state and starts gossip and hint delivery. */
  async start(): Promise<void> {
    const { config, identity, storage } = this.options;
    const stored = await storage.meta.get(viewMetaKey);
    const initialView = stored === undefined ? undefined : this.parseStoredView(stored);
    const self: MemberRecord = { id: identity.nodeId, address: identity.address, generation: identity.generation, heartbeat: 0, status: 'joining' };
    this.gossiper = new Gossiper({
      self,
      seeds: config.seeds.filter((seed) => seed !== identity.address),
      partitionCount: config.partitionCount,
      bucketProperties: { ...config.buckets, '': config.bucketDefaults },
      intervalMs: config.gossip.intervalMs,
      fanout: config.gossip.fanout,
      phiThreshold: config.gossip.phiThreshold,
      peerTimeoutMs: config.limits.peerTimeoutMs,
      maxNVal: () => this.maxNVal(),
      initialView,
      transport: this.options.transport,
      clock: this.options.clock,
      random: this.options.random,
      logger: this.options.logger,
      persist: (view) => storage.meta.put(viewMetaKey, Buffer.from(JSON.stringify(view), 'utf8'), { sync: true }),
      onRingChange: () => this.handoff.runSoon(),
      onRemoved: () => this.stopServingAsRemoved(),
    });
    await this.hints.load();
    // One scan builds the Merkle trees before any request is served.
    await this.antiEntropy.build(this.gossiper.ring?.partitionCount ?? config.partitionCount);
    // A database written before the bucket index existed is indexed once, by one scan.
    const indexed = await this.replica.bucketIndex.buildIfMissing(storage.data, (bytes) => !isDeleted(decodeObject(bytes)));
    if (indexed > 0) this.options.logger.info({ keys: indexed }, 'built the bucket index of the stored keys');
    this.gossiper.start();
    // A removed node still gossips (so it hears the ring and shows its state) but moves no data.
    if (this.gossiper.ownStatus === 'removed') return;
    this.hintDelivery.arm(config.hintedHandoff.intervalMs);
    this.antiEntropy.start();
    this.handoff.start();
    this.lifecycleCheck.arm(config.gossip.intervalMs);
  }

  /** The persisted view as JSON, or undefined when it is not readable (the gossiper checks its schema). */
  private parseStoredView(stored: Uint8Array): unknown {
    try {
      return JSON.parse(Buffer.from(stored).toString('utf8')) as unknown;
    } catch (error) {
      this.options.logger.error({ error: String(error) }, 'the persisted cluster view is not JSON; starting without it and learning the cluster from the seeds');
      return undefined;
    }
  }

  /**
   * A removed node stops moving data: its handoff would push what it still holds (a delete's
   * reaped key, say) back to the replicas, and its anti-entropy and hints would do the same.
   */
  private stopServingAsRemoved(): void {
    this.hintDelivery.stop();
    this.antiEntropy.stop();
    this.handoff.stop();
    this.lifecycleCheck.stop();
  }

  /** The refusal a removed node answers every data request with. */
  private removedError(): KvError {
    return new KvError('KV_NOT_READY', `node ${this.nodeId} was removed from the cluster and serves no data; use another node. To bring this machine back, wipe its data directory and start it again: it joins with a new id`);
  }

  /** The anti-entropy service (for tests and the repair command). */
  get antiEntropyService(): AntiEntropy {
    return this.antiEntropy;
  }

  /** `ringkv repair`: an exchange of every partition now; answers the progress. */
  repair(): RepairProgress {
    return this.antiEntropy.requestRepair();
  }

  /** Progress of the last repair. */
  repairProgress(): RepairProgress {
    return this.antiEntropy.status().repair;
  }

  /**
   * `ringkv leave`: this node asks to be planned out of the ring; its partitions stream to their
   * new replicas, then it hands off what remains, marks itself left, and `onLeft` fires.
   */
  leave(): { status: string } {
    const ring = this.requireRing();
    const others = Object.values(this.gossiper.view.members).filter(
      (member) => member.id !== this.nodeId && (member.status === 'up' || member.status === 'joining') && this.gossiper.isUp(member.id),
    );
    if (others.length === 0) throw new KvError('KV_CONFLICT', 'this is the only live member: there is nowhere to hand its data to; stop it instead');
    if (!ringMembers(ring).includes(this.nodeId) && ring.next === null) throw new KvError('KV_CONFLICT', 'this node owns no partitions; it can simply be stopped');
    this.gossiper.setOwnStatus('leaving');
    return { status: 'leaving' };
  }

  /** `ringkv remove NODE_ID`: plans a node that is gone for good out of the ring; its partitions are rebuilt from the other replicas. */
  removeMember(nodeId: string): { status: string } {
    if (nodeId === this.nodeId) throw new KvError('KV_CONFLICT', 'a node cannot remove itself: use `ringkv leave` on it, or `ringkv remove` on another node');
    const member = this.gossiper.view.members[nodeId];
    if (member === undefined) throw new KvError('KV_UNKNOWN_NODE', `no member ${nodeId}; see \`ringkv status\` for the ids`);
    if (this.gossiper.isUp(nodeId)) throw new KvError('KV_CONFLICT', `node ${nodeId} is up: use \`ringkv leave --node ${member.address}\` to decommission a live node`);
    this.gossiper.markRemoved(nodeId);
    return { status: 'removed' };
  }

  /** A leaving node becomes `left` once the ring no longer has it and it holds no data. */
  private checkLifecycle(): void {
    const ring = this.gossiper.ring;
    if (this.gossiper.ownStatus !== 'leaving' || ring === null || ring.next !== null || ring.owners.includes(this.nodeId)) return;
    if (this.antiEntropy.heldPartitions().length > 0 || this.hints.pending > 0) return;
    this.gossiper.setOwnStatus('left');
    this.options.logger.info({}, 'this node has handed off all its data and left the cluster');
    // A few gossip rounds let the others hear that it left before it goes.
    this.options.clock.setTimer(3 * this.options.config.gossip.intervalMs, () => this.onLeft?.());
  }

  /** Stops background work (the caller closes the HTTP server and the storage). */
  async stop(): Promise<void> {
    this.gossiper?.stop();
    this.hintDelivery.stop();
    this.lifecycleCheck.stop();
    this.antiEntropy.stop();
    this.handoff.stop();
  }

  /**
   * The bucket's properties: cluster-wide ones from the gossiped view (the founding node's
   * config, so every node agrees), else this node's own config before it has joined.
   */
  bucketProperties(bucket: string): BucketProperties {
    const shared = this.gossiper?.view.bucketPropertiesVersion > 0 ? this.gossiper.view.bucketProperties : undefined;
    if (shared === undefined) return bucketProperties(this.options.config, bucket);
    return { ...this.options.config.bucketDefaults, ...(shared[''] ?? {}), ...(shared[bucket] ?? {}) };
  }

  /** True when the presented secret equals the cluster's, compared in constant time. */
  checkSecret(presented: string | undefined): boolean {
    if (presented === undefined) return false;
    return timingSafeEqual(createHash('sha256').update(presented).digest(), this.secretDigest);
  }

  private requireRing(): Ring {
    if (this.gossiper.ownStatus === 'removed') throw this.removedError();
    const ring = this.gossiper.ring;
    if (ring === null) {
      throw new KvError('KV_NOT_READY', 'this node has not joined a ring yet; check that --seeds points at a running node of the cluster', { retryAfterSeconds: 1 });
    }
    return ring;
  }

  /** Sheds load beyond the in-flight bound with 503 and Retry-After instead of queueing without limit. */
  private async admit<T>(work: () => Promise<T>): Promise<T> {
    if (this.inFlight >= this.options.config.limits.maxInFlightRequests) {
      throw new KvError('KV_OVERLOADED', `node has ${this.inFlight} requests in flight (limit ${this.options.config.limits.maxInFlightRequests}); retry after a short pause`, { retryAfterSeconds: 1 });
    }
    this.inFlight += 1;
    try {
      return await work();
    } finally {
      this.inFlight -= 1;
    }
  }

  /** Sends a request to a node, short-circuiting requests to this node. */
  private async send(node: string, request: PeerRequest, timeoutMs?: number): Promise<PeerReply> {
    if (node === this.nodeId) return this.handlePeer(request);
    const address = this.gossiper.addressOf(node);
    if (address === undefined) throw new KvError('KV_PEER_UNREACHABLE', `no address known for node ${node}`);
    // A peer call of a client request never outlives what is left of that request's deadline.
    const peerTimeoutMs = Math.max(1, Math.min(this.options.config.limits.peerTimeoutMs, timeoutMs ?? Number.POSITIVE_INFINITY));
    const reply = await this.options.transport.request(address, request, { timeoutMs: peerTimeoutMs });
    // A refusal the client must see as it is (it says what to do) keeps its code; any other error reply means the peer could not serve.
    if (reply.type === 'error') {
      if (clientRefusalCodes.has(reply.code)) throw new KvError(reply.code as KvErrorCode, reply.message);
      throw new KvError('KV_PEER_UNREACHABLE', `node ${node} answered ${reply.code}: ${reply.message}`);
    }
    return reply;
  }

  /** Coordinated read over the key's primaries, with read repair of stale replicas it saw. */
  async get(bucket: string, key: string, options: ReadOptions): Promise<VersionedObject | undefined> {
    return this.admit(async () => this.coordinator.read(bucket, key, options));
  }

  /** This node's clock, which decides expiry of the versions read here. */
  nowMs(): number {
    return this.options.clock.nowMs();
  }

  /** This node's own copy, without coordination or read repair. */
  async getLocal(bucket: string, key: string): Promise<VersionedObject | undefined> {
    return this.replica.read(bucket, key);
  }

  /** Coordinated write; answers the new object and the context its writer may chain into the next write. */
  async put(command: PutCommand): Promise<WriteOutcome> {
    return this.admit(async () =>
      this.coordinator.write(
        command.bucket,
        command.key,
        command.options,
        {
          value: command.value,
          contentType: command.contentType,
          tombstone: false,
          context: command.context ?? emptyContext,
          nowMs: this.options.clock.nowMs(),
          // A write without its own ttl takes the bucket's; 0 means it never expires.
          ttlSeconds: command.ttlSeconds ?? this.bucketProperties(command.bucket).ttlSeconds ?? 0,
        },
        command.precondition,
      ),
    );
  }

  /** Coordinated delete: a tombstone written like any other version. */
  async delete(command: DeleteCommand): Promise<WriteOutcome> {
    return this.admit(async () =>
      this.coordinator.write(command.bucket, command.key, command.options, {
        value: new Uint8Array(0),
        contentType: 'application/octet-stream',
        tombstone: true,
        context: command.context ?? emptyContext,
        nowMs: this.options.clock.nowMs(),
      }),
    );
  }

  /** One page of a bucket's keys: a coverage query over every partition (src/engine/key-listing.ts). */
  async list(query: ListQuery): Promise<ListPage> {
    return this.admit(async () =>
      listKeys(
        {
          selfId: this.nodeId,
          ring: this.requireRing(),
          nVal: this.bucketProperties(query.bucket).nVal,
          isUp: (node) => this.gossiper.isUp(node),
          send: (node, request, timeoutMs) => this.send(node, request, timeoutMs),
          timeoutMs: query.timeoutMs ?? this.options.config.limits.requestTimeoutMs,
        },
        query,
      ),
    );
  }

  /** Serves a peer's request against this node's replica, hints and membership. */
  async handlePeer(request: PeerRequest): Promise<PeerReply> {
    if (request.type !== 'gossip' && this.gossiper?.ownStatus === 'removed') {
      const refusal = this.removedError();
      return { type: 'error', code: refusal.code, message: refusal.message };
    }
    switch (request.type) {
      case 'replica-get':
        return { type: 'replica-get-reply', object: (await this.replica.read(request.bucket, request.key)) ?? null };
      case 'coordinate-put': {
        const condition = request.precondition === undefined ? undefined : { precondition: request.precondition, base: request.base ?? null };
        const { object, dot } = await this.replica.coordinateWrite(request.bucket, request.key, request.write, request.mode, request.sync, condition);
        return { type: 'coordinate-put-reply', object, durable: request.sync, dot };
      }
      case 'replica-put':
        if (request.hintFor !== undefined && request.hintFor !== this.nodeId) {
          const stored = await this.hints.add(request.hintFor, encodeDataKey(request.bucket, request.key), request.object, request.mode, this.options.clock.nowMs(), request.sync);
          // A dropped hint must not count for w: the coordinator sees a failed replica instead.
          if (!stored) {
            return {
              type: 'error',
              code: 'KV_OVERLOADED',
              message: `this fallback holds as many hints for ${request.hintFor} as hintedHandoff.maxHintsPerTarget / maxBytesPerTarget allow; anti-entropy will repair it`,
            };
          }
        } else {
          await this.replica.merge(request.bucket, request.key, request.object, request.mode, request.sync);
        }
        return { type: 'replica-put-reply', durable: request.sync };
      case 'gossip':
        return { type: 'gossip-reply', state: this.gossiper.receive(request.state) };
      case 'control':
        return this.refusingBadRequests(request, async () => {
          const answer = request.operation.startsWith('ae-')
            ? await this.antiEntropy.handleControl(request.operation, request.payload)
            : await this.handoff.handleControl(request.operation, request.payload);
          if (answer === undefined) throw new KvError('KV_BAD_REQUEST', `unknown control operation ${JSON.stringify(request.operation.slice(0, 64))}`);
          return { type: 'control-reply', payload: answer };
        });
      case 'handoff-fetch':
        return this.refusingBadRequests(request, () => this.handoff.handleFetch(request));
      case 'ae-keys':
      case 'ae-fetch':
      case 'ae-push':
        return this.refusingBadRequests(request, () => this.antiEntropy.handleMessage(request));
      case 'dt-update':
        return this.dataTypes.handleUpdate(request);
      case 'list-keys':
        return answerListKeys({ index: this.replica.bucketIndex, replica: this.replica, partitionCount: () => this.requireRing().partitionCount }, request);
    }
  }

  /**
   * Runs a handoff or anti-entropy request, whose handler checks it against its schema and the
   * ring before it touches any state; one that fails the check is logged and answered with an
   * error reply, so a bad peer message never reaches state and never throws out of the handler.
   */
  private async refusingBadRequests(request: PeerRequest, handle: () => Promise<PeerReply>): Promise<PeerReply> {
    try {
      return await handle();
    } catch (error) {
      if (!isKvError(error) || error.code !== 'KV_BAD_REQUEST') throw error;
      this.options.logger.warn({ request: request.type, ...(request.type === 'control' ? { operation: request.operation.slice(0, 64) } : {}), error: error.message }, 'refused a malformed peer request');
      return { type: 'error', code: error.code, message: error.message };
    }
  }

  /** One throttled round of hint delivery: a batch per live target; expired hints are dropped and counted. */
  async deliverHints(): Promise<void> {
    const { windowMs, batchSize } = this.options.config.hintedHandoff;
    const now = this.options.clock.nowMs();
    for (const target of this.hints.targets()) {
      const batch = await this.hints.batch(target, batchSize);
      // A removed node never takes a hint again (its id stays removed), so its hints are let go at
      // once, as expired ones are: what they carried lives on in the key's other replicas, which
      // the removal rebuilt, and anti-entropy repairs any of them that missed it.
      const removed = this.gossiper.view.members[target]?.status === 'removed';
      const live = removed ? [] : batch.filter((hint) => hint.createdMs + windowMs >= now);
      for (const hint of batch) if (removed || hint.createdMs + windowMs < now) await this.hints.remove(hint, 'expired');
      if (live.length === 0 || !this.gossiper.isUp(target)) continue;
      await Promise.all(
        live.map(async (hint) => {
          const { bucket, key } = Replica.describe(hint.dataKey);
          try {
            // The hint is deleted only once its target has the write durably (synced; the target's
            // group commit makes that about one fsync per batch of hints).
            const reply = await this.send(target, { type: 'replica-put', bucket, key, object: hint.object, mode: hint.mode, sync: true });
            if (reply.type !== 'replica-put-reply' || !reply.durable) throw new KvError('KV_PEER_UNREACHABLE', `${target} did not store the hint durably`);
            await this.hints.remove(hint, 'delivered');
          } catch (error) {
            this.options.logger.debug({ target, error: String(error) }, 'hint not delivered yet');
          }
        }),
      );
    }
  }

  /** What GET /status shows. */
  async status(): Promise<NodeStatus> {
    const ring = this.gossiper.ring;
    const view = this.gossiper.view;
    const members: MemberStatus[] = Object.values(view.members)
      .filter((member) => member.status !== 'removed')
      .map((member) => {
        const phi = this.gossiper.phiOf(member.id);
        return {
          id: member.id,
          address: member.address,
          status: !this.gossiper.isUp(member.id) ? 'down' : member.status === 'left' ? 'leaving' : member.status,
          generation: member.generation,
          partitionsOwned: ring === null ? 0 : partitionsOwnedBy(ring, member.id).length,
          ...(Number.isFinite(phi) ? { phi: Math.round(phi * 100) / 100 } : {}),
        } as MemberStatus;
      })
      .sort((left, right) => left.address.localeCompare(right.address, 'en', { numeric: true }));
    const storage = await this.options.storage.stats();
    return {
      node: { id: this.nodeId, address: this.options.identity.address, generation: this.options.identity.generation, startedAtMs: this.startedAtMs },
      members,
      // The ring's own Q: a node that joined with a different partitionCount in its config uses the cluster's.
      partitionCount: ring?.partitionCount ?? this.options.config.partitionCount,
      ring: ring === null ? null : { version: ring.version, owners: ring.owners, members: ringMembers(ring), next: ring.next },
      storage: { ...storage, keys: this.antiEntropy.keyCount },
      antiEntropy: this.antiEntropy.status(),
      handoff: this.handoff.status(),
      lifecycle: this.gossiper.ownStatus,
      hints: { pending: this.hints.pending, delivered: this.hints.delivered, expired: this.hints.expired, dropped: this.hints.dropped, byTarget: this.hints.pendingByTarget() },
      siblings: { manyWrites: this.replica.manySiblingWrites, refused: this.replica.siblingRefusals, warnAbove: this.options.config.limits.siblingsWarn, max: this.options.config.limits.maxSiblings },
      inFlight: this.inFlight,
      ...(this.options.processFigures === undefined ? {} : { process: this.options.processFigures() }),
    };
  }

  /** Compacts the data space. */
  async compact(start?: Uint8Array, end?: Uint8Array): Promise<void> {
    await this.options.storage.compactRange(start, end);
  }
}
