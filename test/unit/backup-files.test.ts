import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeDataKey } from '../../src/core/keys.js';
import { encodeObject } from '../../src/core/versioning/object-codec.js';
import { encodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import { encodeLeaseRecord, grantedLease, leaseBucket } from '../../src/core/leases/lease-record.js';
import { type BackupRecord, BackupRecordReader, backupFormatVersion, encodeEnd, encodeHeader, encodeRecord } from '../../src/engine/backup-format.js';
import { type BackupManifest, backupFormatName, fileDigest, partitionFileName, verifyBackup, writeManifest } from '../../src/cli/backup-files.js';

/**
 * Goal: a backup whose file is corrupted, truncated or missing is refused by verify with the file
 * named, and an intact one passes with its counts; the manifest's checksum and the end record each
 * catch damage on their own. Consistent keys' records (live, deleted, a lease) are decoded too: one
 * of a bucket the backed-up cluster did not have consistent, or a lease that is no lease record,
 * is refused; so is a backup of format version 1, which lacks them.
 */

const folders: string[] = [];
afterEach(() => {
  for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

const lockValue = (value: string, lease?: string): Buffer =>
  Buffer.from(encodeConsistentValue({ contentType: 'text/plain', value: Buffer.from(value), ...(lease === undefined ? {} : { lease }) }));

/** The consistent records each partition holds: a live key, a deleted key, a leased key and its lease. */
function consistentRecords(partition: number): BackupRecord[] {
  const lease = `00000000000000${String(partition).padStart(2, '0')}`;
  const leaseValue = Buffer.from(encodeConsistentValue({ contentType: 'application/octet-stream', value: encodeLeaseRecord(grantedLease(10)) }));
  return [
    { kind: 'consistent', dataKey: encodeDataKey('locks', `held-${partition}`), version: 7, value: lockValue('node-a') },
    { kind: 'consistent', dataKey: encodeDataKey('locks', `freed-${partition}`), version: 3, value: null },
    { kind: 'consistent', dataKey: encodeDataKey('locks', `leased-${partition}`), version: 1, value: lockValue('node-b', lease) },
    { kind: 'consistent', dataKey: encodeDataKey(leaseBucket, lease), version: 2, value: leaseValue },
  ];
}

/** A finished two-partition backup written as `ringkv backup` writes one; `change` edits the consistent records. */
async function writeBackup(
  options: {
    formatVersion?: number;
    consistent?: (records: BackupRecord[]) => BackupRecord[];
    bucketProperties?: BackupManifest['cluster']['bucketProperties'];
  } = {},
): Promise<string> {
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
    const consistent = (options.consistent ?? ((records) => records))(consistentRecords(partition));
    const bytes = Buffer.concat([
      encodeHeader(partition, 2),
      encodeRecord({ kind: 'object', dataKey: encodeDataKey('app', `key-${partition}`), objectBytes: object }),
      encodeRecord({ kind: 'reaped', dataKey: encodeDataKey('app', `gone-${partition}`), objectBytes: tombstone, reapedAtMs: 5 }),
      ...consistent.map(encodeRecord),
      encodeEnd(2 + consistent.length),
    ]);
    writeFileSync(join(directory, file), bytes);
    const digest = await fileDigest(join(directory, file));
    partitions[String(partition)] = { file, ...digest, objects: 1, reapedTombstones: 1, consistentKeys: consistent.length, node: 'a', finishedAtMs: 1 };
  }
  await writeManifest(directory, {
    format: backupFormatName,
    formatVersion: options.formatVersion ?? backupFormatVersion,
    startedAtMs: 0,
    finishedAtMs: 1,
    cluster: {
      nodeId: 'a',
      partitionCount: 2,
      ring: { version: 1, owners: ['a', 'a'], changing: false },
      members: [],
      bucketProperties: options.bucketProperties ?? { locks: { nVal: 3, r: 'quorum', w: 'quorum', conflictMode: 'siblings', consistent: true } },
      reapedRetentionMs: 1,
    },
    partitions,
  });
  return directory;
}

describe('backup verify', () => {
  it('passes an intact backup with its counts', async () => {
    const verified = await verifyBackup(await writeBackup());
    expect([verified.partitions, verified.objects, verified.reapedTombstones, verified.consistentKeys]).toEqual([2, 2, 2, 8]);
  });

  it('reads back every consistent record as written: version, value, and null for a deleted key', async () => {
    const directory = await writeBackup();
    const reader = new BackupRecordReader('partition 1', 'file');
    const records = reader.push(readFileSync(join(directory, partitionFileName(1))));
    reader.finish();
    expect(records.filter((record) => record.kind === 'consistent')).toEqual(consistentRecords(1));
  });

  it('refuses a consistent key of a bucket that was not consistent, and a lease that is no lease record', async () => {
    await expect(verifyBackup(await writeBackup({ bucketProperties: {} }))).rejects.toMatchObject({
      code: 'KV_BACKUP_INVALID',
      message: expect.stringContaining('bucket "locks" was not consistent'),
    });
    const notALease = (records: BackupRecord[]) =>
      records.map((record) => (record.kind === 'consistent' && record.version === 2 ? { ...record, value: lockValue('not a lease') } : record));
    await expect(verifyBackup(await writeBackup({ consistent: notALease }))).rejects.toMatchObject({
      code: 'KV_BACKUP_INVALID',
      message: expect.stringContaining('lease record is malformed'),
    });
    const version0 = (records: BackupRecord[]) => records.map((record) => ({ ...record, version: 0 }));
    await expect(verifyBackup(await writeBackup({ consistent: version0 }))).rejects.toMatchObject({
      code: 'KV_BACKUP_INVALID',
      message: expect.stringContaining('consistent record 3 is malformed'),
    });
  });

  it('refuses a backup of format version 1 (no consistent keys, no leases), by its manifest and by its files', async () => {
    await expect(verifyBackup(await writeBackup({ formatVersion: 1 }))).rejects.toMatchObject({
      code: 'KV_BACKUP_INVALID',
      message: expect.stringMatching(/format version 1, written by a ringkv that did not back up consistent buckets' keys or leases.*take a new backup/),
    });
    const header = encodeHeader(0, 2);
    header.writeUInt8(1, 4);
    const reader = new BackupRecordReader('an old file', 'file');
    expect(() => reader.push(header)).toThrow(expect.objectContaining({ code: 'KV_BACKUP_INVALID', message: expect.stringContaining('format version 1') }));
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
