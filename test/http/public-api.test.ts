import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { KvError } from '../../src/util/errors.js';
import { appHarness } from './app-harness.js';

/**
 * Goal: the public /kv API behaves exactly as the README documents it (status codes, headers,
 * sibling JSON, error codes), checked through fastify's inject() against an in-memory replica.
 */

const start = appHarness();

function errorOf(response: LightMyRequestResponse): { code: string; message: string } {
  return response.json<{ error: { code: string; message: string } }>().error;
}

function expectError(response: LightMyRequestResponse, status: number, code: string): { code: string; message: string } {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const error = errorOf(response);
  expect(error.code).toBe(code);
  return error;
}

describe('reading and writing values', () => {
  it('returns the exact bytes and content type of a PUT, with a context and last-modified', async () => {
    const { app } = await start();
    const put = await app.inject({ method: 'PUT', url: '/kv/demo/greeting', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    expect(put.statusCode).toBe(204);
    expect(put.headers['x-ringkv-context']).toMatch(/^c3\./);

    const get = await app.inject({ method: 'GET', url: '/kv/demo/greeting' });
    expect(get.statusCode).toBe(200);
    expect(get.body).toBe('hello');
    expect(get.headers['content-type']).toBe('text/plain');
    expect(get.headers['x-ringkv-context']).toBe(put.headers['x-ringkv-context']);
    expect(new Date(String(get.headers['last-modified'])).getTime()).toBe(Date.UTC(2024, 0, 2, 3, 4, 6));
  });

  it('round-trips arbitrary binary values exactly, and stores application/octet-stream when no content type is given', async () => {
    const { app } = await start();
    const value = Buffer.from(Array.from({ length: 1024 }, (_, index) => (index * 37) % 256));
    const put = await app.inject({ method: 'PUT', url: '/kv/bin/all-bytes', payload: value });
    expect(put.statusCode).toBe(204);
    const get = await app.inject({ method: 'GET', url: '/kv/bin/all-bytes' });
    expect(get.statusCode).toBe(200);
    expect(get.rawPayload.equals(value)).toBe(true);
    expect(get.headers['content-type']).toBe('application/octet-stream');
  });

  it('keeps JSON bodies as opaque bytes instead of parsing them', async () => {
    const { app, service } = await start();
    const text = '{"not": "parsed",   "spacing": "kept"}';
    expect((await app.inject({ method: 'PUT', url: '/kv/docs/one', headers: { 'content-type': 'application/json' }, payload: text })).statusCode).toBe(204);
    const get = await app.inject({ method: 'GET', url: '/kv/docs/one' });
    expect(get.body).toBe(text);
    expect(get.headers['content-type']).toBe('application/json');
    expect(Buffer.isBuffer((service.callsOf('put')[0]![0] as { value: unknown }).value)).toBe(true);
  });

  it('stores an empty value from a PUT without body or content type', async () => {
    const { app } = await start();
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/empty' })).statusCode).toBe(204);
    const get = await app.inject({ method: 'GET', url: '/kv/demo/empty' });
    expect(get.statusCode).toBe(200);
    expect(get.rawPayload.length).toBe(0);
  });

  it('URL-decodes bucket and key, including %2F inside a key and non-ASCII text', async () => {
    const { app, service } = await start();
    const url = `/kv/${encodeURIComponent('bücket')}/${encodeURIComponent('a/b c?#日本')}`;
    expect((await app.inject({ method: 'PUT', url, payload: 'x' })).statusCode).toBe(204);
    expect([...service.objects.keys()]).toEqual(['bücket/a/b c?#日本']);
    expect((await app.inject({ method: 'GET', url })).body).toBe('x');
  });

  it('answers 404 KV_NOT_FOUND for a key never written, without a context', async () => {
    const { app } = await start();
    const get = await app.inject({ method: 'GET', url: '/kv/demo/missing' });
    expectError(get, 404, 'KV_NOT_FOUND');
    expect(get.headers['x-ringkv-context']).toBeUndefined();
  });
});

describe('siblings, contexts and deletes', () => {
  it('keeps two blind writes as siblings, resolves them with the context, and deletes with it', async () => {
    const { app } = await start();
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/colour', payload: 'red' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/colour', headers: { 'content-type': 'text/plain' }, payload: 'blue' })).statusCode).toBe(204);

    const siblings = await app.inject({ method: 'GET', url: '/kv/demo/colour' });
    expect(siblings.statusCode).toBe(300);
    const body = siblings.json<{ context: string; siblings: { value: string; contentType: string; lastModified: string }[] }>();
    expect(body.context).toBe(siblings.headers['x-ringkv-context']);
    expect(body.siblings).toEqual([
      {
        value: Buffer.from('red').toString('base64'),
        contentType: 'application/octet-stream',
        lastModified: new Date(Date.UTC(2024, 0, 2, 3, 4, 6)).toISOString(),
      },
      { value: Buffer.from('blue').toString('base64'), contentType: 'text/plain', lastModified: new Date(Date.UTC(2024, 0, 2, 3, 4, 7)).toISOString() },
    ]);

    const resolve = await app.inject({ method: 'PUT', url: '/kv/demo/colour', headers: { 'x-ringkv-context': body.context }, payload: 'purple' });
    expect(resolve.statusCode).toBe(204);
    const resolved = await app.inject({ method: 'GET', url: '/kv/demo/colour' });
    expect(resolved.statusCode).toBe(200);
    expect(resolved.body).toBe('purple');

    const context = String(resolved.headers['x-ringkv-context']);
    const deleted = await app.inject({ method: 'DELETE', url: '/kv/demo/colour', headers: { 'x-ringkv-context': context } });
    expect(deleted.statusCode).toBe(204);
    expect(deleted.headers['x-ringkv-context']).toMatch(/^c3\./);
    const gone = await app.inject({ method: 'GET', url: '/kv/demo/colour' });
    expectError(gone, 404, 'KV_NOT_FOUND');
    expect(gone.headers['x-ringkv-context']).toBe(deleted.headers['x-ringkv-context']);
  });

  it('passes the decoded context to the service, and none for a blind write', async () => {
    const { app, service } = await start();
    const first = await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'a' });
    await app.inject({ method: 'PUT', url: '/kv/demo/k', headers: { 'x-ringkv-context': String(first.headers['x-ringkv-context']) }, payload: 'b' });
    const contexts = service.callsOf('put').map(([command]) => (command as { context: unknown }).context);
    expect(contexts).toEqual([undefined, { vector: { fake: 1 }, dots: [], lastModifiedMs: expect.any(Number) as number }]);
  });

  it('a write reply context chained into the next write keeps a concurrent sibling its writer never saw', async () => {
    // The correctness issue's scenario: blue and red are blind writes, so they are siblings; the
    // context red's 204 carries must supersede red only, never blue.
    const { app } = await start();
    await app.inject({ method: 'PUT', url: '/kv/demo/colour', payload: 'blue' });
    const red = await app.inject({ method: 'PUT', url: '/kv/demo/colour', payload: 'red' });
    await app.inject({ method: 'PUT', url: '/kv/demo/colour', headers: { 'x-ringkv-context': String(red.headers['x-ringkv-context']) }, payload: 'red2' });
    const read = await app.inject({ method: 'GET', url: '/kv/demo/colour' });
    expect(read.statusCode).toBe(300);
    const values = (read.json() as { siblings: { value: string }[] }).siblings.map((sibling) => Buffer.from(sibling.value, 'base64').toString('utf8'));
    expect(values.sort()).toEqual(['blue', 'red2']);
  });

  it('refuses a malformed context with 400 KV_BAD_CONTEXT without calling the service', async () => {
    const { app, service } = await start();
    for (const context of ['garbage', 'c1.!!!', 'c1.' + Buffer.from('{"a":1}').toString('base64url')]) {
      expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k', headers: { 'x-ringkv-context': context }, payload: 'x' }), 400, 'KV_BAD_CONTEXT');
      expectError(await app.inject({ method: 'DELETE', url: '/kv/demo/k', headers: { 'x-ringkv-context': context } }), 400, 'KV_BAD_CONTEXT');
    }
    expect(service.calls).toEqual([]);
  });
});

describe('query parameters', () => {
  it.each([
    ['r=0', 'r=0'],
    ['r=abc', 'r=abc'],
    ['r=', 'r='],
    ['w=99', 'w=99'],
    ['pr=4', 'pr=4'],
    ['dw=-1', 'dw=-1'],
    ['consistency=bogus', 'consistency=bogus'],
    ['timeout_ms=-5', 'timeout_ms=-5'],
    ['timeout_ms=0', 'timeout_ms=0'],
    ['timeout_ms=600001', 'timeout_ms=600001'],
    ['timeout_ms=1.5', 'timeout_ms=1.5'],
    ['local=yes', 'local=yes'],
  ])('refuses %s with 400 KV_BAD_PARAMETER naming it', async (query, named) => {
    const { app, service } = await start();
    const error = expectError(await app.inject({ method: 'GET', url: `/kv/demo/k?${query}` }), 400, 'KV_BAD_PARAMETER');
    expect(error.message).toContain(named);
    expect(service.calls).toEqual([]);
  });

  it('says what is allowed, with the bucket n_val as the upper bound', async () => {
    const { app } = await start({ buckets: { small: { nVal: 2 } } });
    const error = expectError(await app.inject({ method: 'PUT', url: '/kv/small/k?w=3', payload: 'x' }), 400, 'KV_BAD_PARAMETER');
    expect(error.message).toContain('w=3');
    expect(error.message).toContain('from 1 to 2');
    expect(error.message).toContain('one, quorum, all');
    expect((await app.inject({ method: 'PUT', url: '/kv/small/k?w=2', payload: 'x' })).statusCode).toBe(204);
  });

  it('refuses unknown and repeated parameters', async () => {
    const { app } = await start();
    expect(expectError(await app.inject({ method: 'GET', url: '/kv/demo/k?rr=1' }), 400, 'KV_BAD_PARAMETER').message).toContain("'rr'");
    expect(expectError(await app.inject({ method: 'GET', url: '/kv/demo/k?r=1&r=2' }), 400, 'KV_BAD_PARAMETER').message).toContain('more than once');
  });

  it('refuses local=true on writes rather than silently coordinating them', async () => {
    const { app, service } = await start();
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k?local=true', payload: 'x' }), 400, 'KV_BAD_PARAMETER');
    expectError(await app.inject({ method: 'DELETE', url: '/kv/demo/k?local=true' }), 400, 'KV_BAD_PARAMETER');
    expect(service.calls).toEqual([]);
  });

  it('maps consistency=all to r and w all, and lets an explicit r or w win', async () => {
    const { app, service } = await start();
    await app.inject({ method: 'PUT', url: '/kv/demo/k?consistency=all', payload: 'x' });
    await app.inject({ method: 'GET', url: '/kv/demo/k?consistency=all' });
    await app.inject({ method: 'PUT', url: '/kv/demo/k?consistency=all&w=2&pw=one&dw=quorum&timeout_ms=250', payload: 'x' });
    await app.inject({ method: 'GET', url: '/kv/demo/k?consistency=one&r=3&pr=2&timeout_ms=600000' });
    await app.inject({ method: 'DELETE', url: '/kv/demo/k?consistency=quorum' });
    // toStrictEqual: an option the client did not give must be absent, not present as undefined.
    expect(service.callsOf('put').map(([command]) => (command as { options: unknown }).options)).toStrictEqual([
      { w: 'all' },
      { w: 2, pw: 'one', dw: 'quorum', timeoutMs: 250 },
    ]);
    expect(service.callsOf('get').map((args) => args[2])).toStrictEqual([{ r: 'all' }, { r: 3, pr: 2, timeoutMs: 600000 }]);
    expect((service.callsOf('delete')[0]![0] as { options: unknown }).options).toStrictEqual({ w: 'quorum' });
  });

  it('passes no options when none are given, so the bucket defaults apply', async () => {
    const { app, service } = await start();
    await app.inject({ method: 'GET', url: '/kv/demo/k' });
    expect(service.callsOf('get')[0]).toStrictEqual(['demo', 'k', {}]);
  });

  it('reads this node’s own copy with local=true, without coordination', async () => {
    const { app, service } = await start();
    await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'mine' });
    const local = await app.inject({ method: 'GET', url: '/kv/demo/k?local=true' });
    expect(local.statusCode).toBe(200);
    expect(local.body).toBe('mine');
    expect(service.callsOf('getLocal')).toEqual([['demo', 'k']]);
    expect(service.callsOf('get')).toEqual([]);
    await app.inject({ method: 'GET', url: '/kv/demo/k?local=false' });
    expect(service.callsOf('get')).toHaveLength(1);
  });
});

describe('size limits and malformed paths', () => {
  it('refuses a key over limits.maxKeyBytes with 414 KV_KEY_TOO_LONG', async () => {
    const { app, service } = await start();
    expectError(await app.inject({ method: 'GET', url: `/kv/demo/${'k'.repeat(5000)}` }), 414, 'KV_KEY_TOO_LONG');
    expectError(await app.inject({ method: 'PUT', url: `/kv/demo/${'k'.repeat(5000)}`, payload: 'x' }), 414, 'KV_KEY_TOO_LONG');
    // The limit is in UTF-8 bytes: 400 three-byte characters are 1200 bytes, over the default 1024.
    expectError(await app.inject({ method: 'GET', url: `/kv/demo/${encodeURIComponent('日'.repeat(400))}` }), 414, 'KV_KEY_TOO_LONG');
    expect((await app.inject({ method: 'PUT', url: `/kv/demo/${'k'.repeat(1024)}`, payload: 'x' })).statusCode).toBe(204);
    expect(service.callsOf('put')).toHaveLength(1);
  });

  it('refuses a bucket over limits.maxBucketBytes with 414 KV_BUCKET_TOO_LONG', async () => {
    const { app } = await start();
    expectError(await app.inject({ method: 'GET', url: `/kv/${'b'.repeat(257)}/k` }), 414, 'KV_BUCKET_TOO_LONG');
  });

  it('refuses empty or missing bucket and key segments with 400 KV_BAD_REQUEST', async () => {
    const { app, service } = await start();
    for (const url of ['/kv/demo/', '/kv//k', '/kv/demo', '/kv/demo/a/b']) {
      expectError(await app.inject({ method: 'GET', url }), 400, 'KV_BAD_REQUEST');
    }
    expectError(await app.inject({ method: 'GET', url: '/kv/demo/%E0%A4%A' }), 400, 'KV_BAD_REQUEST');
    expect(service.calls).toEqual([]);
  });

  it('refuses a value over limits.maxValueBytes with 413 KV_VALUE_TOO_LARGE', async () => {
    const { app, service } = await start({ limits: { maxValueBytes: 100 } });
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/big', payload: Buffer.alloc(101) }), 413, 'KV_VALUE_TOO_LARGE');
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/big', payload: Buffer.alloc(100) })).statusCode).toBe(204);
    expect(service.callsOf('put')).toHaveLength(1);
  });

  it('refuses a chunked value over the limit that declares no length', async () => {
    const { app } = await start({ limits: { maxValueBytes: 100 } });
    const response = await app.inject({ method: 'PUT', url: '/kv/demo/big', headers: { 'transfer-encoding': 'chunked' }, payload: Buffer.alloc(500) });
    expectError(response, 413, 'KV_VALUE_TOO_LARGE');
  });

  it('refuses a declared 64 MB upload with 413 without waiting for the body', async () => {
    const { app, service } = await start();
    // The declared length is 64 MB but only a few bytes follow: answering at all proves no byte
    // beyond the headers was waited for.
    const response = await app.inject({
      method: 'PUT',
      url: '/kv/demo/huge',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(64 * 1024 * 1024) },
      payload: 'tiny',
    });
    // The message names the declared size: the onRequest check refused it, before any body parsing.
    expect(expectError(response, 413, 'KV_VALUE_TOO_LARGE').message).toContain(String(64 * 1024 * 1024));
    expect(service.calls).toEqual([]);
  });

  it('refuses an invalid content type with 400 KV_BAD_REQUEST', async () => {
    const { app } = await start();
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k', headers: { 'content-type': 'not a media type' }, payload: 'x' }), 400, 'KV_BAD_REQUEST');
  });
});

describe('errors from the service and unknown routes', () => {
  it.each([
    ['KV_INSUFFICIENT_REPLICAS', 503],
    ['KV_TIMEOUT', 504],
    ['KV_NOT_READY', 503],
  ] as const)('maps %s from the service to %i with its message', async (code, status) => {
    const { app, service } = await start();
    service.failNextWith(new KvError(code, `${code} happened`));
    const error = expectError(await app.inject({ method: 'GET', url: '/kv/demo/k' }), status, code);
    expect(error.message).toBe(`${code} happened`);
  });

  it('sends Retry-After when the error carries one', async () => {
    const { app, service } = await start();
    service.failNextWith(new KvError('KV_OVERLOADED', 'too busy', { retryAfterSeconds: 2 }));
    const response = await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'x' });
    expectError(response, 503, 'KV_OVERLOADED');
    expect(response.headers['retry-after']).toBe('2');
    service.failNextWith(new KvError('KV_TIMEOUT', 'slow'));
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'x' })).headers['retry-after']).toBeUndefined();
  });

  it('hides an unexpected error behind 500 KV_INTERNAL', async () => {
    const { app, service } = await start();
    service.failNextWith(new Error('secret internals at /var/lib/x'));
    const error = expectError(await app.inject({ method: 'DELETE', url: '/kv/demo/k' }), 500, 'KV_INTERNAL');
    expect(error.message).not.toContain('secret internals');
  });

  it('answers an unknown route with 404 listing the routes', async () => {
    const { app } = await start();
    const error = expectError(await app.inject({ method: 'GET', url: '/nope' }), 404, 'KV_NOT_FOUND');
    expect(error.message).toContain('/kv/{bucket}/{key}');
    expectError(await app.inject({ method: 'POST', url: '/kv/demo/k', payload: 'x' }), 400, 'KV_BAD_REQUEST');
  });

  it('answers HEAD like GET without a body', async () => {
    const { app } = await start();
    await app.inject({ method: 'PUT', url: '/kv/demo/k', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    const head = await app.inject({ method: 'HEAD', url: '/kv/demo/k' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['x-ringkv-context']).toMatch(/^c3\./);
    expect(head.body).toBe('');
  });
});
