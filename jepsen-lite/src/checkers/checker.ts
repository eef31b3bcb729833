/** What every checker returns and what checkers know besides the history. */

/** A checker's verdict; each checker adds the counts and examples of what it found. */
export interface CheckerResult {
  readonly valid: boolean;
  /**
   * Set when the checker saw nothing to judge (no acknowledged write, no checked read, no key
   * compared): such a run is invalid, since "no violation found" would mean nothing.
   */
  readonly nothingTested?: string;
  /**
   * The linearizability checkers' verdict in a word: `unknown` when a search ran out of its
   * budget (then `valid` is false: unknown is never valid).
   */
  readonly verdict?: 'valid' | 'invalid' | 'unknown';
}

/**
 * The first of `checks` whose condition holds, as "nothing was tested: <why>", or undefined when
 * the checker had something to judge. A checker that saw nothing must never call a run valid.
 */
export function nothingTested(checks: readonly (readonly [empty: boolean, why: string])[]): string | undefined {
  const found = checks.find(([empty]) => empty);
  return found === undefined ? undefined : `nothing was tested: ${found[1]}`;
}

/** What checkers know about the cluster besides the history. */
export interface CheckContext {
  /** Replicas per key: min(n_val, nodes). */
  readonly replicas: number;
  /** How long after a fault ends the cluster is still treated as recovering (failure detection, hint delivery). */
  readonly recoveryMs: number;
  /** The workload's bucket: consistent (linearizable, with fencing tokens) or plain (the default). */
  readonly bucketMode?: 'consistent' | 'plain';
}
