/**
 * Goal: the bench's load generator runs end to end against a real HTTP server and produces a
 * result with every field the reports and bench/results JSON rely on. Not a speed test: no
 * figure is asserted beyond "some operations succeeded".
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCeilingServer } from '../../bench/ceiling-server.js';
import { keyChooser } from '../../bench/key-chooser.js';
import { prefill, runLoad } from '../../bench/load-generator.js';
import { freePort } from '../../bench/processes.js';
import { writeResultJson } from '../../bench/report.js';
import { createDriver } from '../../bench/request-driver.js';

describe('bench load generator (smoke)', () => {
  let folder: string;
  let close: () => Promise<void>;
  let address: string;

  beforeAll(async () => {
    folder = mkdtempSync(join(tmpdir(), 'ringkv-bench-smoke-'));
    const port = await freePort();
    close = await startCeilingServer(port, join(folder, 'db'));
    address = `127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await close?.();
    rmSync(folder, { recursive: true, force: true });
  });

  it('draws key indexes inside the key space for both distributions', () => {
    for (const distribution of ['uniform', 'zipfian'] as const) {
      const chooser = keyChooser(distribution, 1000);
      for (let draw = 0; draw < 10_000; draw++) {
        const index = chooser.next();
        expect(index >= 0 && index < 1000 && Number.isInteger(index)).toBe(true);
      }
    }
  });

  it('prefills, runs a closed-loop mixed workload and an open-loop get workload, and writes JSON with every field', async () => {
    const driver = createDriver('undici', { nodes: [address], value: Buffer.alloc(100, 1), connectionsPerNode: 8, bucket: 'bench', timeoutMs: 5000 }, {});
    try {
      const filled = await prefill(driver, 200, 8, 'smoke', false);
      expect(filled).toMatchObject({ keyCount: 200, errorCount: 0 });

      const closed = await runLoad(driver, {
        workload: 'mixed',
        distribution: 'zipfian',
        keyCount: 200,
        concurrency: 8,
        loop: 'closed',
        durationSeconds: 1,
        warmupSeconds: 0.3,
        readFraction: 0.5,
        label: 'smoke',
        showProgress: false,
      });
      expect(closed.okCount).toBeGreaterThan(0);
      expect(closed.errorCount).toBe(0);
      expect(closed.opsPerSecond).toBeGreaterThan(0);
      expect(Object.keys(closed.latencyByOperation).sort()).toEqual(['get', 'put']);
      for (const field of ['latencyMsP50', 'latencyMsP99', 'latencyMsP999', 'latencyMsMax'] as const) expect(closed.latency[field]).toBeGreaterThan(0);
      expect(closed.latency.latencyMsP50).toBeLessThanOrEqual(closed.latency.latencyMsMax);
      expect(closed.cpu).toHaveProperty('benchPercent');

      const open = await runLoad(driver, {
        workload: 'get',
        distribution: 'uniform',
        keyCount: 200,
        concurrency: 4,
        loop: 'open',
        rateOpsPerSecond: 200,
        durationSeconds: 1,
        warmupSeconds: 0.2,
        readFraction: 0.5,
        label: 'smoke-open',
        showProgress: false,
      });
      expect(open.okCount).toBeGreaterThan(0);
      expect(open.rateOpsPerSecond).toBe(200);

      const file = writeResultJson(folder, 'smoke', { results: [closed, open] });
      const parsed = JSON.parse(readFileSync(file, 'utf8')) as { results: Record<string, unknown>[] };
      for (const result of parsed.results) {
        for (const field of [
          'opsPerSecond',
          'okCount',
          'errorCount',
          'errorsByOutcome',
          'latency',
          'latencyByOperation',
          'cpu',
          'workload',
          'loop',
          'concurrency',
        ]) {
          expect(result).toHaveProperty(field);
        }
      }
    } finally {
      await driver.close();
    }
  });

  it('counts a missing key as a GET 404 error, not a success', async () => {
    const driver = createDriver('undici', { nodes: [address], value: Buffer.alloc(10), connectionsPerNode: 2, bucket: 'empty-bucket', timeoutMs: 5000 }, {});
    try {
      const run = (): ReturnType<typeof runLoad> =>
        runLoad(driver, {
          workload: 'get',
          distribution: 'uniform',
          keyCount: 10,
          concurrency: 2,
          loop: 'closed',
          durationSeconds: 0.3,
          warmupSeconds: 0,
          readFraction: 1,
          label: 'smoke-404',
          showProgress: false,
        });
      // What is checked is how an answer is counted, so the run must have had one: a busy machine
      // can spend the whole 0.3 s window on the first connections (CI once saw no operation at all).
      const deadline = Date.now() + 30_000;
      let result = await run();
      while (result.okCount + result.errorCount === 0 && Date.now() < deadline) result = await run();
      expect(result.errorCount, 'runs of 0.3 s answered nothing for 30 s').toBeGreaterThan(0);
      expect(result.okCount).toBe(0);
      expect(result.errorsByOutcome['GET 404']).toBe(result.errorCount);
    } finally {
      await driver.close();
    }
  });
});
