/**
 * What the tests that start a real jepsen-lite run do when they end, whatever happened: stop
 * the runner, then every node process its run.json names, and remove the nodes' data.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Whether a process with this pid still exists. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Kills the runner (if still running) and the nodes of the newest run in `store`, and removes their data folder. */
export function stopRun(child: ChildProcess | undefined, store: string): void {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  const runFile = join(store, 'latest', 'run.json');
  if (!existsSync(runFile)) return;
  const run = JSON.parse(readFileSync(runFile, 'utf8')) as { pids: { pids: number[] }[]; dataRoot?: string };
  for (const pid of run.pids.flatMap((node) => node.pids)) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  if (run.dataRoot !== undefined) rmSync(run.dataRoot, { recursive: true, force: true });
}
