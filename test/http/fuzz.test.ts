import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeRequest, encodeRequest } from '../../src/core/wire/codec.js';
import { KvError } from '../../src/util/errors.js';
import type { PeerRequest } from '../../src/core/wire/messages.js';
import { mergeConfig, validateConfig } from '../../src/config/validate.js';
import { buildApp } from '../../src/http/app.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: no input through the public HTTP API (nor any peer message a peer could send) makes a node answer
 * a 5xx other than 503 (unavailable) or 504 (timed out), throws out of the app, or answers an
 * error without the documented `{"error": {"code": "KV_..."}}` body. The app is the real one over
 * a real RingNode of a 3-node simulated cluster (memory storage, simulated network, virtual
 * clock), so inputs reach the coordinator, the replicas and the peer codec. fast-check draws
 * methods, paths, query strings with junk quorum values, headers (contexts, content types,
 * tokens, a would-be peer secret) and bodies; its seed is printed on failure and replays the run.
 */

const seed = Number(process.env.RINGKV_FUZZ_SEED ?? 20_261_201);
const numRuns = Number(process.env.RINGKV_FUZZ_RUNS ?? 1000);
const clusterSecret = 'simulation-secret-0123456789';
const readWriteToken = 'fuzz-rw-token-0123456789abcdef';
const readOnlyToken = 'fuzz-ro-token-0123456789abcdef';

/** Printable ASCII: what a header value may hold (inject refuses control characters itself, before the app). */
const printable = (maxLength: number): fc.Arbitrary<string> =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((code) => String.fromCharCode(code)), maxLength });

/** A path segment: usually sane, else junk, unicode, bad percent-encoding, dot segments or very long. */
const segment: fc.Arbitrary<string> = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('demo', 'k', 'bucket-1', 'key.with.dots', 'a_b') },
  { weight: 2, arbitrary: fc.string({ maxLength: 40 }).map((text) => encodeURIComponent(text)) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }).map((text) => encodeURIComponent(text)) },
  { weight: 1, arbitrary: fc.constantFrom('%', '%G1', '%ZZ', '%00', '%2F', '..', '.', '%2e%2e', '%C3%28', '%FF%FE', '') },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 5000 }).map((length) => 'x'.repeat(length)) },
);

/** Values for numeric query parameters: in range, out of range, negative, fractional, huge, or not numbers. */
const quorumValue: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('1', '2', '3', 'one', 'quorum', 'all', 'true', 'false', '100', '5000') },
  { weight: 2, arbitrary: fc.constantFrom('default', '0', '-1', '1.5', '2.0', '1e3', '1e309', 'NaN', 'Infinity', '-0', '0x2', ' 2', '', '9'.repeat(400)) },
  { weight: 1, arbitrary: fc.integer({ min: -1_000_000, max: 1_000_000 }).map(String) },
  { weight: 1, arbitrary: fc.double({ noNaN: false }).map(String) },
  { weight: 1, arbitrary: fc.constant(String(Number.MAX_SAFE_INTEGER + 2)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);

const queryName = fc.constantFrom('r', 'w', 'pr', 'pw', 'dw', 'timeout_ms', 'consistency', 'local', 'partition', 'returnbody', 'n_val');

/** A query string: parameters (repeated ones too), each value percent-encoded or, now and then, raw. */
const queryString: fc.Arbitrary<string> = fc
  .array(fc.tuple(queryName, quorumValue, fc.boolean()), { maxLength: 4 })
  .map((pairs) => pairs.map(([name, value, raw]) => `${name}=${raw ? value.replace(/[#\s]/g, '') : encodeURIComponent(value)}`).join('&'));

const path: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(segment, segment).map(([bucket, key]) => `/kv/${bucket}/${key}`) },
  { weight: 3, arbitrary: fc.tuple(segment, fc.oneof(segment, fc.constantFrom('hits', 'tags'))).map(([bucket, key]) => `/dt/${bucket}/${key}`) },
  { weight: 1, arbitrary: fc.constantFrom('/dt', '/dt/', '/dt/demo', '/dt//k', '/dt/demo/hits/x') },
  { weight: 1, arbitrary: fc.tuple(segment, segment, segment).map(([bucket, key, extra]) => `/kv/${bucket}/${key}/${extra}`) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '/health',
      '/status',
      '/metrics',
      '/ui',
      '/ui/',
      '/ui/app.js',
      '/ui/data.json',
      '/admin/compact',
      '/admin/repair',
      '/internal/v1/peer',
      '/kv',
      '/kv/',
      '/kv/demo',
      '/kv//k',
      '/',
      '//',
      '/nothing-here',
    ),
  },
  // Never /admin/leave: it would decommission the node and leave nothing to fuzz.
  { weight: 1, arbitrary: segment.map((nodeId) => `/admin/remove/${nodeId}`) },
);

const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(undefined, 'application/json', 'text/plain', 'application/octet-stream') },
  { weight: 1, arbitrary: fc.constantFrom('application/json; charset=utf-9', 'multipart/form-data; boundary=x', 'text/plain;;;', 'a/b/c', '/', 'x') },
  { weight: 1, arbitrary: printable(60) },
);

const authorization: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(undefined, `Bearer ${readWriteToken}`, `Bearer ${readWriteToken}`, `Bearer ${readOnlyToken}`) },
  { weight: 1, arbitrary: fc.constantFrom('Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', `bearer ${readWriteToken}`, `Bearer ${readWriteToken}x`) },
  { weight: 1, arbitrary: printable(80) },
);

/** Contexts: none, junk, junk that looks like ours, or one the node really gave out (drawn from those seen). */
const context = (seen: readonly string[]): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.constant(undefined) },
    { weight: 3, arbitrary: fc.nat().map((index) => seen[index % Math.max(1, seen.length)] ?? 'c1.') },
    { weight: 1, arbitrary: fc.constantFrom('c1.', 'c1.W10', 'c1.!!!!', 'c2.AAAA', 'c1.' + 'A'.repeat(5000), '') },
    { weight: 1, arbitrary: printable(100).map((text) => `c1.${text}`) },
    { weight: 1, arbitrary: printable(60) },
  );

/** Data type updates (/dt): well-formed, nearly so, or with junk fields, huge or unsafe numbers, and real or junk contexts. */
const dataTypeBody = (seen: readonly string[]): fc.Arbitrary<string> => {
  const realContext = fc.nat().map((index) => seen[index % Math.max(1, seen.length)] ?? 'c1.');
  const elements = fc.array(fc.constantFrom('a', 'b', '', 'ü', 'x'.repeat(300)), { maxLength: 5 });
  const junk = fc
    .record(
      {
        type: fc.oneof(
          { weight: 8, arbitrary: fc.constantFrom('counter', 'set') },
          { weight: 1, arbitrary: fc.constantFrom('map', '', 'COUNTER') },
          { weight: 1, arbitrary: fc.jsonValue() },
        ),
        increment: fc.oneof(
          fc.integer({ min: -1000, max: 1000 }),
          fc.constantFrom(Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 1e300, 0.5, -0),
          fc.jsonValue(),
        ),
        add: fc.oneof(elements, fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }), fc.jsonValue()),
        remove: fc.oneof(fc.array(fc.constantFrom('a', 'b', 'zz'), { maxLength: 3 }), fc.jsonValue()),
        context: fc.oneof(realContext, fc.constantFrom('c1.', 'c1.W10', 'c2.AAAA', ''), printable(40), fc.jsonValue()),
        extra: fc.jsonValue(),
      },
      { requiredKeys: ['type'] },
    )
    .map((value) => JSON.stringify(value));
  return fc.oneof(
    { weight: 3, arbitrary: fc.integer({ min: -1000, max: 1000 }).map((increment) => JSON.stringify({ type: 'counter', increment })) },
    { weight: 2, arbitrary: elements.map((add) => JSON.stringify({ type: 'set', add: add.length === 0 ? ['a'] : add })) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(elements, fc.constantFrom<string[]>(['a'], ['b'], ['a', 'b'], ['zz']), realContext)
        .map(([add, remove, context]) => JSON.stringify({ type: 'set', add: add.filter((element) => !remove.includes(element)), remove, context })),
    },
    { weight: 3, arbitrary: junk },
  );
};

const body: fc.Arbitrary<string | Buffer | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 512 }).map((bytes) => Buffer.from(bytes)) },
  { weight: 1, arbitrary: fc.constantFrom('{', '[1,2', '{"a":', 'null', '{"__proto__":{"x":1}}', '\u0000\u0001') },
  { weight: 1, arbitrary: fc.json({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 4000, max: 6000 }).map((length) => 'v'.repeat(length)) },
);

const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'PUT', 'DELETE', 'POST') },
  { weight: 2, arbitrary: fc.constantFrom('POST', 'HEAD', 'PATCH', 'OPTIONS') },
) as fc.Arbitrary<InjectOptions['method']>;

interface DrawnRequest {
  readonly guarded: boolean;
  readonly method: InjectOptions['method'];
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly payload: string | Buffer | undefined;
}

const request = (seen: readonly string[], dataTypeContexts: readonly string[]): fc.Arbitrary<DrawnRequest> =>
  fc
    .record({
      guarded: fc.boolean(),
      method,
      path,
      query: fc.option(queryString, { nil: undefined, freq: 2 }),
      contentType,
      authorization,
      context: context(seen),
      secret: fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        { weight: 2, arbitrary: fc.constant(clusterSecret) },
        { weight: 1, arbitrary: printable(40) },
      ),
      // Mostly the true length (inject sets it); now and then a lie.
      contentLength: fc.oneof(
        { weight: 10, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.constantFrom('0', '-1', '1', 'abc', String(64 * 1024 * 1024)) },
      ),
      payload: fc.oneof({ weight: 3, arbitrary: body }, { weight: 2, arbitrary: dataTypeBody(dataTypeContexts) }),
    })
    .map((drawn) => {
      const headers: Record<string, string> = {};
      if (drawn.contentType !== undefined) headers['content-type'] = drawn.contentType;
      if (drawn.authorization !== undefined) headers.authorization = drawn.authorization;
      if (drawn.context !== undefined) headers['x-ringkv-context'] = drawn.context;
      // No route takes it: a request that presents it is a client request like any other.
      if (drawn.secret !== undefined) headers['x-ringkv-secret'] = drawn.secret;
      if (drawn.contentLength !== undefined) headers['content-length'] = drawn.contentLength;
      const url = drawn.query === undefined ? drawn.path : `${drawn.path}?${drawn.query}`;
      return { guarded: drawn.guarded, method: drawn.method, url, headers, payload: drawn.payload };
    });

describe('fuzzing the HTTP API of a real node (simulated cluster)', () => {
  let cluster: SimCluster | undefined;
  let open: FastifyInstance | undefined;
  let guarded: FastifyInstance | undefined;
  /** Contexts the node gave out, so some fuzzed writes carry a real one. */
  const seen: string[] = [];
  /** Contexts of /dt set reads, for fuzzed removes. */
  const dataTypeContexts: string[] = [];

  beforeAll(async () => {
    cluster = await SimCluster.start(seed, 3, { limits: { maxValueBytes: 4096 } });
    const node = cluster.members[0]!.node;
    open = await buildApp({ service: node, config: cluster.config });
    const auth = {
      enabled: true,
      protectStatus: true,
      protectMetrics: true,
      protectUi: false,
      tokens: [
        { token: readWriteToken, role: 'read-write', name: 'app' },
        { token: readOnlyToken, role: 'read-only', name: 'reports' },
      ],
    };
    guarded = await buildApp({ service: node, config: validateConfig(mergeConfig(cluster.config, { auth })) });
    // A few real versions (one with siblings), so reads find data and fuzzed contexts include real ones.
    for (const value of ['one', 'two']) {
      const answer = await cluster.drive(open.inject({ method: 'PUT', url: '/kv/demo/k', payload: value, headers: { 'content-type': 'text/plain' } }));
      const given = answer.headers['x-ringkv-context'];
      if (typeof given === 'string') seen.push(given);
    }
    // A counter and a set, so /dt reads find data and some fuzzed removes carry a set's real context.
    await cluster.drive(open.inject({ method: 'POST', url: '/dt/demo/hits', payload: '{"type":"counter","increment":3}' }));
    await cluster.drive(open.inject({ method: 'POST', url: '/dt/demo/tags', payload: '{"type":"set","add":["a","b"]}' }));
    const set = await cluster.drive(open.inject({ method: 'GET', url: '/dt/demo/tags' }));
    dataTypeContexts.push((JSON.parse(set.body) as { context: string }).context);
    const read = await cluster.drive(open.inject({ method: 'GET', url: '/kv/demo/k' }));
    const given = read.headers['x-ringkv-context'];
    if (typeof given === 'string') seen.push(given);
  });

  afterAll(async () => {
    await open?.close();
    await guarded?.close();
    await cluster?.stop();
  });

  it('answers every drawn request with a status below 500, or 503/504, and a KV_* error body for every error', async () => {
    const simulation = cluster as SimCluster;
    const statuses = new Map<number, number>();
    const dataTypeStatuses = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(request(seen, dataTypeContexts), async (drawn) => {
        const app = (drawn.guarded ? guarded : open) as FastifyInstance;
        const response = await simulation.drive(
          app.inject({ method: drawn.method, url: drawn.url, headers: drawn.headers, ...(drawn.payload === undefined ? {} : { payload: drawn.payload }) }),
        );
        statuses.set(response.statusCode, (statuses.get(response.statusCode) ?? 0) + 1);
        if (drawn.url.startsWith('/dt/')) dataTypeStatuses.set(response.statusCode, (dataTypeStatuses.get(response.statusCode) ?? 0) + 1);
        const summary = `${drawn.method} ${drawn.url.slice(0, 200)} (${drawn.guarded ? 'auth on' : 'auth off'}) answered ${response.statusCode}: ${response.body.slice(0, 300)}`;
        expect(response.statusCode < 500 || response.statusCode === 503 || response.statusCode === 504, summary).toBe(true);
        if (response.statusCode >= 400 && drawn.method !== 'HEAD') {
          const parsed = JSON.parse(response.body) as { error?: { code?: unknown; message?: unknown } };
          expect(parsed.error?.code, summary).toMatch(/^KV_[A-Z_]+$/);
          expect(typeof parsed.error?.message, summary).toBe('string');
        }
        const given = response.headers['x-ringkv-context'];
        if (typeof given === 'string' && seen.length < 50) seen.push(given);
      }),
      { seed, numRuns, endOnFailure: true },
    );
    console.log(`HTTP fuzz, seed ${seed}, ${numRuns} requests, statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
    // Not a verdict on the node, a check on the fuzzer: it reached the success paths and the refusals alike.
    const codes = [...statuses.keys()];
    expect(
      codes.some((code) => code < 300),
      `statuses seen: ${JSON.stringify(Object.fromEntries(statuses))}`,
    ).toBe(true);
    expect(
      codes.some((code) => code >= 400 && code < 500),
      `statuses seen: ${JSON.stringify(Object.fromEntries(statuses))}`,
    ).toBe(true);
    console.log(`of them /dt: ${JSON.stringify(Object.fromEntries(dataTypeStatuses))}`);
    const dataTypeCodes = [...dataTypeStatuses.keys()];
    expect(
      dataTypeCodes.some((code) => code === 200) && dataTypeCodes.includes(204),
      `/dt statuses seen: ${JSON.stringify(Object.fromEntries(dataTypeStatuses))}`,
    ).toBe(true);
    expect(
      dataTypeCodes.some((code) => code >= 400 && code < 500),
      `/dt statuses seen: ${JSON.stringify(Object.fromEntries(dataTypeStatuses))}`,
    ).toBe(true);
  });

  it('answers every peer message, valid, mutated or junk, with a reply or a KV_* error, as the peer port hands them to the node', async () => {
    const simulation = cluster as SimCluster;
    const app = open as FastifyInstance;
    const node = simulation.members[0]!.node;
    const now = simulation.clock.nowMs();
    const samples: PeerRequest[] = [
      { type: 'replica-get', bucket: 'demo', key: 'k' },
      {
        type: 'coordinate-put',
        bucket: 'demo',
        key: 'peer-k',
        write: { value: Buffer.from('v'), contentType: 'text/plain', tombstone: false, context: { vector: {}, dots: [] }, nowMs: now },
        mode: 'siblings',
        sync: false,
      },
      { type: 'handoff-held', partitions: [0, 3] },
      { type: 'ae-summary', roots: [{ partition: 0, root: '0'.repeat(16) }] },
      { type: 'dt-update', bucket: 'demo', key: '\u0000dt\u0000peer-hits', update: { type: 'counter', increment: 2 }, sync: false, base: null },
      {
        type: 'dt-update',
        bucket: 'demo',
        key: '\u0000dt\u0000peer-tags',
        update: { type: 'set', add: ['a'], remove: ['b'], context: { vector: { x: 1 }, dots: [] } },
        sync: false,
        base: null,
      },
    ];
    const body: fc.Arbitrary<Buffer> = fc.oneof(
      fc.uint8Array({ maxLength: 256 }).map((bytes) => Buffer.from(bytes)),
      fc
        .tuple(
          fc.constantFrom(...samples),
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
          fc.option(fc.nat(), { nil: undefined }),
        )
        .map(([request, flips, cut]) => {
          const bytes = Buffer.from(encodeRequest(request));
          for (const [at, value] of flips) bytes[at % bytes.length] = value;
          return cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1));
        }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (bytes) => {
        const summary = `a peer message of ${bytes.length} bytes (${bytes.toString('hex').slice(0, 120)})`;
        let request: PeerRequest;
        try {
          request = decodeRequest(bytes);
        } catch (error) {
          // What the peer port answers a message that does not decode with: KV_BAD_REQUEST, the connection goes on.
          expect(error, summary).toBeInstanceOf(KvError);
          expect((error as KvError).code, summary).toBe('KV_BAD_REQUEST');
          return;
        }
        try {
          await simulation.drive(node.handlePeer(request));
        } catch (error) {
          if (error instanceof KvError) return;
          expect.fail(`${summary}: ${request.type} failed with an unexpected error: ${String(error)}`);
        }
      }),
      { seed, numRuns: Math.ceil(numRuns / 2), endOnFailure: true },
    );
    // The node is still whole after all of it.
    expect((await simulation.drive(app.inject({ method: 'GET', url: '/kv/demo/k' }))).statusCode).toBeLessThan(400);
  });
});
