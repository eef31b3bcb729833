import { KvError } from '../../util/errors.js';
import { type VersionVector, emptyVector, newVector, sortVector } from './version-vector.js';

/**
 * The causal context a client gets with a read or a write and sends back with its next write.
 *
 * Rule (docs/ARCHITECTURE.md#contexts-are-safe-to-write-back): a context supersedes only what its holder
 * has seen. A read's context is the merged object's clock: the reader was shown every live
 * sibling of that history. A write's context must not be the new object's clock, because that
 * clock also covers the concurrent siblings the write left in place and its writer never saw
 * (a blind `PUT red` beside `blue` would otherwise let the next `PUT red2` delete `blue`).
 * A write reply therefore carries a dotted context: the writer's own context plus the one dot
 * its write created, exactly as Riak's dotted version vectors name a single event.
 */
export interface CausalContext {
  /** Everything up to these counters was seen (the clock of a read). */
  readonly vector: VersionVector;
  /** Single events seen beyond `vector`: the dots of the holder's own writes. */
  readonly dots: readonly ContextDot[];
  /**
   * The newest time stamped on a version the holder was shown (ms since the epoch, on the clock
   * of the node that stamped it); absent when it was shown none. A write with this context is
   * stamped after it (a hybrid logical clock: see writeTimeMs), so a last-write-wins bucket
   * orders the write after everything it supersedes even when its node's clock is behind.
   */
  readonly lastModifiedMs?: number;
}

/** One event named by a context: the actor that issued it and its counter there. */
export interface ContextDot {
  readonly node: string;
  readonly counter: number;
}

/** The context of a blind write: it covers nothing. */
export const emptyContext: CausalContext = Object.freeze({ vector: emptyVector, dots: Object.freeze([]) });

/** A read's context: the clock of the history the reader was shown, and the newest time stamped on it. */
export function readContext(clock: VersionVector, lastModifiedMs?: number): CausalContext {
  return lastModifiedMs === undefined ? { vector: clock, dots: [] } : { vector: clock, dots: [], lastModifiedMs };
}

/** The context a read of `object` hands out: its clock, and the newest time on any of its siblings (tombstones too). */
export function objectContext(object: { readonly clock: VersionVector; readonly siblings: readonly { readonly lastModifiedMs: number }[] }): CausalContext {
  const newestMs = object.siblings.reduce<number | undefined>(
    (newest, sibling) => (newest === undefined || sibling.lastModifiedMs > newest ? sibling.lastModifiedMs : newest),
    undefined,
  );
  return readContext(object.clock, newestMs);
}

/**
 * The time to stamp on a write made at `nowMs` (the coordinator's clock) with `context`: after
 * every version the context names (a hybrid logical clock, as Kulkarni et al.'s HLC and
 * Cassandra's client timestamps that must exceed what they overwrite). Last-write-wins compares
 * these stamps, so a write that supersedes a version must carry the larger one.
 */
export function writeTimeMs(nowMs: number, context: CausalContext): number {
  return context.lastModifiedMs === undefined ? nowMs : Math.max(nowMs, context.lastModifiedMs + 1);
}

/**
 * The most dots a context keeps. A client that chains write contexts adds one dot per write;
 * forgetting the oldest ones only makes the context cover less (a later write keeps an old
 * version as a sibling instead of superseding it), which is the safe direction.
 */
export const maxContextDots = 32;

/**
 * The context a write hands back: what its writer had seen, plus the dot it created. Dots that
 * follow on from the vector without a gap are folded into it, so a chain of writes by one
 * coordinator stays small.
 */
export function writeContext(seen: CausalContext, created: ContextDot, createdAtMs?: number): CausalContext {
  const vector: Record<string, number> = { ...seen.vector };
  const pending = [...seen.dots, created].filter((dot) => dot.counter > (vector[dot.node] ?? 0));
  pending.sort((left, right) => (left.node === right.node ? left.counter - right.counter : left.node < right.node ? -1 : 1));
  const dots: ContextDot[] = [];
  for (const dot of pending) {
    const counter = vector[dot.node] ?? 0;
    if (dot.counter === counter + 1) vector[dot.node] = dot.counter;
    else if (dot.counter > counter && !dots.some((other) => other.node === dot.node && other.counter === dot.counter)) dots.push(dot);
  }
  // Folding may have closed the gap before a dot kept earlier.
  const kept = dots.filter((dot) => dot.counter > (vector[dot.node] ?? 0));
  const newestFirst = kept.sort((left, right) => (sameDot(left, created) ? -1 : sameDot(right, created) ? 1 : right.counter - left.counter));
  const lastModifiedMs = createdAtMs === undefined ? seen.lastModifiedMs : Math.max(createdAtMs, seen.lastModifiedMs ?? createdAtMs);
  const context = { vector: sortVector(vector), dots: newestFirst.slice(0, maxContextDots) };
  return lastModifiedMs === undefined ? context : { ...context, lastModifiedMs };
}

function sameDot(left: ContextDot, right: ContextDot): boolean {
  return left.node === right.node && left.counter === right.counter;
}

/** True when the context has seen the event `dot`. */
export function contextCovers(context: CausalContext, dot: ContextDot): boolean {
  return (context.vector[dot.node] ?? 0) >= dot.counter || context.dots.some((seen) => sameDot(seen, dot));
}

/**
 * Encoding: a context with a time (every context ringkv hands out for a stored version) is
 * 'c3.' + base64url(JSON [pairs, dots, lastModifiedMs]); one without is 'c1.' + base64url(JSON
 * pairs) when it has no dots and 'c2.' + base64url(JSON [pairs, dots]) when it has, as earlier
 * releases handed them out (a client may still hold one). The prefix carries the format version.
 */
const vectorPrefix = 'c1.';
const dottedPrefix = 'c2.';
const timedPrefix = 'c3.';

/** The largest time a context may carry: the largest a JavaScript Date holds. */
const maxContextTimeMs = 8.64e15;

/** The longest context accepted, so a hostile header cannot make the server parse megabytes. */
export const maxContextLength = 16_384;

/** Encodes a context (or a plain clock, a read's context) as a header value. */
export function encodeContext(context: CausalContext | VersionVector): string {
  const causal = isCausalContext(context) ? context : readContext(context);
  const pairs = Object.entries(causal.vector);
  if (causal.lastModifiedMs !== undefined) {
    const dots = causal.dots.map((dot) => [dot.node, dot.counter]);
    return timedPrefix + Buffer.from(JSON.stringify([pairs, dots, causal.lastModifiedMs]), 'utf8').toString('base64url');
  }
  if (causal.dots.length === 0) return vectorPrefix + Buffer.from(JSON.stringify(pairs), 'utf8').toString('base64url');
  const dots = causal.dots.map((dot) => [dot.node, dot.counter]);
  return dottedPrefix + Buffer.from(JSON.stringify([pairs, dots]), 'utf8').toString('base64url');
}

function isCausalContext(value: CausalContext | VersionVector): value is CausalContext {
  return Array.isArray((value as { dots?: unknown }).dots) && typeof (value as { vector?: unknown }).vector === 'object';
}

/**
 * Decodes a context header, or throws KV_BAD_CONTEXT saying how to get a valid one. `maxLength`
 * is larger for a set's context in a /dt body, which names every actor that ever added to the set;
 * `source` names the header the client sent it in, so the message points there.
 */
export function decodeContext(text: string, maxLength = maxContextLength, source = 'x-ringkv-context'): CausalContext {
  const bad = (why: string): KvError =>
    new KvError('KV_BAD_CONTEXT', `malformed ${source} (${why}); send back the header exactly as a GET or PUT returned it, or omit it`);
  if (text.length > maxLength) throw bad(`longer than ${maxLength} characters`);
  const timed = text.startsWith(timedPrefix);
  const dotted = timed || text.startsWith(dottedPrefix);
  if (!dotted && !text.startsWith(vectorPrefix)) throw bad('unknown format');
  const body = text.slice(vectorPrefix.length);
  if (!/^[A-Za-z0-9_-]*$/.test(body)) throw bad('not base64url');
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    throw bad('not decodable');
  }
  let pairs: unknown = parsed;
  let dotPairs: unknown = [];
  let lastModifiedMs: unknown;
  if (dotted) {
    const parts = timed ? 3 : 2;
    if (!Array.isArray(parsed) || parsed.length !== parts) throw bad(timed ? 'not a vector, a list of dots and a time' : 'not a vector and a list of dots');
    [pairs, dotPairs, lastModifiedMs] = parsed as [unknown, unknown, unknown];
  }
  if (timed && (typeof lastModifiedMs !== 'number' || !Number.isFinite(lastModifiedMs) || lastModifiedMs < 0 || lastModifiedMs > maxContextTimeMs))
    throw bad('bad time');
  const vector = newVector();
  for (const [node, counter] of entriesOf(pairs, bad)) vector[node] = counter;
  const dots = entriesOf(dotPairs, bad).map(([node, counter]) => ({ node, counter }));
  if (dots.length > maxContextDots) throw bad(`more than ${maxContextDots} dots`);
  return typeof lastModifiedMs === 'number' ? { vector: sortVector(vector), dots, lastModifiedMs } : { vector: sortVector(vector), dots };
}

function entriesOf(value: unknown, bad: (why: string) => KvError): [string, number][] {
  if (!Array.isArray(value)) throw bad('not a list of entries');
  return value.map((pair: unknown) => {
    if (
      !Array.isArray(pair) ||
      pair.length !== 2 ||
      typeof pair[0] !== 'string' ||
      pair[0].length === 0 ||
      pair[0].length > 128 ||
      !Number.isSafeInteger(pair[1]) ||
      (pair[1] as number) < 1
    ) {
      throw bad('bad entry');
    }
    return [pair[0], pair[1] as number];
  });
}
