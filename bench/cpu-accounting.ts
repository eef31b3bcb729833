import { readFileSync, readdirSync } from 'node:fs';

/**
 * Where the machine's CPU went during a run, from /proc: the servers under test, the load
 * generator, and everything else. On a 2-core machine shared with other work, "everything else"
 * says how far a figure can be trusted, and "servers" says whether they were CPU-bound.
 */

/** CPU use over a run, in percent of one core (200 = both cores of a 2-core machine). */
export interface CpuShares {
  readonly serversPercent: number;
  readonly benchPercent: number;
  /** Busy CPU of every other process on the machine. */
  readonly otherPercent: number;
}

/** A point-in-time reading to subtract from a later one. */
export interface CpuSnapshot {
  readonly atMs: number;
  readonly machineBusyTicks: number;
  readonly serverTicks: number;
  readonly benchTicks: number;
}

/** Linux's USER_HZ: /proc counts CPU time in 1/100 s on every common configuration. */
const ticksPerSecond = 100;

function machineBusyTicks(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '';
    const fields = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    return fields.reduce((sum, value, index) => (index === 3 || index === 4 ? sum : sum + (Number.isFinite(value) ? value : 0)), 0);
  } catch {
    return 0;
  }
}

function ownTicks(pid: number): number {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces; the fields after its closing parenthesis are fixed.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** The live children of a process (every thread's list: a child belongs to the thread that forked it). */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((thread) => {
      try {
        return readFileSync(`/proc/${pid}/task/${thread}/children`, 'utf8')
          .trim()
          .split(/\s+/)
          .filter((text) => text !== '')
          .map(Number);
      } catch {
        return [];
      }
    });
  } catch {
    return [];
  }
}

/**
 * CPU ticks of a process and of its live descendants, except those under `skip`: a sharded
 * ringkv node is a supervisor whose shards do the work, and the servers the bench starts are its
 * own children, counted as servers, not as the bench.
 */
export function processTicks(pid: number | undefined, skip: ReadonlySet<number> = new Set()): number {
  if (pid === undefined || skip.has(pid)) return 0;
  return ownTicks(pid) + childrenOf(pid).reduce((sum, child) => sum + processTicks(child, skip), 0);
}

/** Reads the counters now. */
export function cpuSnapshot(serverPids: readonly (number | undefined)[]): CpuSnapshot {
  return {
    atMs: Date.now(),
    machineBusyTicks: machineBusyTicks(),
    serverTicks: serverPids.reduce((sum: number, pid) => sum + processTicks(pid), 0),
    benchTicks: processTicks(process.pid, new Set(serverPids.filter((pid): pid is number => pid !== undefined))),
  };
}

/** CPU shares between two snapshots (zeros where /proc is missing). */
export function cpuShares(before: CpuSnapshot, after: CpuSnapshot): CpuShares {
  const seconds = Math.max(0.001, (after.atMs - before.atMs) / 1000);
  const percent = (ticks: number): number => Math.max(0, Math.round((ticks / ticksPerSecond / seconds) * 100));
  const servers = after.serverTicks - before.serverTicks;
  const bench = after.benchTicks - before.benchTicks;
  const busy = after.machineBusyTicks - before.machineBusyTicks;
  return { serversPercent: percent(servers), benchPercent: percent(bench), otherPercent: percent(busy - servers - bench) };
}

/** Busy CPU of the whole machine over `ms`, in percent of one core: a check that it is quiet before measuring. */
export async function machineBusyPercent(ms = 2000): Promise<number> {
  const before = cpuSnapshot([]);
  await new Promise((resolve) => setTimeout(resolve, ms));
  const after = cpuSnapshot([]);
  return cpuShares(before, after).otherPercent + cpuShares(before, after).benchPercent;
}

/** The note a suite prints when other processes were busy before it started. */
export function busyNote(busyPercent: number): string {
  return `other processes used ${busyPercent}% of a core just before this run (see the 'other' CPU column): figures are noisier than on a quiet machine`;
}
