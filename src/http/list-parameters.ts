import type { ListQuery } from '../engine/key-listing.js';
import { KvError } from '../util/errors.js';
import { maxListLimit, maxTimeoutMs } from '../core/client-limits.js';

/**
 * The query parameters of a listing, GET /kv/{bucket}?keys=true&limit=N&after=KEY&prefix=P,
 * validated once here: every bad value is a 400 KV_BAD_PARAMETER naming the parameter.
 */

const knownParameters = ['keys', 'limit', 'after', 'prefix', 'timeout_ms'];
/** The page size when the client names none. */
export const defaultListLimit = 1000;

function shown(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}...` : value;
}

function bad(message: string): KvError {
  return new KvError('KV_BAD_PARAMETER', message);
}

/** Validates a listing's query string. */
export function parseListQuery(bucket: string, query: Readonly<Record<string, unknown>>, maxKeyBytes: number): ListQuery {
  // Without keys=true this is a key path with its key missing, answered as before: 400 KV_BAD_REQUEST.
  if (!('keys' in query)) throw new KvError('KV_BAD_REQUEST', 'the key is missing: the path is /kv/{bucket}/{key}; to list the keys of a bucket, GET /kv/{bucket}?keys=true');
  const values = new Map<string, string>();
  for (const [name, value] of Object.entries(query)) {
    if (!knownParameters.includes(name)) throw bad(`unknown query parameter '${shown(name)}' on a listing; the parameters are ${knownParameters.join(', ')}`);
    if (typeof value !== 'string') throw bad(`query parameter ${name} is given more than once; give it once`);
    values.set(name, value);
  }
  if (values.get('keys') !== 'true') throw bad(`query parameter keys=${shown(values.get('keys') ?? '')} is not allowed: use keys=true to list the keys`);
  const limitText = values.get('limit') ?? String(defaultListLimit);
  const limit = /^[0-9]{1,5}$/.test(limitText) ? Number(limitText) : Number.NaN;
  if (!(limit >= 1 && limit <= maxListLimit)) throw bad(`query parameter limit=${shown(limitText)} is not allowed: use an integer from 1 to ${maxListLimit}`);
  const after = values.get('after');
  // The cursor is a key (the `next` of the previous page), so it is bounded like a key.
  if (after !== undefined && (after.length === 0 || Buffer.byteLength(after, 'utf8') > maxKeyBytes)) {
    throw bad(`query parameter after is not a cursor: use the \`next\` of the previous page, a key of 1 to ${maxKeyBytes} bytes (limits.maxKeyBytes)`);
  }
  const prefix = values.get('prefix');
  if (prefix !== undefined && Buffer.byteLength(prefix, 'utf8') > maxKeyBytes) throw bad(`query parameter prefix is over limits.maxKeyBytes (${maxKeyBytes})`);
  const timeoutText = values.get('timeout_ms');
  const timeoutMs = timeoutText === undefined ? undefined : /^[0-9]{1,7}$/.test(timeoutText) ? Number(timeoutText) : Number.NaN;
  if (timeoutMs !== undefined && !(timeoutMs >= 1 && timeoutMs <= maxTimeoutMs)) throw bad(`query parameter timeout_ms=${shown(timeoutText ?? '')} is not allowed: use an integer number of milliseconds from 1 to ${maxTimeoutMs}`);
  return { bucket, limit, ...(after === undefined ? {} : { after }), ...(prefix === undefined || prefix === '' ? {} : { prefix }), ...(timeoutMs === undefined ? {} : { timeoutMs }) };
}
