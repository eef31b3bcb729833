import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import { emptyContext } from '../core/versioning/context.js';
import type { VersionedObject } from '../core/versioning/versioned-object.js';
import { KvError } from '../util/errors.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Random } from '../ports/random.js';
import type { Storage } from '../ports/storage.js';
import type { Transport } from '../ports/transport.js';
import { type BucketProperties, type NodeConfig, bucketProperties } from './config.js';
import type { Gossiper } from './gossiper.js';
import { Lifecycle, type NodeIdentity } from './lifecycle.js';
import type { HintStore } from './hint-store.js';
import { HintedHandoff } from './hinted-handoff.js';
import { Status } from './status.js';
import type { DeleteCommand, KvService, NodeStatus, PutCommand, ReadOptions, WriteOutcome } from './kv-service.js';
import { Coordinator } from './coordinator.js';
import { PeerService } from './peer-service.js';
import { AntiEntropy, type RepairProgress } from './anti-entropy.js';
import { Handoff } from './handoff.js';
import { Replica } from './replica.js';
import { type ListPage, type ListQuery, answerListKeys, listKeys } from './key-listing.js';

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

/**
 * One ringkv node: coordinates client requests over the key's replicas (Dynamo's coordinator),
 * serves its own replica to peers, keeps and delivers hints, and gossips membership.
 */
export class RingNode implements KvService {
  readonly nodeId: string;
  private readonly replica: Replica;
  private readonly hintedHandoff: HintedHandoff;
  private readonly lifecycle: Lifecycle;
  private readonly antiEntropy: AntiEntropy;
  private readonly handoff: Handoff;
  private readonly coordinator: Coordinator;
  private readonly peers: PeerService;
  private inFlight = 0;
  private readonly statusReport: Status;
  /** Called once this node has left the cluster (main.ts exits then). */
  onLeft: (() => void) | undefined;

  constructor(private readonly options: RingNodeOptions) {
    this.nodeId = options.identity.nodeId;
    // The actor id changes with every start, so a dot is never issued twice (see Replica).
    const actorId = `${this.nodeId}.${options.identity.generation.toString(36)}`;
    const { siblingsWarn, maxSiblings } = options.config.limits;
    this.replica = new Replica(options.storage, actorId, options.config.limits.maxVectorEntries, { siblingsWarn, maxSiblings }, (bucket, key, siblings) =>
      options.logger.warn({ bucket, key, siblings, siblingsWarn }, 'a key has many siblings: its writers should read, merge and write back with the read context'),
    );
    const { config } = options;
    this.peers = new PeerService({
      selfId: this.nodeId,
      transport: options.transport,
      logger: options.logger,
      peerTimeoutMs: config.limits.peerTimeoutMs,
      addressOf: (node) => this.gossiper.addressOf(node),
      refusal: () => this.lifecycle.refusal(),
    });
    const shared = {
      selfId: this.nodeId,
      data: options.storage.data,
      replica: this.replica,
      clock: options.clock,
      logger: options.logger,
      ring: () => this.gossiper?.ring ?? null,
      isUp: (node: string) => this.gossiper.isUp(node),
      send: (node: string, request: PeerRequest) => this.peers.send(node, request),
      bucketProperties: (bucket: string) => this.bucketProperties(bucket),
      maxNVal: () => this.maxNVal(),
    };
    this.hintedHandoff = new HintedHandoff({
      space: options.storage.hints,
      settings: config.hintedHandoff,
      clock: options.clock,
      logger: options.logger,
      isUp: (node) => this.gossiper.isUp(node),
      memberStatus: (node) => this.gossiper.view.members[node]?.status,
      send: (node, request) => this.peers.send(node, request),
    });
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
      hints: this.hintedHandoff.store,
      settings: () => ({ requestTimeoutMs: config.limits.requestTimeoutMs, speculativeRetryMs: config.limits.speculativeRetryMs, hintedHandoff: config.hintedHandoff.enabled }),
      requireRing: () => this.lifecycle.requireRing(),
      isUp: (node) => this.gossiper.isUp(node),
      bucketProperties: (bucket) => this.bucketProperties(bucket),
      send: (node, request, timeoutMs) => this.peers.send(node, request, timeoutMs),
    });
    this.lifecycle = new Lifecycle({
      ...options,
      replica: this.replica,
      hintedHandoff: this.hintedHandoff,
      antiEntropy: this.antiEntropy,
      handoff: this.handoff,
      maxNVal: () => this.maxNVal(),
      onLeft: () => this.onLeft?.(),
    });
    this.statusReport = new Status({
      ...options,
      startedAtMs: options.clock.nowMs(),
      membership: () => this.gossiper,
      replica: this.replica,
      hintedHandoff: this.hintedHandoff,
      antiEntropy: this.antiEntropy,
      handoff: this.handoff,
      inFlight: () => this.inFlight,
    });
    this.registerPeerHandlers();
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
    return this.hintedHandoff.store;
  }

  /** Hinted handoff: the hints this node keeps for others and their delivery (for tests). */
  get hintedHandoffService(): HintedHandoff {
    return this.hintedHandoff;
  }

  /** The dispatch of peer requests to their roles (for tests). */
  get peerService(): PeerService {
    return this.peers;
  }

  /** The membership view and failure detector. */
  get membership(): Gossiper {
    return this.lifecycle.gossiper;
  }

  /** The gossiper (undefined before start, which the optional chains below allow for). */
  private get gossiper(): Gossiper {
    return this.lifecycle.gossiper;
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

  /** Loads persisted state, joins, and starts the background roles (src/engine/lifecycle.ts). */
  async start(): Promise<void> {
    await this.lifecycle.start();
  }

  /** Stops background work (the caller closes the HTTP server and the storage). */
  async stop(): Promise<void> {
    await this.lifecycle.stop();
  }

  /** `ringkv leave`: hands this node's partitions to others; `onLeft` fires once it has left. */
  leave(): { status: string } {
    return this.lifecycle.leave();
  }

  /** `ringkv remove NODE_ID`: plans a node that is gone for good out of the ring. */
  removeMember(nodeId: string): { status: string } {
    return this.lifecycle.removeMember(nodeId);
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
          ring: this.lifecycle.requireRing(),
          nVal: this.bucketProperties(query.bucket).nVal,
          isUp: (node) => this.gossiper.isUp(node),
          send: (node, request, timeoutMs) => this.peers.send(node, request, timeoutMs),
          timeoutMs: query.timeoutMs ?? this.options.config.limits.requestTimeoutMs,
        },
        query,
      ),
    );
  }

  /** Serves a peer's request with the role that registered its type (src/engine/peer-service.ts). */
  async handlePeer(request: PeerRequest): Promise<PeerReply> {
    return this.peers.handle(request);
  }

  /** Each role registers the peer requests it serves. */
  private registerPeerHandlers(): void {
    const peers = this.peers;
    peers.register('replica-get', async (request) => ({ type: 'replica-get-reply', object: (await this.replica.read(request.bucket, request.key)) ?? null }));
    peers.register('coordinate-put', async (request) => {
      const condition = request.precondition === undefined ? undefined : { precondition: request.precondition, base: request.base ?? null };
      const { object, dot } = await this.replica.coordinateWrite(request.bucket, request.key, request.write, request.mode, request.sync, condition);
      return { type: 'coordinate-put-reply', object, durable: request.sync, dot };
    });
    peers.register('replica-put', async (request) => {
      if (request.hintFor !== undefined && request.hintFor !== this.nodeId) return this.hintedHandoff.keep(request, request.hintFor);
      await this.replica.merge(request.bucket, request.key, request.object, request.mode, request.sync);
      return { type: 'replica-put-reply', durable: request.sync };
    });
    peers.register('gossip', async (request) => ({ type: 'gossip-reply', state: this.gossiper.receive(request.state) }), { servesWhenRemoved: true });
    peers.registerControl('ae-', (operation, payload) => this.antiEntropy.handleControl(operation, payload));
    peers.registerControl('handoff-', (operation, payload) => this.handoff.handleControl(operation, payload));
    peers.register('handoff-fetch', (request) => this.handoff.handleFetch(request), { refusesMalformed: true });
    for (const type of ['ae-keys', 'ae-fetch', 'ae-push'] as const) peers.register(type, (request) => this.antiEntropy.handleMessage(request), { refusesMalformed: true });
    peers.register('list-keys', (request) => answerListKeys({ index: this.replica.bucketIndex, replica: this.replica, partitionCount: () => this.lifecycle.requireRing().partitionCount }, request));
  }

  /** What GET /status shows (src/engine/status.ts). */
  async status(): Promise<NodeStatus> {
    return this.statusReport.report();
  }

  /** Compacts the data space. */
  async compact(start?: Uint8Array, end?: Uint8Array): Promise<void> {
    await this.options.storage.compactRange(start, end);
  }
}
