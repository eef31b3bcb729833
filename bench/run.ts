/**
 * `npm run bench -- [options]`: the ringkv load generator and its suites.
 *
 *   --suite load     (default) load one system: running nodes (--nodes) or one it starts (--start)
 *   --suite compare  ceiling, ringkv 1 node, ringkv 3 nodes, etcd 3 members, side by side
 *   --suite scale    fill one cluster to 10,000 and then 1,000,000 keys; throughput and RSS at each
 *   --suite consistent  plain against consistent-bucket PUTs on 3 nodes, then CAS on one key under contention
 *
 * Results go to stdout as a table and to bench/results/ as JSON (and markdown for the suites).
 */
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { KeyDistribution } from './key-chooser.js';
import type { LoopKind, Workload } from './load-generator.js';
import { type MeasureOptions, measureTarget } from './measure.js';
import { packageRoot, removeTemporaryFolder, stopAll, temporaryFolder } from './processes.js';
import { formatMiB, machineInfo, machineLine, resultCells, resultColumns, textTable, writeResultJson } from './report.js';
import { type CompareTargetName, compareTargetNames, defaultCompareTargets, runCompareSuite } from './suites/compare.js';
import { runConsistentSuite } from './suites/consistent.js';
import { runScaleSuite } from './suites/scale.js';
import { type RunningTarget, setupEtcd, startCeiling, startEtcd, startRingkv, stopTarget } from './targets.js';

const positiveInteger = (text: string): number => {
  const value = Number(text.replace(/_/g, ''));
  if (!Number.isInteger(value) || value < 1) throw new InvalidArgumentError(`expected a positive integer, got '${text}'`);
  return value;
};
const nonNegativeNumber = (text: string): number => {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0) throw new InvalidArgumentError(`expected a number >= 0, got '${text}'`);
  return value;
};
const fraction = (text: string): number => {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || value > 1) throw new InvalidArgumentError(`expected a fraction in 0..1, got '${text}'`);
  return value;
};
const listOf =
  <T extends string>(allowed: readonly T[]) =>
  (text: string): T[] => {
    const items = text
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
    for (const item of items) if (!allowed.includes(item as T)) throw new InvalidArgumentError(`'${item}' is not one of ${allowed.join(', ')}`);
    if (items.length === 0) throw new InvalidArgumentError('expected at least one item');
    return items as T[];
  };

interface CliOptions {
  suite: 'load' | 'compare' | 'scale' | 'consistent';
  shards: number;
  basePort?: number;
  nodes?: string;
  system: 'ringkv' | 'etcd';
  start?: CompareTargetName;
  targets: CompareTargetName[];
  client: 'undici' | 'ring-client';
  shardAware: boolean;
  conflictMode: 'siblings' | 'lww';
  workload: Workload[];
  distribution: KeyDistribution;
  keys: number;
  valueSize: number;
  concurrency: number;
  loop: LoopKind;
  rate?: number;
  duration: number;
  warmup: number;
  readFraction: number;
  r?: number;
  w?: number;
  prefill: boolean;
  timeoutMs: number;
  progress: boolean;
  resultsDir: string;
  keepData: boolean;
  cpuProfDir?: string;
  scaleKeys: number[];
  scaleNodes: number;
  rounds: number;
  casClients: number[];
}

function command(): Command {
  return new Command('bench')
    .description('ringkv load generator: closed or open loop, put/get/mixed, uniform or zipfian keys')
    .addOption(new Option('--suite <suite>', 'what to run').choices(['load', 'compare', 'scale', 'consistent']).default('load'))
    .option('--nodes <list>', 'load suite: host:port of running nodes to spread load over')
    .addOption(new Option('--system <system>', 'load suite with --nodes: request shape').choices(['ringkv', 'etcd']).default('ringkv'))
    .addOption(new Option('--start <target>', 'load suite: start this system itself').choices([...compareTargetNames]))
    .option('--targets <list>', `compare suite: which systems (${compareTargetNames.join(',')})`, listOf(compareTargetNames), [...defaultCompareTargets])
    .addOption(
      new Option('--client <driver>', 'ringkv-shaped requests through raw undici pools or the RingClient').choices(['undici', 'ring-client']).default('undici'),
    )
    .option(
      '--shard-aware',
      'ringkv targets: send each key to the ring member (shard) that owns it, learnt from /status, instead of rotating over the nodes',
      false,
    )
    .addOption(
      new Option('--conflict-mode <mode>', 'ringkv buckets of started systems: lww overwrites like the baselines; siblings makes the bench carry contexts')
        .choices(['lww', 'siblings'])
        .default('lww'),
    )
    .option('--workload <list>', 'put, get, mixed; a comma list runs each in turn', listOf(['put', 'get', 'mixed'] as const), ['put', 'get'])
    .addOption(new Option('--distribution <d>', 'key popularity').choices(['uniform', 'zipfian']).default('uniform'))
    .option('--keys <n>', 'key space size (prefilled)', positiveInteger, 10_000)
    .option('--value-size <bytes>', 'value size', positiveInteger, 100)
    .option('--concurrency <n>', 'clients (closed loop) or workers (open loop)', positiveInteger, 64)
    .addOption(
      new Option('--loop <kind>', 'closed: fixed concurrency; open: fixed --rate, corrected for coordinated omission')
        .choices(['closed', 'open'])
        .default('closed'),
    )
    .option('--rate <ops>', 'open loop: total operations per second', positiveInteger)
    .option('--duration <s>', 'measured seconds per workload', nonNegativeNumber, 15)
    .option('--warmup <s>', 'unmeasured seconds before each workload', nonNegativeNumber, 5)
    .option('--read-fraction <f>', 'share of reads in the mixed workload', fraction, 0.5)
    .option('--r <n>', 'load suite: read quorum sent with each ringkv GET', positiveInteger)
    .option('--w <n>', 'load suite: write quorum sent with each ringkv PUT', positiveInteger)
    .option(
      '--shards <n>',
      'load and scale suites: shards (processes) per started ringkv node; the server CPU and the RSS count each of them',
      positiveInteger,
      1,
    )
    .option(
      '--base-port <p>',
      'load suite: the port of the one server --start starts (ceiling, ringkv-1; a node of S shards takes p .. p+S-1 and peer ports p+1000 ..); scale suite: node i at p+i*S; instead of free ports the system picks',
      positiveInteger,
    )
    .option('--no-prefill', 'do not write the key space before the runs')
    .option('--timeout-ms <ms>', 'per-request timeout', positiveInteger, 10_000)
    .option('--no-progress', 'no progress line on stderr')
    .option('--results-dir <dir>', 'where JSON results go', join(packageRoot(), 'bench', 'results'))
    .option('--keep-data', 'keep the data folders of started systems', false)
    .option('--cpu-prof-dir <dir>', 'start ringkv nodes with node --cpu-prof, profiles into this folder')
    .option('--scale-keys <list>', 'scale suite: key counts of the stages', (text) => text.split(',').map(positiveInteger), [10_000, 1_000_000])
    .option('--scale-nodes <n>', 'scale suite: ringkv nodes (n_val = min(3, nodes))', positiveInteger, 3)
    .option('--rounds <n>', 'consistent suite: plain/consistent PUT pairs, alternating', positiveInteger, 2)
    .option('--cas-clients <list>', 'consistent suite: client counts of the CAS-on-one-key phases', (text) => text.split(',').map(positiveInteger), [2, 8]);
}

function measureOptions(options: CliOptions): MeasureOptions {
  return {
    workloads: options.workload,
    distribution: options.distribution,
    keyCount: options.keys,
    valueSizeBytes: options.valueSize,
    concurrency: options.concurrency,
    loop: options.loop,
    ...(options.rate === undefined ? {} : { rateOpsPerSecond: options.rate }),
    durationSeconds: options.duration,
    warmupSeconds: options.warmup,
    readFraction: options.readFraction,
    timeoutMs: options.timeoutMs,
    prefill: options.prefill,
    showProgress: options.progress,
    client: options.client,
    conflictMode: options.conflictMode,
    shardAware: options.shardAware,
  };
}

function ringkvNodeArgs(options: CliOptions): string[] {
  return options.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', resolve(options.cpuProfDir)];
}

async function startNamed(name: CompareTargetName, dataRoot: string, options: CliOptions): Promise<RunningTarget> {
  const nodeArgs = ringkvNodeArgs(options);
  const quorum = { ...(options.r === undefined ? {} : { r: options.r }), ...(options.w === undefined ? {} : { w: options.w }) };
  switch (name) {
    case 'ceiling':
      return startCeiling(dataRoot, [], options.basePort);
    case 'ringkv-1':
      return startRingkv({
        name,
        nodeCount: 1,
        nVal: 1,
        dataRoot,
        nodeArgs,
        conflictMode: options.conflictMode,
        shards: options.shards,
        ...(options.basePort === undefined ? {} : { ports: [options.basePort] }),
        ...quorum,
      });
    case 'ringkv-3':
      return startRingkv({ name, nodeCount: 3, nVal: 3, r: options.r ?? 2, w: options.w ?? 2, dataRoot, nodeArgs, conflictMode: options.conflictMode });
    case 'etcd-3': {
      const setup = setupEtcd();
      if (!setup.available) throw new Error(setup.note);
      return startEtcd(3, dataRoot);
    }
  }
}

/** `--suite load`: one system, either already running (--nodes) or started here (--start). */
async function runLoadSuite(options: CliOptions, commandLine: string): Promise<void> {
  let dataRoot: string | undefined;
  let target: RunningTarget;
  if (options.start !== undefined) {
    dataRoot = temporaryFolder('ringkv-bench-');
    process.stderr.write(`starting ${options.start}...\n`);
    target = await startNamed(options.start, dataRoot, options);
  } else {
    if (options.nodes === undefined) throw new InvalidArgumentError('--suite load needs --nodes host:port,... or --start TARGET');
    const quorum = { ...(options.r === undefined ? {} : { r: options.r }), ...(options.w === undefined ? {} : { w: options.w }) };
    target = {
      name: options.system,
      description: `${options.system} at ${options.nodes}`,
      nodes: options.nodes.split(',').map((node) => node.trim().replace(/^https?:\/\//, '')),
      driverKind: options.system === 'etcd' ? 'etcd' : 'undici',
      quorum,
      // Nodes someone else started: their buckets' mode is unknown, so carry contexts to be safe.
      ...(options.system === 'ringkv' ? { conflictMode: 'siblings' as const } : {}),
      processes: [],
    };
  }
  try {
    const measurement = await measureTarget(target, measureOptions(options));
    const machine = machineInfo(packageRoot());
    console.log(`\n${target.description} — ${machineLine(machine)}`);
    console.log(
      `${options.loop} loop${options.rate === undefined ? '' : ` at ${options.rate} ops/s`}, ${options.concurrency} clients, ${options.valueSize}-byte values, ${options.keys.toLocaleString('en-US')} ${options.distribution} keys, driver ${measurement.driver}\n`,
    );
    const rows = measurement.results.map((result) => [result.workload, ...resultCells(result)]);
    console.log(textTable(['workload', ...resultColumns], rows));
    if (measurement.peakRssBytesPerProcess.length > 0)
      console.log(
        `\npeak RSS per process (a sharded node: supervisor, then each shard): ${measurement.peakRssBytesPerProcess.map((bytes) => `${formatMiB(bytes ?? undefined)} MiB`).join(', ')}`,
      );
    const file = writeResultJson(options.resultsDir, 'load', { machine, command: commandLine, options: measureOptions(options), measurement });
    console.log(`\nresults: ${file}`);
  } finally {
    if (target.processes.length > 0) await stopTarget(target);
    if (dataRoot !== undefined) {
      removeTemporaryFolder(dataRoot, options.keepData);
    }
  }
}

async function main(): Promise<void> {
  const program = command();
  program.parse(process.argv);
  const options = program.opts<CliOptions>();
  const commandLine = `npm run bench -- ${process.argv.slice(2).join(' ')}`.trim();
  if (options.suite === 'compare') {
    await runCompareSuite(
      {
        ...measureOptions(options),
        prefill: true,
        targets: options.targets,
        resultsDir: options.resultsDir,
        keepData: options.keepData,
        ringkvNodeArgs: ringkvNodeArgs(options),
      },
      commandLine,
    );
  } else if (options.suite === 'consistent') {
    await runConsistentSuite(
      {
        ...measureOptions(options),
        prefill: false,
        resultsDir: options.resultsDir,
        keepData: options.keepData,
        ringkvNodeArgs: ringkvNodeArgs(options),
        rounds: options.rounds,
        casClients: options.casClients,
      },
      commandLine,
    );
  } else if (options.suite === 'scale') {
    const { keyCount: _keyCount, prefill: _prefill, ...load } = measureOptions(options);
    await runScaleSuite(
      {
        ...load,
        stageKeyCounts: [...options.scaleKeys].sort((a, b) => a - b),
        nodeCount: options.scaleNodes,
        resultsDir: options.resultsDir,
        keepData: options.keepData,
        ringkvNodeArgs: ringkvNodeArgs(options),
        shards: options.shards,
        ...(options.basePort === undefined ? {} : { basePort: options.basePort }),
      },
      commandLine,
    );
  } else {
    await runLoadSuite(options, commandLine);
  }
}

main()
  .catch(async (error: unknown) => {
    console.error(`bench failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll();
  });
