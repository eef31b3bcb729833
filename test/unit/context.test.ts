import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeContext, encodeContext, maxContextLength, objectContext, writeContext, writeTimeMs } from '../../src/core/versioning/context.js';
import { type VersionVector, sortVector } from '../../src/core/versioning/version-vector.js';
import { KvError } from '../../src/util/errors.js';

/**
 * Goal: the causal context a client gets with a read comes back, on its next write, as the same
 * version vector; anything else a client sends in its place is refused with KV_BAD_CONTEXT (HTTP
 * 400) and a message that says what to do, before it can reach the versioning logic.
 */

/** A context with the given JSON text as its payload. */
const withPayload = (json: string): string => `c1.${Buffer.from(json, 'utf8').toString('base64url')}`;

/** Runs decodeContext and answers the KvError it threw; fails the test if it threw anything else or nothing. */
function rejectionOf(text: string): KvError {
  try {
    decodeContext(text);
  } catch (error) {
    expect(error).toBeInstanceOf(KvError);
    return error as KvError;
  }
  throw new Error(`expected ${JSON.stringify(text.slice(0, 60))} to be refused, but it decoded`);
}

// Real node ids are 'n' and 12 hex digits; unicode ids show the encoding does not depend on that.
// '__proto__' is left out: as a plain-object key it cannot be an own entry, and no node is named so.
const nodeIdArbitrary = fc.oneof(
  fc.stringMatching(/^n[0-9a-f]{12}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).filter((id) => id !== '__proto__' && id.length <= 128),
);
const clockArbitrary: fc.Arbitrary<VersionVector> = fc
  .uniqueArray(fc.tuple(nodeIdArbitrary, fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })), { selector: ([node]) => node, maxLength: 10 })
  .map((entries) => sortVector(Object.fromEntries(entries)));

describe('a context decodes to the clock it was encoded from', () => {
  it('round-trips the empty clock', () => {
    expect(decodeContext(encodeContext({})).vector).toEqual({});
  });

  it('round-trips a typical clock of node ids', () => {
    const clock = { n0123456789ab: 3, nfedcba987654: 1 };
    expect(Object.entries(decodeContext(encodeContext(clock)).vector)).toEqual(Object.entries(clock));
  });

  it('round-trips any clock, with unicode node ids and counters up to Number.MAX_SAFE_INTEGER', () => {
    fc.assert(
      fc.property(clockArbitrary, (clock) => {
        const text = encodeContext(clock);
        expect(text).toMatch(/^c1\.[A-Za-z0-9_-]*$/);
        expect(Object.entries(decodeContext(text).vector)).toEqual(Object.entries(clock));
      }),
    );
  });

  it('decodes entries in any order to the same sorted clock', () => {
    expect(Object.keys(decodeContext(withPayload('[["b",2],["a",1]]')).vector)).toEqual(['a', 'b']);
  });

  it('accepts a valid context as long as the limit allows', () => {
    // 12,285 bytes of JSON are 16,380 base64url characters: with 'c1.' the longest a context can be (16,384 would need 12,285.75).
    const text = withPayload('[["a",1]]'.padEnd(12_285, ' '));
    expect(text.length).toBe(maxContextLength - 1);
    expect(decodeContext(text).vector).toEqual({ a: 1 });
  });
});

describe('a malformed context is refused with KV_BAD_CONTEXT', () => {
  it.each<[string, string, RegExp]>([
    ['an empty header', '', /unknown format/],
    ['a context without the format prefix', Buffer.from('[["a",1]]').toString('base64url'), /unknown format/],
    ['a context of an unknown format version', withPayload('[["a",1]]').replace(/^c1\./, 'c9.'), /unknown format/],
    ['a payload in standard base64 with padding', `c1.${Buffer.from('[["a",1]]?').toString('base64')}`, /not base64url/],
    ['a payload with characters outside base64url', 'c1.abc$def', /not base64url/],
    ['a payload with whitespace', 'c1.W10 ', /not base64url/],
    ['an empty payload', 'c1.', /not decodable/],
    ['a payload that is not JSON', withPayload('hello'), /not decodable/],
    ['a payload that is truncated JSON', withPayload('[["a",1]'), /not decodable/],
    ['a JSON object instead of a list', withPayload('{"a":1}'), /not a list/],
    ['a JSON number instead of a list', withPayload('7'), /not a list/],
    ['JSON null instead of a list', withPayload('null'), /not a list/],
    ['an entry that is not a pair', withPayload('["a"]'), /bad entry/],
    ['an entry with one element', withPayload('[["a"]]'), /bad entry/],
    ['an entry with three elements', withPayload('[["a",1,2]]'), /bad entry/],
    ['an entry whose node id is not a string', withPayload('[[1,1]]'), /bad entry/],
    ['an entry with an empty node id', withPayload('[["",1]]'), /bad entry/],
    ['an entry with a node id over 128 characters', withPayload(`[["${'x'.repeat(129)}",1]]`), /bad entry/],
    ['an entry whose counter is a string', withPayload('[["a","1"]]'), /bad entry/],
    ['an entry whose counter is a fraction', withPayload('[["a",1.5]]'), /bad entry/],
    ['an entry whose counter is zero', withPayload('[["a",0]]'), /bad entry/],
    ['an entry whose counter is negative', withPayload('[["a",-1]]'), /bad entry/],
    ['an entry whose counter is beyond the safe integers', withPayload('[["a",9007199254740992]]'), /bad entry/],
    ['a bad entry after good ones', withPayload('[["a",1],["b",2],["c",null]]'), /bad entry/],
    ['a context longer than the limit', `c1.${'A'.repeat(maxContextLength)}`, /longer than/],
  ])('%s', (_goal, text, reason) => {
    const error = rejectionOf(text);
    expect(error.code).toBe('KV_BAD_CONTEXT');
    expect(error.status).toBe(400);
    expect(error.message).toMatch(reason);
    expect(error.message).toMatch(/send back the header exactly as a GET or PUT returned it/);
  });

  it('refuses an otherwise valid context one byte of payload over the length limit', () => {
    const text = withPayload('[["a",1]]'.padEnd(12_286, ' '));
    expect(text.length).toBe(maxContextLength + 1);
    expect(rejectionOf(text).message).toMatch(/longer than/);
  });

  it('accepts a node id of exactly 128 characters', () => {
    const node = 'x'.repeat(128);
    expect(decodeContext(withPayload(`[["${node}",1]]`)).vector).toEqual({ [node]: 1 });
  });

  it('refuses any base64url payload whose JSON is not a list of [node, positive counter] pairs', () => {
    const notAClock = fc
      .jsonValue()
      .filter(
        (value) =>
          !Array.isArray(value) ||
          value.some(
            (pair) =>
              !Array.isArray(pair) ||
              pair.length !== 2 ||
              typeof pair[0] !== 'string' ||
              pair[0].length === 0 ||
              pair[0].length > 128 ||
              !Number.isSafeInteger(pair[1]) ||
              (pair[1] as number) < 1,
          ),
      );
    fc.assert(
      fc.property(notAClock, (value) => {
        expect(rejectionOf(withPayload(JSON.stringify(value))).code).toBe('KV_BAD_CONTEXT');
      }),
    );
  });
});

describe('a context carries the newest version time it was shown, and a write made with it is stamped after that (lww under skew)', () => {
  const timeArbitrary = fc.double({ min: 0, max: 4e12, noNaN: true });

  it('round-trips the time with the clock and dots (c3.)', () => {
    fc.assert(
      fc.property(clockArbitrary, timeArbitrary, (vector, lastModifiedMs) => {
        const text = encodeContext({ vector, dots: [{ node: 'n1', counter: 7 }], lastModifiedMs });
        expect(text.startsWith('c3.')).toBe(true);
        expect(decodeContext(text)).toEqual({ vector, dots: [{ node: 'n1', counter: 7 }], lastModifiedMs });
      }),
    );
  });

  it('refuses a time that is not a number of ms a Date can hold', () => {
    for (const time of ['"soon"', '-1', '1e300', 'null']) {
      const text = `c3.${Buffer.from(`[[["a",1]],[],${time}]`, 'utf8').toString('base64url')}`;
      expect(rejectionOf(text).message).toMatch(/bad time/);
    }
  });

  it("a read's context has the newest time of any sibling, tombstones included", () => {
    const sibling = (node: string, lastModifiedMs: number, tombstone: boolean) => ({
      dot: { node, counter: 1 },
      value: new Uint8Array(0),
      contentType: 'text/plain',
      lastModifiedMs,
      tombstone,
    });
    const context = objectContext({ clock: { a: 1, b: 1 }, siblings: [sibling('a', 50, false), sibling('b', 90, true)] });
    expect(context).toEqual({ vector: { a: 1, b: 1 }, dots: [], lastModifiedMs: 90 });
    expect(objectContext({ clock: {}, siblings: [] })).toEqual({ vector: {}, dots: [] });
  });

  it('a write time is never before the clock nor at or before the context time', () => {
    fc.assert(
      fc.property(timeArbitrary, fc.option(timeArbitrary, { nil: undefined }), (nowMs, lastModifiedMs) => {
        const context = lastModifiedMs === undefined ? { vector: {}, dots: [] } : { vector: {}, dots: [], lastModifiedMs };
        const stamped = writeTimeMs(nowMs, context);
        expect(stamped).toBeGreaterThanOrEqual(nowMs);
        if (lastModifiedMs !== undefined) expect(stamped).toBeGreaterThan(lastModifiedMs);
      }),
    );
  });

  it("a write's context keeps the newer of the time it was made with and the new version's time", () => {
    expect(writeContext({ vector: {}, dots: [], lastModifiedMs: 100 }, { node: 'a', counter: 1 }, 150).lastModifiedMs).toBe(150);
    expect(writeContext({ vector: {}, dots: [], lastModifiedMs: 200 }, { node: 'a', counter: 1 }, 150).lastModifiedMs).toBe(200);
    expect(writeContext({ vector: {}, dots: [] }, { node: 'a', counter: 1 }).lastModifiedMs).toBeUndefined();
  });
});
