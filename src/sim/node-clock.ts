/**
 * One simulated node's own clock: a view over the simulation's one scheduler (a VirtualClock)
 * that reads off by a fixed offset and runs a little fast or slow, as a real machine's clock
 * does (NTP keeps real clocks within tens of milliseconds to seconds, and quartz drifts by
 * tens of parts per million). Timers still fire from the shared queue, so the whole cluster
 * stays one seeded schedule. A crash stops the clock: the node's armed timers never fire and
 * new ones are never armed, as nothing of a dead process runs again.
 */
import type { Clock, TimerHandle } from '../ports/clock.js';
import { assert } from '../util/assert.js';
import { abortableSleep } from '../adapters/abortable-sleep.js';
import type { VirtualClock } from './virtual-clock.js';

/** How a node's clock is off. */
export interface ClockError {
  /** How far the node's clock reads ahead of (positive) or behind (negative) the scheduler's time, when the node starts. */
  readonly offsetMs: number;
  /**
   * How much faster (positive) or slower (negative) the node's clock runs: 1e-4 gains 0.1 ms per
   * second of scheduler time, and the node's timer of 1,000 ms fires after 999.9 ms of it.
   */
  readonly drift: number;
}

/** A 32-bit mix of a group's number and a due time (murmur3's finalizer), so ties across nodes fall in the seed's order. */
function tieRankOf(group: number, dueMs: number): number {
  let hash = (group ^ (dueMs % 4_294_967_296) ^ Math.floor(dueMs / 4_294_967_296)) >>> 0;
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b) >>> 0;
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35) >>> 0;
  return (hash ^ (hash >>> 16)) >>> 0;
}

/** A timer that does nothing, for a stopped clock. */
const inertTimer: TimerHandle = { cancel: () => undefined };

/** A node's clock over a shared VirtualClock, with an offset and a drift; `stop()` is the node's crash. */
export class NodeClock implements Clock {
  private readonly armed = new Set<TimerHandle>();
  private readonly startMs: number;
  /** This clock's tie group: its timers due at one instant keep their arming order, and fall among other nodes' events in the seed's order. */
  private readonly tieGroup: number;
  private stopped = false;

  /**
   * `error` is how this machine's clock is off; `startMs` is the scheduler time at which the
   * offset held (the machine's first start), so a restarted node's clock reads on from where the
   * machine's clock was rather than losing the drift gained so far.
   */
  constructor(
    private readonly scheduler: VirtualClock,
    readonly error: ClockError,
    startMs: number = scheduler.nowMs(),
  ) {
    assert(Number.isFinite(error.offsetMs), 'a clock offset is a finite number of milliseconds');
    assert(Number.isFinite(error.drift) && Math.abs(error.drift) < 0.5, 'a clock drift is a small rate such as 1e-4');
    assert(Number.isFinite(startMs), 'a clock starts at a finite time');
    this.startMs = startMs;
    this.tieGroup = scheduler.newTieGroup();
  }

  /**
   * The node's time: the scheduler's plus the offset plus the drift gained since the node
   * started, in whole milliseconds, because timestamps go on the wire and to disk as integers.
   */
  nowMs(): number {
    const schedulerMs = this.scheduler.nowMs();
    return Math.floor(schedulerMs + this.error.offsetMs + this.error.drift * (schedulerMs - this.startMs));
  }

  /** True once the node crashed: its timers are gone. */
  get isStopped(): boolean {
    return this.stopped;
  }

  /** Arms a timer `delayMs` of this node's time from now, which is `delayMs / (1 + drift)` of the scheduler's. */
  setTimer(delayMs: number, callback: () => void, label?: string): TimerHandle {
    assert(!Number.isNaN(delayMs), 'a timer delay is a number');
    if (this.stopped) return inertTimer;
    const schedulerDelayMs = Math.round(Math.max(0, delayMs) / (1 + this.error.drift));
    const dueMs = this.scheduler.nowMs() + schedulerDelayMs;
    const handle = this.scheduler.setTimer(
      schedulerDelayMs,
      () => {
        this.armed.delete(handle);
        callback();
      },
      label,
      tieRankOf(this.tieGroup, dueMs),
    );
    this.armed.add(handle);
    return {
      cancel: () => {
        this.armed.delete(handle);
        handle.cancel();
      },
    };
  }

  /** Resolves after `delayMs` of this node's time; an aborted `signal` cancels it and rejects. */
  sleep(delayMs: number, signal?: AbortSignal): Promise<void> {
    return abortableSleep((ms, callback) => this.setTimer(ms, callback), delayMs, signal);
  }

  /**
   * The node crashed: every armed timer is cancelled and none is armed again, so the work it
   * had waiting on a timer (a retry, a request timeout, a periodic round) never resumes.
   */
  stop(): void {
    this.stopped = true;
    for (const handle of this.armed) handle.cancel();
    this.armed.clear();
  }
}
