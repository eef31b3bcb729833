import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { memoryBytes, processTree } from '../../bench/processes.js';

/**
 * Goal: the bench measures every process of a sharded node, not only the one it started. A
 * `ringkv start --shards N` process is a supervisor whose shards (its forked children) hold the
 * data, so `processTree` must find a started process's children, parent first, and each must
 * have a peak RSS of its own.
 */
describe('processTree', () => {
  const parent = spawn(
    process.execPath,
    [
      '-e',
      // The child prints its own pid once it runs, on the stdout it shares with its parent: a pid
      // the parent printed at spawn could be read while the child was still being exec'd, with
      // a peak RSS under 1 MiB (it failed so once in CI).
      "require('node:child_process').spawn(process.execPath, ['-e', 'console.log(process.pid); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'inherit', 'ignore'] }); setInterval(() => {}, 1000);",
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  afterAll(() => {
    for (const pid of processTree(parent.pid).reverse()) process.kill(pid, 'SIGKILL');
  });

  it('finds a started process and its child, parent first, each with its own peak RSS', async () => {
    const childPid = await new Promise<number>((resolve) => parent.stdout.once('data', (chunk: Buffer) => resolve(Number(chunk.toString('utf8').trim()))));
    expect(processTree(parent.pid)).toEqual([parent.pid, childPid]);
    for (const pid of processTree(parent.pid)) expect(memoryBytes(pid, 'VmHWM')).toBeGreaterThan(1024 * 1024);
    expect(processTree(undefined)).toEqual([]);
  });
});
