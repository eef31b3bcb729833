/**
 * The files of a backup directory (README, "Backup and restore"): the manifest, one file per
 * partition, and their verification. A file is trusted only when its size and SHA-256 match the
 * manifest and every record in it decodes; anything else is refused with the file named.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { decodeObject } from '../core/versioning/object-codec.js';
import { type BackupRecord, BackupRecordReader, backupFormatVersion, invalidBackup, unreadableFormat } from '../engine/backup-format.js';
import { decodeConsistentValue } from '../core/consensus/consistent-value.js';
import { decodeLeaseRecord, leaseBucket } from '../core/leases/lease-record.js';
import { decodeDataKey } from '../core/keys.js';
import type { BackupDescription } from '../engine/backup-format.js';

/** The manifest's name in a backup directory. */
export const manifestName = 'manifest.json';
/** The format name every manifest carries. */
export const backupFormatName = 'ringkv-backup';

/** How many records of each kind a file holds. */
export interface RecordCounts {
  objects: number;
  reapedTombstones: number;
  consistentKeys: number;
}

/** No records yet. */
export function noRecords(): RecordCounts {
  return { objects: 0, reapedTombstones: 0, consistentKeys: 0 };
}

/** Counts one record into `counts`. */
export function countRecord(counts: RecordCounts, record: BackupRecord): void {
  if (record.kind === 'object') counts.objects += 1;
  else if (record.kind === 'reaped') counts.reapedTombstones += 1;
  else counts.consistentKeys += 1;
}

/** One finished partition in the manifest. */
export interface PartitionEntry {
  /** Relative to the backup directory. */
  readonly file: string;
  readonly bytes: number;
  readonly sha256: string;
  readonly objects: number;
  readonly reapedTombstones: number;
  /** Consistent keys (leases included), each its decided state: deleted ones too, so their version is kept. */
  readonly consistentKeys: number;
  /** The node whose replica was copied. */
  readonly node: string;
  readonly finishedAtMs: number;
}

/** manifest.json. */
export interface BackupManifest {
  readonly format: typeof backupFormatName;
  readonly formatVersion: number;
  /** When the backup began (the first run, by this machine's clock): writes acknowledged before it are in the backup. */
  readonly startedAtMs: number;
  /** When the last partition was copied; null while the backup is unfinished. */
  finishedAtMs: number | null;
  /** The cluster as the node asked saw it when the backup (or its last resumption) began. */
  cluster: Omit<BackupDescription, 'nowMs' | 'formatVersion'>;
  /** Finished partitions by number. */
  readonly partitions: Record<string, PartitionEntry>;
}

/** The path of a partition's file, relative to the backup directory. */
export function partitionFileName(partition: number): string {
  return join('partitions', `${String(partition).padStart(5, '0')}.rkvb`);
}

/** Reads and checks manifest.json; answers undefined when the directory has none. */
export async function readManifest(directory: string): Promise<BackupManifest | undefined> {
  const path = join(directory, manifestName);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let manifest: BackupManifest;
  try {
    manifest = JSON.parse(text) as BackupManifest;
  } catch {
    throw invalidBackup(path, 'the manifest is not valid JSON (truncated or edited)');
  }
  if (manifest.format !== backupFormatName) throw invalidBackup(path, `not a ringkv backup manifest (format '${String(manifest.format)}')`);
  if (manifest.formatVersion !== backupFormatVersion) throw unreadableFormat(path, manifest.formatVersion);
  const count = manifest.cluster?.partitionCount;
  if (!Number.isInteger(count) || count < 1 || typeof manifest.partitions !== 'object' || manifest.partitions === null)
    throw invalidBackup(path, 'the manifest lacks its partition count or partition list');
  return manifest;
}

/**
 * Replaces `path` with `text` so that a kill or a crash at any moment leaves the old file or the
 * new one, never a mix: the text goes to a temporary file that is fsynced, renamed over `path`,
 * and the directory is fsynced so the rename itself is durable.
 */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp`;
  const file = await open(temporary, 'w');
  try {
    await file.writeFile(text);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temporary, path);
  await syncDirectory(dirname(path));
}

/** fsyncs a directory, which makes the renames and creations of files in it durable. */
export async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes manifest.json atomically (writeFileAtomically), so an interruption leaves the old one or the new one. */
export async function writeManifest(directory: string, manifest: BackupManifest): Promise<void> {
  await writeFileAtomically(join(directory, manifestName), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Size and SHA-256 of a file, streamed. */
export async function fileDigest(path: string): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** Whether a partition's file is still the one the manifest describes (size and checksum). */
export async function partitionFileIntact(directory: string, entry: PartitionEntry): Promise<boolean> {
  const path = join(directory, entry.file);
  const size = await stat(path).then(
    (info) => info.size,
    () => undefined,
  );
  if (size !== entry.bytes) return false;
  return (await fileDigest(path)).sha256 === entry.sha256;
}

/**
 * Reads a partition file's records a chunk at a time, checking its checksum, framing and header
 * against the manifest; `onRecords` gets each chunk's records. Refuses (KV_BACKUP_INVALID,
 * naming the file) at the first problem; the checksum is compared at the end, so a caller that
 * must not act on a damaged file verifies it first (restore does).
 */
export async function readPartitionFile(
  directory: string,
  partition: number,
  entry: PartitionEntry,
  partitionCount: number,
  onRecords: (records: BackupRecord[]) => Promise<void> | void,
): Promise<RecordCounts> {
  const path = join(directory, entry.file);
  // The manifest names files only where this format puts them, so an edited manifest cannot point a restore elsewhere.
  if (entry.file !== partitionFileName(partition))
    throw invalidBackup(
      join(directory, manifestName),
      `partition ${partition} names the file '${String(entry.file).slice(0, 100)}', expected '${partitionFileName(partition)}'`,
    );
  const hash = createHash('sha256');
  const reader = new BackupRecordReader(path, 'file');
  let bytes = 0;
  const counts = noRecords();
  let stream: AsyncIterable<Buffer>;
  try {
    await stat(path);
    stream = createReadStream(path) as AsyncIterable<Buffer>;
  } catch {
    throw invalidBackup(path, 'the file is missing');
  }
  for await (const chunk of stream) {
    hash.update(chunk);
    bytes += chunk.length;
    const records = reader.push(chunk);
    if (reader.header !== undefined && (reader.header.partition !== partition || reader.header.partitionCount !== partitionCount)) {
      throw invalidBackup(
        path,
        `the file holds partition ${reader.header.partition} of ${reader.header.partitionCount}, the manifest says partition ${partition} of ${partitionCount}`,
      );
    }
    for (const record of records) countRecord(counts, record);
    if (records.length > 0) await onRecords(records);
  }
  reader.finish();
  if (bytes !== entry.bytes) throw invalidBackup(path, `the file has ${bytes} bytes, the manifest says ${entry.bytes} (truncated or appended to)`);
  if (hash.digest('hex') !== entry.sha256) throw invalidBackup(path, 'the file does not match its SHA-256 checksum in the manifest (corrupted)');
  if (counts.objects !== entry.objects || counts.reapedTombstones !== entry.reapedTombstones || counts.consistentKeys !== entry.consistentKeys) {
    throw invalidBackup(
      path,
      `the file holds ${counts.objects} objects, ${counts.reapedTombstones} reaped tombstones and ${counts.consistentKeys} consistent keys, the manifest says ${entry.objects}, ${entry.reapedTombstones} and ${entry.consistentKeys}`,
    );
  }
  return counts;
}

/** What a verified backup holds. */
export interface VerifiedBackup {
  readonly manifest: BackupManifest;
  readonly partitions: number;
  readonly objects: number;
  readonly reapedTombstones: number;
  readonly consistentKeys: number;
  readonly bytes: number;
}

/**
 * Checks that a record decodes: a stored object (or reaped tombstone) as an object; a consistent
 * key's register as a consistent value of a bucket that was consistent in the backed-up cluster,
 * and a lease's as a lease record. Throws what is wrong.
 */
function checkRecord(record: BackupRecord, manifest: BackupManifest): void {
  if (record.kind !== 'consistent') {
    decodeObject(record.objectBytes);
    return;
  }
  const { bucket } = decodeDataKey(record.dataKey);
  const properties = manifest.cluster.bucketProperties[bucket] ?? manifest.cluster.bucketProperties[''];
  if (bucket !== leaseBucket && properties?.consistent !== true)
    throw new Error(`bucket ${JSON.stringify(bucket)} was not consistent in the backed-up cluster`);
  if (record.value === null) return;
  const value = decodeConsistentValue(record.value);
  if (bucket === leaseBucket) decodeLeaseRecord(value.value);
}

/**
 * `ringkv backup verify DIR`: the manifest is complete and of a known format version, every
 * partition has its file, and every file matches its size and checksum and decodes record by
 * record (every stored object, consistent key and lease included). Refuses with the first bad
 * file named.
 */
export async function verifyBackup(directory: string): Promise<VerifiedBackup> {
  const manifest = await readManifest(directory);
  const manifestPath = join(directory, manifestName);
  if (manifest === undefined) throw invalidBackup(manifestPath, 'there is no manifest: this is not a backup directory, or the backup never started');
  const count = manifest.cluster.partitionCount;
  const missing = Array.from({ length: count }, (_, partition) => partition).filter((partition) => manifest.partitions[String(partition)] === undefined);
  if (manifest.finishedAtMs === null || missing.length > 0) {
    throw invalidBackup(
      manifestPath,
      `the backup is unfinished (${missing.length} of ${count} partitions missing); finish it with \`ringkv backup --to ${directory}\``,
    );
  }
  const counts = noRecords();
  let bytes = 0;
  for (let partition = 0; partition < count; partition++) {
    const entry = manifest.partitions[String(partition)]!;
    const path = join(directory, entry.file);
    const counted = await readPartitionFile(directory, partition, entry, count, (records) => {
      for (const record of records) {
        try {
          checkRecord(record, manifest);
        } catch (error) {
          throw invalidBackup(
            path,
            `a ${record.kind === 'consistent' ? 'consistent key' : 'stored object'} does not decode (${error instanceof Error ? error.message : String(error)})`,
          );
        }
      }
    });
    counts.objects += counted.objects;
    counts.reapedTombstones += counted.reapedTombstones;
    counts.consistentKeys += counted.consistentKeys;
    bytes += entry.bytes;
  }
  return { manifest, partitions: count, ...counts, bytes };
}
