/**
 * Real time for a running node. Timers are not unref()'d: the gossip and hint timers are the
 * work of a server, and keeping the process alive while they are armed is what it should do.
 */
import type { Clock, TimerHandle } from '../ports/clock.js';
import { abortableSleep } from './abortable-sleep.js';

/** Node's setTimeout fires at once for delays above 2^31-1 ms, so longer delays are waited in steps of this size. */
const longestNodeDelayMs = 2_147_483_647;

/** Arms a timer, waiting in steps when the delay is longer than Node allows in one. */
function armTimer(delayMs: number, callback: () => void): TimerHandle {
  let remainingMs = Math.max(0, delayMs);
  let timer: NodeJS.Timeout;
  const arm = (): void => {
    const stepMs = Math.min(remainingMs, longestNodeDelayMs);
    timer = setTimeout(() => {
      remainingMs -= stepMs;
      if (remainingMs > 0) arm();
      else callback();
    }, stepMs);
  };
  arm();
  return { cancel: () => clearTimeout(timer) };
}

/** The system clock: Date.now() and setTimeout. `sleep` takes an optional AbortSignal that cancels it. */
export const systemClock: Clock & { sleep(delayMs: number, signal?: AbortSignal): Promise<void> } = {
  nowMs: () => Date.now(),
  setTimer: armTimer,
  sleep: (delayMs: number, signal?: AbortSignal): Promise<void> => abortableSleep(armTimer, delayMs, signal),
};
