import type { TimerHandle } from '../ports/clock.js';

/**
 * A sleep on any clock's timers that an AbortSignal can cancel: it rejects with the signal's
 * reason and disarms its timer. The system clock and the virtual clock both sleep this way.
 */
export function abortableSleep(setTimer: (delayMs: number, callback: () => void) => TimerHandle, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      handle.cancel();
      reject(signal?.reason);
    };
    const handle = setTimer(delayMs, () => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
