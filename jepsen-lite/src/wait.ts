/** Waiting for conditions with deadlines: the harness never trusts a fixed sleep to mean "ready". */

/** Resolves after `delayMs`. */
export function delay(delayMs: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, delayMs));
}

/**
 * Polls `condition` every `pollMs` until it returns a value other than undefined or false, and
 * returns that value; throws an Error naming `what` (and the last error seen) when `deadlineMs` passes.
 */
export async function waitFor<T>(what: string, deadlineMs: number, condition: () => Promise<T | undefined | false>, pollMs = 200): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    await delay(pollMs);
  }
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
}
