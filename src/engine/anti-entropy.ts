import type { VersionedObject } from '../core/versioning/versioned-object.js';
import type { PeerReply } from '../core/wire/messages.js';
import type { KeySpace } from '../ports/storage.js';
import { ExchangeInitiator, type RepairProgress } from './anti-entropy/initiator.js';
import { KeyRepair } from './anti-entropy/key-repair.js';
import { TombstoneReaper } from './anti-entropy/reaper.js';
import { type AntiEntropyRequest, ExchangeResponder } from './anti-entropy/responder.js';
import { TreeKeeper } from './anti-entropy/tree-keeper.js';
import type { Replica } from './replica.js';
import type { NodeContext } from './node-context.js';

export type { RepairProgress } from './anti-entropy/initiator.js';
export type { AntiEntropyRequest } from './anti-entropy/responder.js';

/** Settings of anti-entropy (the `antiEntropy` config section). */
export interface AntiEntropySettings {
  readonly enabled: boolean;
  /** Pause between two comparisons with a peer of the partitions that changed since they last agreed. */
  readonly intervalMs: number;
  /** Pause between two comparisons with a peer of every partition the two share, changed or not. */
  readonly fullCompareIntervalMs: number;
  /** How long a tombstone stays after every replica has it, before it is reaped. */
  readonly tombstoneGraceMs: number;
  /**
   * How long a replica remembers a tombstone it reaped (its version vector, no value), so that a
   * node that missed the delete and comes back within this time cannot resurrect the key.
   */
  readonly reapedRetentionMs: number;
  /** Keys repaired per second at most, so foreground latency holds while replicas catch up. */
  readonly maxKeysPerSecond: number;
  readonly peerTimeoutMs: number;
  /** About how many bytes of values one page of objects carries (handoff.maxPageBytes); a page always carries at least one. */
  readonly maxPageBytes: number;
}

/** What anti-entropy needs from its node. */
export type AntiEntropyDependencies = Pick<NodeContext, 'selfId' | 'clock' | 'logger' | 'ring' | 'isUp' | 'send' | 'bucketProperties' | 'nVals'> & {
  readonly data: KeySpace;
  /** Where the trees are saved at a clean stop. */
  readonly meta: KeySpace;
  readonly replica: Replica;
  readonly settings: AntiEntropySettings;
};

/** Anti-entropy figures for /status and /metrics. */
export interface AntiEntropyStatus {
  readonly enabled: boolean;
  /** Partition comparisons with a peer (each root of a summary counts as one). */
  readonly exchanges: number;
  /** Summary messages sent (one per peer per comparison round that had anything to compare). */
  readonly summaries: number;
  /** Partitions descended into because their roots differed. */
  readonly descents: number;
  readonly keysRepaired: number;
  readonly bytesExchanged: number;
  readonly tombstonesReaped: number;
  readonly tombstonesPending: number;
  /** Pushed versions refused because a tombstone reaped here had superseded them. */
  readonly staleVersionsRefused: number;
  /** Reaped-tombstone records forgotten after `antiEntropy.reapedRetentionMs`. */
  readonly reapedRecordsForgotten: number;
  readonly partitionsTracked: number;
  /** How the trees came up at this start: loaded from the last clean stop, or rebuilt (still rebuilding) from the data. */
  readonly trees: { readonly loadedFromSnapshot: boolean; readonly rebuilding: boolean; readonly partitionsRebuilt: number; readonly partitionsReady: number };
  /** Age of the oldest "last full exchange" among the partitions this node replicates (null before the first sweep ends). */
  readonly oldestFullExchangeAgeMs: number | null;
  /** Per partition this node replicates: ms since every peer last agreed with it after an exchange. */
  readonly lastFullExchangeAgeMs: Readonly<Record<string, number>>;
  readonly repair: RepairProgress;
}

/**
 * Merkle-tree anti-entropy (Dynamo 4.7, Riak AAE), as four roles wired together here: the tree
 * keeper (src/engine/anti-entropy/tree-keeper.ts) keeps one tree per partition current on every
 * write and saves them at a clean stop; the initiator compares, in the background, only the
 * partitions that changed since a peer last agreed (one summary message per peer), descending
 * only into differing branches and leaves; the responder answers a peer's side; the reaper
 * removes tombstones once every replica has them and the grace period has passed.
 */
export class AntiEntropy {
  private readonly keeper: TreeKeeper;
  private readonly repairs: KeyRepair;
  private readonly reaper: TombstoneReaper;
  private readonly initiator: ExchangeInitiator;
  private readonly responder: ExchangeResponder;
  private bytesExchanged = 0;

  constructor(private readonly deps: AntiEntropyDependencies) {
    const countBytes = (bytes: number): void => {
      this.bytesExchanged += bytes;
    };
    this.keeper = new TreeKeeper({
      data: deps.data,
      meta: deps.meta,
      replica: deps.replica,
      clock: deps.clock,
      logger: deps.logger,
      ring: () => deps.ring(),
      onTreesRebuilt: () => this.initiator.treesRebuilt(),
    });
    this.repairs = new KeyRepair({
      selfId: deps.selfId,
      replica: deps.replica,
      keeper: this.keeper,
      ring: () => deps.ring(),
      bucketProperties: (bucket) => deps.bucketProperties(bucket),
      onRepaired: (changed) => this.initiator.countRepaired(changed),
    });
    this.reaper = new TombstoneReaper({
      selfId: deps.selfId,
      replica: deps.replica,
      keeper: this.keeper,
      clock: deps.clock,
      logger: deps.logger,
      settings: deps.settings,
      isUp: (node) => deps.isUp(node),
      send: (node, request) => deps.send(node, request),
      bucketProperties: (bucket) => deps.bucketProperties(bucket),
      countBytes,
    });
    this.initiator = new ExchangeInitiator({
      selfId: deps.selfId,
      replica: deps.replica,
      keeper: this.keeper,
      repair: this.repairs,
      reaper: this.reaper,
      clock: deps.clock,
      logger: deps.logger,
      settings: deps.settings,
      ring: () => deps.ring(),
      isUp: (node) => deps.isUp(node),
      send: (node, request) => deps.send(node, request),
      nVals: () => deps.nVals(),
      bucketProperties: (bucket) => deps.bucketProperties(bucket),
      countBytes,
    });
    this.responder = new ExchangeResponder({
      replica: deps.replica,
      keeper: this.keeper,
      repair: this.repairs,
      reaper: this.reaper,
      settings: deps.settings,
      ring: () => deps.ring(),
    });
  }

  /**
   * Opens the trees: those saved at the last clean stop, else an empty start whose trees are
   * rebuilt in the background (start-up does not wait for a scan of the data).
   */
  async build(partitionCount: number): Promise<void> {
    await this.keeper.open(partitionCount);
  }

  /** Settles once every tree is current (after a background rebuild, when one runs). */
  async treesReady(): Promise<void> {
    await this.keeper.whenRebuilt();
  }

  /** Keeps the trees current: called by the replica after every change of a stored key. */
  track(dataKey: Buffer, before: Uint8Array | undefined, after: Uint8Array | undefined, object: VersionedObject | undefined): void {
    this.keeper.track(dataKey, before, after, object);
  }

  /** Keys stored on this node, tombstones included. */
  get keyCount(): number {
    return this.keeper.keyCount;
  }

  /** Partitions this node holds any key of (handoff clean-up uses it); one whose tree is not rebuilt yet counts as held. */
  heldPartitions(): number[] {
    return this.keeper.heldPartitions();
  }

  /** How often a partition changed here since this start (handoff clean-up sweeps a partition again only after it changed). */
  changeCount(partition: number): number {
    return this.keeper.changeCount(partition);
  }

  /** The tree keeper (for tests). */
  get treeKeeper(): TreeKeeper {
    return this.keeper;
  }

  /** Starts the background comparisons. */
  start(): void {
    this.initiator.start();
  }

  /** Stops comparing (a round under way finishes its current exchange). */
  stop(): void {
    this.initiator.stop();
  }

  /** Stops, then saves the trees once the writes under way are done (writes are refused from then on). */
  async close(): Promise<void> {
    this.stop();
    await this.keeper.close();
  }

  /** `ringkv repair`: compares every partition now (after the round under way, if any). */
  requestRepair(): RepairProgress {
    return this.initiator.requestRepair();
  }

  /** One round of comparisons. */
  async sweep(): Promise<void> {
    await this.initiator.sweep();
  }

  /** One exchange of a partition with a peer; answers how many keys were repaired on either side. */
  async exchange(partition: number, peer: string): Promise<number> {
    return this.initiator.exchange(partition, peer);
  }

  /** Serves the binary side of an exchange. */
  async handleMessage(request: AntiEntropyRequest): Promise<PeerReply> {
    return this.responder.handleMessage(request);
  }

  /** Figures for /status. */
  status(): AntiEntropyStatus {
    const ring = this.deps.ring();
    const { ages, oldest } = ring === null ? { ages: {}, oldest: null } : this.initiator.agreementAges(ring);
    return {
      enabled: this.deps.settings.enabled,
      exchanges: this.initiator.exchanges,
      summaries: this.initiator.summaries,
      descents: this.initiator.descents,
      keysRepaired: this.repairs.keysRepaired,
      bytesExchanged: this.bytesExchanged,
      tombstonesReaped: this.reaper.tombstonesReaped,
      tombstonesPending: this.keeper.tombstonesPending,
      staleVersionsRefused: this.deps.replica.staleVersionsRefused,
      reapedRecordsForgotten: this.reaper.reapedRecordsForgotten,
      partitionsTracked: this.keeper.partitionsTracked,
      trees: this.keeper.startFigures,
      oldestFullExchangeAgeMs: oldest,
      lastFullExchangeAgeMs: ages,
      repair: this.initiator.progress,
    };
  }
}
