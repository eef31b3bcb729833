/**
 * The runner's command line: `npm run jepsen -- --workload W --nemesis N1,N2 ...`. Parsed with
 * node:util so the harness needs no dependency of its own; every value is checked here, at the
 * edge, and a bad one stops the run with a message that names the flag.
 */
import { parseArgs } from 'node:util';

/** The workloads: which operations clients run and which checker judges them. */
export const workloadNames = ['set', 'register', 'delete', 'client', 'ttl', 'counter', 'dt-set', 'cas-register', 'lock', 'watch'] as const;

/** Workloads that can run on a consistent bucket (and do by default). */
export const consistentWorkloads: readonly WorkloadName[] = ['cas-register', 'lock', 'watch'];
/** A workload's name. */
export type WorkloadName = (typeof workloadNames)[number];

/** The faults a nemesis can inject. `partition` picks a partition shape at random each time. */
export const faultNames = [
  'partition',
  'partition-halves',
  'partition-majority',
  'partition-isolate',
  'partition-bridge',
  'partition-ring',
  'kill',
  'pause',
  'membership',
  'clock',
  'latency',
  'loss',
] as const;
/** A fault's name. */
export type FaultName = (typeof faultNames)[number];

/** Faults only `--net netns` can inject: they act on single packets, which the loopback proxies never see. */
export const netnsOnlyFaults: readonly FaultName[] = ['latency', 'loss'];

/** Where the nodes run: on loopback behind per-link TCP proxies, or each in its own network namespace. */
export const netModes = ['loopback', 'netns'] as const;
/** A --net mode. */
export type NetMode = (typeof netModes)[number];

/** Everything a run is configured with. */
export interface RunOptions {
  readonly workload: WorkloadName;
  /** Faults the nemesis picks from; empty for a run without faults. */
  readonly faults: readonly FaultName[];
  readonly nodeCount: number;
  /** Shards per node (`ringkv start --shards`): each node is a host of this many ring members. */
  readonly shards: number;
  readonly timeLimitMs: number;
  /** Client worker threads running operations at once. */
  readonly concurrency: number;
  readonly conflictMode: 'siblings' | 'lww';
  /** The workload's bucket: `consistent: true` (linearizable per key) or plain. */
  readonly bucketMode: 'consistent' | 'plain';
  readonly seed: number;
  /** Target operations per second over all workers (each worker staggers randomly around it). */
  readonly ratePerSecond: number;
  /** Keys the workload spreads its operations over. */
  readonly keyCount: number;
  /** Mean time between nemesis events: faults last about this long, as do the quiet spells between them. */
  readonly nemesisIntervalMs: number;
  /** The quiet period after healing, before the final reads, for hints and anti-entropy to finish. */
  readonly quietMs: number;
  /** First port: nodes get basePort.., their link proxies the ports after them. */
  readonly basePort: number;
  /** Folder that receives the run folders (default jepsen-lite/store). */
  readonly storeRoot: string | undefined;
  /** The nodes' log level. */
  readonly nodeLogLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  /** Keep the nodes' LevelDB folders after the run. */
  readonly keepData: boolean;
  /** Instead of running, judge the stored run in this folder again. */
  readonly checkFolder: string | undefined;
  /** Loopback with link proxies, or one network namespace per node (root only). */
  readonly net: NetMode;
}

/** The usage text printed by --help and on a bad flag. */
export const usage = `usage: npm run jepsen -- [options]

  --workload set|register|delete|client|ttl|counter|dt-set|cas-register|lock
                                   what the clients do (default set); client uses RingClient
                                   as README.md documents it (contexts, resolve, deletes);
                                   ttl writes keys with 2-6 s ttls and reads them as they expire;
                                   counter and dt-set use the data types (/dt); cas-register
                                   (reads, writes, If-Match compare-and-sets, judged for
                                   linearizability) and lock (If-None-Match locks with fencing
                                   tokens) run on a consistent bucket unless --bucket plain
  --bucket consistent|plain        the bucket of cas-register, lock and watch (default
                                   consistent); plain runs cas-register and lock at r=1, w=1,
                                   and makes watch increment counters and watch them with
                                   dataTypes (every other workload: plain)
  --nemesis LIST                   faults, comma-separated: partition, partition-halves,
                                   partition-majority, partition-isolate, partition-bridge,
                                   partition-ring, kill, pause, membership (join a fresh
                                   node, leave one, remove a killed one and bring its process
                                   back), clock (skew and jump wall clocks with libfaketime;
                                   needs root or Debian's faketime installed), latency (tc
                                   netem delay) and loss (random packet drops) on some nodes'
                                   links, only with --net netns; all (partition, kill, pause),
                                   none (default partition)
  --nodes N                        cluster size, 3..9 (default 5)
  --shards S                       shards per node, 1..4 (default 1): each node is a host of
                                   S ring members (ringkv start --shards S); kill, pause,
                                   partitions and membership act on all of a host's shards
                                   together
  --time-limit S                   seconds of workload (default 60)
  --concurrency C                  client worker threads (default 10)
  --conflict siblings|lww          the buckets' conflict mode (default siblings)
  --seed S                         seeds the generators and the nemesis schedule (default: time)
  --rate R                         operations per second over all workers (default 100)
  --keys K                         keys the workload uses (default 5)
  --nemesis-interval S             mean seconds a fault lasts, and between faults (default 5)
  --quiet S                        seconds to wait after healing before final reads (default 5)
  --base-port P                    first port; nodes and their link proxies follow (default 18600)
  --store DIR                      where run folders go (default jepsen-lite/store)
  --node-log-level L               ringkv nodes' log level (default warn)
  --keep-data                      keep the nodes' data folders after the run
  --check DIR                      run no test: re-judge the stored run in DIR from its history.jsonl
  --net loopback|netns             loopback: nodes on 127.0.0.1 behind per-link TCP proxies
                                   (default); netns: each node in its own network namespace on
                                   a bridge, faults by iptables and tc (needs root)
`;

function integerFlag(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`--${name} must be an integer in ${min}..${max}, got '${text}'`);
  return value;
}

function numberFlag(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`--${name} must be a number in ${min}..${max}, got '${text}'`);
  return value;
}

function oneOf<T extends string>(name: string, text: string | undefined, choices: readonly T[], fallback: T): T {
  if (text === undefined) return fallback;
  if (!(choices as readonly string[]).includes(text)) throw new Error(`--${name} must be one of ${choices.join(', ')}, got '${text}'`);
  return text as T;
}

/** The faults of a --nemesis list; `all` is partition, kill and pause; `none` is no fault. */
export function parseFaults(text: string): FaultName[] {
  const faults = new Set<FaultName>();
  for (const item of text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part.length > 0)) {
    if (item === 'none') continue;
    if (item === 'all') {
      faults.add('partition').add('kill').add('pause');
      continue;
    }
    if (!(faultNames as readonly string[]).includes(item))
      throw new Error(`--nemesis: unknown fault '${item}'; choose from ${faultNames.join(', ')}, all, none`);
    faults.add(item as FaultName);
  }
  return [...faults];
}

/** Parses the runner's arguments; throws an Error whose message names the bad flag. Returns undefined for --help. */
export function parseRunOptions(argv: readonly string[]): RunOptions | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      workload: { type: 'string' },
      nemesis: { type: 'string' },
      nodes: { type: 'string' },
      shards: { type: 'string' },
      'time-limit': { type: 'string' },
      concurrency: { type: 'string' },
      conflict: { type: 'string' },
      bucket: { type: 'string' },
      seed: { type: 'string' },
      rate: { type: 'string' },
      keys: { type: 'string' },
      'nemesis-interval': { type: 'string' },
      quiet: { type: 'string' },
      'base-port': { type: 'string' },
      store: { type: 'string' },
      'node-log-level': { type: 'string' },
      'keep-data': { type: 'boolean' },
      check: { type: 'string' },
      net: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return undefined;
  const nodeCount = integerFlag('nodes', values.nodes, 5, 3, 9);
  const shards = integerFlag('shards', values.shards, 1, 1, 4);
  const net = oneOf('net', values.net, netModes, 'loopback');
  const faults = parseFaults(values.nemesis ?? 'partition');
  const packetFaults = faults.filter((fault) => netnsOnlyFaults.includes(fault));
  if (net !== 'netns' && packetFaults.length > 0) {
    throw new Error(
      `--nemesis ${packetFaults.join(',')} needs --net netns (as root): the loopback link proxies see a byte stream, not packets, so they cannot delay or drop single packets`,
    );
  }
  const workload = oneOf('workload', values.workload, workloadNames, 'set');
  const canBeConsistent = consistentWorkloads.includes(workload);
  const bucketMode = oneOf('bucket', values.bucket, ['consistent', 'plain'] as const, canBeConsistent ? 'consistent' : 'plain');
  if (bucketMode === 'consistent' && !canBeConsistent)
    throw new Error(`--bucket consistent is for the ${consistentWorkloads.join(' and ')} workloads; ${workload} runs on a plain bucket (drop --bucket)`);
  return {
    workload,
    bucketMode,
    faults,
    nodeCount,
    shards,
    timeLimitMs: numberFlag('time-limit', values['time-limit'], 60, 1, 86_400) * 1000,
    concurrency: integerFlag('concurrency', values.concurrency, 10, 1, 200),
    conflictMode: oneOf('conflict', values.conflict, ['siblings', 'lww'] as const, 'siblings'),
    seed: integerFlag('seed', values.seed, Date.now() % 1_000_000, 0, Number.MAX_SAFE_INTEGER),
    ratePerSecond: numberFlag('rate', values.rate, 100, 0.1, 100_000),
    keyCount: integerFlag('keys', values.keys, 5, 1, 10_000),
    nemesisIntervalMs: numberFlag('nemesis-interval', values['nemesis-interval'], 5, 0.5, 3600) * 1000,
    quietMs: numberFlag('quiet', values.quiet, 5, 0, 3600) * 1000,
    basePort: integerFlag('base-port', values['base-port'], 18_600, 1024, 65_535 - nodeCount * nodeCount * shards),
    storeRoot: values.store,
    nodeLogLevel: oneOf('node-log-level', values['node-log-level'], ['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const, 'warn'),
    keepData: values['keep-data'] === true,
    checkFolder: values.check,
    net,
  };
}
