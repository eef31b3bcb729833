import fc from 'fast-check';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { describe, expect, it } from 'vitest';
import { integerPattern } from '../../src/http/route-schemas.js';
import { appHarness } from './app-harness.js';

/**
 * Goal: every query parameter of every route is validated on one path. The route schema states
 * the parameter's shape and bounds, and a value it refuses is answered 400 KV_BAD_PARAMETER with
 * the one message (query-parameters.ts): `query parameter NAME=VALUE is not allowed: use ...`, the
 * `...` being the parameter's own description in GET /openapi.json, so the message a client reads
 * and the documentation cannot differ. The bound no schema knows (a bucket's n_val, the ring's
 * partition count, a cursor's UTF-8 bytes) is refused with the same message shape. The table must
 * name every query parameter /openapi.json lists, so a new parameter cannot go unchecked.
 */

const start = appHarness();

type Method = 'GET' | 'PUT' | 'DELETE' | 'POST';

/** One refusal: a route, a query parameter, a value and, when it is not the schema's description, what the message says to use. */
interface Row {
  readonly method: Method;
  /** The route as /openapi.json names it. */
  readonly route: string;
  /** A path of the route that is otherwise valid. */
  readonly path: string;
  readonly name: string;
  readonly value: string;
  /** Set for the bounds only the handler knows; else the schema's description is expected. */
  readonly use?: string;
  /** Other parameters the request needs (a listing's keys=true). */
  readonly with?: string;
}

const kvKey = '/kv/{bucket}/{key}';
const dtKey = '/dt/{bucket}/{key}';
const quorumNames = ['r', 'pr', 'w', 'pw', 'dw'] as const;
/** Out of shape for every quorum parameter: not a number or level, zero, over maxNVal, negative, fractional, exponent, hex, a space. */
const badQuorums = ['abc', '0', '17', '-1', '1.5', '1e1', '0x2', ' 2', '', 'ALL'];
const badTimeouts = ['0', '600001', '1.5', '-5', '1e309', 'Infinity', '010', ''];

const rows: Row[] = [
  ...(['GET', 'PUT', 'DELETE'] as const).flatMap((method) => [
    ...quorumNames.flatMap((name) => badQuorums.map((value): Row => ({ method, route: kvKey, path: '/kv/demo/k', name, value }))),
    // The bucket's n_val (3 by default, 2 for `small`) is the bound a schema cannot know.
    ...quorumNames.map((name): Row => ({
      method,
      route: kvKey,
      path: '/kv/demo/k',
      name,
      value: '4',
      use: "one, quorum, all or an integer from 1 to 3 (the bucket's n_val)",
    })),
    ...quorumNames.map((name): Row => ({
      method,
      route: kvKey,
      path: '/kv/small/k',
      name,
      value: '3',
      use: "one, quorum, all or an integer from 1 to 2 (the bucket's n_val)",
    })),
    { method, route: kvKey, path: '/kv/demo/k', name: 'consistency', value: 'bogus' },
    ...badTimeouts.map((value): Row => ({ method, route: kvKey, path: '/kv/demo/k', name: 'timeout_ms', value })),
    { method, route: kvKey, path: '/kv/demo/k', name: 'local', value: method === 'GET' ? 'yes' : 'true' },
  ]),
  ...['0', '315360001', '99999999999', '1.5', 'abc', ''].map((value): Row => ({ method: 'PUT', route: kvKey, path: '/kv/demo/k', name: 'ttl', value })),
  ...['nope', '0123456789abcde', '0123456789ABCDEF', '0123456789abcdef0', ''].map((value): Row => ({
    method: 'PUT',
    route: kvKey,
    path: '/kv/demo/k',
    name: 'lease',
    value,
  })),
  { method: 'GET', route: '/watch/{bucket}/{key}', path: '/watch/demo/k', name: 'dt', value: 'yes' },
  { method: 'GET', route: '/watch/{bucket}', path: '/watch/demo', name: 'dt', value: '1', with: 'prefix=' },
  { method: 'GET', route: '/kv/{bucket}', path: '/kv/demo', name: 'keys', value: 'false' },
  ...['0', '10001', 'ten'].map((value): Row => ({ method: 'GET', route: '/kv/{bucket}', path: '/kv/demo', name: 'limit', value, with: 'keys=true' })),
  { method: 'GET', route: '/kv/{bucket}', path: '/kv/demo', name: 'after', value: '', with: 'keys=true' },
  {
    method: 'GET',
    route: '/kv/{bucket}',
    path: '/kv/demo',
    name: 'after',
    value: 'k'.repeat(1025),
    with: 'keys=true',
    use: 'the `next` of the previous page, a key of 1 to 1024 bytes (limits.maxKeyBytes)',
  },
  {
    method: 'GET',
    route: '/kv/{bucket}',
    path: '/kv/demo',
    name: 'prefix',
    value: 'p'.repeat(1025),
    with: 'keys=true',
    use: 'a prefix of at most 1024 bytes (limits.maxKeyBytes)',
  },
  { method: 'GET', route: '/kv/{bucket}', path: '/kv/demo', name: 'timeout_ms', value: '0', with: 'keys=true' },
  ...(['GET', 'POST'] as const).flatMap((method) => [
    ...quorumNames.map((name): Row => ({ method, route: dtKey, path: '/dt/web/c', name, value: '0' })),
    ...quorumNames.map((name): Row => ({
      method,
      route: dtKey,
      path: '/dt/web/c',
      name,
      value: '4',
      use: "one, quorum, all or an integer from 1 to 3 (the bucket's n_val)",
    })),
    { method, route: dtKey, path: '/dt/web/c', name: 'consistency', value: 'most' },
    { method, route: dtKey, path: '/dt/web/c', name: 'timeout_ms', value: '600001' },
  ]),
  { method: 'POST', route: dtKey, path: '/dt/web/c', name: 'local', value: 'true' },
  ...['-1', 'abc', '65536', '007'].map((value): Row => ({ method: 'POST', route: '/admin/compact', path: '/admin/compact', name: 'partition', value })),
  // The fake's ring has 256 partitions: 256 passes the schema (0..65535) and is refused by the handler.
  { method: 'POST', route: '/admin/compact', path: '/admin/compact', name: 'partition', value: '256', use: 'an integer from 0 to 255' },
  { method: 'GET', route: '/admin/backup/partitions/{partition}', path: '/admin/backup/partitions/3', name: 'ring_version', value: 'x' },
  { method: 'GET', route: '/admin/backup/partitions/{partition}', path: '/admin/backup/partitions/3', name: 'node', value: 'no/slash' },
  { method: 'POST', route: '/admin/restore', path: '/admin/restore', name: 'w', value: '2' },
  { method: 'POST', route: '/admin/restore', path: '/admin/restore', name: 'timeout_ms', value: '600001' },
];

/** Parameters that take any string: only leaving them out or repeating them is refused (rows below). */
const anyValue = new Set(['GET /watch/{bucket} prefix', 'GET /kv/{bucket} prefix']);

interface OpenApiParameter {
  readonly name: string;
  readonly in: string;
  readonly description?: string;
  readonly schema?: { readonly description?: string };
}

async function queryParameters(app: FastifyInstance): Promise<Map<string, string>> {
  const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<{
    paths: Record<string, Record<string, { parameters?: OpenApiParameter[] }>>;
  }>();
  const described = new Map<string, string>();
  for (const [route, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      for (const parameter of operation.parameters ?? []) {
        if (parameter.in === 'query')
          described.set(`${method.toUpperCase()} ${route} ${parameter.name}`, parameter.description ?? parameter.schema?.description ?? '');
      }
    }
  }
  return described;
}

function errorOf(response: { statusCode: number; body: string }): { code: string; message: string } {
  return (JSON.parse(response.body) as { error: { code: string; message: string } }).error;
}

describe('query parameters: one path from the route schema to KV_BAD_PARAMETER', () => {
  it('the table names every query parameter of every route in /openapi.json', async () => {
    const { app } = await start();
    const described = await queryParameters(app);
    expect(described.size).toBeGreaterThan(30);
    const tabled = new Set([...rows.map((row) => `${row.method} ${row.route} ${row.name}`), ...anyValue]);
    expect([...described.keys()].filter((parameter) => !tabled.has(parameter))).toEqual([]);
    expect([...tabled].filter((parameter) => !described.has(parameter))).toEqual([]);
  });

  it('answers each bad value 400 KV_BAD_PARAMETER, saying what to use in the words of /openapi.json', async () => {
    const { app, service } = await start({ buckets: { small: { nVal: 2 } } });
    const described = await queryParameters(app);
    for (const row of rows) {
      const query = `${row.with === undefined ? '' : `${row.with}&`}${row.name}=${encodeURIComponent(row.value)}`;
      const request: InjectOptions = {
        method: row.method,
        url: `${row.path}?${query}`,
        ...(row.method === 'POST' && row.route === dtKey ? { payload: '{"type":"counter","increment":1}' } : {}),
      };
      const response = await app.inject(request);
      const label = `${row.method} ${row.path}?${query.slice(0, 80)}`;
      expect(response.statusCode, `${label}: ${response.body}`).toBe(400);
      const use = row.use ?? described.get(`${row.method} ${row.route} ${row.name}`);
      expect(use, label).toBeTruthy();
      const shown = row.value.length > 64 ? `${row.value.slice(0, 64)}...` : row.value;
      expect(errorOf(response), label).toEqual({ code: 'KV_BAD_PARAMETER', message: `query parameter ${row.name}=${shown} is not allowed: use ${use}` });
    }
    // Nothing refused reached the service.
    expect(service.calls.filter((call) => call.method !== 'status')).toEqual([]);
  });

  it('refuses an unknown parameter, naming the ones the route takes, and a repeated or missing one', async () => {
    const { app } = await start();
    const cases: [Method, string, string][] = [
      ['GET', '/kv/demo/k?ttl=5', "unknown query parameter 'ttl'; the parameters of GET /kv/:bucket/:key are r, pr, w, pw, dw, consistency, timeout_ms, local"],
      [
        'PUT',
        '/kv/demo/k?rr=1',
        "unknown query parameter 'rr'; the parameters of PUT /kv/:bucket/:key are r, pr, w, pw, dw, consistency, timeout_ms, local, ttl, lease",
      ],
      ['GET', '/dt/web/c?local=true', "unknown query parameter 'local'; the parameters of GET /dt/:bucket/:key are r, pr, w, pw, dw, consistency, timeout_ms"],
      ['GET', '/kv/demo?keys=true&cursor=x', "unknown query parameter 'cursor'; the parameters of GET /kv/:bucket are keys, limit, after, prefix, timeout_ms"],
      ['POST', '/admin/compact?partiton=3', "unknown query parameter 'partiton'; the parameters of POST /admin/compact are partition"],
      ['GET', '/watch/demo/k?prefix=a', "unknown query parameter 'prefix'; the parameters of GET /watch/:bucket/:key are dt"],
      ['GET', '/kv/demo/k?r=1&r=2', 'query parameter r is given more than once; give it once'],
      ['GET', '/watch/demo?prefix=a&prefix=b', 'query parameter prefix is given more than once; give it once'],
      [
        'GET',
        '/watch/demo',
        "GET /watch/:bucket needs query parameter prefix: ?prefix=P, the keys' prefix (?prefix= for every key of the bucket); to watch one key use /watch/{bucket}/{key}",
      ],
    ];
    for (const [method, url, message] of cases) {
      const response = await app.inject({ method, url });
      expect(response.statusCode, `${method} ${url}: ${response.body}`).toBe(400);
      expect(errorOf(response), `${method} ${url}`).toEqual({ code: 'KV_BAD_PARAMETER', message });
    }
  });

  it('takes every value in bounds, at both ends', async () => {
    const { app, service } = await start();
    for (const url of ['/kv/demo/k?r=1&pr=3&w=one&pw=quorum&dw=all&timeout_ms=1', '/kv/demo/k?r=3&timeout_ms=600000&local=false']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }
    expect((await app.inject({ method: 'PUT', url: '/kv/demo/k?ttl=315360000&w=3&local=false', payload: 'v' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/kv/demo?keys=true&limit=10000&timeout_ms=600000' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'POST', url: '/admin/compact?partition=255' })).statusCode).toBe(200);
    expect(service.callsOf('get').map((call) => call[2])).toEqual([
      { r: 1, pr: 3, timeoutMs: 1 },
      { r: 3, timeoutMs: 600000 },
    ]);
  });
});

describe('integerPattern', () => {
  it('matches exactly the decimal integers from min to max, without sign, leading zero or exponent', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<0 | 1>(0, 1),
        fc.integer({ min: 1, max: 400_000_000 }),
        fc.oneof(fc.integer({ min: -10, max: 500_000_000 }).map(String), fc.string({ maxLength: 10 })),
        (min, max, text) => {
          const matches = new RegExp(integerPattern(min, max)).test(text);
          const isInRange = /^(0|[1-9][0-9]*)$/.test(text) && Number(text) >= min && Number(text) <= max;
          expect(matches, `${text} against ${min}..${max}`).toBe(isInRange);
        },
      ),
      { seed: 19, numRuns: 2000 },
    );
    for (const max of [1, 9, 10, 16, 99, 100, 255, 600_000, 65_535, 315_360_000]) {
      const pattern = new RegExp(integerPattern(1, max));
      for (const value of [0, 1, max - 1, max, max + 1]) expect(pattern.test(String(value)), `${value} against 1..${max}`).toBe(value >= 1 && value <= max);
    }
  });
});
