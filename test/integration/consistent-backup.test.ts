import { execFile } from 'node:child_process';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
 * Goal (README, "Backup and restore", consistent buckets and leases): through the real commands on
 * real processes, `ringkv backup` of a cluster with consistent keys (several versions, a deleted
 * one) and a leased key, `ringkv backup verify`, then `ringkv restore` into a fresh cluster with
 * another partition count: every key reads back with its value and its backed-up version, the
 * deleted key stays absent, a CAS with the backed-up context succeeds once and an older one is
 * refused (412), the leased key is attached to its restored lease (revoking it there deletes the
 * key), and a second restore keeps every key. A backup of format version 1 is refused with
 * its format named before anything is sent.
 */
describe('backup and restore of consistent buckets and leases between clusters of real processes', () => {
  const folder = temporaryFolder('ringkv-consistent-backup-');
  const nodes: NodeProcess[] = [];
  const secret = 'consistent-backup-secret-0123456789';

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'restores every consistent key at its version, deleted keys absent, leased keys under their lease',
    async () => {
      const configFile = join(folder.path, 'config.json');
      writeFileSync(configFile, JSON.stringify({ buckets: { locks: { consistent: true } } }));
      const start = async (name: string, partitions: string) =>
        startCluster(3, {
          folder: join(folder.path, name),
          nodes,
          env: { RINGKV_CLUSTER_SECRET: secret, RINGKV_PARTITION_COUNT: partitions },
          extraArgs: ['--config', configFile],
          until: 'settled',
        });
      const source = await start('source', '16');
      const client = new RingClient({ nodes: source.map((node) => node.address) });
      try {
        for (let index = 0; index < 5; index++) for (let round = 0; round <= index; round++) await client.put('locks', `multi-${index}`, `round ${round}`);
        await client.put('locks', 'deleted', 'soon gone');
        await client.delete('locks', 'deleted', { ifMatch: '1' });
        const lease = await client.grantLease(600);
        await client.put('locks', 'ephemeral', 'held', { lease: lease.id, ifNoneMatch: true });
        const before = new Map<string, { found: boolean; value?: string; version?: number }>();
        const keys = ['multi-0', 'multi-1', 'multi-2', 'multi-3', 'multi-4', 'deleted', 'ephemeral'];
        const show = async (reader: RingClient, key: string) => {
          const read = await reader.get('locks', key);
          return { found: read.found, version: read.version, ...(read.found ? { value: read.siblings[0]!.value.toString() } : {}) };
        };
        for (const key of keys) before.set(key, await show(client, key));
        expect(before.get('multi-4')).toEqual({ found: true, value: 'round 4', version: 5 });
        expect(before.get('deleted')).toEqual({ found: false, version: 2 });

        const directory = join(folder.path, 'backup');
        const backup = await ringkv(['backup', '--to', directory, '--node', source[0]!.address, '--rate', '0']);
        expect(backup.code, backup.stderr).toBe(0);
        // Seven keys of the bucket and the lease.
        expect(backup.stdout).toContain('8 consistent keys');
        const verified = await ringkv(['backup', 'verify', directory]);
        expect(verified.code, verified.stderr).toBe(0);
        expect(verified.stdout).toContain('8 consistent keys');

        // A backup of the old format is refused before anything is sent.
        const old = join(folder.path, 'old-format');
        cpSync(directory, old, { recursive: true });
        const manifestPath = join(old, 'manifest.json');
        writeFileSync(manifestPath, JSON.stringify({ ...(JSON.parse(readFileSync(manifestPath, 'utf8')) as object), formatVersion: 1 }));

        const target = await start('target', '8');
        const restored = new RingClient({ nodes: target.map((node) => node.address) });
        try {
          const refused = await ringkv(['restore', '--from', old, '--node', target[0]!.address]);
          expect(refused.code).not.toBe(0);
          expect(refused.stderr).toContain("format version 1, written by a ringkv that did not back up consistent buckets' keys or leases");
          expect((await restored.get('locks', 'multi-4')).found, 'nothing was restored from the refused backup').toBe(false);

          const restore = await ringkv(['restore', '--from', directory, '--node', target[1]!.address]);
          expect(restore.code, restore.stderr).toBe(0);
          for (const key of keys) expect(await show(restored, key), `${key} restored at its backed-up version`).toEqual(before.get(key));
          expect((await restored.get('locks', 'ephemeral')).lease).toBe(lease.id);
          expect((await restored.lease(lease.id))?.keys).toEqual([{ bucket: 'locks', key: 'ephemeral' }]);

          // The old cluster's contexts: the backed-up version's CAS succeeds once, an older one is refused.
          await expect(restored.put('locks', 'multi-3', 'stale', { ifMatch: '3' })).rejects.toMatchObject({ status: 412 });
          expect((await restored.put('locks', 'multi-3', 'after restore', { ifMatch: '4' })).version).toBe(5);
          await expect(restored.put('locks', 'multi-3', 'twice', { ifMatch: '4' })).rejects.toMatchObject({ status: 412 });
          expect((await restored.put('locks', 'deleted', 'recreated', { ifNoneMatch: true })).version).toBe(3);

          // A second restore (of every partition again) keeps every key that has the backed-up version or a newer one.
          rmSync(join(directory, 'restore-progress.json'));
          const again = await ringkv(['restore', '--from', directory, '--node', target[2]!.address]);
          expect(again.code, again.stderr).toBe(0);
          expect(again.stdout).toContain('8 consistent keys kept');
          expect(await show(restored, 'multi-3')).toEqual({ found: true, value: 'after restore', version: 5 });

          // The restored lease is a lease of the target: revoking it deletes its key.
          await restored.revokeLease(lease.id);
          expect(await show(restored, 'ephemeral')).toEqual({ found: false, version: 2 });
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
