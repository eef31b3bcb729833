/**
 * A node's side of `ringkv backup` and `ringkv restore` (README, "Backup and restore"): it
 * describes the cluster for a backup's manifest, streams one partition's stored records from its
 * own storage, and merges restored versions into their keys' current replicas. No peer message is
 * new: a backup reads local storage (and each consistent key by a Paxos read), a restore goes
 * through the coordinator's replica-put path, and for consistent keys through Paxos writes.
 */
import { decodeDataKey, partitionKeyRange, ringPosition } from '../core/keys.js';
import { ReapedTombstones } from './reaped-tombstones.js';
import { consistentKeys, listingReplicas } from './consistent-listing.js';
import { preferenceList, ringMembers } from '../core/ring/ring.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { KvError, isKvError } from '../util/errors.js';
import { decodeConsistentValue, encodeConsistentValue } from '../core/consensus/consistent-value.js';
import type { WriteCondition } from '../core/consensus/compare-and-set.js';
import { leaseBucket } from '../core/leases/lease-record.js';
import { type BackupDescription, type BackupRecord, type RestoreOutcome, backupFormatVersion, encodeEnd, encodeHeader, encodeRecord } from './backup-format.js';
import type { BucketProperties } from '../config/schema.js';
import type { Coordinator } from './coordinator.js';
import type { BackupAdmin, ConsistentCommand, ConsistentOutcome, LeaseService, WriteOptions } from './kv-service.js';
import type { NodeContext } from './node-context.js';

/** Failures a restore answer describes one by one; the rest are only counted. */
const failuresShown = 20;
/** Versions one restore batch merges at once: enough to keep the replicas busy, few enough that client requests keep their share. */
const mergesAtOnce = 16;
/** Bytes of records collected before a chunk of the stream is handed on. */
const streamChunkBytes = 64 * 1024;
/** Consistent keys a backup stream reads at once (each a Paxos round on the key's primaries). */
const consistentReadsAtOnce = 16;
/** What the backup service needs from its node. */
export type BackupServiceDependencies = Pick<
  NodeContext,
  'selfId' | 'storage' | 'config' | 'clock' | 'gossiper' | 'requireRing' | 'bucketProperties' | 'nVals' | 'send'
> & {
  readonly coordinator: Coordinator;
  /** A linearizable operation on a consistent key (ClientRequests.consistent). */
  readonly consistent: (bucket: string, key: string, command: ConsistentCommand, timeoutMs?: number) => Promise<ConsistentOutcome>;
  /** Leases: a leased key is restored through the same attach as a leased write (Leases.put). */
  readonly leases: Pick<LeaseService, 'put'>;
};

/** What became of one restored record. */
type Restored = 'merged' | 'kept' | 'unleased';

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
    this.replicasToList(partition);
  }

  /**
   * The replicas a backup lists `partition`'s consistent keys from: this node, then the others
   * gossip says are up, in preference list order, until they hold a majority of the replicas of
   * every consistent bucket's n_val (leases' too). A key a Paxos round decided has state on a
   * majority of its replicas (the round's quorum), and any majority meets it, so the union of
   * their listings holds every decided key, whichever minority missed it. Fewer up is
   * KV_INSUFFICIENT_REPLICAS: a backup never copies a partition that may silently lack keys.
   */
  private replicasToList(partition: number): readonly string[] {
    const ring = this.deps.requireRing();
    const view = this.deps.gossiper.view;
    const names = new Set([leaseBucket, '', ...Object.keys(view.bucketProperties), ...Object.keys(this.deps.config.buckets)]);
    const nVals = new Set(
      [...names].map((name) => this.deps.bucketProperties(name)).flatMap((properties) => (properties.consistent === true ? [properties.nVal] : [])),
    );
    const { chosen, short } = listingReplicas(ring, partition, [...nVals], this.deps.selfId, (node) => this.deps.gossiper.isUp(node));
    if (short !== undefined) {
      const { group, up } = short;
      throw new KvError(
        'KV_INSUFFICIENT_REPLICAS',
        `partition ${partition}: a backup lists consistent keys from a majority of their replicas (${Math.floor(group.length / 2) + 1} of ${group.join(', ')}), and only ${up.length === 0 ? 'none' : up.join(', ')} ${up.length === 1 ? 'is' : 'are'} up; run the backup again once the others are back (finished partitions are kept)`,
        { details: { partitions: [partition] }, retryAfterSeconds: 5 },
      );
    }
    return chosen;
  }

  /**
   * The backup file of one partition, as chunks: the header, every stored object of the
   * partition's key range, every reaped-tombstone record of that range, every consistent key of
   * that range (leases included) that a majority of its replicas lists (listingReplicas: the
   * union of their acceptor keys, merged as sorted streams), and the end record.
   * Each scan is one LevelDB iterator, which reads from the snapshot taken when it is created,
   * so writes go on while it runs. The reaped records are scanned after the objects: a key reaped
   * between the two snapshots is then in the first as a tombstone or in the second as a record
   * (its record is written before it is deleted), never in neither. A consistent key's state is
   * not copied from this node's acceptor (which may have missed the newest decision, or hold an
   * undecided proposal): it is read by a Paxos round, so it is the key's decided state, and every
   * write acknowledged before the read began is in it. A key never written (a promise only) is
   * left out; a deleted one is kept, with its version. A read that fails ends the stream without
   * its end record, so the command refuses the file and asks the next replica.
   */
  async *partitionFile(partition: number, partitionCount: number): AsyncGenerator<Buffer> {
    const listing = this.replicasToList(partition);
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
    let pending: Buffer[] = [];
    const readPending = async (): Promise<Buffer[]> => {
      const reads = await Promise.all(pending.map(async (dataKey) => this.consistentRecord(dataKey)));
      pending = [];
      return reads.filter((record): record is Buffer => record !== undefined);
    };
    for await (const key of consistentKeys(this.deps.send, listing, partition)) {
      pending.push(key);
      if (pending.length < consistentReadsAtOnce) continue;
      for (const record of await readPending()) {
        const full = add(record);
        if (full !== undefined) yield full;
      }
    }
    for (const record of await readPending()) {
      const full = add(record);
      if (full !== undefined) yield full;
    }
    chunk.push(encodeEnd(records));
    yield Buffer.concat(chunk);
  }

  /** The record of a consistent key's decided state (a Paxos read); undefined when it was never written. */
  private async consistentRecord(dataKey: Buffer): Promise<Buffer | undefined> {
    const { bucket, key } = decodeDataKey(dataKey);
    const read = await this.deps.consistent(bucket, key, { kind: 'read' });
    if (read.version === 0) return undefined;
    return encodeRecord({
      kind: 'consistent',
      dataKey,
      version: read.version,
      value: read.value === null ? null : Buffer.from(encodeConsistentValue(read.value)),
    });
  }

  /**
   * Restores a consistent key's backed-up state by a Paxos write (a linearizable write, never a
   * raw acceptor write) that holds only while the key's version is below the backed-up one and
   * then takes that version: a key at the same or a newer version in the target is kept as it
   * is, so no version goes back. A key that names a lease is attached to it as a leased write is
   * (Leases.put: listed, written, confirmed), so the lease's end deletes it; when the lease is
   * not live in the target (ended, ending, or never restored) the key is restored deleted, at its
   * version, and never as a permanent key.
   */
  private async restoreConsistent(bucket: string, key: string, version: number, bytes: Buffer | null, timeoutMs: number | undefined): Promise<Restored> {
    const condition: WriteCondition = { kind: 'restore', version };
    const value = bytes === null ? null : decodeConsistentValue(bytes);
    try {
      if (value?.lease === undefined || bucket === leaseBucket) {
        await this.deps.consistent(bucket, key, { kind: 'write', value, condition }, timeoutMs);
        return 'merged';
      }
      const { lease, ...unleased } = value;
      try {
        await this.deps.leases.put(bucket, key, unleased, condition, lease, timeoutMs);
        return 'merged';
      } catch (error) {
        if (!isKvError(error) || error.code !== 'KV_LEASE_NOT_FOUND') throw error;
      }
      await this.deps.consistent(bucket, key, { kind: 'write', value: null, condition }, timeoutMs);
      return 'unleased';
    } catch (error) {
      if (isKvError(error) && error.code === 'KV_PRECONDITION_FAILED') return 'kept';
      throw error;
    }
  }

  /**
   * Merges restored records into their keys' current replicas (Coordinator.mergeVersion), a
   * bounded number at a time. A reaped-tombstone record is merged as the tombstone it was, so a
   * delete in the backup still supersedes what it superseded then. A consistent key's record is
   * written through Paxos (restoreConsistent). Each failure is counted and the first few
   * described; none stops the others.
   */
  async restore(records: readonly BackupRecord[], options: WriteOptions): Promise<RestoreOutcome> {
    let merged = 0;
    let kept = 0;
    let unleased = 0;
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
          if (record.kind === 'consistent') {
            const restored = await this.restoreConsistent(bucket, key, record.version, record.value, options.timeoutMs);
            if (restored === 'kept') kept += 1;
            else if (restored === 'unleased') unleased += 1;
            else merged += 1;
          } else {
            await this.deps.coordinator.mergeVersion(bucket, key, decodeObject(record.objectBytes), options);
            merged += 1;
          }
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
    return { records: records.length, merged, kept, unleased, failed, failures };
  }
}
