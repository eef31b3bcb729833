import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { RequestWindow } from '../../src/http/request-window.js';
import type { DashboardData } from '../../src/http/ui-route.js';
import { fakeStatus } from './fake-service.js';
import { appHarness } from './app-harness.js';

/**
 * Goal: the dashboard is served from the package itself (no CDN, a strict CSP), its data
 * endpoint carries the node's status and the request figures of the last minute, it is
 * protected exactly as auth.* says, and the rolling window computes rates and percentiles right.
 */

const start = appHarness();

describe('the dashboard assets', () => {
  it('serves the page with its own script and style only, under a CSP that forbids anything else', async () => {
    const { app } = await start();
    const page = await app.inject({ method: 'GET', url: '/ui' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.headers['content-security-policy']).toContain("default-src 'none'");
    expect(page.body).toContain('<script type="module" src="/ui/app.js">');
    expect(page.body).toContain('href="/ui/app.css"');
    expect((await app.inject({ method: 'GET', url: '/ui/' })).body).toBe(page.body);

    const script = await app.inject({ method: 'GET', url: '/ui/app.js' });
    expect(script.headers['content-type']).toBe('text/javascript; charset=utf-8');
    const style = await app.inject({ method: 'GET', url: '/ui/app.css' });
    expect(style.headers['content-type']).toBe('text/css; charset=utf-8');
    // No CDN, no remote font: the only URL anywhere is the SVG namespace name, which is never fetched.
    for (const body of [page.body, script.body, style.body]) {
      expect(body.replaceAll('http://www.w3.org/2000/svg', '')).not.toMatch(/https?:\/\/|\/\/cdn|@import/);
    }
    // The script compiles, and never writes HTML from data.
    expect(() => new Script(script.body)).not.toThrow();
    expect(script.body).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  it('answers /ui/data.json with the status and the request figures of the last minute', async () => {
    const { app } = await start();
    for (let index = 0; index < 3; index++) await app.inject({ method: 'PUT', url: `/kv/demo/k${index}`, payload: 'v' });
    await app.inject({ method: 'GET', url: '/kv/demo/k0' });
    await app.inject({ method: 'GET', url: '/kv/demo/missing' });
    const response = await app.inject({ method: 'GET', url: '/ui/data.json' });
    expect(response.statusCode).toBe(200);
    expect(response.headers['cache-control']).toBe('no-store');
    const data = response.json<DashboardData>();
    expect(data.status).toEqual(JSON.parse(JSON.stringify(fakeStatus)));
    expect(data.requests.operations.put?.count).toBe(3);
    expect(data.requests.operations.get?.count).toBe(2);
    expect(data.requests.operations.get?.errors).toBe(0);
    expect(data.requests.operations.all?.count).toBe(5);
    expect(data.requests.operations.all?.ratePerSecond).toBe(0.5);
    expect(data.requests.operations.put?.latencyMsP99).toBeGreaterThan(0);
    expect(data.requests.perSecond.reduce((sum, count) => sum + count, 0)).toBe(5);
    // Dashboard, status and metrics requests are not client traffic and are not counted.
    const again = (await app.inject({ method: 'GET', url: '/ui/data.json' })).json<DashboardData>();
    expect(again.requests.operations.all?.count).toBe(5);
  });
});

describe('the dashboard with access control', () => {
  const token = 'dashboard-token-0123456789';
  const tokens = [{ token, role: 'read-only' }];

  it('stays open when only client traffic is protected', async () => {
    const { app } = await start({ auth: { enabled: true, tokens } });
    expect((await app.inject({ method: 'GET', url: '/ui' })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/ui/data.json' })).statusCode).toBe(200);
  });

  it('asks a browser for the token with a basic-auth challenge when protectUi is set, and accepts it as the password', async () => {
    const { app } = await start({ auth: { enabled: true, tokens, protectUi: true } });
    const refused = await app.inject({ method: 'GET', url: '/ui' });
    expect(refused.statusCode).toBe(401);
    expect(refused.json<{ error: { code: string } }>().error.code).toBe('KV_UNAUTHORIZED');
    expect(refused.headers['www-authenticate']).toBe('Basic realm="ringkv dashboard", charset="UTF-8"');
    const basic = { authorization: `Basic ${Buffer.from(`admin:${token}`).toString('base64')}` };
    expect((await app.inject({ method: 'GET', url: '/ui', headers: basic })).statusCode).toBe(200);
    expect((await app.inject({ method: 'GET', url: '/ui/data.json', headers: basic })).statusCode).toBe(200);
  });

  it('protects the dashboard whenever /status or /metrics is, since it shows their figures', async () => {
    for (const flag of ['protectStatus', 'protectMetrics']) {
      const { app } = await start({ auth: { enabled: true, tokens, [flag]: true } });
      expect((await app.inject({ method: 'GET', url: '/ui/data.json' })).statusCode, flag).toBe(401);
      expect((await app.inject({ method: 'GET', url: '/ui/data.json', headers: { authorization: `Bearer ${token}` } })).statusCode, flag).toBe(200);
    }
  });
});

describe('the rolling request window', () => {
  const second = 1_000;
  const start = 1_700_000_000_000;

  it('computes the rate over the last rateSeconds and percentiles over the window, within 0.1%', () => {
    const window = new RequestWindow(60, 10);
    // 100 puts in one second taking 1..100 ms, and 20 gets 30 s earlier.
    for (let index = 1; index <= 100; index++) window.record('put', index, 204, start + 50 * second);
    for (let index = 0; index < 20; index++) window.record('get', 2, index === 0 ? 504 : 200, start + 20 * second);
    const summary = window.summary(start + 50 * second + 500);
    const put = summary.operations.put;
    expect(put).toMatchObject({ count: 100, errors: 0, ratePerSecond: 10 });
    // The HDR histogram keeps three significant digits: each figure is within 0.1% of the exact one.
    const exact = { latencyMsP50: 50, latencyMsP95: 95, latencyMsP99: 99, latencyMsMax: 100 } as const;
    for (const [figure, exactMs] of Object.entries(exact)) {
      const measured = put?.[figure as keyof typeof exact];
      expect(Math.abs((measured ?? Number.NaN) - exactMs) / exactMs, `${figure} was ${String(measured)}, exact ${exactMs}`).toBeLessThanOrEqual(0.001);
    }
    expect(summary.operations.get).toMatchObject({ count: 20, errors: 1, ratePerSecond: 0 });
    expect(summary.operations.all?.count).toBe(120);
    expect(summary.perSecond).toHaveLength(60);
    expect(summary.perSecond[59]).toBe(100);
    expect(summary.perSecond[29]).toBe(20);
  });

  it('forgets requests older than the window, including slots reused by a later second', () => {
    const window = new RequestWindow(60, 10);
    window.record('put', 5, 204, start);
    expect(window.summary(start + 59 * second).operations.put?.count).toBe(1);
    expect(window.summary(start + 60 * second).operations.put).toBeUndefined();
    window.record('get', 1, 200, start + 60 * second);
    const later = window.summary(start + 60 * second);
    expect(later.operations.put).toBeUndefined();
    expect(later.operations.get?.count).toBe(1);
  });

  it('counts every request in the percentiles however many arrive in a second', () => {
    const window = new RequestWindow(60, 10);
    // 10,000 fast gets and 200 slow ones (2%) in the same second: the slow ones set p99 and max.
    for (let index = 0; index < 10_000; index++) window.record('get', 1, 200, start);
    for (let index = 0; index < 200; index++) window.record('get', 500, 200, start);
    const summary = window.summary(start);
    expect(summary.operations.get?.count).toBe(10_200);
    expect(summary.operations.get?.ratePerSecond).toBe(1020);
    expect(summary.operations.get?.latencyMsP50).toBeCloseTo(1, 2);
    expect(summary.operations.get?.latencyMsP95).toBeCloseTo(1, 2);
    expect(Math.abs((summary.operations.get?.latencyMsP99 ?? 0) - 500) / 500).toBeLessThanOrEqual(0.001);
    expect(Math.abs((summary.operations.get?.latencyMsMax ?? 0) - 500) / 500).toBeLessThanOrEqual(0.001);
  });
});
