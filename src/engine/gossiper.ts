import { type NodeLocation, type Ring, compareRings, createRing, ringHash, ringMembers } from '../core/ring/ring.js';
import { type ClusterView, type MemberLifecycle, type MemberRecord, hasDeparted } from '../core/membership/membership.js';
import { type SwimConfig, type SwimEffect, SwimMember } from '../core/membership/swim.js';
import { type SwimMessage, type SwimRecord, type SwimState, swimMessageBytes } from '../core/membership/swim-messages.js';
import { isNodeId, validateView } from '../core/membership/view-validation.js';
import { encodeReply, encodeRequest } from '../core/wire/codec.js';
import { frameHeaderBytes } from '../core/wire/frames.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { BucketProperties } from '../core/buckets.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Random } from '../ports/random.js';
import type { Transport } from '../ports/transport.js';
import type { Claimant } from './claimant.js';
import { PeriodicTask } from './periodic-task.js';
import { KvError } from '../util/errors.js';

/** Who this node is, as its member record says. */
export interface GossiperSelf {
  readonly id: string;
  readonly address: string;
  readonly generation: number;
  readonly location?: NodeLocation;
}

/** What the gossiper needs from its node. */
export interface GossiperOptions {
  readonly self: GossiperSelf;
  readonly seeds: readonly string[];
  readonly partitionCount: number;
  /**
   * Bucket properties this node brings when it founds a cluster: under '' the defaults, under a
   * bucket's name its own. A node that joins takes the cluster's instead.
   */
  readonly bucketProperties: Readonly<Record<string, Partial<BucketProperties>>>;
  /** SWIM's protocol period (probe interval); the other timings are fractions of it (swimTimings). */
  readonly intervalMs: number;
  /** Members each gossip message goes to. */
  readonly fanout: number;
  readonly peerTimeoutMs: number;
  /** The view persisted by the last run; checked like peer input, since a file can be damaged too. */
  readonly initialView: unknown;
  readonly transport: Transport;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** Plans and completes ring changes when this node is the claimant (src/engine/claimant.ts). */
  readonly claimant: Pick<Claimant, 'nextRing' | 'isClaimant'>;
  /** Persists the view whenever the ring changes, so a restarted node knows its ring and members. */
  readonly persist: (view: ClusterView) => Promise<void>;
}

/** The SWIM timings for a protocol period of `intervalMs` (memberlist's LAN ratios: timeout 1/2, gossip 1/5). */
export function swimTimings(intervalMs: number, fanout: number): Partial<SwimConfig> {
  return {
    probeIntervalMs: intervalMs,
    probeTimeoutMs: Math.max(1, Math.round(intervalMs / 2)),
    gossipIntervalMs: Math.max(1, Math.round(intervalMs / 5)),
    tickIntervalMs: Math.max(1, Math.round(intervalMs / 10)),
    gossipFanout: fanout,
  };
}

/** The node ids a remote cluster state's ring names as owners: known to the ring check, which then judges only its shape. */
function ringNames(state: unknown): string[] {
  const ring = typeof state === 'object' && state !== null ? (state as { ring?: unknown }).ring : undefined;
  if (typeof ring !== 'object' || ring === null) return [];
  const { owners, next } = ring as { owners?: unknown; next?: unknown };
  const names = [...(Array.isArray(owners) ? owners : []), ...(Array.isArray(next) ? next : [])];
  return [...new Set(names.filter(isNodeId))];
}

/** The nodes each ring names (owners and planned owners), computed once per ring. */
const ringNamed = new WeakMap<Ring, ReadonlySet<string>>();

function namedByRing(ring: Ring): ReadonlySet<string> {
  let named = ringNamed.get(ring);
  if (named === undefined) {
    named = new Set([...ring.owners, ...(ring.next ?? [])]);
    ringNamed.set(ring, named);
  }
  return named;
}

/** A SWIM message that travels as a request frame (the others are replies to one of these). */
type SwimRequest = Extract<PeerRequest, SwimMessage>;
/** A SWIM message that travels as a reply frame. */
type SwimReply = Extract<PeerReply, SwimMessage>;

function isSwimReply(message: SwimMessage): message is SwimReply {
  return message.type === 'swim-ack' || message.type === 'swim-nack' || message.type === 'swim-digest-reply';
}

/**
 * Membership by SWIM (src/core/membership/swim.ts, docs/MEMBERSHIP.md): a timer ticks the member
 * every tenth of a protocol period, messages from peers go to `receive`, and the member's
 * effects are carried out: messages sent, members judged down or up (`isUp`), and a peer's newer
 * ring or bucket properties fetched whole (`cluster-state`). A ping, an indirect ping and a digest
 * are requests whose reply frame is the core's answer (ack, relayed ack or nack, digest reply);
 * gossip and records are answered by an empty `swim-done`.
 *
 * Beside membership it keeps the ring and the bucket properties, which travel only as versions in
 * the digests. After each change it asks the claimant (src/engine/claimant.ts) for the ring it
 * wants, and adopts it; other nodes fetch it when their digests show it newer.
 */
export class Gossiper {
  private readonly member: SwimMember;
  private ringState: Ring | null;
  private bucketProperties: Readonly<Record<string, Partial<BucketProperties>>>;
  private bucketPropertiesVersion: number;
  private viewCache: ClusterView | undefined;
  /** The member table's change count the cached view was built at. */
  private viewCacheChanges = -1;
  /** What the claimant last stepped over: the table's change count, the ring and the bucket properties' version. */
  private claimedAt: { changes: number; ring: Ring | null; bucketPropertiesVersion: number } | undefined;
  private readonly task: PeriodicTask;
  private readonly tickIntervalMs: number;
  /** Indirect pings waiting for the relayed ack or nack, by asker and its sequence. */
  private readonly pendingRelays = new Map<string, (reply: PeerReply) => void>();
  private readonly fetching = new Set<string>();
  private lastPersistedRingVersion: number;
  private lastNoticedRingVersion = -1;
  private nextRoundMs: number;
  private nextJoinMs = 0;
  private removalAnnounced = false;
  /** The tail of the view writes (`persist`): each waits for the one before. */
  private persisting: Promise<void> = Promise.resolve();
  /** This node's status while `setOwnStatus` persists it, before it is published. */
  private ownStatusToPersist: 'leaving' | 'left' | undefined;
  private readonly ringChangeListeners: ((ring: Ring) => void)[] = [];
  private readonly removedListeners: (() => void)[] = [];
  /** The cluster state versions last announced (undefined before the first, at construction). */
  private announcedRingVersion: number | undefined;
  private announcedBucketPropertiesVersion = 0;
  /** Bytes of every membership frame this node sent, requests and replies (ringkv_gossip_bytes_sent_total). */
  bytesSent = 0;
  /** Protocol periods run (ringkv_gossip_rounds_total). */
  rounds = 0;
  /** Membership messages handled: requests received and replies read (the per-message work figure's denominator). */
  messagesHandled = 0;
  /** Times the whole view (every member) was built: O(N) each, so per message it must not grow with N (issue 21). */
  viewBuilds = 0;

  constructor(private readonly options: GossiperOptions) {
    const config = swimTimings(options.intervalMs, options.fanout);
    this.tickIntervalMs = config.tickIntervalMs as number;
    this.task = new PeriodicTask(
      options.clock,
      async () => this.tick(),
      (error) => options.logger.warn({ error: String(error) }, 'membership tick failed'),
      () => this.tickIntervalMs,
    );
    const self = options.self;
    const initial = this.loadInitialView(options.initialView);
    let ring = initial?.ring ?? null;
    this.bucketProperties = initial?.bucketProperties ?? {};
    this.bucketPropertiesVersion = initial?.bucketPropertiesVersion ?? 0;
    if (ring === null && options.seeds.length === 0) {
      // Founding a cluster: the ring and the bucket properties start here and spread by gossip.
      ring = createRing(options.partitionCount, [self.id], self.location === undefined ? {} : { [self.id]: self.location });
      this.bucketProperties = options.bucketProperties;
      this.bucketPropertiesVersion = 1;
    }
    this.ringState = ring;
    // A node removed from the cluster stays removed across restarts (see compareSwimRecords); one
    // that left does not start again under its id, and one that was leaving goes on leaving.
    const stored = initial?.members[self.id]?.status;
    if (stored === 'left') throw leftNodeRestarted(self.id);
    const lifecycle: MemberLifecycle =
      stored === 'removed' || stored === 'leaving' ? stored : ring !== null && ringMembers(ring).includes(self.id) ? 'up' : 'joining';
    const now = options.clock.nowMs();
    const known = Object.values(initial?.members ?? {})
      .filter((record) => record.id !== self.id)
      .map((record) => this.swimRecordOf(record));
    this.member = new SwimMember({
      id: self.id,
      address: self.address,
      generation: self.generation,
      lifecycle,
      ...(self.location === undefined ? {} : { location: self.location }),
      random: options.random,
      nowMs: now,
      config,
      members: known,
    });
    // A ring owner (or planned one) held dead is kept, however long: forgetting it would plan it
    // out of the ring unasked; it leaves the ring by `ringkv remove`, and is forgotten after.
    this.member.setRetained((id) => this.ringState !== null && namedByRing(this.ringState).has(id));
    this.syncClusterStateVersions();
    this.lastPersistedRingVersion = initial?.ring?.version ?? -1;
    this.nextRoundMs = now + options.intervalMs;
  }

  /** A persisted member as SWIM starts from it: alive at version 0, so any news of it wins. */
  private swimRecordOf(record: MemberRecord): SwimRecord {
    const state: SwimState = record.status === 'removed' ? 'removed' : 'alive';
    return {
      id: record.id,
      address: record.address,
      generation: record.generation,
      version: 0,
      state,
      lifecycle: record.status,
      accuser: '',
      transfersDoneForRing: record.transfersDoneForRing ?? 0,
      ...(record.location === undefined ? {} : { location: record.location }),
    };
  }

  /** The persisted view, with every part that fails its schema left out and logged. */
  private loadInitialView(stored: unknown): ClusterView | undefined {
    if (stored === undefined) return undefined;
    const { view, problems } = validateView(stored, { partitionCount: undefined, knownMemberIds: [], nowMs: this.options.clock.nowMs() });
    if (problems.length > 0) {
      this.options.logger.error(
        { problems: problems.slice(0, 10) },
        'refused parts of the persisted cluster view; the node starts without them and learns them again from its peers',
      );
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

  /** The current cluster view: every member SWIM knows, with its lifecycle, and the ring and bucket properties. */
  get view(): ClusterView {
    if (this.viewCache !== undefined && this.viewCacheChanges === this.member.changes) return this.viewCache;
    this.viewBuilds++;
    this.viewCacheChanges = this.member.changes;
    const members: Record<string, MemberRecord> = {};
    for (const record of this.member.members) {
      // A placeholder for a seed whose own record has not arrived yet is no member.
      if (record.generation === 0) continue;
      members[record.id] = {
        id: record.id,
        address: record.address,
        generation: record.generation,
        status: record.state === 'removed' ? 'removed' : record.lifecycle,
        ...(record.transfersDoneForRing === 0 ? {} : { transfersDoneForRing: record.transfersDoneForRing }),
        ...(record.location === undefined ? {} : { location: record.location }),
      };
    }
    this.viewCache = { members, ring: this.ringState, bucketProperties: this.bucketProperties, bucketPropertiesVersion: this.bucketPropertiesVersion };
    return this.viewCache;
  }

  /** The current ring, or null before this node has one. */
  get ring(): Ring | null {
    return this.ringState;
  }

  /** Starts ticking; the first tick at once, so a joiner reaches its seeds without waiting. */
  start(): void {
    void this.persistIfRingChanged();
    if (this.member.record.state === 'removed') this.announceRemoval();
    this.task.arm(0);
  }

  /** Stops ticking. */
  stop(): void {
    this.task.stop();
  }

  /** One tick: the member's timers, joining through a seed while no one else is known, and the claimant's step once a round. */
  private tick(): void {
    const now = this.options.clock.nowMs();
    this.carryOut(this.member.tick(now));
    if (now >= this.nextRoundMs) {
      this.rounds++;
      this.nextRoundMs = now + this.options.intervalMs;
    }
    this.joinIfAlone(now);
    this.claimIfClaimant();
    this.afterChange();
  }

  /**
   * A node that knows no other live member (a joiner, or one restarted after the others declared
   * it dead and left), or that has no ring yet, asks a seed for its id and cluster state, then
   * joins through it. Knowing members is not enough while the ring is missing: two joiners that
   * name each other as seeds can meet before either reaches a node with a ring, and would
   * otherwise stay a ring-less pair for good.
   */
  private joinIfAlone(nowMs: number): void {
    if ((this.member.liveMembers > 1 && this.ringState !== null) || nowMs < this.nextJoinMs) return;
    const seeds = this.options.seeds.filter((seed) => seed !== this.options.self.address);
    if (seeds.length === 0) return;
    this.nextJoinMs = nowMs + this.options.intervalMs;
    const seed = seeds[this.options.random.int(seeds.length)] as string;
    void this.fetchClusterState(seed, true);
  }

  /** Handles a SWIM request or a cluster-state request from a peer; the answer is the reply frame. */
  async receive(request: SwimRequest | Extract<PeerRequest, { type: 'cluster-state' }>): Promise<PeerReply> {
    if (request.type === 'cluster-state') {
      return this.counted({
        type: 'cluster-state-reply',
        from: this.options.self.id,
        state: { ring: this.ringState, bucketProperties: this.bucketProperties, bucketPropertiesVersion: this.bucketPropertiesVersion },
      });
    }
    this.messagesHandled++;
    const now = this.options.clock.nowMs();
    const effects = this.member.receive(request, now);
    let reply: PeerReply = { type: 'swim-done' };
    let waitsForRelay: Promise<PeerReply> | undefined;
    if (request.type === 'swim-ping-req') {
      const key = `${request.from}/${request.sequence}`;
      waitsForRelay = new Promise<PeerReply>((resolve) => {
        this.pendingRelays.set(key, resolve);
        // The core nacks by half a probe timeout; this only bounds the wait should it not.
        this.options.clock.setTimer(this.options.intervalMs, () => this.answerRelay(key, { type: 'swim-done' }));
      });
    }
    const rest: SwimEffect[] = [];
    for (const effect of effects) {
      const answersThis =
        effect.kind === 'send' &&
        effect.to === request.from &&
        ((request.type === 'swim-ping' && effect.message.type === 'swim-ack' && effect.message.sequence === request.sequence) ||
          (request.type === 'swim-digest' && effect.message.type === 'swim-digest-reply' && effect.message.sequence === request.sequence));
      if (answersThis) reply = effect.message as SwimReply;
      else rest.push(effect);
    }
    this.carryOut(rest);
    this.afterChange();
    return this.counted(waitsForRelay === undefined ? reply : await waitsForRelay);
  }

  /** Counts a reply this node sends in the gossip bytes. */
  private counted(reply: PeerReply): PeerReply {
    this.bytesSent +=
      reply.type === 'swim-ack' || reply.type === 'swim-nack' || reply.type === 'swim-digest-reply'
        ? swimMessageBytes(reply)
        : frameHeaderBytes + encodeReply(reply).length;
    return reply;
  }

  private answerRelay(key: string, reply: PeerReply): boolean {
    const resolve = this.pendingRelays.get(key);
    if (resolve === undefined) return false;
    this.pendingRelays.delete(key);
    resolve(reply);
    return true;
  }

  /** Carries out the member's effects. */
  private carryOut(effects: readonly SwimEffect[]): void {
    for (const effect of effects) {
      switch (effect.kind) {
        case 'send':
          if (isSwimReply(effect.message)) {
            // A relayed ack or a nack answers the indirect ping it came from; any other reply was answered in receive().
            if (effect.message.type !== 'swim-digest-reply') this.answerRelay(`${effect.to}/${effect.message.sequence}`, effect.message);
          } else this.send(effect.to, effect.message as SwimRequest);
          break;
        case 'member-up':
          break;
        case 'member-down': {
          // Every down judgement this node adopts, with who made it: the evidence a false accusation leaves (test/integration/lifeguard.test.ts counts them).
          const record = this.member.recordOf(effect.id);
          this.options.logger.warn({ member: effect.id, state: record?.state, accuser: record?.accuser }, 'member judged down');
          break;
        }
        case 'cluster-state-behind': {
          const address = this.member.recordOf(effect.peer)?.address;
          if (address !== undefined) void this.fetchClusterState(address, false);
          break;
        }
      }
    }
  }

  private send(to: string, message: SwimRequest): void {
    const address = this.member.recordOf(to)?.address;
    if (address === undefined || to === this.options.self.id) return;
    this.bytesSent += swimMessageBytes(message);
    this.options.transport.request(address, message, { timeoutMs: this.options.intervalMs }).then(
      (reply) => {
        if (reply.type === 'swim-ack' || reply.type === 'swim-nack' || reply.type === 'swim-digest-reply') {
          this.messagesHandled++;
          this.carryOut(this.member.receive(reply, this.options.clock.nowMs()));
          this.afterChange();
        }
      },
      (error: unknown) => this.options.logger.debug({ peer: address, message: message.type, error: String(error) }, 'membership message failed'),
    );
  }

  /** Fetches the ring and bucket properties whole from `address`; when joining, then joins through it. */
  private async fetchClusterState(address: string, join: boolean): Promise<void> {
    if (this.fetching.has(address)) return;
    this.fetching.add(address);
    try {
      const request: PeerRequest = { type: 'cluster-state' };
      this.bytesSent += frameHeaderBytes + encodeRequest(request).length;
      const reply = await this.options.transport.request(address, request, { timeoutMs: this.options.peerTimeoutMs });
      if (reply.type !== 'cluster-state-reply') return;
      this.absorbClusterState(reply.state, address, join);
      // Joins through the seed unless it is a live member already (a joiner that met other joiners first goes on to a seed it did not know).
      const seedIsKnown = this.member.liveMembers > 1 && this.member.stateOf(reply.from) === 'alive';
      if (join && reply.from !== this.options.self.id && !seedIsKnown) this.carryOut(this.member.join({ id: reply.from, address }, this.options.clock.nowMs()));
      this.afterChange();
    } catch (error) {
      this.options.logger.debug({ peer: address, error: String(error) }, join ? 'could not reach a seed' : 'could not fetch the cluster state');
    } finally {
      this.fetching.delete(address);
    }
  }

  /** Adopts a peer's ring when it wins (compareRings) and its bucket properties when newer, after checking them like any peer input. */
  private absorbClusterState(state: unknown, from: string, joining: boolean): void {
    const remote = typeof state === 'object' && state !== null ? { ...state, members: {} } : state;
    const { view, problems } = validateView(remote, {
      partitionCount: this.ringState?.partitionCount,
      // The ring and the members travel apart (a joiner fetches the ring before it has paged in
      // the members), so the ids the ring names count as known; their shape is still checked.
      knownMemberIds: ringNames(remote),
      nowMs: this.options.clock.nowMs(),
    });
    if (problems.length > 0) {
      this.options.logger.warn({ peer: from, joining, problems: problems.slice(0, 10) }, "refused parts of a peer's cluster state; the rest was taken");
    }
    if (view.ring !== null && (this.ringState === null || compareRings(view.ring, this.ringState) > 0)) this.ringState = view.ring;
    if (view.bucketPropertiesVersion > this.bucketPropertiesVersion) {
      this.bucketProperties = view.bucketProperties;
      this.bucketPropertiesVersion = view.bucketPropertiesVersion;
    }
    this.syncClusterStateVersions();
    this.viewCache = undefined;
  }

  private syncClusterStateVersions(): void {
    const ringVersion = this.ringState?.version ?? 0;
    const changed = ringVersion !== this.announcedRingVersion || this.bucketPropertiesVersion !== this.announcedBucketPropertiesVersion;
    this.member.setClusterStateVersions(ringVersion, ringHash(this.ringState), this.bucketPropertiesVersion);
    if (!changed || this.announcedRingVersion === undefined) {
      this.announcedRingVersion = ringVersion;
      this.announcedBucketPropertiesVersion = this.bucketPropertiesVersion;
      return;
    }
    this.announcedRingVersion = ringVersion;
    this.announcedBucketPropertiesVersion = this.bucketPropertiesVersion;
    this.carryOut(this.member.announceClusterState());
  }

  /**
   * After anything changed: this node's promotion to up, its removal, and a new ring acted on.
   * The claimant's step is not here but on the tick (claimIfClaimant): it reads the whole view,
   * and once per tick whatever the messages bound work per message (issue 21).
   */
  private afterChange(): void {
    if (this.member.record.state === 'removed') this.announceRemoval();
    this.promoteSelf();
    this.noticeRingChange();
  }

  /** Logs, once, that this node was removed, persists it, and tells the node to stop serving. */
  private announceRemoval(): void {
    if (this.removalAnnounced) return;
    this.removalAnnounced = true;
    this.options.logger.error(
      { nodeId: this.options.self.id },
      'this node was removed from the cluster (`ringkv remove`) and serves nothing any more: its id can never rejoin. To bring this machine back, stop it, wipe its data directory, and start it again: it joins with a new id',
    );
    void this.persistNow();
    for (const listener of this.removedListeners) listener();
  }

  /** After the ring changed here: persist it and tell handoff. */
  private noticeRingChange(): void {
    const ring = this.ringState;
    if (ring === null || ring.version === this.lastNoticedRingVersion) return;
    this.lastNoticedRingVersion = ring.version;
    void this.persistIfRingChanged();
    for (const listener of this.ringChangeListeners) listener(ring);
  }

  private promoteSelf(): void {
    const ring = this.ringState;
    if (this.ownStatus !== 'joining' || ring === null || !ringMembers(ring).includes(this.options.self.id)) return;
    // Up is no departure: the ring that made this node an owner is persisted as a ring change.
    this.member.publish({ lifecycle: 'up' });
    this.viewCache = undefined;
  }

  /** What this node believes of a member: SWIM's alive, suspect, dead, left or removed (undefined when unknown). */
  stateOf(nodeId: string): SwimState | undefined {
    return this.member.stateOf(nodeId);
  }

  /** Lifeguard's local health score of this node: 0 is healthy. */
  get healthScore(): number {
    return this.member.healthScore;
  }

  /** True when this node believes the member is alive (or suspect, which it may yet refute) and serving. */
  isUp(nodeId: string): boolean {
    if (nodeId === this.options.self.id) return true;
    const record = this.member.recordOf(nodeId);
    if (record === undefined || hasDeparted(record.lifecycle)) return false;
    return record.state === 'alive' || record.state === 'suspect';
  }

  /**
   * True when SWIM holds the member alive, not even suspect: what the claimant plans with, so a
   * receiver or owner under suspicion is planned around at once rather than after its timeout.
   */
  isAlive(nodeId: string): boolean {
    if (nodeId === this.options.self.id) return true;
    const record = this.member.recordOf(nodeId);
    return record !== undefined && record.state === 'alive' && !hasDeparted(record.lifecycle);
  }

  /** SWIM's record of a member (generation 0: a seed's placeholder), without building the view. */
  recordOf(nodeId: string): SwimRecord | undefined {
    return this.member.recordOf(nodeId);
  }

  /** The address of a member. */
  addressOf(nodeId: string): string | undefined {
    return this.member.recordOf(nodeId)?.address;
  }

  /**
   * Marks this node leaving or left: first the view with the new status is persisted (synced),
   * then the status is published, for SWIM to spread and this node's roles to act on. A leave
   * must survive a crash once anyone may have heard of it, and a node that left must not start
   * again under its id (the constructor), so nothing is announced before it is on disk; a write
   * that fails rejects, and the status stays as it was.
   */
  async setOwnStatus(status: 'leaving' | 'left'): Promise<void> {
    this.ownStatusToPersist = status;
    try {
      await this.persist();
    } finally {
      this.ownStatusToPersist = undefined;
    }
    this.member.publish({ lifecycle: status });
    this.viewCache = undefined;
  }

  /** This node's own lifecycle. */
  get ownStatus(): MemberLifecycle {
    const record = this.member.record;
    return record.state === 'removed' ? 'removed' : record.lifecycle;
  }

  /** Records that every partition this node receives in ring `version` has streamed in (the claimant completes the change on it). */
  reportTransfersDone(version: number): void {
    this.member.publish({ transfersDoneForRing: version });
    this.viewCache = undefined;
  }

  /** Marks another member removed for good (`ringkv remove`); the claimant then plans it out of the ring. */
  markRemoved(nodeId: string): void {
    this.carryOut(this.member.remove(nodeId, this.options.clock.nowMs()));
    this.afterChange();
  }

  /**
   * Adopts the ring the claimant wants, when this node is the claimant and something it plans
   * with changed since its last step (a member's record, the ring, the bucket properties): a
   * quiet cluster builds no view, and a node that is not the claimant never builds one here.
   */
  private claimIfClaimant(): void {
    const changes = this.member.changes;
    const last = this.claimedAt;
    if (last !== undefined && last.changes === changes && last.ring === this.ringState && last.bucketPropertiesVersion === this.bucketPropertiesVersion) return;
    this.claimedAt = { changes, ring: this.ringState, bucketPropertiesVersion: this.bucketPropertiesVersion };
    if (!this.options.claimant.isClaimant(this.ringState, (id) => this.isAlive(id))) return;
    const next = this.options.claimant.nextRing(this.view, (id) => this.isAlive(id));
    if (next !== this.ringState) {
      this.ringState = next;
      this.syncClusterStateVersions();
      this.viewCache = undefined;
    }
  }

  /**
   * Writes the view, one write at a time, each with the view as it is when its turn comes (and
   * this node's status about to be published, `setOwnStatus`), so an older view never lands
   * after a newer one.
   */
  private persist(): Promise<void> {
    const write = this.persisting.then(() => this.options.persist(this.viewToPersist()));
    this.persisting = write.catch(() => undefined);
    return write;
  }

  /** The view, with this node's status as `setOwnStatus` is about to publish it. */
  private viewToPersist(): ClusterView {
    const view = this.view;
    const self = view.members[this.options.self.id];
    const status = this.ownStatusToPersist;
    if (status === undefined || self === undefined) return view;
    return { ...view, members: { ...view.members, [self.id]: { ...self, status } } };
  }

  /** Persists the view now (a change other than the ring's, such as this node's removal); a failed write is logged. */
  private async persistNow(): Promise<void> {
    try {
      await this.persist();
    } catch (error) {
      this.options.logger.error({ error: String(error) }, 'could not persist the cluster view');
    }
  }

  private async persistIfRingChanged(): Promise<void> {
    const version = this.ringState?.version ?? -1;
    if (version === this.lastPersistedRingVersion) return;
    this.lastPersistedRingVersion = version;
    await this.persistNow();
  }
}

/**
 * Why a node that left the cluster (`ringkv leave`) does not start again on its data: it would
 * rejoin under its old id, undoing the leave (as a service manager restarting it would).
 * Cassandra refuses a decommissioned node's restart the same way.
 */
function leftNodeRestarted(nodeId: string): KvError {
  return new KvError(
    'KV_CONFLICT',
    `node ${nodeId} left the cluster (\`ringkv leave\`) and does not start again under its id; to bring this machine back, wipe its data directory and start it again: it joins with a new id`,
    // The shard supervisor reads it: a shard that died after it left is not restarted (src/cli/shards.ts).
    { details: { lifecycle: 'left' } },
  );
}
