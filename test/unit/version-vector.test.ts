import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type Ordering,
  type VersionVector,
  compare,
  counterOf,
  descends,
  emptyVector,
  increment,
  merge,
  sortVector,
} from '../../src/core/versioning/version-vector.js';

/**
 * Goal: version vectors order writes the way Dynamo and Riak need. compare() tells happened-before
 * from concurrency, increment() records one new event, and merge() is a least upper bound whose
 * laws (commutative, associative, idempotent) let replicas converge whatever the order of syncs.
 */

// Few node ids and small counters, so generated vectors often share entries and every ordering occurs.
const nodeIdArbitrary = fc.constantFrom('a', 'b', 'c', 'd', 'n0a1b2c3d4e5f');
const vectorArbitrary: fc.Arbitrary<VersionVector> = fc
  .array(fc.tuple(nodeIdArbitrary, fc.integer({ min: 0, max: 4 })), { maxLength: 6 })
  .map((entries) => sortVector(Object.fromEntries(entries)));

/** The ordering seen from the other side. */
const mirrored: Record<Ordering, Ordering> = { before: 'after', after: 'before', equal: 'equal', concurrent: 'concurrent' };

/** Entries in key order, so a check also catches a merge whose key order (and so its encoding) differs. */
function entriesOf(vector: VersionVector): [string, number][] {
  return Object.entries(vector);
}

describe('compare tells happened-before, happened-after, equality and concurrency apart', () => {
  it.each<[string, VersionVector, VersionVector, Ordering]>([
    ['two empty vectors are equal', {}, {}, 'equal'],
    ['identical vectors are equal', { a: 2, b: 1 }, { a: 2, b: 1 }, 'equal'],
    ['a zero counter counts as an absent entry', { a: 1, b: 0 }, { a: 1 }, 'equal'],
    ['the empty vector is before any event', {}, { a: 1 }, 'before'],
    ['any event is after the empty vector', { a: 1 }, {}, 'after'],
    ['a lower counter of the same node is before', { a: 1 }, { a: 2 }, 'before'],
    ['a higher counter of the same node is after', { a: 3 }, { a: 2 }, 'after'],
    ['a vector missing a node the other has is before it', { a: 1 }, { a: 1, b: 1 }, 'before'],
    ['a vector with an extra node is after', { a: 1, b: 3, c: 1 }, { a: 1, b: 3 }, 'after'],
    ['events at different nodes are concurrent', { a: 1 }, { b: 1 }, 'concurrent'],
    ['crossing counters are concurrent', { a: 2, b: 1 }, { a: 1, b: 2 }, 'concurrent'],
    ['one greater and one missing entry are concurrent', { a: 2 }, { a: 1, b: 1 }, 'concurrent'],
  ])('%s', (_goal, left, right, expected) => {
    expect(compare(left, right)).toBe(expected);
  });
});

describe('descends(right, left) holds exactly when right has seen every event of left', () => {
  it.each<[string, VersionVector, VersionVector, boolean]>([
    ['every vector descends the empty vector', { a: 1 }, {}, true],
    ['a vector descends itself', { a: 2, b: 1 }, { a: 2, b: 1 }, true],
    ['a later vector descends an earlier one', { a: 3, b: 1 }, { a: 2 }, true],
    ['an earlier vector does not descend a later one', { a: 2 }, { a: 3, b: 1 }, false],
    ['a vector does not descend one with an unseen node', { a: 5 }, { b: 1 }, false],
  ])('%s', (_goal, right, left, expected) => {
    expect(descends(right, left)).toBe(expected);
  });
});

describe('increment records exactly one new event of one node', () => {
  it.each<[string, VersionVector, string, VersionVector]>([
    ['the first event of a node starts its counter at 1', {}, 'a', { a: 1 }],
    ['a further event raises only that node counter', { a: 1, b: 2 }, 'b', { a: 1, b: 3 }],
    ['an event of a new node adds its entry and keeps the others', { a: 4 }, 'c', { a: 4, c: 1 }],
  ])('%s', (_goal, vector, node, expected) => {
    expect(increment(vector, node)).toEqual(expected);
  });

  it('leaves the input vector untouched, so frozen vectors can be incremented', () => {
    const frozen = Object.freeze({ a: 1 });
    expect(increment(frozen, 'a')).toEqual({ a: 2 });
    expect(frozen).toEqual({ a: 1 });
    expect(increment(emptyVector, 'a')).toEqual({ a: 1 });
    expect(emptyVector).toEqual({});
  });

  it('reads an absent counter as 0', () => {
    expect(counterOf({ a: 3 }, 'b')).toBe(0);
    expect(counterOf({ a: 3 }, 'a')).toBe(3);
  });

  it('makes the incremented vector come after the original one', () => {
    fc.assert(
      fc.property(vectorArbitrary, nodeIdArbitrary, (vector, node) => {
        expect(compare(vector, increment(vector, node))).toBe('before');
        expect(counterOf(increment(vector, node), node)).toBe(counterOf(vector, node) + 1);
      }),
    );
  });

  it('makes events of two different nodes from the same vector concurrent', () => {
    fc.assert(
      fc.property(vectorArbitrary, nodeIdArbitrary, nodeIdArbitrary, (vector, first, second) => {
        fc.pre(first !== second);
        expect(compare(increment(vector, first), increment(vector, second))).toBe('concurrent');
      }),
    );
  });
});

describe('merge takes the pointwise maximum', () => {
  it.each<[string, VersionVector, VersionVector, VersionVector]>([
    ['merging with the empty vector changes nothing', { a: 2 }, {}, { a: 2 }],
    ['disjoint nodes are all kept', { a: 1 }, { b: 2 }, { a: 1, b: 2 }],
    ['the higher counter of each node wins', { a: 3, b: 1 }, { a: 1, b: 4 }, { a: 3, b: 4 }],
    ['zero counters are dropped', { a: 0 }, { b: 1 }, { b: 1 }],
  ])('%s', (_goal, left, right, expected) => {
    expect(entriesOf(merge(left, right))).toEqual(entriesOf(expected));
  });

  it('orders keys so equal vectors encode to equal bytes', () => {
    expect(Object.keys(merge({ c: 1, a: 1 }, { b: 1 }))).toEqual(['a', 'b', 'c']);
  });
});

describe('merge laws, so replicas converge whatever the order of syncs', () => {
  it('is commutative', () => {
    fc.assert(
      fc.property(vectorArbitrary, vectorArbitrary, (left, right) => {
        expect(entriesOf(merge(left, right))).toEqual(entriesOf(merge(right, left)));
      }),
    );
  });

  it('is associative', () => {
    fc.assert(
      fc.property(vectorArbitrary, vectorArbitrary, vectorArbitrary, (first, second, third) => {
        expect(entriesOf(merge(merge(first, second), third))).toEqual(entriesOf(merge(first, merge(second, third))));
      }),
    );
  });

  it('is idempotent', () => {
    fc.assert(
      fc.property(vectorArbitrary, (vector) => {
        expect(entriesOf(merge(vector, vector))).toEqual(entriesOf(vector));
      }),
    );
  });

  it('descends both of its inputs', () => {
    fc.assert(
      fc.property(vectorArbitrary, vectorArbitrary, (left, right) => {
        const merged = merge(left, right);
        expect(descends(merged, left)).toBe(true);
        expect(descends(merged, right)).toBe(true);
        expect(['before', 'equal']).toContain(compare(left, merged));
        expect(['before', 'equal']).toContain(compare(right, merged));
      }),
    );
  });

  it('is the least upper bound: every vector that descends both inputs descends the merge', () => {
    fc.assert(
      fc.property(vectorArbitrary, vectorArbitrary, vectorArbitrary, (left, right, candidate) => {
        fc.pre(descends(candidate, left) && descends(candidate, right));
        expect(descends(candidate, merge(left, right))).toBe(true);
      }),
    );
  });
});

describe('compare is antisymmetric and agrees with equality', () => {
  it('swapping the arguments turns before into after, after into before, and keeps equal and concurrent', () => {
    fc.assert(
      fc.property(vectorArbitrary, vectorArbitrary, (left, right) => {
        expect(compare(right, left)).toBe(mirrored[compare(left, right)]);
      }),
    );
  });

  it('answers equal exactly when both vectors have the same entries', () => {
    fc.assert(
      fc.property(vectorArbitrary, vectorArbitrary, (left, right) => {
        const sameEntries = JSON.stringify(entriesOf(left)) === JSON.stringify(entriesOf(right));
        expect(compare(left, right) === 'equal').toBe(sameEntries);
      }),
    );
  });

  it('answers before exactly when the merge equals the right vector and they differ', () => {
    fc.assert(
      fc.property(vectorArbitrary, vectorArbitrary, (left, right) => {
        const mergedIsRight = JSON.stringify(entriesOf(merge(left, right))) === JSON.stringify(entriesOf(right));
        const sameEntries = JSON.stringify(entriesOf(left)) === JSON.stringify(entriesOf(right));
        expect(compare(left, right) === 'before').toBe(mergedIsRight && !sameEntries);
      }),
    );
  });
});
