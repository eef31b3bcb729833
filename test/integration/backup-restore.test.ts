import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/ring-client.js';
import { type NodeProcess, killNode, pollDeadlineMs, processTestTimeoutMs, startCluster, temporaryFolder, waitFor } from './processes.js';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

async function ringkv(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [bin, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

/**
 * Starts a `ringkv` command, waits until `midway` holds (it reads what the command has written so
 * far), then SIGKILLs it: an interruption at a moment the command chose nothing about. Fails when
 * the command ended by itself first, since then nothing was interrupted.
 */
async function killMidway(args: string[], what: string, midway: () => boolean): Promise<void> {
  const child: ChildProcess = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let ended: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((outcome) => (ended = outcome));
  try {
    // Stops waiting when the command ends by itself too: the check below then fails at once.
    await waitFor(
      () => `${what} to be part-way; its stderr: ${stderr.slice(-500)}`,
      pollDeadlineMs,
      async () => ended !== undefined || midway(),
    );
  } finally {
    child.kill('SIGKILL');
  }
  const outcome = await exited;
  expect(outcome.signal, `${what} was to be killed mid-run, but it ended by itself (exit code ${outcome.code}); stderr: ${stderr.slice(-1000)}`).toBe(
    'SIGKILL',
  );
}

/** Parsed JSON of a file, or undefined while it does not exist. */
function jsonFile<T>(path: string): T | undefined {
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined;
}

interface ManifestShape {
  finishedAtMs: number | null;
  partitions: Record<string, { file: string; bytes: number; sha256: string }>;
}

function backupBytes(directory: string): number {
  return Object.values(jsonFile<ManifestShape>(join(directory, 'manifest.json'))!.partitions).reduce((sum, entry) => sum + entry.bytes, 0);
}

/** A --rate (MB/s) at which `bytes` take about `seconds`: slow enough to interrupt, whatever the machine. */
function rateFor(bytes: number, seconds: number): string {
  return String(bytes / seconds / 1_000_000);
}

/**
 * Goal: `ringkv backup` of a live 3-node cluster of real processes while a writer keeps writing,
 * then `ringkv restore` into a fresh 4-node cluster with another partition count: every write
 * acknowledged before the backup is there with its siblings, the deleted key stays deleted, the
 * counter keeps its value, and a second restore changes nothing. A later backup and a restore
 * of it, each SIGKILLed mid-run and run again, end as their uninterrupted runs would.
 */
describe('backup and restore between clusters of real processes', () => {
  const folder = temporaryFolder('ringkv-backup-');
  const nodes: NodeProcess[] = [];
  const secret = 'integration-secret-0123456789abcdef';

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'keeps every acknowledged version, resumes a killed backup and a killed restore, and restores by merging',
    async () => {
      const source = await startCluster(3, {
        folder: join(folder.path, 'source'),
        nodes,
        env: { RINGKV_CLUSTER_SECRET: secret, RINGKV_PARTITION_COUNT: '16' },
        until: 'settled',
      });
      const client = new RingClient({ nodes: source.map((node) => node.address) });
      try {
        for (let index = 0; index < 40; index++) await client.put('app', `key-${index}`, `value-${index}`, { w: 'all' });
        await client.put('app', 'twins', 'one', { w: 'all', node: source[0]!.address });
        await client.put('app', 'twins', 'two', { w: 'all', node: source[1]!.address });
        await client.put('app', 'gone', 'soon', { w: 'all' });
        await client.delete('app', 'gone', { w: 'all', context: (await client.get('app', 'gone', { r: 'all' })).context });
        await client.put('app', 'ttl', 'an hour', { w: 'all', ttlSeconds: 3600 });
        await client.dt.increment('app', 'hits', 9, { w: 'all' });
        await client.dt.updateSet('app', 'crew', { add: ['ann', 'bob'] }, { w: 'all' });

        // A writer keeps writing during the backup.
        let writing = true;
        let written = 0;
        const writer = (async () => {
          while (writing) await client.put('live', `w-${written++}`, 'x').catch(() => undefined);
        })();
        const directory = join(folder.path, 'backup');
        const first = await ringkv(['backup', '--to', directory, '--node', source[0]!.address]);
        writing = false;
        await writer;
        expect(first.code, first.stderr).toBe(0);
        expect(written).toBeGreaterThan(0);

        const verified = await ringkv(['backup', 'verify', directory]);
        expect(verified.code, verified.stderr).toBe(0);

        // Keys written after that backup: a restore of it lacks them, a later backup has them.
        const late = Array.from({ length: 50 }, (_, index) => `late-${index}`);
        for (const key of late) await client.put('late', key, key, { w: 'all' });

        // A real interruption of a backup: SIGKILL mid-run, then the same command again. With no
        // writes in between, every partition file is byte for byte that of an uninterrupted backup.
        const whole = join(folder.path, 'whole');
        const wholeRun = await ringkv(['backup', '--to', whole, '--node', source[1]!.address, '--rate', '0']);
        expect(wholeRun.code, wholeRun.stderr).toBe(0);
        const interrupted = join(folder.path, 'interrupted');
        const interruptedManifest = join(interrupted, 'manifest.json');
        await killMidway(['backup', '--to', interrupted, '--node', source[0]!.address, '--rate', rateFor(backupBytes(whole), 20)], 'ringkv backup', () => {
          const partial = jsonFile<ManifestShape>(interruptedManifest);
          return partial !== undefined && Object.keys(partial.partitions).length >= 1;
        });
        const left = jsonFile<ManifestShape>(interruptedManifest)!;
        expect(left.finishedAtMs).toBeNull();
        const copiedBeforeKill = Object.keys(left.partitions).length;
        expect(copiedBeforeKill).toBeLessThan(16);
        expect((await ringkv(['backup', 'verify', interrupted])).stderr).toContain('unfinished');
        const resumed = await ringkv(['backup', '--to', interrupted, '--node', source[2]!.address, '--rate', '0']);
        expect(resumed.code, resumed.stderr).toBe(0);
        expect(resumed.stderr).toContain(`${copiedBeforeKill} of 16 partitions already done`);
        const resumedVerify = await ringkv(['backup', 'verify', interrupted]);
        expect(resumedVerify.code, resumedVerify.stderr).toBe(0);
        const checksums = (path: string): Record<string, string> =>
          Object.fromEntries(
            Object.entries(jsonFile<ManifestShape>(join(path, 'manifest.json'))!.partitions).map(([partition, entry]) => [partition, entry.sha256]),
          );
        expect(checksums(interrupted)).toEqual(checksums(whole));

        const target = await startCluster(4, {
          folder: join(folder.path, 'target'),
          nodes,
          env: { RINGKV_CLUSTER_SECRET: secret, RINGKV_PARTITION_COUNT: '8' },
          until: 'settled',
        });
        const restored = new RingClient({ nodes: target.map((node) => node.address) });
        try {
          const restore = await ringkv(['restore', '--from', directory, '--node', target[0]!.address, '--w', 'all']);
          expect(restore.code, restore.stderr).toBe(0);
          const check = async (): Promise<void> => {
            for (let index = 0; index < 40; index++) {
              const read = await restored.get('app', `key-${index}`, { r: 'all' });
              expect(read.siblings.map((sibling) => sibling.value.toString())).toEqual([`value-${index}`]);
            }
            expect((await restored.get('app', 'twins', { r: 'all' })).siblings.map((sibling) => sibling.value.toString()).sort()).toEqual(['one', 'two']);
            expect((await restored.get('app', 'gone', { r: 'all' })).found).toBe(false);
            expect((await restored.get('app', 'ttl', { r: 'all' })).siblings.map((sibling) => sibling.value.toString())).toEqual(['an hour']);
            expect(await restored.dt.counter('app', 'hits', { r: 'all' })).toBe(9);
            expect((await restored.dt.set('app', 'crew', { r: 'all' }))?.value).toEqual(['ann', 'bob']);
          };
          await check();
          for (const key of late) expect((await restored.get('late', key, { r: 'all' })).found).toBe(false);

          // A real interruption of a restore: SIGKILL mid-run, then the same command again. The
          // cluster then holds exactly what the source holds, as after an uninterrupted restore.
          const progressPath = join(interrupted, 'restore-progress.json');
          await killMidway(
            ['restore', '--from', interrupted, '--node', target[2]!.address, '--w', 'all', '--rate', rateFor(backupBytes(interrupted), 20)],
            'ringkv restore',
            () => {
              const progress = jsonFile<{ partitions: Record<string, string> }>(progressPath);
              return progress !== undefined && Object.keys(progress.partitions).length >= 1;
            },
          );
          const restoredBeforeKill = Object.keys(jsonFile<{ partitions: Record<string, string> }>(progressPath)!.partitions).length;
          expect(restoredBeforeKill).toBeLessThan(16);
          const resumedRestore = await ringkv(['restore', '--from', interrupted, '--node', target[3]!.address, '--w', 'all', '--rate', '0']);
          expect(resumedRestore.code, resumedRestore.stderr).toBe(0);
          expect(resumedRestore.stderr).toContain(`resuming: ${restoredBeforeKill} of 16 partitions were already restored`);
          const keys: [string, string][] = [
            ...['twins', 'gone', 'ttl', ...Array.from({ length: 40 }, (_, index) => `key-${index}`)].map((key): [string, string] => ['app', key]),
            ...Array.from({ length: written }, (_, index): [string, string] => ['live', `w-${index}`]),
            ...late.map((key): [string, string] => ['late', key]),
          ];
          const contents = async (reader: RingClient): Promise<string[]> => {
            const seen: string[] = [];
            for (const [bucket, key] of keys) {
              const read = await reader.get(bucket, key, { r: 'all' });
              seen.push(
                `${bucket}/${key}: ${
                  read.found
                    ? read.siblings
                        .map((sibling) => sibling.value.toString())
                        .sort()
                        .join('|')
                    : 'not found'
                }`,
              );
            }
            return seen;
          };
          expect(await contents(restored)).toEqual(await contents(client));
          await check();

          // Newer writes in the target, then the same backup again: nothing newer changes.
          await restored.put('app', 'key-0', 'newer', { w: 'all', context: (await restored.get('app', 'key-0', { r: 'all' })).context });
          await restored.delete('app', 'key-1', { w: 'all', context: (await restored.get('app', 'key-1', { r: 'all' })).context });
          rmSync(join(directory, 'restore-progress.json'));
          const again = await ringkv(['restore', '--from', directory, '--node', target[1]!.address]);
          expect(again.code, again.stderr).toBe(0);
          expect((await restored.get('app', 'key-0', { r: 'all' })).siblings.map((sibling) => sibling.value.toString())).toEqual(['newer']);
          expect((await restored.get('app', 'key-1', { r: 'all' })).found).toBe(false);
          expect(await restored.dt.counter('app', 'hits', { r: 'all' })).toBe(9);
        } finally {
          await restored.close();
        }
      } finally {
        await client.close();
      }
    },
    processTestTimeoutMs,
  );
});
