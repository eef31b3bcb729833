import type { BucketProperties } from '../buckets.js';
/**
 * The randomness gossip needs, declared here so the core imports nothing of the ports
 * (src/ports/random.ts's Random has this shape, and is what the engine hands in).
 */
export interface RandomSource {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, bound). */
  int(bound: number): number;
}
import type { NodeLocation, Ring } from '../ring/ring.js';

/**
 * A member's lifecycle. `joining` until the ring gives it partitions, `up` while it owns some,
 * `leaving` while it hands its partitions off, `left` once it has, `removed` when another node
 * removed it for good. `down` is not a status here: it is each observer's own judgement from
 * SWIM's failure detection (src/core/membership/swim.ts).
 */
export type MemberLifecycle = 'joining' | 'up' | 'leaving' | 'left' | 'removed';

/** True for a member that left or was removed: its id stays out of the ring for good. */
export function hasDeparted(lifecycle: MemberLifecycle | undefined): boolean {
  return lifecycle === 'left' || lifecycle === 'removed';
}

/** One row of the membership table, as the engine's view shows SWIM's record of a member (and as it is persisted). */
export interface MemberRecord {
  readonly id: string;
  readonly address: string;
  /** Larger on every restart, so peers tell a restarted node's records from stale ones. */
  readonly generation: number;
  readonly status: MemberLifecycle;
  /** The ring version whose incoming partitions this member has all streamed in (handoff). */
  readonly transfersDoneForRing?: number;
  /**
   * Where the member runs (`--placement-host`, `--zone`); absent for a host of its own in no zone.
   * The claimant copies it into the ring when the member joins (src/core/ring/ring.ts, locations).
   */
  readonly location?: NodeLocation;
}

/** What a node knows of its cluster: the membership table, the ring, and cluster-wide bucket properties. */
export interface ClusterView {
  readonly members: Readonly<Record<string, MemberRecord>>;
  readonly ring: Ring | null;
  readonly bucketProperties: Readonly<Record<string, Partial<BucketProperties>>>;
  readonly bucketPropertiesVersion: number;
}
