/**
 * A node's side of `ringkv backup` and `ringkv restore` (README, "Backup and restore"): it
 * describes the cluster for a backup's manifest, streams one partition's stored records from its
 * own storage, and merges restored versions into their keys' current replicas. No peer message is
 * new: a backup reads local storage, a restore goes through the coordinator's replica-put path.
 */
import { decodeDataKey, partitionKeyRange, ringPosition } from '../core/keys.js';
import { ReapedTombstones } from './reaped-tombstones.js';
import { preferenceList, ringMembers } from '../core/ring/ring.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { KvError, isKvError } from '../util/errors.js';
import { type BackupDescription, type BackupRecord, type RestoreOutcome, backupFormatVersion, encodeEnd, encodeHeader, encodeRecord } from './backup-format.js';
import type { BucketProperties } from '../config/schema.js';
import type { Coordinator } from './coordinator.js';
import type { BackupAdmin, WriteOptions } from './kv-service.js';
import type { NodeContext } from './node-context.js';

/** Failures a restore answer describes one by one; the rest are only counted. */
const failuresShown = 20;
/** Versions one restore batch merges at once: enough to keep the replicas busy, few enough that client requests keep their share. */
const mergesAtOnce = 16;
/** Bytes of records collected before a chunk of the stream is handed on. */
const streamChunkBytes = 64 * 1024;

/** What the backup service needs from its node. */
export type BackupServiceDependencies = Pick<
  NodeContext,
  'selfId' | 'storage' | 'config' | 'clock' | 'gossiper' | 'requireRing' | 'bucketProperties' | 'nVals'
> & {
  readonly coordinator: Coordinator;
};

/** Backup and restore on one node. */
export class BackupService implements BackupAdmin {
  constructor(private readonly deps: BackupServiceDependencies) {}

  /** The cluster as this node sees it, for a manifest. */
  describe(): BackupDescription {
    const ring = this.deps.requireRing();
    const view = this.deps.gossiper.view;
    const names = new Set(['', ...Object.keys(view.bucketProperties), ...Object.keys(this.deps.config.buckets)]);
    const bucketProperties: Record<string, BucketProperties> = {};
    for (const name of names) bucketProperties[name] = this.deps.bucketProperties(name);
    const owners = new Set(ringMembers(ring));
    return {
      formatVersion: backupFormatVersion,
      nodeId: this.deps.selfId,
      partitionCount: ring.partitionCount,
      ring: {
        version: ring.version,
        owners: ring.owners,
        changing: ring.next !== null,
        ...(ring.locations === undefined ? {} : { locations: ring.locations }),
      },
      members: Object.values(view.members)
        .filter((member) => owners.has(member.id))
        .map((member) => ({ id: member.id, address: member.address, status: member.status })),
      bucketProperties,
      reapedRetentionMs: this.deps.config.antiEntropy.reapedRetentionMs,
      nowMs: this.deps.clock.nowMs(),
    };
  }

  /**
   * Checks that this node can back up `partition` now, before any byte is sent: the ring is the
   * one the backup started with and not changing (a partition being handed off may be only half
   * here), and this node is one of the partition's replicas. With `member`, also that this node
   * is that member: a sharded node's shared HTTP port reaches any of its shards, and a backup
   * asks the one it chose.
   */
  checkPartition(partition: number, ringVersion: number | undefined, member?: string): void {
    if (member !== undefined && member !== this.deps.selfId) {
      throw new KvError(
        'KV_UNKNOWN_NODE',
        `this is member ${this.deps.selfId}, not ${member}: the connection reached another shard of a sharded node's shared port; connect again (each connection reaches one shard)`,
      );
    }
    const ring = this.deps.requireRing();
    if (partition >= ring.partitionCount) {
      throw new KvError('KV_BAD_PARAMETER', `partition ${partition} does not exist: the ring has partitions 0 to ${ring.partitionCount - 1}`);
    }
    if (ringVersion !== undefined && ring.version !== ringVersion) {
      throw new KvError(
        'KV_CONFLICT',
        `the ring changed during the backup (version ${ringVersion} then, ${ring.version} now); run the backup again with the same --to: finished partitions are kept`,
      );
    }
    if (ring.next !== null) {
      throw new KvError('KV_CONFLICT', 'the ring is changing (partitions are being handed off); back up once `ringkv status` shows no transfer under way', {
        retryAfterSeconds: 5,
      });
    }
    if (!preferenceList(ring, partition, Math.max(...this.deps.nVals())).includes(this.deps.selfId)) {
      throw new KvError('KV_CONFLICT', `node ${this.deps.selfId} is not a replica of partition ${partition}; ask one of its replicas (\`ringkv ring\`)`);
    }
  }

  /**
   * The backup file of one partition, as chunks: the header, every stored object of the
   * partition's key range, every reaped-tombstone record of that range, and the end record.
   * Each scan is one LevelDB iterator, which reads from the snapshot taken when it is created,
   * so writes go on while it runs. The reaped records are scanned after the objects: a key reaped
   * between the two snapshots is then in the first as a tombstone or in the second as a record
   * (its record is written before it is deleted), never in neither.
   */
  async *partitionFile(partition: number, partitionCount: number): AsyncGenerator<Buffer> {
    yield encodeHeader(partition, partitionCount);
    const range = partitionKeyRange(partition, partitionCount);
    let records = 0;
    let chunk: Buffer[] = [];
    let chunkBytes = 0;
    const add = (record: Buffer): Buffer | undefined => {
      chunk.push(record);
      chunkBytes += record.length;
      records += 1;
      if (chunkBytes < streamChunkBytes) return undefined;
      const out = Buffer.concat(chunk);
      chunk = [];
      chunkBytes = 0;
      return out;
    };
    for await (const [key, value] of this.deps.storage.data.entries(range)) {
      const full = add(encodeRecord({ kind: 'object', dataKey: Buffer.from(key), objectBytes: Buffer.from(value) }));
      if (full !== undefined) yield full;
    }
    for await (const { dataKey, reapedAtMs, tombstoneBytes } of new ReapedTombstones(this.deps.storage.meta).recordsIn(range)) {
      const full = add(encodeRecord({ kind: 'reaped', dataKey, reapedAtMs, objectBytes: tombstoneBytes }));
      if (full !== undefined) yield full;
    }
    chunk.push(encodeEnd(records));
    yield Buffer.concat(chunk);
  }

  /**
   * Merges restored records into their keys' current replicas (Coordinator.mergeVersion), a
   * bounded number at a time. A reaped-tombstone record is merged as the tombstone it was, so a
   * delete in the backup still supersedes what it superseded then. Each failure is counted and
   * the first few described; none stops the others.
   */
  async restore(records: readonly BackupRecord[], options: WriteOptions): Promise<RestoreOutcome> {
    let merged = 0;
    let failed = 0;
    const failures: { bucket: string; key: string; code: string; message: string }[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < records.length) {
        const record = records[next]!;
        next += 1;
        const { bucket, key, position } = decodeDataKey(record.dataKey);
        try {
          if (ringPosition(bucket, key) !== position)
            throw new KvError('KV_BAD_REQUEST', `the record's ring position ${position} is not the position of its bucket and key; the backup is damaged`);
          await this.deps.coordinator.mergeVersion(bucket, key, decodeObject(record.objectBytes), options);
          merged += 1;
        } catch (error) {
          failed += 1;
          if (failures.length < failuresShown)
            failures.push({
              bucket,
              key,
              code: isKvError(error) ? error.code : 'KV_INTERNAL',
              message: error instanceof Error ? error.message : String(error),
            });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(mergesAtOnce, records.length) }, async () => worker()));
    return { records: records.length, merged, failed, failures };
  }
}
