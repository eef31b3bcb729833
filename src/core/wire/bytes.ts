import { KvError } from '../../util/errors.js';

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

  /** A length-prefixed UTF-8 string. */
  string(value: string): this {
    return this.bytes(Buffer.from(value, 'utf8'));
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
    this.buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
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
    return this.bytes().toString('utf8');
  }
}
