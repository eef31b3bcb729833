import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { Pool, request } from 'undici';
import {
  type ServerProcess,
  freePorts,
  isAlive,
  packageRoot,
  removeTemporaryFolder,
  signalGroup,
  startServer,
  stopServer,
  temporaryFolder,
  waitFor,
} from './processes.js';
import { processTicks } from './cpu-accounting.js';

/**
 * Quiet background work and fast start (issue 12), on real processes:
 *
 *   npm run bench:idle                       # 3 nodes, 10,000 keys: idle CPU over 60 s, then a repair after an outage
 *   npm run bench:idle -- --idle-seconds 120
 *   npm run bench:start                      # one node: process start -> first /health 200, with 0 and 100,000 keys
 *   npm run bench:start -- --keys 20000
 *
 * Idle CPU is each node's process CPU time (utime + stime from /proc/PID/stat) over the idle
 * window, in percent of one core. The repair figure is the time from node 3's process start to
 * the moment it holds every key written while it was down (hinted handoff off, so anti-entropy
 * alone brings them). Everything runs on this machine: the loop speed printed first says how fast it was.
 */

const ticksPerSecond = 100;

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? fallback : Number(process.argv[index + 1]);
}

function loopSpeedMs(): number {
  const started = Date.now();
  let total = 0;
  for (let index = 0; index < 2e8; index++) total += index % 7;
  if (total < 0) throw new Error('unreachable');
  return Date.now() - started;
}

interface BenchNode {
  readonly port: number;
  readonly address: string;
  readonly dataDir: string;
  server: ServerProcess | undefined;
  startedAtMs: number;
}

const script = join(packageRoot(), 'bin', 'ringkv.js');

function launch(node: BenchNode, seeds: readonly string[], env: Record<string, string>): void {
  const args = [script, 'start', '--shards', '1', '--host', '127.0.0.1', '--port', String(node.port), '--data', node.dataDir, '--log-level', 'warn'];
  if (seeds.length > 0) args.push('--seeds', seeds.join(','));
  node.startedAtMs = performance.now();
  node.server = startServer(`ringkv ${node.port}`, process.execPath, args, { env: { ...process.env, ...env } });
}

async function healthy(node: BenchNode): Promise<boolean> {
  try {
    const response = await request(`http://${node.address}/health`, { headersTimeout: 1000, bodyTimeout: 1000 });
    await response.body.dump();
    return response.statusCode === 200;
  } catch {
    return false;
  }
}

/** The process CPU time (user + system) of the node when it first answered /health, in ms (10 ms steps). */
let cpuAtHealthMs = 0;

/** Polls /health every 5 ms; answers ms from process start to the first 200 (and notes the CPU time spent by then). */
async function timeToHealthMs(node: BenchNode): Promise<number> {
  const deadline = performance.now() + 120_000;
  while (performance.now() < deadline) {
    if (!isAlive(node.server as ServerProcess)) throw new Error(`node ${node.address} exited: ${node.server?.output.slice(-2000)}`);
    if (await healthy(node)) {
      const elapsed = performance.now() - node.startedAtMs;
      cpuAtHealthMs = (processTicks(node.server?.child.pid) * 1000) / ticksPerSecond;
      return elapsed;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`node ${node.address} never answered /health`);
}

interface Status {
  readonly members: readonly { address: string; status: string }[];
  readonly ring: { next: unknown } | null;
  readonly storage: { keys: number };
  readonly antiEntropy: { exchanges: number; keysRepaired: number; bytesExchanged: number };
}

async function status(node: BenchNode): Promise<Status> {
  const response = await request(`http://${node.address}/status`, { headersTimeout: 5000, bodyTimeout: 5000 });
  return (await response.body.json()) as Status;
}

async function membersUp(node: BenchNode, count: number): Promise<boolean> {
  try {
    const seen = await status(node);
    return seen.ring !== null && seen.ring.next === null && seen.members.filter((member) => member.status === 'up').length === count;
  } catch {
    return false;
  }
}

async function writeKeys(address: string, count: number, prefix: string, w: string): Promise<void> {
  const pool = new Pool(`http://${address}`, { connections: 32 });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++;
      const response = await pool.request({
        method: 'PUT',
        path: `/kv/bench/${prefix}${index}?w=${w}`,
        body: `value-${index}`,
        headers: { 'content-type': 'text/plain' },
      });
      await response.body.dump();
      if (response.statusCode >= 300) throw new Error(`PUT ${prefix}${index} answered ${response.statusCode}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
  await pool.close();
}

const clusterEnv = { RINGKV_CLUSTER_SECRET: 'bench-quiet-secret-0123456789', RINGKV_HINTED_HANDOFF: 'false' };

async function idleSuite(): Promise<void> {
  const keys = flag('keys', 10_000);
  const idleSeconds = flag('idle-seconds', 60);
  const settleSeconds = flag('settle-seconds', 30);
  const folder = temporaryFolder('ringkv-idle-');
  const ports = await freePorts(3);
  const nodes: BenchNode[] = ports.map((port, index) => ({
    port,
    address: `127.0.0.1:${port}`,
    dataDir: join(folder, `node${index + 1}`),
    server: undefined,
    startedAtMs: 0,
  }));
  try {
    launch(nodes[0]!, [], clusterEnv);
    await timeToHealthMs(nodes[0]!);
    for (const node of nodes.slice(1)) launch(node, [nodes[0]!.address], clusterEnv);
    for (const node of nodes) await waitFor(`node ${node.address} sees 3 members up`, 120_000, () => membersUp(node, 3));
    await writeKeys(nodes[0]!.address, keys, 'key-', 'all');
    process.stdout.write(`wrote ${keys} keys (w=all); settling ${settleSeconds} s\n`);
    await new Promise((resolve) => setTimeout(resolve, settleSeconds * 1000));
    const before = nodes.map((node) => processTicks(node.server?.child.pid));
    const exchangesBefore = await Promise.all(nodes.map(async (node) => (await status(node)).antiEntropy));
    const startedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
    const elapsedSeconds = (performance.now() - startedAt) / 1000;
    const after = nodes.map((node) => processTicks(node.server?.child.pid));
    const exchangesAfter = await Promise.all(nodes.map(async (node) => (await status(node)).antiEntropy));
    const percents = nodes.map((_, index) => (((after[index]! - before[index]!) / ticksPerSecond / elapsedSeconds) * 100).toFixed(2));
    process.stdout.write(`idle CPU over ${elapsedSeconds.toFixed(1)} s, % of one core per node: ${percents.join(' / ')}\n`);
    process.stdout.write(
      `anti-entropy during the idle window: exchanges ${exchangesAfter.map((figures, index) => figures.exchanges - exchangesBefore[index]!.exchanges).join(' / ')}, bytes ${exchangesAfter.map((figures, index) => figures.bytesExchanged - exchangesBefore[index]!.bytesExchanged).join(' / ')}\n`,
    );

    // An outage: node 3 is killed, 10,000 keys are written, node 3 comes back.
    const third = nodes[2]!;
    signalGroup(third.server?.child.pid, 'SIGKILL');
    await waitFor('node 3 exits', 30_000, async () => !isAlive(third.server as ServerProcess));
    await waitFor('node 1 sees node 3 down', 120_000, async () =>
      (await status(nodes[0]!)).members.some((member) => member.address === third.address && member.status === 'down'),
    );
    await writeKeys(nodes[0]!.address, keys, 'missed-', '2');
    const expected = (await status(nodes[0]!)).storage.keys;
    launch(third, [nodes[0]!.address], clusterEnv);
    const healthMs = await timeToHealthMs(third);
    await waitFor('node 3 sees 3 members up', 120_000, () => membersUp(third, 3));
    const upMs = performance.now() - third.startedAtMs;
    await waitFor('node 3 holds every key', 300_000, async () => (await status(third)).storage.keys >= expected);
    const repairedMs = performance.now() - third.startedAtMs;
    process.stdout.write(
      `repair after an outage: node 3 answered /health ${healthMs.toFixed(0)} ms after its start, saw its peers up after ${(upMs / 1000).toFixed(1)} s, and held all ${expected} keys (${keys} missed) ${(repairedMs / 1000).toFixed(1)} s after its start\n`,
    );
  } finally {
    await Promise.all(nodes.map(async (node) => (node.server === undefined ? undefined : stopServer(node.server))));
    removeTemporaryFolder(folder, false);
  }
}

/** Milliseconds of importing the node's modules (what `ringkv start` loads before it does anything), in a fresh process. */
function moduleLoadMs(): string {
  const main = join(packageRoot(), 'dist', 'src', 'main.js');
  const script = `const t = performance.now(); const c = process.cpuUsage(); await import(${JSON.stringify(main)}); const u = process.cpuUsage(c); console.log((performance.now() - t).toFixed(0) + ' ms (' + ((u.user + u.system) / 1000).toFixed(0) + ' ms CPU)')`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }).stdout.trim();
}

async function startSuite(): Promise<void> {
  const keyCount = flag('keys', 100_000);
  const folder = temporaryFolder('ringkv-start-');
  const [port] = (await freePorts(1)) as [number];
  const node: BenchNode = { port, address: `127.0.0.1:${port}`, dataDir: join(folder, 'node1'), server: undefined, startedAtMs: 0 };
  const env = { RINGKV_CLUSTER_SECRET: 'bench-start-secret-0123456789' };
  const startOnce = async (label: string): Promise<void> => {
    launch(node, [], env);
    const ms = await timeToHealthMs(node);
    process.stdout.write(`${label}: process start -> first /health 200 in ${ms.toFixed(0)} ms (${cpuAtHealthMs.toFixed(0)} ms of process CPU by then)\n`);
  };
  try {
    const loads = [moduleLoadMs(), moduleLoadMs(), moduleLoadMs()];
    process.stdout.write(`module loading (import of dist/src/main.js in a fresh process): ${loads.join(' / ')}\n`);
    const repeats = flag('repeats', 3);
    await startOnce('fresh data directory');
    for (let run = 0; run < repeats; run++) {
      await stopServer(node.server as ServerProcess);
      await startOnce('0 keys, after a clean stop');
    }
    process.stdout.write(`writing ${keyCount} keys...\n`);
    await writeKeys(node.address, keyCount, 'key-', '1');
    const keysSeen = async (): Promise<number> => (await status(node)).storage.keys;
    for (let run = 0; run < repeats; run++) {
      await stopServer(node.server as ServerProcess);
      await startOnce(`${keyCount} keys, after a clean stop`);
    }
    for (let run = 0; run < repeats; run++) {
      await waitFor('every key counted', 300_000, async () => (await keysSeen()) >= keyCount);
      const killed = node.server as ServerProcess;
      signalGroup(killed.child.pid, 'SIGKILL');
      await waitFor('the node exits', 30_000, async () => !isAlive(killed));
      await startOnce(`${keyCount} keys, after kill -9`);
      const rebuiltFrom = node.startedAtMs;
      await waitFor('the trees are rebuilt (every key counted)', 300_000, async () => (await keysSeen()) >= keyCount);
      process.stdout.write(
        `  every key counted again (trees rebuilt in the background) ${((performance.now() - rebuiltFrom) / 1000).toFixed(1)} s after the start\n`,
      );
    }
  } finally {
    if (node.server !== undefined) await stopServer(node.server);
    removeTemporaryFolder(folder, false);
  }
}

async function main(): Promise<void> {
  process.stdout.write(`loop speed (2e8 iterations of x+=i%7): ${loopSpeedMs()} ms\n`);
  const suite = process.argv[2];
  if (suite === 'idle') await idleSuite();
  else if (suite === 'start') await startSuite();
  else throw new Error('usage: node dist/bench/quiet-node.js idle|start [--keys N] [--idle-seconds S]');
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
