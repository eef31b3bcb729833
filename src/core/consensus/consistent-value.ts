import { KvError } from '../../util/errors.js';
import { ByteReader, ByteWriter } from '../wire/bytes.js';

/**
 * The bytes a consistent key's register holds (RegisterState.value): the client's value with
 * its content type, so a read answers both from the one decided state. Layout, format 1:
 * [u8 format][string content type][bytes value]; format 2 (a key written with a lease) appends
 * [string lease id] (house rule 6, docs/ARCHITECTURE.md#house-rules: versioned).
 */
export const consistentValueFormat = 1;

/** The format of a value written with a lease: format 1 and the lease id. */
export const leasedValueFormat = 2;

/** A consistent key's live value as the client wrote it. */
export interface ConsistentValue {
  readonly contentType: string;
  readonly value: Uint8Array;
  /** The lease the key was written with (README, "Leases and ephemeral keys"): its end deletes the key. */
  readonly lease?: string;
}

/** The register bytes of a value. */
export function encodeConsistentValue(value: ConsistentValue): Uint8Array {
  const writer = new ByteWriter()
    .u8(value.lease === undefined ? consistentValueFormat : leasedValueFormat)
    .string(value.contentType)
    .bytes(value.value);
  if (value.lease !== undefined) writer.string(value.lease);
  return writer.finish();
}

/** Decodes what encodeConsistentValue wrote; anything else is KV_STORAGE. */
export function decodeConsistentValue(bytes: Uint8Array): ConsistentValue {
  try {
    const reader = new ByteReader(bytes);
    const format = reader.u8();
    if (format !== consistentValueFormat && format !== leasedValueFormat)
      throw new Error(`format ${format}, not ${consistentValueFormat} or ${leasedValueFormat}`);
    const contentType = reader.string();
    const value = Uint8Array.from(reader.bytes());
    const lease = format === leasedValueFormat ? reader.string() : undefined;
    if (!reader.done()) throw new Error('trailing bytes');
    return lease === undefined ? { contentType, value } : { contentType, value, lease };
  } catch (error) {
    throw new KvError(
      'KV_STORAGE',
      `a consistent key holds a malformed value (${(error as Error).message}); run a ringkv version that knows its format, or restore the key`,
      { cause: error },
    );
  }
}
