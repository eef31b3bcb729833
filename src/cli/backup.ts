/**
 * `ringkv backup --to DIR`, `ringkv backup verify DIR` and `ringkv restore --from DIR` (README,
 * "Backup and restore"). The command drives the nodes' admin API: it copies each partition from
 * one of its replicas (GET /admin/backup/partitions/{partition}) into DIR, recording each finished
 * file in the manifest, and restores by sending the verified records in batches to the target
 * cluster's nodes (POST /admin/restore), which merge them into the keys' replicas by their clocks.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { Agent, request } from 'undici';
import { preferenceList } from '../core/ring/ring.js';
import { decodeDataKey } from '../core/keys.js';
import { leaseBucket } from '../core/leases/lease-record.js';
import { type BackupRecord, BackupRecordReader, encodeRecord } from '../engine/backup-format.js';
import type { BackupDescription, RestoreOutcome } from '../engine/backup-format.js';
import { KvError, type KvErrorCode, errorStatusByCode } from '../util/errors.js';
import type { ClientAccess } from './client-access.js';
import {
  type BackupManifest,
  backupFormatName,
  countRecord,
  noRecords,
  partitionFileIntact,
  partitionFileName,
  readManifest,
  readPartitionFile,
  syncDirectory,
  verifyBackup,
  writeFileAtomically,
  writeManifest,
} from './backup-files.js';
import { backupFormatVersion } from '../engine/backup-format.js';

/**
 * The default throttle: a backup or restore moves at most this many MB (10^6 bytes) per second.
 * bench:backup (bench/RESULTS.md): unthrottled, a backup on a 2-core machine moved 10-15 MB/s and
 * multiplied the foreground p99 by about 10; at 2 MB/s the p99 stayed within its baselines.
 */
export const defaultRateMegabytesPerSecond = 2;
/** Bytes of records per restore request. */
const restoreBatchBytes = 1024 * 1024;
/** Partitions a restore sends at once, per node of the target cluster (each partition has one batch in flight). */
const restorePartitionsPerNode = 2;
/**
 * Connections a backup opens to reach one shard behind a sharded node's shared port before it
 * tries the partition's next replica: with S shards each lands on the wanted one about 1 in S
 * times, so 64 miss with 16 shards about once in 60.
 */
const maxShardAttempts = 64;
/** A node that sends nothing for this long is taken as hung (a throttled backup still moves bytes every second). */
const httpTimeoutMs = 120_000;

/** Where a command's lines go: stderr for progress, stdout for the result. */
export interface Output {
  progress(line: string): void;
  result(line: string): void;
}

/** The console as Output. */
export const consoleOutput: Output = {
  progress: (line) => console.error(line),
  result: (line) => console.log(line),
};

/** Limits a transfer to `bytesPerSecond` over the whole run: after each chunk it waits until the bytes so far are due. */
class Throttle {
  private readonly startedAtMs = Date.now();
  private bytes = 0;

  constructor(private readonly bytesPerSecond: number) {}

  async take(bytes: number): Promise<void> {
    this.bytes += bytes;
    if (this.bytesPerSecond <= 0) return;
    const dueAtMs = this.startedAtMs + (this.bytes / this.bytesPerSecond) * 1000;
    // In slices of at most a minute: Node fires a timer of more than 2^31 - 1 ms after 1 ms, which
    // would turn a very low --rate into no throttle at all.
    for (let waitMs = dueAtMs - Date.now(); waitMs > 1; waitMs = dueAtMs - Date.now()) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(waitMs, 60_000)));
    }
  }
}

/** The nodes' admin API over undici, with the CLI's token and CA. */
class AdminApi {
  private readonly agent: Agent;
  private readonly scheme: 'http' | 'https';

  constructor(private readonly access: ClientAccess) {
    this.scheme = access.tls === undefined ? 'http' : 'https';
    this.agent = new Agent({
      headersTimeout: httpTimeoutMs,
      bodyTimeout: httpTimeoutMs,
      ...(access.tls?.ca === undefined ? {} : { connect: { ca: access.tls.ca } }),
    });
  }

  private url(node: string, path: string): string {
    return /^https?:\/\//.test(node) ? `${new URL(node).origin}${path}` : `${this.scheme}://${node}${path}`;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.access.token === undefined ? extra : { ...extra, authorization: `Bearer ${this.access.token}` };
  }

  async json<T>(node: string, method: 'GET' | 'POST', path: string, body?: Buffer): Promise<T> {
    const response = await request(this.url(node, path), {
      method,
      dispatcher: this.agent,
      headers: this.headers(body === undefined ? {} : { 'content-type': 'application/octet-stream' }),
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.body.text();
    if (response.statusCode < 200 || response.statusCode >= 300) throw answerError(node, response.statusCode, text);
    return JSON.parse(text) as T;
  }

  /** A GET whose body is streamed, on a connection of its own (`reset`): on a sharded node's shared port each connection may reach another shard. */
  async stream(node: string, path: string): Promise<AsyncIterable<Buffer>> {
    const response = await request(this.url(node, path), { method: 'GET', dispatcher: this.agent, headers: this.headers(), reset: true });
    if (response.statusCode !== 200) throw answerError(node, response.statusCode, await response.body.text());
    return response.body as AsyncIterable<Buffer>;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** A node's error answer as a KvError (its code and message, which say what to do). */
function answerError(node: string, status: number, text: string): KvError {
  let code: string | undefined;
  let message = text.slice(0, 500);
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    code = parsed.error?.code;
    message = parsed.error?.message ?? message;
  } catch {
    // Not the documented error shape (a proxy's page, say): the text itself is shown.
  }
  const known = code !== undefined && code in errorStatusByCode ? (code as KvErrorCode) : 'KV_INTERNAL';
  return new KvError(known, `${node} answered ${status}: ${message}`);
}

function megabytes(bytes: number): string {
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

/** Reports progress at most once a second, and always for the last item. */
class Progress {
  private readonly startedAtMs = Date.now();
  private lastAtMs = 0;

  constructor(
    private readonly output: Output,
    private readonly what: string,
  ) {}

  report(done: number, total: number, bytes: number, detail = ''): void {
    const nowMs = Date.now();
    if (done < total && nowMs - this.lastAtMs < 1000) return;
    this.lastAtMs = nowMs;
    const seconds = Math.max((nowMs - this.startedAtMs) / 1000, 0.001);
    this.output.progress(`${this.what}: ${done}/${total} partitions, ${megabytes(bytes)}, ${megabytes(bytes / seconds)}/s${detail}`);
  }
}

/** The ring of a description, for preference lists. */
function ringOf(cluster: BackupManifest['cluster']): Parameters<typeof preferenceList>[0] {
  const { locations } = cluster.ring;
  return {
    partitionCount: cluster.partitionCount,
    owners: cluster.ring.owners,
    version: cluster.ring.version,
    next: null,
    ...(locations === undefined ? {} : { locations }),
  };
}

/** Options of `ringkv backup`. */
export interface BackupOptions {
  readonly node: string;
  readonly to: string;
  readonly rateMegabytesPerSecond: number;
  readonly access: ClientAccess;
  readonly output?: Output;
}

/**
 * `ringkv backup --to DIR`: copies every partition not yet finished in DIR's manifest (a finished
 * one is kept when its file still matches its checksum) from one of its replicas, the owner first.
 */
export async function runBackup(options: BackupOptions): Promise<BackupManifest> {
  const output = options.output ?? consoleOutput;
  const api = new AdminApi(options.access);
  try {
    const description = await api.json<BackupDescription>(options.node, 'GET', '/admin/backup');
    if (description.ring.changing)
      throw new KvError('KV_CONFLICT', 'the ring is changing (partitions are being handed off); back up once `ringkv status` shows no transfer under way');
    await mkdir(join(options.to, 'partitions'), { recursive: true });
    const { nowMs: _nowMs, formatVersion: _formatVersion, ...cluster } = description;
    const manifest = await resumableManifest(options.to, cluster, output);
    const count = cluster.partitionCount;
    const pending = Array.from({ length: count }, (_, partition) => partition).filter((partition) => manifest.partitions[String(partition)] === undefined);
    if (pending.length < count)
      output.progress(`backup: resuming in ${options.to}: ${count - pending.length} of ${count} partitions already done and verified`);
    const throttle = new Throttle(options.rateMegabytesPerSecond * 1_000_000);
    const progress = new Progress(output, 'backup');
    const addresses = new Map(cluster.members.map((member) => [member.id, member.address]));
    // The smallest n_val's replicas are the first entries of every bucket's preference list, so
    // they hold the partition's keys of every bucket; a larger n_val's later replicas may not.
    const nVal = Math.min(...Object.values(cluster.bucketProperties).map((properties) => properties.nVal), cluster.members.length);
    let bytes = 0;
    const ring = ringOf(cluster);
    for (const [index, partition] of pending.entries()) {
      const replicas = preferenceList(ring, partition, nVal);
      let lastError: unknown;
      let copied = false;
      for (const replica of replicas) {
        const address = addresses.get(replica);
        if (address === undefined) continue;
        // A sharded node's shard 0 is reached at the node's shared HTTP port, where each connection
        // lands on one of its shards: another shard refuses (KV_UNKNOWN_NODE) and a new connection asks again.
        for (let attempt = 1; attempt <= maxShardAttempts && !copied; attempt++) {
          try {
            const entry = await copyPartition(api, address, replica, partition, cluster, options.to, throttle);
            manifest.partitions[String(partition)] = entry;
            await writeManifest(options.to, manifest);
            bytes += entry.bytes;
            copied = true;
          } catch (error) {
            // The ring moved on: no other replica would answer differently; resuming re-reads the ring.
            if (error instanceof KvError && error.code === 'KV_CONFLICT') throw error;
            lastError = error;
            if (!(error instanceof KvError && error.code === 'KV_UNKNOWN_NODE')) break;
          }
        }
        if (copied) break;
      }
      if (!copied) {
        throw new KvError(
          'KV_INSUFFICIENT_REPLICAS',
          `no replica of partition ${partition} (${replicas.join(', ')}) could be copied (last error: ${lastError instanceof Error ? lastError.message : String(lastError)}); run the same command again to resume: finished partitions are kept`,
        );
      }
      progress.report(count - pending.length + index + 1, count, bytes);
    }
    manifest.finishedAtMs = Date.now();
    await writeManifest(options.to, manifest);
    const entries = Object.values(manifest.partitions);
    const objects = entries.reduce((sum, entry) => sum + entry.objects, 0);
    const reaped = entries.reduce((sum, entry) => sum + entry.reapedTombstones, 0);
    const consistentKeys = entries.reduce((sum, entry) => sum + entry.consistentKeys, 0);
    output.result(
      `backup complete: ${count} partitions, ${objects} objects, ${reaped} reaped tombstones, ${consistentKeys} consistent keys, ${megabytes(entries.reduce((sum, entry) => sum + entry.bytes, 0))} in ${options.to}`,
    );
    return manifest;
  } finally {
    await api.close();
  }
}

/** The manifest to continue: DIR's own (its damaged or missing files dropped) when it is of this cluster's layout, else a new one. */
async function resumableManifest(directory: string, cluster: BackupManifest['cluster'], output: Output): Promise<BackupManifest> {
  const existing = await readManifest(directory);
  if (existing === undefined) {
    const manifest: BackupManifest = {
      format: backupFormatName,
      formatVersion: backupFormatVersion,
      startedAtMs: Date.now(),
      finishedAtMs: null,
      cluster,
      partitions: {},
    };
    await writeManifest(directory, manifest);
    return manifest;
  }
  if (existing.cluster.partitionCount !== cluster.partitionCount) {
    throw new KvError(
      'KV_CONFLICT',
      `${directory} holds a backup of a cluster with ${existing.cluster.partitionCount} partitions, this one has ${cluster.partitionCount}; back up into a new directory`,
    );
  }
  for (const [partition, entry] of Object.entries(existing.partitions)) {
    if (!(await partitionFileIntact(directory, entry))) {
      output.progress(`backup: partition ${partition}: ${entry.file} does not match its checksum; copying it again`);
      delete existing.partitions[partition];
    }
  }
  // The partitions still to copy are read under the ring of now; the finished ones keep their copies.
  existing.cluster = cluster;
  existing.finishedAtMs = existing.finishedAtMs !== null && Object.keys(existing.partitions).length === cluster.partitionCount ? existing.finishedAtMs : null;
  await writeManifest(directory, existing);
  return existing;
}

/**
 * Streams one partition from `address` into a temporary file, checking the framing as it comes
 * (a stream cut off mid-way has no end record and is refused), then renames it into place.
 */
async function copyPartition(
  api: AdminApi,
  address: string,
  nodeId: string,
  partition: number,
  cluster: BackupManifest['cluster'],
  directory: string,
  throttle: Throttle,
): Promise<BackupManifest['partitions'][string]> {
  const file = partitionFileName(partition);
  const path = join(directory, file);
  const temporary = `${path}.partial`;
  const body = await api.stream(address, `/admin/backup/partitions/${partition}?ring_version=${cluster.ring.version}&node=${encodeURIComponent(nodeId)}`);
  const hash = createHash('sha256');
  const reader = new BackupRecordReader(`the stream of partition ${partition} from ${address}`, 'file');
  // flush: the file is fsynced before it is closed, so the renamed file is complete on disk.
  const sink = createWriteStream(temporary, { flush: true });
  let bytes = 0;
  const counts = noRecords();
  try {
    for await (const chunk of body) {
      hash.update(chunk);
      bytes += chunk.length;
      for (const record of reader.push(chunk)) countRecord(counts, record);
      if (!sink.write(chunk)) await once(sink, 'drain');
      await throttle.take(chunk.length);
    }
    reader.finish();
    sink.end();
    await once(sink, 'close');
  } catch (error) {
    sink.destroy();
    await rm(temporary, { force: true });
    throw error;
  }
  await rename(temporary, path);
  await syncDirectory(join(directory, 'partitions'));
  return { file, bytes, sha256: hash.digest('hex'), ...counts, node: nodeId, finishedAtMs: Date.now() };
}

/** `ringkv backup verify DIR`. */
export async function runVerify(directory: string, output: Output = consoleOutput): Promise<void> {
  const verified = await verifyBackup(directory);
  output.result(
    `${directory}: ok, format version ${verified.manifest.formatVersion}, ${verified.partitions} partitions, ${verified.objects} objects, ${verified.reapedTombstones} reaped tombstones, ${verified.consistentKeys} consistent keys, ${megabytes(verified.bytes)}`,
  );
}

/** Options of `ringkv restore`. */
export interface RestoreOptions {
  readonly node: string;
  readonly from: string;
  readonly w: 'one' | 'quorum' | 'all';
  readonly rateMegabytesPerSecond: number;
  readonly access: ClientAccess;
  readonly output?: Output;
}

/** What DIR remembers of a restore, so a re-run into the same cluster skips the partitions already merged. */
interface RestoreProgress {
  /** The target cluster: its members' ids. */
  readonly target: string;
  readonly partitions: Record<string, string>;
}

const restoreProgressName = 'restore-progress.json';

/** Whether a record is a lease's: the leases are restored first, so each leased key finds its lease in the target. */
function isLeaseRecord(record: BackupRecord): boolean {
  return record.kind === 'consistent' && decodeDataKey(record.dataKey).bucket === leaseBucket;
}

/**
 * `ringkv restore --from DIR`: verifies the whole backup first (a bad file stops it before any
 * record is sent), then merges every record into the target cluster through its nodes in turn:
 * the leases of every partition first, then everything else, so a leased key is restored only
 * under a lease the target already holds (src/engine/backup-service.ts, restoreConsistent).
 * A partition counts as restored once every one of its records was acknowledged by `w` replicas
 * (a consistent key: by a Paxos majority); a re-run into the same cluster skips those.
 */
export async function runRestore(options: RestoreOptions): Promise<{ merged: number; kept: number; unleased: number; failed: number }> {
  const output = options.output ?? consoleOutput;
  const verified = await verifyBackup(options.from);
  const { manifest } = verified;
  output.progress(
    `restore: ${options.from} verified: ${verified.partitions} partitions, ${verified.objects} objects, ${verified.reapedTombstones} reaped tombstones, ${verified.consistentKeys} consistent keys`,
  );
  const api = new AdminApi(options.access);
  try {
    const target = await api.json<BackupDescription>(options.node, 'GET', '/admin/backup');
    warnAboutTarget(manifest, target, output);
    const targetName = target.members
      .map((member) => member.id)
      .sort()
      .join(',');
    const progressPath = join(options.from, restoreProgressName);
    const previous = await readFile(progressPath, 'utf8').then(
      (text) => JSON.parse(text) as RestoreProgress,
      () => undefined,
    );
    const restored: RestoreProgress = { target: targetName, partitions: previous?.target === targetName ? previous.partitions : {} };
    const count = manifest.cluster.partitionCount;
    const skipped = Object.entries(restored.partitions).filter(([partition, sha256]) => manifest.partitions[partition]?.sha256 === sha256).length;
    if (skipped > 0) output.progress(`restore: resuming: ${skipped} of ${count} partitions were already restored into this cluster`);
    const nodes = target.members.filter((member) => member.status === 'up').map((member) => member.address);
    if (nodes.length === 0) nodes.push(options.node);
    const throttle = new Throttle(options.rateMegabytesPerSecond * 1_000_000);
    const progress = new Progress(output, 'restore');
    let turn = 0;
    let merged = 0;
    let kept = 0;
    let unleased = 0;
    let failed = 0;
    let bytes = 0;
    let done = skipped;
    const failures: RestoreOutcome['failures'][number][] = [];
    const send = async (batch: Buffer[]): Promise<RestoreOutcome> => {
      const body = Buffer.concat(batch);
      let lastError: unknown;
      // A node that cannot take the batch (down, shutting down) hands it to the next; the merges are idempotent.
      for (let attempt = 0; attempt < nodes.length; attempt++) {
        const node = nodes[turn++ % nodes.length]!;
        try {
          return await api.json<RestoreOutcome>(node, 'POST', `/admin/restore?w=${options.w}`, body);
        } catch (error) {
          lastError = error;
        }
      }
      throw lastError;
    };
    // restore-progress.json is rewritten after each restored partition, one write at a time.
    let saving = Promise.resolve();
    const saveProgress = async (): Promise<void> => {
      saving = saving.then(async () => writeFileAtomically(progressPath, `${JSON.stringify(restored)}\n`));
      await saving;
    };
    const leasesFailed = new Set<number>();
    const restorePartition = async (partition: number, pass: 'leases' | 'rest'): Promise<void> => {
      const entry = manifest.partitions[String(partition)]!;
      if (restored.partitions[String(partition)] === entry.sha256) return;
      let partitionFailed = 0;
      let batch: Buffer[] = [];
      let batchBytes = 0;
      const flush = async (): Promise<void> => {
        if (batch.length === 0) return;
        const sending = batch;
        const sendingBytes = batchBytes;
        batch = [];
        batchBytes = 0;
        const outcome = await send(sending);
        merged += outcome.merged;
        kept += outcome.kept;
        unleased += outcome.unleased;
        partitionFailed += outcome.failed;
        for (const failure of outcome.failures) if (failures.length < 20) failures.push(failure);
        await throttle.take(sendingBytes);
        bytes += sendingBytes;
      };
      await readPartitionFile(options.from, partition, entry, count, async (records: BackupRecord[]) => {
        for (const record of records) {
          if (isLeaseRecord(record) !== (pass === 'leases')) continue;
          const encoded = encodeRecord(record);
          batch.push(encoded);
          batchBytes += encoded.length;
          if (batchBytes >= restoreBatchBytes) await flush();
        }
      });
      await flush();
      failed += partitionFailed;
      // A partition's leases alone do not make it restored: its other records follow in the second pass.
      if (pass === 'leases') {
        if (partitionFailed > 0) leasesFailed.add(partition);
        return;
      }
      if (partitionFailed === 0 && !leasesFailed.has(partition)) {
        restored.partitions[String(partition)] = entry.sha256;
        await saveProgress();
      }
      done += 1;
      progress.report(done, count, bytes, failed > 0 ? `, ${failed} versions not written` : '');
    };
    // Several partitions at once, each a batch at a time: one batch in flight keeps only one node
    // merging, mergesAtOnce versions at a time, so the cluster would sit mostly idle.
    const partitionsAtOnce = Math.min(count, restorePartitionsPerNode * nodes.length);
    for (const pass of ['leases', 'rest'] as const) {
      if (pass === 'leases') output.progress('restore: the leases first, so that each leased key finds its lease');
      let nextPartition = 0;
      let stopping = false;
      const worker = async (): Promise<void> => {
        while (!stopping && nextPartition < count) {
          const partition = nextPartition++;
          try {
            await restorePartition(partition, pass);
          } catch (error) {
            stopping = true;
            throw error;
          }
        }
      };
      const outcomes = await Promise.allSettled(Array.from({ length: partitionsAtOnce }, async () => worker()));
      const rejected = outcomes.find((outcome): outcome is PromiseRejectedResult => outcome.status === 'rejected');
      if (rejected !== undefined) throw rejected.reason;
    }
    if (failed > 0) {
      const shown = failures.map((failure) => `  ${failure.bucket}/${failure.key}: ${failure.code} ${failure.message}`).join('\n');
      throw new KvError(
        'KV_INSUFFICIENT_REPLICAS',
        `${failed} versions could not be written with w=${options.w}; run the same restore again (restored partitions are skipped, and merging twice changes nothing):\n${shown}`,
      );
    }
    output.result(
      `restore complete: ${merged} versions merged into the cluster of ${options.node} (w=${options.w}); ${kept} consistent keys kept (the target had that version or a newer one), ${unleased} leased keys restored deleted (their lease is not live in the target)`,
    );
    return { merged, kept, unleased, failed };
  } finally {
    await api.close();
  }
}

/** Says where the target's settings make the restored data behave differently than in the backed-up cluster. */
function warnAboutTarget(manifest: BackupManifest, target: BackupDescription, output: Output): void {
  for (const [bucket, properties] of Object.entries(manifest.cluster.bucketProperties)) {
    const now = target.bucketProperties[bucket] ?? target.bucketProperties[''];
    if (now === undefined) continue;
    const name = bucket === '' ? 'the bucket defaults' : `bucket '${bucket}'`;
    if (now.conflictMode !== properties.conflictMode)
      output.progress(
        `restore: warning: ${name} had conflictMode ${properties.conflictMode} in the backup, the target has ${now.conflictMode}: the target's rule merges the restored versions`,
      );
    if (now.nVal !== properties.nVal) output.progress(`restore: warning: ${name} had nVal ${properties.nVal} in the backup, the target has ${now.nVal}`);
    if ((now.consistent === true) !== (properties.consistent === true))
      output.progress(
        `restore: warning: ${name} was ${properties.consistent === true ? '' : 'not '}consistent in the backup and is ${now.consistent === true ? '' : 'not '}in the target: its keys cannot be restored there (each fails with KV_CONSISTENT_BUCKET); start the target cluster with the backup's bucket settings`,
      );
  }
  const ageMs = target.nowMs - manifest.startedAtMs;
  if (ageMs > target.reapedRetentionMs) {
    output.progress(
      `restore: warning: the backup is older than the target's antiEntropy.reapedRetentionMs (${target.reapedRetentionMs} ms): a key deleted in the target and forgotten since can come back from it`,
    );
  }
}
