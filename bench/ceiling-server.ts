/**
 * The ceiling of the compare suite: a bare fastify server writing to one LevelDB, with no
 * replication, no versions and no coordination. It takes ringkv's request shape (PUT and GET
 * /kv/:bucket/:key) and the same LevelDB tuning as ringkv's defaults, so the distance from it
 * to ringkv is what ringkv's own work costs. It is a baseline for the bench only, never a product.
 *
 * Run as its own process: `node dist/bench/ceiling-server.js --port P --data DIR`.
 */
import { Level } from 'level';
import Fastify from 'fastify';

/** ringkv's default LevelDB tuning (config/default.json `storage`), so the ceiling stores the same way. */
export const ceilingLevelOptions = {
  writeBufferSize: 4_194_304,
  cacheSize: 8_388_608,
  maxFileSize: 2_097_152,
  compression: true,
} as const;

/** Starts the ceiling server; resolves once it listens. Returns a function that closes it. */
export async function startCeilingServer(port: number, location: string, host = '127.0.0.1'): Promise<() => Promise<void>> {
  const db = new Level<string, Buffer>(location, { ...ceilingLevelOptions, keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  const app = Fastify({ logger: false, bodyLimit: 8_388_608 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  app.put<{ Params: { bucket: string; key: string }; Body: Buffer }>('/kv/:bucket/:key', async (request, reply) => {
    await db.put(`${request.params.bucket}/${request.params.key}`, request.body ?? Buffer.alloc(0));
    return reply.code(204).send();
  });
  app.get<{ Params: { bucket: string; key: string } }>('/kv/:bucket/:key', async (request, reply) => {
    const value = await db.get(`${request.params.bucket}/${request.params.key}`);
    if (value === undefined) return reply.code(404).send();
    return reply.code(200).header('content-type', 'application/octet-stream').send(value);
  });
  app.get('/health', async () => ({ ok: true }));

  await app.listen({ host, port });
  return async () => {
    await app.close();
    await db.close();
  };
}

function flag(name: string): string | undefined {
  const index = process.argv.indexOf(name);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

// Only when run as a script: the smoke test imports startCeilingServer in-process.
if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(flag('--port'));
  const data = flag('--data');
  if (!Number.isInteger(port) || data === undefined) {
    console.error('usage: node dist/bench/ceiling-server.js --port P --data DIR');
    process.exit(2);
  }
  const close = await startCeilingServer(port, data);
  const shutdown = (): void => {
    void close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
}
