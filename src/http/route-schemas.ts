import { type TSchema, Type } from '@sinclair/typebox';
import { type KvErrorCode, errorStatusByCode } from '../util/errors.js';
import { maxNVal } from '../core/buckets.js';
import { maxListLimit, maxTimeoutMs } from '../core/client-limits.js';
import { maxTtlSeconds } from '../core/versioning/versioned-object.js';
import { maxLeaseTtlSeconds, minLeaseTtlSeconds } from '../core/leases/lease-record.js';

/**
 * The fastify schemas of every route: params, query, headers and responses. fastify validates
 * requests against them (validation at the edge: house rule 4, docs/ARCHITECTURE.md#house-rules) and @fastify/swagger turns them
 * into GET /openapi.json, so the API's description cannot drift from the routes.
 *
 * A query parameter's schema is its one definition: its shape and static bounds, and as its
 * description what to use, which is also what a client refused for it reads (query-parameters.ts
 * builds that one message, and checks the one bound no schema knows, the bucket's n_val). Numbers
 * are strings of digits matched by pattern: ajv's coercion of a query string to a number would
 * take '1e309' as Infinity past any maximum, and '0x2' or ' 2' as 2.
 */

/** The errors every route can answer: a malformed request, an oversized request head, a compressed body, a node shutting down, an unexpected failure. */
const everyRoute: readonly KvErrorCode[] = ['KV_BAD_REQUEST', 'KV_HEADERS_TOO_LARGE', 'KV_UNSUPPORTED_ENCODING', 'KV_NOT_READY', 'KV_INTERNAL'];
/** The errors of client authentication, on every public route when `auth.enabled` is on. */
const authErrors: readonly KvErrorCode[] = ['KV_UNAUTHORIZED', 'KV_FORBIDDEN'];

/** The documented error body, `{"error": {"code", "message", "details"?}}`, for the given codes. */
function errorBody(codes: readonly KvErrorCode[]): TSchema {
  return Type.Object(
    {
      error: Type.Object({
        code: Type.Union(codes.map((code) => Type.Literal(code))),
        message: Type.String({ description: 'what happened and what to do' }),
        details: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'machine-readable facts, for example how many replicas answered' })),
      }),
    },
    { description: codes.join(', ') },
  );
}

/** Load shedding and a node with no ring yet say when to come back. */
const retryAfterHeaders = { 'retry-after': Type.String({ description: 'seconds to wait before retrying' }) };

/** The error responses of a route: its own codes plus those of every route, grouped by HTTP status. */
export function errorResponses(codes: readonly KvErrorCode[], options: { readonly auth?: boolean } = {}): Record<number, TSchema> {
  const all = [...new Set([...codes, ...everyRoute, ...(options.auth === false ? [] : authErrors)])];
  const byStatus = new Map<number, KvErrorCode[]>();
  for (const code of all) {
    const status = errorStatusByCode[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus]
      .sort(([left], [right]) => left - right)
      .map(([status, grouped]) => [status, status === 503 ? { ...errorBody(grouped), headers: retryAfterHeaders } : errorBody(grouped)]),
  );
}

const contextHeaderSchema = Type.String({ description: 'the causal context of the key (opaque); send it back with the next write or delete of the key' });

const versionHeaderSchema = Type.String({
  pattern: '^[0-9]+$',
  description: "consistent buckets only: the key's version, an integer that grows with every write and delete of the key (a fencing token); also its context",
});

/** An alternation that matches exactly the decimal integers from `min` (0 or 1) to `max`: no sign, no leading zero. */
function integerAlternatives(min: 0 | 1, max: number): string {
  const digits = String(max);
  const alternatives = min === 0 ? ['0'] : [];
  // Every number with fewer digits than max, then those with as many: a prefix of max, a smaller digit, any digits.
  if (digits.length > 1) alternatives.push(`[1-9][0-9]{0,${digits.length - 2}}`);
  for (let index = 0; index < digits.length; index++) {
    const low = index === 0 ? 1 : 0;
    const high = Number(digits[index]) - 1;
    if (high >= low) alternatives.push(`${digits.slice(0, index)}[${low}-${high}][0-9]{${digits.length - index - 1}}`);
  }
  alternatives.push(digits);
  return alternatives.join('|');
}

/** The source of a pattern that matches exactly the decimal integers from `min` (0 or 1) to `max`. */
export function integerPattern(min: 0 | 1, max: number): string {
  return `^(?:${integerAlternatives(min, max)})$`;
}

/** An integer query parameter from `min` to `max`; `what` follows the bounds in its description (and in the message of a bad value). */
export const integerParameter = (min: 0 | 1, max: number, what: string) =>
  Type.String({ pattern: integerPattern(min, max), description: `an integer from ${min} to ${max}${what}` });

const quorumPattern = `^(?:${integerAlternatives(1, maxNVal)}|one|quorum|all)$`;
const quorum = (description: string) =>
  Type.String({ pattern: quorumPattern, description: `one, quorum, all or an integer from 1 to the bucket's n_val (at most ${maxNVal}): ${description}` });
const consistency = Type.Union([Type.Literal('one'), Type.Literal('quorum'), Type.Literal('all')], {
  description: 'one, quorum or all: sets r and w together (an explicit r or w wins)',
});
const timeoutMs = integerParameter(1, maxTimeoutMs, ' (milliseconds): how long the coordinator waits, default limits.requestTimeoutMs');

const kvParams = Type.Object({
  bucket: Type.String({ minLength: 1, description: 'the bucket, URL-encoded (at most limits.maxBucketBytes UTF-8 bytes)' }),
  key: Type.String({ minLength: 1, description: "the key, URL-encoded: a '/' inside it is %2F (at most limits.maxKeyBytes UTF-8 bytes)" }),
});

const readQuery = {
  r: Type.Optional(quorum('replicas that must answer')),
  pr: Type.Optional(quorum('primaries among them')),
  w: Type.Optional(quorum('replicas that must acknowledge a write (ignored on a read)')),
  pw: Type.Optional(quorum('primaries among them (ignored on a read)')),
  dw: Type.Optional(quorum('replicas that must have fsynced (ignored on a read)')),
  consistency: Type.Optional(consistency),
  timeout_ms: Type.Optional(timeoutMs),
};

const kvGetQuery = Type.Object(
  {
    ...readQuery,
    local: Type.Optional(
      Type.Union([Type.Literal('true'), Type.Literal('false')], {
        description: "true or false; true: this node's own copy, without coordination or read repair",
      }),
    ),
  },
  { additionalProperties: false },
);
// `local` is refused on writes (it would silently coordinate a write the caller thought local), but
// its false value is accepted, so the schema allows exactly that.
const writeLocal = Type.Optional(
  Type.Literal('false', { description: "false, or leave it out: local=true is only for GET /kv (a read of this node's own copy)" }),
);
const kvWriteQuery = Type.Object({ ...readQuery, local: writeLocal }, { additionalProperties: false });
const kvPutQuery = Type.Object(
  {
    ...readQuery,
    local: writeLocal,
    ttl: Type.Optional(integerParameter(1, maxTtlSeconds, " (seconds, ten years at most): when the value expires; absent: the bucket's ttlSeconds")),
    lease: Type.Optional(
      Type.String({
        pattern: '^[0-9a-f]{16}$',
        description: 'the 16 hex digits of a lease id (POST /leases), consistent buckets only: the key is deleted when the lease expires or is revoked',
      }),
    ),
  },
  { additionalProperties: false },
);

const siblingsBody = Type.Object(
  {
    context: Type.String(),
    siblings: Type.Array(
      Type.Object({
        value: Type.String({ description: 'the value, base64' }),
        contentType: Type.String(),
        lastModified: Type.String({ format: 'date-time' }),
      }),
    ),
  },
  { description: 'concurrent writes: every live sibling; resolve by writing back with `context`' },
);

const valueResponse = {
  description: 'the one live value: its exact bytes, with its content type',
  content: { '*/*': { schema: Type.String({ format: 'binary' }) } },
  headers: {
    'x-ringkv-context': contextHeaderSchema,
    'x-ringkv-version': versionHeaderSchema,
    'x-ringkv-lease': Type.String({ description: 'consistent buckets only: the lease the key was written with (PUT ?lease=ID)' }),
    'last-modified': Type.String(),
  },
};

const writtenResponse = (what: string) => ({
  description: what,
  type: 'null',
  headers: { 'x-ringkv-context': contextHeaderSchema, 'x-ringkv-version': versionHeaderSchema },
});

const kvErrors: readonly KvErrorCode[] = [
  'KV_BAD_PARAMETER',
  'KV_BAD_CONTEXT',
  'KV_KEY_TOO_LONG',
  'KV_BUCKET_TOO_LONG',
  'KV_INSUFFICIENT_REPLICAS',
  'KV_OVERLOADED',
  'KV_TIMEOUT',
  'KV_STORAGE',
  'KV_NOT_READY',
  'KV_CONSISTENT_BUCKET',
];

/** Conditional writes: checked at the coordinating replica after a read of r replicas (README, "Conditional writes"). */
const conditionalHeaders = {
  'if-none-match': Type.Optional(Type.String({ description: '`*`: write only where no live value exists, else 412 KV_PRECONDITION_FAILED' })),
  'if-match': Type.Optional(
    Type.String({ description: 'the context of a read: write only where the current version is exactly that one, else 412 KV_PRECONDITION_FAILED' }),
  ),
};

/** A consistent bucket's delete may be conditional too (If-Match: the version it must still be at). */
const deleteHeaders = Type.Object({
  'x-ringkv-context': Type.Optional(Type.String({ description: 'the context of the read this request follows' })),
  'if-match': Type.Optional(
    Type.String({
      description:
        'consistent buckets only: the context (version) of a read: delete only while the key is at exactly that version, else 412 KV_PRECONDITION_FAILED',
    }),
  ),
});

/** GET (and HEAD) /kv/:bucket/:key. */
export const kvGetSchema = {
  tags: ['kv'],
  summary: 'read a key',
  params: kvParams,
  querystring: kvGetQuery,
  response: {
    200: valueResponse,
    300: siblingsBody,
    ...errorResponses([...kvErrors, 'KV_NOT_FOUND']),
  },
};

/** PUT /kv/:bucket/:key. */
export const kvPutSchema = {
  tags: ['kv'],
  summary: 'write a value (any bytes, any content type)',
  params: kvParams,
  querystring: kvPutQuery,
  headers: Type.Object({
    'x-ringkv-context': Type.Optional(
      Type.String({ description: 'the context of the read this write follows; without it the write is blind and becomes a sibling' }),
    ),
    'content-type': Type.Optional(
      Type.String({ description: 'stored and returned with the value (at most 256 characters; default application/octet-stream)' }),
    ),
    ...conditionalHeaders,
  }),
  response: {
    204: writtenResponse("written; the new version's context is in x-ringkv-context"),
    ...errorResponses([
      ...kvErrors,
      'KV_VALUE_TOO_LARGE',
      'KV_OBJECT_TOO_LARGE',
      'KV_TOO_MANY_SIBLINGS',
      'KV_PRECONDITION_FAILED',
      'KV_LEASE_NOT_FOUND',
      'KV_LEASE_FULL',
      'KV_CONFLICT',
    ]),
  },
};

/** DELETE /kv/:bucket/:key. */
export const kvDeleteSchema = {
  tags: ['kv'],
  summary: 'delete a key (writes a tombstone)',
  params: kvParams,
  querystring: kvWriteQuery,
  headers: deleteHeaders,
  response: { 204: writtenResponse("deleted; the tombstone's context is in x-ringkv-context"), ...errorResponses([...kvErrors, 'KV_PRECONDITION_FAILED']) },
};

/** GET /kv/:bucket?keys=true. */
export const kvListSchema = {
  tags: ['kv'],
  summary: "list a bucket's live keys in byte order, a page at a time (a coverage query over every partition)",
  params: Type.Object({ bucket: kvParams.properties.bucket }),
  querystring: Type.Object(
    {
      keys: Type.Literal('true', { description: 'true, to list the keys' }),
      limit: Type.Optional(integerParameter(1, maxListLimit, ': keys per page (default 1000)')),
      after: Type.Optional(
        Type.String({
          minLength: 1,
          description: 'the `next` of the previous page: only keys after this one in byte order (a key, at most limits.maxKeyBytes)',
        }),
      ),
      prefix: Type.Optional(Type.String({ description: 'only keys that start with this (at most limits.maxKeyBytes)' })),
      timeout_ms: Type.Optional(timeoutMs),
    },
    { additionalProperties: false },
  ),
  response: {
    200: Type.Object(
      {
        keys: Type.Array(Type.String()),
        next: Type.Union([Type.String(), Type.Null()], {
          description: 'the cursor of the next page (send it as `after`), or null when the listing is complete',
        }),
      },
      { description: 'a page of live keys in byte order' },
    ),
    ...errorResponses(['KV_BAD_PARAMETER', 'KV_BUCKET_TOO_LONG', 'KV_INSUFFICIENT_REPLICAS', 'KV_OVERLOADED']),
  },
};

const dtGetQuery = Type.Object({ ...readQuery }, { additionalProperties: false });
const dtErrors: readonly KvErrorCode[] = [
  'KV_BAD_PARAMETER',
  'KV_KEY_TOO_LONG',
  'KV_BUCKET_TOO_LONG',
  'KV_INSUFFICIENT_REPLICAS',
  'KV_OVERLOADED',
  'KV_TIMEOUT',
  'KV_STORAGE',
];

/** GET /dt/:bucket/:key: a counter or a set (README, "Data types"). */
export const dtGetSchema = {
  tags: ['dt'],
  summary: 'read a counter or a set, merged from r replicas',
  params: kvParams,
  querystring: dtGetQuery,
  response: {
    200: Type.Union(
      [
        Type.Object({
          type: Type.Literal('counter'),
          value: Type.Integer({ description: 'the sum of every increment and decrement the replicas read have merged' }),
        }),
        Type.Object({
          type: Type.Literal('set'),
          value: Type.Array(Type.String(), { description: 'the elements, each once, in UTF-8 byte order' }),
          context: Type.String({ description: 'opaque: send it back with a remove, which then removes only what this read saw' }),
        }),
      ],
      { description: 'the merged state' },
    ),
    ...errorResponses([...dtErrors, 'KV_NOT_FOUND', 'KV_COUNTER_OVERFLOW']),
  },
};

/** POST /dt/:bucket/:key: increment a counter or add to and remove from a set. */
export const dtUpdateSchema = {
  tags: ['dt'],
  summary: 'update a counter (increment by any safe integer) or a set (add, and remove what a read saw)',
  params: kvParams,
  querystring: kvWriteQuery,
  body: Type.Object(
    {
      type: Type.Union([Type.Literal('counter'), Type.Literal('set')]),
      increment: Type.Optional(Type.Integer({ description: 'counter: added to the value; negative to decrement (a safe integer)' })),
      add: Type.Optional(Type.Array(Type.String(), { description: 'set: elements to add (an add concurrent with a remove wins)' })),
      remove: Type.Optional(Type.Array(Type.String(), { description: 'set: elements to remove, as the read of `context` saw them' })),
      context: Type.Optional(Type.String({ description: 'set: the context of a GET of this set; required with remove' })),
    },
    { description: '{"type":"counter","increment":N} or {"type":"set","add":[...],"remove":[...],"context":"..."}' },
  ),
  response: {
    204: { description: 'applied at one replica and replicated to w of them', type: 'null' },
    ...errorResponses([
      ...dtErrors,
      'KV_BAD_CONTEXT',
      'KV_VALUE_TOO_LARGE',
      'KV_PRECONDITION_FAILED',
      'KV_TYPE_MISMATCH',
      'KV_SET_TOO_LARGE',
      'KV_OBJECT_TOO_LARGE',
      'KV_COUNTER_OVERFLOW',
    ]),
  },
};

const anyObject = (description: string) => Type.Object({}, { additionalProperties: true, description });

/** GET /health. */
export const healthSchema = {
  tags: ['admin'],
  summary: 'liveness probe (never needs a token)',
  response: { 200: Type.Object({ status: Type.Literal('ok') }), ...errorResponses([], { auth: false }) },
};

/** GET /status. */
export const statusSchema = {
  tags: ['admin'],
  summary: "this node's view: members, ring, hints, anti-entropy, storage",
  response: { 200: anyObject('the status document (`ringkv status --json`)'), ...errorResponses([]) },
};

/** GET /metrics. */
export const metricsSchema = {
  tags: ['admin'],
  summary: 'Prometheus metrics',
  response: { 200: { description: 'Prometheus text exposition format', content: { 'text/plain': { schema: Type.String() } } }, ...errorResponses([]) },
};

/** POST /admin/compact. */
export const compactSchema = {
  tags: ['admin'],
  summary: "compact this node's LevelDB now, or one partition's key range",
  querystring: Type.Object(
    { partition: Type.Optional(integerParameter(0, 65_535, ": a partition number, below the cluster's partitionCount")) },
    { additionalProperties: false },
  ),
  response: {
    200: Type.Object({ compacted: Type.Boolean(), partition: Type.Optional(Type.Integer()) }),
    ...errorResponses(['KV_BAD_PARAMETER', 'KV_STORAGE']),
  },
};

const repairProgress = anyObject('anti-entropy progress: running, partitionsDone, partitionsTotal, keysRepaired');

/** POST /admin/repair. */
export const repairStartSchema = {
  tags: ['cluster'],
  summary: 'start an anti-entropy exchange of every partition now',
  response: { 202: repairProgress, ...errorResponses([]) },
};

/** GET /admin/repair. */
export const repairProgressSchema = {
  tags: ['cluster'],
  summary: 'the progress of the running or last repair',
  response: { 200: repairProgress, ...errorResponses([]) },
};

/** POST /admin/leave. */
export const leaveSchema = {
  tags: ['cluster'],
  summary: 'decommission this node: its partitions stream to their new owners, then it exits',
  response: { 202: anyObject('the plan'), ...errorResponses(['KV_CONFLICT']) },
};

/** POST /admin/remove/:nodeId. */
export const removeSchema = {
  tags: ['cluster'],
  summary: 'remove a node that is gone for good; its partitions are rebuilt from the remaining replicas',
  params: Type.Object({ nodeId: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$', description: 'the id `ringkv status` shows' }) }),
  response: { 202: anyObject('the plan'), ...errorResponses(['KV_BAD_PARAMETER', 'KV_UNKNOWN_NODE', 'KV_CONFLICT']) },
};

const htmlOrAsset = (summary: string, type: string) => ({
  tags: ['dashboard'],
  summary,
  response: { 200: { description: summary, content: { [type]: { schema: Type.String() } } }, ...errorResponses([]) },
});

/** The dashboard's routes. */
export const dashboardSchemas = {
  page: htmlOrAsset('the live dashboard', 'text/html'),
  script: htmlOrAsset("the dashboard's script", 'text/javascript'),
  style: htmlOrAsset("the dashboard's style", 'text/css'),
  data: {
    tags: ['dashboard'],
    summary: "the dashboard's figures: /status plus request rates and latencies",
    response: { 200: anyObject('status and request figures'), ...errorResponses([]) },
  },
};

/** GET /openapi.json. */
export const openApiSchema = {
  tags: ['admin'],
  summary: 'this description of the API (OpenAPI 3)',
  response: { 200: anyObject('the OpenAPI document'), ...errorResponses([]) },
};

const watchStreamResponse = {
  description:
    'a stream of Server-Sent Events (text/event-stream): `ready` once every node was asked, then `put` and `delete` for each write (key, value base64, content type, context, dot), with ?dt=true `update` for each data type update (key, type, the state the applying replica left, dot), `progress` (the id moved past writes not followed), `compacted` (writes were lost to the watch: read again; later ones follow) and `overflow` (the watcher fell watch.maxQueuedEvents behind and was cut off: reconnect with Last-Event-ID)',
  content: { 'text/event-stream': { schema: Type.String() } },
};
const watchHeaders = Type.Object({
  'last-event-id': Type.Optional(Type.String({ description: 'the id of the last event received: the watch resumes after it, on any node' })),
});
const watchErrors: readonly KvErrorCode[] = ['KV_BAD_PARAMETER', 'KV_KEY_TOO_LONG', 'KV_BUCKET_TOO_LONG', 'KV_OVERLOADED'];

/** ?dt=true: a watch of data types (/dt) instead of plain keys. */
const watchDataTypes = Type.Optional(
  Type.Union([Type.Literal('true'), Type.Literal('false')], {
    description: 'true or false; true: watch the data types (/dt) of these names, not the plain keys (an `update` event per counter or set update)',
  }),
);

/** GET /watch/:bucket/:key: the writes of one key (README, "Watches"). */
export const watchKeySchema = {
  tags: ['kv'],
  summary: 'watch the writes of a key, as Server-Sent Events',
  params: kvParams,
  querystring: Type.Object({ dt: watchDataTypes }, { additionalProperties: false }),
  headers: watchHeaders,
  response: { 200: watchStreamResponse, ...errorResponses(watchErrors) },
};

/** GET /watch/:bucket?prefix=P: the writes of every key of a bucket that starts with P. */
export const watchPrefixSchema = {
  tags: ['kv'],
  summary: 'watch the writes of every key that starts with a prefix, as Server-Sent Events',
  params: Type.Object({ bucket: kvParams.properties.bucket }),
  querystring: Type.Object(
    {
      prefix: Type.String({ description: "?prefix=P, the keys' prefix (?prefix= for every key of the bucket); to watch one key use /watch/{bucket}/{key}" }),
      dt: watchDataTypes,
    },
    { additionalProperties: false },
  ),
  headers: watchHeaders,
  response: { 200: watchStreamResponse, ...errorResponses(watchErrors) },
};

const leaseParams = Type.Object({ id: Type.String({ description: 'the lease id POST /leases answered (16 hex digits)' }) });
const leaseGrant = Type.Object(
  { id: Type.String(), ttl: Type.Integer({ description: 'seconds' }) },
  { description: 'the lease: it ends no sooner than ttl seconds after the last keep-alive was sent' },
);
const leaseErrors: readonly KvErrorCode[] = ['KV_BAD_PARAMETER', 'KV_INSUFFICIENT_REPLICAS', 'KV_OVERLOADED', 'KV_TIMEOUT', 'KV_STORAGE', 'KV_CONFLICT'];

/** POST /leases: grant a lease (README, "Leases and ephemeral keys"). */
export const leaseGrantSchema = {
  tags: ['leases'],
  summary: 'grant a lease',
  body: Type.Object(
    { ttl: Type.Integer({ minimum: minLeaseTtlSeconds, maximum: maxLeaseTtlSeconds, description: `seconds, ${minLeaseTtlSeconds} to ${maxLeaseTtlSeconds}` }) },
    { description: '{"ttl": seconds}' },
  ),
  response: { 201: leaseGrant, ...errorResponses(leaseErrors) },
};

/** POST /leases/:id/keepalive. */
export const leaseKeepAliveSchema = {
  tags: ['leases'],
  summary: 'keep a lease alive: its ttl starts again',
  params: leaseParams,
  response: { 200: leaseGrant, ...errorResponses([...leaseErrors, 'KV_LEASE_NOT_FOUND']) },
};

/** GET /leases/:id. */
export const leaseGetSchema = {
  tags: ['leases'],
  summary: 'describe a lease: its ttl, keep-alives and keys',
  params: leaseParams,
  response: {
    200: Type.Object({
      id: Type.String(),
      ttl: Type.Integer(),
      keepAlives: Type.Integer(),
      remaining: Type.Optional(Type.Integer({ description: "seconds before this node's sweeper may end it, when this node is the one watching it" })),
      keys: Type.Array(Type.Object({ bucket: Type.String(), key: Type.String() })),
    }),
    ...errorResponses([...leaseErrors, 'KV_LEASE_NOT_FOUND']),
  },
};

/** DELETE /leases/:id. */
export const leaseRevokeSchema = {
  tags: ['leases'],
  summary: 'revoke a lease: its keys are deleted, then the lease',
  params: leaseParams,
  response: { 204: { description: 'revoked', type: 'null' }, ...errorResponses([...leaseErrors, 'KV_LEASE_NOT_FOUND']) },
};
