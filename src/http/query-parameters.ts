import type { FastifyRequest } from 'fastify';
import type { QuorumSetting } from '../config/schema.js';
import type { ReadOptions, WriteOptions } from '../engine/kv-service.js';
import { quorumWithinNVal } from '../core/quorum/quorum.js';
import { KvError } from '../util/errors.js';

/**
 * The query parameters of every route, validated once: fastify checks each query string against
 * its route's schema (route-schemas.ts: the shape and static bounds of every parameter, and what
 * to use instead as its description), and a value the schema refuses becomes the one error built
 * here, a 400 KV_BAD_PARAMETER naming the parameter, the value and what is allowed (house rule
 * 4, docs/ARCHITECTURE.md#house-rules). What a schema cannot know, the bucket's n_val, is checked
 * once after it (kvRequestOptions), with the same message. Nothing a client puts in the query
 * string can reach the service unchecked or turn into a 500.
 *
 * Method applicability, a deliberate choice: every consistency parameter (r, w, pr, pw, dw,
 * consistency, timeout_ms) is accepted and validated on GET, PUT and DELETE, and the ones a
 * method does not use (w on a GET, r on a PUT) are ignored. That lets a client send one set of
 * options with every call, as Riak's clients do. `local` is the exception: only `false` is taken
 * on PUT and DELETE, because ignoring `true` would silently coordinate a write the caller believed
 * local; `ttl` is PUT's alone.
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

/** A /kv or /dt query string as its route schema let it through: each value one string of the allowed shape. */
export interface KvQuery {
  readonly r?: string;
  readonly w?: string;
  readonly pr?: string;
  readonly pw?: string;
  readonly dw?: string;
  readonly consistency?: 'one' | 'quorum' | 'all';
  readonly timeout_ms?: string;
  readonly local?: 'true' | 'false';
  readonly ttl?: string;
  /** PUT on a consistent bucket only: the lease the key is attached to. */
  readonly lease?: string;
}

const quorumParameters = ['r', 'w', 'pr', 'pw', 'dw'] as const;
type QuorumParameter = (typeof quorumParameters)[number];

/** Shows a client's value in a message without letting a huge value flood it. */
function shown(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}...` : value;
}

/** The one message of a bad query parameter: its name, its value, and what to use. */
export function badParameter(name: string, value: string, allowed: string): KvError {
  return new KvError('KV_BAD_PARAMETER', `query parameter ${shown(name)}=${shown(value)} is not allowed: use ${allowed}`);
}

/** One problem ajv found, as fastify hands it over (FST_ERR_VALIDATION's `validation`). */
interface SchemaIssue {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Readonly<Record<string, unknown>>;
}

/** A route's querystring schema, as far as the messages need it. */
interface QuerySchema {
  readonly properties?: Readonly<Record<string, { readonly description?: string }>>;
}

/**
 * The error a client gets for a query string its route's schema refused: an unknown parameter,
 * a repeated one, a missing one, or a value of the wrong shape or out of bounds. Every route's
 * query string is refused through here (errors.ts).
 */
export function queryStringError(issues: readonly SchemaIssue[], request: FastifyRequest): KvError {
  const schema = (request.routeOptions.schema?.querystring ?? {}) as QuerySchema;
  const properties = schema.properties ?? {};
  const route = `${request.method} ${request.routeOptions.url ?? ''}`;
  const issue = issues[0];
  const parameterName = issue === undefined ? '' : issue.instancePath.slice(1).replace(/~1/g, '/').replace(/~0/g, '~');
  if (issue?.keyword === 'additionalProperties') {
    const names = Object.keys(properties);
    const unknown = shown(String(issue.params.additionalProperty));
    return new KvError(
      'KV_BAD_PARAMETER',
      names.length === 0
        ? `unknown query parameter '${unknown}': ${route} takes none; remove it`
        : `unknown query parameter '${unknown}'; the parameters of ${route} are ${names.join(', ')}`,
    );
  }
  if (issue?.keyword === 'required') {
    const name = String(issue.params.missingProperty);
    return new KvError('KV_BAD_PARAMETER', `${route} needs query parameter ${name}: ${properties[name]?.description ?? 'see GET /openapi.json'}`);
  }
  const value: unknown = (request.query as Readonly<Record<string, unknown>>)[parameterName];
  if (Array.isArray(value)) return new KvError('KV_BAD_PARAMETER', `query parameter ${shown(parameterName)} is given more than once; give it once`);
  return badParameter(parameterName, String(value), properties[parameterName]?.description ?? 'what GET /openapi.json describes');
}

/** one|quorum|all, or the number the schema let through, which must fit the bucket's n_val. */
function quorumOf(name: QuorumParameter, text: string, nVal: number): QuorumSetting {
  const setting: QuorumSetting = text === 'one' || text === 'quorum' || text === 'all' ? text : Number(text);
  if (!quorumWithinNVal(setting, nVal)) throw badParameter(name, text, `one, quorum, all or an integer from 1 to ${nVal} (the bucket's n_val)`);
  return setting;
}

/** The options of a /kv or /dt request for a bucket with `nVal` replicas, from the query string its route schema checked. */
export function kvRequestOptions(query: KvQuery, nVal: number): KvRequestOptions {
  const quorums: Partial<Record<QuorumParameter, QuorumSetting>> = {};
  for (const name of quorumParameters) {
    const text = query[name];
    if (text !== undefined) quorums[name] = quorumOf(name, text, nVal);
  }
  // consistency=LEVEL is shorthand for r=LEVEL&w=LEVEL; an explicit r or w wins (README).
  const r = quorums.r ?? query.consistency;
  const w = quorums.w ?? query.consistency;
  const timeoutMs = query.timeout_ms === undefined ? undefined : Number(query.timeout_ms);
  return {
    read: withoutUndefined({ r, pr: quorums.pr, timeoutMs }),
    write: withoutUndefined({ w, pw: quorums.pw, dw: quorums.dw, timeoutMs }),
    local: query.local === 'true',
    ...(query.ttl === undefined ? {} : { ttlSeconds: Number(query.ttl) }),
  };
}

/** Drops absent options, so the service sees exactly what the client asked for and nothing else. */
function withoutUndefined<T extends object>(options: T): T {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as T;
}
