/**
 * A simulated cluster of SWIM members (src/core/membership/swim.ts) in virtual time: each member
 * ticks every tickIntervalMs from its own phase, messages take a seeded 1-5 ms and are counted
 * in the bytes the framed wire would carry (swimMessageBytes). Members can be killed (they stop
 * at once: nothing sent to them is answered) and paused (a starved event loop: nothing runs
 * until it resumes; then its late timers fire first and the messages that waited for it are
 * handled after, as Node's event loop runs timers before I/O). Every "member down" judgement of
 * a member that was not killed is kept as a false down.
 *
 * It is lighter than SimCluster (no storage, no engine): it is what lets 1,000 members run in
 * one process for the gossip-scale bench (bench/gossip-scale.ts) and the membership simulation
 * tests (test/sim/swim-membership.sim.test.ts). A seed replays a run exactly.
 */
import { MemberIdIndex } from '../core/membership/member-table.js';
import { type SwimConfig, type SwimEffect, SwimMember, defaultSwimConfig } from '../core/membership/swim.js';
import { type SwimMessage, type SwimRecord, swimMessageBytes } from '../core/membership/swim-messages.js';
import { SeededRandom } from './seeded-random.js';

/** One scheduled event. */
interface Scheduled {
  readonly atMs: number;
  readonly order: number;
  readonly run: () => void;
}

/** A binary min-heap of events by time, then by the order they were scheduled in. */
class EventQueue {
  private readonly heap: Scheduled[] = [];
  private order = 0;

  get size(): number {
    return this.heap.length;
  }

  push(atMs: number, run: () => void): void {
    const heap = this.heap;
    heap.push({ atMs, order: this.order++, run });
    let index = heap.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!this.before(heap[index] as Scheduled, heap[parent] as Scheduled)) break;
      [heap[index], heap[parent]] = [heap[parent] as Scheduled, heap[index] as Scheduled];
      index = parent;
    }
  }

  peekMs(): number | undefined {
    return this.heap[0]?.atMs;
  }

  pop(): Scheduled | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < heap.length && this.before(heap[left] as Scheduled, heap[smallest] as Scheduled)) smallest = left;
      if (right < heap.length && this.before(heap[right] as Scheduled, heap[smallest] as Scheduled)) smallest = right;
      if (smallest === index) return top;
      [heap[index], heap[smallest]] = [heap[smallest] as Scheduled, heap[index] as Scheduled];
      index = smallest;
    }
  }

  private before(left: Scheduled, right: Scheduled): boolean {
    return left.atMs < right.atMs || (left.atMs === right.atMs && left.order < right.order);
  }
}

/** A member of the simulated cluster and what the simulation does to it. */
interface SimulatedMember {
  readonly member: SwimMember;
  killed: boolean;
  pausedUntilMs: number;
}

/** A member judged down that was not killed. */
export interface FalseDown {
  readonly observer: string;
  readonly member: string;
  readonly atMs: number;
}

/** How a simulated cluster is made. */
export interface SwimClusterOptions {
  readonly seed: number;
  /** Members at the start, all knowing each other (as from their persisted views). */
  readonly members: number;
  readonly config?: Partial<SwimConfig>;
  /** The chance that a message is lost (0 by default). */
  readonly dropRate?: number;
}

/** The id of the index-th simulated member. */
export function simulatedMemberId(index: number): string {
  return `n${index}`;
}

function addressOf(index: number): string {
  return `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:7000`;
}

/** SWIM members on a simulated network in virtual time. */
export class SwimCluster {
  /** Virtual time, ms. */
  nowMs = 1_700_000_000_000;
  /** Bytes of every message sent, frame headers included. */
  bytesSent = 0;
  /** The largest message sent. */
  maxMessageBytes = 0;
  /** Messages sent (lost ones too). */
  messagesSent = 0;
  /** Events run (ticks, deliveries, scheduled actions), for a long run's progress line. */
  eventsRun = 0;
  /** Judgements "down" of members that were not killed. */
  readonly falseDowns: FalseDown[] = [];
  private readonly random: SeededRandom;
  private readonly queue = new EventQueue();
  private readonly byId = new Map<string, SimulatedMember>();
  /** One id index for every member's table: a lookup is one small table that stays in the caches, not one per member. */
  private readonly index = new MemberIdIndex();
  private readonly config: SwimConfig;
  private readonly dropRate: number;
  private nextIndex = 0;

  constructor(readonly options: SwimClusterOptions) {
    this.random = new SeededRandom(options.seed);
    this.config = { ...defaultSwimConfig, ...options.config };
    this.dropRate = options.dropRate ?? 0;
    const records: SwimRecord[] = Array.from({ length: options.members }, (_, index) => ({
      id: simulatedMemberId(index),
      address: addressOf(index),
      generation: 1,
      version: 0,
      state: 'alive',
      lifecycle: 'up',
      accuser: '',
      transfersDoneForRing: 0,
    }));
    for (let index = 0; index < options.members; index++) this.boot(records);
  }

  /** Every member, killed ones too. */
  get memberIds(): string[] {
    return [...this.byId.keys()];
  }

  /** The members not killed. */
  get liveIds(): string[] {
    return [...this.byId].filter(([, simulated]) => !simulated.killed).map(([id]) => id);
  }

  /** The state machine of `id`. */
  member(id: string): SwimMember {
    const simulated = this.byId.get(id);
    if (simulated === undefined) throw new Error(`no simulated member ${id}`);
    return simulated.member;
  }

  /** A new member (knowing nobody) that joins through `seedId`; answers its id. */
  join(seedId: string): string {
    const simulated = this.boot([]);
    const seed = this.member(seedId);
    this.carryOut(simulated, simulated.member.join({ id: seed.id, address: seed.recordOf(seed.id)?.address ?? '' }, this.nowMs));
    return simulated.member.id;
  }

  /** Stops `id` at once, as kill -9 does. */
  kill(id: string): void {
    const simulated = this.byId.get(id);
    if (simulated !== undefined) simulated.killed = true;
  }

  /** Freezes `id` for `durationMs` (a starved or SIGSTOPped process). */
  pause(id: string, durationMs: number): void {
    const simulated = this.byId.get(id);
    if (simulated !== undefined) simulated.pausedUntilMs = Math.max(simulated.pausedUntilMs, this.nowMs + durationMs);
  }

  /** Is `id` paused now? */
  isPaused(id: string): boolean {
    return (this.byId.get(id)?.pausedUntilMs ?? 0) > this.nowMs;
  }

  /** Runs `action` at `atMs` of virtual time. */
  at(atMs: number, action: () => void): void {
    this.queue.push(Math.max(atMs, this.nowMs), action);
  }

  /** Runs every event up to `durationMs` from now. */
  runFor(durationMs: number): void {
    const endMs = this.nowMs + durationMs;
    for (;;) {
      const nextMs = this.queue.peekMs();
      if (nextMs === undefined || nextMs > endMs) break;
      const event = this.queue.pop() as Scheduled;
      this.nowMs = event.atMs;
      this.eventsRun++;
      event.run();
    }
    this.nowMs = endMs;
  }

  /** Runs until `goal` holds (checked every `stepMs`), answering the virtual time it took; fails after `limitMs` with what `describe` says. */
  runUntil(goal: () => boolean, limitMs: number, describe: () => string, stepMs = 100): number {
    const startMs = this.nowMs;
    while (!goal()) {
      if (this.nowMs - startMs >= limitMs) throw new Error(`seed ${this.options.seed}: not reached within ${limitMs} ms of virtual time: ${describe()}`);
      this.runFor(stepMs);
    }
    return this.nowMs - startMs;
  }

  private boot(records: readonly SwimRecord[]): SimulatedMember {
    const index = this.nextIndex++;
    const member = new SwimMember({
      id: simulatedMemberId(index),
      address: addressOf(index),
      generation: 1,
      lifecycle: 'up',
      random: this.random.fork(),
      nowMs: this.nowMs,
      config: this.config,
      members: records,
      index: this.index,
    });
    const simulated: SimulatedMember = { member, killed: false, pausedUntilMs: 0 };
    this.byId.set(member.id, simulated);
    this.queue.push(this.nowMs + this.random.int(this.config.tickIntervalMs), () => this.tick(simulated));
    return simulated;
  }

  private tick(simulated: SimulatedMember): void {
    if (simulated.killed) return;
    if (simulated.pausedUntilMs > this.nowMs) {
      this.queue.push(simulated.pausedUntilMs, () => this.tick(simulated));
      return;
    }
    this.carryOut(simulated, simulated.member.tick(this.nowMs));
    this.queue.push(this.nowMs + this.config.tickIntervalMs, () => this.tick(simulated));
  }

  private deliver(to: SimulatedMember, message: SwimMessage): void {
    if (to.killed) return;
    // A paused process reads its socket after its overdue timers have run.
    if (to.pausedUntilMs > this.nowMs) {
      this.queue.push(to.pausedUntilMs + 1, () => this.deliver(to, message));
      return;
    }
    this.carryOut(to, to.member.receive(message, this.nowMs));
  }

  private carryOut(from: SimulatedMember, effects: readonly SwimEffect[]): void {
    for (const effect of effects) {
      if (effect.kind === 'member-down') {
        if (this.byId.get(effect.id)?.killed === false) this.falseDowns.push({ observer: from.member.id, member: effect.id, atMs: this.nowMs });
        continue;
      }
      if (effect.kind !== 'send') continue;
      const bytes = swimMessageBytes(effect.message);
      this.bytesSent += bytes;
      this.messagesSent++;
      if (bytes > this.maxMessageBytes) this.maxMessageBytes = bytes;
      const to = this.byId.get(effect.to);
      if (to === undefined || this.random.next() < this.dropRate) continue;
      this.queue.push(this.nowMs + 1 + this.random.int(5), () => this.deliver(to, effect.message));
    }
  }
}
