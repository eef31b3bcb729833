import { assert } from '../../util/assert.js';
import { type CausalContext, contextCovers } from './context.js';
import { type VersionVector, counterOf, emptyVector, merge as mergeVectors, sortVector } from './version-vector.js';

/**
 * Dotted version vectors (Preguiça et al., used by Riak 2.0): every sibling carries the single
 * event (its dot) that created it, and the object carries the join of everything it has seen.
 * A sibling is dropped exactly when another version has seen its dot, so concurrent writes are
 * kept as siblings and causally overwritten ones vanish, without the sibling explosion of
 * plain per-object vector clocks.
 */

/** The event that created a sibling: the coordinating node and its counter there. */
export interface Dot {
  readonly node: string;
  readonly counter: number;
}

/** One version of a value. A tombstone is a sibling that records a delete. */
export interface Sibling {
  readonly dot: Dot;
  readonly value: Uint8Array;
  readonly contentType: string;
  readonly lastModifiedMs: number;
  readonly tombstone: boolean;
}

/** A key's state on one replica: its siblings and the causal history they summarise. */
export interface VersionedObject {
  readonly clock: VersionVector;
  readonly siblings: readonly Sibling[];
}

/** How a bucket resolves concurrent writes. */
export type ConflictMode = 'siblings' | 'lww';

/** A new write (or delete) as the coordinator received it. */
export interface WriteIntent {
  readonly value: Uint8Array;
  readonly contentType: string;
  readonly tombstone: boolean;
  /** The causal context the client holds (from a read or its own last write); what it covers is superseded. */
  readonly context: CausalContext;
  readonly nowMs: number;
}

/** The object of a key that was never written. */
export const emptyObject: VersionedObject = Object.freeze({ clock: emptyVector, siblings: Object.freeze([]) });

/** True when the version `clock` has seen the event `dot`. */
export function covers(clock: VersionVector, dot: Dot): boolean {
  return counterOf(clock, dot.node) >= dot.counter;
}

function sameDot(left: Dot, right: Dot): boolean {
  return left.node === right.node && left.counter === right.counter;
}

/** Orders siblings by dot so equal objects have equal encodings. */
function sortSiblings(siblings: Sibling[]): Sibling[] {
  return siblings.sort((left, right) =>
    left.dot.node === right.dot.node ? left.dot.counter - right.dot.counter : left.dot.node < right.dot.node ? -1 : 1,
  );
}

/** Last-write-wins order: later timestamp wins; ties broken by dot so every replica agrees. */
function lwwWinner(siblings: readonly Sibling[]): Sibling | undefined {
  let best: Sibling | undefined;
  for (const sibling of siblings) {
    if (
      best === undefined ||
      sibling.lastModifiedMs > best.lastModifiedMs ||
      (sibling.lastModifiedMs === best.lastModifiedMs &&
        (sibling.dot.node > best.dot.node || (sibling.dot.node === best.dot.node && sibling.dot.counter > best.dot.counter)))
    ) {
      best = sibling;
    }
  }
  return best;
}

/**
 * Applies a write coordinated by `node` to the object it has locally: the new sibling gets the
 * dot (node, max(counter + 1, counterFloor)); siblings the client's context covers are dropped; the others are
 * concurrent with this write and stay. In `lww` mode only the newest sibling survives.
 */
export function applyWrite(
  local: VersionedObject,
  node: string,
  write: WriteIntent,
  mode: ConflictMode,
  counterFloor = 0,
): VersionedObject {
  // Only the context's vector joins the clock: it names a gap-free history the writer saw. Its
  // dots name single events; joining them would claim every earlier event of that actor as seen.
  const joined = mergeVectors(local.clock, write.context.vector);
  // The floor lets an actor number its dots from one counter across all keys, so that a dot is
  // never issued twice even when the actor's copy of a key was reaped or handed off.
  const dot: Dot = { node, counter: Math.max(counterOf(joined, node) + 1, counterFloor) };
  const created: Sibling = {
    dot,
    value: write.value,
    contentType: write.contentType,
    // A timestamp never goes backwards on one key, so lww keeps the newest write even under clock skew.
    lastModifiedMs: Math.max(write.nowMs, ...local.siblings.map((sibling) => sibling.lastModifiedMs + 1)),
    tombstone: write.tombstone,
  };
  const clock = sortVector({ ...joined, [node]: dot.counter });
  if (mode === 'lww') return { clock, siblings: [created] };
  const kept = local.siblings.filter((sibling) => !contextCovers(write.context, sibling.dot));
  return { clock, siblings: sortSiblings([...kept, created]) };
}

/**
 * Merges two replicas' versions of one key (read repair, hinted handoff, anti-entropy).
 * Commutative, associative and idempotent, so replicas converge whatever the order of syncs.
 */
export function mergeObjects(left: VersionedObject, right: VersionedObject, mode: ConflictMode): VersionedObject {
  const clock = mergeVectors(left.clock, right.clock);
  const survivors: Sibling[] = [];
  for (const sibling of left.siblings) {
    const inRight = right.siblings.some((other) => sameDot(other.dot, sibling.dot));
    if (inRight || !covers(right.clock, sibling.dot)) survivors.push(sibling);
  }
  for (const sibling of right.siblings) {
    const inLeft = left.siblings.some((other) => sameDot(other.dot, sibling.dot));
    if (!inLeft && !covers(left.clock, sibling.dot)) survivors.push(sibling);
  }
  if (mode === 'lww') {
    const winner = lwwWinner([...left.siblings, ...right.siblings]);
    return { clock, siblings: winner === undefined ? [] : [winner] };
  }
  return { clock, siblings: sortSiblings(survivors) };
}

/** The siblings a reader sees: tombstones are hidden; an object with none left reads as missing. */
export function liveSiblings(object: VersionedObject): readonly Sibling[] {
  return object.siblings.filter((sibling) => !sibling.tombstone);
}

/** True when every sibling is a tombstone (or there are none): the key reads as not found. */
export function isDeleted(object: VersionedObject): boolean {
  return liveSiblings(object).length === 0;
}

/**
 * Keeps a clock within `maxEntries` by forgetting the smallest counters of nodes that no
 * sibling's dot refers to. Forgetting history can only make a later merge keep an old sibling
 * as concurrent (a false sibling), never drop a live one, which is the safe direction
 * (Riak prunes vclocks by size with the same trade-off).
 */
export function pruneClock(object: VersionedObject, maxEntries: number): VersionedObject {
  assert(maxEntries >= 1, 'maxEntries must be positive');
  const entries = Object.entries(object.clock);
  if (entries.length <= maxEntries) return object;
  const pinned = new Set(object.siblings.map((sibling) => sibling.dot.node));
  const removable = entries.filter(([node]) => !pinned.has(node)).sort((left, right) => left[1] - right[1]);
  const clock: Record<string, number> = { ...object.clock };
  let size = entries.length;
  for (const [node] of removable) {
    if (size <= maxEntries) break;
    delete clock[node];
    size -= 1;
  }
  return { clock: sortVector(clock), siblings: object.siblings };
}

/** A digest-friendly identity of an object's version: its clock and sibling dots. */
export function versionIdentity(object: VersionedObject): string {
  const clock = Object.entries(object.clock)
    .map(([node, counter]) => `${node}:${counter}`)
    .join(',');
  const dots = object.siblings.map((sibling) => `${sibling.dot.node}:${sibling.dot.counter}${sibling.tombstone ? 't' : ''}`).join(',');
  return `${clock}|${dots}`;
}
