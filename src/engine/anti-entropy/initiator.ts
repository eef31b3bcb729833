import { differingIndexes, leafOfPosition, merkleFanout } from '../../core/antientropy/merkle-tree.js';
import type { BucketProperties } from '../../core/buckets.js';
import { decodeDataKey } from '../../core/keys.js';
import { type Ring, preferenceList } from '../../core/ring/ring.js';
import { decodeObject } from '../../core/versioning/object-codec.js';
import { wireLimits } from '../../core/wire/message-table.js';
import type { KeyDigest, PeerReply, PeerRequest, StoredItem } from '../../core/wire/messages.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import { KvError } from '../../util/errors.js';
import { PeriodicTask } from '../periodic-task.js';
import type { Replica } from '../replica.js';
import type { KeyRepair } from './key-repair.js';
import type { TombstoneReaper } from './reaper.js';
import { type LocalDigest, requestOf } from './shared.js';
import type { TreeKeeper } from './tree-keeper.js';

/** Settings the initiator works with (from the `antiEntropy` config section). */
export interface InitiatorSettings {
  readonly enabled: boolean;
  readonly intervalMs: number;
  readonly fullCompareIntervalMs: number;
  readonly maxKeysPerSecond: number;
  readonly maxPageBytes: number;
}

/** What the initiator needs from its node. */
export interface InitiatorDependencies {
  readonly selfId: string;
  readonly replica: Replica;
  readonly keeper: TreeKeeper;
  readonly repair: KeyRepair;
  readonly reaper: TombstoneReaper;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly settings: InitiatorSettings;
  ring(): Ring | null;
  isUp(node: string): boolean;
  send(node: string, request: PeerRequest): Promise<PeerReply>;
  /** Every bucket n_val, ascending: a partition is compared with the peers of the largest one's preference list. */
  nVals(): readonly number[];
  bucketProperties(bucket: string): BucketProperties;
  countBytes(bytes: number): void;
}

/** Progress of a sweep started by `ringkv repair`. */
export interface RepairProgress {
  readonly running: boolean;
  readonly partitionsDone: number;
  readonly partitionsTotal: number;
  readonly keysRepaired: number;
  readonly startedAtMs: number | undefined;
  readonly finishedAtMs: number | undefined;
}

/** What this node knows of its comparisons with one peer. */
interface PeerState {
  /** Per partition: the keeper's change count when the two last agreed on it. */
  readonly agreed: Map<number, number>;
  /** Per partition: when the two last agreed on it. */
  readonly agreedAtMs: Map<number, number>;
  nextDueMs: number;
  lastFullMs: number | undefined;
  /** The peer was down (or this node had not compared with it yet): the next comparison covers every shared partition. */
  wasDown: boolean;
  /** Something was left over (a tree not ready on either side): compare again at the next tick. */
  retrySoon: boolean;
}

/** Which partitions this node replicates under a ring, and which of them it shares with each peer. */
interface Layout {
  readonly ring: Ring;
  readonly nVal: number;
  readonly partitions: readonly number[];
  readonly peersOf: ReadonlyMap<number, readonly string[]>;
  readonly byPeer: ReadonlyMap<string, readonly number[]>;
}

const keysPerLeafRequest = 64;
const itemsPerPush = 200;
/** Partition exchanges run at once with one peer. */
const exchangesAtOnce = 4;
/** How often the initiator looks whether a peer came back or a comparison is due; a look that finds nothing to do sends nothing. */
const peerCheckMs = 1000;

/**
 * The exchange initiator (Dynamo 4.7, Riak AAE's exchange FSM): in the background it asks each
 * peer, in one summary message, about the roots of the partitions the two replicate that changed
 * here since they last agreed (or about all of them after the peer was down, at the first
 * comparison, and every fullCompareIntervalMs as a safety net); the peer names the partitions
 * that differ, with its branch hashes, and only those are descended into: differing branches,
 * then differing leaves, then the keys of those leaves, repaired by merging versions both ways a
 * bounded page at a time. Nothing changed and nothing due means no message at all: an idle
 * cluster stays quiet. A change made on the peer is found by the peer's own initiator.
 */
export class ExchangeInitiator {
  private readonly task: PeriodicTask;
  private readonly peers = new Map<string, PeerState>();
  private layoutCache: Layout | undefined;
  private nextHousekeepingMs = 0;
  /** When the repairs made so far are paid for at maxKeysPerSecond. */
  private repairAllowedAtMs = 0;
  private stopped = false;
  private repairWanted = false;
  progress: RepairProgress = { running: false, partitionsDone: 0, partitionsTotal: 0, keysRepaired: 0, startedAtMs: undefined, finishedAtMs: undefined };
  /** Partition comparisons with a peer (a root compared in a summary, or one partition's exchange). */
  exchanges = 0;
  /** Summary messages sent. */
  summaries = 0;
  /** Partitions descended into because their roots differed. */
  descents = 0;

  constructor(private readonly deps: InitiatorDependencies) {
    // With anti-entropy off, only `ringkv repair` runs sweeps.
    this.task = new PeriodicTask(
      deps.clock,
      () => this.sweep(),
      (error) => deps.logger.warn({ error: String(error) }, 'anti-entropy sweep failed'),
      () => (this.repairWanted ? 0 : deps.settings.enabled ? this.tickMs : undefined),
    );
  }

  private get tickMs(): number {
    return Math.min(this.deps.settings.intervalMs, peerCheckMs);
  }

  /** Starts the background comparisons. */
  start(): void {
    if (this.deps.settings.enabled) this.task.arm(this.tickMs);
  }

  /** Stops (a round under way finishes its current exchange). */
  stop(): void {
    this.stopped = true;
    this.task.stop();
  }

  /** Partitions became comparable (their trees were rebuilt): compare them with every peer soon. */
  treesRebuilt(): void {
    for (const state of this.peers.values()) state.retrySoon = true;
    if (this.deps.settings.enabled) this.task.runSoon();
  }

  /** `ringkv repair`: compares every partition with every peer now (after the round under way, if any). */
  requestRepair(): RepairProgress {
    if (this.task.busy) this.repairWanted = true;
    else this.task.arm(0);
    this.progress = { ...this.progress, running: true, partitionsDone: 0, keysRepaired: 0, startedAtMs: this.deps.clock.nowMs(), finishedAtMs: undefined };
    return this.progress;
  }

  /** Counts keys repaired here into a running repair's progress. */
  countRepaired(changed: number): void {
    if (this.progress.running) this.progress = { ...this.progress, keysRepaired: this.progress.keysRepaired + changed };
  }

  /**
   * The partitions this node replicates keys of under the current owners, and its peers of each
   * (computed again only when the ring or n_val changes): the largest n_val's preference list,
   * which holds every smaller one's. Which keys a pair compares is decided per key (`shares`).
   */
  layout(ring: Ring): Layout {
    const nVal = Math.max(1, ...this.deps.nVals());
    if (this.layoutCache?.ring === ring && this.layoutCache.nVal === nVal) return this.layoutCache;
    const partitions: number[] = [];
    const peersOf = new Map<number, string[]>();
    const byPeer = new Map<string, number[]>();
    for (let partition = 0; partition < ring.partitionCount; partition++) {
      const replicas = preferenceList(ring, partition, nVal);
      if (!replicas.includes(this.deps.selfId)) continue;
      partitions.push(partition);
      const peers = replicas.filter((node) => node !== this.deps.selfId);
      peersOf.set(partition, peers);
      for (const peer of peers) {
        let list = byPeer.get(peer);
        if (list === undefined) {
          list = [];
          byPeer.set(peer, list);
        }
        list.push(partition);
      }
    }
    this.layoutCache = { ring, nVal, partitions, peersOf, byPeer };
    return this.layoutCache;
  }

  private peerState(peer: string): PeerState {
    let state = this.peers.get(peer);
    if (state === undefined) {
      state = { agreed: new Map(), agreedAtMs: new Map(), nextDueMs: 0, lastFullMs: undefined, wasDown: true, retrySoon: false };
      this.peers.set(peer, state);
    }
    return state;
  }

  /** One round: each peer that is due is asked about the partitions that need comparing; then tombstones are reaped. */
  async sweep(): Promise<void> {
    const ring = this.deps.ring();
    if (ring === null) return;
    const repairing = this.progress.running;
    this.repairWanted = false;
    const layout = this.layout(ring);
    if (repairing) this.progress = { ...this.progress, partitionsTotal: layout.partitions.length };
    const now = this.deps.clock.nowMs();
    let peersDone = 0;
    for (const [peer, partitions] of layout.byPeer) {
      if (this.stopped) return;
      const state = this.peerState(peer);
      if (!this.deps.isUp(peer)) {
        state.wasDown = true;
        continue;
      }
      const due = repairing || state.wasDown || state.retrySoon || now >= state.nextDueMs;
      if (!due) continue;
      const full = repairing || state.wasDown || state.lastFullMs === undefined || now - state.lastFullMs >= this.deps.settings.fullCompareIntervalMs;
      state.nextDueMs = now + this.deps.settings.intervalMs;
      const ready = partitions.filter((partition) => this.deps.keeper.isReady(partition));
      const candidates = full ? ready : ready.filter((partition) => this.deps.keeper.changeCount(partition) !== state.agreed.get(partition));
      try {
        const complete = (await this.compareWith(peer, candidates, state)) && ready.length === partitions.length;
        state.wasDown = false;
        state.retrySoon = !complete;
        if (full && complete) state.lastFullMs = now;
      } catch (error) {
        state.retrySoon = false;
        this.deps.logger.debug({ peer, error: String(error) }, 'anti-entropy comparison failed');
      }
      peersDone += 1;
      if (repairing) this.progress = { ...this.progress, partitionsDone: Math.floor((layout.partitions.length * peersDone) / Math.max(1, layout.byPeer.size)) };
    }
    if (repairing || now >= this.nextHousekeepingMs) {
      this.nextHousekeepingMs = now + this.deps.settings.intervalMs;
      if (ring.next === null) {
        for (const partition of layout.partitions) {
          if (this.stopped) return;
          if (this.deps.keeper.tombstonesOf(partition).size > 0) await this.deps.reaper.reapPartition(ring, partition);
        }
      }
      await this.deps.reaper.forgetExpired();
    }
    if (repairing) this.progress = { ...this.progress, running: false, partitionsDone: layout.partitions.length, finishedAtMs: this.deps.clock.nowMs() };
  }

  /**
   * Compares some partitions with a peer: one summary of their roots, then an exchange of each
   * partition the peer says differs. True when every one of them was compared to the end.
   */
  private async compareWith(peer: string, partitions: readonly number[], state: PeerState): Promise<boolean> {
    if (partitions.length === 0) return true;
    const counts = new Map(partitions.map((partition) => [partition, this.deps.keeper.changeCount(partition)]));
    const reply = await requestOf(
      this.deps,
      peer,
      { type: 'ae-summary', roots: partitions.map((partition) => ({ partition, root: this.deps.keeper.tree(partition).root() })) },
      'ae-summary-reply',
    );
    this.summaries += 1;
    this.exchanges += partitions.length;
    const agreedAt = this.deps.clock.nowMs();
    const agree = (partition: number): void => {
      state.agreed.set(partition, counts.get(partition) ?? 0);
      state.agreedAtMs.set(partition, agreedAt);
    };
    const differing = new Map(reply.differing.map((entry) => [entry.partition, entry.branches]));
    const notReady = new Set(reply.notReady);
    let complete = notReady.size === 0;
    const descents: [number, readonly string[]][] = [];
    for (const partition of partitions) {
      if (notReady.has(partition)) continue;
      const branches = differing.get(partition);
      if (branches === undefined) agree(partition);
      else descents.push([partition, branches]);
    }
    // A few partitions are exchanged at once: each exchange is mostly waiting for the peer, and
    // a node back from an outage may differ in every partition.
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < descents.length && !this.stopped) {
        const [partition, branches] = descents[next++] as [number, readonly string[]];
        try {
          const { repaired, whole } = await this.descend(partition, peer, branches);
          if (whole) agree(partition);
          else complete = false;
          await this.throttle(repaired);
        } catch (error) {
          complete = false;
          this.deps.logger.debug({ partition, peer, error: String(error) }, 'anti-entropy exchange failed');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(exchangesAtOnce, descents.length) }, worker));
    return complete && !this.stopped;
  }

  /** Holds repairs to antiEntropy.maxKeysPerSecond across every exchange under way: waits out the time `repaired` keys take at that rate. */
  private async throttle(repaired: number): Promise<void> {
    if (repaired === 0) return;
    const now = this.deps.clock.nowMs();
    this.repairAllowedAtMs = Math.max(now, this.repairAllowedAtMs) + (repaired * 1000) / this.deps.settings.maxKeysPerSecond;
    await this.deps.clock.sleep(this.repairAllowedAtMs - now);
  }

  /**
   * One exchange of a partition with a peer, on its own (the background rounds batch the roots
   * into summaries): roots, then differing branches, leaves and keys. Answers how many keys were
   * repaired on either side.
   */
  async exchange(partition: number, peer: string): Promise<number> {
    this.exchanges += 1;
    const reply = await requestOf(
      this.deps,
      peer,
      { type: 'ae-summary', roots: [{ partition, root: this.deps.keeper.tree(partition).root() }] },
      'ae-summary-reply',
    );
    if (reply.notReady.includes(partition))
      throw new KvError('KV_NOT_READY', `peer ${peer} is still rebuilding the tree of partition ${partition}; the exchange is tried again in a later round`);
    const branches = reply.differing.find((entry) => entry.partition === partition)?.branches;
    return branches === undefined ? 0 : (await this.descend(partition, peer, branches)).repaired;
  }

  /**
   * Descends into a partition whose roots differ: the differing branches' leaf hashes, then the
   * keys of the differing leaves; each side merges what the other has, a bounded page at a time.
   * `whole` is false when a reply was truncated (the next comparison goes on from there).
   */
  private async descend(partition: number, peer: string, theirBranches: readonly string[]): Promise<{ repaired: number; whole: boolean }> {
    this.descents += 1;
    const ring = this.deps.ring();
    if (ring === null) return { repaired: 0, whole: false };
    const shared = (dataKey: Uint8Array): boolean => this.shares(ring, partition, peer, dataKey);
    const tree = this.deps.keeper.tree(partition);
    const branches = differingIndexes(tree.branchHashes(), theirBranches.length === merkleFanout ? theirBranches : []);
    if (branches.length === 0) return { repaired: 0, whole: true };
    const leavesReply = await requestOf(this.deps, peer, { type: 'ae-leaves', partition, branches }, 'ae-leaves-reply');
    const theirLeaves = new Map(leavesReply.branches.map((entry) => [entry.branch, entry.leaves]));
    const differingLeaves: number[] = [];
    for (const branch of branches) {
      for (const index of differingIndexes(tree.leafHashes(branch), theirLeaves.get(branch) ?? [])) differingLeaves.push(branch * merkleFanout + index);
    }
    let repaired = 0;
    let whole = true;
    for await (const { leaves, mine: held } of this.leafGroups(partition, differingLeaves)) {
      // Only keys both sides replicate are compared: a copy held by a node outside its bucket's
      // preference list (a clean-up not done yet) is neither taken from nor pushed to it.
      const mine = new Map([...held].filter(([, entry]) => shared(entry.dataKey)));
      const items: KeyDigest[] = [...mine.values()].map((entry) => ({ dataKey: entry.dataKey, digest: entry.digest }));
      const keysReply = await requestOf(this.deps, peer, { type: 'ae-keys', partition, leaves, items }, 'ae-keys-reply');
      if (keysReply.truncated) whole = false;
      const differing = keysReply.differing.filter(shared);
      repaired += await this.fetchFrom(peer, partition, differing);
      // What the peer lacks is read again as it is stored now; a write since the scan reaches the peer anyway.
      const wanted = keysReply.need.filter((key) => mine.has(Buffer.from(key).toString('latin1')));
      // A key the peer still holds but this side reaped is answered with the remembered tombstone, so the stale peer converges.
      const reaped = await this.deps.reaper.reapedAmong(differing.filter((key) => !mine.has(Buffer.from(key).toString('latin1'))));
      repaired += await this.pushTo(peer, partition, [...wanted, ...reaped]);
    }
    return { repaired, whole };
  }

  /**
   * True when this node and `peer` both replicate the key under `ring`, by its own bucket's n_val.
   * A key a peer names that is not a storage key of the partition is the peer's mistake: false.
   */
  private shares(ring: Ring, partition: number, peer: string, dataKey: Uint8Array): boolean {
    if (dataKey.byteLength < 6 || !this.deps.keeper.inPartition(partition, dataKey)) return false;
    const replicas = preferenceList(ring, partition, this.deps.bucketProperties(decodeDataKey(dataKey).bucket).nVal);
    return replicas.includes(this.deps.selfId) && replicas.includes(peer);
  }

  /**
   * Groups leaves for ae-keys requests: at most keysPerLeafRequest leaves and wireLimits.maxKeys
   * keys per request, with this side's digests of their keys.
   */
  private async *leafGroups(partition: number, leaves: readonly number[]): AsyncGenerator<{ leaves: number[]; mine: Map<string, LocalDigest> }> {
    let group: number[] = [];
    let mine = new Map<string, LocalDigest>();
    // The digests of a chunk of leaves come from one scan; a leaf's own keys are then counted apart.
    for (let start = 0; start < leaves.length; start += keysPerLeafRequest) {
      const chunk = leaves.slice(start, start + keysPerLeafRequest);
      const byLeaf = new Map<number, Map<string, LocalDigest>>(chunk.map((leaf) => [leaf, new Map()]));
      for (const [name, entry] of await this.deps.keeper.leafDigests(partition, chunk))
        byLeaf.get(leafOfPosition(entry.dataKey.readUInt32BE(0), this.deps.keeper.partitions))?.set(name, entry);
      for (const leaf of chunk) {
        const entries = byLeaf.get(leaf) ?? new Map<string, LocalDigest>();
        if (entries.size > wireLimits.maxKeys) {
          this.deps.logger.warn({ partition, leaf, keys: entries.size }, 'a Merkle leaf holds more keys than one comparison carries; it is skipped');
          continue;
        }
        if (group.length >= keysPerLeafRequest || mine.size + entries.size > wireLimits.maxKeys) {
          yield { leaves: group, mine };
          group = [];
          mine = new Map();
        }
        group.push(leaf);
        for (const [name, entry] of entries) mine.set(name, entry);
      }
    }
    if (group.length > 0) yield { leaves: group, mine };
  }

  /** Fetches the peer's objects of some keys, a page at a time, and merges them here. */
  private async fetchFrom(peer: string, partition: number, keys: readonly Uint8Array[]): Promise<number> {
    let repaired = 0;
    let remaining = keys;
    while (remaining.length > 0) {
      const asked = remaining.slice(0, wireLimits.maxItems);
      const page = await requestOf(this.deps, peer, { type: 'ae-fetch', partition, keys: asked, maxBytes: this.deps.settings.maxPageBytes }, 'object-page');
      repaired += await this.deps.repair.mergeItems(partition, page.items);
      if (page.done) {
        remaining = remaining.slice(asked.length);
        continue;
      }
      const last = page.items[page.items.length - 1];
      const position = last === undefined ? -1 : asked.findIndex((key) => Buffer.from(key).equals(last.dataKey));
      if (position < 0)
        throw new KvError(
          'KV_PEER_UNREACHABLE',
          `peer ${peer} answered ae-fetch with a page that makes no progress; the exchange stops here and is tried again in a later round (run the same ringkv version on every node)`,
        );
      remaining = remaining.slice(position + 1);
    }
    return repaired;
  }

  /** Pushes this side's objects of some keys to the peer, in pages bounded by keys and bytes. */
  private async pushTo(peer: string, partition: number, keys: readonly Uint8Array[]): Promise<number> {
    let repaired = 0;
    let page: StoredItem[] = [];
    let pageBytes = 0;
    const flush = async (): Promise<void> => {
      if (page.length === 0) return;
      const items = page;
      page = [];
      pageBytes = 0;
      repaired += (await requestOf(this.deps, peer, { type: 'ae-push', partition, items }, 'ae-push-reply')).repaired;
    };
    for (const key of new Set(keys.map((dataKey) => Buffer.from(dataKey).toString('latin1')))) {
      const dataKey = Buffer.from(key, 'latin1');
      const bytes = (await this.deps.replica.readBytes(dataKey)) ?? (await this.deps.replica.reapedBytes(dataKey));
      if (bytes === undefined) continue;
      page.push({ dataKey, object: decodeObject(bytes) });
      pageBytes += bytes.byteLength;
      if (page.length >= itemsPerPush || pageBytes >= this.deps.settings.maxPageBytes) await flush();
    }
    await flush();
    return repaired;
  }

  /** Per partition this node replicates: ms since every one of its peers last agreed with it (absent until they all have). */
  agreementAges(ring: Ring): { ages: Record<string, number>; oldest: number | null } {
    const now = this.deps.clock.nowMs();
    const layout = this.layout(ring);
    const ages: Record<string, number> = {};
    // The oldest age is only known once every replicated partition has had a full exchange.
    let oldest: number | null = layout.partitions.length > 0 ? 0 : null;
    for (const partition of layout.partitions) {
      let last: number | undefined = Number.POSITIVE_INFINITY;
      for (const peer of layout.peersOf.get(partition) ?? []) {
        const at = this.peers.get(peer)?.agreedAtMs.get(partition);
        last = at === undefined || last === undefined ? undefined : Math.min(last, at);
      }
      if (last === undefined) {
        oldest = null;
        continue;
      }
      // A partition with no peer (n_val 1) agrees with itself all the time.
      const age = Number.isFinite(last) ? now - last : 0;
      ages[String(partition)] = age;
      if (oldest !== null) oldest = Math.max(oldest, age);
    }
    return { ages, oldest };
  }
}
