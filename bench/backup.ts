/**
 * `npm run bench:backup -- [options]`: what `ringkv backup` and `ringkv restore` cost and how fast
 * they are (issue 23). It starts a 3-node cluster (n_val=3, lww buckets) on fixed ports, loads
 * --keys keys, times an unthrottled `ringkv backup` of it (keys/s, MB/s), measures the foreground
 * GET/PUT p99 at a fixed modest open-loop rate without a backup and with one running at each
 * --throttles rate (a backup is restarted into a new directory whenever one finishes, so one runs
 * through the whole window), then restores the backup into a fresh 4-node cluster and times that
 * (keys/s), checking a sample of keys there. One JSON summary goes to stdout and bench/results/.
 *
 * `--restore-only DIR` skips everything but the restore of an existing backup (a kept one, see
 * --keep-backup), to compare restore code on the same data.
 *
 * The processes are real (`ringkv start`, `ringkv backup`, `ringkv restore` from bin/), on
 * --base-port and up: the source nodes take base..base+2, the target nodes base+10..base+13, and
 * each node's peer port is its port + --peer-offset.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, InvalidArgumentError } from 'commander';
import { request } from 'undici';
import { keyName } from './key-chooser.js';
import { type LoadResult, prefill, runLoad } from './load-generator.js';
import { createDriver } from './request-driver.js';
import { type ServerProcess, packageRoot, removeTemporaryFolder, startServer, stopAll, temporaryFolder } from './processes.js';
import { machineInfo, machineLine, writeResultJson } from './report.js';
import { type RunningTarget, startRingkv, stopTarget } from './targets.js';

const positiveInteger = (text: string): number => {
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`expected a positive integer, got '${text}'`);
  return value;
};
const rateList = (text: string): number[] => {
  const values = text.split(',').map((item) => Number(item.trim()));
  if (values.length === 0 || values.some((value) => !Number.isFinite(value) || value < 0))
    throw new InvalidArgumentError(`expected MB/s rates >= 0 separated by commas (0: unthrottled), got '${text}'`);
  return values;
};

interface Options {
  keys: number;
  valueSize: number;
  loadConcurrency: number;
  fgRate: number;
  fgSeconds: number;
  fgWarmup: number;
  throttles: number[];
  rounds: number;
  basePort: number;
  peerOffset: number;
  keepBackup?: string;
  restoreOnly?: string;
  resultsDir: string;
}

/** The time of the machine-speed loop of bench/RESULTS.md (`node -e 'let s=0;for(let i=0;i<2e8;i++)s+=i%7'`), in ms. */
function machineLoopMs(): number {
  const start = performance.now();
  let sum = 0;
  for (let index = 0; index < 2e8; index++) sum += index % 7;
  if (sum < 0) throw new Error('unreachable');
  return Math.round(performance.now() - start);
}

const bin = (): string => join(packageRoot(), 'bin', 'ringkv.js');
const say = (line: string): void => void process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);

/** A `ringkv` command as a registered process (stopped with the bench on Ctrl-C), its stderr progress echoed at most every 10 s. */
function ringkvCommand(name: string, args: readonly string[]): { server: ServerProcess; exit: Promise<number | null> } {
  const server = startServer(name, process.execPath, [bin(), ...args]);
  const exit = once(server.child, 'exit').then(([code]) => code as number | null);
  let lastShownMs = 0;
  server.child.stderr?.on('data', (chunk: Buffer) => {
    const now = performance.now();
    if (now - lastShownMs < 10_000) return;
    lastShownMs = now;
    const lines = chunk.toString('utf8').trim().split('\n');
    say(`${name}: ${lines[lines.length - 1]}`);
  });
  return { server, exit };
}

async function runToEnd(name: string, args: readonly string[]): Promise<number> {
  const started = performance.now();
  const { server, exit } = ringkvCommand(name, args);
  const code = await exit;
  if (code !== 0) throw new Error(`${name} exited with ${code}: ${server.output.slice(-3000)}`);
  return (performance.now() - started) / 1000;
}

interface ManifestShape {
  readonly finishedAtMs: number | null;
  readonly partitions: Record<string, { bytes: number; objects: number; reapedTombstones: number }>;
}

function manifestTotals(directory: string): { objects: number; bytes: number; partitions: number } {
  const path = join(directory, 'manifest.json');
  if (!existsSync(path)) return { objects: 0, bytes: 0, partitions: 0 };
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as ManifestShape;
  const entries = Object.values(manifest.partitions);
  return {
    objects: entries.reduce((sum, entry) => sum + entry.objects, 0),
    bytes: entries.reduce((sum, entry) => sum + entry.bytes, 0),
    partitions: entries.length,
  };
}

const ports = (options: Options, first: number, count: number): number[] => Array.from({ length: count }, (_, index) => options.basePort + first + index);

async function startCluster(options: Options, name: string, first: number, count: number, dataRoot: string): Promise<RunningTarget> {
  return startRingkv({ name, nodeCount: count, nVal: 3, dataRoot, ports: ports(options, first, count), config: { peerPortOffset: options.peerOffset } });
}

/** Foreground load: a fixed open-loop rate of half GETs, half PUTs (r=2, w=2) over every loaded key. */
async function foreground(target: RunningTarget, options: Options, label: string, keyCount: number): Promise<LoadResult> {
  const driver = createDriver(
    'undici',
    { nodes: target.nodes, value: randomBytes(options.valueSize), connectionsPerNode: 32, bucket: 'bench', timeoutMs: 60_000 },
    { r: 2, w: 2 },
  );
  try {
    return await runLoad(driver, {
      workload: 'mixed',
      distribution: 'uniform',
      keyCount,
      concurrency: 32,
      loop: 'open',
      rateOpsPerSecond: options.fgRate,
      durationSeconds: options.fgSeconds,
      warmupSeconds: options.fgWarmup,
      readFraction: 0.5,
      label,
      showProgress: false,
      serverPids: target.processes.map((server) => server.child.pid),
    });
  } finally {
    await driver.close();
  }
}

/** Backups at `rate` MB/s, one after another into new directories, until `stop` resolves; answers what they copied. */
async function backupsUntil(
  stop: Promise<unknown>,
  target: RunningTarget,
  rate: number,
  root: string,
): Promise<{ runs: number; finished: number; bytes: number; objects: number }> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  let runs = 0;
  let finished = 0;
  let bytes = 0;
  let objects = 0;
  while (!stopped) {
    const directory = join(root, `window-${rate}-${runs++}`);
    const { server, exit } = ringkvCommand(`backup --rate ${rate}`, ['backup', '--to', directory, '--node', target.nodes[0]!, '--rate', String(rate)]);
    await Promise.race([exit, stop]);
    if (stopped) {
      server.child.kill('SIGKILL');
      await exit;
    } else if ((await exit) === 0) finished += 1;
    else throw new Error(`a backup during the foreground load failed: ${server.output.slice(-3000)}`);
    const totals = manifestTotals(directory);
    bytes += totals.bytes;
    objects += totals.objects;
    rmSync(directory, { recursive: true, force: true });
  }
  return { runs, finished, bytes, objects };
}

function p99s(result: LoadResult): { opsPerSecond: number; getP99Ms: number | null; putP99Ms: number | null; allP99Ms: number; errors: number } {
  return {
    opsPerSecond: Math.round(result.opsPerSecond),
    getP99Ms: result.latencyByOperation.get?.latencyMsP99 ?? null,
    putP99Ms: result.latencyByOperation.put?.latencyMsP99 ?? null,
    allP99Ms: result.latency.latencyMsP99,
    errors: result.errorCount,
  };
}

/** Restores `directory` into a fresh 4-node cluster; checks that sampled keys are there. */
async function restorePhase(options: Options, directory: string, dataRoot: string, keyCount: number): Promise<Record<string, unknown>> {
  const target = await startCluster(options, 'target', 10, 4, dataRoot);
  try {
    const totals = manifestTotals(directory);
    say(`restore: ${totals.objects} objects (${(totals.bytes / 1e6).toFixed(1)} MB) into a fresh 4-node cluster, unthrottled`);
    const seconds = await runToEnd('restore', ['restore', '--from', directory, '--node', target.nodes[0]!, '--rate', '0']);
    // A sample of the loaded keys, read with r=all: a restore that dropped keys fails here.
    const sample = Math.min(keyCount, 500);
    let missing = 0;
    for (let index = 0; index < sample; index++) {
      const keyIndex = Math.floor((index * keyCount) / sample);
      const response = await request(`http://${target.nodes[index % target.nodes.length]!}/kv/bench/${keyName(keyIndex)}?r=all`);
      await response.body.dump();
      if (response.statusCode !== 200) missing += 1;
    }
    if (missing > 0) throw new Error(`after the restore, ${missing} of ${sample} sampled keys were not found with r=all`);
    const result = {
      objects: totals.objects,
      bytes: totals.bytes,
      seconds: round(seconds),
      keysPerSecond: Math.round(totals.objects / seconds),
      megabytesPerSecond: round(totals.bytes / 1e6 / seconds),
      sampledKeysFound: sample,
    };
    say(`restore: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await stopTarget(target);
  }
}

const round = (value: number): number => Math.round(value * 10) / 10;

async function main(options: Options): Promise<void> {
  const root = packageRoot();
  const loopMs = machineLoopMs();
  say(`machine-speed loop (2e8 iterations): ${loopMs} ms`);
  const dataRoot = temporaryFolder('ringkv-bench-backup-');
  const summary: Record<string, unknown> = {
    command: `npm run bench:backup -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: machineLine(machineInfo(root)),
    machineLoopMs: loopMs,
    options,
  };
  try {
    if (options.restoreOnly !== undefined) {
      const directory = resolve(options.restoreOnly);
      summary.restore = await restorePhase(options, directory, dataRoot, manifestTotals(directory).objects);
    } else {
      const source = await startCluster(options, 'source', 0, 3, dataRoot);
      let backupDirectory = '';
      try {
        // Loading: w=1 (the coordinator answers after one replica; all three still write) with many clients.
        say(`loading ${options.keys} keys of ${options.valueSize} bytes with ${options.loadConcurrency} clients, w=1`);
        const loader = createDriver(
          'undici',
          { nodes: source.nodes, value: randomBytes(options.valueSize), connectionsPerNode: options.loadConcurrency, bucket: 'bench', timeoutMs: 120_000 },
          { w: 1 },
        );
        const loaded = await prefill(loader, options.keys, options.loadConcurrency, 'load', true).finally(() => loader.close());
        summary.load = { ...loaded, keysPerSecond: Math.round(loaded.keyCount / loaded.seconds) };
        say(`loaded: ${JSON.stringify(summary.load)}`);
        if (loaded.errorCount > 0) throw new Error(`${loaded.errorCount} loading writes failed: ${JSON.stringify(loaded.errorsByOutcome)}`);

        backupDirectory = options.keepBackup === undefined ? join(dataRoot, 'backup') : resolve(options.keepBackup);
        if (existsSync(backupDirectory) && readdirSync(backupDirectory).length > 0)
          throw new Error(`${backupDirectory} is not empty; give --keep-backup a new directory`);
        say(`backup: unthrottled (--rate 0) into ${backupDirectory}`);
        const backupSeconds = await runToEnd('backup', ['backup', '--to', backupDirectory, '--node', source.nodes[0]!, '--rate', '0']);
        const totals = manifestTotals(backupDirectory);
        summary.backup = {
          ...totals,
          seconds: round(backupSeconds),
          keysPerSecond: Math.round(totals.objects / backupSeconds),
          megabytesPerSecond: round(totals.bytes / 1e6 / backupSeconds),
        };
        say(`backup: ${JSON.stringify(summary.backup)}`);

        // Foreground p99: the same load without a backup and with one at each throttle, in
        // --rounds interleaved rounds and a last baseline, so a busy machine's drift shows.
        const windows: Record<string, unknown>[] = [];
        const phases: (number | 'none')[] = [...Array.from({ length: options.rounds }, () => ['none' as const, ...options.throttles]).flat(), 'none'];
        for (const phase of phases) {
          const label = phase === 'none' ? 'no backup' : `backup --rate ${phase}${phase === 0 ? ' (unthrottled)' : ' MB/s'}`;
          say(`foreground: ${options.fgRate} ops/s for ${options.fgWarmup} + ${options.fgSeconds} s, ${label}`);
          const load = foreground(source, options, label, options.keys);
          const copied = phase === 'none' ? undefined : await backupsUntil(load, source, phase, dataRoot);
          const result = await load;
          const window = {
            phase: label,
            ...p99s(result),
            cpuPercentServersBenchOther: [result.cpu.serversPercent, result.cpu.benchPercent, result.cpu.otherPercent].map(Math.round),
            ...(copied === undefined
              ? {}
              : {
                  backupRuns: copied.runs,
                  backupsFinished: copied.finished,
                  backupMegabytesPerSecond: round(copied.bytes / 1e6 / (options.fgWarmup + options.fgSeconds)),
                }),
          };
          say(`foreground: ${JSON.stringify(window)}`);
          windows.push(window);
        }
        summary.foreground = windows;
      } finally {
        await stopTarget(source);
      }
      summary.restore = await restorePhase(options, backupDirectory, dataRoot, options.keys);
      summary.backupDirectoryBytes = directoryBytes(backupDirectory);
    }
    const path = writeResultJson(options.resultsDir, 'backup', summary);
    say(`written to ${path}`);
    console.log(JSON.stringify(summary, null, 2));
  } finally {
    await stopAll();
    removeTemporaryFolder(dataRoot, false);
  }
}

function directoryBytes(directory: string): number {
  let total = 0;
  for (const name of readdirSync(directory, { recursive: true }) as string[]) {
    const info = statSync(join(directory, name));
    if (info.isFile()) total += info.size;
  }
  return total;
}

const program = new Command('bench:backup')
  .description('backup and restore rate, and the foreground p99 while a backup runs (issue 23)')
  .option('--keys <n>', 'keys to load', positiveInteger, 1_000_000)
  .option('--value-size <bytes>', 'value size', positiveInteger, 100)
  .option('--load-concurrency <n>', 'clients while loading', positiveInteger, 128)
  .option('--fg-rate <ops>', 'foreground operations per second (open loop, half GET, half PUT)', positiveInteger, 50)
  .option('--fg-seconds <s>', 'measured seconds of each foreground window', positiveInteger, 30)
  .option('--fg-warmup <s>', 'warm-up seconds of each foreground window', positiveInteger, 3)
  .option('--throttles <list>', 'backup --rate values (MB/s) to measure the foreground under; 0 is unthrottled', rateList, [0, 2, 0.5])
  .option('--rounds <n>', 'rounds of foreground windows (no backup, then each throttle)', positiveInteger, 2)
  .option('--base-port <port>', 'the first port: source nodes base..base+2, target nodes base+10..base+13', positiveInteger, 25100)
  .option('--peer-offset <n>', "peer port = HTTP port + this (the nodes' peerPortOffset)", positiveInteger, 500)
  .option('--keep-backup <dir>', 'write the timed backup here (a new directory) and keep it')
  .option('--restore-only <dir>', 'only time the restore of this backup into a fresh 4-node cluster')
  .option('--results-dir <dir>', 'where the JSON goes', join(packageRoot(), 'bench', 'results'));

program.parse();
const options = program.opts<Options>();
if (options.basePort + 13 + options.peerOffset > 65_535) throw new InvalidArgumentError('--base-port + 13 + --peer-offset must be at most 65535');
main(options).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:backup failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
