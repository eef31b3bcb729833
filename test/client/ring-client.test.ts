import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { RingClient, RingClientError } from '../../src/client/index.js';
import { buildApp } from '../../src/http/app.js';
import { KvError } from '../../src/util/errors.js';
import { FakeKvService, testConfig } from '../http/fake-service.js';

/**
 * Goal: the client library keeps its promises over real HTTP: it carries contexts, returns
 * siblings and resolves them with the right context, retries on another node when nothing
 * happened (refused connection, 503 overload) and never retries a write whose outcome is
 * unknown unless asked, and every failure carries a KV_* code and an outcome.
 */

interface TestNode {
  readonly service: FakeKvService;
  readonly app: FastifyInstance;
  readonly address: string;
}

const apps: FastifyInstance[] = [];
const clients: RingClient[] = [];
const rawServers: { server: Server; sockets: Set<Socket> }[] = [];

async function startNode(): Promise<TestNode> {
  const service = new FakeKvService(testConfig());
  const app = await buildApp({ service, config: service.config });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  return { service, app, address: `127.0.0.1:${port}` };
}

function client(nodes: string[], options: { httpTimeoutMs?: number } = {}): RingClient {
  const created = new RingClient({ nodes, ...options });
  clients.push(created);
  return created;
}

/** A port nothing listens on: bound once by the system, then released. */
async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

/** A TCP server that takes requests and then `behaviour`s: drops the connection, or never answers. */
async function misbehavingServer(behaviour: 'reset' | 'silent'): Promise<{ address: string; requests: () => number }> {
  let requests = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', () => {
      requests += 1;
      if (behaviour === 'reset') socket.resetAndDestroy();
    });
  });
  rawServers.push({ server, sockets });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { address: `127.0.0.1:${port}`, requests: () => requests };
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map((each) => each.close()));
  await Promise.all(apps.splice(0).map((app) => app.close()));
  for (const { server, sockets } of rawServers.splice(0)) {
    // A silent server holds its connections open; close() waits for them, so they go first.
    sockets.forEach((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

async function failure(promise: Promise<unknown>): Promise<RingClientError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(RingClientError);
    return error as RingClientError;
  }
  throw new Error('expected the request to fail');
}

describe('contexts', () => {
  it('returns the context of a write, reads it back, and supersedes the value when the context is sent', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    const first = await ring.put('demo', 'greeting', 'hello', { contentType: 'text/plain', w: 1 });
    expect(first.context).toMatch(/^c3\./);

    const read = await ring.get('demo', 'greeting', { r: 1 });
    expect(read.found).toBe(true);
    expect(read.context).toBe(first.context);
    expect(read.siblings).toHaveLength(1);
    expect(read.siblings[0]!.value.toString()).toBe('hello');
    expect(read.siblings[0]!.contentType).toBe('text/plain');

    await ring.put('demo', 'greeting', 'hello again', { context: read.context!, contentType: 'text/plain' });
    const after = await ring.get('demo', 'greeting');
    expect(after.siblings.map((sibling) => sibling.value.toString())).toEqual(['hello again']);
  });

  it('passes a put ttlSeconds to the node as ?ttl', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    await ring.put('demo', 'expiring', 'v', { ttlSeconds: 60 });
    await ring.put('demo', 'forever', 'v');
    const puts = node.service.callsOf('put').map((args) => (args[0] as { ttlSeconds?: number }).ttlSeconds);
    expect(puts).toEqual([60, undefined]);
  });

  it('passes per-request quorums and timeouts to the node', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    await ring.put('demo', 'q', 'v', { w: 'all', pw: 1, dw: 'one', timeoutMs: 1234 });
    await ring.get('demo', 'q', { r: 'quorum', pr: 1, timeoutMs: 2345 });
    await ring.get('demo', 'q', { consistency: 'all' });
    const put = node.service.callsOf('put')[0]![0] as { options: unknown };
    expect(put.options).toEqual({ w: 'all', pw: 1, dw: 'one', timeoutMs: 1234 });
    expect(node.service.callsOf('get')[0]![2]).toEqual({ r: 'quorum', pr: 1, timeoutMs: 2345 });
    expect(node.service.callsOf('get')[1]![2]).toMatchObject({ r: 'all' });
  });

  it('deletes with the context of a read, and a read of the deleted key still carries a context', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    await ring.put('demo', 'gone', 'soon');
    const read = await ring.get('demo', 'gone');
    await ring.delete('demo', 'gone', { context: read.context! });
    const deleted = await ring.get('demo', 'gone');
    expect(deleted.found).toBe(false);
    expect(deleted.siblings).toEqual([]);
    expect(deleted.context).toMatch(/^c3\./);
  });

  it('keeps binary values exact and URL-encodes keys with slashes and spaces', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, index) => index % 256));
    await ring.put('bin bucket', 'a/b c?d', bytes);
    const read = await ring.get('bin bucket', 'a/b c?d');
    expect(read.siblings[0]!.value.equals(bytes)).toBe(true);
    expect(node.service.objects.has('bin bucket/a/b c?d')).toBe(true);
  });
});

describe('siblings and resolve', () => {
  it('returns concurrent writes as siblings, and resolve writes the merge with the read context so one value remains', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    await ring.put('demo', 'colour', 'red', { contentType: 'text/plain' });
    await ring.put('demo', 'colour', 'blue', { contentType: 'text/plain' });
    const read = await ring.get('demo', 'colour');
    expect(read.siblings.map((sibling) => sibling.value.toString()).sort()).toEqual(['blue', 'red']);
    expect(read.siblings.every((sibling) => sibling.lastModified !== '')).toBe(true);

    let seen: string[] = [];
    const merged = await ring.resolve('demo', 'colour', (siblings) => {
      seen = siblings.map((sibling) => sibling.value.toString()).sort();
      return seen.join('+');
    });
    expect(seen).toEqual(['blue', 'red']);
    const put = node.service.callsOf('put').at(-1)![0] as { contentType: string; context: unknown };
    expect(put.context).toBeDefined();
    // The siblings shared a content type, so the merged value keeps it.
    expect(put.contentType).toBe('text/plain');

    const after = await ring.get('demo', 'colour');
    expect(after.siblings.map((sibling) => sibling.value.toString())).toEqual(['blue+red']);
    expect(after.context).toBe(merged.context);
  });

  it('resolves the siblings of an earlier read without reading again, with the content type the merge gives', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    await ring.put('demo', 'set', '["a"]');
    await ring.put('demo', 'set', '["b"]');
    const read = await ring.get('demo', 'set');
    const readsBefore = node.service.callsOf('get').length;
    await ring.resolve(
      'demo',
      'set',
      (siblings) => ({
        value: JSON.stringify(siblings.flatMap((sibling) => JSON.parse(sibling.value.toString()) as string[]).sort()),
        contentType: 'application/json',
      }),
      { read },
    );
    expect(node.service.callsOf('get').length).toBe(readsBefore);
    const after = await ring.get('demo', 'set');
    expect(after.siblings).toHaveLength(1);
    expect(after.siblings[0]!.value.toString()).toBe('["a","b"]');
    expect(after.siblings[0]!.contentType).toBe('application/json');
  });
});

describe('retries', () => {
  it('moves on to the next node when a connection is refused, for reads and for writes', async () => {
    const dead = await deadAddress();
    const live = await startNode();
    const ring = client([dead, live.address]);
    const written = await ring.put('demo', 'k', 'v');
    expect(written.context).toMatch(/^c3\./);
    // The rotation now starts at the live node, then at the dead one again.
    expect((await ring.get('demo', 'k')).found).toBe(true);
    expect((await ring.get('demo', 'k')).found).toBe(true);
    expect(live.service.callsOf('put')).toHaveLength(1);
  });

  it('says KV_CONNECTION with outcome failed when every node refuses', async () => {
    const ring = client([await deadAddress(), await deadAddress()]);
    const error = await failure(ring.put('demo', 'k', 'v'));
    expect(error.code).toBe('KV_CONNECTION');
    expect(error.status).toBe(0);
    expect(error.outcome).toBe('failed');
  });

  it('retries a write on another node after 503 KV_OVERLOADED, since nothing was written', async () => {
    const overloaded = await startNode();
    const healthy = await startNode();
    overloaded.service.failNextWith(new KvError('KV_OVERLOADED', 'too many requests in flight', { retryAfterSeconds: 1 }));
    const ring = client([overloaded.address, healthy.address]);
    await ring.put('demo', 'k', 'v');
    expect(overloaded.service.objects.size).toBe(0);
    expect(healthy.service.callsOf('put')).toHaveLength(1);
  });

  it('gives up with the last node answer after retries are spent', async () => {
    const only = await startNode();
    only.service.failNextWith(new KvError('KV_NOT_READY', 'no ring yet'));
    const ring = client([only.address]);
    const error = await failure(ring.get('demo', 'k'));
    expect(error.status).toBe(503);
    expect(error.code).toBe('KV_NOT_READY');
    expect(error.outcome).toBe('failed');
  });

  it('does not retry a write answered 504 (outcome unknown), and says so', async () => {
    const slow = await startNode();
    const other = await startNode();
    slow.service.failNextWith(new KvError('KV_TIMEOUT', 'the deadline passed with 1 of 2 acknowledgements'));
    const ring = client([slow.address, other.address]);
    const error = await failure(ring.put('demo', 'k', 'v', { w: 2 }));
    expect(error.status).toBe(504);
    expect(error.code).toBe('KV_TIMEOUT');
    expect(error.outcome).toBe('unknown');
    expect(other.service.callsOf('put')).toHaveLength(0);
  });

  it('retries a 504 write on another node when the caller accepts it may apply twice (retryUnknown)', async () => {
    const slow = await startNode();
    const other = await startNode();
    slow.service.failNextWith(new KvError('KV_TIMEOUT', 'the deadline passed'));
    const ring = client([slow.address, other.address]);
    await ring.delete('demo', 'k', { retryUnknown: true });
    expect(other.service.callsOf('delete')).toHaveLength(1);
  });

  it('treats KV_INSUFFICIENT_REPLICAS as failed only when the node says nothing was written', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    node.service.failNextWith(new KvError('KV_INSUFFICIENT_REPLICAS', 'w=3 but 1 node is up', { details: { written: false, needed: 3, available: 1 } }));
    const refused = await failure(ring.put('demo', 'k', 'v', { w: 3 }));
    expect(refused.outcome).toBe('failed');
    expect(refused.details).toMatchObject({ needed: 3 });
    node.service.failNextWith(new KvError('KV_INSUFFICIENT_REPLICAS', '1 of 3 acknowledged', { details: { written: true } }));
    expect((await failure(ring.put('demo', 'k', 'v', { w: 3 }))).outcome).toBe('unknown');
  });

  it('does not retry a write whose connection dropped after it was sent, but retries a read', async () => {
    const dropping = await misbehavingServer('reset');
    const healthy = await startNode();
    const ring = client([dropping.address, healthy.address]);
    const error = await failure(ring.put('demo', 'k', 'v'));
    expect(error.code).toBe('KV_CONNECTION');
    expect(error.outcome).toBe('unknown');
    expect(healthy.service.callsOf('put')).toHaveLength(0);

    const reader = client([dropping.address, healthy.address]);
    expect((await reader.get('demo', 'k')).found).toBe(false);
    expect(dropping.requests()).toBe(2);
  });

  it('times out a node that never answers with KV_CLIENT_TIMEOUT and outcome unknown', async () => {
    const silent = await misbehavingServer('silent');
    const ring = client([silent.address], { httpTimeoutMs: 300 });
    const error = await failure(ring.put('demo', 'k', 'v'));
    expect(error.code).toBe('KV_CLIENT_TIMEOUT');
    expect(error.outcome).toBe('unknown');
  });

  it('asks only the named node when a request names one', async () => {
    const first = await startNode();
    const second = await startNode();
    const ring = client([first.address, second.address]);
    await ring.put('demo', 'k', 'v', { node: `http://${second.address}` });
    await ring.put('demo', 'k', 'v', { node: second.address });
    expect(first.service.callsOf('put')).toHaveLength(0);
    expect(second.service.callsOf('put')).toHaveLength(2);
  });
});

describe('errors', () => {
  it('carries the KV_* code, status, message and outcome of a refused request', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    const badQuorum = await failure(ring.get('demo', 'k', { r: 99 }));
    expect(badQuorum.status).toBe(400);
    expect(badQuorum.code).toBe('KV_BAD_PARAMETER');
    expect(badQuorum.outcome).toBe('failed');
    expect(badQuorum.message).toMatch(/^KV_BAD_PARAMETER: /);

    const badContext = await failure(ring.put('demo', 'k', 'v', { context: 'not-a-context' }));
    expect(badContext.code).toBe('KV_BAD_CONTEXT');
    expect(badContext.outcome).toBe('failed');

    const longKey = await failure(ring.put('demo', 'k'.repeat(2000), 'v'));
    expect(longKey.status).toBe(414);
    expect(longKey.code).toBe('KV_KEY_TOO_LONG');
  });

  it('reads status and admin JSON, and refuses an empty node list', async () => {
    const node = await startNode();
    const ring = client([node.address]);
    expect(await ring.status()).toMatchObject({ node: { id: 'fake' }, partitionCount: 256 });
    expect(await ring.json('POST', '/admin/compact')).toEqual({ compacted: true });
    expect(() => new RingClient({ nodes: [] })).toThrow(/at least one node/);
  });
});

describe('the package entry', () => {
  const root = join(import.meta.dirname, '..', '..');

  it("exports RingClient as 'ringkv' with type declarations, once built", () => {
    // `npm test` builds first; a bare `vitest run` on a fresh clone has no dist to import.
    if (!existsSync(join(root, 'dist', 'src', 'client', 'index.js'))) return;
    const output = execFileSync(
      process.execPath,
      ['--input-type=module', '-e', "const m = await import('ringkv'); console.log(typeof m.RingClient, typeof m.RingClientError)"],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(output.trim()).toBe('function function');
    expect(existsSync(join(root, 'dist', 'src', 'client', 'index.d.ts'))).toBe(true);
  });
});

describe('RingClient on a consistent bucket', () => {
  it('returns x-ringkv-version as `version`, sends If-Match on put and delete, and reads a 504 that did not happen as failed', async () => {
    const service = new FakeKvService(testConfig({ buckets: { locks: { consistent: true } } }));
    const app = await buildApp({ service, config: service.config });
    apps.push(app);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const ring = client([`127.0.0.1:${port}`]);
    expect(await ring.put('locks', 'leader', 'a', { ifNoneMatch: true })).toMatchObject({ version: 1, context: '1' });
    const read = await ring.get('locks', 'leader');
    expect(read).toMatchObject({ found: true, version: 1, context: '1' });
    expect(await ring.put('locks', 'leader', 'b', { ifMatch: read.context! })).toMatchObject({ version: 2 });
    const stale = await ring.put('locks', 'leader', 'c', { ifMatch: read.context! }).catch((error: unknown) => error);
    expect(stale).toBeInstanceOf(RingClientError);
    expect(stale).toMatchObject({ status: 412, code: 'KV_PRECONDITION_FAILED', details: { version: 2 } });
    expect((await ring.delete('locks', 'leader', { ifMatch: '1' }).catch((error: unknown) => error)) as RingClientError).toMatchObject({ status: 412 });
    expect(await ring.delete('locks', 'leader', { ifMatch: '2' })).toMatchObject({ version: 3 });
    expect(await ring.get('locks', 'leader')).toMatchObject({ found: false, version: 3 });
    service.failNextWith(new KvError('KV_TIMEOUT', 'timed out before a quorum took its ballot', { details: { applied: 'no' } }));
    expect(await ring.put('locks', 'leader', 'd').catch((error: unknown) => error)).toMatchObject({ status: 504, outcome: 'failed' });
    service.failNextWith(new KvError('KV_TIMEOUT', 'outcome unknown', { details: { applied: 'unknown' } }));
    expect(await ring.put('locks', 'leader', 'e').catch((error: unknown) => error)).toMatchObject({ status: 504, outcome: 'unknown' });
  });
});
