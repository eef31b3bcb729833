/** What every checker returns and what checkers know besides the history. */

/** A checker's verdict; each checker adds the counts and examples of what it found. */
export interface CheckerResult {
  readonly valid: boolean;
}

/** What checkers know about the cluster besides the history. */
export interface CheckContext {
  /** Replicas per key: min(n_val, nodes). */
  readonly replicas: number;
  /** How long after a fault ends the cluster is still treated as recovering (failure detection, hint delivery). */
  readonly recoveryMs: number;
}
