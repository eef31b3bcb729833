import type { LoadResult, Workload } from '../load-generator.js';
import { type MeasureOptions, type TargetMeasurement, measureTarget } from '../measure.js';
import { busyNote, machineBusyPercent } from '../cpu-accounting.js';
import { packageRoot, removeTemporaryFolder, temporaryFolder } from '../processes.js';
import {
  type MachineInfo,
  formatCount,
  formatMiB,
  formatMiBPerProcess,
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
import { type RunningTarget, setupEtcd, startCeiling, startEtcd, startRingkv, stopTarget } from '../targets.js';

/**
 * `--suite compare`: the ceiling, ringkv on one node, ringkv on three and etcd on three, one
 * after another on this machine under the same load, with every figure also given as a ratio to
 * the ceiling and to etcd measured in the same run, and the targets checked against them.
 */

/** The systems of the compare suite, in run order. */
export const compareTargetNames = ['ceiling', 'ringkv-1', 'ringkv-3', 'etcd-3'] as const;

/** What `--targets` runs when it is not given. */
export const defaultCompareTargets: readonly CompareTargetName[] = ['ceiling', 'ringkv-1', 'ringkv-3', 'etcd-3'];

/** One of the compare suite's systems. */
export type CompareTargetName = (typeof compareTargetNames)[number];

/** The compare suite's settings. */
export interface CompareOptions extends MeasureOptions {
  readonly targets: readonly CompareTargetName[];
  readonly resultsDir: string;
  readonly keepData: boolean;
  /** Extra node flags for the ringkv processes (e.g. --cpu-prof). */
  readonly ringkvNodeArgs: readonly string[];
}

/** One of the speed targets and where it stands. */
export interface TargetVerdict {
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
}

/** What the compare suite gives. */
export interface CompareReport {
  readonly machine: MachineInfo;
  readonly command: string;
  readonly options: CompareOptions;
  readonly notes: readonly string[];
  readonly measurements: readonly TargetMeasurement[];
  readonly verdicts: readonly TargetVerdict[];
}

async function startTarget(name: CompareTargetName, dataRoot: string, options: CompareOptions): Promise<RunningTarget> {
  switch (name) {
    case 'ceiling':
      return startCeiling(dataRoot);
    case 'ringkv-1':
      return startRingkv({ name, nodeCount: 1, nVal: 1, dataRoot, nodeArgs: options.ringkvNodeArgs, conflictMode: options.conflictMode });
    case 'ringkv-3':
      return startRingkv({ name, nodeCount: 3, nVal: 3, r: 2, w: 2, dataRoot, nodeArgs: options.ringkvNodeArgs, conflictMode: options.conflictMode });
    case 'etcd-3':
      return startEtcd(3, dataRoot);
  }
}

function find(measurements: readonly TargetMeasurement[], target: string, workload: Workload): LoadResult | undefined {
  return measurements.find((measurement) => measurement.target === target)?.results.find((result) => result.workload === workload);
}

/** Checks the targets that the compare suite can see (the 1,000,000-key ones are the scale suite's). */
export function compareVerdicts(measurements: readonly TargetMeasurement[]): TargetVerdict[] {
  const verdicts: TargetVerdict[] = [];
  const ratio = (target: string, workload: Workload, baseline: string): number | undefined => {
    const measured = find(measurements, target, workload);
    const base = find(measurements, baseline, workload);
    return measured === undefined || base === undefined || base.opsPerSecond === 0 ? undefined : measured.opsPerSecond / base.opsPerSecond;
  };
  const atLeast = (label: string, value: number | undefined, floor: number, baseline: string): void => {
    verdicts.push({
      target: label,
      measured: value === undefined ? `no ${baseline} figure in this run` : `${formatRatio(value)} ${baseline}`,
      met: value === undefined ? null : value >= floor,
    });
  };
  atLeast('3 nodes PUT >= 2x etcd', ratio('ringkv-3', 'put', 'etcd-3'), 2, 'etcd');
  atLeast('3 nodes PUT >= 0.5x ceiling', ratio('ringkv-3', 'put', 'ceiling'), 0.5, 'ceiling');
  atLeast('3 nodes GET >= 0.5x ceiling', ratio('ringkv-3', 'get', 'ceiling'), 0.5, 'ceiling');
  for (const workload of ['put', 'get'] as const) {
    const ours = find(measurements, 'ringkv-3', workload);
    const theirs = find(measurements, 'etcd-3', workload);
    verdicts.push({
      target: `3 nodes ${workload.toUpperCase()} p99 < etcd p99`,
      measured:
        ours === undefined || theirs === undefined
          ? 'no etcd figure in this run'
          : `${formatMs(ours.latency.latencyMsP99)} ms vs ${formatMs(theirs.latency.latencyMsP99)} ms`,
      met: ours === undefined || theirs === undefined ? null : ours.latency.latencyMsP99 < theirs.latency.latencyMsP99,
    });
  }
  atLeast('1 node PUT >= 0.8x ceiling', ratio('ringkv-1', 'put', 'ceiling'), 0.8, 'ceiling');
  atLeast('1 node GET >= 0.8x ceiling', ratio('ringkv-1', 'get', 'ceiling'), 0.8, 'ceiling');
  for (const target of ['ringkv-1', 'ringkv-3']) {
    const rss = measurements.find((measurement) => measurement.target === target)?.peakRssBytesPerProcess;
    if (rss === undefined) continue;
    const known = rss.filter((bytes): bytes is number => bytes !== null);
    verdicts.push({
      target: `${target} peak RSS per process (shard) < 256 MiB (at this run's key count)`,
      measured: `${known.map(formatMiB).join(', ')} MiB`,
      met: known.length === 0 ? null : Math.max(...known) < 256 * 2 ** 20,
    });
  }
  return verdicts;
}

/** The side-by-side table: one row per system and workload, with ratios to the ceiling and to etcd. */
export function compareRows(measurements: readonly TargetMeasurement[]): { header: string[]; rows: string[][] } {
  const header = ['system', 'workload', ...resultColumns, 'x ceiling', 'x etcd', 'ops/server CPU-s', 'peak RSS MiB/process'];
  const rows: string[][] = [];
  for (const measurement of measurements) {
    for (const result of measurement.results) {
      const ceiling = find(measurements, 'ceiling', result.workload);
      const etcd = find(measurements, 'etcd-3', result.workload);
      rows.push([
        measurement.target,
        result.workload,
        ...resultCells(result),
        formatRatio(ceiling === undefined || ceiling.opsPerSecond === 0 ? undefined : result.opsPerSecond / ceiling.opsPerSecond),
        formatRatio(etcd === undefined || etcd.opsPerSecond === 0 ? undefined : result.opsPerSecond / etcd.opsPerSecond),
        result.cpu.serversPercent === 0 ? 'n/a' : formatCount(result.opsPerSecond / (result.cpu.serversPercent / 100)),
        formatMiBPerProcess(measurement.peakRssBytesPerProcess),
      ]);
    }
  }
  return { header, rows };
}

function verdictRows(verdicts: readonly TargetVerdict[]): string[][] {
  return verdicts.map((verdict) => [verdict.target, verdict.measured, verdict.met === null ? 'not measured' : verdict.met ? 'met' : 'MISSED']);
}

/** Markdown of a compare report (written next to the JSON, and pasted into bench/RESULTS.md). */
export function compareMarkdown(report: CompareReport): string {
  const { header, rows } = compareRows(report.measurements);
  const load = report.options;
  return [
    `Command: \`${report.command}\``,
    '',
    `Machine: ${machineLine(report.machine)}`,
    '',
    `Load: ${load.loop} loop, ${load.concurrency} clients, ${load.valueSizeBytes}-byte values, ${load.keyCount.toLocaleString('en-US')} ${load.distribution} keys (prefilled), ${load.warmupSeconds} s warm-up then ${load.durationSeconds} s measured per workload, driver ${load.client}, ringkv buckets ${load.conflictMode}.`,
    '',
    ...report.measurements.map((measurement) => `- **${measurement.target}**: ${measurement.description}; nodes ${measurement.nodes.join(', ')}`),
    ...report.notes.map((note) => `- note: ${note}`),
    '',
    markdownTable(header, rows),
    '',
    markdownTable(['target', 'measured', 'status'], verdictRows(report.verdicts)),
    '',
  ].join('\n');
}

/** Runs the compare suite and prints the table; returns the report (also written as JSON and markdown). */
export async function runCompareSuite(options: CompareOptions, command: string): Promise<CompareReport> {
  const root = packageRoot();
  const notes: string[] = [];
  const targets = [...options.targets];
  if (targets.includes('etcd-3')) {
    const setup = setupEtcd();
    if (!setup.available) {
      notes.push(setup.note);
      process.stderr.write(`note: ${setup.note}\n`);
      targets.splice(targets.indexOf('etcd-3'), 1);
    }
  }
  const busyPercent = await machineBusyPercent();
  if (busyPercent > 20) notes.push(busyNote(busyPercent));
  const dataRoot = temporaryFolder('ringkv-bench-');
  const measurements: TargetMeasurement[] = [];
  try {
    for (const name of targets) {
      process.stderr.write(`starting ${name}...\n`);
      let target: RunningTarget;
      try {
        target = await startTarget(name, dataRoot, options);
      } catch (error) {
        const note = `${name} could not be started, so it is skipped: ${(error as Error).message.split('\n')[0]}`;
        notes.push(note);
        process.stderr.write(`note: ${note}\n`);
        continue;
      }
      try {
        const measurement = await measureTarget(target, options);
        measurements.push(measurement);
        const { header, rows } = compareRows([measurement]);
        process.stderr.write(
          `${textTable(
            header.slice(0, -4),
            rows.map((row) => row.slice(0, -4)),
          )}\n\n`,
        );
      } finally {
        await stopTarget(target);
      }
    }
  } finally {
    removeTemporaryFolder(dataRoot, options.keepData);
  }
  const report: CompareReport = { machine: machineInfo(root), command, options, notes, measurements, verdicts: compareVerdicts(measurements) };
  const { header, rows } = compareRows(measurements);
  console.log(`\nringkv compare suite — ${machineLine(report.machine)}`);
  console.log(
    `${options.loop} loop, ${options.concurrency} clients, ${options.valueSizeBytes}-byte values, ${options.keyCount.toLocaleString('en-US')} ${options.distribution} keys, ${options.warmupSeconds} s warm-up + ${options.durationSeconds} s per workload\n`,
  );
  console.log(textTable(header, rows));
  console.log('');
  for (const note of notes) console.log(`note: ${note}`);
  console.log(textTable(['target', 'measured', 'status'], verdictRows(report.verdicts)));
  const jsonFile = writeResultJson(options.resultsDir, 'compare', report);
  const markdownFile = writeResultText(options.resultsDir, 'compare-latest.md', compareMarkdown(report));
  console.log(`\nresults: ${jsonFile}\n         ${markdownFile}`);
  return report;
}
