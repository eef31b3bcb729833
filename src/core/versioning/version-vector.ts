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

/**
 * A new, empty vector to fill. A vector's keys are actor names, and each key epoch is an actor
 * of its own (src/core/versioning/key-actor.ts), so almost every stored key's vector names an
 * actor no other vector names. On an ordinary object V8 makes a hidden class, and a transition to
 * it, for each new name it is given: a shard of 500,000 keys made them on every read of an object
 * and kept a transition tree as large as its key count. An object without a prototype is kept in
 * V8's dictionary mode from the start, which takes any name without either (bench/RESULTS.md, "a
 * million keys").
 */
export function newVector(): Record<string, number> {
  return Object.create(null) as Record<string, number>;
}

/** The counter of `node` in `vector` (0 when absent). */
export function counterOf(vector: VersionVector, node: string): number {
  return vector[node] ?? 0;
}

/** A copy of `vector` with `node`'s counter raised by one. */
export function increment(vector: VersionVector, node: string): VersionVector {
  return withCounter(vector, node, counterOf(vector, node) + 1);
}

/** A copy of `vector` to change, as newVector makes them. */
function copyOf(vector: VersionVector): Record<string, number> {
  const copy = newVector();
  for (const node in vector) copy[node] = vector[node]!;
  return copy;
}

/** A copy of `vector` with `node`'s counter set to `counter`. */
export function withCounter(vector: VersionVector, node: string, counter: number): Record<string, number> {
  const result = copyOf(vector);
  result[node] = counter;
  return result;
}

/** The pointwise maximum of two vectors (their least upper bound). */
export function merge(left: VersionVector, right: VersionVector): VersionVector {
  const result = copyOf(left);
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
  const sorted = newVector();
  for (const node of Object.keys(vector).sort()) {
    const counter = vector[node] ?? 0;
    if (counter > 0) sorted[node] = counter;
  }
  return sorted;
}
