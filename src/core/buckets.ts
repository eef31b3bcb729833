import type { ConflictMode } from './versioning/versioned-object.js';

/** A quorum as configured or asked for: a number of replicas or a symbolic level. */
export type QuorumSetting = number | 'one' | 'quorum' | 'all';

/** The most replicas a key can have (bucketDefaults.nVal's bound), so the largest explicit r, w, pr, pw or dw. */
export const maxNVal = 16;

/** Per-bucket properties (Riak's n_val, r, w, allow_mult/last_write_wins). */
export interface BucketProperties {
  readonly nVal: number;
  readonly r: QuorumSetting;
  readonly w: QuorumSetting;
  readonly conflictMode: ConflictMode;
  /** Seconds a write to the bucket lives when it names no `ttl` of its own; 0 (or absent) for forever. */
  readonly ttlSeconds?: number;
  /**
   * Every operation on the bucket's keys is linearizable: one Paxos round on the key's primaries
   * (docs/CONSENSUS.md). Fixed when the cluster is founded; the plain write path refuses such a bucket.
   */
  readonly consistent?: boolean;
}
