import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { isAlive, stopRun } from './run-cleanup.js';
import { waitFor } from '../../test/integration/processes.js';
import { leftoverPatterns, runPrefixBase, runSubnet } from '../src/netns-run.js';
import { ensureNamespaceTools, removeLeftovers } from '../src/netns.js';

/**
 * `--net netns` end to end, and its cleanup on Ctrl-C: a real 3-node run in network namespaces
 * (the harness reaching the nodes over the bridge), interrupted with SIGINT once the workload is
 * running and the nemesis has struck. Afterwards no namespace, root veth, /etc/netns folder or
 * node process of the run may be left, and neither may the stale namespace a "crashed earlier run"
 * left, which the run must remove at its start. Needs root (installs iproute2 and iptables when
 * missing); skipped with the reason printed otherwise. Bounded: it stops the run itself, once the
 * first fault has started (about 10 to 30 s in all).
 */

const root = join(import.meta.dirname, '..', '..');
const runner = join(root, 'dist', 'jepsen-lite', 'src', 'run.js');

const problem = ensureNamespaceTools();
if (problem !== undefined) console.log(`skipping the jepsen-lite --net netns test: ${problem}`);

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'])
    .toString('utf8')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.length > 0);
}

function links(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'])
    .toString('utf8')
    .split('\n')
    .map((line) => (line.split(': ')[1] ?? '').split('@')[0] ?? '')
    .filter((name) => name.length > 0);
}

/** A base port whose names and subnet no one on this machine uses now, so parallel test runs do not meet. */
function unusedBasePort(): number {
  const addresses = execFileSync('ip', ['-4', '-o', 'addr', 'show']).toString('utf8') + execFileSync('ip', ['-4', 'route', 'show']).toString('utf8');
  for (let attempt = 0; attempt < 100; attempt++) {
    const base = 19_000 + Math.floor(Math.random() * 256);
    if (namespaces().some((name) => name.startsWith(runPrefixBase(base)))) continue;
    if (addresses.includes(`${runSubnet(base)}.`)) continue;
    return base;
  }
  throw new Error('no unused base port in 19000..19255 for the netns run');
}

describe.skipIf(problem !== undefined)('a jepsen-lite run in network namespaces', () => {
  const store = mkdtempSync(join(tmpdir(), 'jepsen-lite-netns-'));
  const basePort = problem === undefined ? unusedBasePort() : 0;
  const patterns = leftoverPatterns(basePort);
  let child: ChildProcess | undefined;
  let output = '';

  afterAll(() => {
    // Whatever happened, nothing this test started may outlive it: the runner, its nodes, its namespaces.
    stopRun(child, store);
    removeLeftovers(patterns.namespaces, patterns.links);
    rmSync(store, { recursive: true, force: true });
  });

  it(
    "reaches the nodes, and on SIGINT mid-run removes every namespace, link and process, and an earlier run's leftover",
    async () => {
      // What a crashed earlier run with this base port would have left.
      const stale = `${runPrefixBase(basePort)}fff-h1`;
      execFileSync('ip', ['netns', 'add', stale]);
      expect(namespaces()).toContain(stale);

      const args = [
        runner,
        '--net',
        'netns',
        '--workload',
        'set',
        '--nemesis',
        'partition',
        '--nodes',
        '3',
        '--time-limit',
        '300',
        '--concurrency',
        '4',
        '--seed',
        '5',
        '--nemesis-interval',
        '1',
        '--base-port',
        String(basePort),
        '--store',
        store,
      ];
      child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const running = child;
      const keep = (chunk: Buffer): void => {
        output = (output + chunk.toString('utf8')).slice(-20_000);
      };
      running.stdout?.on('data', keep);
      running.stderr?.on('data', keep);
      const exited = new Promise<number | null>((resolve) => running.once('exit', (code) => resolve(code)));

      // Mid-run: clients on the machine's namespace have had operations acknowledged by nodes in
      // theirs, and the nemesis has started a partition (iptables inside the namespaces).
      await waitFor(
        () => `the netns run to acknowledge operations and start a partition; output so far:\n${output}`,
        5 * 60_000,
        async () => running.exitCode !== null || (/nemesis: start partition/.test(output) && /\] ok [1-9]\d*/.test(output)),
      );
      expect(running.exitCode, `the run ended before it was interrupted:\n${output}`).toBeNull();
      const prefix = /network namespaces (jl\d+[0-9a-f]{3})-h1/.exec(output)?.[1];
      expect(prefix, output).toBeDefined();
      const ours = namespaces().filter((name) => name.startsWith(`${prefix}-`));
      expect(ours.length, ours.join(',')).toBe(4); // the switch and three hosts
      expect(links()).toContain(`${prefix}r`);
      expect(namespaces()).not.toContain(stale);
      expect(output).toContain(`namespace ${stale}`);

      running.kill('SIGINT');
      const code = await exited;
      // Checked at once: the run's watchdog would only clean up a second or more after the runner is gone.
      const left = namespaces().filter((name) => patterns.namespaces.test(name));
      const leftLinks = links().filter((name) => patterns.links.test(name));
      const leftEtc = existsSync('/etc/netns') ? readdirSync('/etc/netns').filter((name) => patterns.namespaces.test(name)) : [];
      expect(code, output).toBe(130);
      expect(output).toContain('SIGINT: stopping every node');
      expect(left, output).toEqual([]);
      expect(leftLinks).toEqual([]);
      expect(leftEtc).toEqual([]);
      const run = JSON.parse(readFileSync(join(store, 'latest', 'run.json'), 'utf8')) as { pids: { pids: number[] }[]; interruptedBy?: string };
      expect(run.interruptedBy).toBe('SIGINT');
      const pids = run.pids.flatMap((node) => node.pids);
      expect(pids.length).toBeGreaterThanOrEqual(3);
      // SIGKILLed by the runner; the kernel takes a moment to end them and init to reap them.
      await waitFor(
        () => `the run's node processes to be gone; alive: ${pids.filter(isAlive).join(', ')}`,
        60_000,
        async () => pids.filter(isAlive).length === 0,
      );
    },
    20 * 60_000,
  );
});
