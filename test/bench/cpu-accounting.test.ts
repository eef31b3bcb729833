/**
 * Goal: the bench's server CPU counts a server's child processes, so a sharded ringkv node (a
 * supervisor that does no work, and shard processes that do all of it) is measured whole, and
 * the bench's own CPU does not count the servers it started. Not a speed test: it only asks that
 * a busy child's CPU shows up under its parent's pid, and not under the bench's.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cpuSnapshot } from '../../bench/cpu-accounting.js';
import { pollDeadlineMs, waitFor } from '../integration/processes.js';

describe('bench CPU accounting', () => {
  it("counts a server's children: a shell whose node child burns CPU", { timeout: pollDeadlineMs + 10_000 }, async () => {
    // sh itself stays idle, waiting for its child; the child loops until it is killed.
    const shell = spawn('sh', ['-c', `"${process.execPath}" -e "for(;;){}"; true`], { stdio: 'ignore' });
    const pid = shell.pid!;
    try {
      const before = cpuSnapshot([pid]);
      let after = before;
      // 20 ticks is 0.2 s of CPU: the child gets there however loaded the machine is, sh alone never does.
      await waitFor("0.2 s of CPU under the shell's pid", pollDeadlineMs, async (see) => {
        after = cpuSnapshot([pid]);
        see(`${after.serverTicks - before.serverTicks} ticks`);
        return after.serverTicks - before.serverTicks >= 20;
      });
      // The server is this process's child, as the bench's servers are the bench's: its CPU is the
      // server's, not the bench's too (which made the bench's column include the servers and the
      // 'other' column read 0). This process only polls meanwhile.
      expect(after.benchTicks - before.benchTicks, "the bench's own ticks").toBeLessThan(after.serverTicks - before.serverTicks);
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
