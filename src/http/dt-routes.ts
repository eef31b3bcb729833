import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DataTypeUpdate } from '../core/datatypes/data-type.js';
import { type CausalContext, decodeContext } from '../core/versioning/context.js';
import type { NodeConfig } from '../config/schema.js';
import type { KvService } from '../engine/kv-service.js';
import { assert } from '../util/assert.js';
import { KvError } from '../util/errors.js';
import { checkName } from './kv-routes.js';
import type { HttpMetrics } from './metrics.js';
import { type KvQuery, type KvRequestOptions, kvRequestOptions } from './query-parameters.js';
import { dtGetSchema, dtUpdateSchema } from './route-schemas.js';

/** What the /dt routes need. */
export interface DataTypeRouteDependencies {
  readonly service: KvService;
  readonly config: NodeConfig;
  readonly metrics: HttpMetrics;
}

interface DataTypeParams {
  readonly bucket: string;
  readonly key: string;
}

/** A /dt route's request: its query string as the route schema checked it. */
interface DataTypeRoute {
  Params: DataTypeParams;
  Querystring: KvQuery;
}

interface DataTypeTarget {
  readonly bucket: string;
  readonly key: string;
  readonly options: KvRequestOptions;
}

/**
 * A set's context names one entry per actor that ever added to it (each node incarnation, and
 * each handoff it lived through), so it may outgrow a header's 16 KiB; in a body it may take 1 MiB.
 */
const maxSetContextLength = 1024 * 1024;

const bodyShape = 'send JSON {"type":"counter","increment":N} or {"type":"set","add":[...],"remove":[...],"context":"<from GET>"}';

function badBody(why: string): KvError {
  return new KvError('KV_BAD_REQUEST', `${why}; ${bodyShape}`);
}

/** Checks the path of a /dt request, so a bad one is refused before its body is read. */
function checkPath(request: FastifyRequest<{ Params: DataTypeParams }>, dependencies: DataTypeRouteDependencies): void {
  const { limits } = dependencies.config;
  checkName('bucket', request.params.bucket, limits.maxBucketBytes, '/dt');
  checkName('key', request.params.key, limits.maxKeyBytes, '/dt');
}

/** The target of a /dt request whose query string the route schema checked (it takes no local=true): the options need the bucket's n_val. */
function targetOf(request: FastifyRequest<DataTypeRoute>, dependencies: DataTypeRouteDependencies): DataTypeTarget {
  const { bucket, key } = request.params;
  return { bucket, key, options: kvRequestOptions(request.query, dependencies.service.bucketProperties(bucket).nVal) };
}

/** The request body as JSON (the app reads every body as bytes). */
function parseJson(body: unknown): unknown {
  if (!Buffer.isBuffer(body) || body.length === 0) throw badBody('the body is empty');
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw badBody('the body is not JSON');
  }
}

function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(body).find((name) => !allowed.includes(name));
  if (unknown !== undefined) throw badBody(`unknown field ${JSON.stringify(unknown.slice(0, 64))} for a ${String(body.type)}`);
}

function stringList(body: Record<string, unknown>, field: 'add' | 'remove'): string[] {
  const value = body[field];
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.some((element) => typeof element !== 'string')) throw badBody(`"${field}" must be an array of strings`);
  return value as string[];
}

function setContext(text: string): CausalContext {
  try {
    return decodeContext(text, maxSetContextLength);
  } catch (error) {
    const why = error instanceof KvError ? (/\(([^)]*)\)/.exec(error.message)?.[1] ?? 'malformed') : 'malformed';
    throw new KvError('KV_BAD_CONTEXT', `"context" is not one a GET /dt of this set returned (${why}); send it back exactly as the read gave it`);
  }
}

/** Validates an update body fully, so the service trusts it (house rule 4, docs/ARCHITECTURE.md#house-rules). */
export function parseDataTypeUpdate(json: unknown, config: NodeConfig): DataTypeUpdate {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw badBody('the body is not a JSON object');
  const body = json as Record<string, unknown>;
  if (body.type === 'counter') {
    onlyFields(body, ['type', 'increment']);
    if (typeof body.increment !== 'number' || !Number.isSafeInteger(body.increment)) {
      throw badBody(`"increment" must be an integer from ${Number.MIN_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}`);
    }
    return { type: 'counter', increment: body.increment };
  }
  if (body.type !== 'set') throw badBody(`"type" must be "counter" or "set", got ${JSON.stringify(body.type)?.slice(0, 64) ?? 'nothing'}`);
  onlyFields(body, ['type', 'add', 'remove', 'context']);
  const add = stringList(body, 'add');
  const remove = stringList(body, 'remove');
  if (add.length === 0 && remove.length === 0) throw badBody('a set update needs elements to "add" or to "remove"');
  const removing = new Set(remove);
  const both = add.find((element) => removing.has(element));
  if (both !== undefined) throw badBody(`${JSON.stringify(both.slice(0, 64))} is both added and removed; send one or the other`);
  if (new Set(add).size > config.limits.maxSetElements) {
    throw new KvError(
      'KV_SET_TOO_LARGE',
      `the update adds ${new Set(add).size} elements, over limits.maxSetElements (${config.limits.maxSetElements}); spread them over several keys`,
    );
  }
  if (body.context !== undefined && typeof body.context !== 'string')
    throw new KvError('KV_BAD_CONTEXT', '"context" must be the string a GET /dt of this set returned');
  if (remove.length > 0 && (body.context === undefined || body.context === '')) {
    throw new KvError(
      'KV_BAD_CONTEXT',
      'a remove needs "context": the context of a GET /dt of this set, so that it removes only what that read saw; read the set and send its context',
    );
  }
  const context = typeof body.context === 'string' && body.context !== '' ? setContext(body.context) : undefined;
  return context === undefined ? { type: 'set', add, remove } : { type: 'set', add, remove, context };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** A POST /dt body as preValidation parsed and checked it; null elsewhere. */
    dataTypeUpdate: DataTypeUpdate | null;
  }
}

/** Registers GET and POST /dt/:bucket/:key: counters and sets (src/core/datatypes/). */
export function registerDataTypeRoutes(app: FastifyInstance, dependencies: DataTypeRouteDependencies): void {
  const { service, config, metrics } = dependencies;
  const onResponse = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    metrics.observe(request.method === 'POST' ? 'dt_update' : 'dt_get', reply.statusCode, reply.elapsedTime / 1000);
  };
  app.decorateRequest('dataTypeUpdate', null);
  const onRequest = async (request: FastifyRequest<{ Params: DataTypeParams }>): Promise<void> => {
    checkPath(request, dependencies);
  };

  app.get<DataTypeRoute>('/dt/:bucket/:key', { onRequest, onResponse, schema: dtGetSchema }, async (request, reply) => {
    const target = targetOf(request, dependencies);
    const value = await service.dataTypes.read(target.bucket, target.key, target.options.read);
    if (value === undefined)
      throw new KvError('KV_NOT_FOUND', `no data type at key '${target.key}' in bucket '${target.bucket}': it was never updated through /dt`);
    return reply.code(200).type('application/json; charset=utf-8').send(value);
  });

  app.post<DataTypeRoute>(
    '/dt/:bucket/:key',
    {
      onRequest,
      onResponse,
      // The schema's body describes the JSON for /openapi.json; the route's own parser is the strict check
      // (fastify's validator would coerce "5" to 5 and drop unknown fields, and its messages do not show the
      // accepted shape), so it runs first, on the JSON untouched, and a body that passed it passes the schema.
      preValidation: async (request: FastifyRequest) => {
        const json = parseJson(request.body);
        request.dataTypeUpdate = parseDataTypeUpdate(json, config);
        request.body = structuredClone(json);
      },
      schema: dtUpdateSchema,
    },
    async (request: FastifyRequest<DataTypeRoute>, reply: FastifyReply) => {
      const target = targetOf(request, dependencies);
      const update = request.dataTypeUpdate;
      assert(update !== null, 'a /dt update ran without its preValidation parse');
      const { r } = target.options.read;
      await service.dataTypes.update(target.bucket, target.key, update, { ...target.options.write, ...(r === undefined ? {} : { r }) });
      return reply.code(204).send();
    },
  );
}
