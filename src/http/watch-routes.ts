import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import { encodeContext, objectContext } from '../core/versioning/context.js';
import type { WatchFilter } from '../core/watch/watch-cursor.js';
import type { NodeConfig } from '../config/schema.js';
import type { KvService } from '../engine/kv-service.js';
import type { WatchItem, WatchStream } from '../engine/watches.js';
import { decodeConsistentValue } from '../core/consensus/consistent-value.js';
import { dataTypeKey, dataTypeKeyPrefix, dataTypeValue, isDataTypeKey } from '../core/datatypes/data-type.js';
import { KvError } from '../util/errors.js';
import { checkName } from './kv-routes.js';
import { watchKeySchema, watchPrefixSchema } from './route-schemas.js';

/** What the /watch routes need. */
export interface WatchRouteDependencies {
  readonly service: KvService;
  readonly config: NodeConfig;
}

/** A comment line sent this often keeps idle connections (and proxies) from timing out, and finds dead ones. */
const keepAliveMs = 15_000;

/** How long an EventSource waits before it reconnects (the SSE `retry:` field). */
const reconnectMs = 1000;

/** The data of one SSE event: the JSON of `body`, on one line. */
function sseEvent(event: string, id: string | undefined, body: unknown): string {
  return `event: ${event}\n${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(body)}\n\n`;
}

/**
 * One watch item as an SSE event (README, "Watches"). A write is `put` or `delete` by the
 * version it created: its value and content type (none for a delete), the context of the object
 * it left on the replica that issued it (what a GET there answered), its dot, and when it was made.
 */
export function formatWatchItem(item: WatchItem): string {
  switch (item.kind) {
    case 'write': {
      if (isDataTypeKey(item.key)) return formatDataTypeUpdate(item);
      const sibling = item.object.siblings.find((candidate) => candidate.dot.node === item.dot.node && candidate.dot.counter === item.dot.counter);
      const deleted = sibling === undefined || sibling.tombstone;
      const body = {
        bucket: item.bucket,
        key: item.key,
        ...(deleted ? {} : { value: Buffer.from(sibling.value).toString('base64'), contentType: sibling.contentType }),
        context: encodeContext(objectContext(item.object)),
        dot: item.dot,
        ...(sibling === undefined ? {} : { lastModified: new Date(sibling.lastModifiedMs).toISOString() }),
        ...(sibling?.expiresAtMs === undefined ? {} : { expires: new Date(sibling.expiresAtMs).toISOString() }),
      };
      return sseEvent(deleted ? 'delete' : 'put', item.id, body);
    }
    case 'decided': {
      const value = item.value === null ? null : decodeConsistentValue(item.value);
      const body = {
        bucket: item.bucket,
        key: item.key,
        ...(value === null ? {} : { value: Buffer.from(value.value).toString('base64'), contentType: value.contentType }),
        version: item.version,
        context: String(item.version),
      };
      return sseEvent(value === null ? 'delete' : 'put', item.id, body);
    }
    case 'ready':
      return sseEvent('ready', item.id, {});
    case 'progress':
      return sseEvent('progress', item.id, {});
    case 'compacted':
      if (item.key !== undefined && item.missing !== undefined) {
        return sseEvent('compacted', item.id, {
          nodes: item.nodes,
          key: item.key,
          missing: item.missing,
          message: `versions ${item.missing.from} to ${item.missing.to} of this consistent key were decided but are missing from this watch (the log that reported them was lost): read the key again; its versions after these follow`,
        });
      }
      return sseEvent('compacted', item.id, {
        nodes: item.nodes,
        message:
          'writes made on these nodes may be missing from this watch (their log restarted or no longer holds them): read the keys again; the writes after this event follow',
      });
    case 'overflow':
      return sseEvent('overflow', undefined, {
        queued: item.queued,
        message: 'this watcher fell watch.maxQueuedEvents events behind and was cut off: reconnect with the last event id as Last-Event-ID to go on from there',
      });
  }
}

/**
 * A data type update as an SSE `update` event (README, "Watches"): the data type's name, its
 * type, the state the replica that applied the update left (what a read of that replica alone
 * answers: the value, and for a set its context) and the update's dot. The replica checked that
 * its counter stays within the safe integers before it stored the state, so reading it cannot fail.
 */
function formatDataTypeUpdate(item: Extract<WatchItem, { kind: 'write' }>): string {
  const state = dataTypeValue(item.object);
  const body = {
    bucket: item.bucket,
    key: item.key.slice(dataTypeKeyPrefix.length),
    ...state,
    dot: item.dot,
  };
  return sseEvent('update', item.id, body);
}

/**
 * Resolves once the response can take more (or is closed). When the watch stops first (its
 * client fell watch.maxQueuedEvents behind while the socket took nothing: `overflow`), the
 * connection is destroyed: a client that stopped reading cannot hold its socket and what is
 * buffered for it for good. It reconnects with the last id it read.
 */
async function drained(raw: ServerResponse, stream: WatchStream): Promise<void> {
  if (raw.destroyed || raw.writableEnded) return;
  let done = (): void => undefined;
  const ready = new Promise<'drained'>((resolve) => {
    done = () => resolve('drained');
    raw.on('drain', done);
    raw.on('close', done);
  });
  const first = await Promise.race([ready, stream.closed.then(() => 'stopped' as const)]);
  raw.off('drain', done);
  raw.off('close', done);
  if (first === 'stopped' && raw.writableNeedDrain) raw.destroy();
}

/** Streams a watch's items to the response until the watch ends or the client goes away. */
async function streamWatch(reply: FastifyReply, stream: WatchStream, onEnd: () => void): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  raw.write(`retry: ${reconnectMs}\n\n`);
  raw.on('close', () => stream.close());
  const keepAlive = setInterval(() => {
    if (!raw.destroyed) raw.write(': keep-alive\n\n');
  }, keepAliveMs);
  try {
    for await (const item of stream) {
      if (raw.destroyed) break;
      if (!raw.write(formatWatchItem(item))) await drained(raw, stream);
    }
  } finally {
    clearInterval(keepAlive);
    stream.close();
    onEnd();
    if (!raw.writableEnded) raw.end();
  }
}

/** The Last-Event-ID header, if one was sent. */
function lastEventIdOf(request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id'];
  const text = Array.isArray(header) ? header.join(',') : header;
  return text === undefined || text.trim() === '' ? undefined : text.trim();
}

/** GET /watch/:bucket/:key and GET /watch/:bucket?prefix=P: watches as Server-Sent Events (README, "Watches"). */
export function registerWatchRoutes(app: FastifyInstance, dependencies: WatchRouteDependencies): void {
  const { service, config } = dependencies;
  // Streams end when the app closes (a node shutting down): their clients reconnect elsewhere with their last id,
  // and the server's close is not held up by connections that would never end by themselves.
  const streams = new Set<WatchStream>();
  app.addHook('preClose', async () => {
    for (const stream of streams) stream.close();
  });
  // A watch is refused (bad names, a bad id, too many watchers) before the stream starts, so the refusal is an ordinary error answer.
  const open = (request: FastifyRequest, filter: WatchFilter): WatchStream => {
    const stream = service.watch(filter, lastEventIdOf(request));
    streams.add(stream);
    return stream;
  };

  app.get<{ Params: { bucket: string; key: string }; Querystring: { dt?: 'true' | 'false' } }>(
    '/watch/:bucket/:key',
    { schema: watchKeySchema },
    async (request, reply) => {
      const { bucket, key } = request.params;
      checkName('bucket', bucket, config.limits.maxBucketBytes, '/watch');
      checkName('key', key, config.limits.maxKeyBytes, '/watch');
      refuseReserved(key, 'key');
      const stream = open(request, { bucket, kind: 'key', name: storedName(key, request.query.dt) });
      await streamWatch(reply, stream, () => streams.delete(stream));
    },
  );

  app.get<{ Params: { bucket: string }; Querystring: { prefix: string; dt?: 'true' | 'false' } }>(
    '/watch/:bucket',
    { schema: watchPrefixSchema },
    async (request, reply) => {
      const { bucket } = request.params;
      checkName('bucket', bucket, config.limits.maxBucketBytes, '/watch');
      // The route schema requires ?prefix= (query-parameters.ts says so to a client without one).
      const prefix = request.query.prefix;
      if (Buffer.byteLength(prefix) > config.limits.maxKeyBytes)
        throw new KvError('KV_KEY_TOO_LONG', `the prefix is over limits.maxKeyBytes (${config.limits.maxKeyBytes}); use a shorter prefix`);
      refuseReserved(prefix, 'prefix');
      const stream = open(request, { bucket, kind: 'prefix', name: storedName(prefix, request.query.dt) });
      await streamWatch(reply, stream, () => streams.delete(stream));
    },
  );
}

/** Refuses a key or prefix in the reserved range, as /kv does: data types are watched by their own names with ?dt=true. */
function refuseReserved(name: string, what: 'key' | 'prefix'): void {
  if (name.startsWith('\u0000'))
    throw new KvError(
      'KV_BAD_REQUEST',
      `a ${what} that starts with U+0000 (%00) is reserved for data types (/dt); to watch a data type, send its own name with ?dt=true`,
    );
}

/** The stored key (or prefix) a watch follows: data types live in a namespace of their own (src/core/datatypes/data-type.ts). */
function storedName(name: string, dt: 'true' | 'false' | undefined): string {
  return dt === 'true' ? dataTypeKey(name) : name;
}
