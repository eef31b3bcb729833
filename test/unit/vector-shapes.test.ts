import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { decodeObject, encodeObject } from '../../src/core/versioning/object-codec.js';
import { increment, merge, sortVector } from '../../src/core/versioning/version-vector.js';

/**
 * Goal: a version vector costs V8 no hidden class per actor name. Every key epoch is an actor of
 * its own, so nearly every stored key's vector names an actor no other does; vectors built as
 * ordinary objects made V8 create a hidden class and a transition for each new name, on every
 * read of an object (bench/RESULTS.md, "a million keys"). Vectors are kept in dictionary mode
 * instead, so two vectors with different names share one hidden class.
 */

setFlagsFromString('--allow-natives-syntax');
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

describe('version vectors and hidden classes', () => {
  it('vectors naming different actors share one hidden class, however they were built', () => {
    const decoded = (actor: string): object =>
      decodeObject(
        encodeObject({
          clock: { [actor]: 3, other: 1 },
          siblings: [{ dot: { node: actor, counter: 3 }, value: Buffer.from('x'), tombstone: false, lastModifiedMs: 1, contentType: 'text/plain' }],
        }),
      ).clock;
    expect(haveSameMap(decoded('n1/101'), decoded('n1/202'))).toBe(true);
    expect(haveSameMap(increment({}, 'n1/303'), increment({}, 'n1/404'))).toBe(true);
    expect(haveSameMap(merge({ 'n1/505': 1 }, { 'n2/1': 1 }), merge({ 'n1/606': 1 }, { 'n2/2': 1 }))).toBe(true);
    expect(haveSameMap(sortVector({ 'n1/707': 1 }), sortVector({ 'n1/808': 1 }))).toBe(true);
  });
});
