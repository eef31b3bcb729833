import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { KvService, NodeStatus } from '../engine/kv-service.js';
import { type RequestSummary, RequestWindow } from './request-window.js';
import { dashboardSchemas } from './route-schemas.js';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What GET /ui/data.json answers: everything the dashboard draws, in one request per refresh. */
export interface DashboardData {
  readonly generatedAtMs: number;
  readonly status: NodeStatus;
  readonly requests: RequestSummary;
}

/** The /kv route pattern whose answers the dashboard counts. */
const kvRoute = '/kv/:bucket/:key';

/**
 * The page runs only its own script and style, and talks only to its own node; no framing, so
 * another site cannot overlay it. Inline style changes made from the script (bar widths) are
 * CSSOM, which a CSP does not block.
 */
const securityHeaders = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

function operationOf(request: FastifyRequest): string {
  if (request.method === 'PUT') return 'put';
  if (request.method === 'DELETE') return 'delete';
  return (request.query as Record<string, unknown>).local === 'true' ? 'get_local' : 'get';
}

/**
 * The folder of the dashboard's files (src/http/ui: index.html, app.css, app.js), served as they
 * are: beside this module under vitest, and in the package's src/http/ui when this module runs
 * from dist/src/http, so a fresh clone's `npm run build` needs no copy step and the package
 * carries them. No CDN: the page works on a machine without internet access. The script never
 * uses innerHTML with data (member addresses come from the network), and the page is served with
 * a Content-Security-Policy that allows only its own script and style.
 */
function dashboardFolder(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    for (const candidate of [join(folder, 'ui'), join(folder, 'src', 'http', 'ui')]) if (existsSync(join(candidate, 'index.html'))) return candidate;
    const parent = dirname(folder);
    if (parent === folder)
      throw new Error(`the dashboard's files (src/http/ui/index.html) are missing above ${fileURLToPath(import.meta.url)}; reinstall ringkv`);
    folder = parent;
  }
}

/** The dashboard's three files, read once (they are small and never change while a node runs). */
function readDashboard(): { html: string; css: string; script: string } {
  const folder = dashboardFolder();
  const read = (name: string): string => readFileSync(join(folder, name), 'utf8');
  return { html: read('index.html'), css: read('app.css'), script: read('app.js') };
}

function sendAsset(reply: FastifyReply, contentType: string, body: string): FastifyReply {
  return reply.headers(securityHeaders).type(contentType).send(body);
}

/**
 * Registers the dashboard: GET /ui (the page), /ui/app.js, /ui/app.css and /ui/data.json (this
 * node's status and its request rates and latency percentiles over the last minute), and the
 * hook that feeds every /kv answer into the rolling window the figures come from.
 */
export function registerDashboard(app: FastifyInstance, dependencies: { readonly service: KvService; readonly nowMs?: () => number }): RequestWindow {
  const { service } = dependencies;
  const nowMs = dependencies.nowMs ?? Date.now;
  const requests = new RequestWindow();
  app.addHook('onResponse', async (request, reply) => {
    if (request.routeOptions.url === kvRoute) requests.record(operationOf(request), reply.elapsedTime, reply.statusCode, nowMs());
  });

  const { html, css, script } = readDashboard();
  const page = async (_request: FastifyRequest, reply: FastifyReply) => sendAsset(reply, 'text/html; charset=utf-8', html);
  app.get('/ui', { schema: dashboardSchemas.page }, page);
  app.get('/ui/', { schema: { ...dashboardSchemas.page, hide: true } }, page);
  app.get('/ui/app.js', { schema: dashboardSchemas.script }, async (_request, reply) => sendAsset(reply, 'text/javascript; charset=utf-8', script));
  app.get('/ui/app.css', { schema: dashboardSchemas.style }, async (_request, reply) => sendAsset(reply, 'text/css; charset=utf-8', css));
  app.get('/ui/data.json', { schema: dashboardSchemas.data }, async (_request, reply) => {
    const data: DashboardData = { generatedAtMs: nowMs(), status: await service.status(), requests: requests.summary(nowMs()) };
    return reply.header('cache-control', 'no-store').type('application/json; charset=utf-8').send(data);
  });
  return requests;
}
