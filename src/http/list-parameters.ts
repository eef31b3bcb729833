import type { ListQuery } from '../engine/key-listing.js';
import { KvError } from '../util/errors.js';
import { badParameter } from './query-parameters.js';

/**
 * The query parameters of a listing, GET /kv/{bucket}?keys=true&limit=N&after=KEY&prefix=P:
 * their shape and bounds are the route schema's (route-schemas.ts kvListSchema), refused through
 * query-parameters.ts; what is left here is the one bound a schema cannot state, a cursor's and a
 * prefix's UTF-8 bytes, and the page size when the client names none.
 */

/** The page size when the client names none. */
export const defaultListLimit = 1000;

/** A listing's query string as its route schema let it through. */
export interface ListQueryString {
  readonly keys: 'true';
  readonly limit?: string;
  readonly after?: string;
  readonly prefix?: string;
  readonly timeout_ms?: string;
}

/** Without keys=true this is a key path with its key missing, answered as such: 400 KV_BAD_REQUEST (checked before the schema). */
export function checkIsListing(query: unknown): void {
  if (!('keys' in (query as object)))
    throw new KvError('KV_BAD_REQUEST', 'the key is missing: the path is /kv/{bucket}/{key}; to list the keys of a bucket, GET /kv/{bucket}?keys=true');
}

/** A listing's query, from the query string its route schema checked. */
export function parseListQuery(bucket: string, query: ListQueryString, maxKeyBytes: number): ListQuery {
  const { after, prefix } = query;
  // The cursor is a key (the `next` of the previous page), so it is bounded like a key.
  if (after !== undefined && Buffer.byteLength(after, 'utf8') > maxKeyBytes)
    throw badParameter('after', after, `the \`next\` of the previous page, a key of 1 to ${maxKeyBytes} bytes (limits.maxKeyBytes)`);
  if (prefix !== undefined && Buffer.byteLength(prefix, 'utf8') > maxKeyBytes)
    throw badParameter('prefix', prefix, `a prefix of at most ${maxKeyBytes} bytes (limits.maxKeyBytes)`);
  const limit = query.limit === undefined ? defaultListLimit : Number(query.limit);
  const timeoutMs = query.timeout_ms === undefined ? undefined : Number(query.timeout_ms);
  return {
    bucket,
    limit,
    ...(after === undefined ? {} : { after }),
    ...(prefix === undefined || prefix === '' ? {} : { prefix }),
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  };
}
