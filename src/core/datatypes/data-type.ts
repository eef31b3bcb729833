import { KvError } from '../../util/errors.js';
import { encodeContext } from '../versioning/context.js';
import type { DataTypeKind, VersionedObject } from '../versioning/versioned-object.js';
import { applyIncrement, exactCounterValue } from './counter.js';
import { type SetLimits, type SetUpdate, applySetUpdate, setElements } from './or-set.js';

/**
 * Convergent data types (Riak 2.0's counters and sets): the replicas merge concurrent updates
 * themselves, so a data type never has siblings for a client to resolve. An update is applied at
 * one replica (it issues the update's dots as one of its actors) and the resulting state is
 * replicated like a written version; every path that moves versions merges it
 * (versioned-object.ts, mergeObjects).
 */

/** An update as the HTTP edge validated it. */
export type DataTypeUpdate = { readonly type: 'counter'; readonly increment: number } | ({ readonly type: 'set' } & SetUpdate);

/** Bounds an update is checked against. */
export type DataTypeLimits = SetLimits;

/** What a read of a data type shows. */
export type DataTypeValue =
  { readonly type: 'counter'; readonly value: number } | { readonly type: 'set'; readonly value: readonly string[]; readonly context: string };

/**
 * Data types live beside plain keys in the same bucket but in a namespace of their own: the
 * stored key is this prefix and the key. A key used by /kv is never a data type and the other
 * way round; the /kv edge refuses keys that start with U+0000, so the two cannot meet.
 */
export const dataTypeKeyPrefix = '\u0000dt\u0000';

/** The stored key of data type `key`. */
export function dataTypeKey(key: string): string {
  return dataTypeKeyPrefix + key;
}

/** True when a stored key belongs to the data type namespace. */
export function isDataTypeKey(key: string): boolean {
  return key.startsWith('\u0000');
}

/** The kind an update writes. */
function kindOf(update: DataTypeUpdate): DataTypeKind {
  return update.type;
}

/** An update of an absent set that only removes needs a set to remove from. */
function storedKind(object: VersionedObject): DataTypeKind | 'value' | undefined {
  if (object.kind !== undefined) return object.kind;
  return object.siblings.length > 0 ? 'value' : undefined;
}

/**
 * Applies `update` to a replica's state as actor `actor` (its events get that actor's next dots),
 * or throws the KvError that says why not: the key holds another type (KV_TYPE_MISMATCH), a remove
 * without a context or of what its context did not see, or a bound it would cross.
 */
export function applyDataTypeUpdate(object: VersionedObject, actor: string, update: DataTypeUpdate, nowMs: number, limits: DataTypeLimits): VersionedObject {
  const stored = storedKind(object);
  if (stored !== undefined && stored !== kindOf(update)) {
    throw new KvError(
      'KV_TYPE_MISMATCH',
      `this key holds a ${stored === 'value' ? 'plain value' : stored}, not a ${update.type}; use another key for the ${update.type}, or update it as a ${stored}`,
      {
        details: { stored },
      },
    );
  }
  if (update.type === 'counter') return applyIncrement(object, actor, update.increment, nowMs);
  return applySetUpdate(object, actor, update, nowMs, limits);
}

/**
 * What a read shows of a merged state: undefined when the key holds no data type (never updated).
 * A counter whose concurrent updates added up past the safe integers is refused with
 * KV_COUNTER_OVERFLOW (a JSON number could not carry it exactly); decrementing it brings it back.
 */
export function dataTypeValue(object: VersionedObject | undefined): DataTypeValue | undefined {
  if (object?.kind === undefined) return undefined;
  if (object.kind === 'set') return { type: 'set', value: setElements(object), context: encodeContext(object.clock) };
  const exact = exactCounterValue(object);
  if (exact > BigInt(Number.MAX_SAFE_INTEGER) || exact < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new KvError(
      'KV_COUNTER_OVERFLOW',
      `the counter's value ${exact} is beyond ±${Number.MAX_SAFE_INTEGER} (concurrent increments added up); decrement it to read it again`,
    );
  }
  return { type: 'counter', value: Number(exact) };
}
