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
  /**
   * When this version expires (TTL), in ms since the epoch on the clock of the node that took the
   * write; absent when it never expires. It is part of the version: every path that moves the
   * sibling carries it unchanged, so an expired sibling reads as a tombstone everywhere.
   */
  readonly expiresAtMs?: number;
}

/**
 * The convergent data type an object holds (src/core/datatypes/), or absent for a plain value.
 * A data type's state is kept in the same shape, a clock and dotted siblings, so every path that
 * moves versions carries it; mergeObjects merges it as the type's lattice, never into siblings.
 */
export type DataTypeKind = 'counter' | 'set';

/** A key's state on one replica: its siblings and the causal history they summarise. */
export interface VersionedObject {
  readonly clock: VersionVector;
  readonly siblings: readonly Sibling[];
  /** Set when the object is a data type's state; its siblings are then the type's dotted entries. */
  readonly kind?: DataTypeKind;
}

/** How a bucket resolves concurrent writes. */
export type ConflictMode = 'siblings' | 'lww';

/** The longest TTL a write may ask for: ten years, in seconds. */
export const maxTtlSeconds = 10 * 365 * 24 * 3600;

/** A new write (or delete) as the coordinator received it. */
export interface WriteIntent {
  readonly value: Uint8Array;
  readonly contentType: string;
  readonly tombstone: boolean;
  /** The causal context the client holds (from a read or its own last write); what it covers is superseded. */
  readonly context: CausalContext;
  /** The time stamped on the new version: the coordinator's clock, raised past the context's time (writeTimeMs in context.ts). */
  readonly nowMs: number;
  /** Seconds after `nowMs` at which the new version expires; absent (or 0) for none. Ignored on a delete. */
  readonly ttlSeconds?: number;
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
  return siblings.sort((left, right) => (left.dot.node === right.dot.node ? left.dot.counter - right.dot.counter : left.dot.node < right.dot.node ? -1 : 1));
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
 * Applies a write coordinated by actor `node` to the object it has locally: the new sibling gets
 * the dot (node, counter + 1), the actor's next event on this key (the caller picks an actor whose
 * events on this key the local object holds in full: src/core/versioning/key-actor.ts); siblings
 * the client's context covers are dropped; the others are concurrent with this write and stay.
 * In `lww` mode only the newest sibling survives.
 */
export function applyWrite(local: VersionedObject, node: string, write: WriteIntent, mode: ConflictMode): VersionedObject {
  // Only the context's vector joins the clock: it names a gap-free history the writer saw. Its
  // dots name single events; joining them would claim every earlier event of that actor as seen.
  const joined = mergeVectors(local.clock, write.context.vector);
  const dot: Dot = { node, counter: counterOf(joined, node) + 1 };
  const created: Sibling = {
    dot,
    value: write.value,
    contentType: write.contentType,
    // A timestamp never goes backwards on one key, so lww keeps the newest write even under clock skew.
    lastModifiedMs: Math.max(write.nowMs, ...local.siblings.map((sibling) => sibling.lastModifiedMs + 1)),
    tombstone: write.tombstone,
    // Expiry is counted from the writing node's clock, the same clock that stamps lastModifiedMs.
    ...(write.ttlSeconds !== undefined && write.ttlSeconds > 0 && !write.tombstone ? { expiresAtMs: write.nowMs + write.ttlSeconds * 1000 } : {}),
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
  if (left.kind !== undefined || right.kind !== undefined) return mergeDataTypeStates(left, right);
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

/** Plain values rank below data types, counters below sets: see mergeDataTypeStates. */
function kindRank(kind: DataTypeKind | undefined): number {
  return kind === undefined ? 0 : kind === 'counter' ? 1 : 2;
}

/**
 * Merges two states of a data type, whatever the bucket's conflict mode. Both types keep their
 * entries as dotted siblings under one clock, and the dotted merge above is exactly the merge of
 * an add-wins observed-remove set without tombstones (ORSWOT: an entry survives unless the other
 * side has seen its dot and dropped it) and of a per-actor counter (an actor's newer entry has
 * seen its older one). Two different kinds (a counter and a set first written concurrently on
 * two sides of a partition) cannot be combined: the higher kind wins whole, so the merge stays a
 * join (commutative, associative, idempotent) and every replica keeps the same one.
 */
function mergeDataTypeStates(left: VersionedObject, right: VersionedObject): VersionedObject {
  const leftRank = kindRank(left.kind);
  const rightRank = kindRank(right.kind);
  if (leftRank !== rightRank) return leftRank > rightRank ? left : right;
  const merged = mergeObjects({ clock: left.clock, siblings: left.siblings }, { clock: right.clock, siblings: right.siblings }, 'siblings');
  return left.kind === undefined ? merged : { ...merged, kind: left.kind };
}

/** True when `sibling` carries an expiry that has passed at `nowMs` (the reading node's clock). */
export function isExpired(sibling: Sibling, nowMs: number): boolean {
  return sibling.expiresAtMs !== undefined && sibling.expiresAtMs <= nowMs;
}

/**
 * The siblings a reader sees at `nowMs`: tombstones and expired siblings are hidden; an object
 * with none left reads as missing. The reading node's clock decides expiry, so clock skew between
 * nodes shifts the moment a value stops being readable by at most the skew; it cannot revive one,
 * since every replica carries the same expiry with the same dot. Without `nowMs` expiry is
 * ignored (tests and tools that inspect stored state); every read path of ringkv passes it.
 */
export function liveSiblings(object: VersionedObject, nowMs = Number.NEGATIVE_INFINITY): readonly Sibling[] {
  return object.siblings.filter((sibling) => !sibling.tombstone && !isExpired(sibling, nowMs));
}

/** True when every sibling is a tombstone or expired at `nowMs` (or there are none): the key reads as not found. */
export function isDeleted(object: VersionedObject, nowMs = Number.NEGATIVE_INFINITY): boolean {
  return liveSiblings(object, nowMs).length === 0;
}

/**
 * When the object became (or will become) a tombstone in full: the newest delete or expiry among
 * its siblings; undefined while any sibling is live for good (no tombstone, no expiry). The
 * tombstone reaper waits its grace period from this moment, on its own clock.
 */
export function deadSinceMs(object: VersionedObject): number | undefined {
  // A data type is never deleted (an empty set is still a set with a history), so never reaped.
  if (object.kind !== undefined) return undefined;
  let newest = 0;
  for (const sibling of object.siblings) {
    if (sibling.tombstone) newest = Math.max(newest, sibling.lastModifiedMs);
    else if (sibling.expiresAtMs !== undefined) newest = Math.max(newest, sibling.expiresAtMs);
    else return undefined;
  }
  return newest;
}

/** A digest-friendly identity of an object's version: its clock and sibling dots. */
export function versionIdentity(object: VersionedObject): string {
  const clock = Object.entries(object.clock)
    .map(([node, counter]) => `${node}:${counter}`)
    .join(',');
  const dots = object.siblings
    .map(
      (sibling) =>
        `${sibling.dot.node}:${sibling.dot.counter}${sibling.tombstone ? 't' : ''}${sibling.expiresAtMs === undefined ? '' : `e${sibling.expiresAtMs}`}`,
    )
    .join(',');
  return object.kind === undefined ? `${clock}|${dots}` : `${object.kind}|${clock}|${dots}`;
}
