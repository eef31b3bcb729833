import ajvCompiler from '@fastify/ajv-compiler';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { partitionKeyRange } from '../core/keys.js';
import type { NodeConfig } from '../config/schema.js';
import type { KvService } from '../engine/kv-service.js';
import { KvError } from '../util/errors.js';
import { packageVersion } from '../util/package-version.js';
import { registerAuth } from './auth.js';
import { registerClusterAdminRoutes } from './cluster-admin-routes.js';
import { clientErrorAnswer, sendKvError, toKvError } from './errors.js';
import { badParameter } from './query-parameters.js';
import { registerKvRoutes } from './kv-routes.js';
import { registerDataTypeRoutes } from './dt-routes.js';
import { compactSchema, healthSchema, metricsSchema, openApiSchema, statusSchema } from './route-schemas.js';
import { HttpMetrics } from './metrics.js';
import { registerDashboard } from './ui-route.js';
import { registerBackupRoutes } from './backup-routes.js';
import { registerWatchRoutes } from './watch-routes.js';
import { registerLeaseRoutes } from './lease-routes.js';

type BuildValidator = ReturnType<typeof ajvCompiler>;
type RouteValidator = ReturnType<ReturnType<BuildValidator>>;

/**
 * fastify's own ajv compiler, but each route's validator is compiled when the route is first
 * asked for, not when the app starts: compiling the ~60 request schemas took about 0.5 s of CPU,
 * about 40% of a node's start (a profile of `ringkv start` up to its first /health), paid on every
 * start and restart although most routes are seldom used. A route's first request pays its
 * compile instead (milliseconds). The wrapper keeps what fastify reads of an ajv validator: the
 * `errors` of the last call, and `schemaEnv`, which makes fastify pass the parent data.
 */
function lazyValidators(build: BuildValidator): BuildValidator {
  return (externalSchemas, options) => {
    const compile = build(externalSchemas, options);
    return (route) => {
      let compiled: RouteValidator | undefined;
      const validate = ((data: unknown, context?: object) => {
        compiled ??= compile(route);
        const valid = compiled(data, context as never);
        validate.errors = compiled.errors;
        return valid;
      }) as RouteValidator;
      validate.errors = null;
      Object.assign(validate, { schemaEnv: true });
      return validate;
    };
  };
}

/** The header every answer carries: the id of the ring member (the shard) that gave it. */
export const memberHeader = 'x-ringkv-member';

/** What buildApp needs. */
export interface AppOptions {
  readonly service: KvService;
  readonly config: NodeConfig;
  /** fastify's logger option: false (the default) for none, true or pino options for one. */
  readonly logger?: boolean | object;
  /** PEM key and certificate: serve https instead of http (tls.* in the config; main.ts reads the files). */
  readonly https?: { readonly key: Buffer; readonly cert: Buffer };
}

const routeList = `GET|PUT|DELETE /kv/{bucket}/{key}, GET|POST /dt/{bucket}/{key}, GET /watch/{bucket}/{key}, GET /watch/{bucket}, POST /leases, POST /leases/{id}/keepalive, GET|DELETE /leases/{id}, GET /health, GET /status, GET /metrics, GET /ui, GET /openapi.json, POST /admin/compact, POST|GET /admin/repair, POST /admin/leave, POST /admin/remove/{nodeId}, GET /admin/backup, GET /admin/backup/partitions/{partition}, POST /admin/restore (GET /openapi.json describes them all)`;

/** Shows a path in a message without letting a huge one flood it. */
function shownPath(request: FastifyRequest): string {
  const path = request.url.split('?', 1)[0] ?? '';
  return path.length > 200 ? `${path.slice(0, 200)}...` : path;
}

/** Unknown routes: a malformed /kv path is a bad request (so a client never mistakes it for a missing key); anything else is 404. */
function notFoundError(request: FastifyRequest): KvError {
  const path = shownPath(request);
  if (path === '/dt' || path.startsWith('/dt/')) {
    return new KvError(
      'KV_BAD_REQUEST',
      `${request.method} ${path} is not a data type path: use GET or POST on /dt/{bucket}/{key}, with bucket and key non-empty and URL-encoded`,
    );
  }
  if (path === '/kv' || path.startsWith('/kv/')) {
    return new KvError(
      'KV_BAD_REQUEST',
      `${request.method} ${path} is not a key path: use GET, PUT or DELETE on /kv/{bucket}/{key}, with bucket and key non-empty and URL-encoded (a '/' inside a key is %2F)`,
    );
  }
  return new KvError('KV_NOT_FOUND', `there is no route ${request.method} ${path}; the routes are ${routeList}`);
}

/** /health, /status, /metrics and /admin/compact. */
function registerAdminRoutes(app: FastifyInstance, service: KvService, metrics: HttpMetrics): void {
  app.get('/health', { schema: healthSchema }, async () => ({ status: 'ok' }));
  app.get('/status', { schema: statusSchema }, async (_request, reply) => reply.type('application/json; charset=utf-8').send(await service.status()));
  app.get('/metrics', { schema: metricsSchema }, async (_request, reply) => {
    const text = await metrics.render(await service.status());
    return reply.type(metrics.contentType).send(text);
  });
  // `?partition=N` compacts one partition's key range (a partition is one contiguous range), else the whole data space.
  app.post<{ Querystring: { partition?: string } }>('/admin/compact', { schema: compactSchema }, async (request) => {
    const text = request.query.partition;
    if (text === undefined) {
      await service.compact();
      return { compacted: true };
    }
    // The schema took an integer of 0..65535; this ring's partition count is the bound it cannot know.
    const partitionCount = ((await service.status()) as { partitionCount: number }).partitionCount;
    const partition = Number(text);
    if (partition >= partitionCount) throw badParameter('partition', text, `an integer from 0 to ${partitionCount - 1}`);
    const range = partitionKeyRange(partition, partitionCount);
    await service.compact(range.gte, range.lt);
    return { compacted: true, partition };
  });
}

/**
 * Builds the node's HTTP app: the public /kv API and admin (peers talk on the framed peer port). It never listens:
 * main.ts does that, and tests drive the app with inject().
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { service, config } = options;
  const app = Fastify({
    ...(options.https === undefined ? {} : ({ https: { key: options.https.key, cert: options.https.cert } } as FastifyServerOptions)),
    logger: (options.logger ?? false) as FastifyServerOptions['logger'],
    bodyLimit: config.limits.maxValueBytes,
    // Long keys must reach the 414 check instead of falling out of the router as a 404; a key
    // percent-encodes to at most 3 characters per byte.
    routerOptions: { maxParamLength: Math.max(65_535, 3 * Math.max(config.limits.maxKeyBytes, config.limits.maxBucketBytes)) },
    // During shutdown, answer in the documented error shape (below) rather than fastify's own 503 body.
    return503OnClosing: false,
    // A query parameter a route's schema does not name is refused (query-parameters.ts), not silently dropped.
    ajv: { customOptions: { removeAdditional: false } },
    schemaController: { compilersFactory: { buildValidator: lazyValidators(ajvCompiler()) } },
    // Node's HTTP parser refuses a request line and headers over 16 KiB (a 100 KB key in the URL) before fastify
    // sees a request; this answers it in the documented error shape instead of fastify's own body.
    clientErrorHandler: (error, socket) => {
      // A reset connection has no one left to answer (fastify's default does the same).
      if ((error as Error & { code?: string }).code === 'ECONNRESET' || socket.destroyed) return;
      if (socket.writable) socket.write(clientErrorAnswer(error));
      socket.destroy(error);
    },
    // The reply is a thenable that fastify sends itself; nothing here waits for it.
    frameworkErrors: (error, request, reply) => {
      void sendKvError(reply, toKvError(error, request, request.log));
    },
  });

  // Values are opaque bytes of any content type: no JSON or text parsing, ever.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onRequest', async (request, reply) => {
    // Every answer names the ring member that gave it: behind a node's shared port (reusePort) a
    // shard-aware client learns which shard each connection reached (README, "Shards").
    reply.header(memberHeader, service.nodeId);
    if (closing) throw new KvError('KV_NOT_READY', 'this node is shutting down; send the request to another node', { retryAfterSeconds: 1 });
    // A value is stored as the bytes that arrive and served without a content-encoding, so compressed bytes
    // would come back as if plain: refuse them before the body is read rather than store what no reader can use.
    const encoding = request.headers['content-encoding']?.trim().toLowerCase();
    if (encoding !== undefined && encoding !== '' && encoding !== 'identity') {
      throw new KvError(
        'KV_UNSUPPORTED_ENCODING',
        `content-encoding ${encoding.slice(0, 40)} is not accepted: ringkv stores a value's bytes as sent and serves them without a content-encoding; send the body uncompressed (compress the value yourself and say so in its content-type if you need to)`,
      );
    }
  });

  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => sendKvError(reply, toKvError(error, request, request.log)));
  app.setNotFoundHandler((request, reply) => sendKvError(reply, notFoundError(request)));

  // Bodies are built by the handlers and sent as they are: the response schemas describe them
  // (for /openapi.json) but must not filter them, as fast-json-stringify would drop every field
  // of /status a schema does not list.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  // Before the routes: the plugin collects each route's schema as it is added.
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'ringkv', version: packageVersion(), description: 'A leaderless, Dynamo/Cassandra-style key-value database: the HTTP API of every node.' },
      tags: [
        { name: 'kv', description: 'keys and values' },
        { name: 'dt', description: 'counters and sets that the replicas merge themselves' },
        { name: 'admin', description: 'health, status, metrics, compaction' },
        { name: 'cluster', description: 'repair, leave, remove' },
        { name: 'dashboard', description: 'the /ui dashboard' },
      ],
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'a client token from auth.tokens, when auth.enabled is on' } } },
      // No token is needed while auth.enabled is off; with it on, a bearer token is.
      security: [{}, { bearer: [] }],
    },
  });
  app.get('/openapi.json', { schema: openApiSchema }, async () => app.swagger());

  registerAuth(app, { config });
  const metrics = new HttpMetrics();
  registerKvRoutes(app, { service, config, metrics });
  registerDataTypeRoutes(app, { service, config, metrics });
  registerWatchRoutes(app, { service, config });
  registerLeaseRoutes(app, { service });
  registerAdminRoutes(app, service, metrics);
  registerDashboard(app, { service });
  registerClusterAdminRoutes(app, service);
  registerBackupRoutes(app, { service, config });
  await app.ready();
  return app;
}
