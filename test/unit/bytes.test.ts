import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteReader, ByteWriter } from '../../src/core/wire/bytes.js';

/**
 * Goal: ByteWriter.string writes exactly the bytes of bytes(Buffer.from(text, 'utf8')) (a length
 * varint, then the UTF-8), for every string: ASCII, multi-byte characters, lone surrogates, and
 * lengths either side of the one-byte length fast path; ByteReader.string reads them back.
 */
describe('binary strings', () => {
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.string({ unit: 'grapheme', maxLength: 60 }),
    fc.string({ unit: fc.constantFrom('a', 'é', '€', '\ud83d', '\ude00', '😀'), minLength: 38, maxLength: 50 }),
    fc.string({ unit: fc.constantFrom('€', '\ud83d'), minLength: 40, maxLength: 50 }),
    fc.string({ unit: 'grapheme-ascii', minLength: 100, maxLength: 20_000 }),
  );

  it('writes the same bytes as a length-prefixed Buffer.from, and reads back what Buffer.toString gives', () => {
    fc.assert(
      fc.property(text, fc.string({ maxLength: 5 }), (value, before) => {
        const fast = new ByteWriter().string(before).string(value).u8(7).finish();
        const plain = new ByteWriter().bytes(Buffer.from(before, 'utf8')).bytes(Buffer.from(value, 'utf8')).u8(7).finish();
        expect(Buffer.compare(fast, plain)).toBe(0);
        const reader = new ByteReader(new Uint8Array(fast));
        expect(reader.string()).toBe(Buffer.from(before, 'utf8').toString('utf8'));
        expect(reader.string()).toBe(Buffer.from(value, 'utf8').toString('utf8'));
        expect(reader.u8()).toBe(7);
        expect(reader.done()).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a string whose length runs past the end', () => {
    const bytes = new ByteWriter().string('hello').finish().subarray(0, 4);
    expect(() => new ByteReader(bytes).string()).toThrow(/truncated/);
  });

  // A lenient decode turns each invalid byte into U+FFFD (three bytes once encoded again), so a
  // string read within its bound could be written back over it, and would not be what was sent.
  it('refuses bytes that are not valid UTF-8, and keeps a U+FFFD that was sent as one', () => {
    const invalid = [[0xff], [0x61, 0xc3], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0x61, 0x80, 0x62]];
    for (const raw of invalid) {
      const bytes = new ByteWriter().bytes(Buffer.from(raw)).finish();
      expect(() => new ByteReader(bytes).string(), Buffer.from(raw).toString('hex')).toThrow(/not valid UTF-8/);
    }
    const replacement = new ByteWriter().string('a\ufffdb').finish();
    expect(new ByteReader(replacement).string()).toBe('a\ufffdb');
  });
});
