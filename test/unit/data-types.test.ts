import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { applyIncrement, exactCounterValue } from '../../src/core/datatypes/counter.js';
import { type DataTypeUpdate, applyDataTypeUpdate, dataTypeKey, dataTypeValue } from '../../src/core/datatypes/data-type.js';
import { applySetUpdate, setElements } from '../../src/core/datatypes/or-set.js';
import { encodeDataKey } from '../../src/core/keys.js';
import { decodeContext, readContext } from '../../src/core/versioning/context.js';
import { decodeObject, encodeObject } from '../../src/core/versioning/object-codec.js';
import { type VersionedObject, deadSinceMs, emptyObject, mergeObjects, versionIdentity } from '../../src/core/versioning/versioned-object.js';
import { decodeReply, decodeRequest, encodeReply, encodeRequest } from '../../src/core/wire/codec.js';
import type { PeerRequest } from '../../src/core/wire/messages.js';
import { Replica } from '../../src/engine/replica.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';

/**
 * Goals of the data types' core (src/core/datatypes/): their merge is a join (commutative,
 * associative, idempotent) on every state replicas can reach, whatever the bucket's conflict mode;
 * a counter merged from any replicas is the exact sum of the updates they applied; a set holds an
 * element exactly when some add of it was not observed by a later remove or re-add (the OR-set's
 * specification: a remove never removes an add its remover did not see); the object and peer
 * codecs carry a data type's kind; and a replica that lost its copy of a key counts on under a
 * new key epoch instead of overwriting its earlier entries.
 */

const limits = { maxSetElements: 1000, maxSetBytes: 1_000_000 };
const replicaCount = 3;
const actors = Array.from({ length: replicaCount }, (_, index) => `r${index}`);

const bytes = (object: VersionedObject): string => encodeObject(object).toString('hex');
const mergeAll = (objects: readonly VersionedObject[]): VersionedObject => objects.reduce((left, right) => mergeObjects(left, right, 'siblings'), emptyObject);

type CounterStep =
  { readonly kind: 'increment'; readonly replica: number; readonly delta: number } | { readonly kind: 'sync'; readonly from: number; readonly to: number };
type SetStep =
  | { readonly kind: 'add'; readonly replica: number; readonly element: string }
  /** A remove with the context `reader` read, applied at `replica` once it has merged what `reader` had (as the coordinator's read does). */
  | { readonly kind: 'remove'; readonly replica: number; readonly reader: number; readonly element: string }
  | { readonly kind: 'sync'; readonly from: number; readonly to: number };

const replicaIndex = fc.integer({ min: 0, max: replicaCount - 1 });
const sync = fc.record({ kind: fc.constant('sync' as const), from: replicaIndex, to: replicaIndex });
const counterSteps = fc.array(
  fc.oneof(fc.record({ kind: fc.constant('increment' as const), replica: replicaIndex, delta: fc.integer({ min: -1000, max: 1000 }) }), sync),
  { maxLength: 40 },
);
const element = fc.constantFrom('a', 'b', 'c');
const setSteps = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('add' as const), replica: replicaIndex, element }),
    fc.record({ kind: fc.constant('remove' as const), replica: replicaIndex, reader: replicaIndex, element }),
    sync,
  ),
  { maxLength: 40 },
);

/** Runs counter steps on the replicas; answers their states and the sum of the deltas applied. */
function runCounter(steps: readonly CounterStep[]): { states: VersionedObject[]; total: number } {
  const states: VersionedObject[] = actors.map(() => emptyObject);
  let total = 0;
  for (const step of steps) {
    if (step.kind === 'sync') {
      states[step.to] = mergeObjects(states[step.to]!, states[step.from]!, 'siblings');
      continue;
    }
    states[step.replica] = applyIncrement(states[step.replica]!, actors[step.replica]!, step.delta, 0);
    total += step.delta;
  }
  return { states, total };
}

/**
 * Runs set steps beside the OR-set's specification: every add is an event; a remove kills the adds
 * of its element that its reader had observed, and a re-add those its replica has observed; an
 * element is in the set while an add of it lives.
 */
function runSet(steps: readonly SetStep[]): { states: VersionedObject[]; expected: string[] } {
  const states: VersionedObject[] = actors.map(() => emptyObject);
  const observed: Set<number>[] = actors.map(() => new Set());
  const adds: { element: string; killed: boolean }[] = [];
  for (const step of steps) {
    if (step.kind === 'sync') {
      states[step.to] = mergeObjects(states[step.to]!, states[step.from]!, 'siblings');
      for (const event of observed[step.from]!) observed[step.to]!.add(event);
      continue;
    }
    if (step.kind === 'remove') {
      const seen = states[step.reader]!;
      if (!setElements(seen).includes(step.element)) continue;
      const base = mergeObjects(states[step.replica]!, seen, 'siblings');
      let removed: VersionedObject;
      try {
        removed = applySetUpdate(base, actors[step.replica]!, { add: [], remove: [step.element], context: readContext(seen.clock) }, 0, limits);
      } catch (error) {
        // Every add the reader saw was removed or re-added since: a 412, and nothing happens.
        if ((error as { code?: string }).code === 'KV_PRECONDITION_FAILED') continue;
        throw error;
      }
      // The remove kills exactly the adds its reader had observed, not those the applying replica holds besides.
      for (const event of observed[step.reader]!) if (adds[event]!.element === step.element) adds[event]!.killed = true;
      for (const event of observed[step.reader]!) observed[step.replica]!.add(event);
      states[step.replica] = removed;
      continue;
    }
    for (const event of observed[step.replica]!) if (adds[event]!.element === step.element) adds[event]!.killed = true;
    states[step.replica] = applySetUpdate(states[step.replica]!, actors[step.replica]!, { add: [step.element], remove: [] }, 0, limits);
    adds.push({ element: step.element, killed: false });
    observed[step.replica]!.add(adds.length - 1);
  }
  const expected = [...new Set(adds.filter((add) => !add.killed).map((add) => add.element))].sort();
  return { states, expected };
}

describe('counter and set merge laws (fast-check over reachable states)', () => {
  const laws = (states: readonly VersionedObject[]): void => {
    const [a, b, c] = states as [VersionedObject, VersionedObject, VersionedObject];
    expect(bytes(mergeObjects(a, b, 'siblings'))).toBe(bytes(mergeObjects(b, a, 'siblings')));
    expect(bytes(mergeObjects(mergeObjects(a, b, 'siblings'), c, 'siblings'))).toBe(bytes(mergeObjects(a, mergeObjects(b, c, 'siblings'), 'siblings')));
    const merged = mergeObjects(a, b, 'siblings');
    expect(bytes(mergeObjects(merged, merged, 'siblings'))).toBe(bytes(merged));
    // The bucket's conflict mode never changes a data type's merge: lww would keep one entry and lose updates.
    expect(bytes(mergeObjects(a, b, 'lww'))).toBe(bytes(mergeObjects(a, b, 'siblings')));
  };

  it('counters: the merge is commutative, associative and idempotent, and any merge of all replicas is the exact sum', () => {
    fc.assert(
      fc.property(counterSteps, (steps) => {
        const { states, total } = runCounter(steps);
        if (states.some((state) => state.kind === undefined)) return;
        laws(states);
        expect(Number(exactCounterValue(mergeAll(states)))).toBe(total);
        expect(Number(exactCounterValue(mergeAll([...states].reverse())))).toBe(total);
      }),
      { seed: 1301, numRuns: 400 },
    );
  });

  it('sets: the merge is a join, and the merged set is exactly the adds no remove or re-add observed (add wins)', () => {
    fc.assert(
      fc.property(setSteps, (steps) => {
        const { states, expected } = runSet(steps);
        if (states.some((state) => state.kind === undefined)) return;
        laws(states);
        expect(setElements(mergeAll(states))).toEqual(expected);
      }),
      { seed: 1302, numRuns: 1000 },
    );
  });

  it('a counter and a set first written concurrently at one key merge to the same one everywhere (the set), as a join', () => {
    const counter = applyIncrement(emptyObject, 'r0', 5, 0);
    const set = applySetUpdate(emptyObject, 'r1', { add: ['x'], remove: [] }, 0, limits);
    expect(bytes(mergeObjects(counter, set, 'siblings'))).toBe(bytes(mergeObjects(set, counter, 'siblings')));
    expect(mergeObjects(counter, set, 'siblings').kind).toBe('set');
    expect(bytes(mergeObjects(mergeObjects(counter, set, 'siblings'), counter, 'siblings'))).toBe(bytes(set));
  });
});

describe('set updates', () => {
  const base = applySetUpdate(emptyObject, 'r0', { add: ['a', 'b'], remove: [] }, 0, limits);

  it('a remove drops only the dots its context saw: a concurrent add of the same element survives', () => {
    const context = readContext(base.clock);
    const elsewhere = applySetUpdate(base, 'r1', { add: ['a'], remove: [] }, 0, limits);
    const removed = applySetUpdate(base, 'r0', { add: [], remove: ['a'], context }, 0, limits);
    expect(setElements(removed)).toEqual(['b']);
    expect(setElements(mergeObjects(removed, elsewhere, 'siblings'))).toEqual(['a', 'b']);
    // Applied at a replica that already holds an add of 'a' that the reader never saw, the remove leaves that add alone.
    const unseen = applySetUpdate(emptyObject, 'r1', { add: ['a'], remove: [] }, 0, limits);
    const removedThere = applySetUpdate(mergeObjects(base, unseen, 'siblings'), 'r2', { add: [], remove: ['a'], context }, 0, limits);
    expect(setElements(removedThere)).toEqual(['a', 'b']);
    // Once a replica that saw 'a' added it again, no add the reader saw is left: the remove is refused (412).
    expect(() => applySetUpdate(mergeObjects(base, elsewhere, 'siblings'), 'r2', { add: [], remove: ['a'], context }, 0, limits)).toThrow(
      expect.objectContaining({ code: 'KV_PRECONDITION_FAILED' }),
    );
  });

  it('refuses a remove without context (KV_BAD_CONTEXT), of an element the context did not see (412), and with a context ahead of the state (412)', () => {
    expect(() => applySetUpdate(base, 'r0', { add: [], remove: ['a'] }, 0, limits)).toThrow(expect.objectContaining({ code: 'KV_BAD_CONTEXT' }));
    expect(() => applySetUpdate(base, 'r0', { add: [], remove: ['zz'], context: readContext(base.clock) }, 0, limits)).toThrow(
      expect.objectContaining({ code: 'KV_PRECONDITION_FAILED' }),
    );
    const later = applySetUpdate(base, 'r1', { add: ['c'], remove: [] }, 0, limits);
    expect(() => applySetUpdate(base, 'r0', { add: [], remove: ['a'], context: readContext(later.clock) }, 0, limits)).toThrow(
      /not yet seen everything its context names/,
    );
    expect(() => applySetUpdate(base, 'r0', { add: [], remove: ['c'], context: readContext(base.clock) }, 0, limits)).toThrow(
      expect.objectContaining({ code: 'KV_PRECONDITION_FAILED' }),
    );
  });

  it('a re-add replaces the element dots the replica holds, so an element has at most one dot per concurrent adder', () => {
    let state = base;
    for (let round = 0; round < 5; round++) state = applySetUpdate(state, 'r0', { add: ['a'], remove: [] }, 0, limits);
    expect(state.siblings).toHaveLength(2);
  });

  it('refuses growth past maxSetElements and maxSetBytes (KV_SET_TOO_LARGE), but not a shrinking update', () => {
    const small = { maxSetElements: 2, maxSetBytes: 4 };
    expect(() => applySetUpdate(base, 'r0', { add: ['c'], remove: [] }, 0, small)).toThrow(expect.objectContaining({ code: 'KV_SET_TOO_LARGE' }));
    expect(() => applySetUpdate(emptyObject, 'r0', { add: ['abcde'], remove: [] }, 0, small)).toThrow(expect.objectContaining({ code: 'KV_SET_TOO_LARGE' }));
    const over = applySetUpdate(base, 'r1', { add: ['c'], remove: [] }, 0, limits);
    expect(setElements(applySetUpdate(over, 'r0', { add: [], remove: ['c'], context: readContext(over.clock) }, 0, small))).toEqual(['a', 'b']);
  });
});

describe('counter updates', () => {
  it('refuses an update that would leave the safe integers (KV_COUNTER_OVERFLOW), in either direction', () => {
    const high = applyIncrement(emptyObject, 'r0', Number.MAX_SAFE_INTEGER, 0);
    expect(() => applyIncrement(high, 'r0', 1, 0)).toThrow(expect.objectContaining({ code: 'KV_COUNTER_OVERFLOW' }));
    expect(Number(exactCounterValue(applyIncrement(high, 'r1', -5, 0)))).toBe(Number.MAX_SAFE_INTEGER - 5);
    const low = applyIncrement(emptyObject, 'r0', Number.MIN_SAFE_INTEGER, 0);
    expect(() => applyIncrement(low, 'r1', -1, 0)).toThrow(expect.objectContaining({ code: 'KV_COUNTER_OVERFLOW' }));
  });

  it('a read of concurrent updates that add up past the safe integers is refused, not rounded', () => {
    const merged = mergeObjects(applyIncrement(emptyObject, 'r0', Number.MAX_SAFE_INTEGER, 0), applyIncrement(emptyObject, 'r1', 10, 0), 'siblings');
    expect(() => dataTypeValue(merged)).toThrow(expect.objectContaining({ code: 'KV_COUNTER_OVERFLOW' }));
  });

  it('an update of another type than the key holds is refused with KV_TYPE_MISMATCH', () => {
    const counter = applyIncrement(emptyObject, 'r0', 1, 0);
    expect(() => applyDataTypeUpdate(counter, 'r0', { type: 'set', add: ['x'], remove: [] }, 0, limits)).toThrow(
      expect.objectContaining({ code: 'KV_TYPE_MISMATCH' }),
    );
  });
});

describe('a data type in every path that moves versions', () => {
  const set = applySetUpdate(emptyObject, 'n1.1~0', { add: ['x', 'ünï'], remove: [] }, 1234, limits);
  const counter = applyIncrement(emptyObject, 'n1.1~0', -7, 1234);

  it('round-trips through the object codec with its kind, in format 3, and the same bytes again', () => {
    for (const object of [set, counter]) {
      const encoded = encodeObject(object);
      expect(encoded[0]).toBe(3);
      const decoded = decodeObject(encoded);
      expect(decoded.kind).toBe(object.kind);
      expect(encodeObject(decoded).equals(encoded)).toBe(true);
    }
    const unknownKind = Buffer.from(encodeObject(set));
    unknownKind[1] = 9;
    expect(() => decodeObject(unknownKind)).toThrow(expect.objectContaining({ code: 'KV_STORAGE' }));
  });

  it('is never reaped and has a version identity of its own', () => {
    const emptied = applySetUpdate(set, 'n1.1~0', { add: [], remove: ['x', 'ünï'], context: readContext(set.clock) }, 0, limits);
    expect(emptied.siblings).toHaveLength(0);
    expect(deadSinceMs(emptied)).toBeUndefined();
    expect(versionIdentity(set)).toMatch(/^set\|/);
  });

  it('round-trips dt-update requests and replies through the peer codec', () => {
    const updates: DataTypeUpdate[] = [
      { type: 'counter', increment: -Number.MAX_SAFE_INTEGER },
      { type: 'set', add: ['a', ''], remove: [] },
      { type: 'set', add: [], remove: ['a'], context: decodeContext('c1.W1siYSIsMl1d') },
    ];
    const requests: PeerRequest[] = updates.map((update, index) => ({
      type: 'dt-update',
      bucket: 'b',
      key: dataTypeKey('k'),
      update,
      sync: index === 0,
      base: index === 2 ? set : null,
    }));
    const decoded = requests.map((request) => decodeRequest(encodeRequest(request)));
    expect(decoded.map((request) => ({ ...request, base: request.type === 'dt-update' && request.base !== null ? bytes(request.base) : null }))).toEqual(
      requests.map((request) => ({ ...request, base: request.type === 'dt-update' && request.base !== null ? bytes(request.base) : null })),
    );
    const reply = decodeReply(encodeReply({ type: 'dt-update-reply', object: counter, durable: true }));
    expect(reply?.type === 'dt-update-reply' && bytes(reply.object)).toBe(bytes(counter));
  });
});

describe('a replica that lost its copy of a data type', () => {
  it('counts on under a new key epoch after handoff clean-up removed its copy, so its earlier increments survive elsewhere', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    const replica = new Replica(storage, 'n1', new SeededRandom(1));
    const key = dataTypeKey('hits');
    for (let round = 0; round < 3; round++) await replica.updateDataType('b', key, { type: 'counter', increment: 10 }, false, null, 0, limits);
    const before = (await replica.read('b', key))!;
    // Another replica holds what this one had; then handoff clean-up removes this copy.
    const elsewhere = before;
    expect(await replica.remove(encodeDataKey('b', key), encodeObject(before))).toBe(true);
    await replica.updateDataType('b', key, { type: 'counter', increment: 1 }, false, null, 0, limits);
    const after = (await replica.read('b', key))!;
    expect(Object.keys(after.clock)).not.toEqual(Object.keys(before.clock));
    expect(Number(exactCounterValue(mergeObjects(after, elsewhere, 'siblings')))).toBe(31);
    await storage.close();
  });
});
