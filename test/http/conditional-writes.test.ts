import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: conditional writes through the HTTP API as the README shows them, on a real node of a
 * simulated cluster: If-None-Match: * and If-Match: <read context>, 412 KV_PRECONDITION_FAILED
 * with the current context in x-ringkv-context, and 400 for headers that cannot be honoured.
 */
describe('conditional writes over HTTP', () => {
  let cluster: SimCluster;
  let app: FastifyInstance;

  beforeAll(async () => {
    cluster = await SimCluster.start(7, 3);
    app = await buildApp({ service: cluster.members[0]!.node, config: cluster.config });
  });

  afterAll(async () => {
    await app.close();
    await cluster.stop();
  });

  const put = async (value: string, headers: Record<string, string>) =>
    cluster.drive(app.inject({ method: 'PUT', url: '/kv/cas/k', payload: value, headers: { 'content-type': 'text/plain', ...headers } }));

  it('If-None-Match: * creates once, then answers 412 with the current context; If-Match with it replaces the value', async () => {
    expect((await put('first', { 'if-none-match': '*' })).statusCode).toBe(204);
    const refused = await put('second', { 'if-none-match': '*' });
    expect(refused.statusCode).toBe(412);
    expect(refused.json()).toMatchObject({ error: { code: 'KV_PRECONDITION_FAILED' } });
    const current = String(refused.headers['x-ringkv-context']);
    expect(current.startsWith('c3.'), 'a read context carries the version time').toBe(true);
    expect((await put('third', { 'if-match': current })).statusCode).toBe(204);
    expect((await put('stale', { 'if-match': current })).statusCode).toBe(412);
    const read = await cluster.drive(app.inject({ method: 'GET', url: '/kv/cas/k' }));
    expect(read.body).toBe('third');
  });

  it('refuses headers it cannot honour with a 400 that says what to send', async () => {
    const written = await put('x', {});
    expect((await put('y', { 'if-none-match': '"etag"' })).json()).toMatchObject({ error: { code: 'KV_BAD_REQUEST' } });
    expect((await put('y', { 'if-match': String(written.headers['x-ringkv-context']) })).json()).toMatchObject({ error: { code: 'KV_BAD_CONTEXT' } });
    expect((await put('y', { 'if-match': 'junk' })).statusCode).toBe(400);
    expect((await put('y', { 'if-none-match': '*', 'if-match': 'c1.W10' })).statusCode).toBe(400);
  });
});
