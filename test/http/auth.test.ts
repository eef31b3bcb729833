import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RingClient, RingClientError } from '../../src/client/index.js';
import { validateConfig, mergeConfig } from '../../src/config/validate.js';
import { buildApp } from '../../src/http/app.js';
import { presentedToken, requiredAccess } from '../../src/http/auth.js';
import { loadConfig } from '../../src/main.js';
import defaults from '../../config/default.json' with { type: 'json' };
import { FakeKvService, fakeSecret, testConfig } from './fake-service.js';

/**
 * Goal: with client authentication on, every public route admits exactly the tokens the README
 * promises (401 without or with a wrong token, 403 for a read-only token writing, /status,
 * /metrics and /ui only as configured, /admin read-write only), node-to-node routes only the
 * cluster secret, and no token ever shows up in an answer or a config error.
 */

const readWrite = 'rw-token-0123456789abcdef';
const readOnly = 'ro-token-0123456789abcdef';
const wrong = 'wrong-token-0123456789abcdef';

const apps: FastifyInstance[] = [];

async function start(auth: Record<string, unknown> = {}): Promise<{ app: FastifyInstance; service: FakeKvService }> {
  const service = new FakeKvService(
    testConfig({
      auth: {
        enabled: true,
        tokens: [
          { token: readWrite, role: 'read-write', name: 'writer' },
          { token: readOnly, role: 'read-only', name: 'reader' },
        ],
        ...auth,
      },
    }),
  );
  const app = await buildApp({ service, config: service.config });
  apps.push(app);
  return { app, service };
}

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

function expectError(response: LightMyRequestResponse, status: number, code: string): void {
  expect(response.statusCode, response.body).toBe(status);
  expect(response.json<{ error: { code: string } }>().error.code).toBe(code);
  for (const token of [readWrite, readOnly, wrong]) expect(response.body).not.toContain(token);
}

describe('the public /kv API with client authentication', () => {
  it('refuses a PUT without a token with 401 KV_UNAUTHORIZED and a bearer challenge, and writes nothing', async () => {
    const { app, service } = await start();
    const response = await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'v' });
    expectError(response, 401, 'KV_UNAUTHORIZED');
    expect(response.headers['www-authenticate']).toBe('Bearer realm="ringkv"');
    expect(service.callsOf('put')).toHaveLength(0);
  });

  it('refuses a wrong token with 401, and a read-only token writing or deleting with 403 KV_FORBIDDEN', async () => {
    const { app, service } = await start();
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'v', headers: bearer(wrong) }), 401, 'KV_UNAUTHORIZED');
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'v', headers: bearer(readOnly) }), 403, 'KV_FORBIDDEN');
    expectError(await app.inject({ method: 'DELETE', url: '/kv/demo/k', headers: bearer(readOnly) }), 403, 'KV_FORBIDDEN');
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'v', headers: { authorization: 'Token whatever' } }), 401, 'KV_UNAUTHORIZED');
    expect(service.calls.filter((call) => call.method === 'put' || call.method === 'delete')).toHaveLength(0);
  });

  it('writes with a read-write token and reads with either', async () => {
    const { app } = await start();
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'v', headers: bearer(readWrite) })).statusCode).toBe(204);
    const read = await app.inject({ method: 'GET', url: '/kv/demo/k', headers: bearer(readOnly) });
    expect(read.statusCode).toBe(200);
    expect(read.body).toBe('v');
    expect((await app.inject({ method: 'GET', url: '/kv/demo/k', headers: bearer(readWrite) })).statusCode).toBe(200);
    expectError(await app.inject({ method: 'GET', url: '/kv/demo/k' }), 401, 'KV_UNAUTHORIZED');
  });

  it('accepts the token as the password of basic auth, which browsers send', async () => {
    const { app } = await start();
    const basic = `Basic ${Buffer.from(`anyone:${readOnly}`).toString('base64')}`;
    expect((await app.inject({ method: 'GET', url: '/kv/demo/missing', headers: { authorization: basic } })).statusCode).toBe(404);
  });

  it('checks the token before the body or the parameters: an unauthenticated caller learns nothing else', async () => {
    const { app } = await start();
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k?w=999', payload: 'v' }), 401, 'KV_UNAUTHORIZED');
    expectError(await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'v', headers: { 'content-length': '999999999999' } }), 401, 'KV_UNAUTHORIZED');
    // Unknown routes too: no token, no list of routes.
    expectError(await app.inject({ method: 'GET', url: '/no/such/route' }), 401, 'KV_UNAUTHORIZED');
    expect((await app.inject({ method: 'GET', url: '/no/such/route', headers: bearer(readOnly) })).statusCode).toBe(404);
  });

  it('leaves everything open when auth is off (the default)', async () => {
    const service = new FakeKvService(testConfig());
    const app = await buildApp({ service, config: service.config });
    apps.push(app);
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/k', payload: 'v' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'POST', url: '/admin/compact' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/status' })).statusCode).toBe(200);
  });
});

describe('status, metrics, admin and the peer routes', () => {
  it('keeps /health, /status and /metrics open unless protected', async () => {
    const { app } = await start();
    for (const url of ['/health', '/status', '/metrics']) expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(200);
  });

  it('asks a token of either role for /status and /metrics when protectStatus and protectMetrics are set; /health stays open', async () => {
    const { app } = await start({ protectStatus: true, protectMetrics: true });
    for (const url of ['/status', '/metrics']) {
      expectError(await app.inject({ method: 'GET', url }), 401, 'KV_UNAUTHORIZED');
      expect((await app.inject({ method: 'GET', url, headers: bearer(readOnly) })).statusCode, url).toBe(200);
    }
    expect((await app.inject({ method: 'GET', url: '/health' })).statusCode).toBe(200);
  });

  it('protects each of /status and /metrics on its own', async () => {
    const { app } = await start({ protectMetrics: true });
    expect((await app.inject({ method: 'GET', url: '/status' })).statusCode).toBe(200);
    expectError(await app.inject({ method: 'GET', url: '/metrics' }), 401, 'KV_UNAUTHORIZED');
  });

  it('lets only a read-write token use /admin', async () => {
    const { app, service } = await start();
    expectError(await app.inject({ method: 'POST', url: '/admin/compact' }), 401, 'KV_UNAUTHORIZED');
    expectError(await app.inject({ method: 'POST', url: '/admin/compact', headers: bearer(readOnly) }), 403, 'KV_FORBIDDEN');
    // A percent-encoded spelling reaches the same route, so it gets the same rule.
    expectError(await app.inject({ method: 'POST', url: '/%61dmin/compact', headers: bearer(readOnly) }), 403, 'KV_FORBIDDEN');
    expect(service.compactions).toBe(0);
    expect((await app.inject({ method: 'POST', url: '/admin/compact', headers: bearer(readWrite) })).statusCode).toBe(200);
    expect(service.compactions).toBe(1);
  });

  it('has no node-to-node route: peers talk on the framed peer port, so the cluster secret is never taken over HTTP', async () => {
    const service = new FakeKvService(testConfig());
    const app = await buildApp({ service, config: service.config });
    apps.push(app);
    const peer = await app.inject({
      method: 'POST',
      url: '/internal/v1/peer',
      payload: Buffer.from([1, 2, 3]),
      headers: { 'x-ringkv-secret': fakeSecret, 'content-type': 'application/octet-stream' },
    });
    expect(peer.statusCode).toBe(404);
    expect(JSON.parse(peer.body)).toMatchObject({ error: { code: 'KV_NOT_FOUND' } });
  });
});

describe('the rules and the config', () => {
  const auth = { enabled: true, tokens: [], protectStatus: false, protectMetrics: false, protectUi: false };

  it('maps routes to the access they need, defaulting to a token for routes it does not know', () => {
    expect(requiredAccess('GET', '/kv/:bucket/:key', auth)).toBe('read');
    expect(requiredAccess('HEAD', '/kv/:bucket/:key', auth)).toBe('read');
    expect(requiredAccess('PUT', '/kv/:bucket/:key', auth)).toBe('write');
    expect(requiredAccess('GET', '/admin/cluster/plan', auth)).toBe('write');
    expect(requiredAccess('GET', '/health', auth)).toBe('open');
    expect(requiredAccess('GET', '/ui', auth)).toBe('open');
    expect(requiredAccess('GET', '/ui/data.json', { ...auth, protectStatus: true })).toBe('read');
    expect(requiredAccess('GET', '/cluster/members', auth)).toBe('read');
    expect(requiredAccess('POST', '/cluster/commit', auth)).toBe('write');
    expect(requiredAccess('POST', '/internal/v1/handoff', auth)).toBe('write');
    expect(requiredAccess('PUT', '/kv/:bucket/:key', { ...auth, enabled: false })).toBe('open');
  });

  it('reads bearer and basic credentials and nothing else', () => {
    expect(presentedToken(`Bearer ${readOnly}`)).toBe(readOnly);
    expect(presentedToken(`bearer   ${readOnly}`)).toBe(readOnly);
    expect(presentedToken(`Basic ${Buffer.from(`u:${readOnly}`).toString('base64')}`)).toBe(readOnly);
    expect(presentedToken('Bearer')).toBeUndefined();
    expect(presentedToken(undefined)).toBeUndefined();
    expect(presentedToken('Digest abc')).toBeUndefined();
  });

  it('refuses short, duplicate or role-less tokens naming the field but never showing the token', () => {
    const bad = (tokens: unknown, enabled = true): string => {
      try {
        validateConfig(mergeConfig(defaults, { auth: { enabled, tokens } }));
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error('expected a config error');
    };
    const short = 'short-secret';
    const shortMessage = bad([{ token: short, role: 'read-write' }]);
    expect(shortMessage).toMatch(/auth\.tokens\[0\]\.token/);
    expect(shortMessage).not.toContain(short);
    const duplicate = bad([
      { token: readWrite, role: 'read-write' },
      { token: readWrite, role: 'read-only' },
    ]);
    expect(duplicate).toMatch(/auth\.tokens\[1\]\.token/);
    expect(duplicate).not.toContain(readWrite);
    expect(bad([{ token: readWrite, role: 'admin' }])).toMatch(/auth\.tokens\[0\]\.role/);
    expect(bad([])).toMatch(/at least one token/);
    expect(bad([{ token: readWrite }], false)).toMatch(/auth\.tokens\[0\]\.role/);
  });

  it('takes tokens and protected endpoints from RINGKV_AUTH_TOKENS and RINGKV_AUTH_PROTECT', () => {
    const config = loadConfig({}, { RINGKV_AUTH_TOKENS: `${readWrite}:read-write, ${readOnly}:read-only`, RINGKV_AUTH_PROTECT: 'status,ui' });
    expect(config.auth.enabled).toBe(true);
    expect(config.auth.tokens).toEqual([
      { token: readWrite, role: 'read-write' },
      { token: readOnly, role: 'read-only' },
    ]);
    expect(config.auth).toMatchObject({ protectStatus: true, protectMetrics: false, protectUi: true });
    expect(loadConfig({}, { RINGKV_AUTH_TOKENS: `${readWrite}:read-write`, RINGKV_AUTH: 'false' }).auth.enabled).toBe(false);
    let message = '';
    try {
      loadConfig({}, { RINGKV_AUTH_TOKENS: `${readWrite}:read-write,${readOnly}` });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/entry 2 of environment variable RINGKV_AUTH_TOKENS/);
    expect(message).not.toContain(readOnly);
  });
});

describe('the client with a token', () => {
  it('sends its bearer token, and a read-only client gets KV_FORBIDDEN with outcome failed', async () => {
    const { app } = await start();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const writer = new RingClient({ nodes: [address], token: readWrite });
    const reader = new RingClient({ nodes: [address], token: readOnly });
    const anonymous = new RingClient({ nodes: [address] });
    try {
      await writer.put('demo', 'k', 'v');
      expect((await reader.get('demo', 'k')).siblings[0]!.value.toString()).toBe('v');
      const forbidden = await reader.put('demo', 'k', 'x').catch((error: unknown) => error as RingClientError);
      expect(forbidden).toBeInstanceOf(RingClientError);
      expect((forbidden as RingClientError).code).toBe('KV_FORBIDDEN');
      expect((forbidden as RingClientError).outcome).toBe('failed');
      const refused = await anonymous.get('demo', 'k').catch((error: unknown) => error as RingClientError);
      expect((refused as RingClientError).status).toBe(401);
    } finally {
      await Promise.all([writer.close(), reader.close(), anonymous.close()]);
    }
  });
});
