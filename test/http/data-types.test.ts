import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/http/app.js';
import { encodeContext } from '../../src/core/versioning/context.js';
import { parseDataTypeUpdate } from '../../src/http/dt-routes.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';
import { testConfig } from './fake-service.js';

/**
 * Goal: the /dt routes as a client sees them, over a real node of a 3-node simulated cluster:
 * counters and sets read and update with the documented JSON, status codes and KV_* codes; bad
 * bodies and parameters are refused with a clear 4xx before anything is written; the data type
 * namespace is apart from /kv; and /openapi.json describes the routes.
 */

describe('the /dt routes (inject, simulated cluster)', () => {
  let cluster: SimCluster;
  let app: FastifyInstance;

  beforeAll(async () => {
    cluster = await SimCluster.start(4242, 3, { limits: { maxSetElements: 5, maxSetBytes: 64 } });
    app = await buildApp({ service: cluster.members[0]!.node, config: cluster.config });
  });

  afterAll(async () => {
    await app.close();
    await cluster.stop();
  });

  const post = async (path: string, body: unknown, raw = false) =>
    cluster.drive(
      app.inject({ method: 'POST', url: path, headers: { 'content-type': 'application/json' }, payload: raw ? (body as string) : JSON.stringify(body) }),
    );
  const get = async (path: string) => cluster.drive(app.inject({ method: 'GET', url: path }));
  const codeOf = (response: { body: string }): unknown => (JSON.parse(response.body) as { error?: { code?: string } }).error?.code;

  it('increments and decrements a counter and reads its sum; a missing key is 404 KV_NOT_FOUND', async () => {
    expect(codeOf(await get('/dt/web/visits'))).toBe('KV_NOT_FOUND');
    expect((await post('/dt/web/visits', { type: 'counter', increment: 5 })).statusCode).toBe(204);
    expect((await post('/dt/web/visits?w=all&timeout_ms=2000', { type: 'counter', increment: -2 })).statusCode).toBe(204);
    const read = await get('/dt/web/visits?r=all');
    expect(read.statusCode).toBe(200);
    expect(read.headers['content-type']).toMatch(/application\/json/);
    expect(JSON.parse(read.body)).toEqual({ type: 'counter', value: 3 });
  });

  it('adds to a set, reads it sorted with a context, and removes what that read saw', async () => {
    expect((await post('/dt/web/tags', { type: 'set', add: ['b', 'a', 'c', 'a'] })).statusCode).toBe(204);
    const read = JSON.parse((await get('/dt/web/tags')).body) as { type: string; value: string[]; context: string };
    expect(read).toMatchObject({ type: 'set', value: ['a', 'b', 'c'] });
    expect(typeof read.context).toBe('string');
    expect((await post('/dt/web/tags', { type: 'set', remove: ['a'], add: ['d'], context: read.context })).statusCode).toBe(204);
    expect(JSON.parse((await get('/dt/web/tags')).body)).toMatchObject({ value: ['b', 'c', 'd'] });
    // 'd' was added after that read: removing it with the old context is a failed precondition.
    const stale = await post('/dt/web/tags', { type: 'set', remove: ['d'], context: read.context });
    expect(stale.statusCode).toBe(412);
    expect(codeOf(stale)).toBe('KV_PRECONDITION_FAILED');
    expect(JSON.parse((await get('/dt/web/tags')).body)).toMatchObject({ value: ['b', 'c', 'd'] });
  });

  it('refuses a remove without a context (400 KV_BAD_CONTEXT) and a junk context', async () => {
    const missing = await post('/dt/web/tags', { type: 'set', remove: ['b'] });
    expect([missing.statusCode, codeOf(missing)]).toEqual([400, 'KV_BAD_CONTEXT']);
    const junk = await post('/dt/web/tags', { type: 'set', remove: ['b'], context: 'c1.!!!' });
    expect([junk.statusCode, codeOf(junk)]).toEqual([400, 'KV_BAD_CONTEXT']);
  });

  it('refuses an update of another type than the key holds with 409 KV_TYPE_MISMATCH', async () => {
    const asSet = await post('/dt/web/visits', { type: 'set', add: ['x'] });
    expect([asSet.statusCode, codeOf(asSet)]).toEqual([409, 'KV_TYPE_MISMATCH']);
    const asCounter = await post('/dt/web/tags', { type: 'counter', increment: 1 });
    expect([asCounter.statusCode, codeOf(asCounter)]).toEqual([409, 'KV_TYPE_MISMATCH']);
  });

  it('keeps data types apart from /kv: the same key is two different things, and /kv refuses the namespace', async () => {
    expect((await cluster.drive(app.inject({ method: 'PUT', url: '/kv/web/visits', payload: 'plain' }))).statusCode).toBe(204);
    expect((await cluster.drive(app.inject({ method: 'GET', url: '/kv/web/visits' }))).body).toBe('plain');
    expect(JSON.parse((await get('/dt/web/visits')).body)).toEqual({ type: 'counter', value: 3 });
    const listing = JSON.parse((await cluster.drive(app.inject({ method: 'GET', url: '/kv/web?keys=true' }))).body) as { keys: string[] };
    expect(listing.keys).toEqual(['visits']);
    const reserved = await cluster.drive(app.inject({ method: 'PUT', url: '/kv/web/%00dt%00visits', payload: 'x' }));
    expect([reserved.statusCode, codeOf(reserved)]).toEqual([400, 'KV_BAD_REQUEST']);
  });

  it('bounds a set by limits.maxSetElements and limits.maxSetBytes (413 KV_SET_TOO_LARGE)', async () => {
    expect((await post('/dt/web/small', { type: 'set', add: ['1', '2', '3', '4', '5'] })).statusCode).toBe(204);
    const tooMany = await post('/dt/web/small', { type: 'set', add: ['6'] });
    expect([tooMany.statusCode, codeOf(tooMany)]).toEqual([413, 'KV_SET_TOO_LARGE']);
    const tooBig = await post('/dt/web/big', { type: 'set', add: ['x'.repeat(65)] });
    expect([tooBig.statusCode, codeOf(tooBig)]).toEqual([413, 'KV_SET_TOO_LARGE']);
    expect(JSON.parse((await get('/dt/web/small')).body)).toMatchObject({ value: ['1', '2', '3', '4', '5'] });
  });

  it('keeps a counter within the safe integers (409 KV_COUNTER_OVERFLOW) and refuses unsafe increments (400)', async () => {
    expect((await post('/dt/web/big-counter', { type: 'counter', increment: Number.MAX_SAFE_INTEGER })).statusCode).toBe(204);
    const over = await post('/dt/web/big-counter', { type: 'counter', increment: 1 });
    expect([over.statusCode, codeOf(over)]).toEqual([409, 'KV_COUNTER_OVERFLOW']);
    expect(JSON.parse((await get('/dt/web/big-counter')).body)).toEqual({ type: 'counter', value: Number.MAX_SAFE_INTEGER });
    for (const increment of [1.5, '5', Number.MAX_SAFE_INTEGER + 2, null]) {
      const refused = await post('/dt/web/big-counter', { type: 'counter', increment });
      expect([refused.statusCode, codeOf(refused)], `increment ${String(increment)}`).toEqual([400, 'KV_BAD_REQUEST']);
    }
  });

  it('refuses malformed bodies and parameters with 400 before writing anything', async () => {
    const bodies: unknown[] = [
      '',
      '{',
      '[]',
      'null',
      '{"type":"map"}',
      '{"type":"set"}',
      '{"type":"set","add":[1]}',
      '{"type":"set","add":["a"],"remove":["a"],"context":"c1.W10"}',
      '{"type":"counter","increment":1,"extra":true}',
    ];
    for (const body of bodies) {
      const refused = await post('/dt/web/junk', body, true);
      expect(refused.statusCode, `body ${String(body)}`).toBe(400);
      expect(codeOf(refused), `body ${String(body)}`).toBe('KV_BAD_REQUEST');
    }
    for (const query of ['w=9', 'r=0', 'timeout_ms=0', 'local=true', 'ttl=5', 'nonsense=1']) {
      const refused = await post(`/dt/web/junk?${query}`, { type: 'counter', increment: 1 });
      expect([refused.statusCode, codeOf(refused)], query).toEqual([400, 'KV_BAD_PARAMETER']);
    }
    expect(codeOf(await get('/dt/web/junk?local=true'))).toBe('KV_BAD_PARAMETER');
    expect(codeOf(await get('/dt/web/junk'))).toBe('KV_NOT_FOUND');
    expect(codeOf(await get('/dt/web'))).toBe('KV_BAD_REQUEST');
  });

  it('counts /dt requests in /metrics as dt_get and dt_update', async () => {
    const text = (await get('/metrics')).body;
    expect(text).toMatch(/ringkv_requests_total\{operation="dt_update",status="204"\} [1-9]/);
    expect(text).toMatch(/ringkv_requests_total\{operation="dt_get",status="200"\} [1-9]/);
  });

  it('describes GET and POST /dt/{bucket}/{key} in /openapi.json', async () => {
    const document = JSON.parse((await get('/openapi.json')).body) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown>; requestBody?: unknown }>>;
    };
    const route = document.paths['/dt/{bucket}/{key}'];
    expect(Object.keys(route ?? {}).sort()).toEqual(['get', 'post']);
    expect(Object.keys(route!.post!.responses)).toEqual(expect.arrayContaining(['204', '400', '409', '412', '413', '503', '504']));
    expect(route!.post!.requestBody).toBeDefined();
  });
});

describe('a set update body', () => {
  it('takes a set context beyond the 16 KiB of a header (a set names every actor that added to it), up to 1 MiB', () => {
    const manyActors = Object.fromEntries(Array.from({ length: 800 }, (_, index) => [`node-${index}.abcdefgh~${index}`, index + 1]));
    const context = encodeContext(manyActors);
    expect(context.length).toBeGreaterThan(16_384);
    const update = parseDataTypeUpdate({ type: 'set', remove: ['a'], context }, testConfig());
    expect(update.type === 'set' && update.context?.vector).toEqual(manyActors);
    expect(() => parseDataTypeUpdate({ type: 'set', remove: ['a'], context: `c1.${'A'.repeat(1024 * 1024)}` }, testConfig())).toThrow(
      expect.objectContaining({ code: 'KV_BAD_CONTEXT' }),
    );
  });
});
