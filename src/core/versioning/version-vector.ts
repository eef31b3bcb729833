/**
 * Version vectors keyed by node id (server-side ids, as Riak 2.0 and Dynamo do), so their
 * size is bounded by the nodes that ever coordinated a write to the key, not by clients.
 */

/** A version vector: node id -> the highest event counter seen from that node. */
export type VersionVector = Readonly<Record<string, number>>;

/** How two version vectors relate. */
export type Ordering = 'before' | 'after' | 'equal' | 'concurrent';

/** The empty version vector. */
export const emptyVector: VersionVector = Object.freeze({});

/** The counter of `node` in `vector` (0 when absent). */
export function counterOf(vector: VersionVector, node: string): number {
  return vector[node] ?? 0;
}

/** A copy of `vector` with `node`'s counter raised by one. */
export function increment(vector: VersionVector, node: string): VersionVector {
  return { ...vector, [node]: counterOf(vector, node) + 1 };
}

/** The pointwise maximum of two vectors (their least upper bound). */
export function merge(left: VersionVector, right: VersionVector): VersionVector {
  const result: Record<string, number> = { ...left };
  for (const [node, counter] of Object.entries(right)) {
    if (counter > (result[node] ?? 0)) result[node] = counter;
  }
  return sortVector(result);
}

/** True when every counter of `left` is at most the same counter of `right`. */
export function descends(right: VersionVector, left: VersionVector): boolean {
  for (const [node, counter] of Object.entries(left)) {
    if (counter > counterOf(right, node)) return false;
  }
  return true;
}

/** Compares `left` to `right`: 'before' means `right` has seen everything `left` has and more. */
export function compare(left: VersionVector, right: VersionVector): Ordering {
  const leftLeq = descends(right, left);
  const rightLeq = descends(left, right);
  if (leftLeq && rightLeq) return 'equal';
  if (leftLeq) return 'before';
  if (rightLeq) return 'after';
  return 'concurrent';
}

/** The same vector with keys in a fixed order, so equal vectors encode to equal bytes. */
export function sortVector(vector: Record<string, number>): VersionVector {
  const sorted: Record<string, number> = {};
  for (const node of Object.keys(vector).sort()) {
    const counter = vector[node] ?? 0;
    if (counter > 0) sorted[node] = counter;
  }
  return sorted;
}
