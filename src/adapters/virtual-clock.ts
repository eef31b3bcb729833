/**
 * Virtual time for simulation: time stands still until a test advances it, and timers fire in
 * a fixed order, so a whole cluster run replays exactly from its seed and never sleeps.
 */
import type { Clock, TimerHandle } from '../ports/clock.js';
import { assert } from '../util/assert.js';
import { abortableSleep } from './abortable-sleep.js';

/** One armed timer. */
interface VirtualTimer {
  readonly dueMs: number;
  /** Arming order, which breaks ties between timers due at the same instant. */
  readonly sequence: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/** True when `left` fires before `right`: earlier due time first, then earlier arming. */
function firesBefore(left: VirtualTimer, right: VirtualTimer): boolean {
  return left.dueMs < right.dueMs || (left.dueMs === right.dueMs && left.sequence < right.sequence);
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

/** A clock whose time moves only through `advance()`. */
export class VirtualClock implements Clock {
  private currentMs: number;
  private nextSequence = 0;
  private armedCount = 0;
  private advancing = false;
  private readonly heap = new TimerHeap();

  /**
   * Starts at `startMs`. `settleTurns` is how many event-loop turns run after each timer so
   * that the promise chains it started (storage calls, messages) get as far as they can
   * before the next timer; memory-level yields a turn every 500 keys of a range delete.
   */
  constructor(
    startMs: number,
    private readonly settleTurns = 10,
  ) {
    assert(Number.isFinite(startMs), 'a virtual clock starts at a finite time');
    assert(Number.isInteger(settleTurns) && settleTurns >= 1, 'settleTurns is a positive integer');
    this.currentMs = startMs;
  }

  /** The virtual time in milliseconds. */
  nowMs(): number {
    return this.currentMs;
  }

  /** How many timers are armed and not cancelled. */
  get pendingTimers(): number {
    return this.armedCount;
  }

  /** Arms a timer `delayMs` from now (negative delays count as zero, as with setTimeout). */
  setTimer(delayMs: number, callback: () => void): TimerHandle {
    assert(!Number.isNaN(delayMs), 'a timer delay is a number');
    const timer: VirtualTimer = {
      dueMs: this.currentMs + Math.max(0, delayMs),
      sequence: this.nextSequence++,
      callback,
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
   * arming order), including timers armed while advancing. Time reads as each timer's due
   * time while it runs, and the async work it starts settles before the next one fires. A
   * timer callback that throws stops the advance and rejects it with that error.
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
        assert(firedAtThisInstant <= maxTimersAtOneInstant, `more than ${maxTimersAtOneInstant} timers fired at virtual time ${timer.dueMs}: a timer keeps re-arming itself with no delay`);
        this.currentMs = timer.dueMs;
        timer.cancelled = true;
        this.armedCount -= 1;
        timer.callback();
        await this.settle();
      }
      this.currentMs = targetMs;
    } finally {
      this.advancing = false;
    }
  }

  /** Lets pending promise callbacks and the macrotasks they queue run for a few event-loop turns. */
  private async settle(): Promise<void> {
    for (let turn = 0; turn < this.settleTurns; turn++) await new Promise<void>((resolve) => setImmediate(resolve));
  }
}
