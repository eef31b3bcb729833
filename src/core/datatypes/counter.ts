import { KvError } from '../../util/errors.js';
import type { Sibling, VersionedObject } from '../versioning/versioned-object.js';
import { sortVector, withCounter } from '../versioning/version-vector.js';
import { sortedByDot } from './dotted-entries.js';

/**
 * A per-actor PN counter (Riak's riak_dt_pncounter) kept as dotted entries: each actor (a key
 * epoch of one coordinating node, see src/core/versioning/key-actor.ts) has one sibling whose value is
 * its running totals of increments (P) and decrements (N); the counter's value is the sum of
 * P - N over the actors. An actor's update replaces its own entry with a new one under a new dot,
 * so the dotted merge keeps, per actor, the entry that has seen the others: the merge is the
 * pointwise maximum of a PN counter, and concurrent updates by different actors all count.
 */

/** One actor's totals: both only grow, so each is a grow-only counter (the P and N of a PN counter). */
export interface CounterEntry {
  readonly increments: number;
  readonly decrements: number;
}

const entryBytes = 16;

/** The value bytes of an actor's entry: two float64 (big-endian), each a safe non-negative integer. */
export function encodeCounterEntry(entry: CounterEntry): Uint8Array {
  const bytes = Buffer.alloc(entryBytes);
  bytes.writeDoubleBE(entry.increments, 0);
  bytes.writeDoubleBE(entry.decrements, 8);
  return bytes;
}

/** The entry in a sibling's value; a malformed one (only a broken peer sends it) counts as nothing. */
export function decodeCounterEntry(value: Uint8Array): CounterEntry {
  if (value.byteLength !== entryBytes) return { increments: 0, decrements: 0 };
  const bytes = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  const increments = bytes.readDoubleBE(0);
  const decrements = bytes.readDoubleBE(8);
  const valid = (count: number): boolean => Number.isSafeInteger(count) && count >= 0;
  return valid(increments) && valid(decrements) ? { increments, decrements } : { increments: 0, decrements: 0 };
}

/** Each actor's newest entry (a merged state has one per actor; the newest wins if a broken peer sent more). */
function entriesByActor(object: VersionedObject): Map<string, Sibling> {
  const newest = new Map<string, Sibling>();
  for (const sibling of object.siblings) {
    const known = newest.get(sibling.dot.node);
    if (known === undefined || sibling.dot.counter > known.dot.counter) newest.set(sibling.dot.node, sibling);
  }
  return newest;
}

/** The exact value, as a bigint: concurrent updates on different replicas may add up beyond a safe integer. */
export function exactCounterValue(object: VersionedObject): bigint {
  let total = 0n;
  for (const sibling of entriesByActor(object).values()) {
    const entry = decodeCounterEntry(sibling.value);
    total += BigInt(entry.increments) - BigInt(entry.decrements);
  }
  return total;
}

/**
 * Applies `delta` (any safe integer) as actor `actor`'s next event: its entry's totals grow by the
 * delta's magnitude and the entry gets the dot (actor, counter + 1). Refused with
 * KV_COUNTER_OVERFLOW when the value or the actor's totals would leave the safe integers.
 */
export function applyIncrement(object: VersionedObject, actor: string, delta: number, nowMs: number): VersionedObject {
  const own = entriesByActor(object).get(actor);
  const before = own === undefined ? { increments: 0, decrements: 0 } : decodeCounterEntry(own.value);
  const entry = { increments: before.increments + Math.max(delta, 0), decrements: before.decrements + Math.max(-delta, 0) };
  const value = exactCounterValue(object) + BigInt(delta);
  if (
    !Number.isSafeInteger(entry.increments) ||
    !Number.isSafeInteger(entry.decrements) ||
    value > BigInt(Number.MAX_SAFE_INTEGER) ||
    value < BigInt(Number.MIN_SAFE_INTEGER)
  ) {
    throw new KvError(
      'KV_COUNTER_OVERFLOW',
      `incrementing the counter by ${delta} would take it (or this replica's share of it) beyond ±${Number.MAX_SAFE_INTEGER}, the largest exact integer; the update was not applied`,
    );
  }
  const counter = (object.clock[actor] ?? 0) + 1;
  const created: Sibling = { dot: { node: actor, counter }, value: encodeCounterEntry(entry), contentType: '', lastModifiedMs: nowMs, tombstone: false };
  const siblings = [...object.siblings.filter((sibling) => sibling.dot.node !== actor), created];
  return { clock: sortVector(withCounter(object.clock, actor, counter)), siblings: sortedByDot(siblings), kind: 'counter' };
}
