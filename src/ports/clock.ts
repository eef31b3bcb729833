/** A handle that cancels a timer. */
export interface TimerHandle {
  cancel(): void;
}

/** Time, real or virtual. The engine never calls Date.now() or setTimeout directly. */
export interface Clock {
  /** Milliseconds since the epoch (virtual time in simulation). */
  nowMs(): number;
  /** Runs `callback` once after `delayMs`. */
  setTimer(delayMs: number, callback: () => void): TimerHandle;
  /** Resolves after `delayMs`. */
  sleep(delayMs: number): Promise<void>;
}
