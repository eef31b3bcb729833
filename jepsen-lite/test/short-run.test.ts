import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeHasReusePort } from '../../src/cli/shards.js';
import { stopRun } from './run-cleanup.js';

/**
 * The harness end to end, short: a real 3-node cluster, the set workload with siblings for about
 * 20 s under partitions and kill -9, then heal, final reads and checkers. Siblings merged by
 * union must lose no acknowledged add. Needs the build (`npm test` runs tsc first).
 */

const root = join(import.meta.dirname, '..', '..');
const runner = join(root, 'dist', 'jepsen-lite', 'src', 'run.js');

async function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * The first of from, from + step, ... below `to` whose `count` ports are free (15 by default: 3
 * nodes, 6 link proxies, spare), so two test runs on one machine do not collide.
 */
async function freeBasePort(from = 18_500, to = 18_600, count = 15, step = 20): Promise<number> {
  for (let base = from; base < to; base += step) {
    let free = true;
    for (let port = base; port < base + count && free; port++) free = await isFree(port);
    if (free) return base;
  }
  throw new Error(`no free port range in ${from}..${to - 1} for the short jepsen-lite run`);
}

/** Runs the runner with `args` to its end; its exit code and the tail of its output. */
async function runToEnd(args: readonly string[], started: (child: ChildProcess) => void): Promise<{ exitCode: number | null; output: string }> {
  const child = spawn(process.execPath, [runner, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  started(child);
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { exitCode, output };
}

describe('a short jepsen-lite run', () => {
  const store = mkdtempSync(join(tmpdir(), 'jepsen-lite-test-'));
  let child: ChildProcess | undefined;

  afterAll(() => {
    // Whatever happened, nothing this test started may outlive it: the runner, then its nodes.
    stopRun(child, store);
    rmSync(store, { recursive: true, force: true });
  });

  it(
    'ends valid with no acknowledged add lost, and writes history, results and report',
    async () => {
      const args = [
        '--workload',
        'set',
        '--nemesis',
        'partition,kill',
        '--nodes',
        '3',
        '--time-limit',
        '20',
        '--concurrency',
        '6',
        '--conflict',
        'siblings',
        '--seed',
        '11',
        '--nemesis-interval',
        '4',
        '--quiet',
        '2',
        '--base-port',
        String(await freeBasePort()),
        '--store',
        store,
      ];
      const { exitCode, output } = await runToEnd(args, (started) => {
        child = started;
      });

      expect(exitCode, output).toBe(0);
      const folder = join(store, 'latest');
      for (const file of ['history.jsonl', 'results.json', 'report.html', 'run.json', 'n1.log']) expect(existsSync(join(folder, file)), file).toBe(true);
      const results = JSON.parse(readFileSync(join(folder, 'results.json'), 'utf8')) as Record<string, unknown>;
      expect(results).toMatchObject({ valid: true, lost: 0, unexpected: 0 });
      expect(results.acknowledged as number).toBeGreaterThan(0);
      const history = readFileSync(join(folder, 'history.jsonl'), 'utf8');
      expect(history).toContain('"process":"nemesis"');
      expect(history).toContain('"f":"final-read"');
      expect(readFileSync(join(folder, 'report.html'), 'utf8')).toContain('<svg');
      expect(output).toContain('valid: true');
      // Finite, so a hung run still ends, and far above an honest run on a slow machine: the runner
      // bounds its own phases; how long it took is no assertion.
    },
    20 * 60_000,
  );
});

/**
 * The watch workload end to end, short: writers on a consistent bucket under partitions and
 * kill -9 while six watchers follow the keys through RingClient.watch() and resume on random
 * nodes; every acknowledged write reaches every watcher once and in order, or a compacted says
 * it may not. Its own port range (22600..22699), so it never meets the set run above.
 */
describe('a short jepsen-lite watch run', () => {
  const store = mkdtempSync(join(tmpdir(), 'jepsen-lite-watch-test-'));
  let child: ChildProcess | undefined;

  afterAll(() => {
    stopRun(child, store);
    rmSync(store, { recursive: true, force: true });
  });

  it(
    'ends valid: no acknowledged write missed, none twice, with events checked',
    async () => {
      const args = [
        '--workload',
        'watch',
        '--nemesis',
        'partition,kill',
        '--nodes',
        '3',
        '--time-limit',
        '15',
        '--concurrency',
        '4',
        '--seed',
        '5',
        '--nemesis-interval',
        '4',
        '--quiet',
        '2',
      ];
      const { exitCode, output } = await runToEnd([...args, '--base-port', String(await freeBasePort(22_600, 22_700)), '--store', store], (started) => {
        child = started;
      });
      expect(exitCode, output).toBe(0);
      const results = JSON.parse(readFileSync(join(store, 'latest', 'results.json'), 'utf8')) as Record<string, unknown>;
      expect(results).toMatchObject({ valid: true, missed: 0, duplicatesOrReordered: 0, wrongValues: 0 });
      expect(results.events as number, 'watch events were checked').toBeGreaterThan(0);
      expect(results.required as number, 'acknowledged writes were required of the watchers').toBeGreaterThan(0);
      expect(readFileSync(join(store, 'latest', 'history.jsonl'), 'utf8')).toContain('"f":"watch-resume"');
    },
    20 * 60_000,
  );
});

/**
 * Hosts of two shards under the membership nemesis, short: 3 nodes of 2 shards (6 ring members)
 * and 2 spare hosts, the client workload for about 20 s while hosts join, leave and are removed
 * as a whole (seed 1 plans join n4, remove n1 via n2, join n5, leave n2). Every change the
 * nemesis made must have succeeded, and the run must end valid with no acknowledged write lost.
 * Its own port range (21600..21799: 5 hosts of 2 shards take 70 ports), apart from the runs above.
 */
describe.skipIf(!nodeHasReusePort())('a short jepsen-lite run of sharded hosts under membership changes', () => {
  const store = mkdtempSync(join(tmpdir(), 'jepsen-lite-shards-test-'));
  let child: ChildProcess | undefined;

  afterAll(() => {
    stopRun(child, store);
    rmSync(store, { recursive: true, force: true });
  });

  it(
    'joins, removes and decommissions whole hosts and ends valid with no acknowledged write lost',
    async () => {
      const args = [
        '--workload',
        'client',
        '--nemesis',
        'membership',
        '--nodes',
        '3',
        '--shards',
        '2',
        '--time-limit',
        '20',
        '--concurrency',
        '4',
        '--seed',
        '1',
        '--nemesis-interval',
        '2.5',
        '--quiet',
        '2',
      ];
      const basePort = await freeBasePort(21_600, 21_800, 70, 100);
      const { exitCode, output } = await runToEnd([...args, '--base-port', String(basePort), '--store', store], (started) => {
        child = started;
      });
      expect(exitCode, output).toBe(0);
      const results = JSON.parse(readFileSync(join(store, 'latest', 'results.json'), 'utf8')) as Record<string, unknown>;
      expect(results).toMatchObject({ valid: true, lost: 0, shards: 2 });
      expect(results.acknowledged as number).toBeGreaterThan(0);
      // The nemesis's own records: each change it started is followed by an info record, with an error when it failed.
      const nemesis = readFileSync(join(store, 'latest', 'history.jsonl'), 'utf8')
        .split('\n')
        .filter((line) => line.includes('"process":"nemesis"'))
        .map((line) => JSON.parse(line) as { type: string; f: string; value?: { kind?: string; action?: string }; error?: string });
      const changes = nemesis.filter((record) => record.type === 'info' && record.f === 'start' && record.value?.kind === 'membership');
      expect(changes.map((record) => record.error).filter((error) => error !== undefined)).toEqual([]);
      expect(changes.map((record) => record.value?.action)).toEqual(expect.arrayContaining(['join', 'remove']));
    },
    20 * 60_000,
  );
});
