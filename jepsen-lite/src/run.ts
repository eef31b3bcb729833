/**
 * jepsen-lite's runner: starts a fresh cluster of real ringkv processes on loopback with a TCP
 * proxy on every link (or, with --net netns, each in its own network namespace), runs the
 * workload while the nemesis injects faults, heals everything, waits for hints and a quiet
 * period, makes the final reads, runs the checkers and writes the run to
 * jepsen-lite/store/<time>/ (history.jsonl, results.json, report.html, run.json, node logs).
 * Exit code: 0 valid, 1 a checker found the history invalid, 2 the harness could not run.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { RingClient } from '../../src/client/ring-client.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { defaultPeerPortOffset } from '../../src/adapters/framed-transport.js';
import { type RunVerdict, checkRun } from './checkers/check-run.js';
import type { CheckerResult } from './checkers/checker.js';
import { type RunOptions, type WorkloadName, parseRunOptions, usage } from './cli-options.js';
import { Cluster, repositoryRoot } from './cluster.js';
import { finalReads, localReads, waitForHints } from './final-reads.js';
import { runClients } from './generator.js';
import { HistoryRecorder, parseHistory } from './history.js';
import { type FaultNetwork, Nemesis, type NemesisEvent, faultSummary, planNemesisSchedule } from './nemesis.js';
import { NamespaceFaults } from './netns-faults.js';
import { type NamespaceNetwork, netemProblem } from './netns.js';
import { prepareNamespaces } from './netns-run.js';
import { LinkNetwork } from './proxy.js';
import { renderReport } from './report-html.js';
import { ensureFaketime } from './faketime.js';
import { delay } from './wait.js';
import { ClientWorkload } from './workloads/client.js';
import { DeleteWorkload } from './workloads/delete.js';
import { RegisterWorkload } from './workloads/register.js';
import { SetWorkload } from './workloads/set.js';
import { TtlWorkload } from './workloads/ttl.js';
import { CounterWorkload, DtSetWorkload } from './workloads/dt.js';
import { CasRegisterWorkload } from './workloads/cas-register.js';
import { LockWorkload } from './workloads/lock.js';
import { type Background, WatchWorkload } from './workloads/watch.js';
import type { Workload } from './workloads/workload.js';

/** n_val of every bucket the harness uses (ringkv's default). */
const nVal = 3;

/** Spare slots the membership nemesis can join into the cluster. */
const membershipSpares = 2;

/** How long after a fault the register checker still excuses stale reads: failure detection, gossip and hint delivery. */
const recoveryMs = 5000;

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function buildWorkload(options: RunOptions): Workload {
  const replicas = Math.min(nVal, options.nodeCount);
  switch (options.workload) {
    case 'set':
      return new SetWorkload({ keyCount: options.keyCount, concurrency: options.concurrency });
    case 'register':
      return new RegisterWorkload({ keyCount: options.keyCount, concurrency: options.concurrency, replicas });
    case 'delete':
      return new DeleteWorkload({ concurrency: options.concurrency });
    case 'client':
      return new ClientWorkload({ keyCount: options.keyCount, concurrency: options.concurrency, replicas });
    case 'ttl':
      return new TtlWorkload({ concurrency: options.concurrency, replicas });
    case 'counter':
      return new CounterWorkload({ keyCount: options.keyCount, concurrency: options.concurrency, replicas });
    case 'dt-set':
      return new DtSetWorkload({ keyCount: options.keyCount, concurrency: options.concurrency, replicas });
    case 'cas-register':
      return new CasRegisterWorkload({ keyCount: options.keyCount, concurrency: options.concurrency, consistent: options.bucketMode === 'consistent' });
    case 'lock':
      return new LockWorkload({ keyCount: options.keyCount, concurrency: options.concurrency, consistent: options.bucketMode === 'consistent' });
    case 'watch':
      return new WatchWorkload({ keyCount: options.keyCount, concurrency: options.concurrency, seed: options.seed, dataTypes: options.bucketMode === 'plain' });
  }
}

/** The largest offset ahead of true time the schedule's clock faults give any node (0 without clock faults). */
function maxClockAheadMs(schedule: readonly NemesisEvent[]): number {
  return Math.max(0, ...schedule.flatMap((event) => (event.fault.kind === 'clock' ? event.fault.offsetsMs : [])));
}

async function assertPortsFree(ports: readonly number[]): Promise<void> {
  for (const port of ports) {
    await new Promise<void>((resolve, reject) => {
      const server = createServer();
      server.once('error', () => reject(new Error(`port ${port} on 127.0.0.1 is in use; stop whatever holds it or pass another --base-port`)));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve()));
    });
  }
}

function makeRunFolder(storeRoot: string): string {
  mkdirSync(storeRoot, { recursive: true });
  const stamp = new Date().toISOString().replace(/:/g, '-');
  for (let attempt = 0; ; attempt++) {
    const folder = join(storeRoot, attempt === 0 ? stamp : `${stamp}-${attempt}`);
    try {
      mkdirSync(folder);
      const latest = join(storeRoot, 'latest');
      rmSync(latest, { force: true, recursive: false });
      symlinkSync(relative(storeRoot, folder), latest, 'dir');
      return folder;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 100) throw error;
    }
  }
}

/** Numbers and booleans of a checker result, for the top level of results.json. */
function headlineOf(result: CheckerResult): Record<string, number | boolean> {
  const headline: Record<string, number | boolean> = {};
  for (const [name, value] of Object.entries(result)) if (name !== 'valid' && (typeof value === 'number' || typeof value === 'boolean')) headline[name] = value;
  return headline;
}

function percent(fraction: number | null): string {
  return fraction === null ? 'n/a' : `${(fraction * 100).toFixed(1)}%`;
}

/** The human summary of a verdict on stdout. */
function printVerdict(workload: WorkloadName, verdict: RunVerdict, warnings: readonly string[]): void {
  const { stats, convergence } = verdict;
  say('==== jepsen-lite results ====');
  say(`valid: ${verdict.valid}`);
  for (const reason of verdict.nothingTested) say(`INVALID, ${reason}`);
  // The linearizability checker's verdict is a word: valid, invalid, or unknown (its search budget ran out).
  const word = verdict.workload.verdict;
  say(
    `${workload}: ${word === undefined ? '' : `${word}, `}${Object.entries(headlineOf(verdict.workload))
      .map(([name, value]) => `${name} ${String(value)}`)
      .join(', ')}`,
  );
  say(`convergence: ${convergence.keysChecked} keys checked on their replicas, ${convergence.divergedKeys} diverged`);
  for (const [f, counts] of Object.entries(stats.counts)) {
    const latency = stats.latency[f];
    say(
      `${f.padEnd(7)} ok ${counts.ok}  fail ${counts.fail}  info ${counts.info}  | latency p50 ${latency?.p50Ms ?? 0} ms  p95 ${latency?.p95Ms ?? 0} ms  p99 ${latency?.p99Ms ?? 0} ms  max ${latency?.maxMs ?? 0} ms`,
    );
  }
  say(
    `availability: ${percent(stats.availability.duringFaults.okFraction)} ok during faults (${stats.faults} faults, ${(stats.faultTimeMs / 1000).toFixed(1)} s), ${percent(stats.availability.outsideFaults.okFraction)} ok outside`,
  );
  for (const warning of warnings) say(`warning: ${warning}`);
}

/** Judges a stored run again from its history.jsonl and run.json; returns the exit code. */
function recheck(folder: string): number {
  const run = JSON.parse(readFileSync(join(folder, 'run.json'), 'utf8')) as {
    settings: { workload: WorkloadName; nodes: number; nVal?: number; bucket?: 'consistent' | 'plain' };
  };
  const history = parseHistory(readFileSync(join(folder, 'history.jsonl'), 'utf8'));
  const verdict = checkRun(run.settings.workload, history, {
    replicas: Math.min(run.settings.nVal ?? nVal, run.settings.nodes),
    recoveryMs,
    bucketMode: run.settings.bucket ?? 'plain',
  });
  say(`re-checking ${history.length} history entries of ${folder}`);
  printVerdict(run.settings.workload, verdict, []);
  return verdict.valid ? 0 : 1;
}

/** Runs one test; returns the process exit code. */
async function run(requested: RunOptions): Promise<number> {
  // The clock nemesis needs libfaketime; without it the run goes on without that fault, and says so.
  let options = requested;
  let faketimeLibrary: string | undefined;
  if (options.faults.includes('clock')) {
    const faketime = ensureFaketime(say);
    if ('library' in faketime) faketimeLibrary = faketime.library;
    else {
      say(`clock nemesis SKIPPED: ${faketime.reason}`);
      options = { ...options, faults: options.faults.filter((fault) => fault !== 'clock') };
    }
  }
  // --net netns: root, ip netns and iptables (installed when missing), and nothing left of a crashed run.
  const namespaces = options.net === 'netns' ? prepareNamespaces(options.basePort, say) : undefined;
  let latencySkipped: string | undefined;
  if (namespaces !== undefined && options.faults.includes('latency')) {
    latencySkipped = netemProblem(namespaces.prefix);
    if (latencySkipped !== undefined) {
      say(`latency nemesis SKIPPED: ${latencySkipped}`);
      options = { ...options, faults: options.faults.filter((fault) => fault !== 'latency') };
    }
  }
  const storeRoot = options.storeRoot ?? join(repositoryRoot(), 'jepsen-lite', 'store');
  // The membership nemesis needs slots for nodes that join later; they get ports and links too.
  const spareCount = options.faults.includes('membership') ? membershipSpares : 0;
  const slotCount = options.nodeCount + spareCount;
  // A node of S shards (--shards) is S ring members: shard s at the node's port + s (where it also
  // serves HTTP for itself; the node's port is shared by all its shards), peer port + s.
  const shards = options.shards;
  const memberCount = slotCount * shards;
  // On loopback every node has its own S ports; in namespaces every node has the same ports on its own address.
  const nodePort = (node: number): number => (namespaces === undefined ? options.basePort + node * shards : options.basePort);
  const memberPort = (node: number, shard: number): number => nodePort(node) + shard;
  // Each member's peer port (where members talk to each other) is its port + peerPortOffset. On loopback
  // the offset puts the peer ports right after the link proxies, so a run uses one compact block of
  // ports from --base-port (and stays inside a port range given to it); in namespaces every node has
  // its own address, so the default offset is kept.
  const peerPortOffset = namespaces === undefined ? memberCount + slotCount * memberCount : defaultPeerPortOffset;
  const memberPeerPort = (node: number, shard: number): number => memberPort(node, shard) + peerPortOffset;
  // The proxy of the link from node i to shard s of node j.
  const proxyPort = (from: number, to: number, shard: number): number => options.basePort + memberCount + from * memberCount + to * shards + shard;
  const ports: number[] = [];
  if (namespaces === undefined) {
    for (let node = 0; node < slotCount; node++) for (let shard = 0; shard < shards; shard++) ports.push(memberPort(node, shard), memberPeerPort(node, shard));
    for (let from = 0; from < slotCount; from++) {
      for (let to = 0; to < slotCount; to++) if (from !== to) for (let shard = 0; shard < shards; shard++) ports.push(proxyPort(from, to, shard));
    }
  }
  const highest = Math.max(options.basePort + peerPortOffset, ...ports);
  if (highest > 65_535)
    throw new Error(
      `--base-port ${options.basePort} puts ports up to ${highest}, above 65535 (the peer ports are ${peerPortOffset} above the HTTP ports): pass a lower --base-port`,
    );
  await assertPortsFree(ports);
  const runFolder = makeRunFolder(storeRoot);
  const dataRoot = mkdtempSync(join(tmpdir(), 'ringkv-jepsen-'));
  const configFile = join(runFolder, 'ringkv-config.json');
  const workload = buildWorkload(options);
  const nodeConfig = {
    peerPortOffset,
    gossip: { intervalMs: 300 },
    limits: { requestTimeoutMs: 2000, peerTimeoutMs: 1000 },
    hintedHandoff: { intervalMs: 300 },
    antiEntropy: { intervalMs: 2000 },
    bucketDefaults: { nVal, conflictMode: options.conflictMode },
    // cas-register and lock: the workload's bucket linearizable per key (Paxos on its N primaries).
    ...(options.bucketMode === 'consistent' ? { buckets: { [workload.bucket]: { consistent: true } } } : {}),
  };
  writeFileSync(configFile, `${JSON.stringify(nodeConfig, null, 2)}\n`);
  const schedule = planNemesisSchedule(
    { faults: options.faults, nodeCount: options.nodeCount, timeLimitMs: options.timeLimitMs, intervalMs: options.nemesisIntervalMs, spareCount },
    new SeededRandom(options.seed),
  );
  const settings = {
    workload: options.workload,
    nemesis: options.faults.length === 0 ? 'none' : options.faults.join(','),
    nodes: options.nodeCount,
    shards,
    spareSlots: spareCount,
    ...(requested.faults.includes('clock') && faketimeLibrary === undefined ? { skipped: 'clock (no libfaketime)' } : {}),
    ...(latencySkipped === undefined ? {} : { skippedLatency: latencySkipped }),
    net: options.net,
    timeLimitS: options.timeLimitMs / 1000,
    concurrency: options.concurrency,
    conflict: options.conflictMode,
    bucket: options.bucketMode,
    seed: options.seed,
    ratePerSecond: options.ratePerSecond,
    keys: options.keyCount,
    nemesisIntervalS: options.nemesisIntervalMs / 1000,
    quietS: options.quietMs / 1000,
    nVal,
    // Every flag that shapes the schedule or the operations, so the command replays the run.
    command:
      `npm run jepsen -- --workload ${options.workload} --nemesis ${options.faults.join(',') || 'none'} --nodes ${options.nodeCount} --shards ${shards}` +
      ` --time-limit ${options.timeLimitMs / 1000} --concurrency ${options.concurrency} --conflict ${options.conflictMode} --bucket ${options.bucketMode} --seed ${options.seed}` +
      ` --rate ${options.ratePerSecond} --keys ${options.keyCount} --nemesis-interval ${options.nemesisIntervalMs / 1000} --quiet ${options.quietMs / 1000}` +
      ` --net ${options.net}`,
  };

  // Loopback: the link proxies. Namespaces: one host per slot, created in the try below.
  const network = namespaces === undefined ? new LinkNetwork(slotCount, shards, memberPort, memberPeerPort, proxyPort) : undefined;
  const hosts: NamespaceNetwork | undefined = namespaces?.network;
  const host = (node: number): { address: string; namespace: string; name: string } => {
    const found = hosts?.hosts[node];
    if (found === undefined) throw new Error(`slot ${node} has no namespace host`);
    return found;
  };
  const faults: FaultNetwork = network ?? new NamespaceFaults(hosts as NamespaceNetwork);
  const cluster = new Cluster({
    nodeCount: options.nodeCount,
    spareCount,
    shards,
    nodePort,
    ...(network === undefined
      ? {
          nodeHost: (node: number) => (hosts as NamespaceNetwork).hostAddress(node),
          launcher: (node: number, argv: readonly string[], environment: Readonly<Record<string, string>>) =>
            (hosts as NamespaceNetwork).execIn(host(node), argv, environment),
        }
      : { peerMap: (node: number) => network.peerMap(node) }),
    dataRoot,
    logRoot: runFolder,
    configFile,
    clusterSecret: randomBytes(24).toString('hex'),
    logLevel: options.nodeLogLevel,
    ...(faketimeLibrary === undefined ? {} : { faketime: { library: faketimeLibrary, folder: join(runFolder, 'clocks') } }),
  });
  const writeRunFile = (extra: Record<string, unknown>): void =>
    writeFileSync(
      join(runFolder, 'run.json'),
      `${JSON.stringify({ settings, ports: { nodes: options.basePort, last: highest }, ...(hosts === undefined ? {} : { namespaces: { prefix: hosts.prefix, subnet: `${hosts.subnet}.0/24`, harness: hosts.rootAddress, nodes: cluster.addresses } }), dataRoot, nodeConfig, schedule, pids: cluster.nodes.map((node) => ({ node: node.name, pids: node.pids })), ...extra }, null, 2)}\n`,
    );
  writeRunFile({ startedAt: new Date().toISOString() });

  // Whatever happens to the runner, no node process and no namespace may outlive it.
  let namespacesRemoved = false;
  const removeNamespaces = (): void => {
    if (hosts === undefined || namespacesRemoved) return;
    namespacesRemoved = true;
    hosts.remove();
    say(`network namespaces ${hosts.prefix}-* removed`);
  };
  const emergencyStop = (): void => {
    cluster.killAllNow();
    removeNamespaces();
  };
  process.on('exit', emergencyStop);
  const onSignal = (signal: NodeJS.Signals): void => {
    say(`\n${signal}: stopping every node`);
    writeRunFile({ interruptedBy: signal });
    cluster.killAllNow();
    removeNamespaces();
    if (!options.keepData) rmSync(dataRoot, { recursive: true, force: true });
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);

  /** What the links carried, and what the cut links carried before and during their cuts (or what iptables dropped): proof that a partition cut traffic. */
  const traffic = (): Record<string, unknown> => {
    if (network !== undefined) {
      const counters = network.counters();
      const sum = (field: 'bytesForwarded' | 'cuts' | 'bytesBeforeCuts' | 'msBeforeCuts' | 'bytesDuringCuts' | 'msDuringCuts'): number =>
        counters.reduce((total, counter) => total + counter[field], 0);
      return {
        peer: {
          bytesForwarded: sum('bytesForwarded'),
          linkCuts: sum('cuts'),
          bytesBeforeCuts: sum('bytesBeforeCuts'),
          msBeforeCuts: sum('msBeforeCuts'),
          bytesDuringCuts: sum('bytesDuringCuts'),
          msDuringCuts: sum('msDuringCuts'),
        },
        links: counters.map((counter) => ({ ...counter, from: cluster.nodes[counter.from]?.name, to: cluster.nodes[counter.to]?.name })),
      };
    }
    return { droppedPackets: (faults as NamespaceFaults).dropped };
  };
  const trafficSummary = (): string => {
    const figures = traffic() as { peer?: Record<string, number>; droppedPackets?: { partition: number; loss: number } };
    if (figures.droppedPackets !== undefined)
      return `links: iptables dropped ${figures.droppedPackets.partition} packets in partitions, ${figures.droppedPackets.loss} in loss faults`;
    const rate = (bytes: number, ms: number): string => (ms > 0 ? `${Math.round((bytes * 1000) / ms)} B/s` : 'n/a');
    const lane = (name: string, counts: Record<string, number> | undefined): string =>
      counts === undefined
        ? ''
        : `${name} proxies forwarded ${counts.bytesForwarded} bytes` +
          ((counts.linkCuts ?? 0) > 0
            ? `; the ${counts.linkCuts} link cuts carried ${rate(counts.bytesBeforeCuts ?? 0, counts.msBeforeCuts ?? 0)} per link before and ${rate(counts.bytesDuringCuts ?? 0, counts.msDuringCuts ?? 0)} while cut`
            : '');
    return `links: ${lane('peer-port', figures.peer)}`;
  };

  let history: HistoryRecorder | undefined;
  let watchers: Background | undefined;
  // Clients are bound to the nodes the cluster starts with, as Jepsen binds them; a client of a
  // node that has left or been removed sees its operations fail there.
  const clientNodes = cluster.memberAddresses;
  const client = new RingClient({ nodes: cluster.addresses, httpTimeoutMs: 5000, maxAttempts: 1, connectionsPerNode: options.concurrency + 4 });
  const warnings: string[] = [];
  let healedAtMs = 0;
  try {
    say(`jepsen-lite: ${settings.command}`);
    say(`store: ${runFolder}`);
    if (network !== undefined) {
      await network.start();
      say(
        `starting ${options.nodeCount} ringkv nodes${shards > 1 ? ` of ${shards} shards` : ''} on 127.0.0.1:${nodePort(0)}..${memberPort(options.nodeCount - 1, shards - 1)}${spareCount > 0 ? ` (${spareCount} spare slots up to ${memberPort(slotCount - 1, shards - 1)})` : ''}, peer ports ${memberPeerPort(0, 0)}.., links proxied on ${proxyPort(0, 1, 0)}..${proxyPort(slotCount - 1, slotCount - 2, shards - 1)}`,
      );
    } else {
      const namespaceHosts = hosts as NamespaceNetwork;
      namespaceHosts.startReaper(process.pid);
      namespaceHosts.create(cluster.nodes.map((node) => node.name));
      say(
        `starting ${options.nodeCount} ringkv nodes in network namespaces ${namespaceHosts.prefix}-h1..h${slotCount} at ${cluster.addresses.slice(0, options.nodeCount).join(', ')}${spareCount > 0 ? ` (${spareCount} spare slots)` : ''}; the harness is ${namespaceHosts.rootAddress} on their bridge`,
      );
    }
    await cluster.start();
    writeRunFile({ startedAt: new Date().toISOString() });
    // Time zero of the history is the start of the workload, so report times read as seconds into the test.
    history = new HistoryRecorder(join(runFolder, 'history.jsonl'));
    say(
      `cluster up; running the ${options.workload} workload for ${options.timeLimitMs / 1000} s with ${schedule.filter((event) => event.action === 'start').length} faults scheduled`,
    );

    const clock = history;
    const nemesis = new Nemesis(cluster, faults, history, (line) => say(`[${(clock.nowMs() / 1000).toFixed(1).padStart(6)} s] ${line}`));
    const startMs = history.nowMs();
    let scanned = 0;
    const tally = { ok: 0, fail: 0, info: 0 };
    const progress = setInterval(() => {
      const operations = clock.operations;
      for (; scanned < operations.length; scanned++) {
        const operation = operations[scanned];
        if (operation !== undefined && typeof operation.process === 'number' && operation.type !== 'invoke') tally[operation.type] += 1;
      }
      const fault = nemesis.active;
      const names = cluster.nodes.map((node) => node.name);
      say(
        `[${(clock.nowMs() / 1000).toFixed(1).padStart(6)} s] ok ${tally.ok}  fail ${tally.fail}  info ${tally.info}  | ${fault === undefined ? 'no fault' : faultSummary(fault, names)}`,
      );
    }, 2000);
    // The watch workload's watchers follow the keys from before the first write to after the final reads.
    watchers = workload instanceof WatchWorkload ? workload.startWatchers(client, clientNodes, history) : undefined;
    try {
      const nemesisDone = nemesis.run(schedule, startMs);
      await runClients(
        workload,
        client,
        history,
        { concurrency: options.concurrency, timeLimitMs: options.timeLimitMs, ratePerSecond: options.ratePerSecond, seed: options.seed, nodes: clientNodes },
        startMs,
      );
      nemesis.cancel();
      await nemesisDone;
      say('workload done; healing every link and node');
      await nemesis.healAll();
      healedAtMs = history.nowMs();
    } finally {
      clearInterval(progress);
    }
    writeRunFile({ startedAt: new Date().toISOString() });

    await cluster.waitConverged(60_000).catch((error: unknown) => {
      warnings.push(`membership did not converge after healing: ${String(error)}`);
    });
    const hintsPending = await waitForHints(cluster, 60_000);
    const hintsDrained = hintsPending === undefined;
    if (!hintsDrained) warnings.push(`hints were still pending 60 s after healing: ${hintsPending}`);
    say(`healed; hints ${hintsDrained ? 'drained' : 'NOT drained'}; quiet for ${options.quietMs / 1000} s`);
    // A deliberate wait: the quiet period is the time the issue gives hints and anti-entropy to finish.
    await delay(options.quietMs);
    const settleMs = workload.finalReadDelayMs?.(maxClockAheadMs(schedule));
    if (settleMs !== undefined && healedAtMs + settleMs > history.nowMs()) {
      say(`waiting ${((healedAtMs + settleMs - history.nowMs()) / 1000).toFixed(1)} s more before the final reads (${options.workload})`);
      await delay(healedAtMs + settleMs - history.nowMs());
    }
    say(`final reads of ${workload.finalKeys().length} keys with r=all`);
    const finalValues = await finalReads(workload, client, cluster, history, { nVal });
    await localReads(workload, client, cluster, history, finalValues, { nVal });
    if (watchers !== undefined) {
      const until = new Map(
        workload.finalKeys().flatMap((key) => {
          const read = history?.operations.findLast((operation) => operation.f === 'final-read' && operation.type === 'ok' && operation.key === key);
          return read === undefined ? [] : [[key, (read.value as { version: number }).version] as const];
        }),
      );
      say('waiting for the watchers to report the final versions');
      await watchers.stop(until, 60_000);
      watchers = undefined;
    }

    const operations = history.operations;
    const verdict = checkRun(options.workload, operations, { replicas: Math.min(nVal, options.nodeCount), recoveryMs, bucketMode: options.bucketMode });
    const { valid, stats } = verdict;
    const results = {
      valid,
      workload: options.workload,
      conflict: options.conflictMode,
      seed: options.seed,
      nodes: options.nodeCount,
      shards,
      timeLimitS: options.timeLimitMs / 1000,
      nemesis: settings.nemesis,
      ...headlineOf(verdict.workload),
      ...(verdict.workload.verdict === undefined ? {} : { verdict: verdict.workload.verdict }),
      nothingTested: verdict.nothingTested,
      converged: verdict.convergence.valid,
      hintsDrained,
      availabilityDuringFaults: stats.availability.duringFaults.okFraction,
      availabilityOutsideFaults: stats.availability.outsideFaults.okFraction,
      warnings,
      checkers: { [options.workload]: verdict.workload, convergence: verdict.convergence, stats },
    };
    await history.close();
    writeFileSync(join(runFolder, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(
      join(runFolder, 'report.html'),
      renderReport({ title: `jepsen-lite ${options.workload} (${options.conflictMode}), seed ${options.seed}`, history: operations, results, settings }),
    );
    say('');
    printVerdict(options.workload, verdict, warnings);
    say(trafficSummary());
    say(`written: ${runFolder}/{history.jsonl,results.json,report.html}`);
    return valid ? 0 : 1;
  } finally {
    // Watchers still running (the run failed before its final reads) end before the client closes.
    await watchers?.stop(new Map(), 0);
    await history?.close();
    await client.close();
    await cluster.stop();
    await network?.stop();
    removeNamespaces();
    writeRunFile({ finishedAt: new Date().toISOString(), traffic: traffic() });
    if (options.keepData) say(`node data kept in ${dataRoot}`);
    else rmSync(dataRoot, { recursive: true, force: true });
    process.off('exit', emergencyStop);
  }
}

async function main(): Promise<void> {
  let options: RunOptions | undefined;
  try {
    options = parseRunOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${usage}`);
    process.exit(2);
  }
  if (options === undefined) {
    process.stdout.write(usage);
    process.exit(0);
  }
  try {
    process.exit(options.checkFolder === undefined ? await run(options) : recheck(options.checkFolder));
  } catch (error) {
    // Operating errors (a port in use, a node that would not start) say what to do in their
    // message; a stack only helps with programmer errors such as a TypeError.
    const text = error instanceof Error ? (error.name === 'Error' ? error.message : (error.stack ?? error.message)) : String(error);
    process.stderr.write(`jepsen-lite could not complete the run: ${text}\n`);
    process.exit(2);
  }
}

await main();
