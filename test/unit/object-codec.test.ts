import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeObject, encodeObject, objectFormatVersion, readObject, writeObject } from '../../src/core/versioning/object-codec.js';
import type { Sibling, VersionedObject } from '../../src/core/versioning/versioned-object.js';
import { ByteReader, ByteWriter } from '../../src/core/wire/bytes.js';
import { type KvErrorCode, KvError } from '../../src/util/errors.js';

/**
 * Goal: the versioned on-disk object format reads back exactly what was written, refuses a
 * format version it does not know and bytes it did not expect, and the byte reader under it turns
 * every truncated or malformed field into a KvError instead of a wrong value.
 */

/** Runs `action` and answers the KvError code it threw; fails the test if it threw anything else or nothing. */
function kvErrorCodeOf(action: () => unknown): KvErrorCode {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(KvError);
    return (error as KvError).code;
  }
  throw new Error('expected a KvError, but nothing was thrown');
}

/** A plain, comparable view of an object: values as byte arrays, so a Buffer and a Uint8Array compare equal. */
function comparable(object: VersionedObject): unknown {
  return {
    clock: Object.entries(object.clock),
    siblings: object.siblings.map((sibling) => ({ ...sibling, value: Array.from(sibling.value) })),
  };
}

// Real node ids are 'n' and 12 hex digits; unicode ids show the codec does not depend on that.
// '__proto__' is left out: as a plain-object key it cannot be an own entry, and no node is named so.
const nodeIdArbitrary = fc.oneof(
  fc.stringMatching(/^n[0-9a-f]{12}$/),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).filter((id) => id !== '__proto__'),
);
const counterArbitrary = fc.oneof(fc.integer({ min: 1, max: 1_000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }));
const siblingArbitrary: fc.Arbitrary<Sibling> = fc.record({
  dot: fc.record({ node: nodeIdArbitrary, counter: counterArbitrary }),
  value: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ maxLength: 600 })),
  contentType: fc.oneof(fc.constant(''), fc.constant('application/json; charset=utf-8'), fc.string({ unit: 'grapheme', maxLength: 40 })),
  lastModifiedMs: fc.oneof(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.double()),
  tombstone: fc.boolean(),
});
const objectArbitrary: fc.Arbitrary<VersionedObject> = fc.record({
  clock: fc
    .uniqueArray(fc.tuple(nodeIdArbitrary, counterArbitrary), { selector: ([node]) => node, maxLength: 8 })
    .map((entries) => Object.fromEntries(entries)),
  siblings: fc.array(siblingArbitrary, { maxLength: 5 }),
});

const tombstoneObject: VersionedObject = {
  clock: { n000000000001: 2, n000000000002: Number.MAX_SAFE_INTEGER },
  siblings: [
    { dot: { node: 'n000000000001', counter: 2 }, value: new Uint8Array(0), contentType: '', lastModifiedMs: 1_700_000_000_000, tombstone: true },
    {
      dot: { node: 'n000000000002', counter: Number.MAX_SAFE_INTEGER },
      value: Buffer.from('héllo ✓', 'utf8'),
      contentType: 'text/plain; charset=utf-8; note=“☃”',
      lastModifiedMs: 1_700_000_000_001,
      tombstone: false,
    },
  ],
};

describe('object codec: decode(encode(object)) is the same object', () => {
  it('round-trips the empty object', () => {
    expect(comparable(decodeObject(encodeObject({ clock: {}, siblings: [] })))).toEqual({ clock: [], siblings: [] });
  });

  it('round-trips tombstones, empty values, unicode content types and the largest safe counters', () => {
    const decoded = decodeObject(encodeObject(tombstoneObject));
    expect(comparable(decoded)).toEqual(comparable(tombstoneObject));
    expect(decoded.siblings[0]?.tombstone).toBe(true);
    expect(decoded.siblings[1]?.dot.counter).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('round-trips any object, and re-encoding the decoded object gives the same bytes', () => {
    fc.assert(
      fc.property(objectArbitrary, (object) => {
        const bytes = encodeObject(object);
        const decoded = decodeObject(bytes);
        expect(comparable(decoded)).toEqual(comparable(object));
        expect(Buffer.compare(encodeObject(decoded), bytes)).toBe(0);
      }),
    );
  });

  it('reads an object embedded in a larger message and leaves the reader just after it', () => {
    fc.assert(
      fc.property(objectArbitrary, fc.string({ unit: 'grapheme', maxLength: 10 }), (object, trailer) => {
        const writer = new ByteWriter().u8(42);
        writeObject(writer, object);
        writer.string(trailer);
        const reader = new ByteReader(writer.finish());
        expect(reader.u8()).toBe(42);
        expect(comparable(readObject(reader))).toEqual(comparable(object));
        expect(reader.string()).toBe(trailer);
        expect(reader.done()).toBe(true);
      }),
    );
  });

  it('copies values out, so a decoded object does not change when the read buffer is reused', () => {
    const bytes = Buffer.from(encodeObject(tombstoneObject));
    const decoded = decodeObject(bytes);
    bytes.fill(0);
    expect(Buffer.from(decoded.siblings[1]?.value ?? []).toString('utf8')).toBe('héllo ✓');
  });

  it('starts with the format version byte: 1 for an object without expiries, which older releases read', () => {
    expect(encodeObject(tombstoneObject)[0]).toBe(1);
  });
});

describe('object codec: bytes it does not understand are refused', () => {
  // 3 is the format of data types (its own test in test/unit/data-types.test.ts).
  it.each([0, objectFormatVersion + 2, 255])('a format version byte of %i is refused with KV_STORAGE', (version) => {
    const bytes = Buffer.from(encodeObject(tombstoneObject));
    bytes[0] = version;
    expect(kvErrorCodeOf(() => decodeObject(bytes))).toBe('KV_STORAGE');
    expect(() => decodeObject(bytes)).toThrow(/format version/);
  });

  it('trailing bytes after an object are refused with KV_STORAGE', () => {
    const bytes = Buffer.concat([encodeObject(tombstoneObject), Buffer.from([0])]);
    expect(kvErrorCodeOf(() => decodeObject(bytes))).toBe('KV_STORAGE');
    expect(() => decodeObject(bytes)).toThrow(/trailing bytes/);
  });

  it('every truncation of an encoded object is refused with KV_BAD_REQUEST, never read as a shorter object', () => {
    fc.assert(
      fc.property(objectArbitrary, fc.nat(), (object, cut) => {
        const bytes = encodeObject(object);
        const prefix = bytes.subarray(0, cut % bytes.length);
        expect(kvErrorCodeOf(() => decodeObject(prefix))).toBe('KV_BAD_REQUEST');
      }),
    );
  });
});

describe('ByteWriter and ByteReader: varints are unsigned LEB128 up to Number.MAX_SAFE_INTEGER', () => {
  it.each<[number, string]>([
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [16_383, 'ff7f'],
    [16_384, '808001'],
    [2 ** 32, '8080808010'],
    [Number.MAX_SAFE_INTEGER, 'ffffffffffffff0f'],
  ])('%i is written as %s and read back', (value, hex) => {
    const bytes = new ByteWriter().varint(value).finish();
    expect(bytes.toString('hex')).toBe(hex);
    const reader = new ByteReader(bytes);
    expect(reader.varint()).toBe(value);
    expect(reader.done()).toBe(true);
  });

  it('round-trips any safe non-negative integer, many in a row', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), { minLength: 1, maxLength: 50 }), (values) => {
        const writer = new ByteWriter();
        for (const value of values) writer.varint(value);
        const reader = new ByteReader(writer.finish());
        expect(values.map(() => reader.varint())).toEqual(values);
        expect(reader.done()).toBe(true);
      }),
    );
  });

  it('refuses a varint longer than eight bytes with KV_BAD_REQUEST', () => {
    const tooLong = Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]);
    expect(kvErrorCodeOf(() => new ByteReader(tooLong).varint())).toBe('KV_BAD_REQUEST');
  });

  it('refuses an eight-byte varint above Number.MAX_SAFE_INTEGER with KV_BAD_REQUEST instead of rounding it', () => {
    const justAbove = new ByteWriter().varint(Number.MAX_SAFE_INTEGER).finish();
    justAbove[7] = 0x10; // 2^53: one more than the largest safe integer.
    expect(kvErrorCodeOf(() => new ByteReader(justAbove).varint())).toBe('KV_BAD_REQUEST');
    const largest = Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    expect(kvErrorCodeOf(() => new ByteReader(largest).varint())).toBe('KV_BAD_REQUEST');
  });
});

type Field =
  | { kind: 'u8'; value: number }
  | { kind: 'varint'; value: number }
  | { kind: 'f64'; value: number }
  | { kind: 'bytes'; value: Uint8Array }
  | { kind: 'string'; value: string };

const fieldArbitrary: fc.Arbitrary<Field> = fc.oneof(
  fc.record({ kind: fc.constant('u8' as const), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('varint' as const), value: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) }),
  fc.record({ kind: fc.constant('f64' as const), value: fc.double() }),
  fc.record({ kind: fc.constant('bytes' as const), value: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ kind: fc.constant('string' as const), value: fc.string({ unit: 'grapheme', maxLength: 30 }) }),
);

function writeField(writer: ByteWriter, field: Field): void {
  if (field.kind === 'u8') writer.u8(field.value);
  else if (field.kind === 'varint') writer.varint(field.value);
  else if (field.kind === 'f64') writer.f64(field.value);
  else if (field.kind === 'bytes') writer.bytes(field.value);
  else writer.string(field.value);
}

function readField(reader: ByteReader, kind: Field['kind']): unknown {
  if (kind === 'u8') return reader.u8();
  if (kind === 'varint') return reader.varint();
  if (kind === 'f64') return reader.f64();
  if (kind === 'bytes') return Array.from(reader.bytes());
  return reader.string();
}

const expectedValue = (field: Field): unknown => (field.kind === 'bytes' ? Array.from(field.value) : field.value);

describe('ByteWriter and ByteReader: every field reads back as written', () => {
  it('round-trips any sequence of u8, varint, f64, bytes and string fields', () => {
    fc.assert(
      fc.property(fc.array(fieldArbitrary, { maxLength: 30 }), (fields) => {
        const writer = new ByteWriter();
        for (const field of fields) writeField(writer, field);
        const reader = new ByteReader(writer.finish());
        for (const field of fields) expect(readField(reader, field.kind)).toEqual(expectedValue(field));
        expect(reader.done()).toBe(true);
      }),
    );
  });

  it('grows past its first buffer without losing earlier bytes', () => {
    const large = Buffer.alloc(100_000, 7);
    const bytes = new ByteWriter().string('before').bytes(large).varint(99).finish();
    const reader = new ByteReader(bytes);
    expect(reader.string()).toBe('before');
    expect(Buffer.compare(reader.bytes(), large)).toBe(0);
    expect(reader.varint()).toBe(99);
    expect(reader.done()).toBe(true);
  });

  it('reads only the view it was given, not the rest of the underlying buffer', () => {
    const backing = Uint8Array.from([9, 9, 5, 9]);
    const reader = new ByteReader(backing.subarray(2, 3));
    expect(reader.u8()).toBe(5);
    expect(reader.done()).toBe(true);
    expect(kvErrorCodeOf(() => reader.u8())).toBe('KV_BAD_REQUEST');
  });
});

describe('ByteReader: truncated input throws KV_BAD_REQUEST', () => {
  it.each<[string, number[], (reader: ByteReader) => unknown]>([
    ['a u8 from no bytes', [], (reader) => reader.u8()],
    ['a varint whose continuation byte is missing', [0x80], (reader) => reader.varint()],
    ['a varint from no bytes', [], (reader) => reader.varint()],
    ['an f64 from seven bytes', [0, 0, 0, 0, 0, 0, 0], (reader) => reader.f64()],
    ['bytes whose length prefix exceeds what is left', [5, 1, 2, 3], (reader) => reader.bytes()],
    ['a string whose length prefix exceeds what is left', [3, 0x61], (reader) => reader.string()],
  ])('%s', (_goal, bytes, read) => {
    expect(kvErrorCodeOf(() => read(new ByteReader(Uint8Array.from(bytes))))).toBe('KV_BAD_REQUEST');
  });

  it('throws for every strict prefix of a written field sequence, at the latest on the last field', () => {
    fc.assert(
      fc.property(fc.array(fieldArbitrary, { minLength: 1, maxLength: 10 }), fc.nat(), (fields, cut) => {
        const writer = new ByteWriter();
        for (const field of fields) writeField(writer, field);
        const bytes = writer.finish();
        const reader = new ByteReader(bytes.subarray(0, cut % bytes.length));
        expect(kvErrorCodeOf(() => fields.map((field) => readField(reader, field.kind)))).toBe('KV_BAD_REQUEST');
      }),
    );
  });
});
