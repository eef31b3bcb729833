import { describe, expect, it } from 'vitest';
import { appHarness } from './app-harness.js';

/**
 * Goal: `PUT ?ttl=SECONDS` makes the value expire (a GET then answers 404, judged by the
 * service's clock), a bucket's ttlSeconds is the default, and a bad ttl is a 400
 * KV_BAD_PARAMETER that says what is allowed. The fake service's clock is moved by hand.
 */

const start = appHarness();

describe('TTL over HTTP', () => {
  it('a value PUT with ?ttl=1 is readable until it expires, then GET answers 404 with a context', async () => {
    const { app, service } = await start();
    const put = await app.inject({ method: 'PUT', url: '/kv/demo/session?ttl=1', headers: { 'content-type': 'text/plain' }, payload: 'token' });
    expect(put.statusCode, put.body).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/kv/demo/session' })).statusCode).toBe(200);
    service.clockMs += 999;
    expect((await app.inject({ method: 'GET', url: '/kv/demo/session' })).statusCode).toBe(200);
    service.clockMs += 1;
    const expired = await app.inject({ method: 'GET', url: '/kv/demo/session' });
    expect(expired.statusCode).toBe(404);
    expect(expired.json<{ error: { code: string } }>().error.code).toBe('KV_NOT_FOUND');
    expect(expired.headers['x-ringkv-context']).toMatch(/^c3\./);
    expect((await app.inject({ method: 'GET', url: '/kv/demo/session?local=true' })).statusCode).toBe(404);
    // A write back with the expired read's context orders the new value after it.
    const again = await app.inject({
      method: 'PUT',
      url: '/kv/demo/session',
      headers: { 'x-ringkv-context': String(expired.headers['x-ringkv-context']) },
      payload: 'fresh',
    });
    expect(again.statusCode).toBe(204);
    service.clockMs += 3_600_000;
    expect((await app.inject({ method: 'GET', url: '/kv/demo/session' })).body).toBe('fresh');
  });

  it("a bucket's ttlSeconds applies to writes without a ttl; ?ttl overrides it", async () => {
    const { app, service } = await start({ buckets: { cache: { ttlSeconds: 10 } } });
    await app.inject({ method: 'PUT', url: '/kv/cache/a', payload: 'x' });
    await app.inject({ method: 'PUT', url: '/kv/cache/b?ttl=100', payload: 'y' });
    await app.inject({ method: 'PUT', url: '/kv/other/c', payload: 'z' });
    service.clockMs += 20_000;
    expect((await app.inject({ method: 'GET', url: '/kv/cache/a' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/kv/cache/b' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/kv/other/c' })).statusCode).toBe(200);
  });

  it.each(['0', '-1', '1.5', 'abc', '', '315360001', '99999999999'])('PUT ?ttl=%s is refused with 400 KV_BAD_PARAMETER', async (ttl) => {
    const { app, service } = await start();
    const response = await app.inject({ method: 'PUT', url: `/kv/demo/k?ttl=${ttl}`, payload: 'v' });
    expect(response.statusCode, response.body).toBe(400);
    const error = response.json<{ error: { code: string; message: string } }>().error;
    expect(error.code).toBe('KV_BAD_PARAMETER');
    expect(error.message).toMatch(/ttl/);
    expect(service.callsOf('put')).toEqual([]);
  });

  it('the largest ttl (ten years) is taken', async () => {
    const { app } = await start();
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/k?ttl=315360000', payload: 'v' })).statusCode).toBe(204);
  });

  it.each(['GET', 'DELETE'])('?ttl on a %s is refused', async (method) => {
    const { app } = await start();
    const response = await app.inject({ method: method as 'GET' | 'DELETE', url: '/kv/demo/k?ttl=5' });
    expect(response.statusCode, response.body).toBe(400);
    expect(response.json<{ error: { code: string } }>().error.code).toBe('KV_BAD_PARAMETER');
  });

  it('a bucket ttlSeconds outside 0..ten years is a config error', async () => {
    await expect(start({ buckets: { cache: { ttlSeconds: -1 } } })).rejects.toThrow(/ttlSeconds/);
  });
});
