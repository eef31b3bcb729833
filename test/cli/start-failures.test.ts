import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts, pollDeadlineMs, processTestTimeoutMs, temporaryFolder, waitFor } from '../integration/processes.js';

/**
 * Goal: a new user who starts ringkv wrong is told, in one line, what went wrong and what to do,
 * and the command exits non-zero: a taken port, a bad flag, an unusable data folder, a bad value
 * in the config file (even one a flag overrides), and a second `ringkv cluster` on ports another
 * cluster holds (which used to print "cluster of 1 nodes is up" with the other cluster's URLs
 * and exit 0). A node killed by a signal is reported by the signal's name.
 */

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'ringkv.js');
const folder = temporaryFolder('ringkv-start-');
const started: ChildProcess[] = [];
afterAll(() => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  folder.remove();
});

interface Outcome {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `ringkv ...args` to its end; a command that is still running after `killAfterMs` is killed (and fails the test's expectations). */
async function ringkv(args: string[], killAfterMs = pollDeadlineMs): Promise<Outcome> {
  return promisify(execFile)(process.execPath, [bin, ...args], { timeout: killAfterMs }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number | null; stdout: string; stderr: string }) => ({
      code: typeof error.code === 'number' ? error.code : null,
      stdout: error.stdout,
      stderr: error.stderr,
    }),
  );
}

/** The one-line shape every start-up failure has: `ringkv: ...`, no stack frame. */
function expectOneLine(outcome: Outcome): void {
  const lines = outcome.stderr.split('\n').filter((line) => line.trim() !== '');
  expect(lines, outcome.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^ringkv: /);
  expect(outcome.stderr).not.toMatch(/\n\s+at /);
}

describe('ringkv start, started wrong', () => {
  it('names a taken port in one line and exits 1', { timeout: processTestTimeoutMs }, async () => {
    const [port] = (await freePorts(1)) as [number];
    const holder = createServer();
    await new Promise<void>((done) => holder.listen(port, '127.0.0.1', done));
    try {
      const outcome = await ringkv(['start', '--host', '127.0.0.1', '--port', String(port), '--data', join(folder.path, 'taken'), '--log-level', 'silent']);
      expect(outcome.code).toBe(1);
      expectOneLine(outcome);
      expect(outcome.stderr).toContain(`port ${port} on 127.0.0.1 is taken`);
      expect(outcome.stderr).toContain('choose another --port');
    } finally {
      await new Promise((done) => holder.close(done));
    }
  });

  it("shows a bad --port as typed, not as 'null'", async () => {
    const outcome = await ringkv(['start', '--port', 'abc', '--data', join(folder.path, 'abc')]);
    expect(outcome.code).toBe(1);
    expectOneLine(outcome);
    expect(outcome.stderr).toContain("--port must be a port number from 1 to 65535, got 'abc'");
  });

  it('names a data folder it cannot create', async () => {
    const file = join(folder.path, 'a-file');
    writeFileSync(file, 'not a folder');
    const [port] = (await freePorts(1)) as [number];
    const outcome = await ringkv(['start', '--port', String(port), '--data', join(file, 'data'), '--log-level', 'silent']);
    expect(outcome.code).toBe(1);
    expectOneLine(outcome);
    expect(outcome.stderr).toContain(`cannot create the data directory ${join(file, 'data')}`);
  });

  it('refuses a bad value in the config file even where a flag overrides that field', { timeout: processTestTimeoutMs }, async () => {
    const config = join(folder.path, 'bad.json');
    writeFileSync(config, JSON.stringify({ logLevel: 'loud' }));
    const [port] = (await freePorts(1)) as [number];
    // On a build that lets the flag hide the file's value, this starts a node: it is killed after 60 s and fails below.
    const outcome = await ringkv(['start', '--config', config, '--log-level', 'silent', '--port', String(port), '--data', join(folder.path, 'hidden')], 60_000);
    expect(outcome.code).toBe(1);
    expectOneLine(outcome);
    expect(outcome.stderr).toContain(`config file ${config}: config field 'logLevel' must be`);
  });

  it('prints its version with --version', async () => {
    const outcome = await ringkv(['--version']);
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(outcome.code).toBe(0);
    expect(outcome.stdout.trim()).toBe(version);
  });
});

describe('ringkv cluster, on ports another cluster holds', () => {
  it('stops its own nodes and exits 1 naming the port; a node killed by a signal is named by it', { timeout: processTestTimeoutMs }, async () => {
    const [port] = (await freePorts(1)) as [number];
    const first = spawn(process.execPath, [bin, 'cluster', '--nodes', '1', '--base-port', String(port), '--data', join(folder.path, 'first')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    started.push(first);
    let firstOutput = '';
    first.stdout.on('data', (chunk: Buffer) => (firstOutput += chunk.toString('utf8')));
    first.stderr.on('data', (chunk: Buffer) => (firstOutput += chunk.toString('utf8')));
    await waitFor(
      () => `the first cluster to say it is up (its output: ${firstOutput})`,
      pollDeadlineMs,
      async () => firstOutput.includes('is up'),
    );

    mkdirSync(join(folder.path, 'second'), { recursive: true });
    const second = await ringkv(['cluster', '--nodes', '1', '--base-port', String(port), '--data', join(folder.path, 'second')]);
    expect(second.code, second.stdout + second.stderr).toBe(1);
    expect(second.stdout).not.toContain('is up');
    expect(second.stderr).toMatch(new RegExp(`node 1 \\(127\\.0\\.0\\.1:${port}\\) exited with code 1: .*port ${port}.* is taken`));
    expect(second.stderr).toContain('the nodes it started are stopped');

    // The first cluster's node (the shard supervisor it started), killed by a signal, is reported by the signal's name.
    const status = (await (await request(`http://127.0.0.1:${port}/status`)).body.json()) as { process: { supervisorPid: number } };
    process.kill(status.process.supervisorPid, 'SIGKILL');
    await waitFor(
      () => `the first cluster to report its killed node (its output: ${firstOutput})`,
      pollDeadlineMs,
      async () => firstOutput.includes('was killed by SIGKILL'),
    );
    expect(firstOutput).not.toContain('exited with code null');
    first.kill('SIGTERM');
  });
});
