import { KvError } from '../../util/errors.js';

/** The longest string (in UTF-16 units) whose UTF-8 length surely fits a one-byte varint (3 bytes per unit at most, below 128). */
const maxOneByteLengthUnits = 42;

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The text of `buffer[start, end)`, or null when those bytes are not valid UTF-8. A lenient decode
 * would turn each invalid sequence into U+FFFD, three bytes when encoded again, so a string read
 * within its bound could come back over it and would not be what the sender wrote. The whole
 * check runs only when the text holds a U+FFFD (a sender may also write one as EF BF BD): a
 * search of the decoded text costs a few percent of the decode, the strict decoders about twice.
 */
export function decodeUtf8(buffer: Buffer, start: number, end: number): string | null {
  const text = buffer.toString('utf8', start, end);
  if (!text.includes('\ufffd')) return text;
  try {
    return strictUtf8.decode(buffer.subarray(start, end));
  } catch {
    return null;
  }
}

/** Appends binary fields to a growing buffer: unsigned LEB128 varints, floats, length-prefixed bytes. */
export class ByteWriter {
  private buffer = Buffer.allocUnsafe(256);
  private length = 0;

  private reserve(extra: number): void {
    if (this.length + extra <= this.buffer.length) return;
    // Doubling keeps appends amortised; a field larger than that (a large value) gets room for
    // itself plus a little, so one 8 MiB value does not leave a 16 MiB buffer behind it (a
    // stored object keeps its encoding buffer alive in memory storage).
    const size = Math.max(this.buffer.length * 2, this.length + extra + 1024);
    const grown = Buffer.allocUnsafe(size);
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  /** One byte. */
  u8(value: number): this {
    this.reserve(1);
    this.buffer[this.length++] = value & 0xff;
    return this;
  }

  /** A non-negative safe integer as an unsigned LEB128 varint. */
  varint(value: number): this {
    let remaining = value;
    this.reserve(10);
    while (remaining >= 0x80) {
      this.buffer[this.length++] = (remaining % 0x80) | 0x80;
      remaining = Math.floor(remaining / 0x80);
    }
    this.buffer[this.length++] = remaining;
    return this;
  }

  /** A 64-bit float. */
  f64(value: number): this {
    this.reserve(8);
    this.buffer.writeDoubleBE(value, this.length);
    this.length += 8;
    return this;
  }

  /** Length-prefixed bytes. */
  bytes(value: Uint8Array): this {
    this.varint(value.byteLength);
    this.reserve(value.byteLength);
    this.buffer.set(value, this.length);
    this.length += value.byteLength;
    return this;
  }

  /** A length-prefixed UTF-8 string, the same bytes as bytes(Buffer.from(value)) without that buffer. */
  string(value: string): this {
    // Most strings (ids, buckets, keys, content types) are short: at 3 bytes per UTF-16 unit at
    // most, a string under 43 units fits a one-byte length, written once the text is in place.
    if (value.length <= maxOneByteLengthUnits) {
      this.reserve(1 + value.length * 3);
      const start = this.length + 1;
      const written = this.buffer.write(value, start, 'utf8');
      this.buffer[this.length] = written;
      this.length = start + written;
      return this;
    }
    const byteLength = Buffer.byteLength(value, 'utf8');
    this.varint(byteLength);
    this.reserve(byteLength);
    this.length += this.buffer.write(value, this.length, byteLength, 'utf8');
    return this;
  }

  /** The bytes written so far (a copy-free view). */
  finish(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

/** Reads what ByteWriter wrote; any overrun or malformed field throws KV_BAD_REQUEST. */
export class ByteReader {
  private offset = 0;
  private readonly buffer: Buffer;

  constructor(bytes: Uint8Array) {
    this.buffer = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  private need(count: number): void {
    if (this.offset + count > this.buffer.length) throw new KvError('KV_BAD_REQUEST', 'truncated binary message');
  }

  /** True when every byte was read. */
  done(): boolean {
    return this.offset === this.buffer.length;
  }

  u8(): number {
    this.need(1);
    return this.buffer[this.offset++] as number;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let index = 0; index < 8; index++) {
      const byte = this.u8();
      result += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) {
        // Eight bytes hold 56 bits; above 2^53 - 1 the sum is rounded, so it would be a wrong number, not an error.
        if (result > Number.MAX_SAFE_INTEGER) throw new KvError('KV_BAD_REQUEST', 'varint larger than the largest safe integer');
        return result;
      }
      scale *= 0x80;
    }
    throw new KvError('KV_BAD_REQUEST', 'varint too long');
  }

  f64(): number {
    this.need(8);
    const value = this.buffer.readDoubleBE(this.offset);
    this.offset += 8;
    return value;
  }

  bytes(): Buffer {
    const length = this.varint();
    this.need(length);
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  string(): string {
    const length = this.varint();
    this.need(length);
    const start = this.offset;
    this.offset += length;
    // Decoded in place: no view of the bytes is made just to be thrown away.
    const text = decodeUtf8(this.buffer, start, this.offset);
    if (text === null) throw new KvError('KV_BAD_REQUEST', 'a string that is not valid UTF-8');
    return text;
  }
}
