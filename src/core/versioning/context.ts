import { KvError } from '../../util/errors.js';
import { type VersionVector, sortVector } from './version-vector.js';

/**
 * The opaque causal context a client gets with a read and sends back with a write: the object's
 * version vector, encoded as 'c1.' + base64url(JSON pairs). The prefix carries a format version.
 */
const contextPrefix = 'c1.';

/** The longest context accepted, so a hostile header cannot make the server parse megabytes. */
export const maxContextLength = 16_384;

/** Encodes a version vector as a context string. */
export function encodeContext(clock: VersionVector): string {
  const pairs = Object.entries(clock);
  return contextPrefix + Buffer.from(JSON.stringify(pairs), 'utf8').toString('base64url');
}

/** Decodes a context header, or throws KV_BAD_CONTEXT saying how to get a valid one. */
export function decodeContext(text: string): VersionVector {
  const bad = (why: string): KvError =>
    new KvError('KV_BAD_CONTEXT', `malformed x-ringkv-context (${why}); send back the header exactly as a GET returned it, or omit it`);
  if (text.length > maxContextLength) throw bad(`longer than ${maxContextLength} characters`);
  if (!text.startsWith(contextPrefix)) throw bad('unknown format');
  const body = text.slice(contextPrefix.length);
  if (!/^[A-Za-z0-9_-]*$/.test(body)) throw bad('not base64url');
  let pairs: unknown;
  try {
    pairs = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw bad('not decodable');
  }
  if (!Array.isArray(pairs)) throw bad('not a list of entries');
  const clock: Record<string, number> = {};
  for (const pair of pairs) {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      pair[0].length === 0 ||
      pair[0].length > 128 ||
      !Number.isSafeInteger(pair[1]) ||
      pair[1] < 1
    ) {
      throw bad('bad entry');
    }
    clock[pair[0]] = pair[1];
  }
  return sortVector(clock);
}
