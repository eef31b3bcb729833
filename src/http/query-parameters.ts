import type { QuorumSetting } from '../config/schema.js';
import type { ReadOptions, WriteOptions } from '../engine/kv-service.js';
import { maxTtlSeconds } from '../core/versioning/versioned-object.js';
import { KvError } from '../util/errors.js';
import { maxTimeoutMs } from '../core/client-limits.js';

/**
 * The query parameters of /kv requests, validated once here so the service can trust them
 * (house rule 4, docs/ARCHITECTURE.md#house-rules). Every bad value is a 400 KV_BAD_PARAMETER naming the parameter, the
 * value and what is allowed; nothing a client puts in the query string can reach the service
 * unchecked or turn into a 500.
 *
 * Method applicability, a deliberate choice: every consistency parameter (r, w, pr, pw, dw,
 * consistency, timeout_ms) is accepted and validated on GET, PUT and DELETE, and the ones a
 * method does not use (w on a GET, r on a PUT) are ignored. That lets a client send one set of
 * options with every call, as Riak's clients do. `local` is the exception: it is refused on PUT
 * and DELETE, because ignoring it would silently coordinate a write the caller believed local.
 */

/** The validated options of one /kv request. */
export interface KvRequestOptions {
  readonly read: ReadOptions;
  readonly write: WriteOptions;
  /** GET only: answer from this node's own copy, without coordination or read repair. */
  readonly local: boolean;
  /** PUT only: seconds until the value expires; absent for the bucket's default. */
  readonly ttlSeconds?: number;
}

const quorumParameters = ['r', 'w', 'pr', 'pw', 'dw'] as const;
type QuorumParameter = (typeof quorumParameters)[number];
const knownParameters: readonly string[] = [...quorumParameters, 'consistency', 'timeout_ms', 'local', 'ttl'];
const levels = ['one', 'quorum', 'all'] as const;


/** Shows a client's value in a message without letting a huge value flood it. */
function shown(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}...` : value;
}

function badParameter(name: string, value: string, allowed: string): KvError {
  return new KvError('KV_BAD_PARAMETER', `query parameter ${name}=${shown(value)} is not allowed: use ${allowed}`);
}

function isLevel(value: string): value is (typeof levels)[number] {
  return (levels as readonly string[]).includes(value);
}

/** An integer 1..nVal or one|quorum|all, as Riak accepts for r/w/pr/pw/dw. */
function parseQuorum(name: string, value: string, nVal: number): QuorumSetting {
  if (isLevel(value)) return value;
  const count = /^[0-9]{1,6}$/.test(value) ? Number(value) : Number.NaN;
  if (!(count >= 1 && count <= nVal)) {
    throw badParameter(name, value, `an integer from 1 to ${nVal} (the bucket's n_val) or one, quorum, all`);
  }
  return count;
}

function parseTimeoutMs(value: string): number {
  const timeoutMs = /^[0-9]{1,7}$/.test(value) ? Number(value) : Number.NaN;
  if (!(timeoutMs >= 1 && timeoutMs <= maxTimeoutMs)) throw badParameter('timeout_ms', value, `an integer number of milliseconds from 1 to ${maxTimeoutMs}`);
  return timeoutMs;
}

function parseLocal(value: string, method: string): boolean {
  if (value !== 'true' && value !== 'false') throw badParameter('local', value, 'true or false');
  if (value === 'true' && method !== 'GET' && method !== 'HEAD') {
    throw new KvError('KV_BAD_PARAMETER', `query parameter local=true is only for GET (a read of this node's own copy); remove it from the ${method}`);
  }
  return value === 'true';
}

/** `ttl` is refused off a PUT, like `local` off a GET: ignoring it would keep a value the caller believed expiring. */
function parseTtl(value: string, method: string): number {
  if (method !== 'PUT') throw new KvError('KV_BAD_PARAMETER', `query parameter ttl is only for PUT (it sets when the written value expires); remove it from the ${method}`);
  const seconds = /^[0-9]{1,10}$/.test(value) ? Number(value) : Number.NaN;
  if (!(seconds >= 1 && seconds <= maxTtlSeconds)) throw badParameter('ttl', value, `an integer number of seconds from 1 to ${maxTtlSeconds} (ten years)`);
  return seconds;
}

/** Every parameter as a single string; unknown or repeated parameters are refused. */
function singleValues(query: Readonly<Record<string, unknown>>): Map<string, string> {
  const values = new Map<string, string>();
  for (const [name, value] of Object.entries(query)) {
    if (!knownParameters.includes(name)) {
      throw new KvError('KV_BAD_PARAMETER', `unknown query parameter '${shown(name)}'; the parameters are ${knownParameters.join(', ')}`);
    }
    if (typeof value !== 'string') throw new KvError('KV_BAD_PARAMETER', `query parameter ${name} is given more than once; give it once`);
    values.set(name, value);
  }
  return values;
}

/** Validates the query string of a /kv request for a bucket with `nVal` replicas. */
export function parseKvQuery(query: Readonly<Record<string, unknown>>, method: string, nVal: number): KvRequestOptions {
  const values = singleValues(query);
  const consistencyText = values.get('consistency');
  if (consistencyText !== undefined && !isLevel(consistencyText)) throw badParameter('consistency', consistencyText, 'one, quorum or all');
  const quorums: Partial<Record<QuorumParameter, QuorumSetting>> = {};
  for (const name of quorumParameters) {
    const text = values.get(name);
    if (text !== undefined) quorums[name] = parseQuorum(name, text, nVal);
  }
  // consistency=LEVEL is shorthand for r=LEVEL&w=LEVEL; an explicit r or w wins (README).
  const r = quorums.r ?? consistencyText;
  const w = quorums.w ?? consistencyText;
  const timeoutText = values.get('timeout_ms');
  const timeoutMs = timeoutText === undefined ? undefined : parseTimeoutMs(timeoutText);
  const localText = values.get('local');
  const local = localText === undefined ? false : parseLocal(localText, method);
  const ttlText = values.get('ttl');
  return {
    read: withoutUndefined({ r, pr: quorums.pr, timeoutMs }),
    write: withoutUndefined({ w, pw: quorums.pw, dw: quorums.dw, timeoutMs }),
    local,
    ...(ttlText === undefined ? {} : { ttlSeconds: parseTtl(ttlText, method) }),
  };
}

/** Drops absent options, so the service sees exactly what the client asked for and nothing else. */
function withoutUndefined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T;
}
