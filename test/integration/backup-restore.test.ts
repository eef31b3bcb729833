import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/ring-client.js';
import { type NodeProcess, killNode, processTestTimeoutMs, startCluster, temporaryFolder } from './processes.js';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

async function ringkv(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [bin, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}

/**
 * Goal: `ringkv backup` of a live 3-node cluster of real processes while a writer keeps writing,
 * interrupted and resumed, then `ringkv restore` into a fresh 4-node cluster with another
 * partition count: every write acknowledged before the backup is there with its siblings, the
 * deleted key stays deleted, the counter keeps its value, and a second restore changes nothing.
 */
describe('backup and restore between clusters of real processes', () => {
  const folder = temporaryFolder('ringkv-backup-');
  const nodes: NodeProcess[] = [];
  const secret = 'integration-secret-0123456789abcdef';

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it('keeps every acknowledged version, resumes an interrupted backup, and restores by merging', async () => {
    const source = await startCluster(3, { folder: join(folder.path, 'source'), nodes, env: { RINGKV_CLUSTER_SECRET: secret, RINGKV_PARTITION_COUNT: '16' }, until: 'settled' });
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

      // An interruption as a kill leaves it: some partitions unrecorded, their files gone or half-written.
      const manifestPath = join(directory, 'manifest.json');
      const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { finishedAtMs: number | null; partitions: Record<string, { file: string }> };
      for (const partition of ['3', '7', '11']) {
        rmSync(join(directory, manifest.partitions[partition]!.file));
        delete manifest.partitions[partition];
      }
      manifest.finishedAtMs = null;
      writeFileSync(manifestPath, JSON.stringify(manifest));
      writeFileSync(join(directory, 'partitions', '00003.rkvb.partial'), 'half');
      expect((await ringkv(['backup', 'verify', directory])).stderr).toContain('unfinished');
      const resumed = await ringkv(['backup', '--to', directory, '--node', source[2]!.address]);
      expect(resumed.code, resumed.stderr).toBe(0);
      expect(resumed.stderr).toContain('13 of 16 partitions already done');
      const verified = await ringkv(['backup', 'verify', directory]);
      expect(verified.code, verified.stderr).toBe(0);

      const target = await startCluster(4, { folder: join(folder.path, 'target'), nodes, env: { RINGKV_CLUSTER_SECRET: secret, RINGKV_PARTITION_COUNT: '8' }, until: 'settled' });
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
  }, processTestTimeoutMs);
});
