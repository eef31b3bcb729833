import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/index.js';
import {
  type NodeProcess,
  call,
  freePorts,
  killNode,
  pollDeadlineMs,
  processTestTimeoutMs,
  startNode,
  temporaryFolder,
  waitFor,
  waitForMembersUp,
  waitHealthy,
} from '../integration/processes.js';
import { ensureDebianPackage } from '../support/debian-packages.js';

/**
 * Goal: the dashboard of a real 2-node cluster, loaded in headless Chromium, shows every member
 * up, the partitions each owns, the LevelDB levels, and request rates that move when the
 * cluster takes writes; it runs with no script error or CSP violation. The screenshot is kept
 * in test-artifacts/dashboard.png for a person to look at.
 */

const chromiumPath = '/usr/bin/chromium';
const artifacts = join(import.meta.dirname, '..', '..', 'test-artifacts');
/** Generous: a node starting on a busy machine can take many seconds; the wait ends as soon as it is up. */
const startDeadlineMs = pollDeadlineMs;
// Debian's chromium, installed here when missing (CI runs as root on a fresh machine); never a downloaded browser build.
const skipReason = ensureDebianPackage(chromiumPath, 'chromium');
if (skipReason !== undefined) console.warn(`skipping the dashboard browser test: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('the dashboard in headless Chromium', () => {
  const folder = temporaryFolder('ringkv-ui-');
  const profile = temporaryFolder('ringkv-ui-chromium-');
  const nodes: NodeProcess[] = [];
  const problems: string[] = [];
  let context: BrowserContext | undefined;
  let page: Page;

  beforeAll(async () => {
    const env = { RINGKV_CLUSTER_SECRET: 'dashboard-secret-0123456789abcdef', RINGKV_GOSSIP_INTERVAL_MS: '200' };
    const ports = await freePorts(2);
    nodes.push(startNode(ports[0]!, join(folder.path, 'node1'), { env }));
    await waitHealthy(nodes[0]!, startDeadlineMs);
    nodes.push(startNode(ports[1]!, join(folder.path, 'node2'), { env, seeds: [nodes[0]!.address] }));
    await waitHealthy(nodes[1]!, startDeadlineMs);
    for (const node of nodes) await waitForMembersUp(node, 2);
    context = await chromium.launchPersistentContext(profile.path, {
      executablePath: chromiumPath,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      // The size a new user's laptop window had when the owner table was clipped.
      viewport: { width: 1400, height: 1000 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
    });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
  }, processTestTimeoutMs);

  afterAll(async () => {
    await context?.close();
    for (const node of nodes) await killNode(node, 'SIGTERM');
    folder.remove();
    profile.remove();
  }, processTestTimeoutMs);

  /** The attribute `name` of every element `selector` matches. */
  const attributes = async (selector: string, name: string): Promise<(string | null)[]> =>
    Promise.all((await page.locator(selector).all()).map((located) => located.getAttribute(name)));
  const texts = async (selector: string): Promise<string[]> => page.locator(selector).allTextContents();

  it(
    'lists every member up and the partitions each owns',
    async () => {
      await page.goto(`http://${nodes[0]!.address}/ui`);
      await waitFor('the members table to list both nodes up', pollDeadlineMs, async (see) => {
        const statuses = await attributes('[data-testid=member-row]', 'data-status');
        see(`member rows with status ${JSON.stringify(statuses)}`);
        return statuses.length === nodes.length && statuses.every((status) => status === 'up');
      });
      const addresses = await attributes('[data-testid=member-row]', 'data-address');
      expect(addresses.sort()).toEqual(nodes.map((node) => node.address).sort());
      expect(await page.textContent('[data-testid=live]')).toBe('live');

      const partitions = (await texts('[data-testid=ring-partitions]')).map(Number);
      expect(partitions).toHaveLength(2);
      expect(partitions.every((count) => count > 0)).toBe(true);
      expect(partitions.reduce((sum, count) => sum + count, 0)).toBe(256);
      expect(await page.locator('#ring-chart path').count()).toBeGreaterThan(1);
    },
    processTestTimeoutMs,
  );

  it(
    'shows request rates that rise with writes, and the LevelDB levels once tables exist',
    async () => {
      expect(Number(await page.textContent('[data-testid=rate-put]'))).toBe(0);
      const client = new RingClient({ nodes: [nodes[0]!.address] });
      let puts = 0;
      let gets = 0;
      try {
        // The rate looks at the last 10 s only: on a machine slow enough that the page refreshes more
        // than 10 s after a burst, the rate is back to 0, so another burst is sent until one shows.
        await waitFor('the put rate to rise', pollDeadlineMs, async (see) => {
          const rate = Number(await page.textContent('[data-testid=rate-put]'));
          see(`a put rate of ${rate} after ${puts} puts`);
          if (rate > 0) return true;
          // All at once, so they land well inside the 10 s the rate looks at.
          await Promise.all(Array.from({ length: 40 }, async (_, index) => client.put('dashboard', `key-${puts + index}`, `value-${index}`, { w: 2 })));
          puts += 40;
          if (gets === 0) {
            await Promise.all(Array.from({ length: 20 }, async (_, index) => client.get('dashboard', `key-${index}`)));
            gets = 20;
          }
          return false;
        });
      } finally {
        await client.close();
      }
      // Every request of the last minute is counted; the rate looks at the last 10 s only, so it may already be falling.
      await waitFor(`${puts} puts and ${gets} gets to be counted`, pollDeadlineMs, async (see) => {
        const counted = { put: await page.textContent('[data-testid=count-put]'), get: await page.textContent('[data-testid=count-get]') };
        see(counted);
        return counted.put === String(puts) && counted.get === String(gets);
      });
      // The rate is the requests of the last 10 s divided by 10: at most all of them.
      expect(Number(await page.textContent('[data-testid=rate-put]'))).toBeLessThanOrEqual(puts / 10);
      // A manual compaction flushes the memtable, so the writes show up as table files.
      expect((await call(nodes[0]!, 'POST', '/admin/compact')).status).toBe(200);
      await waitFor('a LevelDB level with table files', pollDeadlineMs, async (see) => {
        const files = await attributes('[data-testid=storage-level]', 'data-files');
        see(`table files per level ${JSON.stringify(files)}`);
        return files.some((count) => Number(count) > 0);
      });
      expect(await page.locator('[data-testid=storage-level]').count()).toBeGreaterThanOrEqual(7);
      expect(await page.textContent('[data-testid=hints-pending]')).toContain('0');
      expect(await page.textContent('[data-testid=anti-entropy-state]')).toMatch(/on|off|n\/a/);

      // At 1400x1000 nothing is clipped (no card scrolls sideways) and every figure is labelled in words, not a camelCase field name.
      const clipped = await page.$$eval('.card', (cards) =>
        cards
          .filter((card) => card.scrollWidth > card.clientWidth)
          .map((card) => `${card.getAttribute('data-testid')}: ${card.scrollWidth} > ${card.clientWidth}`),
      );
      expect(clipped).toEqual([]);
      const labels = [...(await texts('.figure .label')), ...(await texts('th')), ...(await texts('#ring-note'))];
      expect(labels.length).toBeGreaterThan(10);
      expect(labels.filter((label) => /[a-z][A-Z]/.test(label))).toEqual([]);

      mkdirSync(artifacts, { recursive: true });
      await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
      expect(problems).toEqual([]);
    },
    processTestTimeoutMs,
  );
});
