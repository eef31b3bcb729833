import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { PeriodicTask } from '../../src/engine/periodic-task.js';

/**
 * Goal: `runSoon` acts on a change without waiting out the interval, yet rounds still never
 * overlap: asked during a round, the next round follows right after it.
 */
describe('PeriodicTask.runSoon', () => {
  it('runs a round now when idle, and right after the current one when busy, never two at once', async () => {
    const clock = new VirtualClock(0);
    let running = 0;
    let overlapped = false;
    const started: number[] = [];
    let release: (() => void) | undefined;
    const task = new PeriodicTask(
      clock,
      async () => {
        running += 1;
        if (running > 1) overlapped = true;
        started.push(clock.nowMs());
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        running -= 1;
      },
      () => undefined,
      () => 10_000,
    );
    task.arm(10_000);
    task.runSoon();
    await clock.advance(1);
    expect(started).toEqual([0]);
    // Asked twice while the round runs: one more round, right after it.
    task.runSoon();
    task.runSoon();
    await clock.advance(5);
    expect(started).toEqual([0]);
    release?.();
    await clock.advance(1);
    expect(started.length).toBe(2);
    expect(started[1]).toBeLessThan(100);
    release?.();
    await clock.advance(1000);
    expect(started.length).toBe(2);
    expect(overlapped).toBe(false);
    task.stop();
    task.runSoon();
    await clock.advance(20_000);
    expect(started.length).toBe(2);
  });
});
