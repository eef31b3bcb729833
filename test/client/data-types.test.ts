import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { RingClient, RingClientError } from '../../src/client/index.js';
import { buildApp } from '../../src/http/app.js';
import { KvError } from '../../src/util/errors.js';
import { FakeKvService, testConfig } from '../http/fake-service.js';

/**
 * Goal: `client.dt` over real HTTP: it sends the documented /dt requests with the caller's
 * quorums and timeout, returns counters and sets (undefined when not found), throws the KV
 * methods' RingClientError with the server's code and status, and never retries an update whose
 * outcome is unknown on another node (an update is not idempotent) unless asked.
 */

const apps: FastifyInstance[] = [];
const clients: RingClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function startNode(): Promise<{ service: FakeKvService; address: string }> {
  const service = new FakeKvService(testConfig());
  const app = await buildApp({ service, config: service.config });
  apps.push(app);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { service, address: `127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

function client(nodes: string[]): RingClient {
  const created = new RingClient({ nodes });
  clients.push(created);
  return created;
}

describe('client.dt', () => {
  it('increments and reads a counter, and says undefined for a key never updated', async () => {
    const { service, address } = await startNode();
    const ring = client([address]);
    expect(await ring.dt.counter('app', 'hits')).toBeUndefined();
    await ring.dt.increment('app', 'hits', 7, { w: 2, dw: 1, timeoutMs: 1500 });
    await ring.dt.increment('app', 'hits', -10);
    expect(await ring.dt.counter('app', 'hits', { r: 'all' })).toBe(-3);
    expect(service.callsOf('dt.update')[0]).toEqual(['app', 'hits', { type: 'counter', increment: 7 }, { w: 2, dw: 1, timeoutMs: 1500 }]);
    expect(service.callsOf('dt.read').at(-1)?.[2]).toEqual({ r: 'all' });
  });

  it('adds to a set, reads it with its context, and removes with that context (the r of the remove passed on)', async () => {
    const { service, address } = await startNode();
    const ring = client([address]);
    expect(await ring.dt.set('app', 'tags')).toBeUndefined();
    await ring.dt.updateSet('app', 'tags', { add: ['b', 'a'] });
    const read = await ring.dt.set('app', 'tags');
    expect(read?.value).toEqual(['a', 'b']);
    await ring.dt.updateSet('app', 'tags', { remove: ['a'], context: read!.context }, { r: 2, w: 'all' });
    expect((await ring.dt.set('app', 'tags'))?.value).toEqual(['b']);
    expect(service.callsOf('dt.update').at(-1)?.[3]).toEqual({ r: 2, w: 'all' });
  });

  it("throws the server's code and status as a RingClientError, and a read of the other type as KV_TYPE_MISMATCH", async () => {
    const { address } = await startNode();
    const ring = client([address]);
    await ring.dt.increment('app', 'hits', 1);
    await expect(ring.dt.updateSet('app', 'hits', { add: ['x'] })).rejects.toMatchObject({ status: 409, code: 'KV_TYPE_MISMATCH', outcome: 'failed' });
    await expect(ring.dt.updateSet('app', 'tags', { remove: ['x'] })).rejects.toMatchObject({ status: 400, code: 'KV_BAD_CONTEXT', outcome: 'failed' });
    await expect(ring.dt.increment('app', 'hits', 0.5)).rejects.toMatchObject({ status: 400, code: 'KV_BAD_REQUEST' });
    const error = await ring.dt.set('app', 'hits').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(RingClientError);
    expect(error).toMatchObject({ code: 'KV_TYPE_MISMATCH' });
  });

  it('does not retry an update whose outcome is unknown on another node, unless retryUnknown', async () => {
    const first = await startNode();
    const second = await startNode();
    const ring = client([first.address, second.address]);
    first.service.failNextWith(new KvError('KV_TIMEOUT', 'timed out'));
    await expect(ring.dt.increment('app', 'hits', 1)).rejects.toMatchObject({ status: 504, code: 'KV_TIMEOUT', outcome: 'unknown' });
    expect(second.service.callsOf('dt.update')).toHaveLength(0);
    // The rotation moved on: the first node is asked first again two calls later.
    await ring.dt.counter('app', 'hits').catch(() => undefined);
    first.service.failNextWith(new KvError('KV_TIMEOUT', 'timed out'));
    await ring.dt.increment('app', 'hits', 1, { retryUnknown: true });
    expect(second.service.callsOf('dt.update')).toHaveLength(1);
    // An overloaded node did nothing: the update moves on to the next node by itself.
    await ring.dt.counter('app', 'hits').catch(() => undefined);
    first.service.failNextWith(new KvError('KV_OVERLOADED', 'busy', { retryAfterSeconds: 1 }));
    await ring.dt.increment('app', 'hits', 1);
    expect(second.service.callsOf('dt.update')).toHaveLength(2);
  });
});
