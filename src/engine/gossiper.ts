import { type Ring, createRing, ringMembers } from '../core/ring/ring.js';
import { type ClusterView, type MemberLifecycle, type MemberRecord, beat, gossipTargets, mergeViews, withLifecycle } from '../core/membership/membership.js';
import { type PhiAccrualState, createDetector, heartbeat, phi } from '../core/membership/phi-accrual.js';
import { validateView } from '../core/membership/view-validation.js';
import type { BucketProperties } from '../core/buckets.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Random } from '../ports/random.js';
import type { Transport } from '../ports/transport.js';
import type { Claimant } from './claimant.js';
import { PeriodicTask } from './periodic-task.js';

/** What the gossiper needs from its node. */
export interface GossiperOptions {
  readonly self: MemberRecord;
  readonly seeds: readonly string[];
  readonly partitionCount: number;
  /**
   * Bucket properties this node brings when it founds a cluster: under '' the defaults, under a
   * bucket's name its own. A node that joins takes the cluster's instead.
   */
  readonly bucketProperties: Readonly<Record<string, Partial<BucketProperties>>>;
  readonly intervalMs: number;
  readonly fanout: number;
  readonly phiThreshold: number;
  readonly peerTimeoutMs: number;
  /** The view persisted by the last run; checked like peer input, since a file can be damaged too. */
  readonly initialView: unknown;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Plans and completes ring changes when this node is the claimant (src/engine/claimant.ts). */
  readonly claimant: Pick<Claimant, 'nextRing'>;
  /** Persists the view whenever the ring changes, so a restarted node knows its ring. */
  readonly persist: (view: ClusterView) => Promise<void>;
}

interface Observed {
  readonly generation: number;
  readonly heartbeat: number;
  readonly detector: PhiAccrualState;
}

/**
 * Membership by gossip (Cassandra's design): every interval the node raises its heartbeat and
 * exchanges its view with a few random peers; a peer whose heartbeat stops rising is judged down
 * by the phi accrual failure detector. After each exchange it asks the claimant
 * (src/engine/claimant.ts) for the ring it wants, and adopts and spreads that ring.
 */
export class Gossiper {
  private viewState: ClusterView;
  private readonly observed = new Map<string, Observed>();
  private readonly task: PeriodicTask;
  private lastPersistedRingVersion: number;
  private lastNoticedRingVersion = -1;
  private readonly ringChangeListeners: ((ring: Ring) => void)[] = [];
  private readonly removedListeners: (() => void)[] = [];

  constructor(private readonly options: GossiperOptions) {
    this.task = new PeriodicTask(
      options.clock,
      () => this.round(),
      (error) => options.logger.warn({ error: String(error) }, 'gossip round failed'),
      () => options.intervalMs,
    );
    const self = options.self;
    const initial = this.loadInitialView(options.initialView);
    const base: ClusterView = initial ?? { members: {}, ring: null, bucketProperties: {}, bucketPropertiesVersion: 0 };
    let ring = base.ring;
    let founded: Pick<ClusterView, 'bucketProperties' | 'bucketPropertiesVersion'> = base;
    if (ring === null && options.seeds.length === 0) {
      // Founding a cluster: the ring and the bucket properties start here and spread by gossip.
      ring = createRing(options.partitionCount, [self.id], self.location === undefined ? {} : { [self.id]: self.location });
      founded = { bucketProperties: options.bucketProperties, bucketPropertiesVersion: 1 };
    }
    // A node removed from the cluster stays removed across restarts (see newerRecord).
    const wasRemoved = base.members[self.id]?.status === 'removed';
    const status = wasRemoved ? 'removed' : ring !== null && ringMembers(ring).includes(self.id) ? 'up' : 'joining';
    this.viewState = { ...base, ...founded, ring, members: { ...base.members, [self.id]: { ...self, status } } };
    this.lastPersistedRingVersion = initial?.ring?.version ?? -1;
    const now = options.clock.nowMs();
    for (const member of Object.values(this.viewState.members)) {
      if (member.id !== self.id) this.observe(member, now, true);
    }
    if (wasRemoved) this.announceRemoval();
  }

  /** The persisted view, with every part that fails its schema left out and logged. */
  private loadInitialView(stored: unknown): ClusterView | undefined {
    if (stored === undefined) return undefined;
    const { view, problems } = validateView(stored, { partitionCount: undefined, knownMemberIds: [], nowMs: this.options.clock.nowMs() });
    if (problems.length > 0) {
      this.options.logger.error({ problems: problems.slice(0, 10) }, 'refused parts of the persisted cluster view; the node starts without them and learns them again from its peers');
    }
    return view;
  }

  /** Calls `listener` whenever this node adopts a new ring (a plan, a flip), so handoff acts on it at once. */
  onRingChange(listener: (ring: Ring) => void): void {
    this.ringChangeListeners.push(listener);
  }

  /**
   * Calls `listener` once when this node learns that it was removed from the cluster; it must stop
   * serving. A node that was removed before this run starts removed, and its node starts no role that moves data.
   */
  onRemoved(listener: () => void): void {
    this.removedListeners.push(listener);
  }

  /** The current cluster view. */
  get view(): ClusterView {
    return this.viewState;
  }

  /** The current ring, or null before this node has one. */
  get ring(): Ring | null {
    return this.viewState.ring;
  }

  /** Starts periodic gossip rounds; the first one at once, so a joiner reaches its seeds without waiting an interval. */
  start(): void {
    void this.persistIfRingChanged();
    this.task.arm(0);
  }

  /** Stops gossiping. */
  stop(): void {
    this.task.stop();
  }

  /** One gossip round: beat, pick peers, exchange views. */
  async round(): Promise<void> {
    const { self } = this.options;
    this.viewState = beat(this.viewState, self.id);
    this.claimIfClaimant();
    this.noticeRingChange();
    const targets = gossipTargets(this.viewState, self.id, this.options.fanout, this.options.random, this.options.seeds).filter(
      (address) => address !== self.address,
    );
    await Promise.all(targets.map((address) => this.exchange(address)));
  }

  private async exchange(address: string): Promise<void> {
    try {
      const reply = await this.options.transport.request(address, { type: 'gossip', state: this.viewState }, { timeoutMs: this.options.peerTimeoutMs });
      if (reply.type === 'gossip-reply') this.absorb(reply.state, address);
    } catch (error) {
      this.options.logger.debug({ peer: address, error: String(error) }, 'gossip exchange failed');
    }
  }

  /** Handles a peer's gossip: merge its view, answer ours. */
  receive(remote: unknown): ClusterView {
    this.absorb(remote, 'a peer that gossiped to this node');
    return this.viewState;
  }

  private absorb(state: unknown, from: string): void {
    const selfId = this.options.self.id;
    const mine = this.viewState.members[selfId];
    const { view: remote, problems } = validateView(state, {
      partitionCount: this.viewState.ring?.partitionCount,
      knownMemberIds: Object.keys(this.viewState.members),
      nowMs: this.options.clock.nowMs(),
    });
    if (problems.length > 0) {
      this.options.logger.warn({ peer: from, problems: problems.slice(0, 10) }, 'refused malformed parts of gossip state; the rest was merged');
    }
    const merged = mergeViews(this.viewState, remote);
    // Nobody else speaks for this node: its own record (its generation, heartbeat and status) is
    // authoritative, except that a removal another node made sticks (see newerRecord).
    const removedHere = mine !== undefined && mine.status !== 'removed' && merged.members[selfId]?.status === 'removed';
    const own = mine === undefined ? undefined : removedHere ? { ...mine, status: 'removed' as const } : mine;
    this.viewState = own === undefined ? merged : { ...merged, members: { ...merged.members, [selfId]: own } };
    const now = this.options.clock.nowMs();
    for (const member of Object.values(this.viewState.members)) {
      if (member.id !== selfId) this.observe(member, now, false);
    }
    this.promoteSelf();
    if (removedHere) {
      this.announceRemoval();
      void this.persistNow();
    }
    // Acting on what just arrived (a joiner, a receiver's report) at once rather than at the next
    // round is what makes a ring change take round trips instead of gossip intervals.
    this.claimIfClaimant();
    this.noticeRingChange();
  }

  /** Logs, once, that this node was removed, and tells the node to stop serving. */
  private announceRemoval(): void {
    this.options.logger.error(
      { nodeId: this.options.self.id },
      'this node was removed from the cluster (`ringkv remove`) and serves nothing any more: its id can never rejoin. To bring this machine back, stop it, wipe its data directory, and start it again: it joins with a new id',
    );
    for (const listener of this.removedListeners) listener();
  }

  /** After the ring changed here: persist it, tell handoff, and gossip again soon so the change spreads without waiting an interval. */
  private noticeRingChange(): void {
    const ring = this.viewState.ring;
    if (ring === null || ring.version === this.lastNoticedRingVersion) return;
    this.lastNoticedRingVersion = ring.version;
    void this.persistIfRingChanged();
    for (const listener of this.ringChangeListeners) listener(ring);
    this.task.runSoon();
  }

  /** Feeds the failure detector when a member's heartbeat rose since we last saw it. */
  private observe(member: MemberRecord, nowMs: number, initial: boolean): void {
    const seen = this.observed.get(member.id);
    if (seen === undefined || member.generation > seen.generation) {
      const detector = heartbeat(
        createDetector({ windowSize: 100, minStdDeviationMs: 500, acceptableHeartbeatPauseMs: 3 * this.options.intervalMs, firstHeartbeatEstimateMs: this.options.intervalMs }),
        nowMs,
      );
      this.observed.set(member.id, { generation: member.generation, heartbeat: member.heartbeat, detector });
      return;
    }
    if (!initial && member.heartbeat > seen.heartbeat) {
      this.observed.set(member.id, { generation: seen.generation, heartbeat: member.heartbeat, detector: heartbeat(seen.detector, nowMs) });
    }
  }

  /** Changes fields of this node's own record; only this node writes it, and gossip spreads it. */
  private updateSelf(change: Partial<Pick<MemberRecord, 'status' | 'transfersDoneForRing'>>): void {
    const selfId = this.options.self.id;
    const record = this.viewState.members[selfId];
    if (record === undefined) return;
    this.viewState = { ...this.viewState, members: { ...this.viewState.members, [selfId]: { ...record, ...change } } };
  }

  private promoteSelf(): void {
    const ring = this.viewState.ring;
    if (this.ownStatus === 'joining' && ring !== null && ringMembers(ring).includes(this.options.self.id)) this.updateSelf({ status: 'up' });
  }

  /** The failure detector's suspicion of a member (0 for this node). */
  phiOf(nodeId: string): number {
    if (nodeId === this.options.self.id) return 0;
    const seen = this.observed.get(nodeId);
    return seen === undefined ? Number.POSITIVE_INFINITY : phi(seen.detector, this.options.clock.nowMs());
  }

  /** True when this node believes the member is alive and serving. */
  isUp(nodeId: string): boolean {
    if (nodeId === this.options.self.id) return true;
    const record = this.viewState.members[nodeId];
    if (record === undefined || record.status === 'left' || record.status === 'removed') return false;
    return this.phiOf(nodeId) < this.options.phiThreshold;
  }

  /** The address of a member. */
  addressOf(nodeId: string): string | undefined {
    return this.viewState.members[nodeId]?.address;
  }

  /** Changes this node's own lifecycle (leaving, left); gossip spreads it. */
  setOwnStatus(status: MemberLifecycle): void {
    this.updateSelf({ status });
  }

  /** This node's own lifecycle. */
  get ownStatus(): MemberLifecycle {
    return this.viewState.members[this.options.self.id]?.status ?? 'joining';
  }

  /** Records that every partition this node receives in ring `version` has streamed in. */
  reportTransfersDone(version: number): void {
    this.updateSelf({ transfersDoneForRing: version });
    // The claimant flips the ring on this report: tell it now rather than at the next round.
    this.task.runSoon();
  }

  /** Marks another member removed for good (`ringkv remove`); the claimant then plans it out of the ring. */
  markRemoved(nodeId: string): void {
    this.viewState = withLifecycle(this.viewState, nodeId, 'removed');
  }

  /** Adopts the ring the claimant wants (when this node is the claimant and the members changed). */
  private claimIfClaimant(): void {
    const next = this.options.claimant.nextRing(this.viewState, (id) => this.isUp(id));
    if (next !== this.viewState.ring) {
      this.viewState = { ...this.viewState, ring: next };
      this.promoteSelf();
    }
  }

  /** Persists the view now (a change other than the ring's, such as this node's removal). */
  private async persistNow(): Promise<void> {
    try {
      await this.options.persist(this.viewState);
    } catch (error) {
      this.options.logger.error({ error: String(error) }, 'could not persist the cluster view');
    }
  }

  private async persistIfRingChanged(): Promise<void> {
    const version = this.viewState.ring?.version ?? -1;
    if (version === this.lastPersistedRingVersion) return;
    this.lastPersistedRingVersion = version;
    try {
      await this.options.persist(this.viewState);
    } catch (error) {
      this.options.logger.error({ error: String(error) }, 'could not persist the cluster view');
    }
  }
}
