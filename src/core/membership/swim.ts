/**
 * SWIM membership for one member (Das, Gupta and Motivala, "SWIM", 2002), with the Lifeguard
 * refinements (Dadgar et al., 2018) as hashicorp/memberlist implements them (state.go,
 * suspicion.go, awareness.go). Pure: time comes in as `nowMs`, randomness as a RandomSource,
 * and what the member does comes out as effects (messages to send, members judged down or up);
 * the engine (or the simulator) carries them out. docs/MEMBERSHIP.md describes the protocol and
 * its parameters.
 *
 * - Failure detection: every probe interval one member, in a shuffled round-robin order, is
 *   pinged; without an ack within the probe timeout, `indirectChecks` others are asked to ping
 *   it; without any ack by the end of the interval it is suspected. A suspicion is gossiped;
 *   the suspected member refutes it by raising its version (SWIM's incarnation). Otherwise it
 *   is declared dead when its suspicion times out: the timeout starts at
 *   suspicionMaxTimeoutMultiplier times the minimum and falls towards the minimum,
 *   suspicionMultiplier * max(1, log10 N) probe intervals, as independent members confirm it.
 * - Local health (Lifeguard): a score, raised by failed probes that the indirect probers did
 *   not nack, by having to refute, and by finding this member's own timers late (it was
 *   starved of CPU), and lowered by acked probes, stretches this member's probe interval and
 *   timeout. A timer that expired while this member was stalled measured the stall, not the
 *   other member, so it is moved on by the stall: a starved member does not accuse others for
 *   its own pause.
 * - Dissemination: news (records whose state or version changed) is piggybacked on every
 *   ping, ack and indirect probe, and sent every gossip interval to `gossipFanout` members
 *   while there is any, each item retransmitted about retransmitMultiplier * log10(N + 1)
 *   times, fewest-sent first, as much as fits in maxMessageBytes. A digest of a window of
 *   (member, generation, version) entries, one exchange per probe interval with a random
 *   member, repairs what the piggybacking missed; full records travel only for members whose
 *   digest differs, and the ring and bucket properties only as versions. So every message and
 *   every round is bounded in bytes whatever N.
 */
import type { MemberLifecycle, RandomSource } from './membership.js';
import type { NodeLocation } from '../ring/ring.js';
import {
  type SwimDigest,
  type SwimDigestEntry,
  type SwimDigestReply,
  type SwimMessage,
  type SwimRecord,
  type SwimState,
  digestEntryBytes,
  recordBytes,
  swimMessageBytes,
} from './swim-messages.js';
import { BySlot, MemberIdIndex, MemberTable, SlotList } from './member-table.js';

/** Tuning of SWIM. memberlist's DefaultLANConfig is the model; docs/MEMBERSHIP.md says where ringkv differs and why. */
export interface SwimConfig {
  /** Time between probes of this member (SWIM's protocol period, a "round"). */
  readonly probeIntervalMs: number;
  /** Time to wait for a direct ack before asking others to probe. */
  readonly probeTimeoutMs: number;
  /** Members asked to probe indirectly (SWIM's k). */
  readonly indirectChecks: number;
  /** The minimum suspicion timeout is this many probe intervals times max(1, log10 N). */
  readonly suspicionMultiplier: number;
  /** The suspicion timeout without confirmations is this many times the minimum. */
  readonly suspicionMaxTimeoutMultiplier: number;
  /** Each item of news is sent this many times log10(N + 1), rounded up. */
  readonly retransmitMultiplier: number;
  /** Time between gossip messages (only while there is news). */
  readonly gossipIntervalMs: number;
  /** Members each gossip message goes to. */
  readonly gossipFanout: number;
  /** The local health score's ceiling: timeouts stretch by up to this factor. */
  readonly awarenessMax: number;
  /** The cap on every message, frame header included. */
  readonly maxMessageBytes: number;
  /** The most entries in one digest window. */
  readonly digestEntries: number;
  /** How often the engine calls tick(); a tick later than this by more than the probe timeout means this member was stalled. */
  readonly tickIntervalMs: number;
  /**
   * A member held dead, left or removed is forgotten this long after it became so, unless the
   * engine retains it (a ring owner): memberlist's GossipToTheDeadTime, Cassandra's expiry of a
   * removed endpoint's state. docs/MEMBERSHIP.md says why a forgotten member cannot come back.
   */
  readonly forgetDownAfterMs: number;
}

/** memberlist's LAN defaults, except a gossip fanout of 2 (so news stays under ringkv's 16 KiB per member per round) and a 1 KiB message. */
export const defaultSwimConfig: SwimConfig = {
  probeIntervalMs: 1000,
  probeTimeoutMs: 500,
  indirectChecks: 3,
  suspicionMultiplier: 4,
  suspicionMaxTimeoutMultiplier: 6,
  retransmitMultiplier: 4,
  gossipIntervalMs: 200,
  gossipFanout: 2,
  awarenessMax: 8,
  maxMessageBytes: 1024,
  digestEntries: 32,
  tickIntervalMs: 100,
  forgetDownAfterMs: 3_600_000,
};

/** What a member asks its engine to do, or tells it. */
export type SwimEffect =
  | { readonly kind: 'send'; readonly to: string; readonly message: SwimMessage }
  | { readonly kind: 'member-down'; readonly id: string }
  | { readonly kind: 'member-up'; readonly id: string }
  /** `peer` has a newer ring or bucket properties than this member: fetch them whole from it. */
  | { readonly kind: 'cluster-state-behind'; readonly peer: string; readonly ringVersion: number; readonly bucketPropertiesVersion: number };

/** How this member starts. */
export interface SwimMemberOptions {
  readonly id: string;
  readonly address: string;
  readonly generation: number;
  readonly lifecycle: MemberLifecycle;
  /** Where this member runs, spread in its record for the claimant's placement. */
  readonly location?: NodeLocation;
  readonly random: RandomSource;
  readonly nowMs: number;
  readonly config?: Partial<SwimConfig>;
  /** The members it already knows (from its persisted view); a joiner knows none and calls join(). */
  readonly members?: readonly SwimRecord[];
  /** Ids to slots of its member table: the member's own by default; the simulator shares one between all its members. */
  readonly index?: MemberIdIndex;
}

/** A suspicion in progress (memberlist's suspicion.go). */
interface Suspicion {
  startMs: number;
  readonly accusers: Set<string>;
  confirmations: number;
  readonly wantedConfirmations: number;
  readonly minimumMs: number;
  readonly maximumMs: number;
}

/** The probe of this protocol period. */
interface Probe {
  readonly target: string;
  readonly sequence: number;
  sentMs: number;
  readonly timeoutMs: number;
  readonly intervalMs: number;
  indirectSent: boolean;
  expectedNacks: number;
  nacks: number;
}

/** An indirect probe this member runs for another. */
interface Relay {
  readonly origin: string;
  readonly originSequence: number;
  deadlineMs: number;
}

const stateRank: Record<SwimState, number> = { alive: 0, suspect: 1, dead: 2, left: 3, removed: 4 };

/**
 * Orders two records (or digest entries) of one member: a removal first, then generation, then
 * version, then state. A removed member (state `removed`, set by `ringkv remove` on another) is sticky:
 * a removed id never comes back, whatever generation a restart of it brings (Riak never lets a
 * removed node id rejoin; the machine starts over with a new id).
 */
export function compareSwimRecords(left: SwimDigestEntry, right: SwimDigestEntry): number {
  const leftRemoved = left.state === 'removed';
  const rightRemoved = right.state === 'removed';
  if (leftRemoved !== rightRemoved) return leftRemoved ? 1 : -1;
  if (left.generation !== right.generation) return left.generation - right.generation;
  if (left.version !== right.version) return left.version - right.version;
  return stateRank[left.state] - stateRank[right.state];
}

/** The suspicion timeout after `confirmations` of `wanted` (memberlist's remainingSuspicionTime, before elapsed time). */
export function suspicionTimeoutMs(confirmations: number, wanted: number, minimumMs: number, maximumMs: number): number {
  if (wanted < 1) return minimumMs;
  const fraction = Math.log(confirmations + 1) / Math.log(wanted + 1);
  return Math.max(minimumMs, Math.floor(maximumMs - fraction * (maximumMs - minimumMs)));
}

/** One member's SWIM state machine. */
export class SwimMember {
  /** The tuning in force. */
  readonly config: SwimConfig;
  private readonly random: RandomSource;
  private self: SwimRecord;
  /** Every record this member holds, its own included, by slot and in id order. */
  private readonly table: MemberTable;
  /** The suspicions this member times, by slot, in the order they started. */
  private readonly suspicions = new Map<number, Suspicion>();
  private liveCount = 0;
  /** Slots in the order this member probes them. */
  private probeOrder = new SlotList();
  private probeIndex = 0;
  private probe: Probe | undefined;
  private readonly relays = new Map<number, Relay>();
  private sequence = 0;
  private awareness = 0;
  private lastTickMs: number;
  private nextProbeMs: number;
  private nextGossipMs: number;
  private nextDigestMs: number;
  private digestCursor = '';
  private syncPeer: string | undefined;
  /**
   * The news queue (memberlist's TransmitLimitedQueue): the record queued for each member (by
   * slot), and the queued records by how often they were sent (bucket k: sent k times), in two
   * classes: *liveness news* (a member suspected, dead, left or removed, or alive again where it
   * was held otherwise: a refutation, a return) and the rest (a new version of a live member: its
   * lifecycle, its transfers, a join). Liveness news goes out before the rest, fewest-sent first
   * within each class: after churn a queue holds news of every member, thousands of items not yet
   * sent, and a death queued behind them went out once and then waited for them all.
   * An entry of a bucket is live while it is the record `broadcasts` holds for its member; a newer
   * record replaces it there and leaves it behind as a stale entry. No object per item: every
   * member's queue may hold every member's news, N items per member, so the queue is kept to two
   * references each.
   */
  private readonly broadcasts: BySlot<SwimRecord>;
  /** Members with a record in `broadcasts`. */
  private broadcastCount = 0;
  /** The buckets of liveness news, then those of the rest: piggyback empties the first before it takes from the second. */
  private readonly newsClasses: readonly SwimRecord[][][] = [[[]], [[]]];
  /** Entries in the buckets, replaced ones included. */
  private queuedBroadcasts = 0;
  private ringVersion = 0;
  private ringHash = 0;
  private bucketPropertiesVersion = 0;
  private changeCount = 0;
  /** When each member held dead, left or removed became so (this member's time), by slot. */
  private readonly downSince = new Map<number, number>();
  private nextForgetMs: number;
  private retained: (id: string) => boolean = () => false;

  constructor(options: SwimMemberOptions) {
    this.config = { ...defaultSwimConfig, ...options.config };
    this.random = options.random;
    this.self = {
      id: options.id,
      address: options.address,
      generation: options.generation,
      version: 0,
      state: options.lifecycle === 'removed' ? 'removed' : 'alive',
      lifecycle: options.lifecycle,
      accuser: '',
      transfersDoneForRing: 0,
      ...(options.location === undefined ? {} : { location: options.location }),
    };
    this.lastTickMs = options.nowMs;
    const index = options.index ?? new MemberIdIndex();
    this.table = new MemberTable(index);
    this.broadcasts = new BySlot(index);
    this.load(options.members ?? []);
    // Members start at random moments within a period, so their rounds are out of phase.
    this.nextProbeMs = options.nowMs + this.random.int(this.config.probeIntervalMs);
    this.nextGossipMs = options.nowMs + this.random.int(this.config.gossipIntervalMs);
    this.nextDigestMs = options.nowMs + this.random.int(this.config.probeIntervalMs);
    this.nextForgetMs = options.nowMs + this.config.probeIntervalMs;
    // A restarted member announces its new generation.
    this.enqueue(this.self, this.table.slotOf(this.self.id));
  }

  /** This member's id. */
  get id(): string {
    return this.self.id;
  }

  /** Lifeguard's local health score: 0 is healthy; timeouts stretch by score + 1. */
  get healthScore(): number {
    return this.awareness;
  }

  /** Members believed alive or suspect, this one included (the N of the log N rules). */
  get liveMembers(): number {
    return this.liveCount;
  }

  /** How many items of news wait to be sent. */
  get pendingBroadcasts(): number {
    return this.broadcastCount;
  }

  /** Entries held in the news queue, replaced ones included (what its memory grows with). */
  get queuedBroadcastEntries(): number {
    return this.newsClasses.reduce((total, buckets) => buckets.reduce((sum, bucket) => sum + bucket.length, total), 0);
  }

  /** Raised whenever a record this member holds changes (or is forgotten): what a view built from `members` is current for. */
  get changes(): number {
    return this.changeCount;
  }

  /** Every record this member holds, its own included, in the order this member learned of them. */
  get members(): IterableIterator<SwimRecord> {
    return this.table.values();
  }

  /** What this member believes of `id`. */
  recordOf(id: string): SwimRecord | undefined {
    return this.table.get(id);
  }

  /** The state this member believes `id` is in, if it knows it. */
  stateOf(id: string): SwimState | undefined {
    return this.table.get(id)?.state;
  }

  /** Joins through `seed`: pages through its membership, window after window, until one full pass. */
  join(seed: { readonly id: string; readonly address: string }, nowMs: number): SwimEffect[] {
    // A placeholder (generation 0) that the seed's own record replaces as soon as it arrives.
    if (this.table.get(seed.id) === undefined)
      this.store({ id: seed.id, address: seed.address, generation: 0, version: 0, state: 'alive', lifecycle: 'up', accuser: '', transfersDoneForRing: 0 });
    this.syncPeer = seed.id;
    this.digestCursor = '';
    this.nextDigestMs = nowMs + this.config.probeIntervalMs;
    return [this.digestTo(seed.id)];
  }

  /** This member's own record. */
  get record(): SwimRecord {
    return this.self;
  }

  /** Publishes a change of this member's own record (its lifecycle, its finished transfers) at a new version. */
  publish(change: { readonly lifecycle?: MemberLifecycle; readonly transfersDoneForRing?: number }): void {
    if (this.self.state === 'removed') return;
    this.self = { ...this.self, ...change, version: this.self.version + 1 };
    this.enqueue(this.self, this.store(this.self));
  }

  /**
   * Takes `id` out for good (`ringkv remove`): its record becomes `removed`, which beats every
   * record of it, of any generation, and spreads as news.
   */
  remove(id: string, nowMs: number): SwimEffect[] {
    const known = this.table.get(id);
    const effects: SwimEffect[] = [];
    if (known !== undefined && id !== this.self.id) this.apply({ ...known, state: 'removed', lifecycle: 'removed', accuser: this.self.id }, nowMs, effects);
    return effects;
  }

  /** Tells this member the versions (and the ring's hash) of the ring and bucket properties it holds. */
  setClusterStateVersions(ringVersion: number, ringHash: number, bucketPropertiesVersion: number): void {
    this.ringVersion = ringVersion;
    this.ringHash = ringHash;
    this.bucketPropertiesVersion = bucketPropertiesVersion;
  }

  /**
   * Digests to `gossipFanout` random members now: the engine calls it when its ring or bucket
   * properties changed, so the others see the new versions (and fetch them) within a round trip,
   * and each that fetches announces in turn: an epidemic, not one digest a round.
   */
  announceClusterState(): SwimEffect[] {
    return this.randomMembers(this.config.gossipFanout, undefined).map((to) => this.digestTo(to));
  }

  /** Members the engine needs kept even when they are down long (the ring's owners: forgetting one would plan it out unasked). */
  setRetained(retained: (id: string) => boolean): void {
    this.retained = retained;
  }

  /** Members held down and not forgotten yet (what the table holds beyond the live ones). */
  get downMembers(): number {
    return this.downSince.size;
  }

  /** Runs the timers due at `nowMs`; the engine calls it every tickIntervalMs. */
  tick(nowMs: number): SwimEffect[] {
    const effects: SwimEffect[] = [];
    const stallMs = nowMs - this.lastTickMs - this.config.tickIntervalMs;
    this.lastTickMs = nowMs;
    if (stallMs > this.config.probeTimeoutMs) this.stalled(stallMs);
    this.runProbe(nowMs, effects);
    this.runRelays(nowMs, effects);
    this.runSuspicions(nowMs, effects);
    if (nowMs >= this.nextForgetMs) {
      this.nextForgetMs = nowMs + this.config.probeIntervalMs;
      this.forgetLongDown(nowMs);
    }
    if (nowMs >= this.nextGossipMs) {
      this.nextGossipMs = nowMs + this.config.gossipIntervalMs;
      if (this.broadcastCount > 0) {
        for (const to of this.randomMembers(this.config.gossipFanout, undefined, true)) {
          const updates = this.piggyback({ type: 'swim-gossip', from: this.self.id, updates: [] });
          if (updates.length > 0) effects.push({ kind: 'send', to, message: { type: 'swim-gossip', from: this.self.id, updates } });
        }
      }
    }
    if (nowMs >= this.nextDigestMs) {
      this.nextDigestMs = nowMs + this.scaled(this.config.probeIntervalMs);
      // A joiner whose paging stalled (a reply lost) asks its seed again; everyone else picks a
      // random member, and now and then one it holds dead (Serf's reconnect): after a partition
      // heals, each side holds the other dead and probes none of it, and this exchange is what
      // lets them hear of each other again (the one held dead refutes at the digest's answer).
      const dead = this.random.int(4) === 0 ? this.randomDeadMember() : undefined;
      const to = this.syncPeer ?? dead ?? this.randomMembers(1, undefined)[0];
      if (to !== undefined) effects.push(this.digestTo(to));
    }
    return effects;
  }

  /** Handles one message that arrived at `nowMs`. */
  receive(message: SwimMessage, nowMs: number): SwimEffect[] {
    const effects: SwimEffect[] = [];
    switch (message.type) {
      case 'swim-ping':
        this.applyAll(message.updates, nowMs, effects);
        // A ping meant for a member that used to have this address is not answered for it.
        if (message.target !== this.self.id) break;
        effects.push({ kind: 'send', to: message.from, message: this.answerPing(message.sequence, message.from) });
        break;
      case 'swim-ack': {
        this.applyAll(message.updates, nowMs, effects);
        if (this.probe !== undefined && this.probe.sequence === message.sequence) {
          this.probe = undefined;
          this.changeAwareness(-1);
          break;
        }
        const relay = this.relays.get(message.sequence);
        if (relay !== undefined) {
          this.relays.delete(message.sequence);
          effects.push({ kind: 'send', to: relay.origin, message: { type: 'swim-ack', sequence: relay.originSequence, from: this.self.id, updates: [] } });
        }
        break;
      }
      case 'swim-ping-req': {
        this.applyAll(message.updates, nowMs, effects);
        const sequence = ++this.sequence;
        // Lifeguard's nack: this member answers before the asker's window closes, so a missing nack says the asker (not the target) is slow.
        this.relays.set(sequence, { origin: message.from, originSequence: message.sequence, deadlineMs: nowMs + this.config.probeTimeoutMs / 2 });
        effects.push({
          kind: 'send',
          to: message.target,
          message: this.withNews({ type: 'swim-ping', sequence, from: this.self.id, target: message.target, updates: [] }),
        });
        break;
      }
      case 'swim-nack':
        if (this.probe !== undefined && this.probe.sequence === message.sequence) this.probe.nacks++;
        break;
      case 'swim-gossip':
        this.applyAll(message.updates, nowMs, effects);
        break;
      case 'swim-digest':
        this.noteClusterState(message.from, message.ringVersion, message.ringHash, message.bucketPropertiesVersion, effects);
        effects.push({ kind: 'send', to: message.from, message: this.answerDigest(message) });
        break;
      case 'swim-digest-reply':
        this.noteClusterState(message.from, message.ringVersion, message.ringHash, message.bucketPropertiesVersion, effects);
        this.applyAll(message.records, nowMs, effects);
        this.onDigestReply(message, effects);
        break;
      case 'swim-records':
        this.applyAll(message.records, nowMs, effects);
        break;
    }
    return effects;
  }

  /**
   * The ack to a ping. A member that pings us while we hold it suspect or dead is alive after
   * all: its ack carries our record of it first, so it refutes at once instead of waiting for
   * the news or a digest to reach it.
   */
  private answerPing(sequence: number, from: string): SwimMessage {
    const record = this.table.get(from);
    const accusation = record !== undefined && record.state !== 'alive' && record.state !== 'left' ? [record] : [];
    const ack: SwimMessage = { type: 'swim-ack', sequence, from: this.self.id, updates: accusation };
    return { ...ack, updates: [...accusation, ...this.piggyback(ack).filter((update) => update !== record)] };
  }

  private scaled(intervalMs: number): number {
    return intervalMs * (this.awareness + 1);
  }

  private changeAwareness(delta: number): void {
    this.awareness = Math.max(0, Math.min(this.config.awarenessMax - 1, this.awareness + delta));
  }

  /**
   * This member's own timers fired `stallMs` late: it was paused (starved of CPU, a long GC, a
   * SIGSTOP). What it was timing ran on while it could not hear the answers, so every deadline
   * moves on by the stall, and its health score rises so its next probes wait longer.
   */
  private stalled(stallMs: number): void {
    this.changeAwareness(1);
    if (this.probe !== undefined) this.probe.sentMs += stallMs;
    for (const suspicion of this.suspicions.values()) suspicion.startMs += stallMs;
    for (const relay of this.relays.values()) relay.deadlineMs += stallMs;
  }

  private runProbe(nowMs: number, effects: SwimEffect[]): void {
    const probe = this.probe;
    if (probe !== undefined) {
      if (!probe.indirectSent && nowMs >= probe.sentMs + probe.timeoutMs) {
        probe.indirectSent = true;
        for (const to of this.randomMembers(this.config.indirectChecks, probe.target)) {
          effects.push({
            kind: 'send',
            to,
            message: this.withNews({ type: 'swim-ping-req', sequence: probe.sequence, from: this.self.id, target: probe.target, updates: [] }),
          });
          probe.expectedNacks++;
        }
      } else if (nowMs >= probe.sentMs + probe.intervalMs) {
        this.probe = undefined;
        // Lifeguard: indirect probers that did not even nack point at this member's own trouble.
        this.changeAwareness(probe.expectedNacks > 0 ? probe.expectedNacks - probe.nacks : 1);
        const record = this.table.get(probe.target);
        // A member already suspect gets this member's confirmation (memberlist's suspectNode), which shortens its timeout.
        if (record !== undefined && (record.state === 'alive' || record.state === 'suspect'))
          this.apply({ ...record, state: 'suspect', accuser: this.self.id }, nowMs, effects);
      }
    }
    if (this.probe === undefined && nowMs >= this.nextProbeMs) {
      this.nextProbeMs = nowMs + this.scaled(this.config.probeIntervalMs);
      const target = this.nextProbeTarget();
      if (target === undefined) return;
      const sequence = ++this.sequence;
      this.probe = {
        target,
        sequence,
        sentMs: nowMs,
        timeoutMs: this.scaled(this.config.probeTimeoutMs),
        intervalMs: this.scaled(this.config.probeIntervalMs),
        indirectSent: false,
        expectedNacks: 0,
        nacks: 0,
      };
      // A suspect member is told so on every ping, whether or not the news is still being spread, so it can refute (memberlist's probeNode).
      const record = this.table.get(target);
      const accusation = record?.state === 'suspect' ? [record] : [];
      const ping: SwimMessage = { type: 'swim-ping', sequence, from: this.self.id, target, updates: accusation };
      effects.push({ kind: 'send', to: target, message: { ...ping, updates: [...accusation, ...this.piggyback(ping).filter((update) => update !== record)] } });
    }
  }

  private runRelays(nowMs: number, effects: SwimEffect[]): void {
    for (const [sequence, relay] of this.relays) {
      if (nowMs < relay.deadlineMs) continue;
      this.relays.delete(sequence);
      effects.push({ kind: 'send', to: relay.origin, message: { type: 'swim-nack', sequence: relay.originSequence, from: this.self.id } });
    }
  }

  private runSuspicions(nowMs: number, effects: SwimEffect[]): void {
    for (const [slot, suspicion] of this.suspicions) {
      const timeoutMs = suspicionTimeoutMs(suspicion.confirmations, suspicion.wantedConfirmations, suspicion.minimumMs, suspicion.maximumMs);
      if (nowMs < suspicion.startMs + timeoutMs) continue;
      const record = this.table.atSlot(slot);
      if (record !== undefined) this.apply({ ...record, state: 'dead', accuser: this.self.id }, nowMs, effects);
    }
  }

  /** The next member to probe: memberlist's shuffled round robin, skipping the dead and this member. */
  private nextProbeTarget(): string | undefined {
    for (let checked = 0; checked <= this.probeOrder.length; checked++) {
      if (this.probeIndex >= this.probeOrder.length) {
        this.probeOrder = this.shuffled(this.table.slotsInIdOrder());
        this.probeIndex = 0;
      }
      if (this.probeIndex >= this.probeOrder.length) return undefined;
      const record = this.table.atSlot(this.probeOrder.at(this.probeIndex++)) as SwimRecord;
      if (record.id !== this.self.id && (record.state === 'alive' || record.state === 'suspect')) return record.id;
    }
    return undefined;
  }

  /** `slots` shuffled in place (Fisher-Yates), as a list. */
  private shuffled(slots: Int32Array): SlotList {
    for (let index = slots.length - 1; index > 0; index--) {
      const other = this.random.int(index + 1);
      const swapped = slots[index] as number;
      slots[index] = slots[other] as number;
      slots[other] = swapped;
    }
    return SlotList.of(slots);
  }

  /**
   * Up to `count` distinct random members other than this one and `except`: alive ones to probe
   * for this member, alive or suspect ones to gossip to (memberlist gossips to suspects, so the
   * suspected member hears of it and can refute).
   */
  private randomMembers(count: number, except: string | undefined, suspectsToo = false): string[] {
    const chosen: string[] = [];
    const wanted = Math.min(count, this.liveCount - 1 - (except === undefined ? 0 : 1));
    for (let tries = 0; chosen.length < wanted && tries < 8 * count + 16; tries++) {
      const record = this.table.atSlot(this.table.slotAtRank(this.random.int(this.table.size))) as SwimRecord;
      const id = record.id;
      const state = record.state;
      if (id === this.self.id || id === except || chosen.includes(id) || !(state === 'alive' || (suspectsToo && state === 'suspect'))) continue;
      chosen.push(id);
    }
    return chosen;
  }

  /**
   * Fills the table at construction with this member's own record and the `members` it knows:
   * sorted once and shuffled once, where storing them one by one would splice each into the
   * sorted ids and the probe order (O(N) each, O(N²) per member: hours for a simulated cluster
   * of 10,000, whose every member starts knowing all the others).
   */
  private load(members: readonly SwimRecord[]): void {
    this.table.load([this.self, ...members]);
    this.liveCount = this.self.state === 'alive' ? 1 : 0;
    for (let rank = 0; rank < this.table.size; rank++) {
      const slot = this.table.slotAtRank(rank);
      const record = this.table.atSlot(slot) as SwimRecord;
      if (record.id === this.self.id) continue;
      if (record.state === 'alive' || record.state === 'suspect') this.liveCount++;
      else this.downSince.set(slot, this.lastTickMs);
    }
    this.changeCount++;
    this.probeOrder = this.shuffled(this.table.slotsInIdOrder());
  }

  /**
   * Puts a record in the table, keeping the probe order, the live count and the down members:
   * answers its slot. `slot` is the record's slot here when the caller has looked it up already.
   */
  private store(record: SwimRecord, slot = this.table.slotOf(record.id)): number {
    const previous = slot >= 0 ? this.table.atSlot(slot) : undefined;
    if (slot >= 0) this.table.replace(slot, record);
    else {
      slot = this.table.add(record);
      // memberlist puts a new member at a random place of the probe order, so it is probed within one pass.
      this.probeOrder.insert(this.random.int(this.probeOrder.length + 1), slot);
    }
    this.changeCount++;
    if (record.state === 'alive' || record.state === 'suspect' || record.id === this.self.id) this.downSince.delete(slot);
    else if (!this.downSince.has(slot)) this.downSince.set(slot, this.lastTickMs);
    const live = (state: SwimState | undefined): boolean => state === 'alive' || state === 'suspect';
    this.liveCount += (live(record.state) ? 1 : 0) - (live(previous?.state) ? 1 : 0);
    return slot;
  }

  /**
   * Forgets the members held dead, left or removed for forgetDownAfterMs (the engine's retained
   * ones excepted), so the table holds the live members and the recent departures, not every
   * member there ever was. News of a member this one does not know that says it is dead, left or
   * removed is not taken (apply, answerDigest), so two members cannot teach each other a
   * forgotten member for ever.
   */
  private forgetLongDown(nowMs: number): void {
    for (const [slot, sinceMs] of this.downSince) {
      const id = (this.table.atSlot(slot) as SwimRecord).id;
      if (nowMs - sinceMs < this.config.forgetDownAfterMs || this.retained(id)) continue;
      this.downSince.delete(slot);
      this.changeCount++;
      const order = this.probeOrder.indexOf(slot);
      if (order >= 0) {
        this.probeOrder.removeAt(order);
        if (order < this.probeIndex) this.probeIndex--;
      }
      if (this.broadcasts.get(slot) !== undefined) {
        this.broadcasts.set(slot, undefined);
        this.broadcastCount--;
      }
      this.suspicions.delete(slot);
      if (this.syncPeer === id) this.syncPeer = undefined;
      // Last: the index may give the slot to another id from here on.
      this.table.delete(id);
    }
  }

  /** A member held dead (not left or removed), at random, or undefined when there is none (a few tries). */
  private randomDeadMember(): string | undefined {
    if (this.table.size <= this.liveCount) return undefined;
    for (let tries = 0; tries < 8; tries++) {
      const record = this.table.atSlot(this.table.slotAtRank(this.random.int(this.table.size))) as SwimRecord;
      if (record.state === 'dead') return record.id;
    }
    return undefined;
  }

  private applyAll(records: readonly SwimRecord[], nowMs: number, effects: SwimEffect[]): void {
    for (const record of records) this.apply(record, nowMs, effects);
  }

  /** Merges one record of news (SWIM's alive / suspect / dead rules, memberlist's aliveNode, suspectNode, deadNode). */
  private apply(update: SwimRecord, nowMs: number, effects: SwimEffect[]): void {
    if (update.id === this.self.id) {
      this.applyAboutSelf(update);
      return;
    }
    const slot = this.table.slotOf(update.id);
    const known = slot >= 0 ? this.table.atSlot(slot) : undefined;
    // A removal is final; and it beats every other record, whatever its generation or version.
    if (known?.state === 'removed') return;
    // memberlist's deadNode: news that an unknown member is gone is not taken (it was forgotten
    // here, or never known), so a forgotten member is not learned again from one that still holds it.
    if (known === undefined && update.state !== 'alive' && update.state !== 'suspect') return;
    if (known !== undefined && update.state !== 'removed') {
      if (update.generation < known.generation) return;
      if (update.generation === known.generation) {
        if (update.version < known.version) return;
        if (update.state === 'alive' && update.version === known.version) return;
        if (known.state === 'dead' || known.state === 'left') {
          // Only the member itself brings a dead member back, with a newer version.
          if (update.state !== 'alive') return;
        } else if (update.state === 'suspect' && known.state === 'suspect' && update.version === known.version) {
          this.confirm(update, slot);
          return;
        }
      }
    }
    const stored = this.store(update, slot);
    this.suspicions.delete(stored);
    if (update.state === 'suspect') this.suspect(stored, update, nowMs);
    const wasLive = known !== undefined && (known.state === 'alive' || known.state === 'suspect');
    const isLive = update.state === 'alive' || update.state === 'suspect';
    if (isLive && !wasLive) effects.push({ kind: 'member-up', id: update.id });
    if (!isLive && (wasLive || known === undefined)) effects.push({ kind: 'member-down', id: update.id });
    this.enqueue(update, stored, update.state !== 'alive' || (known !== undefined && known.state !== 'alive'));
  }

  /** News about this member: a suspicion or death at its current version is refuted with a newer one (SWIM's incarnation rule). */
  private applyAboutSelf(update: SwimRecord): void {
    if (this.self.state === 'removed') return;
    if (update.state === 'removed') {
      // Another member removed this one for good (`ringkv remove`): it accepts that, and says so.
      this.self = { ...this.self, state: 'removed', lifecycle: 'removed' };
      this.enqueue(this.self, this.store(this.self), true);
      return;
    }
    if (update.generation !== this.self.generation || update.version < this.self.version) return;
    if (update.state === 'alive' && update.version === this.self.version) return;
    this.self = { ...this.self, version: update.version + 1 };
    // A refutation is liveness news: it has to outrun the suspicion's timeout at every member.
    this.enqueue(this.self, this.store(this.self), true);
    // Lifeguard: being suspected hints that this member is the slow one.
    this.changeAwareness(1);
  }

  /** Starts the suspicion timer of `update.id`, in `slot` (memberlist's suspectNode). */
  private suspect(slot: number, update: SwimRecord, nowMs: number): void {
    const members = this.liveCount;
    // memberlist wants suspicionMultiplier - 2 confirmations, none when too few members could give them.
    const wanted = members - 2 < this.config.suspicionMultiplier - 2 ? 0 : this.config.suspicionMultiplier - 2;
    const minimumMs = this.config.suspicionMultiplier * Math.max(1, Math.log10(Math.max(1, members))) * this.config.probeIntervalMs;
    this.suspicions.set(slot, {
      startMs: nowMs,
      accusers: new Set([update.accuser]),
      confirmations: 0,
      wantedConfirmations: wanted,
      minimumMs,
      maximumMs: this.config.suspicionMaxTimeoutMultiplier * minimumMs,
    });
  }

  /** Another member independently suspects `update.id`: the timeout shrinks (Lifeguard), and the news travels on. */
  private confirm(update: SwimRecord, slot: number): void {
    const suspicion = this.suspicions.get(slot);
    if (suspicion === undefined || suspicion.confirmations >= suspicion.wantedConfirmations || suspicion.accusers.has(update.accuser)) return;
    suspicion.accusers.add(update.accuser);
    suspicion.confirmations++;
    this.enqueue(update, slot, true);
  }

  /** The slot of `record` while it is the news queued for its member, else -1 (a stale entry of a bucket). */
  private queuedSlotOf(record: SwimRecord): number {
    const slot = this.table.index.slotOf(record.id);
    return slot >= 0 && this.broadcasts.get(slot) === record ? slot : -1;
  }

  /**
   * Queues `record` as news of the member in `slot` (held in the table), in place of any older
   * news of it; `liveness` news (a member suspected, dead, left or removed, or alive again) goes
   * out before the rest.
   */
  private enqueue(record: SwimRecord, slot: number, liveness = false): void {
    const queued = this.broadcasts.get(slot);
    // The same record already queued (possible only where records are shared objects, as in the simulator) is news already on its way.
    if (queued === record) return;
    if (queued === undefined) this.broadcastCount++;
    this.broadcasts.set(slot, record);
    ((this.newsClasses[liveness ? 0 : 1] as SwimRecord[][])[0] as SwimRecord[]).push(record);
    // Replaced news stays in its bucket until reached; under steady churn the oldest is never
    // reached (newest goes first), so the buckets are swept once they hold twice the live news.
    if (++this.queuedBroadcasts > 2 * this.broadcastCount + 64) {
      for (const buckets of this.newsClasses) {
        for (let sends = 0; sends < buckets.length; sends++) buckets[sends] = (buckets[sends] as SwimRecord[]).filter((entry) => this.queuedSlotOf(entry) >= 0);
      }
      this.queuedBroadcasts = this.broadcastCount;
    }
  }

  /**
   * The news that fits beside `message` under maxMessageBytes: liveness news first, then the rest,
   * fewest-sent and newest first within each; each item counts one more send.
   */
  private piggyback(message: SwimMessage): SwimRecord[] {
    // The list's count grows from one byte to two past 127 items; the message counted one, one more is kept.
    let budget = this.config.maxMessageBytes - swimMessageBytes(message) - 1;
    const limit = this.config.retransmitMultiplier * Math.ceil(Math.log10(this.liveCount + 1));
    const taken: SwimRecord[] = [];
    /** How often each taken record had been sent (the bucket it came from), its class's buckets and its slot. */
    const takenSends: number[] = [];
    const takenClasses: SwimRecord[][][] = [];
    const takenSlots: number[] = [];
    taking: for (const buckets of this.newsClasses) {
      for (let sends = 0; sends < buckets.length; sends++) {
        const bucket = buckets[sends] as SwimRecord[];
        while (bucket.length > 0) {
          const record = bucket[bucket.length - 1] as SwimRecord;
          const slot = this.queuedSlotOf(record);
          if (slot < 0) {
            bucket.pop();
            this.queuedBroadcasts--;
            continue;
          }
          const bytes = recordBytes(record);
          if (bytes > budget) break taking;
          bucket.pop();
          budget -= bytes;
          taken.push(record);
          takenSends.push(sends + 1);
          takenClasses.push(buckets);
          takenSlots.push(slot);
        }
      }
    }
    taken.forEach((record, index) => {
      const sends = takenSends[index] as number;
      if (sends < limit) {
        const buckets = takenClasses[index] as SwimRecord[][];
        while (buckets.length <= sends) buckets.push([]);
        (buckets[sends] as SwimRecord[]).push(record);
      } else {
        this.queuedBroadcasts--;
        this.broadcasts.set(takenSlots[index] as number, undefined);
        this.broadcastCount--;
      }
    });
    return taken;
  }

  private withNews<T extends SwimMessage & { readonly updates: readonly SwimRecord[] }>(message: T): T {
    return { ...message, updates: this.piggyback(message) };
  }

  private noteClusterState(peer: string, ringVersion: number, ringHash: number, bucketPropertiesVersion: number, effects: SwimEffect[]): void {
    const ringDiffers = ringVersion > this.ringVersion || (ringVersion === this.ringVersion && ringHash !== this.ringHash);
    if (ringDiffers || bucketPropertiesVersion > this.bucketPropertiesVersion) {
      effects.push({ kind: 'cluster-state-behind', peer, ringVersion, bucketPropertiesVersion });
    }
  }

  /** A digest of the window after the cursor, as many entries as fit. */
  private digestTo(to: string): SwimEffect {
    const base: SwimDigest = {
      type: 'swim-digest',
      sequence: ++this.sequence,
      from: this.self.id,
      afterId: this.digestCursor,
      throughId: '',
      ringVersion: this.ringVersion,
      ringHash: this.ringHash,
      bucketPropertiesVersion: this.bucketPropertiesVersion,
      entries: [],
    };
    // The through id is at most as long as the longest id in the window; counted once more for it.
    let budget = this.config.maxMessageBytes - swimMessageBytes(base) - 1;
    const entries: SwimDigestEntry[] = [];
    let rank = this.table.rankAfter(this.digestCursor);
    for (; rank < this.table.size && entries.length < this.config.digestEntries; rank++) {
      const record = this.table.atSlot(this.table.slotAtRank(rank)) as SwimRecord;
      const entry: SwimDigestEntry = { id: record.id, generation: record.generation, version: record.version, state: record.state };
      const bytes = digestEntryBytes(entry) + Buffer.byteLength(record.id) + 1;
      if (bytes > budget) break;
      budget -= digestEntryBytes(entry);
      entries.push(entry);
    }
    const throughId = rank < this.table.size ? (entries[entries.length - 1]?.id ?? '') : '';
    return { kind: 'send', to, message: { ...base, throughId, entries } };
  }

  /**
   * The records of the digest's window that its sender lacks or has older, and the ids whose
   * sender's record is newer. The window is walked in id order only as far as the answer has
   * room: a window open to the end (a joiner paging from '') is not read, nor sorted, whole.
   */
  private answerDigest(digest: SwimDigest): SwimDigestReply {
    const wanted: string[] = [];
    const named = new Map<string, SwimDigestEntry>();
    for (const entry of digest.entries) {
      named.set(entry.id, entry);
      const mine = this.table.get(entry.id);
      // A member this one does not know and the sender holds gone is not asked for (apply would not take it).
      if (mine === undefined && entry.state !== 'alive' && entry.state !== 'suspect') continue;
      if (mine === undefined || compareSwimRecords(mine, entry) < 0) wanted.push(entry.id);
    }
    const base: SwimDigestReply = {
      type: 'swim-digest-reply',
      sequence: digest.sequence,
      from: this.self.id,
      coveredThroughId: digest.throughId,
      ringVersion: this.ringVersion,
      ringHash: this.ringHash,
      bucketPropertiesVersion: this.bucketPropertiesVersion,
      records: [],
      wanted: [],
    };
    let budget = this.config.maxMessageBytes - swimMessageBytes(base) - 2;
    // Wanted ids take at most a quarter of the message; the rest is for records.
    let wantedBudget = budget / 4;
    const keptWanted: string[] = [];
    for (const id of wanted) {
      const bytes = Buffer.byteLength(id) + 1;
      if (bytes > wantedBudget) break;
      wantedBudget -= bytes;
      budget -= bytes;
      keptWanted.push(id);
    }
    const records: SwimRecord[] = [];
    for (let rank = this.table.rankAfter(digest.afterId); rank < this.table.size; rank++) {
      const record = this.table.atSlot(this.table.slotAtRank(rank)) as SwimRecord;
      if (digest.throughId !== '' && record.id > digest.throughId) break;
      const entry = named.get(record.id);
      if (entry !== undefined && compareSwimRecords(record, entry) <= 0) continue;
      const bytes = recordBytes(record) + Buffer.byteLength(record.id) + 1;
      if (bytes > budget) {
        // Cut short: the sender's next window starts after the last record sent.
        return { ...base, coveredThroughId: records[records.length - 1]?.id ?? digest.afterId, records, wanted: keptWanted };
      }
      budget -= recordBytes(record);
      records.push(record);
    }
    return { ...base, records, wanted: keptWanted };
  }

  private onDigestReply(reply: SwimDigestReply, effects: SwimEffect[]): void {
    const records: SwimRecord[] = [];
    let budget = this.config.maxMessageBytes - swimMessageBytes({ type: 'swim-records', from: this.self.id, records: [] }) - 2;
    for (const id of reply.wanted) {
      const record = this.table.get(id);
      if (record === undefined || recordBytes(record) > budget) continue;
      budget -= recordBytes(record);
      records.push(record);
    }
    if (records.length > 0) effects.push({ kind: 'send', to: reply.from, message: { type: 'swim-records', from: this.self.id, records } });
    this.digestCursor = reply.coveredThroughId;
    if (this.syncPeer !== reply.from) return;
    if (this.digestCursor === '') this.syncPeer = undefined;
    // A joiner pages on at once: it knows nobody until the pass is done.
    else effects.push(this.digestTo(reply.from));
  }
}
