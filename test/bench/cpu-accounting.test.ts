/**
 * Goal: the bench's server CPU counts a server's child processes, so a sharded ringkv node (a
 * supervisor that does no work, and shard processes that do all of it) is measured whole. Not a
 * speed test: it only asks that a busy child's CPU shows up under its parent's pid.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'vitest';
import { cpuSnapshot } from '../../bench/cpu-accounting.js';
import { pollDeadlineMs, waitFor } from '../integration/processes.js';

describe('bench CPU accounting', () => {
  it("counts a server's children: a shell whose node child burns CPU", { timeout: pollDeadlineMs + 10_000 }, async () => {
    // sh itself stays idle, waiting for its child; the child loops until it is killed.
    const shell = spawn('sh', ['-c', `"${process.execPath}" -e "for(;;){}"; true`], { stdio: 'ignore' });
    const pid = shell.pid!;
    try {
      const before = cpuSnapshot([pid]).serverTicks;
      // 20 ticks is 0.2 s of CPU: the child gets there however loaded the machine is, sh alone never does.
      await waitFor("0.2 s of CPU under the shell's pid", pollDeadlineMs, async (see) => {
        const ticks = cpuSnapshot([pid]).serverTicks - before;
        see(`${ticks} ticks`);
        return ticks >= 20;
      });
    } finally {
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter((text) => text !== '');
      for (const child of children) process.kill(Number(child), 'SIGKILL');
      shell.kill('SIGKILL');
    }
  });
});
