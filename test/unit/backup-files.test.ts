import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeDataKey } from '../../src/core/keys.js';
import { encodeObject } from '../../src/core/versioning/object-codec.js';
import { encodeEnd, encodeHeader, encodeRecord } from '../../src/engine/backup-format.js';
import { type BackupManifest, backupFormatName, fileDigest, partitionFileName, verifyBackup, writeManifest } from '../../src/cli/backup-files.js';

/**
 * Goal: a backup whose file is corrupted, truncated or missing is refused by verify with the file
 * named, and an intact one passes with its counts; the manifest's checksum and the end record each
 * catch damage on their own.
 */

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

/** A finished two-partition backup written as `ringkv backup` writes one. */
async function writeBackup(): Promise<string> {
  const directory = mkdtempSync(join(tmpdir(), 'ringkv-backup-unit-'));
  folders.push(directory);
  mkdirSync(join(directory, 'partitions'));
  const object = encodeObject({
    clock: { a: 1 },
    siblings: [{ dot: { node: 'a', counter: 1 }, value: Buffer.from('v'), contentType: 'text/plain', lastModifiedMs: 1, tombstone: false }],
  });
  const tombstone = encodeObject({
    clock: { a: 2 },
    siblings: [{ dot: { node: 'a', counter: 2 }, value: Buffer.alloc(0), contentType: '', lastModifiedMs: 2, tombstone: true }],
  });
  const partitions: BackupManifest['partitions'] = {};
  for (const partition of [0, 1]) {
    const file = partitionFileName(partition);
    const bytes = Buffer.concat([
      encodeHeader(partition, 2),
      encodeRecord({ kind: 'object', dataKey: encodeDataKey('app', `key-${partition}`), objectBytes: object }),
      encodeRecord({ kind: 'reaped', dataKey: encodeDataKey('app', `gone-${partition}`), objectBytes: tombstone, reapedAtMs: 5 }),
      encodeEnd(2),
    ]);
    writeFileSync(join(directory, file), bytes);
    const digest = await fileDigest(join(directory, file));
    partitions[String(partition)] = { file, ...digest, objects: 1, reapedTombstones: 1, node: 'a', finishedAtMs: 1 };
  }
  await writeManifest(directory, {
    format: backupFormatName,
    formatVersion: 1,
    startedAtMs: 0,
    finishedAtMs: 1,
    cluster: {
      nodeId: 'a',
      partitionCount: 2,
      ring: { version: 1, owners: ['a', 'a'], changing: false },
      members: [],
      bucketProperties: {},
      reapedRetentionMs: 1,
    },
    partitions,
  });
  return directory;
}

describe('backup verify', () => {
  it('passes an intact backup with its counts', async () => {
    const verified = await verifyBackup(await writeBackup());
    expect([verified.partitions, verified.objects, verified.reapedTombstones]).toEqual([2, 2, 2]);
  });

  it('refuses a file with a flipped byte, naming it', async () => {
    const directory = await writeBackup();
    const path = join(directory, partitionFileName(1));
    const bytes = readFileSync(path);
    bytes[bytes.length - 12] = bytes[bytes.length - 12]! ^ 0xff;
    writeFileSync(path, bytes);
    await expect(verifyBackup(directory)).rejects.toMatchObject({ code: 'KV_BACKUP_INVALID', message: expect.stringContaining(path) });
  });

  it('refuses a truncated file, naming it, whatever the cut', async () => {
    for (const cut of [1, 9, 20]) {
      const directory = await writeBackup();
      const path = join(directory, partitionFileName(0));
      truncateSync(path, readFileSync(path).length - cut);
      await expect(verifyBackup(directory), `cut ${cut}`).rejects.toMatchObject({
        code: 'KV_BACKUP_INVALID',
        message: expect.stringMatching(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: .*truncated`)),
      });
    }
  });

  it('refuses a missing file and an unfinished manifest', async () => {
    const directory = await writeBackup();
    rmSync(join(directory, partitionFileName(1)));
    await expect(verifyBackup(directory)).rejects.toMatchObject({ code: 'KV_BACKUP_INVALID', message: expect.stringContaining('missing') });
    const unfinished = await writeBackup();
    const manifest = JSON.parse(readFileSync(join(unfinished, 'manifest.json'), 'utf8')) as BackupManifest;
    await writeManifest(unfinished, { ...manifest, finishedAtMs: null });
    await expect(verifyBackup(unfinished)).rejects.toMatchObject({ code: 'KV_BACKUP_INVALID', message: expect.stringContaining('unfinished') });
  });
});
