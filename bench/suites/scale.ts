import { performance } from 'node:perf_hooks';
import { type LoadResult, type PrefillResult, prefill, runLoad } from '../load-generator.js';
import { type MeasureOptions, driverFor, loadOptionsFor } from '../measure.js';
import { busyNote, machineBusyPercent } from '../cpu-accounting.js';
import { packageRoot, removeTemporaryFolder, temporaryFolder } from '../processes.js';
import {
  type MachineInfo,
  formatMiB,
  formatMiBPerProcess,
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
import { startRingkv, stopTarget, targetMemoryBytes } from '../targets.js';
import type { TargetVerdict } from './compare.js';

/**
 * `--suite scale`: one ringkv cluster is filled in stages (10,000 keys, then up to 1,000,000),
 * and after each stage the same load is measured over the whole key space, with each node's RSS.
 * The targets: RSS under 256 MiB per process (per shard of a sharded node, whose
 * supervisor and shards are each measured) with 1,000,000 keys, and throughput at
 * 1,000,000 keys within 20% of throughput at 10,000.
 */

/** The scale suite's settings. */
export interface ScaleOptions extends Omit<MeasureOptions, 'keyCount' | 'prefill'> {
  /** Key counts to fill to, ascending; each stage adds the keys the previous one lacked. */
  readonly stageKeyCounts: readonly number[];
  readonly nodeCount: number;
  readonly resultsDir: string;
  readonly keepData: boolean;
  readonly ringkvNodeArgs: readonly string[];
  /** Shards (processes) per node (`ringkv start --shards`). */
  readonly shards: number;
  /** Node i's port is basePort + i * shards (its shards take the ports after it); free ports when absent. */
  readonly basePort?: number;
}

/** What one stage gave. */
export interface ScaleStage {
  readonly keyCount: number;
  readonly prefill: PrefillResult;
  readonly results: readonly LoadResult[];
  readonly rssBytesPerProcess: readonly (number | null)[];
  readonly peakRssBytesPerProcess: readonly (number | null)[];
  /** Anonymous RSS at the end of the stage: what RSS counts less the executable's and the mapped table files' pages. */
  readonly anonymousBytesPerProcess: readonly (number | null)[];
}

/** What the scale suite gives. */
export interface ScaleReport {
  readonly machine: MachineInfo;
  readonly command: string;
  readonly options: ScaleOptions;
  readonly description: string;
  readonly totalSeconds: number;
  readonly stages: readonly ScaleStage[];
  readonly verdicts: readonly TargetVerdict[];
}

function scaleRows(stages: readonly ScaleStage[]): { header: string[]; rows: string[][] } {
  const header = ['keys', 'workload', ...resultColumns, 'x first stage', 'RSS MiB/process', 'peak RSS MiB/process', 'anon MiB/process', 'fill s'];
  const rows: string[][] = [];
  const first = stages[0];
  for (const stage of stages) {
    for (const result of stage.results) {
      const base = first?.results.find((other) => other.workload === result.workload);
      rows.push([
        stage.keyCount.toLocaleString('en-US'),
        result.workload,
        ...resultCells(result),
        formatRatio(base === undefined || base.opsPerSecond === 0 ? undefined : result.opsPerSecond / base.opsPerSecond),
        formatMiBPerProcess(stage.rssBytesPerProcess),
        formatMiBPerProcess(stage.peakRssBytesPerProcess),
        formatMiBPerProcess(stage.anonymousBytesPerProcess),
        stage.prefill.seconds.toFixed(0),
      ]);
    }
  }
  return { header, rows };
}

function scaleVerdicts(stages: readonly ScaleStage[]): TargetVerdict[] {
  const first = stages[0];
  const last = stages[stages.length - 1];
  if (first === undefined || last === undefined || first === last) return [];
  const verdicts: TargetVerdict[] = [];
  for (const result of last.results) {
    const base = first.results.find((other) => other.workload === result.workload);
    if (base === undefined || base.opsPerSecond === 0) continue;
    const ratio = result.opsPerSecond / base.opsPerSecond;
    verdicts.push({
      target: `${result.workload.toUpperCase()} throughput at ${last.keyCount.toLocaleString('en-US')} keys within 20% of ${first.keyCount.toLocaleString('en-US')}`,
      measured: formatRatio(ratio),
      met: ratio >= 0.8,
    });
  }
  const peaks = last.peakRssBytesPerProcess.filter((bytes): bytes is number => bytes !== null);
  verdicts.push({
    target: `peak RSS per process (shard) < 256 MiB with ${last.keyCount.toLocaleString('en-US')} keys`,
    measured: `${peaks.map(formatMiB).join(', ')} MiB`,
    met: peaks.length === 0 ? null : Math.max(...peaks) < 256 * 2 ** 20,
  });
  return verdicts;
}

/** Markdown of a scale report. */
export function scaleMarkdown(report: ScaleReport): string {
  const { header, rows } = scaleRows(report.stages);
  return [
    `Command: \`${report.command}\``,
    '',
    `Machine: ${machineLine(report.machine)}`,
    '',
    `System: ${report.description}. Load per stage: ${report.options.loop} loop, ${report.options.concurrency} clients, ${report.options.valueSizeBytes}-byte values, ${report.options.distribution} keys over the whole filled key space, ${report.options.warmupSeconds} s warm-up + ${report.options.durationSeconds} s per workload. Whole suite: ${Math.round(report.totalSeconds)} s.`,
    '',
    markdownTable(header, rows),
    '',
    markdownTable(
      ['target', 'measured', 'status'],
      report.verdicts.map((verdict) => [verdict.target, verdict.measured, verdict.met === null ? 'not measured' : verdict.met ? 'met' : 'MISSED']),
    ),
    '',
  ].join('\n');
}

/** Runs the scale suite. */
export async function runScaleSuite(options: ScaleOptions, command: string): Promise<ScaleReport> {
  const startedMs = performance.now();
  const busyPercent = await machineBusyPercent();
  if (busyPercent > 20) process.stderr.write(`note: ${busyNote(busyPercent)}\n`);
  const dataRoot = temporaryFolder('ringkv-bench-scale-');
  const stages: ScaleStage[] = [];
  const nVal = Math.min(3, options.nodeCount);
  const quorum = nVal === 1 ? {} : { r: 2, w: 2 };
  let description = '';
  try {
    const target = await startRingkv({
      name: `ringkv-${options.nodeCount}`,
      nodeCount: options.nodeCount,
      nVal,
      ...quorum,
      dataRoot,
      nodeArgs: options.ringkvNodeArgs,
      conflictMode: options.conflictMode,
      shards: options.shards,
      ...(options.basePort === undefined
        ? {}
        : { ports: Array.from({ length: options.nodeCount }, (_, index) => (options.basePort as number) + index * options.shards) }),
    });
    description = target.description;
    const driver = driverFor(target, options, Math.max(...options.stageKeyCounts));
    try {
      let filled = 0;
      for (const keyCount of options.stageKeyCounts) {
        const fill = await prefill(
          driver,
          keyCount,
          options.concurrency,
          `${target.name} ${keyCount.toLocaleString('en-US')} keys`,
          options.showProgress,
          filled,
        );
        filled = keyCount;
        process.stderr.write(`filled to ${keyCount.toLocaleString('en-US')} keys in ${fill.seconds} s (${fill.errorCount} failed)\n`);
        const results: LoadResult[] = [];
        for (const workload of options.workloads) {
          results.push(
            await runLoad(driver, loadOptionsFor(target, options, workload, keyCount, `${target.name} ${keyCount.toLocaleString('en-US')} keys ${workload}`)),
          );
        }
        const stage: ScaleStage = {
          keyCount,
          prefill: fill,
          results,
          rssBytesPerProcess: targetMemoryBytes(target, 'VmRSS'),
          peakRssBytesPerProcess: targetMemoryBytes(target, 'VmHWM'),
          anonymousBytesPerProcess: targetMemoryBytes(target, 'RssAnon'),
        };
        stages.push(stage);
        const { header, rows } = scaleRows([stage]);
        process.stderr.write(`${textTable(header, rows)}\n\n`);
      }
    } finally {
      await driver.close();
      await stopTarget(target);
    }
  } finally {
    removeTemporaryFolder(dataRoot, options.keepData);
  }
  const report: ScaleReport = {
    machine: machineInfo(packageRoot()),
    command,
    options,
    description,
    totalSeconds: (performance.now() - startedMs) / 1000,
    stages,
    verdicts: scaleVerdicts(stages),
  };
  const { header, rows } = scaleRows(stages);
  console.log(`\nringkv scale suite — ${machineLine(report.machine)}\n${description}; whole suite ${Math.round(report.totalSeconds)} s\n`);
  console.log(textTable(header, rows));
  console.log('');
  console.log(
    textTable(
      ['target', 'measured', 'status'],
      report.verdicts.map((verdict) => [verdict.target, verdict.measured, verdict.met === null ? 'not measured' : verdict.met ? 'met' : 'MISSED']),
    ),
  );
  const jsonFile = writeResultJson(options.resultsDir, 'scale', report);
  const markdownFile = writeResultText(options.resultsDir, 'scale-latest.md', scaleMarkdown(report));
  console.log(`\nresults: ${jsonFile}\n         ${markdownFile}`);
  return report;
}
