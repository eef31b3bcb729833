import { describe, expect, it } from 'vitest';
import { appHarness } from './app-harness.js';

/**
 * Goal: GET /kv/{bucket}?keys=true answers a bucket's live keys in byte order, page by page with a
 * `next` cursor, honours prefix=, and refuses a bad limit or cursor with 400 KV_BAD_PARAMETER.
 */

const start = appHarness();

describe('GET /kv/{bucket}?keys=true', () => {
  it('pages through the live keys of one bucket in byte order, with prefix and a next cursor', async () => {
    const { app } = await start();
    for (const key of ['b', 'a', 'é', 'ab', 'c', 'gone'])
      expect((await app.inject({ method: 'PUT', url: `/kv/demo/${encodeURIComponent(key)}`, payload: key })).statusCode).toBe(204);
    expect((await app.inject({ method: 'PUT', url: '/kv/other/a', payload: 'x' })).statusCode).toBe(204);
    const read = await app.inject({ method: 'GET', url: '/kv/demo/gone' });
    expect(
      (await app.inject({ method: 'DELETE', url: '/kv/demo/gone', headers: { 'x-ringkv-context': String(read.headers['x-ringkv-context']) } })).statusCode,
    ).toBe(204);

    const first = await app.inject({ method: 'GET', url: '/kv/demo?keys=true&limit=2' });
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toEqual({ keys: ['a', 'ab'], next: 'ab' });
    const second = await app.inject({ method: 'GET', url: '/kv/demo?keys=true&limit=3&after=ab' });
    expect(second.json()).toEqual({ keys: ['b', 'c', 'é'], next: null });
    const prefixed = await app.inject({ method: 'GET', url: '/kv/demo?keys=true&prefix=a' });
    expect(prefixed.json()).toEqual({ keys: ['a', 'ab'], next: null });
  });

  it.each([
    ['limit=0', 'limit'],
    ['limit=10001', 'limit'],
    ['limit=ten', 'limit'],
    ['after=', 'after'],
    [`after=${'k'.repeat(70_000)}`, 'after'],
    ['cursor=x', 'cursor'],
  ])('refuses %s with 400 KV_BAD_PARAMETER', async (parameter, named) => {
    const { app } = await start();
    const response = await app.inject({ method: 'GET', url: `/kv/demo?keys=true&${parameter}` });
    expect(response.statusCode, response.body).toBe(400);
    const error = response.json<{ error: { code: string; message: string } }>().error;
    expect(error.code).toBe('KV_BAD_PARAMETER');
    expect(error.message).toContain(named);
  });

  it('answers /kv/{bucket} without keys=true as a missing key (400 KV_BAD_REQUEST), refuses keys=false, and accepts the largest page', async () => {
    const { app } = await start();
    const without = await app.inject({ method: 'GET', url: '/kv/demo' });
    expect(without.statusCode).toBe(400);
    expect(without.json<{ error: { code: string; message: string } }>().error).toMatchObject({
      code: 'KV_BAD_REQUEST',
      message: expect.stringContaining('keys=true'),
    });
    const notTrue = await app.inject({ method: 'GET', url: '/kv/demo?keys=false' });
    expect(notTrue.json<{ error: { code: string } }>().error.code).toBe('KV_BAD_PARAMETER');
    expect((await app.inject({ method: 'GET', url: '/kv/demo?keys=true&limit=10000' })).statusCode).toBe(200);
  });
});
