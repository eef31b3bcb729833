/**
 * One contract for the Clock port, run against the system clock, the simulation's scheduler
 * (VirtualClock) and a simulated node's skewed clock (NodeClock), so that what the engine
 * relies on of time holds in simulation as it does in production. Nothing here asserts how
 * fast real time goes: the system clock's cases wait a few tens of milliseconds and check
 * order and lower bounds only (a timer never fires early), which no slow machine can break.
 */
import { describe, expect, it } from 'vitest';
import { NodeClock } from '../../src/sim/node-clock.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { systemClock } from '../../src/adapters/system-clock.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import type { Clock } from '../../src/ports/clock.js';

/** A clock whose sleep takes an AbortSignal, as every implementation's does. */
type AbortableClock = Clock & { sleep(delayMs: number, signal?: AbortSignal): Promise<void> };

/** How a contract run gets a clock and waits on it. */
interface ClockHarness {
  create(): { clock: AbortableClock; run<T>(operation: Promise<T>): Promise<T> };
}

/** Waits on a virtual clock: advances it in small steps until the operation settles, for at most a virtual minute. */
function drivenBy(scheduler: VirtualClock): <T>(operation: Promise<T>) => Promise<T> {
  return async <T>(operation: Promise<T>): Promise<T> => {
    let settled = false;
    const tracked = operation.finally(() => {
      settled = true;
    });
    tracked.catch(() => undefined);
    for (let steps = 0; !settled && steps < 6000; steps++) await scheduler.advance(10);
    expect(settled, 'the operation settles within a virtual minute').toBe(true);
    return tracked;
  };
}

/** Time between a timer's due time and the clock's reading when it fires may be short by this much: setTimeout rounds against Date.now, and a drifting clock reads whole milliseconds. */
const roundingMs = 1;

function clockContract(implementation: string, harness: ClockHarness): void {
  describe(`${implementation} keeps the clock port's contract`, () => {
    it('reads whole milliseconds since the epoch, never going back across a timer', async () => {
      const { clock, run } = harness.create();
      const before = clock.nowMs();
      expect(Number.isInteger(before)).toBe(true);
      expect(before).toBeGreaterThan(1_600_000_000_000);
      await run(clock.sleep(5));
      expect(clock.nowMs()).toBeGreaterThanOrEqual(before);
    });

    it('fires timers in the order of their due times, whatever order they were armed in', async () => {
      const { clock, run } = harness.create();
      const fired: number[] = [];
      await run(
        Promise.all(
          [40, 0, 20].map(
            (delayMs) =>
              new Promise<void>((resolve) => {
                clock.setTimer(delayMs, () => {
                  fired.push(delayMs);
                  resolve();
                });
              }),
          ),
        ),
      );
      expect(fired).toEqual([0, 20, 40]);
    });

    it('never fires a timer before its delay has passed on this clock', async () => {
      const { clock, run } = harness.create();
      const before = clock.nowMs();
      const firedAt = await run(new Promise<number>((resolve) => clock.setTimer(30, () => resolve(clock.nowMs()))));
      expect(firedAt - before).toBeGreaterThanOrEqual(30 - roundingMs);
    });

    it('never fires a cancelled timer', async () => {
      const { clock, run } = harness.create();
      let fired = false;
      const handle = clock.setTimer(5, () => {
        fired = true;
      });
      handle.cancel();
      await run(clock.sleep(30));
      expect(fired).toBe(false);
    });

    it('treats a negative delay as zero, and runs a timer armed inside a timer after it', async () => {
      const { clock, run } = harness.create();
      const order: string[] = [];
      await run(
        new Promise<void>((resolve) => {
          clock.setTimer(-10, () => {
            order.push('outer');
            clock.setTimer(0, () => {
              order.push('inner');
              resolve();
            });
          });
        }),
      );
      expect(order).toEqual(['outer', 'inner']);
    });

    it('sleeps at least the delay, and an aborted signal cancels a sleep with its reason', async () => {
      const { clock, run } = harness.create();
      const before = clock.nowMs();
      await run(clock.sleep(20));
      expect(clock.nowMs() - before).toBeGreaterThanOrEqual(20 - roundingMs);
      const controller = new AbortController();
      const sleeping = clock.sleep(60_000, controller.signal);
      controller.abort(new Error('stopped'));
      await expect(run(sleeping)).rejects.toThrow('stopped');
      const aborted = new AbortController();
      aborted.abort(new Error('already stopped'));
      await expect(run(clock.sleep(10, aborted.signal))).rejects.toThrow('already stopped');
    });
  });
}

clockContract('the system clock', { create: () => ({ clock: systemClock, run: (operation) => operation }) });

clockContract('VirtualClock (the simulation scheduler)', {
  create: () => {
    const scheduler = new VirtualClock(1_700_000_000_000, { random: new SeededRandom(7) });
    return { clock: scheduler, run: drivenBy(scheduler) };
  },
});

clockContract('NodeClock (a skewed, drifting node clock)', {
  create: () => {
    const scheduler = new VirtualClock(1_700_000_000_000, { random: new SeededRandom(8) });
    return { clock: new NodeClock(scheduler, { offsetMs: -1500, drift: -1e-4 }), run: drivenBy(scheduler) };
  },
});

describe('NodeClock: a node clock off by an offset and a drift, which a crash stops', () => {
  it('reads the scheduler time plus its offset plus the drift gained since the machine started', async () => {
    const scheduler = new VirtualClock(1_700_000_000_000);
    const fast = new NodeClock(scheduler, { offsetMs: 2000, drift: 1e-3 });
    const slow = new NodeClock(scheduler, { offsetMs: -2000, drift: -1e-3 });
    expect(fast.nowMs() - scheduler.nowMs()).toBe(2000);
    expect(slow.nowMs() - scheduler.nowMs()).toBe(-2000);
    await scheduler.advance(100_000);
    // 100 s of scheduler time: the fast clock gained 100 ms, the slow one lost 100 ms.
    expect(fast.nowMs() - scheduler.nowMs()).toBe(2100);
    expect(slow.nowMs() - scheduler.nowMs()).toBe(-2100);
    // A restarted node's clock reads on from the machine's start, drift included.
    const restarted = new NodeClock(scheduler, { offsetMs: 2000, drift: 1e-3 }, 1_700_000_000_000);
    expect(restarted.nowMs()).toBe(fast.nowMs());
  });

  it("fires a timer after the node's own delay: a fast clock's 10 s timer fires sooner in scheduler time", async () => {
    const scheduler = new VirtualClock(1_700_000_000_000);
    const fast = new NodeClock(scheduler, { offsetMs: 0, drift: 1e-2 });
    let firedAtMs = 0;
    fast.setTimer(10_000, () => {
      firedAtMs = scheduler.nowMs();
    });
    await scheduler.advance(20_000);
    expect(firedAtMs - 1_700_000_000_000).toBe(Math.round(10_000 / 1.01));
  });

  it('once stopped (a crash), fires none of its armed timers and arms no new ones', async () => {
    const scheduler = new VirtualClock(1_700_000_000_000);
    const clock = new NodeClock(scheduler, { offsetMs: 0, drift: 0 });
    const fired: string[] = [];
    clock.setTimer(10, () => fired.push('armed before the crash'));
    let slept = false;
    void clock.sleep(10).then(() => {
      slept = true;
    });
    expect(scheduler.pendingTimers).toBe(2);
    clock.stop();
    expect(scheduler.pendingTimers).toBe(0);
    clock.setTimer(5, () => fired.push('armed after the crash'));
    expect(scheduler.pendingTimers).toBe(0);
    await scheduler.advance(1000);
    expect(fired).toEqual([]);
    expect(slept).toBe(false);
    expect(clock.isStopped).toBe(true);
  });
});
