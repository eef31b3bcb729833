/**
 * Virtual time for simulation, and the simulation's one scheduler: time stands still until a
 * test advances it; every timer and every simulated message delivery is an event in one queue,
 * fired in due-time order; events due at the same instant are ordered by the seed; and after
 * each event the work it started runs until nothing is left to run before the next event
 * fires. So the interleaving of a run comes from the seed alone, not from how many event-loop
 * turns a library happens to take, and a whole cluster run replays exactly from its seed.
 */
import type { Clock, TimerHandle } from '../ports/clock.js';
import type { Random } from '../ports/random.js';
import { assert } from '../util/assert.js';
import { abortableSleep } from '../adapters/abortable-sleep.js';

/** One armed timer. */
interface VirtualTimer {
  readonly dueMs: number;
  /** A draw from the seed that orders timers due at the same instant (0 without a seed). */
  readonly rank: number;
  /** Arming order, which breaks the remaining ties, so the order is total. */
  readonly sequence: number;
  readonly callback: () => void;
  /** What the event is, for the trace. */
  readonly label: string | undefined;
  cancelled: boolean;
}

/** True when `left` fires before `right`: earlier due time first, then the seed's order, then earlier arming. */
function firesBefore(left: VirtualTimer, right: VirtualTimer): boolean {
  if (left.dueMs !== right.dueMs) return left.dueMs < right.dueMs;
  if (left.rank !== right.rank) return left.rank < right.rank;
  return left.sequence < right.sequence;
}

/** A binary min-heap of timers, so that arming and firing stay cheap with thousands of request timeouts armed. */
class TimerHeap {
  private readonly timers: VirtualTimer[] = [];

  peek(): VirtualTimer | undefined {
    return this.timers[0];
  }

  push(timer: VirtualTimer): void {
    const timers = this.timers;
    timers.push(timer);
    let index = timers.length - 1;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (!firesBefore(timers[index]!, timers[parent]!)) break;
      [timers[index], timers[parent]] = [timers[parent]!, timers[index]!];
      index = parent;
    }
  }

  pop(): VirtualTimer | undefined {
    const timers = this.timers;
    const first = timers[0];
    const last = timers.pop();
    if (first === undefined || last === undefined || timers.length === 0) return first;
    timers[0] = last;
    let index = 0;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < timers.length && firesBefore(timers[left]!, timers[smallest]!)) smallest = left;
      if (right < timers.length && firesBefore(timers[right]!, timers[smallest]!)) smallest = right;
      if (smallest === index) return first;
      [timers[index], timers[smallest]] = [timers[smallest]!, timers[index]!];
      index = smallest;
    }
  }
}

/** Timers firing at one instant beyond this count mean a timer re-arms itself with no delay forever: a bug, not a workload. */
const maxTimersAtOneInstant = 100_000;

/**
 * Event-loop turns one settle may take at most. Work that still queues macrotasks after this
 * many turns never goes quiet (something re-queues itself forever), which is a bug to report.
 */
const maxSettleTurns = 1_000_000;

/** Trace entries kept at most, so a long traced run cannot grow without bound. */
const maxTraceEntries = 1_000_000;

/** How a virtual clock orders events and what it records. */
export interface VirtualClockOptions {
  /**
   * The seed's say in ordering events due at the same instant. Without it such events fire in
   * the order they were armed, which is what unit tests of one component want.
   */
  readonly random?: Random;
}

/** The number of macrotasks (setImmediate callbacks) queued in this process and not yet run. */
function pendingImmediates(): number {
  let count = 0;
  for (const resource of process.getActiveResourcesInfo()) if (resource === 'Immediate') count += 1;
  return count;
}

/** A clock whose time moves only through `advance()`. */
export class VirtualClock implements Clock {
  private currentMs: number;
  private nextSequence = 0;
  private armedCount = 0;
  private advancing = false;
  private readonly heap = new TimerHeap();
  private readonly random: Random | undefined;
  private traceEntries: string[] | undefined;
  /** Events fired since the clock was made, for tests and figures. */
  eventsFired = 0;

  /** Starts at `startMs`; `options.random` (a seeded PRNG in simulation) orders events due at the same instant. */
  constructor(startMs: number, options: VirtualClockOptions = {}) {
    assert(Number.isFinite(startMs), 'a virtual clock starts at a finite time');
    this.currentMs = startMs;
    this.random = options.random;
  }

  /**
   * Starts recording every event fired from now on as 'time label' (labelled events only:
   * message deliveries name their sender, receiver and type), and answers the record, which
   * grows as the run goes on. Two runs of one seed give equal records.
   */
  startTrace(): readonly string[] {
    this.traceEntries = [];
    return this.traceEntries;
  }

  /** Adds a line to the trace, when one is recording (a simulated network notes drops and crashes here). */
  note(line: string): void {
    if (this.traceEntries !== undefined && this.traceEntries.length < maxTraceEntries) this.traceEntries.push(`${this.currentMs} ${line}`);
  }

  /** The virtual time in milliseconds. */
  nowMs(): number {
    return this.currentMs;
  }

  /** How many timers are armed and not cancelled. */
  get pendingTimers(): number {
    return this.armedCount;
  }

  /**
   * A number from the seed for a new group of timers whose ties keep their arming order (one
   * node's clock); see `setTimer`'s `tieRank`.
   */
  newTieGroup(): number {
    return this.random === undefined ? 0 : this.random.int(4_294_967_296);
  }

  /**
   * Arms a timer `delayMs` from now (negative delays count as zero, as with setTimeout). A
   * `label` puts the event in the trace when it fires. Among events due at the same instant the
   * seed decides the order: each event draws its own rank, unless `tieRank` gives it one.
   * Timers that share a rank keep their arming order, which is how one node's own timers
   * behave: a timer armed later never fires before an earlier one of the same due time.
   */
  setTimer(delayMs: number, callback: () => void, label?: string, tieRank?: number): TimerHandle {
    assert(!Number.isNaN(delayMs), 'a timer delay is a number');
    const timer: VirtualTimer = {
      dueMs: this.currentMs + Math.max(0, delayMs),
      rank: this.random === undefined ? 0 : (tieRank ?? this.random.int(4_294_967_296)),
      sequence: this.nextSequence++,
      callback,
      label,
      cancelled: false,
    };
    this.heap.push(timer);
    this.armedCount += 1;
    return {
      cancel: () => {
        if (timer.cancelled) return;
        // Cancelled timers stay in the heap and are skipped when they come up, which keeps cancel O(1).
        timer.cancelled = true;
        this.armedCount -= 1;
      },
    };
  }

  /** Resolves once virtual time has moved `delayMs` forward; an aborted `signal` cancels it and rejects. */
  sleep(delayMs: number, signal?: AbortSignal): Promise<void> {
    return abortableSleep((ms, callback) => this.setTimer(ms, callback), delayMs, signal);
  }

  /**
   * Moves time forward by `durationMs`, firing every timer due in the window in (due time,
   * seed's order, arming order), including timers armed while advancing. Time reads as each
   * timer's due time while it runs, and the async work it starts runs until it waits on a
   * later event before the next one fires. A timer callback that throws stops the advance and
   * rejects it with that error.
   */
  async advance(durationMs: number): Promise<void> {
    assert(Number.isFinite(durationMs) && durationMs >= 0, 'advance() takes a finite, non-negative duration');
    assert(!this.advancing, 'advance() was called while another advance() was still running');
    this.advancing = true;
    try {
      const targetMs = this.currentMs + durationMs;
      // Work already under way runs first: in virtual time it takes no time at all.
      await this.settle();
      let firedAtThisInstant = 0;
      for (let timer = this.heap.peek(); timer !== undefined && timer.dueMs <= targetMs; timer = this.heap.peek()) {
        this.heap.pop();
        if (timer.cancelled) continue;
        firedAtThisInstant = timer.dueMs === this.currentMs ? firedAtThisInstant + 1 : 1;
        assert(
          firedAtThisInstant <= maxTimersAtOneInstant,
          `more than ${maxTimersAtOneInstant} timers fired at virtual time ${timer.dueMs}: a timer keeps re-arming itself with no delay`,
        );
        this.currentMs = timer.dueMs;
        timer.cancelled = true;
        this.armedCount -= 1;
        this.eventsFired += 1;
        if (timer.label !== undefined) this.note(timer.label);
        timer.callback();
        await this.settle();
      }
      this.currentMs = targetMs;
    } finally {
      this.advancing = false;
    }
  }

  /**
   * Runs the work under way until it is quiet: until, at the start of a macrotask, no other
   * macrotask is queued. The microtask queue is always empty at that point, so every promise
   * chain the last event started has either finished or waits on a later event (a timer or a
   * message delivery), whatever number of turns its libraries took to get there. In simulation
   * nothing else feeds the event loop: memory storage and the simulated network do no I/O.
   * Quiet is process-wide, so advance one VirtualClock at a time: two advancing at once would
   * each wait on the other's work. Time does not move and no timer fires. With `until`, it also
   * stops at the first turn where `until()` holds, leaving the rest of the work under way.
   */
  settle(until?: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let turns = 0;
      const check = (): void => {
        if (pendingImmediates() === 0 || until?.() === true) {
          resolve();
          return;
        }
        turns += 1;
        if (turns > maxSettleTurns) {
          reject(
            new Error(
              `work started at virtual time ${this.currentMs} was still queueing macrotasks after ${maxSettleTurns} turns: something re-queues itself forever`,
            ),
          );
          return;
        }
        setImmediate(check);
      };
      setImmediate(check);
    });
  }
}
