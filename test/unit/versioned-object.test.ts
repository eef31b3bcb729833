import fc from 'fast-check';
import { readContext } from '../../src/core/versioning/context.js';
import { describe, expect, it } from 'vitest';
import { type VersionVector, descends, emptyVector } from '../../src/core/versioning/version-vector.js';
import {
  type ConflictMode,
  type Dot,
  type Sibling,
  type VersionedObject,
  type WriteIntent,
  applyWrite,
  covers,
  emptyObject,
  isDeleted,
  liveSiblings,
  mergeObjects,
  versionIdentity,
} from '../../src/core/versioning/versioned-object.js';

/**
 * Goal: dotted version vectors (Riak 2.0) keep every concurrent write as a sibling, drop exactly
 * the siblings a client has seen and overwritten, and merge replicas so they converge whatever the
 * order of syncs. In lww mode exactly one sibling survives and every replica picks the same one.
 */

const text = (value: string): Uint8Array => Buffer.from(value, 'utf8');
const textOf = (sibling: Sibling): string => Buffer.from(sibling.value).toString('utf8');
const dotName = (dot: Dot): string => `${dot.node}:${dot.counter}`;
const dotsOf = (object: VersionedObject): string[] => object.siblings.map((sibling) => dotName(sibling.dot));
const valuesOf = (object: VersionedObject): string[] => object.siblings.map(textOf);

function put(value: string, context: VersionVector, nowMs = 1_000): WriteIntent {
  return { value: text(value), contentType: 'text/plain', tombstone: false, context: readContext(context), nowMs };
}

function remove(context: VersionVector, nowMs = 1_000): WriteIntent {
  return { value: new Uint8Array(0), contentType: '', tombstone: true, context: readContext(context), nowMs };
}

function sibling(node: string, counter: number, lastModifiedMs: number, value = `${node}${counter}`): Sibling {
  return { dot: { node, counter }, value: text(value), contentType: 'text/plain', lastModifiedMs, tombstone: false };
}

describe('a write supersedes exactly the siblings its context covers', () => {
  it('a write with the context of the current version leaves one sibling', () => {
    const first = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const second = applyWrite(first, 'a', put('v2', first.clock), 'siblings');
    expect(valuesOf(second)).toEqual(['v2']);
    expect(dotsOf(second)).toEqual(['a:2']);
    expect(second.clock).toEqual({ a: 2 });
  });

  it('two writes with no context become two siblings', () => {
    const first = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const second = applyWrite(first, 'a', put('v2', emptyVector), 'siblings');
    expect(valuesOf(second)).toEqual(['v1', 'v2']);
    expect(dotsOf(second)).toEqual(['a:1', 'a:2']);
  });

  it('two writes with the same old context become two siblings, on one coordinator', () => {
    const original = applyWrite(emptyObject, 'a', put('v0', emptyVector), 'siblings');
    const readContext = original.clock;
    const first = applyWrite(original, 'a', put('x', readContext), 'siblings');
    const second = applyWrite(first, 'a', put('y', readContext), 'siblings');
    expect(valuesOf(second)).toEqual(['x', 'y']);
  });

  it('two writes with the same old context become two siblings, on two coordinators once merged', () => {
    const original = applyWrite(emptyObject, 'a', put('v0', emptyVector), 'siblings');
    const atA = applyWrite(original, 'a', put('x', original.clock), 'siblings');
    const atB = applyWrite(original, 'b', put('y', original.clock), 'siblings');
    const merged = mergeObjects(atA, atB, 'siblings');
    expect(valuesOf(merged).sort()).toEqual(['x', 'y']);
    expect(dotsOf(merged)).toEqual(['a:2', 'b:1']);
    expect(merged.clock).toEqual({ a: 2, b: 1 });
  });

  it('a write whose context covers only one of two siblings keeps the other', () => {
    const atA = applyWrite(emptyObject, 'a', put('x', emptyVector), 'siblings');
    const atB = applyWrite(emptyObject, 'b', put('y', emptyVector), 'siblings');
    const both = mergeObjects(atA, atB, 'siblings');
    expect(valuesOf(both)).toEqual(['x', 'y']);
    const overwritesX = applyWrite(both, 'a', put('z', atA.clock), 'siblings');
    expect(valuesOf(overwritesX)).toEqual(['z', 'y']);
    expect(dotsOf(overwritesX)).toEqual(['a:2', 'b:1']);
  });

  it('a write with a context this replica has not seen still takes a fresh dot and supersedes what the context covers', () => {
    const elsewhere = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const stale = emptyObject;
    const written = applyWrite(stale, 'b', put('v2', elsewhere.clock), 'siblings');
    expect(written.clock).toEqual({ a: 1, b: 1 });
    expect(mergeObjects(written, elsewhere, 'siblings').siblings.map(textOf)).toEqual(['v2']);
  });

  it('a coordinator whose own copy is missing still issues a dot beyond every event of it the context shows', () => {
    const first = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const second = applyWrite(first, 'a', put('v2', emptyVector), 'siblings');
    const fromEmptyCopy = applyWrite(emptyObject, 'a', put('v3', second.clock), 'siblings');
    expect(dotsOf(fromEmptyCopy)).toEqual(['a:3']);
    expect(valuesOf(mergeObjects(second, fromEmptyCopy, 'siblings'))).toEqual(['v3']);
  });

  it('a merge drops a sibling the other replica has seen and overwritten', () => {
    const old = applyWrite(emptyObject, 'a', put('old', emptyVector), 'siblings');
    const newer = applyWrite(old, 'b', put('new', old.clock), 'siblings');
    expect(valuesOf(mergeObjects(old, newer, 'siblings'))).toEqual(['new']);
    expect(valuesOf(mergeObjects(newer, old, 'siblings'))).toEqual(['new']);
  });
});

describe('tombstones hide a key but keep its causal history', () => {
  it('a delete with the current context makes the key read as deleted while the clock records it', () => {
    const written = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const deleted = applyWrite(written, 'a', remove(written.clock), 'siblings');
    expect(isDeleted(written)).toBe(false);
    expect(isDeleted(deleted)).toBe(true);
    expect(liveSiblings(deleted)).toEqual([]);
    expect(deleted.siblings).toHaveLength(1);
    expect(deleted.siblings[0]?.tombstone).toBe(true);
    expect(deleted.clock).toEqual({ a: 2 });
  });

  it('a tombstone merged into a stale replica removes the old value there too', () => {
    const written = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const deleted = applyWrite(written, 'b', remove(written.clock), 'siblings');
    const repaired = mergeObjects(written, deleted, 'siblings');
    expect(isDeleted(repaired)).toBe(true);
    expect(dotsOf(repaired)).toEqual(['b:1']);
  });

  it('a delete concurrent with a write leaves the written value visible', () => {
    const written = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const deleted = applyWrite(written, 'b', remove(written.clock), 'siblings');
    const concurrent = applyWrite(written, 'a', put('v2', written.clock), 'siblings');
    const merged = mergeObjects(deleted, concurrent, 'siblings');
    expect(isDeleted(merged)).toBe(false);
    expect(liveSiblings(merged).map(textOf)).toEqual(['v2']);
    expect(merged.siblings).toHaveLength(2);
  });

  it('a write with the context of a tombstone brings the key back with one sibling', () => {
    const written = applyWrite(emptyObject, 'a', put('v1', emptyVector), 'siblings');
    const deleted = applyWrite(written, 'a', remove(written.clock), 'siblings');
    const revived = applyWrite(deleted, 'a', put('v3', deleted.clock), 'siblings');
    expect(isDeleted(revived)).toBe(false);
    expect(valuesOf(revived)).toEqual(['v3']);
  });

  it('a key that was never written reads as deleted', () => {
    expect(isDeleted(emptyObject)).toBe(true);
  });
});

describe('lww mode keeps exactly one sibling: the newest by timestamp, ties broken the same way everywhere', () => {
  it('concurrent writes merge to the one with the later timestamp, in either order', () => {
    const early = applyWrite(emptyObject, 'b', put('early', emptyVector, 100), 'lww');
    const late = applyWrite(emptyObject, 'a', put('late', emptyVector, 200), 'lww');
    expect(valuesOf(mergeObjects(early, late, 'lww'))).toEqual(['late']);
    expect(valuesOf(mergeObjects(late, early, 'lww'))).toEqual(['late']);
    expect(mergeObjects(early, late, 'lww').clock).toEqual({ a: 1, b: 1 });
  });

  it('a write without context replaces the local sibling instead of adding one', () => {
    const first = applyWrite(emptyObject, 'a', put('v1', emptyVector, 100), 'lww');
    const second = applyWrite(first, 'a', put('v2', emptyVector, 200), 'lww');
    expect(valuesOf(second)).toEqual(['v2']);
  });

  it('a write whose wall clock is behind still gets a timestamp after the local one, so it wins', () => {
    const first = applyWrite(emptyObject, 'a', put('v1', emptyVector, 500), 'lww');
    const skewed = applyWrite(first, 'b', put('v2', emptyVector, 100), 'lww');
    expect(skewed.siblings[0]?.lastModifiedMs).toBe(501);
    expect(valuesOf(mergeObjects(first, skewed, 'lww'))).toEqual(['v2']);
  });

  it('equal timestamps are broken by dot, the same in both merge orders', () => {
    const atA = applyWrite(emptyObject, 'a', put('from a', emptyVector, 100), 'lww');
    const atB = applyWrite(emptyObject, 'b', put('from b', emptyVector, 100), 'lww');
    expect(valuesOf(mergeObjects(atA, atB, 'lww'))).toEqual(['from b']);
    expect(valuesOf(mergeObjects(atB, atA, 'lww'))).toEqual(['from b']);
    const lowCounter: VersionedObject = { clock: { a: 3 }, siblings: [sibling('a', 2, 100)] };
    const highCounter: VersionedObject = { clock: { a: 3 }, siblings: [sibling('a', 3, 100)] };
    expect(dotsOf(mergeObjects(lowCounter, highCounter, 'lww'))).toEqual(['a:3']);
    expect(dotsOf(mergeObjects(highCounter, lowCounter, 'lww'))).toEqual(['a:3']);
  });
});

// ---------------------------------------------------------------------------------------------
// Random histories: writes coordinated at several replicas with the context of some replica's
// current object, interleaved with syncs (one replica merged into another).

const replicaIds = ['a', 'b', 'c', 'd'] as const;
type ReplicaId = (typeof replicaIds)[number];

type Operation =
  | { kind: 'write'; coordinator: ReplicaId; contextFrom: ReplicaId | 'none'; tombstone: boolean; nowMs: number }
  | { kind: 'sync'; from: ReplicaId; to: ReplicaId };

const replicaArbitrary = fc.constantFrom(...replicaIds);
const operationArbitrary: fc.Arbitrary<Operation> = fc.oneof(
  fc.record({
    kind: fc.constant('write' as const),
    coordinator: replicaArbitrary,
    contextFrom: fc.oneof(replicaArbitrary, fc.constant('none' as const)),
    tombstone: fc.boolean(),
    // A narrow range, so equal timestamps (and so lww tie-breaks) happen often.
    nowMs: fc.integer({ min: 0, max: 20 }),
  }),
  fc.record({ kind: fc.constant('sync' as const), from: replicaArbitrary, to: replicaArbitrary }),
);
const historyArbitrary = fc.array(operationArbitrary, { minLength: 1, maxLength: 40 });

/** What a history did, for the oracles: the dots it created and every write context in order. */
interface HistoryRun {
  readonly replicas: Map<ReplicaId, VersionedObject>;
  /** Every object any replica held at any point, in order (all from one consistent history). */
  readonly snapshots: VersionedObject[];
  /** Each created sibling by dot, with the index of the write that created it. */
  readonly created: Map<string, { sibling: Sibling; writeIndex: number }>;
  /** The context of each write, by write index. */
  readonly contexts: VersionVector[];
}

function runHistory(history: readonly Operation[], mode: ConflictMode): HistoryRun {
  const replicas = new Map<ReplicaId, VersionedObject>(replicaIds.map((id) => [id, emptyObject]));
  const read = (id: ReplicaId): VersionedObject => replicas.get(id) ?? emptyObject;
  const snapshots: VersionedObject[] = [emptyObject];
  const created = new Map<string, { sibling: Sibling; writeIndex: number }>();
  const contexts: VersionVector[] = [];
  for (const operation of history) {
    if (operation.kind === 'sync') {
      replicas.set(operation.to, mergeObjects(read(operation.to), read(operation.from), mode));
    } else {
      const writeIndex = contexts.length;
      const context = operation.contextFrom === 'none' ? emptyVector : read(operation.contextFrom).clock;
      const intent: WriteIntent = {
        // A unique value per write, so an oracle can tell that a surviving sibling kept its own content.
        value: text(`write ${writeIndex}`),
        contentType: 'text/plain',
        tombstone: operation.tombstone,
        context: readContext(context),
        nowMs: operation.nowMs,
      };
      const written = applyWrite(read(operation.coordinator), operation.coordinator, intent, mode);
      const newSibling = written.siblings.find((candidate) => textOf(candidate) === `write ${writeIndex}`);
      expect(newSibling, 'a write must appear in its coordinator object').toBeDefined();
      if (newSibling === undefined) continue;
      expect(created.has(dotName(newSibling.dot)), `dot ${dotName(newSibling.dot)} was issued twice`).toBe(false);
      created.set(dotName(newSibling.dot), { sibling: newSibling, writeIndex });
      contexts.push(context);
      replicas.set(operation.coordinator, written);
    }
    snapshots.push(...replicas.values());
  }
  return { replicas, snapshots, created, contexts };
}

/** The dots no later write's context covered: exactly the siblings that must survive a full merge. */
function neverSuperseded(run: HistoryRun): Set<string> {
  const survivors = new Set<string>();
  for (const [name, { sibling: candidate, writeIndex }] of run.created) {
    const superseded = run.contexts.some((context, index) => index > writeIndex && covers(context, candidate.dot));
    if (!superseded) survivors.add(name);
  }
  return survivors;
}

function mergeAll(objects: readonly VersionedObject[], mode: ConflictMode): VersionedObject {
  return objects.reduce((merged, object) => mergeObjects(merged, object, mode), emptyObject);
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [items.slice()];
  return items.flatMap((item, index) => permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest]));
}

/** Three objects taken from the snapshots of one history, so their dots never clash. */
const snapshotTripleArbitrary = (mode: ConflictMode) =>
  fc.tuple(historyArbitrary, fc.nat(), fc.nat(), fc.nat()).map(([history, first, second, third]) => {
    const { snapshots } = runHistory(history, mode);
    const pick = (index: number): VersionedObject => snapshots[index % snapshots.length] ?? emptyObject;
    return [pick(first), pick(second), pick(third)] as const;
  });

describe.each<ConflictMode>(['siblings', 'lww'])('mergeObjects laws over random histories (%s mode)', (mode) => {
  it('is commutative', () => {
    fc.assert(
      fc.property(snapshotTripleArbitrary(mode), ([left, right]) => {
        expect(versionIdentity(mergeObjects(left, right, mode))).toBe(versionIdentity(mergeObjects(right, left, mode)));
      }),
    );
  });

  it('is associative', () => {
    fc.assert(
      fc.property(snapshotTripleArbitrary(mode), ([first, second, third]) => {
        const leftFirst = mergeObjects(mergeObjects(first, second, mode), third, mode);
        const rightFirst = mergeObjects(first, mergeObjects(second, third, mode), mode);
        expect(versionIdentity(leftFirst)).toBe(versionIdentity(rightFirst));
      }),
    );
  });

  it('is idempotent', () => {
    fc.assert(
      fc.property(snapshotTripleArbitrary(mode), ([object]) => {
        expect(versionIdentity(mergeObjects(object, object, mode))).toBe(versionIdentity(object));
      }),
    );
  });

  it('has a clock that descends both inputs and keeps only siblings one of them had', () => {
    fc.assert(
      fc.property(snapshotTripleArbitrary(mode), ([left, right]) => {
        const merged = mergeObjects(left, right, mode);
        expect(descends(merged.clock, left.clock)).toBe(true);
        expect(descends(merged.clock, right.clock)).toBe(true);
        const inputDots = new Set([...dotsOf(left), ...dotsOf(right)]);
        for (const name of dotsOf(merged)) expect(inputDots.has(name)).toBe(true);
      }),
    );
  });
});

describe('siblings mode over random histories: no concurrent write is lost and no overwritten one survives', () => {
  it('merging every replica keeps exactly the writes no later context covered, each with its own content', () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        const run = runHistory(history, 'siblings');
        const merged = mergeAll([...run.replicas.values()], 'siblings');
        const expected = neverSuperseded(run);
        expect(new Set(dotsOf(merged))).toEqual(expected);
        expect(merged.siblings).toHaveLength(expected.size);
        for (const survivor of merged.siblings) {
          const origin = run.created.get(dotName(survivor.dot));
          expect(textOf(survivor)).toBe(origin && textOf(origin.sibling));
          expect(survivor.tombstone).toBe(origin?.sibling.tombstone);
        }
        expect(isDeleted(merged)).toBe([...expected].every((name) => run.created.get(name)?.sibling.tombstone));
      }),
    );
  });

  it('every order of merging the replicas gives the same version', () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        const run = runHistory(history, 'siblings');
        const identities = new Set(permutations([...run.replicas.values()]).map((order) => versionIdentity(mergeAll(order, 'siblings'))));
        expect(identities.size).toBe(1);
      }),
    );
  });
});

describe('lww mode over random histories: one survivor that every merge order agrees on', () => {
  it('merging every replica in any order leaves at most one sibling, the same one each time', () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        const run = runHistory(history, 'lww');
        const results = permutations([...run.replicas.values()]).map((order) => mergeAll(order, 'lww'));
        for (const result of results) expect(result.siblings.length).toBeLessThanOrEqual(1);
        expect(new Set(results.map(versionIdentity)).size).toBe(1);
      }),
    );
  });

  it('the survivor is the created write with the latest timestamp, ties broken by the larger dot', () => {
    fc.assert(
      fc.property(historyArbitrary, (history) => {
        const run = runHistory(history, 'lww');
        const merged = mergeAll([...run.replicas.values()], 'lww');
        const all = [...run.created.values()].map(({ sibling: candidate }) => candidate);
        all.sort(
          (left, right) =>
            right.lastModifiedMs - left.lastModifiedMs ||
            (right.dot.node === left.dot.node ? right.dot.counter - left.dot.counter : right.dot.node < left.dot.node ? -1 : 1),
        );
        expect(dotsOf(merged)).toEqual(all.length === 0 ? [] : [dotName(all[0]!.dot)]);
      }),
    );
  });
});
