import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import type { LoadResult } from './load-generator.js';

/** The machine a run was measured on: figures are only comparable on the same one. */
export interface MachineInfo {
  readonly cpuModel: string;
  readonly cpuCount: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly gitCommit: string;
  readonly dateIso: string;
}

/** Describes this machine and the checked-out commit. */
export function machineInfo(root: string): MachineInfo {
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: root, encoding: 'utf8' });
  const commit = git.status === 0 ? git.stdout.trim() : 'unknown';
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cpuCount: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    gitCommit: dirty.status === 0 && dirty.stdout.trim().length > 0 ? `${commit}+dirty-src` : commit,
    dateIso: new Date().toISOString(),
  };
}

/** One line of the machine description. */
export function machineLine(machine: MachineInfo): string {
  return `${machine.cpuCount} x ${machine.cpuModel}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, ringkv ${machine.gitCommit}, ${machine.dateIso}`;
}

/** Renders rows as an aligned text table (numbers right-aligned). */
export function textTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const numeric = header.map((_, column) => rows.every((row) => /^[-+]?[\d.,x%/]*$|^-$|^n\/a$/.test(row[column] ?? '')));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => (numeric[column] ? cell.padStart(widths[column] as number) : cell.padEnd(widths[column] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}

/** Renders rows as a GitHub markdown table. */
export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Thousands separators. */
export function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Milliseconds with precision that suits their size. */
export function formatMs(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

/** A ratio as '1.23x', or '-' without a baseline. */
export function formatRatio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '-' : `${value.toFixed(2)}x`;
}

/** Bytes as MiB. */
export function formatMiB(bytes: number | undefined): string {
  return bytes === undefined ? 'n/a' : (bytes / 2 ** 20).toFixed(0);
}

/** A memory figure of each process of a target in MiB, as '75/231/239' ('n/a' where /proc had none). */
export function formatMiBPerProcess(figures: readonly (number | null)[]): string {
  return figures.map((bytes) => formatMiB(bytes ?? undefined)).join('/');
}

/** Errors by outcome as 'PUT 503: 12, GET 404: 1', or '0'. */
export function formatErrors(result: LoadResult): string {
  const entries = Object.entries(result.errorsByOutcome);
  return entries.length === 0 ? '0' : entries.map(([outcome, count]) => `${outcome}: ${count}`).join(', ');
}

/** The standard columns of one load result. */
export const resultColumns = ['ops/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'errors', 'CPU% servers/bench/other'] as const;

/** The standard cells of one load result. */
export function resultCells(result: LoadResult): string[] {
  return [
    formatCount(result.opsPerSecond),
    formatMs(result.latency.latencyMsP50),
    formatMs(result.latency.latencyMsP99),
    formatMs(result.latency.latencyMsP999),
    formatMs(result.latency.latencyMsMax),
    formatErrors(result),
    `${result.cpu.serversPercent}/${result.cpu.benchPercent}/${result.cpu.otherPercent}`,
  ];
}

/** Writes a JSON result file under `folder` as NAME-YYYYMMDD-HHMMSS.json; returns its path. */
export function writeResultJson(folder: string, name: string, content: unknown): string {
  mkdirSync(folder, { recursive: true });
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  const file = join(folder, `${name}-${stamp}.json`);
  writeFileSync(file, `${JSON.stringify(content, null, 2)}\n`);
  return file;
}

/** Writes a text file under `folder`; returns its path. */
export function writeResultText(folder: string, fileName: string, content: string): string {
  mkdirSync(folder, { recursive: true });
  const file = join(folder, fileName);
  writeFileSync(file, content);
  return file;
}
