/**
 * Summarises V8 CPU profiles (`node --cpu-prof` output, `.cpuprofile` JSON): the functions with
 * the most self time, and self time per module (a dependency, a ringkv source file, node's own
 * internals, GC), so a profile can be read in a terminal and quoted in bench/RESULTS.md.
 *
 *   node dist/bench/profile-summary.js [--top N] FILE.cpuprofile...
 *
 * Several files (one per node of a cluster) are added together.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** Self time of one function or module. */
export interface SelfTime {
  readonly name: string;
  readonly micros: number;
  readonly percent: number;
}

/** What a set of profiles says. */
export interface ProfileSummary {
  /** Sampled time outside '(idle)', in microseconds. */
  readonly busyMicros: number;
  readonly idleMicros: number;
  readonly functions: readonly SelfTime[];
  readonly modules: readonly SelfTime[];
}

/** The module a frame belongs to: a package, a ringkv file, node internals, or a V8 pseudo-frame. */
export function moduleOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const dependency = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dependency !== null) return dependency[1] as string;
  if (url.startsWith('node:'))
    return url
      .replace(/^node:(internal\/)?/, 'node:')
      .split('/')
      .slice(0, 2)
      .join('/');
  const own = /\/dist\/((?:src|bench)\/.+?)\.js$/.exec(url);
  if (own !== null) return own[1] as string;
  return url.replace(/^file:\/\//, '');
}

function shortUrl(url: string): string {
  const dependency = /node_modules\/(.+)$/.exec(url);
  if (dependency !== null) return dependency[1] as string;
  const own = /\/dist\/(.+)$/.exec(url);
  if (own !== null) return own[1] as string;
  return url.replace(/^file:\/\//, '');
}

/** Adds up the self time of every function and module over the given profiles. */
export function summariseProfiles(profiles: readonly CpuProfile[]): ProfileSummary {
  const byFunction = new Map<string, number>();
  const byModule = new Map<string, number>();
  let idleMicros = 0;
  let busyMicros = 0;
  for (const profile of profiles) {
    const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
    profile.samples.forEach((id, index) => {
      const micros = profile.timeDeltas[index] ?? 0;
      const frame = frames.get(id);
      if (frame === undefined) return;
      if (frame.functionName === '(idle)') {
        idleMicros += micros;
        return;
      }
      busyMicros += micros;
      const name = `${frame.functionName || '(anonymous)'} ${frame.url === '' ? '' : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`}`.trim();
      byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
      const module = moduleOf(frame.url, frame.functionName);
      byModule.set(module, (byModule.get(module) ?? 0) + micros);
    });
  }
  const ranked = (map: Map<string, number>): SelfTime[] =>
    [...map.entries()]
      .map(([name, micros]) => ({ name, micros, percent: busyMicros === 0 ? 0 : (100 * micros) / busyMicros }))
      .sort((left, right) => right.micros - left.micros);
  return { busyMicros, idleMicros, functions: ranked(byFunction), modules: ranked(byModule) };
}

/** The summary as text: busy share, then the top functions and modules by self time. */
export function formatProfileSummary(summary: ProfileSummary, top: number): string {
  const total = summary.busyMicros + summary.idleMicros;
  const lines = [
    `busy ${(summary.busyMicros / 1e6).toFixed(1)} s of ${(total / 1e6).toFixed(1)} s sampled (${total === 0 ? 0 : ((100 * summary.busyMicros) / total).toFixed(0)}% busy; shares below are of busy time)`,
    '',
    `self time by module (top ${top}):`,
    ...summary.modules.slice(0, top).map((entry) => `  ${entry.percent.toFixed(1).padStart(5)}%  ${entry.name}`),
    '',
    `self time by function (top ${top}):`,
    ...summary.functions.slice(0, top).map((entry) => `  ${entry.percent.toFixed(1).padStart(5)}%  ${entry.name}`),
  ];
  return lines.join('\n');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  let top = 30;
  const topIndex = args.indexOf('--top');
  if (topIndex >= 0) {
    top = Number(args[topIndex + 1]);
    args.splice(topIndex, 2);
  }
  if (args.length === 0) {
    console.error('usage: node dist/bench/profile-summary.js [--top N] FILE.cpuprofile...');
    process.exit(2);
  }
  const profiles = args.map((file) => JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
  console.log(formatProfileSummary(summariseProfiles(profiles), top));
}
