import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type CausalContext, decodeContext, encodeContext, objectContext } from '../core/versioning/context.js';
import { type Sibling, type VersionedObject, isDeleted, liveSiblings } from '../core/versioning/versioned-object.js';
import type { NodeConfig } from '../config/schema.js';
import type { KvService } from '../engine/kv-service.js';
import { KvError, isKvError } from '../util/errors.js';
import type { Precondition } from '../core/versioning/preconditions.js';
import { sendKvError } from './errors.js';
import type { HttpMetrics, MeteredOperation } from './metrics.js';
import { type KvQuery, type KvRequestOptions, kvRequestOptions } from './query-parameters.js';
import { kvDeleteSchema, kvGetSchema, kvListSchema, kvPutSchema } from './route-schemas.js';
import { type ListQueryString, checkIsListing, parseListQuery } from './list-parameters.js';
import type { WriteCondition } from '../core/consensus/compare-and-set.js';
import type { ConsistentOutcome } from '../engine/kv-service.js';

/** The header that carries a key's causal context out with a read and back in with a write. */
export const contextHeader = 'x-ringkv-context';

/** The header of a consistent key's version: it grows with every write of the key (a fencing token). */
export const versionHeader = 'x-ringkv-version';

/** The header naming the lease a consistent key was written with (README, "Leases and ephemeral keys"). */
export const leaseHeader = 'x-ringkv-lease';

/** What a value without a content-type header is stored as. */
const defaultContentType = 'application/octet-stream';

/** A stored content type is echoed on every read, so it is bounded like the key. */
const maxContentTypeLength = 256;

/** What the /kv routes need. */
export interface KvRouteDependencies {
  readonly service: KvService;
  readonly config: NodeConfig;
  readonly metrics: HttpMetrics;
}

/** A /kv request after validation: the service trusts everything in it. */
interface KvTarget {
  readonly bucket: string;
  readonly key: string;
  /** The bucket is consistent: its requests are Paxos rounds (handled by the consistent* functions below). */
  readonly consistent: boolean;
  readonly options: KvRequestOptions;
  readonly context: CausalContext | undefined;
}

interface KvParams {
  readonly bucket: string;
  readonly key: string;
}

/** A /kv key route's request: its query string as the route schema checked it. */
interface KvRoute {
  Params: KvParams;
  Querystring: KvQuery;
}

/** Checks a bucket or key of a /kv or /dt path (`route` names the path in messages). */
export function checkName(kind: 'bucket' | 'key', name: string, maxBytes: number, route = '/kv'): void {
  if (name.length === 0) throw new KvError('KV_BAD_REQUEST', `the ${kind} is empty; the path is ${route}/{bucket}/{key} with both non-empty`);
  // Reserved buckets (the lease records', src/core/leases/lease-record.ts) start with U+0000, so no client's may.
  if (kind === 'bucket' && name.includes('\u0000'))
    throw new KvError('KV_BAD_REQUEST', 'bucket names with U+0000 (%00) are reserved for ringkv itself; use another bucket');
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes > maxBytes) {
    const code = kind === 'key' ? 'KV_KEY_TOO_LONG' : 'KV_BUCKET_TOO_LONG';
    const limit = kind === 'key' ? 'limits.maxKeyBytes' : 'limits.maxBucketBytes';
    throw new KvError(code, `the ${kind} is ${bytes} bytes (UTF-8), over ${limit} (${maxBytes}); use a shorter ${kind}`);
  }
}

/** `If-None-Match: *` or `If-Match: <a read's context>` (not both), validated here at the edge. */
function preconditionOf(request: FastifyRequest): Precondition | undefined {
  const noneMatch = request.headers['if-none-match'];
  const match = request.headers['if-match'];
  if (noneMatch !== undefined && match !== undefined) throw new KvError('KV_BAD_REQUEST', 'send If-None-Match or If-Match, not both');
  if (noneMatch !== undefined) {
    if (noneMatch.trim() !== '*') throw new KvError('KV_BAD_REQUEST', "If-None-Match takes only '*' (write only where no live value exists)");
    return { kind: 'absent' };
  }
  if (match === undefined) return undefined;
  const context = decodeContext(match.trim(), undefined, 'If-Match');
  if (context.dots.length > 0) {
    throw new KvError('KV_BAD_CONTEXT', "If-Match needs the context of a read, which names a whole version; a write's context names only that write");
  }
  return { kind: 'matches', vector: context.vector };
}

function contextOf(request: FastifyRequest): CausalContext | undefined {
  const text = request.headers[contextHeader];
  if (text === undefined || text === '') return undefined;
  // Node joins repeated custom headers with ', ', which decodeContext refuses as malformed.
  return decodeContext(Array.isArray(text) ? text.join(', ') : text);
}

/** Checks the path of a /kv request, so a bad one is refused before its body is read. */
function checkPath(request: FastifyRequest<{ Params: KvParams }>, dependencies: KvRouteDependencies): void {
  const { bucket, key } = request.params;
  const { limits } = dependencies.config;
  checkName('bucket', bucket, limits.maxBucketBytes);
  checkName('key', key, limits.maxKeyBytes);
  // The data types' namespace (src/core/datatypes/data-type.ts) starts with U+0000, so no plain key may.
  if (key.startsWith('\u0000')) throw new KvError('KV_BAD_REQUEST', 'keys that start with U+0000 (%00) are reserved for data types (/dt); use another key');
}

/** The target of a /kv request whose path onRequest and whose query string the route schema checked: what needs the bucket's properties. */
function targetOf(request: FastifyRequest<KvRoute>, dependencies: KvRouteDependencies): KvTarget {
  const { bucket, key } = request.params;
  const properties = dependencies.service.bucketProperties(bucket);
  const options = kvRequestOptions(request.query, properties.nVal);
  const consistent = properties.consistent === true;
  if (consistent) refuseQuorumParameters(request.query, request.method === 'PUT');
  else if (request.query.lease !== undefined) {
    throw new KvError(
      'KV_BAD_PARAMETER',
      `query parameter lease applies only to a consistent bucket, and '${bucket}' is not one: a lease's keys are deleted by consistent writes; use a bucket with "consistent": true`,
    );
  }
  return { bucket, key, consistent, options, context: consistent ? undefined : contextOf(request) };
}

/**
 * A consistent bucket's request is one Paxos round on a strict majority of the key's primaries:
 * a quorum, `local` read or `ttl` would be ignored, so it is refused rather than silently not honoured.
 */
function refuseQuorumParameters(query: KvQuery, put: boolean): void {
  const refused = Object.keys(query).filter((name) => name !== 'timeout_ms' && !(put && name === 'lease'));
  if (refused.length === 0) return;
  throw new KvError(
    'KV_BAD_PARAMETER',
    `query parameter ${refused.join(', ')} does not apply to a consistent bucket: every request is one Paxos round on a majority of the key's primaries, and its values do not expire (but for a lease's keys, PUT ?lease=ID); remove it (timeout_ms is the only parameter, and lease on a PUT)`,
    { details: { parameters: refused } },
  );
}

/** A consistent bucket's If-Match: the context (= version) a read or write of the key answered. */
function versionOf(text: string, header: string): number {
  const trimmed = text.trim();
  if (!/^[0-9]{1,15}$/.test(trimmed)) {
    throw new KvError(
      'KV_BAD_CONTEXT',
      `${header} on a consistent bucket takes the x-ringkv-context (the same as x-ringkv-version: an integer) of a read of the key; ${JSON.stringify(trimmed.slice(0, 40))} is not one`,
    );
  }
  return Number(trimmed);
}

/** A consistent write's condition: `If-None-Match: *` (absent) or `If-Match: <version>`. */
function conditionOf(request: FastifyRequest, allowAbsent: boolean): WriteCondition {
  const noneMatch = request.headers['if-none-match'];
  const match = request.headers['if-match'];
  if (noneMatch !== undefined && match !== undefined) throw new KvError('KV_BAD_REQUEST', 'send If-None-Match or If-Match, not both');
  if (noneMatch !== undefined) {
    if (!allowAbsent) throw new KvError('KV_BAD_REQUEST', 'If-None-Match does not apply to a DELETE; use If-Match with the version to delete');
    if (noneMatch.trim() !== '*') throw new KvError('KV_BAD_REQUEST', "If-None-Match takes only '*' (write only where no live value exists)");
    return { kind: 'absent' };
  }
  return match === undefined ? { kind: 'none' } : { kind: 'version', version: versionOf(match, 'If-Match') };
}

/** The version headers of a consistent key's state: the version is also the context If-Match takes. */
function versionHeaders(reply: FastifyReply, version: number): FastifyReply {
  return reply.header(versionHeader, String(version)).header(contextHeader, String(version));
}

/** A consistent GET: 200 with the value, or 404; the version either way. */
function sendConsistent(reply: FastifyReply, target: KvTarget, outcome: ConsistentOutcome, metrics: HttpMetrics): FastifyReply {
  versionHeaders(reply, outcome.version);
  if (outcome.value === null) {
    return sendKvError(
      reply,
      new KvError(
        'KV_NOT_FOUND',
        `no value for key '${target.key}' in bucket '${target.bucket}': it was never written or has been deleted (version ${outcome.version})`,
      ),
    );
  }
  const { value, contentType, lease } = outcome.value;
  if (lease !== undefined) reply.header(leaseHeader, lease);
  metrics.observeRead(1, value.byteLength);
  return reply
    .code(200)
    .type(contentType)
    .send(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
}

/** A consistent write's refusal for its condition carries the version it was judged on. */
async function consistentWrite(reply: FastifyReply, write: () => Promise<ConsistentOutcome>): Promise<FastifyReply> {
  try {
    const outcome = await write();
    return await versionHeaders(reply, outcome.version).code(204).send();
  } catch (error) {
    const version = isKvError(error) && error.code === 'KV_PRECONDITION_FAILED' ? error.details?.version : undefined;
    if (typeof version === 'number') versionHeaders(reply, version);
    throw error;
  }
}

/** Refuses a declared oversized value before a byte of it is read (a 64 MB upload is not buffered to be refused). */
function checkDeclaredLength(request: FastifyRequest, maxValueBytes: number): void {
  const declared = Number(request.headers['content-length']);
  if (declared > maxValueBytes) {
    throw new KvError(
      'KV_VALUE_TOO_LARGE',
      `the value is ${declared} bytes, over limits.maxValueBytes (${maxValueBytes}); store large objects elsewhere and keep a reference here`,
    );
  }
}

function contentTypeOf(request: FastifyRequest): string {
  const header = request.headers['content-type']?.trim();
  if (header === undefined || header === '') return defaultContentType;
  if (header.length > maxContentTypeLength)
    throw new KvError('KV_BAD_REQUEST', `the content-type header is over ${maxContentTypeLength} characters; send a shorter media type (or none)`);
  return header;
}

function notFound(reply: FastifyReply, target: KvTarget, object: VersionedObject | undefined): FastifyReply {
  // A tombstone still has a context: writing back with it orders the new value after the delete.
  if (object !== undefined) reply.header(contextHeader, encodeContext(objectContext(object)));
  const error = new KvError('KV_NOT_FOUND', `no value for key '${target.key}' in bucket '${target.bucket}': it was never written or has been deleted`);
  return sendKvError(reply, error);
}

function siblingJson(sibling: Sibling): { value: string; contentType: string; lastModified: string } {
  return {
    value: Buffer.from(sibling.value).toString('base64'),
    contentType: sibling.contentType,
    lastModified: new Date(sibling.lastModifiedMs).toISOString(),
  };
}

/** 200 with the one live value, 300 with every live sibling, 404 when there is none (expired siblings count as deleted at `nowMs`). */
function sendObject(reply: FastifyReply, target: KvTarget, object: VersionedObject | undefined, metrics: HttpMetrics, nowMs: number): FastifyReply {
  if (object === undefined || isDeleted(object, nowMs)) return notFound(reply, target, object);
  const context = encodeContext(objectContext(object));
  reply.header(contextHeader, context);
  const live = liveSiblings(object, nowMs);
  metrics.observeRead(
    live.length,
    live.reduce((sum, sibling) => sum + sibling.value.byteLength, 0),
  );
  if (live.length === 1) {
    const [sibling] = live as [Sibling];
    reply.header('last-modified', new Date(sibling.lastModifiedMs).toUTCString());
    return reply
      .code(200)
      .type(sibling.contentType)
      .send(Buffer.from(sibling.value.buffer, sibling.value.byteOffset, sibling.value.byteLength));
  }
  return reply
    .code(300)
    .type('application/json; charset=utf-8')
    .send({ context, siblings: live.map(siblingJson) });
}

function operationOf(request: FastifyRequest): MeteredOperation {
  if (request.method === 'PUT') return 'put';
  if (request.method === 'DELETE') return 'delete';
  return (request.query as Record<string, unknown>).local === 'true' ? 'get_local' : 'get';
}

/** Registers GET, PUT and DELETE on /kv/:bucket/:key (HEAD comes with GET), and the listing GET /kv/:bucket?keys=true. */
export function registerKvRoutes(app: FastifyInstance, dependencies: KvRouteDependencies): void {
  const { service, config, metrics } = dependencies;
  // The path is checked in onRequest, before the body is read; the query string by the route schema.
  const common = {
    onRequest: async (request: FastifyRequest<{ Params: KvParams }>) => {
      if (request.method === 'PUT') checkDeclaredLength(request, config.limits.maxValueBytes);
      checkPath(request, dependencies);
    },
    onResponse: async (request: FastifyRequest, reply: FastifyReply) => {
      metrics.observe(operationOf(request), reply.statusCode, reply.elapsedTime / 1000);
    },
  };

  app.get<KvRoute>('/kv/:bucket/:key', { ...common, schema: kvGetSchema }, async (request, reply) => {
    const target = targetOf(request, dependencies);
    if (target.consistent)
      return sendConsistent(reply, target, await service.consistent(target.bucket, target.key, { kind: 'read' }, target.options.read.timeoutMs), metrics);
    const object = target.options.local ? await service.getLocal(target.bucket, target.key) : await service.get(target.bucket, target.key, target.options.read);
    return sendObject(reply, target, object, metrics, service.nowMs());
  });

  // A path without keys=true is a key path missing its key, told before the schema speaks of parameters.
  app.get<{ Params: { bucket: string }; Querystring: ListQueryString }>(
    '/kv/:bucket',
    {
      schema: kvListSchema,
      onRequest: async (request: FastifyRequest<{ Params: { bucket: string } }>) => {
        checkName('bucket', request.params.bucket, config.limits.maxBucketBytes);
        checkIsListing(request.query);
      },
    },
    async (request) => service.list(parseListQuery(request.params.bucket, request.query, config.limits.maxKeyBytes)),
  );

  app.put<KvRoute>('/kv/:bucket/:key', { ...common, bodyLimit: config.limits.maxValueBytes, schema: kvPutSchema }, async (request, reply) => {
    const target = targetOf(request, dependencies);
    const value = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    const contentType = contentTypeOf(request);
    if (target.consistent) {
      const condition = conditionOf(request, true);
      const lease = request.query.lease;
      if (lease !== undefined) {
        return consistentWrite(reply, () =>
          service.leases.put(target.bucket, target.key, { value, contentType }, condition, lease, target.options.write.timeoutMs),
        );
      }
      return consistentWrite(reply, () =>
        service.consistent(target.bucket, target.key, { kind: 'write', value: { value, contentType }, condition }, target.options.write.timeoutMs),
      );
    }
    const precondition = preconditionOf(request);
    try {
      const result = await service.put({
        bucket: target.bucket,
        key: target.key,
        value,
        contentType,
        context: target.context,
        options: target.options.write,
        ...(precondition === undefined ? {} : { precondition }),
        ...(target.options.ttlSeconds === undefined ? {} : { ttlSeconds: target.options.ttlSeconds }),
      });
      return await reply.code(204).header(contextHeader, encodeContext(result.context)).send();
    } catch (error) {
      // A refused conditional write answers with the key's current context, as a read would.
      const current = isKvError(error) && error.code === 'KV_PRECONDITION_FAILED' ? error.details?.context : undefined;
      if (typeof current === 'string') reply.header(contextHeader, current);
      throw error;
    }
  });

  app.delete<KvRoute>('/kv/:bucket/:key', { ...common, schema: kvDeleteSchema }, async (request, reply) => {
    const target = targetOf(request, dependencies);
    if (target.consistent) {
      const condition = conditionOf(request, false);
      return consistentWrite(reply, () =>
        service.consistent(target.bucket, target.key, { kind: 'write', value: null, condition }, target.options.write.timeoutMs),
      );
    }
    const result = await service.delete({ bucket: target.bucket, key: target.key, context: target.context, options: target.options.write });
    return reply.code(204).header(contextHeader, encodeContext(result.context)).send();
  });
}
