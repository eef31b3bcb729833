import { type CausalContext, readContext } from './context.js';
import { type VersionVector, compare } from './version-vector.js';
import { type VersionedObject, isDeleted } from './versioned-object.js';

/**
 * Conditional writes (HTTP's If-None-Match / If-Match, as Riak offers them). A precondition is
 * checked by the coordinating replica under its key lock, against its own copy merged with what
 * a read of `r` replicas returned. In a leaderless store this is a check, not a lock across
 * replicas: two conditional writes that race on different sides of a partition can both pass
 * and become siblings, exactly as two blind writes would.
 */
export type Precondition =
  /** `If-None-Match: *`: only where no live value exists. */
  | { readonly kind: 'absent' }
  /** `If-Match: <context>`: only where the current version is exactly the one that read context names. */
  | { readonly kind: 'matches'; readonly vector: VersionVector };

/** What a precondition says of the current version: go on with this context, or refuse. */
export type PreconditionVerdict = { readonly ok: true; readonly context: CausalContext } | { readonly ok: false };

/**
 * Checks a precondition against the current merged version (the empty object for a key never
 * written) at `nowMs`, the write's time on the checking replica's clock. An expired value counts
 * as absent, exactly as a read at that moment would answer 404, so a TTL lease taken with
 * If-None-Match can be taken again as soon as it expires, not only once the reaper removed it.
 */
export function checkPrecondition(current: VersionedObject, precondition: Precondition, nowMs: number): PreconditionVerdict {
  if (precondition.kind === 'absent') {
    // Only tombstones, expired values (or nothing) are there: the write supersedes them, so it reads as the one value.
    return isDeleted(current, nowMs) ? { ok: true, context: readContext(current.clock) } : { ok: false };
  }
  return compare(current.clock, precondition.vector) === 'equal' && !isDeleted(current, nowMs)
    ? { ok: true, context: readContext(precondition.vector) }
    : { ok: false };
}
