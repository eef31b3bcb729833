/**
 * Micro-benchmarks of the versioning core that every write and read repair runs: version
 * vector merge, applying a write to a dotted-version-vector object, and merging replicas'
 * objects. `npm run bench:micro`.
 */
import { readContext } from '../../src/core/versioning/context.js';
import { bench, describe } from 'vitest';
import { merge as mergeVectors } from '../../src/core/versioning/version-vector.js';
import { type VersionedObject, type WriteIntent, applyWrite, emptyObject, mergeObjects } from '../../src/core/versioning/versioned-object.js';

const value = new Uint8Array(100).fill(7);
const vector = (nodeCount: number, base: number): Record<string, number> =>
  Object.fromEntries(Array.from({ length: nodeCount }, (_, index) => [`node-${String(index + 1).padStart(2, '0')}`, base + index]));

function write(context: VersionedObject['clock'], nowMs: number): WriteIntent {
  return { value, contentType: 'application/octet-stream', tombstone: false, context: readContext(context), nowMs };
}

/** An object written `writes` times through `coordinators` nodes in turn, each write with the last context. */
function history(coordinators: number, writes: number): VersionedObject {
  let object = emptyObject;
  for (let index = 0; index < writes; index++) object = applyWrite(object, `node-${(index % coordinators) + 1}`, write(object.clock, 1000 + index), 'siblings');
  return object;
}

describe('version vector merge', () => {
  const left3 = vector(3, 10);
  const right3 = vector(3, 11);
  const left10 = vector(10, 10);
  const right10 = vector(10, 11);
  bench('merge, 3 entries', () => {
    mergeVectors(left3, right3);
  });
  bench('merge, 10 entries', () => {
    mergeVectors(left10, right10);
  });
});

describe('applyWrite', () => {
  const current = history(3, 20);
  bench('siblings mode, with the current context (replaces the value)', () => {
    applyWrite(current, 'node-2', write(current.clock, 5000), 'siblings');
  });
  bench('siblings mode, blind write (adds a sibling)', () => {
    applyWrite(current, 'node-2', write({}, 5000), 'siblings');
  });
  bench('lww mode', () => {
    applyWrite(current, 'node-2', write({}, 5000), 'lww');
  });
});

describe('mergeObjects', () => {
  const object = history(3, 20);
  const newer = applyWrite(object, 'node-1', write(object.clock, 6000), 'siblings');
  const concurrentLeft = applyWrite(object, 'node-1', write(object.clock, 6000), 'siblings');
  const concurrentRight = applyWrite(object, 'node-2', write(object.clock, 6001), 'siblings');
  bench('equal replicas (the common read-repair case)', () => {
    mergeObjects(object, object, 'siblings');
  });
  bench('one replica behind', () => {
    mergeObjects(object, newer, 'siblings');
  });
  bench('concurrent writes (two siblings)', () => {
    mergeObjects(concurrentLeft, concurrentRight, 'siblings');
  });
  bench('lww, concurrent writes', () => {
    mergeObjects(concurrentLeft, concurrentRight, 'lww');
  });
});
