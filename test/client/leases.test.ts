import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { RingClient, RingClientError } from '../../src/client/index.js';
import { buildApp } from '../../src/http/app.js';
import { FakeKvService, testConfig } from '../http/fake-service.js';

/**
 * Goal: the client's leases and recipes keep the README's promises ("Leases and ephemeral keys",
 * "Client recipes") over real HTTP, against a node whose leases are the real engine class
 * (src/engine/leases.ts, with its sweeper running) over one in-memory register per key:
 * grant, keep-alive, describe and revoke; put with a lease; a lock is held by one holder at a
 * time, kept alive while held (past several ttls) and handed to the next waiter on release with a
 * greater fencing token; an election resolves once elected, names its leader, and passes on when
 * the leader resigns.
 */

const services: FakeKvService[] = [];
const apps: FastifyInstance[] = [];
const clients: RingClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await Promise.all(apps.splice(0).map((app) => app.close()));
  for (const service of services.splice(0)) service.leases.stop();
});

async function start(): Promise<{ client: RingClient; service: FakeKvService }> {
  const service = new FakeKvService(testConfig({ buckets: { locks: { consistent: true } } }));
  service.leases.start();
  services.push(service);
  const app = await buildApp({ service, config: service.config });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const client = new RingClient({ nodes: [`127.0.0.1:${(app.server.address() as AddressInfo).port}`] });
  clients.push(client);
  return { client, service };
}

/** Waits for a condition with a generous deadline, failing with what it last saw. */
async function waitFor(what: string, condition: () => Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > until) throw new Error(`${what}: not reached within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('RingClient leases and recipes', () => {
  it('grants, keeps alive, describes and revokes a lease; a put with it names it and goes with it', async () => {
    const { client } = await start();
    const lease = await client.grantLease(30);
    expect(lease.ttlSeconds).toBe(30);
    await client.put('locks', 'config', 'v1', { lease: lease.id, contentType: 'text/plain' });
    expect((await client.get('locks', 'config')).lease).toBe(lease.id);
    expect(await client.keepAliveLease(lease.id)).toEqual(lease);
    expect(await client.lease(lease.id)).toMatchObject({ id: lease.id, ttlSeconds: 30, keepAlives: 1, keys: [{ bucket: 'locks', key: 'config' }] });
    await client.revokeLease(lease.id);
    expect((await client.get('locks', 'config')).found).toBe(false);
    expect(await client.lease(lease.id)).toBeUndefined();
    const refused = await client.keepAliveLease(lease.id).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RingClientError);
    expect((refused as RingClientError).code).toBe('KV_LEASE_NOT_FOUND');
  });

  it('lock: one holder at a time, kept alive past several ttls, handed on at release with a greater token', async () => {
    const { client } = await start();
    // A ttl of 2 s (keep-alives every 667 ms) leaves room for a loaded machine's slow requests.
    const first = await client.lock('job', { ttlSeconds: 2 });
    let secondHeld = false;
    const second = client.lock('job', { ttlSeconds: 2, retryMs: 50 }).then((handle) => {
      secondHeld = true;
      return handle;
    });
    // Two and a half ttls with the sweeper running: the first holder's keep-alives keep the lock.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    expect(secondHeld, 'the second waiter took a lock still held and kept alive').toBe(false);
    expect(await client.lease(first.lease), "the holder's lease is alive").toBeDefined();
    await first.release();
    const handle = await second;
    expect(handle.token).toBeGreaterThan(first.token);
    await handle.release();
    expect((await client.get('locks', 'job')).found, 'released: the key is gone').toBe(false);
  });

  it('electLeader resolves once elected and leader() names it; a resignation passes it on', async () => {
    const { client } = await start();
    expect(await client.leader('primary')).toBeUndefined();
    const a = await client.electLeader('primary', 'node-a', { ttlSeconds: 2 });
    const b = client.electLeader('primary', 'node-b', { ttlSeconds: 2, retryMs: 50 });
    expect(await client.leader('primary')).toEqual({ candidate: 'node-a', token: a.token, lease: a.lease });
    await a.release();
    const elected = await b;
    await waitFor('node-b is leader', async () => (await client.leader('primary'))?.candidate === 'node-b');
    expect((await client.leader('primary'))?.token).toBe(elected.token);
    expect(elected.token).toBeGreaterThan(a.token);
    await elected.release();
  });

  it('a waiter gives up when its signal aborts, and leaves no lease behind', async () => {
    const { client, service } = await start();
    const held = await client.lock('busy', { ttlSeconds: 5 });
    const controller = new AbortController();
    const waiting = client.lock('busy', { ttlSeconds: 5, retryMs: 50, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('gave up')), 300);
    await expect(waiting).rejects.toThrow('gave up');
    const leases = [...service.registers].filter(([name, register]) => name.startsWith('\u0000leases/') && register.value !== null);
    expect(
      leases.map(([name]) => name),
      "only the holder's lease is left",
    ).toEqual([`\u0000leases/${held.lease}`]);
    await held.release();
  });
});
