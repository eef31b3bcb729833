import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { RingClient, RingClientError } from '../../src/client/ring-client.js';
import { type CpuShares, busyNote, cpuShares, cpuSnapshot, machineBusyPercent } from '../cpu-accounting.js';
import type { LoadResult } from '../load-generator.js';
import { runLoad } from '../load-generator.js';
import { type MeasureOptions, driverFor, loadOptionsFor } from '../measure.js';
import { packageRoot, removeTemporaryFolder, temporaryFolder } from '../processes.js';
import {
  type MachineInfo,
  formatCount,
  formatMs,
  formatRatio,
  machineInfo,
  machineLine,
  markdownTable,
  resultCells,
  resultColumns,
  textTable,
  writeResultJson,
  writeResultText,
} from '../report.js';
import { type RunningTarget, startRingkv, stopTarget } from '../targets.js';

/**
 * `--suite consistent` (issue 22, "Cost"): on one 3-node cluster (n_val 3), uncontended PUTs to a
 * plain bucket at w=quorum and to a consistent bucket (a Paxos round per write), alternating in
 * the same run so both see the same machine; then compare-and-set under contention on one key:
 * C clients each read the key and write it back incremented with `If-Match`, through RingClient as
 * the README shows it. The count each CAS phase ends with is read back and compared with the
 * increments acknowledged: fewer is a lost write, and the suite fails.
 */

/** The consistent bucket the suite's cluster is configured with; the plain one is the bench's usual bucket. */
export const consistentBucket = 'cons';

/** Settings of the consistent suite. */
export interface ConsistentOptions extends MeasureOptions {
  readonly resultsDir: string;
  readonly keepData: boolean;
  readonly ringkvNodeArgs: readonly string[];
  /** How many plain/consistent PUT pairs to run. */
  readonly rounds: number;
  /** Client counts of the CAS phases, one phase each. */
  readonly casClients: readonly number[];
}

/** Latency percentiles in milliseconds. */
export interface CasLatency {
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** One CAS-under-contention phase. */
export interface CasResult {
  readonly clients: number;
  readonly key: string;
  readonly seconds: number;
  /** Increments answered 204. */
  readonly acknowledged: number;
  /** Writes refused because another client got there first (412). */
  readonly preconditionFailed: number;
  /** Writes answered "outcome unknown" (504 with applied unknown): counted neither way. */
  readonly unknown: number;
  /** Every other failure, by status and KV_* code. */
  readonly otherErrors: Readonly<Record<string, number>>;
  /** Read, then write, of each acknowledged increment. */
  readonly latencyMs: CasLatency;
  readonly cpu: CpuShares;
  /** The count a consistent read gave after the phase. */
  readonly finalCount: number;
  /** Acknowledged increments the final count lacks (finalCount may exceed the acknowledged by at most `unknown`). */
  readonly lost: number;
  /** Increments in the final count that neither an acknowledgement nor an unknown answer accounts for. */
  readonly unexplained: number;
}

/** What the consistent suite gives. */
export interface ConsistentReport {
  readonly machine: MachineInfo;
  readonly command: string;
  readonly options: ConsistentOptions;
  readonly notes: readonly string[];
  readonly description: string;
  readonly puts: readonly { readonly phase: string; readonly bucket: string; readonly result: LoadResult }[];
  /** Consistent over plain, summed over the rounds: throughput at the same concurrency, server CPU per operation, p99. */
  readonly costs: { readonly throughput: number | undefined; readonly cpuPerOperation: number | undefined; readonly p99: number | undefined };
  readonly cas: readonly CasResult[];
}

/** Server CPU-seconds per successful operation of a result, or undefined when none succeeded. */
function cpuSecondsPerOperation(result: LoadResult): number | undefined {
  const operations = result.okCount;
  return operations === 0 ? undefined : ((result.cpu.serversPercent / 100) * result.durationSeconds) / operations;
}

function sum(values: readonly (number | undefined)[]): number | undefined {
  return values.some((value) => value === undefined) ? undefined : values.reduce<number>((total, value) => total + (value as number), 0);
}

/** Consistent over plain across every round (a ratio of sums, so one noisy round weighs what it measured). */
export function consistentCosts(puts: ConsistentReport['puts']): ConsistentReport['costs'] {
  const plain = puts.filter((put) => put.bucket !== consistentBucket).map((put) => put.result);
  const consistent = puts.filter((put) => put.bucket === consistentBucket).map((put) => put.result);
  if (plain.length === 0 || consistent.length === 0) return { throughput: undefined, cpuPerOperation: undefined, p99: undefined };
  const ratio = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined || b === undefined || b === 0 ? undefined : a / b);
  return {
    throughput: ratio(sum(plain.map((result) => result.opsPerSecond)), sum(consistent.map((result) => result.opsPerSecond))),
    cpuPerOperation: ratio(sum(consistent.map(cpuSecondsPerOperation)), sum(plain.map(cpuSecondsPerOperation))),
    p99: ratio(sum(consistent.map((result) => result.latency.latencyMsP99)), sum(plain.map((result) => result.latency.latencyMsP99))),
  };
}

/** Reads the counter at `key` (0 when absent) with its context. */
async function readCount(client: RingClient, key: string): Promise<{ count: number; context: string | undefined }> {
  const read = await client.get(consistentBucket, key);
  if (!read.found) return { count: 0, context: undefined };
  const text = read.siblings[0]?.value.toString('utf8') ?? '';
  const count = Number(text);
  if (!Number.isInteger(count)) throw new Error(`the counter ${consistentBucket}/${key} holds ${JSON.stringify(text.slice(0, 40))}, not an integer`);
  return { count, context: read.context };
}

/** C clients increment one consistent key by read then If-Match write, for `seconds`; then the count is read back and checked. */
export async function runCas(target: RunningTarget, clients: number, seconds: number, timeoutMs: number): Promise<CasResult> {
  const key = `counter-${clients}-${Date.now()}`;
  const histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
  let acknowledged = 0;
  let preconditionFailed = 0;
  let unknown = 0;
  const otherErrors = new Map<string, number>();
  const serverPids = target.processes.map((server) => server.child.pid);
  // Each client starts on another node, as many application servers would.
  const ringClients = Array.from(
    { length: clients },
    (_, index) =>
      new RingClient({
        nodes: target.nodes.map((_node, offset) => target.nodes[(index + offset) % target.nodes.length] as string),
        maxAttempts: 1,
        httpTimeoutMs: timeoutMs,
      }),
  );
  const before = cpuSnapshot(serverPids);
  const stopAtMs = performance.now() + seconds * 1000;
  const worker = async (client: RingClient): Promise<void> => {
    while (performance.now() < stopAtMs) {
      const startedMs = performance.now();
      try {
        const { count, context } = await readCount(client, key);
        await client.put(consistentBucket, key, String(count + 1), context === undefined ? { ifNoneMatch: true } : { ifMatch: context });
        acknowledged++;
        histogram.recordValue(Math.max(1, Math.round((performance.now() - startedMs) * 1000)));
      } catch (error) {
        if (!(error instanceof RingClientError)) throw error;
        if (error.status === 412) preconditionFailed++;
        else if (error.outcome === 'unknown') unknown++;
        else otherErrors.set(`${error.status} ${error.code}`, (otherErrors.get(`${error.status} ${error.code}`) ?? 0) + 1);
      }
    }
  };
  try {
    await Promise.all(ringClients.map(worker));
    const after = cpuSnapshot(serverPids);
    const finalCount = (await readCount(ringClients[0] as RingClient, key)).count;
    const ms = (micros: number): number => Math.round(micros) / 1000;
    return {
      clients,
      key,
      seconds,
      acknowledged,
      preconditionFailed,
      unknown,
      otherErrors: Object.fromEntries([...otherErrors.entries()].sort()),
      latencyMs: { p50: ms(histogram.getValueAtPercentile(50)), p99: ms(histogram.getValueAtPercentile(99)), max: ms(histogram.maxValue) },
      cpu: cpuShares(before, after),
      finalCount,
      lost: Math.max(0, acknowledged - finalCount),
      unexplained: Math.max(0, finalCount - acknowledged - unknown),
    };
  } finally {
    histogram.destroy();
    await Promise.all(ringClients.map(async (client) => client.close()));
  }
}

function casRows(results: readonly CasResult[]): { header: string[]; rows: string[][] } {
  const header = ['clients', 'CAS/s', 'p50 ms', 'p99 ms', 'ok', '412', 'unknown', 'other errors', 'final count', 'lost', 'unexplained', 'CAS/server CPU-s'];
  const rows = results.map((result) => [
    String(result.clients),
    formatCount(result.acknowledged / result.seconds),
    formatMs(result.latencyMs.p50),
    formatMs(result.latencyMs.p99),
    formatCount(result.acknowledged),
    formatCount(result.preconditionFailed),
    formatCount(result.unknown),
    Object.entries(result.otherErrors)
      .map(([what, count]) => `${what}: ${count}`)
      .join(', ') || '0',
    formatCount(result.finalCount),
    String(result.lost),
    String(result.unexplained),
    result.cpu.serversPercent === 0 ? 'n/a' : formatCount(result.acknowledged / result.seconds / (result.cpu.serversPercent / 100)),
  ]);
  return { header, rows };
}

function putRows(puts: ConsistentReport['puts']): { header: string[]; rows: string[][] } {
  const header = ['phase', ...resultColumns, 'ops/server CPU-s'];
  const rows = puts.map(({ phase, result }) => [
    phase,
    ...resultCells(result),
    result.cpu.serversPercent === 0 ? 'n/a' : formatCount(result.opsPerSecond / (result.cpu.serversPercent / 100)),
  ]);
  return { header, rows };
}

function costRows(costs: ConsistentReport['costs']): string[][] {
  const verdict = (value: number | undefined): string => (value === undefined ? 'not measured' : value <= 2.5 ? 'met' : 'MISSED');
  return [
    ['server CPU per PUT, consistent / plain <= 2.5x', formatRatio(costs.cpuPerOperation), verdict(costs.cpuPerOperation)],
    ['throughput at the same concurrency, plain / consistent <= 2.5x', formatRatio(costs.throughput), verdict(costs.throughput)],
    ['PUT p99, consistent / plain', formatRatio(costs.p99), '-'],
  ];
}

/** Markdown of a consistent report (written next to the JSON, and pasted into bench/RESULTS.md). */
export function consistentMarkdown(report: ConsistentReport): string {
  const puts = putRows(report.puts);
  const cas = casRows(report.cas);
  const load = report.options;
  return [
    `Command: \`${report.command}\``,
    '',
    `Machine: ${machineLine(report.machine)}`,
    '',
    `${report.description}. PUTs: ${load.loop} loop, ${load.concurrency} clients, ${load.valueSizeBytes}-byte values, ${load.keyCount.toLocaleString('en-US')} ${load.distribution} keys, ${load.warmupSeconds} s warm-up then ${load.durationSeconds} s measured per phase; CAS: ${load.durationSeconds} s per phase.`,
    ...report.notes.map((note) => `- note: ${note}`),
    '',
    markdownTable(puts.header, puts.rows),
    '',
    markdownTable(['cost', 'measured', 'status'], costRows(report.costs)),
    '',
    markdownTable(cas.header, cas.rows),
    '',
  ].join('\n');
}

/** Runs the consistent suite and prints its tables; returns the report (also written as JSON and markdown). */
export async function runConsistentSuite(options: ConsistentOptions, command: string): Promise<ConsistentReport> {
  const notes: string[] = [];
  const busyPercent = await machineBusyPercent();
  if (busyPercent > 20) notes.push(busyNote(busyPercent));
  const dataRoot = temporaryFolder('ringkv-bench-');
  const puts: { phase: string; bucket: string; result: LoadResult }[] = [];
  const cas: CasResult[] = [];
  let description = '';
  try {
    process.stderr.write('starting ringkv-3 with a consistent bucket...\n');
    const target = await startRingkv({
      name: 'ringkv-3',
      nodeCount: 3,
      nVal: 3,
      r: 2,
      w: 2,
      dataRoot,
      nodeArgs: options.ringkvNodeArgs,
      conflictMode: 'lww',
      config: { buckets: { [consistentBucket]: { consistent: true } } },
    });
    description = `${target.description}; bucket \`${consistentBucket}\` consistent`;
    try {
      // The consistent bucket takes no r or w: its writes are Paxos rounds on a majority of the key's primaries.
      const plain = driverFor(target, options, options.keyCount);
      const consistent = driverFor({ ...target, quorum: {} }, options, options.keyCount, consistentBucket);
      try {
        for (let round = 1; round <= options.rounds; round++) {
          for (const [name, driver, bucket] of [
            ['plain PUT (w=2)', plain, 'bench'],
            ['consistent PUT', consistent, consistentBucket],
          ] as const) {
            const phase = `${name}, round ${round}`;
            const result = await runLoad(driver, loadOptionsFor(target, options, 'put', options.keyCount, phase));
            puts.push({ phase, bucket, result });
            const rows = putRows([{ phase, bucket, result }]);
            process.stderr.write(`${textTable(rows.header, rows.rows)}\n\n`);
          }
        }
      } finally {
        await Promise.all([plain.close(), consistent.close()]);
      }
      for (const clients of options.casClients) {
        process.stderr.write(`CAS on one key, ${clients} clients, ${options.durationSeconds} s...\n`);
        cas.push(await runCas(target, clients, options.durationSeconds, options.timeoutMs));
      }
    } finally {
      await stopTarget(target);
    }
  } finally {
    removeTemporaryFolder(dataRoot, options.keepData);
  }
  const report: ConsistentReport = { machine: machineInfo(packageRoot()), command, options, notes, description, puts, costs: consistentCosts(puts), cas };
  console.log(`\nringkv consistent suite — ${machineLine(report.machine)}\n${description}\n`);
  const putTable = putRows(puts);
  console.log(textTable(putTable.header, putTable.rows));
  console.log('');
  console.log(textTable(['cost', 'measured', 'status'], costRows(report.costs)));
  console.log('');
  const casTable = casRows(cas);
  console.log(textTable(casTable.header, casTable.rows));
  for (const note of notes) console.log(`note: ${note}`);
  const jsonFile = writeResultJson(options.resultsDir, 'consistent', report);
  const markdownFile = writeResultText(options.resultsDir, 'consistent-latest.md', consistentMarkdown(report));
  console.log(`\nresults: ${jsonFile}\n         ${markdownFile}`);
  const lost = cas.filter((result) => result.lost > 0 || result.unexplained > 0);
  if (lost.length > 0)
    throw new Error(
      `CAS on one key lost or invented increments: ${lost.map((result) => `${result.clients} clients: ${result.acknowledged} acknowledged, ${result.unknown} unknown, final count ${result.finalCount}`).join('; ')}`,
    );
  return report;
}
