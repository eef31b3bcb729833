import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { AssertionError } from '../../src/util/assert.js';

const startMs = 1_700_000_000_000;

describe('VirtualClock moves time only when advanced, firing timers in a fixed order', () => {
  it('stands still until advanced, then reads the target time', async () => {
    const clock = new VirtualClock(startMs);
    expect(clock.nowMs()).toBe(startMs);
    await clock.advance(250);
    expect(clock.nowMs()).toBe(startMs + 250);
  });

  it('fires timers by due time, and timers due at the same instant in the order they were armed', async () => {
    const clock = new VirtualClock(startMs);
    const fired: string[] = [];
    clock.setTimer(30, () => fired.push('c'));
    clock.setTimer(10, () => fired.push('a'));
    clock.setTimer(20, () => fired.push('b1'));
    clock.setTimer(20, () => fired.push('b2'));
    clock.setTimer(20, () => fired.push('b3'));
    await clock.advance(30);
    expect(fired).toEqual(['a', 'b1', 'b2', 'b3', 'c']);
  });

  it('shows each timer its own due time as the current time', async () => {
    const clock = new VirtualClock(startMs);
    const seenMs: number[] = [];
    clock.setTimer(40, () => seenMs.push(clock.nowMs()));
    clock.setTimer(15, () => seenMs.push(clock.nowMs()));
    await clock.advance(100);
    expect(seenMs).toEqual([startMs + 15, startMs + 40]);
  });

  it('does not fire a timer before its due time, and fires it when time reaches it exactly', async () => {
    const clock = new VirtualClock(startMs);
    let fired = 0;
    clock.setTimer(100, () => (fired += 1));
    await clock.advance(99);
    expect(fired).toBe(0);
    await clock.advance(1);
    expect(fired).toBe(1);
    await clock.advance(1000);
    expect(fired).toBe(1);
  });

  it('never fires a cancelled timer, and cancelling twice is harmless', async () => {
    const clock = new VirtualClock(startMs);
    const fired: string[] = [];
    const cancelled = clock.setTimer(10, () => fired.push('cancelled'));
    clock.setTimer(20, () => fired.push('kept'));
    expect(clock.pendingTimers).toBe(2);
    cancelled.cancel();
    cancelled.cancel();
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(50);
    expect(fired).toEqual(['kept']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('lets a timer cancel a later timer that is already due in the same advance', async () => {
    const clock = new VirtualClock(startMs);
    const fired: string[] = [];
    clock.setTimer(10, () => {
      fired.push('first');
      later.cancel();
    });
    const later = clock.setTimer(20, () => fired.push('later'));
    await clock.advance(30);
    expect(fired).toEqual(['first']);
  });

  it('fires timers armed by other timers when they fall inside the window, and keeps later ones armed', async () => {
    const clock = new VirtualClock(startMs);
    const fired: string[] = [];
    clock.setTimer(10, () => {
      fired.push(`outer@${clock.nowMs() - startMs}`);
      clock.setTimer(0, () => fired.push(`zero-delay@${clock.nowMs() - startMs}`));
      clock.setTimer(15, () => fired.push(`inner@${clock.nowMs() - startMs}`));
      clock.setTimer(100, () => fired.push(`beyond@${clock.nowMs() - startMs}`));
    });
    clock.setTimer(20, () => fired.push('sibling@20'));
    await clock.advance(50);
    expect(fired).toEqual(['outer@10', 'zero-delay@10', 'sibling@20', 'inner@25']);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(60);
    expect(fired.at(-1)).toBe('beyond@110');
  });

  it('lets the async work a timer starts finish before the next timer fires', async () => {
    const clock = new VirtualClock(startMs);
    const log: string[] = [];
    clock.setTimer(10, () => {
      void (async () => {
        await Promise.resolve();
        // A macrotask hop, as a storage call or a simulated message would make.
        await new Promise<void>((resolve) => setImmediate(resolve));
        log.push('first timer work done');
      })();
    });
    clock.setTimer(10, () => log.push('second timer fired'));
    await clock.advance(10);
    expect(log).toEqual(['first timer work done', 'second timer fired']);
  });

  it('runs work already under way before firing the first timer', async () => {
    const clock = new VirtualClock(startMs);
    const log: string[] = [];
    void new Promise<void>((resolve) => setImmediate(resolve)).then(() => log.push('pending work'));
    clock.setTimer(0, () => log.push('timer'));
    await clock.advance(0);
    expect(log).toEqual(['pending work', 'timer']);
  });

  it('treats a negative delay as zero, as setTimeout does', async () => {
    const clock = new VirtualClock(startMs);
    let firedAtMs = 0;
    clock.setTimer(-5, () => (firedAtMs = clock.nowMs()));
    await clock.advance(0);
    expect(firedAtMs).toBe(startMs);
  });

  it('resolves sleep() once virtual time has passed, never before', async () => {
    const clock = new VirtualClock(startMs);
    let woke = false;
    void clock.sleep(50).then(() => (woke = true));
    await clock.advance(49);
    expect(woke).toBe(false);
    await clock.advance(1);
    expect(woke).toBe(true);
  });

  it('cancels sleep() through an AbortSignal: it rejects and its timer is disarmed', async () => {
    const clock = new VirtualClock(startMs);
    const controller = new AbortController();
    const sleeping = clock.sleep(50, controller.signal);
    expect(clock.pendingTimers).toBe(1);
    controller.abort(new Error('stopped'));
    await expect(sleeping).rejects.toThrow('stopped');
    expect(clock.pendingTimers).toBe(0);
    await expect(clock.sleep(10, controller.signal)).rejects.toThrow('stopped');
  });

  it('rejects the advance with the error a timer throws', async () => {
    const clock = new VirtualClock(startMs);
    clock.setTimer(5, () => {
      throw new Error('timer bug');
    });
    await expect(clock.advance(10)).rejects.toThrow('timer bug');
    expect(clock.nowMs()).toBe(startMs + 5);
  });

  it('refuses a second advance while one is running, since two would interleave time', async () => {
    const clock = new VirtualClock(startMs);
    clock.setTimer(5, () => {});
    const first = clock.advance(10);
    await expect(clock.advance(10)).rejects.toBeInstanceOf(AssertionError);
    await first;
    expect(clock.nowMs()).toBe(startMs + 10);
  });

  it('gives the same firing order on every run of the same schedule', async () => {
    const run = async (): Promise<string[]> => {
      const clock = new VirtualClock(startMs);
      const fired: string[] = [];
      for (let index = 0; index < 50; index++) {
        const delayMs = (index * 37) % 11;
        clock.setTimer(delayMs, () => {
          fired.push(`${index}@${clock.nowMs() - startMs}`);
          if (index % 3 === 0) clock.setTimer(index % 4, () => fired.push(`child-of-${index}@${clock.nowMs() - startMs}`));
        });
      }
      await clock.advance(20);
      return fired;
    };
    const first = await run();
    expect(first).toHaveLength(50 + 17);
    expect(await run()).toEqual(first);
  });
});
