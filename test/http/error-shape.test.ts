import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { describe, expect, it } from 'vitest';
import { appHarness } from './app-harness.js';

/**
 * Goal: every error a node sends has the registry's shape `{"error":{"code":"KV_...","message"}}`
 * and a message that says what happened to this request, whatever raised it: Node's HTTP parser
 * (a 100 KB key), fastify (a body over the limit, an unknown route), or a route's own checks
 * (a compressed body, a malformed If-Match, a /dt body of an unknown type). And /openapi.json
 * carries the package's version.
 */

const start = appHarness();
const root = join(import.meta.dirname, '..', '..');

function expectError(response: LightMyRequestResponse, status: number, code: string): string {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  const body = response.json<{ error: { code: string; message: string } }>();
  expect(body.error.code).toBe(code);
  return body.error.message;
}

/** Sends `head` over a real socket (inject() bypasses Node's HTTP parser) and returns the raw answer. */
async function rawExchange(port: number, head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(head));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
    socket.on('error', (error) => (answer === '' ? reject(error) : resolve(answer)));
    socket.on('close', () => resolve(answer));
  });
}

describe('the error shape, whatever raised the error', () => {
  it('answers a 100 KB key (over the 16 KiB request head) with 431 KV_HEADERS_TOO_LARGE', async () => {
    const { app } = await start();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    const answer = await rawExchange(port, `GET /kv/demo/${'k'.repeat(100_000)} HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n`);
    const [head, body] = answer.split('\r\n\r\n', 2) as [string, string];
    expect(head).toMatch(/^HTTP\/1\.1 431 /);
    expect(head.toLowerCase()).toContain('content-type: application/json');
    const parsed = JSON.parse(body) as { error: { code: string; message: string } };
    expect(parsed.error.code).toBe('KV_HEADERS_TOO_LARGE');
    expect(parsed.error.message).toContain('limits.maxKeyBytes');
  });

  it('answers a body over the limit, bad /dt JSON and an unknown route in the same shape', async () => {
    const { app } = await start({ limits: { maxValueBytes: 1024 } });
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/big', payload: Buffer.alloc(2048) }), 413, 'KV_VALUE_TOO_LARGE');
    expectError(
      await app.inject({ method: 'POST', url: '/dt/demo/counter', headers: { 'content-type': 'application/json' }, payload: '{"type":' }),
      400,
      'KV_BAD_REQUEST',
    );
    expectError(await app.inject({ method: 'GET', url: '/nowhere' }), 404, 'KV_NOT_FOUND');
  });

  it('refuses a compressed body with 415 KV_UNSUPPORTED_ENCODING and stores nothing', async () => {
    const { app } = await start();
    const message = expectError(
      await app.inject({ method: 'PUT', url: '/kv/demo/zipped', headers: { 'content-encoding': 'gzip' }, payload: Buffer.from([0x1f, 0x8b, 8, 0]) }),
      415,
      'KV_UNSUPPORTED_ENCODING',
    );
    expect(message).toContain('content-encoding gzip is not accepted');
    expectError(await app.inject({ method: 'GET', url: '/kv/demo/zipped' }), 404, 'KV_NOT_FOUND');
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/plain', headers: { 'content-encoding': 'identity' }, payload: 'x' })).statusCode).toBe(204);
  });
});

describe('messages that say what happened', () => {
  it('names If-Match, not x-ringkv-context, when If-Match is malformed', async () => {
    const { app } = await start();
    const message = expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k', headers: { 'if-match': 'nope' }, payload: 'x' }), 400, 'KV_BAD_CONTEXT');
    expect(message).toContain('malformed If-Match');
    expect(message).not.toContain('x-ringkv-context');
  });

  it('answers a /dt body of an unknown type with the accepted shape', async () => {
    const { app } = await start();
    const message = expectError(
      await app.inject({ method: 'POST', url: '/dt/demo/k', headers: { 'content-type': 'application/json' }, payload: '{"type":"map"}' }),
      400,
      'KV_BAD_REQUEST',
    );
    expect(message).toContain('"type" must be "counter" or "set", got "map"');
    expect(message).toContain('{"type":"counter","increment":N}');
  });

  it("gives /openapi.json the package's version", async () => {
    const { app } = await start();
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect((await app.inject({ method: 'GET', url: '/openapi.json' })).json<{ info: { version: string } }>().info.version).toBe(version);
  });
});
