import { describe, expect, it } from 'vitest';
import { maxLeaseKeys } from '../../src/core/leases/lease-record.js';
import { appHarness, simulatedApp } from './app-harness.js';
import { KvError } from '../../src/util/errors.js';

/**
 * Goal: leases through the HTTP API exactly as the README's "Leases and ephemeral keys" shows
 * them, on a real node of a simulated cluster: POST /leases grants, a PUT with ?lease=ID attaches
 * the key (a GET names the lease), keep-alive and GET /leases/{id} answer the lease, DELETE
 * revokes it and deletes its keys by a consistent delete (the key's version grows), and every
 * misuse has its status and KV_* code: an unknown or ended lease 404 KV_LEASE_NOT_FOUND, ?lease on
 * a plain bucket or a GET 400, a malformed id or ttl 400, a bucket name with U+0000 400, and a
 * lease holding maxLeaseKeys keys 409 KV_LEASE_FULL unless keys rewritten without it can be pruned.
 */
describe('leases over HTTP', () => {
  const simulated = simulatedApp(2222, 3, { buckets: { locks: { consistent: true } } });
  const { request } = simulated;

  const grant = async (ttl: number): Promise<string> => {
    const granted = await request('POST', '/leases', { 'content-type': 'application/json' }, JSON.stringify({ ttl }));
    expect(granted.statusCode, granted.body).toBe(201);
    expect(granted.json()).toMatchObject({ ttl });
    return granted.json<{ id: string }>().id;
  };

  it('grants, attaches a key, keeps alive, describes, and revokes (deleting the key as a consistent write)', async () => {
    const id = await grant(30);
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    const written = await request('PUT', `/kv/locks/leader?lease=${id}`, { 'if-none-match': '*' }, 'node-a');
    expect(written.statusCode, written.body).toBe(204);
    expect(written.headers['x-ringkv-version']).toBe('1');
    const read = await request('GET', '/kv/locks/leader');
    expect(read.body).toBe('node-a');
    expect(read.headers['x-ringkv-lease'], 'a read names the lease of an ephemeral key').toBe(id);

    const kept = await request('POST', `/leases/${id}/keepalive`);
    expect(kept.statusCode).toBe(200);
    expect(kept.json()).toEqual({ id, ttl: 30 });
    const described = await request('GET', `/leases/${id}`);
    expect(described.statusCode).toBe(200);
    expect(described.json()).toMatchObject({ id, ttl: 30, keepAlives: 1, keys: [{ bucket: 'locks', key: 'leader' }] });

    expect((await request('DELETE', `/leases/${id}`)).statusCode).toBe(204);
    const gone = await request('GET', '/kv/locks/leader');
    expect(gone.statusCode, 'a revoked lease takes its keys with it').toBe(404);
    expect(gone.headers['x-ringkv-version'], 'deleted by a consistent delete: the version grew').toBe('2');
    for (const [method, url] of [
      ['GET', `/leases/${id}`],
      ['POST', `/leases/${id}/keepalive`],
      ['DELETE', `/leases/${id}`],
    ] as const) {
      const ended = await request(method, url);
      expect(ended.statusCode, `${method} ${url} of a revoked lease`).toBe(404);
      expect(ended.json()).toMatchObject({ error: { code: 'KV_LEASE_NOT_FOUND' } });
    }
    const late = await request('PUT', `/kv/locks/leader?lease=${id}`, {}, 'node-b');
    expect(late.json(), 'no key attaches to an ended lease').toMatchObject({ error: { code: 'KV_LEASE_NOT_FOUND' } });
    expect((await request('GET', '/kv/locks/leader')).statusCode, 'and the refused write did not happen').toBe(404);
  });

  it('leaves a key rewritten without the lease, or under another lease, when the lease ends', async () => {
    const first = await grant(30);
    const second = await grant(30);
    expect((await request('PUT', `/kv/locks/moved?lease=${first}`, {}, 'a')).statusCode).toBe(204);
    expect((await request('PUT', `/kv/locks/plain?lease=${first}`, {}, 'a')).statusCode).toBe(204);
    expect((await request('PUT', '/kv/locks/plain', {}, 'b')).statusCode).toBe(204);
    expect((await request('PUT', `/kv/locks/moved?lease=${second}`, {}, 'b')).statusCode).toBe(204);
    expect((await request('DELETE', `/leases/${first}`)).statusCode).toBe(204);
    expect((await request('GET', '/kv/locks/plain')).body, 'rewritten without the lease: no longer its key').toBe('b');
    const moved = await request('GET', '/kv/locks/moved');
    expect(moved.body, 'now under the second lease').toBe('b');
    expect(moved.headers['x-ringkv-lease']).toBe(second);
    expect((await request('DELETE', `/leases/${second}`)).statusCode).toBe(204);
    expect((await request('GET', '/kv/locks/moved')).statusCode).toBe(404);
  });

  it('refuses misuse with its status and code', async () => {
    const unknown = await request('PUT', '/kv/locks/x?lease=0123456789abcdef', {}, 'x');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ error: { code: 'KV_LEASE_NOT_FOUND' } });
    expect((await request('GET', '/kv/locks/x')).statusCode, 'the refused write did not happen').toBe(404);
    const plain = await request('PUT', '/kv/demo/x?lease=0123456789abcdef', {}, 'x');
    expect(plain.statusCode).toBe(400);
    expect(plain.json()).toMatchObject({ error: { code: 'KV_BAD_PARAMETER' } });
    expect(plain.json().error.message).toMatch(/consistent bucket/);
    expect((await request('GET', '/kv/locks/x?lease=0123456789abcdef')).json()).toMatchObject({ error: { code: 'KV_BAD_PARAMETER' } });
    expect((await request('PUT', '/kv/locks/x?lease=nope', {}, 'x')).json()).toMatchObject({ error: { code: 'KV_BAD_PARAMETER' } });
    expect((await request('GET', '/leases/nope')).json()).toMatchObject({ error: { code: 'KV_BAD_REQUEST' } });
    for (const body of ['', 'ttl=5', '{"ttl":0}', '{"ttl":1.5}', '{"ttl":86401}', '{"ttl":"5"}', '{"ttl":5,"extra":1}']) {
      const refused = await request('POST', '/leases', { 'content-type': 'application/json' }, body);
      expect(refused.statusCode, `POST /leases ${body}`).toBe(400);
      expect(refused.json().error.message).toMatch(/ttl/);
    }
    const reserved = await request('PUT', '/kv/%00leases/x', {}, 'x');
    expect(reserved.statusCode).toBe(400);
    expect(reserved.json().error.message).toMatch(/U\+0000/);
  });
});

describe('leases on the fake service', () => {
  const start = appHarness();

  it('a PUT whose key was written but whose lease could not be confirmed says the outcome is unknown, never "did not happen"', async () => {
    const { app, service } = await start({ buckets: { locks: { consistent: true } } });
    const id = (await app.inject({ method: 'POST', url: '/leases', payload: { ttl: 60 } })).json<{ id: string }>().id;
    const consistent = service.consistent.bind(service);
    let keyWritten = false;
    service.consistent = async (bucket, key, command, timeoutMs) => {
      if (keyWritten && bucket !== 'locks') throw new KvError('KV_INSUFFICIENT_REPLICAS', 'no quorum', { details: { applied: 'no' } });
      if (bucket === 'locks' && command.kind === 'write') keyWritten = true;
      return consistent(bucket, key, command, timeoutMs);
    };
    const answer = await app.inject({ method: 'PUT', url: `/kv/locks/k?lease=${id}`, payload: 'x' });
    expect(answer.statusCode).toBe(503);
    expect(answer.json()).toMatchObject({ error: { code: 'KV_INSUFFICIENT_REPLICAS', details: { applied: 'unknown' } } });
    expect(answer.json().error.message).toMatch(/was written \(version 1\)/);
  });

  it(`refuses a key beyond ${maxLeaseKeys} with 409 KV_LEASE_FULL, until a key rewritten without the lease is pruned`, async () => {
    const { app } = await start({ buckets: { locks: { consistent: true } } });
    const id = (await app.inject({ method: 'POST', url: '/leases', payload: { ttl: 60 } })).json<{ id: string }>().id;
    for (let index = 0; index < maxLeaseKeys; index++) {
      const written = await app.inject({ method: 'PUT', url: `/kv/locks/k${index}?lease=${id}`, payload: 'x' });
      expect(written.statusCode).toBe(204);
    }
    const full = await app.inject({ method: 'PUT', url: `/kv/locks/extra?lease=${id}`, payload: 'x' });
    expect(full.statusCode).toBe(409);
    expect(full.json()).toMatchObject({ error: { code: 'KV_LEASE_FULL', details: { lease: id, keys: maxLeaseKeys } } });
    expect((await app.inject({ method: 'GET', url: '/kv/locks/extra' })).statusCode, 'the refused key was not written').toBe(404);
    // Rewriting a key again under the lease is no new key.
    expect((await app.inject({ method: 'PUT', url: `/kv/locks/k0?lease=${id}`, payload: 'y' })).statusCode).toBe(204);

    expect((await app.inject({ method: 'PUT', url: '/kv/locks/k7', payload: 'mine now' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'DELETE', url: '/kv/locks/k8' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'PUT', url: `/kv/locks/extra?lease=${id}`, payload: 'x' })).statusCode, 'two stale keys pruned make room').toBe(204);
    const keys = (await app.inject({ method: 'GET', url: `/leases/${id}` })).json<{ keys: { key: string }[] }>().keys.map((entry) => entry.key);
    expect(keys).toHaveLength(maxLeaseKeys - 1);
    expect(keys).not.toContain('k7');
    expect(keys).not.toContain('k8');
    expect(keys).toContain('extra');
  });
});
