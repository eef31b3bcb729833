import { hasDeparted } from '../core/membership/membership.js';
import { type DepartureFenceDependencies, fenceDeparture } from './departure-fence.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { VersionedObject } from '../core/versioning/versioned-object.js';
import { AntiEntropy, type RepairProgress } from './anti-entropy.js';
import { ClientRequests } from './client-requests.js';
import type { BucketProperties } from '../config/schema.js';
import { Coordinator } from './coordinator.js';
import type { Gossiper } from './gossiper.js';
import { Handoff } from './handoff.js';
import type { HintStore } from './hint-store.js';
import { HintedHandoff } from './hinted-handoff.js';
import type { ListPage, ListQuery } from './key-listing.js';
import type { ConsistentCommand, ConsistentOutcome, DeleteCommand, KvService, NodeStatus, PutCommand, ReadOptions, WriteOutcome } from './kv-service.js';
import { Lifecycle } from './lifecycle.js';
import { type NodeContext, type NodePorts, openNodeContext } from './node-context.js';
import { registerPeerHandlers } from './peer-handlers.js';
import { PeerService } from './peer-service.js';
import { Replica } from './replica.js';
import { Status } from './status.js';
import { DataTypes } from './data-types.js';
import { AcceptorStore } from './acceptor-store.js';
import { ConsistentCoordinator } from './consistent-coordinator.js';
import { BackupService } from './backup-service.js';
import { WatchLog } from './watch-log.js';
import { type WatchStream, Watches } from './watches.js';
import type { WatchFilter } from '../core/watch/watch-cursor.js';
import { Leases } from './leases.js';
import { LeaseScanner } from './lease-scanner.js';
import { LeasedKeyScanner } from './leased-key-scanner.js';
import { leaseBucket } from '../core/leases/lease-record.js';

/** The ports and settings a node runs on. */
export interface RingNodeOptions extends NodePorts {
  /** Memory figures of the process for /status (main.ts reads them; simulation has none). */
  readonly processFigures?: () => Readonly<Record<string, number>>;
  /**
   * This node is one shard of a node of several (main.ts, `--shards N` > 1): it leaves the
   * cluster with the other members on its placement host, so `leave` checks that they all can
   * (src/engine/lifecycle.ts).
   */
  readonly leavesWithHost?: boolean;
}

/**
 * One ringkv node: the wiring of its roles (docs/ARCHITECTURE.md#layers: one role per module), each in its own
 * module: client requests and their coordinator, the replica, the peer service, hinted handoff,
 * anti-entropy, partition handoff, the lifecycle (with gossip and the claimant) and the status.
 * Every role takes the node's context (src/engine/node-context.ts), which `open` builds once.
 */
export class RingNode implements KvService {
  readonly nodeId: string;
  /** The membership view and failure detector. */
  readonly gossiper: Gossiper;
  /** The replica this node serves (for tests). */
  readonly localReplica: Replica;
  /** Hinted handoff: the hints this node keeps for others and their delivery (for tests). */
  readonly hintedHandoffService: HintedHandoff;
  /** The anti-entropy service (for tests). */
  readonly antiEntropyService: AntiEntropy;
  /** The dispatch of peer requests to their roles (for tests). */
  readonly peerService: PeerService;
  private readonly client: ClientRequests;
  private readonly lifecycle: Lifecycle;
  private readonly statusReport: Status;
  /** Counters and sets (/dt): src/engine/data-types.ts. */
  readonly dataTypes: DataTypes;
  /** Backup and restore: src/engine/backup-service.ts. */
  readonly backup: BackupService;
  /** This node's log of the writes it issued, which watches read (src/engine/watch-log.ts). */
  readonly watchLog: WatchLog;
  /** The watches this node serves (src/engine/watches.ts). */
  readonly watches: Watches;
  /** Leases and ephemeral keys, with this node's expiry sweeper (src/engine/leases.ts). */
  readonly leases: Leases;
  /** Called once this node has left the cluster (main.ts exits then). */
  onLeft: (() => void) | undefined;
  /** Called when `leave` has started this node's leave (main.ts then has a sharded node's other shards leave too). */
  onLeaving: (() => void) | undefined;

  /** Builds a node on its ports: loads what must exist before its roles (src/engine/node-context.ts), then wires them. `start` starts it. */
  static async open(options: RingNodeOptions): Promise<RingNode> {
    const { context, peers } = await openNodeContext(options);
    return new RingNode(context, peers, options.processFigures, options.leavesWithHost === true);
  }

  private constructor(
    private readonly context: NodeContext,
    peers: PeerService,
    processFigures: RingNodeOptions['processFigures'],
    leavesWithHost: boolean,
  ) {
    const { config, storage } = context;
    this.nodeId = context.selfId;
    this.gossiper = context.gossiper;
    this.peerService = peers;
    const { siblingsWarn, maxSiblings, maxObjectBytes } = config.limits;
    // The replica's dots come from actors that survive restarts (src/engine/actor-lease.ts).
    const replica = (this.localReplica = new Replica(
      storage,
      this.nodeId,
      context.random,
      { siblingsWarn, maxSiblings, maxObjectBytes },
      (bucket, key, siblings) =>
        context.logger.warn(
          { bucket, key, siblings, siblingsWarn },
          'a key has many siblings: its writers should read, merge and write back with the read context',
        ),
      config.storage.objectCacheBytes,
    ));
    const gossiper = context.gossiper;
    const hintedHandoff = (this.hintedHandoffService = new HintedHandoff({
      ...context,
      replica,
      space: storage.hints,
      settings: config.hintedHandoff,
      memberStatus: (node) => gossiper.view.members[node]?.status,
    }));
    const antiEntropy = (this.antiEntropyService = new AntiEntropy({
      ...context,
      replica,
      data: storage.data,
      meta: storage.meta,
      settings: { ...config.antiEntropy, peerTimeoutMs: config.limits.peerTimeoutMs, maxPageBytes: config.handoff.maxPageBytes },
    }));
    const watchLog = (this.watchLog = new WatchLog(context.clock, context.random, () => config.watch));
    const consistentCoordinator = new ConsistentCoordinator({
      ...context,
      generation: context.identity.generation,
      // A consistent key's decided states are reported by the round that decided them (docs/CONSENSUS.md, "Watches").
      onDecided: (bucket, key, states) => {
        for (const state of states) watchLog.appendDecided(bucket, key, state.version, state.value);
      },
    });
    const scanner = new LeaseScanner({
      ...context,
      space: storage.paxos,
      readRecord: async (id) => (await this.client.consistent(leaseBucket, id, { kind: 'read' })).value?.value ?? null,
    });
    const leasedKeys = new LeasedKeyScanner({ ...context, space: storage.paxos });
    const acceptors = new AcceptorStore({
      space: storage.paxos,
      bucketProperties: context.bucketProperties,
      ringVersion: () => context.ring()?.version ?? 0,
      departed: (node) => hasDeparted(gossiper.view.members[node]?.status),
      stored: (bucket, key) => scanner.stored(bucket, key),
    });
    const handoff = new Handoff({
      ...context,
      replica,
      data: storage.data,
      paxos: storage.paxos,
      repairConsistent: async (bucket, key) => {
        await consistentCoordinator.run(bucket, key, { kind: 'repair' }, config.limits.requestTimeoutMs);
      },
      collectAcceptorState: (dataKey, ringVersion) => acceptors.collect(dataKey, ringVersion),
      settings: config.handoff,
      heldPartitions: () => antiEntropy.heldPartitions(),
      changeCount: (partition: number) => antiEntropy.changeCount(partition),
      reportTransfersDone: (version) => gossiper.reportTransfersDone(version),
    });
    replica.onChange((dataKey, before, after, object) => antiEntropy.track(dataKey, before, after, object));
    gossiper.onRingChange(() => handoff.runSoon());
    replica.onCoordinatedWrite((bucket, key, objectBytes, dot) => watchLog.append(bucket, key, objectBytes, dot));
    const departureFence: DepartureFenceDependencies = {
      selfId: context.selfId,
      clock: context.clock,
      send: context.send,
      recordOf: (node) => gossiper.recordOf(node),
      members: () =>
        Object.values(gossiper.view.members)
          .filter((member) => !hasDeparted(member.status))
          .map((member) => member.id),
      settings: () => ({ peerTimeoutMs: config.limits.peerTimeoutMs, retryMs: config.watch.pollWaitMs }),
    };
    this.watches = new Watches({
      clock: context.clock,
      logger: context.logger,
      send: context.send,
      members: () =>
        Object.values(gossiper.view.members)
          .filter((member) => !hasDeparted(member.status))
          .map((member) => member.id),
      departed: (node) => hasDeparted(gossiper.view.members[node]?.status),
      fenceDeparture: async (node, stopped) => fenceDeparture(departureFence, node, stopped),
      settings: () => ({ ...config.watch, peerTimeoutMs: config.limits.peerTimeoutMs }),
    });
    const settings = () => ({
      requestTimeoutMs: config.limits.requestTimeoutMs,
      speculativeRetryMs: config.limits.speculativeRetryMs,
      hintedHandoff: config.hintedHandoff.enabled,
    });
    const coordinator = new Coordinator({ ...context, hints: hintedHandoff.store, settings });
    this.client = new ClientRequests({ ...context, replica, coordinator, consistentCoordinator, limits: config.limits });
    const client = this.client;
    this.leases = new Leases({
      ...context,
      consistent: async (bucket, key, command, timeoutMs) => client.consistent(bucket, key, command, timeoutMs),
      scan: async (limit) => scanner.next(limit),
      leasedKeys: async (limit, maxKeys) => leasedKeys.next(limit, maxKeys),
    });
    const roles = { replica, hintedHandoff, antiEntropy, handoff };
    this.lifecycle = new Lifecycle({ ...context, ...roles, consistentCoordinator, leavesWithHost, onLeft: () => this.onLeft?.() });
    this.statusReport = new Status({
      ...context,
      ...roles,
      startedAtMs: context.clock.nowMs(),
      inFlight: () => this.client.inFlight,
      offReplica: () => coordinator.offReplica,
      processFigures,
    });
    // Counters and sets: updates are coordinated like writes and applied by the replica that serves dt-update.
    const dataTypes = (this.dataTypes = new DataTypes({
      coordinator,
      replica,
      clock: context.clock,
      limits: () => ({ maxSetElements: config.limits.maxSetElements, maxSetBytes: config.limits.maxSetBytes }),
      admit: (work) => this.client.admit(work),
    }));
    this.backup = new BackupService({
      ...context,
      coordinator,
      consistent: async (bucket, key, command, timeoutMs) => client.consistent(bucket, key, command, timeoutMs),
      leases: this.leases,
    });
    registerPeerHandlers(peers, { ...context, ...roles, dataTypes, acceptors, clientRequests: this.client, watchLog });
  }

  /** The hint store (for tests). */
  get hintStore(): HintStore {
    return this.hintedHandoffService.store;
  }

  /** Loads persisted state, joins, and starts the background roles (src/engine/lifecycle.ts). */
  async start(): Promise<void> {
    await this.lifecycle.start();
    this.leases.start();
  }

  /** Stops background work (the caller closes the HTTP server and the storage). */
  async stop(): Promise<void> {
    this.leases.stop();
    this.watches.closeAll();
    this.watchLog.close();
    await this.lifecycle.stop();
  }

  /**
   * `ringkv leave`: hands this node's partitions to others; `onLeft` fires once it has left. The
   * leave is persisted before anything announces it: gossip, `onLeaving` (the supervisor, which
   * has the node's other shards leave) and the answer.
   */
  async leave(): Promise<{ status: string }> {
    const answer = await this.lifecycle.leave();
    this.onLeaving?.();
    return answer;
  }

  /** The supervisor's `leave`: another shard of this node's host is leaving, so this one leaves too, whatever it holds (src/engine/lifecycle.ts). */
  async joinHostLeave(): Promise<void> {
    await this.lifecycle.joinHostLeave();
  }

  /** `ringkv remove NODE_ID`: plans a node that is gone for good out of the ring. */
  removeMember(nodeId: string): { status: string } {
    return this.lifecycle.removeMember(nodeId);
  }

  /** `ringkv repair`: an exchange of every partition now; answers the progress. */
  repair(): RepairProgress {
    return this.antiEntropyService.requestRepair();
  }

  /** Progress of the last repair. */
  repairProgress(): RepairProgress {
    return this.antiEntropyService.status().repair;
  }

  /** The bucket's properties in force (src/engine/bucket-settings.ts). */
  bucketProperties(bucket: string): BucketProperties {
    return this.context.bucketProperties(bucket);
  }

  /** This node's clock, which decides expiry of the versions read here. */
  nowMs(): number {
    return this.context.clock.nowMs();
  }

  /** Coordinated read (src/engine/client-requests.ts). */
  async get(bucket: string, key: string, options: ReadOptions): Promise<VersionedObject | undefined> {
    return this.client.get(bucket, key, options);
  }

  /** This node's own copy, without coordination or read repair. */
  async getLocal(bucket: string, key: string): Promise<VersionedObject | undefined> {
    return this.client.getLocal(bucket, key);
  }

  /** Coordinated write. */
  async put(command: PutCommand): Promise<WriteOutcome> {
    return this.client.put(command);
  }

  /** Coordinated delete. */
  async delete(command: DeleteCommand): Promise<WriteOutcome> {
    return this.client.delete(command);
  }

  /** A linearizable operation on a consistent bucket's key (src/engine/client-requests.ts). */
  async consistent(bucket: string, key: string, command: ConsistentCommand, timeoutMs?: number): Promise<ConsistentOutcome> {
    return this.client.consistent(bucket, key, command, timeoutMs);
  }

  /** One page of a bucket's keys. */
  async list(query: ListQuery): Promise<ListPage> {
    return this.client.list(query);
  }

  /** Starts a watch of a key or a prefix, from now or from a watch's event id (src/engine/watches.ts). */
  watch(filter: WatchFilter, resumeFrom?: string): WatchStream {
    return this.watches.watch(filter, resumeFrom);
  }

  /** Serves a peer's request with the role that registered its type. */
  async handlePeer(request: PeerRequest): Promise<PeerReply> {
    return this.peerService.handle(request);
  }

  /** What GET /status shows (src/engine/status.ts). */
  async status(): Promise<NodeStatus> {
    return this.statusReport.report();
  }

  /** Compacts the data space. */
  async compact(start?: Uint8Array, end?: Uint8Array): Promise<void> {
    await this.context.storage.compactRange(start, end);
  }
}
