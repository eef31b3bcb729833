import type { Clock, TimerHandle } from '../ports/clock.js';

/**
 * A round of background work repeated on the node's clock: gossip, hint delivery, anti-entropy,
 * handoff. The next round is armed only after the previous one finished, so rounds never
 * overlap however long one takes; a failed round is reported and the next one still comes.
 */
export class PeriodicTask {
  private timer: TimerHandle | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private soon = false;

  constructor(
    private readonly clock: Clock,
    private readonly round: () => Promise<void>,
    private readonly onError: (error: unknown) => void,
    /** The pause before the next round, asked after each one; undefined stops repeating (the task can still be armed again). */
    private readonly nextDelayMs: () => number | undefined,
  ) {}

  /** Arms the next round `delayMs` from now (replacing an armed one), unless stopped. */
  arm(delayMs: number): void {
    if (this.stopped) return;
    this.timer?.cancel();
    this.timer = this.clock.setTimer(delayMs, () => {
      this.timer = undefined;
      // Marked before the round starts, so a runSoon() from inside its synchronous part waits for it.
      this.running = Promise.resolve();
      this.running = this.round()
        .catch(this.onError)
        .finally(() => {
          this.running = undefined;
          if (this.soon) {
            this.soon = false;
            this.arm(0);
            return;
          }
          const next = this.nextDelayMs();
          if (next !== undefined) this.arm(next);
        });
    });
  }

  /**
   * Runs a round as soon as possible: now when idle, else right after the round under way, so
   * rounds still never overlap. Something that changed (a new ring, say) is acted on without
   * waiting out the interval.
   */
  runSoon(): void {
    if (this.stopped) return;
    if (this.running !== undefined) this.soon = true;
    else this.arm(0);
  }

  /** True while a round runs. */
  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Stops arming rounds (a round under way finishes). */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}
