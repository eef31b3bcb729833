import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';

/**
 * The bytes a consistent key's register holds (RegisterState.value): the client's value with
 * its content type, so a read answers both from the one decided state. Layout, format 1:
 * [u8 format][string content type][bytes value] (house rule 6, docs/ARCHITECTURE.md#house-rules: versioned).
 */
export const consistentValueFormat = 1;

/** A consistent key's live value as the client wrote it. */
export interface ConsistentValue {
  readonly contentType: string;
  readonly value: Uint8Array;
}

/** The register bytes of a value. */
export function encodeConsistentValue(value: ConsistentValue): Uint8Array {
  return new ByteWriter().u8(consistentValueFormat).string(value.contentType).bytes(value.value).finish();
}

/** Decodes what encodeConsistentValue wrote; anything else is KV_STORAGE. */
export function decodeConsistentValue(bytes: Uint8Array): ConsistentValue {
  try {
    const reader = new ByteReader(bytes);
    const format = reader.u8();
    if (format !== consistentValueFormat) throw new Error(`format ${format}, not ${consistentValueFormat}`);
    const contentType = reader.string();
    const value = Uint8Array.from(reader.bytes());
    if (!reader.done()) throw new Error('trailing bytes');
    return { contentType, value };
  } catch (error) {
    throw new KvError('KV_STORAGE', `a consistent key holds a malformed value (${(error as Error).message}); run a ringkv version that knows its format, or restore the key`, { cause: error });
  }
}
