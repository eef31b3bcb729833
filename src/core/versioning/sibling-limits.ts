import { KvError } from '../../util/errors.js';
import type { CausalContext } from './context.js';
import { type ConflictMode, type VersionedObject, liveSiblings } from './versioned-object.js';

/**
 * Bounds on siblings (Riak's `siblings warning` and `max siblings`): a key whose writers never
 * resolve its siblings grows without end, and every read of it carries them all. Past the
 * warning count a write is logged and counted; at the maximum a write that would add one more
 * without a context (a blind write) is refused, while a write with a context, which resolves
 * what it covers, is always taken.
 */
export interface SiblingLimits {
  readonly siblingsWarn: number;
  readonly maxSiblings: number;
}

/** What the limits say about a write: take it, take it and warn, or refuse it (the error says how to resolve). */
export type SiblingVerdict =
  { readonly kind: 'ok' } | { readonly kind: 'warn'; readonly siblings: number } | { readonly kind: 'refuse'; readonly error: KvError };

function isBlind(context: CausalContext): boolean {
  return Object.keys(context.vector).length === 0 && context.dots.length === 0;
}

/** Judges a write before it is applied (`before`) and after (`after`). */
export function judgeSiblings(
  limits: SiblingLimits,
  mode: ConflictMode,
  before: VersionedObject,
  after: VersionedObject,
  context: CausalContext,
  where: { readonly bucket: string; readonly key: string },
  /** The write's time: siblings expired by then count as tombstones, as a reader would see them. */
  nowMs: number,
): SiblingVerdict {
  if (mode === 'lww') return { kind: 'ok' };
  const existing = liveSiblings(before, nowMs).length;
  if (isBlind(context) && existing >= limits.maxSiblings) {
    return {
      kind: 'refuse',
      error: new KvError(
        'KV_TOO_MANY_SIBLINGS',
        `key '${where.key}' in bucket '${where.bucket}' has ${existing} siblings, at limits.maxSiblings (${limits.maxSiblings}), so a write without a context is refused; read the key, merge its siblings and write the result back with the read's context (RingClient.resolve does this), then blind writes are taken again`,
        { details: { siblings: existing, maxSiblings: limits.maxSiblings } },
      ),
    };
  }
  const siblings = liveSiblings(after, nowMs).length;
  return siblings > limits.siblingsWarn ? { kind: 'warn', siblings } : { kind: 'ok' };
}
