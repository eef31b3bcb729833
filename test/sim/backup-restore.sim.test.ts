import { describe, expect, it } from 'vitest';
import { decodeDataKey, encodeDataKey } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { readContext } from '../../src/core/versioning/context.js';
import { type VersionedObject, liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { type BackupRecord, BackupRecordReader, backupFormatVersion } from '../../src/engine/backup-format.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: the merge rules of backup and restore, on simulated clusters. A backup streamed from one
 * replica per partition carries every object exactly as stored (siblings, clocks, tombstones,
 * expiry, counters and sets, reaped-tombstone records): restored into a fresh cluster of another
 * size and partition count, every key reads exactly as it did. Restored into the live cluster
 * after newer writes and deletes, it changes nothing: a newer write stays the only value, a key
 * deleted since stays deleted, and a delete in a backup (even one already reaped) keeps an older
 * backup's value of that key from coming back. Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 2);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 2300 + index);

/** Short grace and fast anti-entropy, so a tombstone is reaped within the run. */
const reapConfig = {
  hintedHandoff: { enabled: true, windowMs: 1000 },
  antiEntropy: { enabled: true, intervalMs: 500, tombstoneGraceMs: 2000, maxKeysPerSecond: 100_000 },
};

const bucket = 'app';
const plainKeys = Array.from({ length: 24 }, (_, index) => `key-${index}`);
const text = (value: string) => Buffer.from(value);

/** Backs up every partition from its first replica, reading the stream as `ringkv backup` would (framing checked). */
async function takeBackup(cluster: SimCluster): Promise<BackupRecord[]> {
  const ring = cluster.members[0]!.node.gossiper.ring!;
  const records: BackupRecord[] = [];
  for (let partition = 0; partition < ring.partitionCount; partition++) {
    const holder = cluster.members.find((member) => member.nodeId === preferenceList(ring, partition, 3)[0])!;
    holder.node.backup.checkPartition(partition, ring.version, holder.nodeId);
    // Asked as another member (a sharded node's shared port reaching the wrong shard), the node refuses before any byte.
    const other = cluster.members.find((member) => member !== holder)!;
    expect(() => holder.node.backup.checkPartition(partition, ring.version, other.nodeId)).toThrow(expect.objectContaining({ code: 'KV_UNKNOWN_NODE' }));
    const reader = new BackupRecordReader(`partition ${partition}`, 'file');
    // On the virtual clock: the stream asks a majority of the partition's replicas for their consistent keys.
    const copy = async (): Promise<void> => {
      for await (const chunk of holder.node.backup.partitionFile(partition, ring.partitionCount)) records.push(...reader.push(chunk));
    };
    await cluster.drive(copy());
    reader.finish();
    expect(reader.header).toEqual({ formatVersion: backupFormatVersion, partition, partitionCount: ring.partitionCount });
  }
  return records;
}

/** Restores through one node in batches, as the CLI does; answers the failures. */
async function restore(cluster: SimCluster, records: readonly BackupRecord[]): Promise<number> {
  let failed = 0;
  for (let start = 0; start < records.length; start += 50) {
    const outcome = await cluster.drive(cluster.members[start % cluster.members.length]!.node.backup.restore(records.slice(start, start + 50), { w: 'all' }));
    failed += outcome.failed;
    expect(outcome.failures).toEqual([]);
  }
  return failed;
}

/** What every replica set answers for each key (r=all), by key. */
async function readAll(cluster: SimCluster, keys: readonly string[]): Promise<Map<string, VersionedObject | undefined>> {
  const reads = new Map<string, VersionedObject | undefined>();
  for (const key of keys) reads.set(key, await cluster.drive(cluster.members[0]!.node.get(bucket, key, { r: 'all' })));
  return reads;
}

function liveValues(object: VersionedObject | undefined, nowMs: number): string[] {
  return object === undefined
    ? []
    : liveSiblings(object, nowMs)
        .map((sibling) => Buffer.from(sibling.value).toString())
        .sort();
}

async function put(cluster: SimCluster, key: string, value: string, context?: VersionedObject, ttlSeconds?: number): Promise<void> {
  await cluster.drive(
    cluster.members[0]!.node.put({
      bucket,
      key,
      value: text(value),
      contentType: 'text/plain',
      context: context === undefined ? undefined : readContext(context.clock),
      options: { w: 'all' },
      ...(ttlSeconds === undefined ? {} : { ttlSeconds }),
    }),
  );
}

async function remove(cluster: SimCluster, key: string): Promise<void> {
  const read = await cluster.drive(cluster.members[0]!.node.get(bucket, key, { r: 'all' }));
  await cluster.drive(
    cluster.members[0]!.node.delete({ bucket, key, context: read === undefined ? undefined : readContext(read.clock), options: { w: 'all' } }),
  );
}

describe('simulation: backup and restore keep every version and merge by the clocks', () => {
  it.each(seeds)(
    'seed %i: a fresh cluster of another size and partition count reads exactly as the backed-up one; a second restore changes nothing',
    async (seed) => {
      const source = await SimCluster.start(seed, 3, { partitionCount: 32 });
      const target = await SimCluster.start(seed + 1000, 4, { partitionCount: 16 });
      try {
        for (const key of plainKeys) await put(source, key, `value of ${key}`);
        // Two blind writes through different coordinators: concurrent, so two siblings.
        await blindSiblings(source, 'siblings');
        await put(source, 'deleted', 'soon gone');
        await remove(source, 'deleted');
        await put(source, 'expiring', 'for an hour', undefined, 3600);
        await put(source, 'expired', 'for a second', undefined, 1);
        await source.clock.advance(2000);
        await source.drive(source.members[0]!.node.dataTypes.update(bucket, 'hits', { type: 'counter', increment: 5 }, { w: 'all' }));
        await source.drive(source.members[1]!.node.dataTypes.update(bucket, 'hits', { type: 'counter', increment: -2 }, { w: 'all' }));
        await source.drive(source.members[0]!.node.dataTypes.update(bucket, 'members', { type: 'set', add: ['ann', 'bob'], remove: [] }, { w: 'all' }));
        const keys = [...plainKeys, 'siblings', 'deleted', 'expiring', 'expired'];
        const before = await readAll(source, keys);
        expect(liveValues(before.get('siblings'), source.clock.nowMs())).toEqual(['first', 'second']);

        const records = await takeBackup(source);
        const backedUp = new Set(records.map((record) => decodeDataKey(record.dataKey).key));
        for (const key of keys) expect(backedUp.has(key), `seed ${seed}: ${key} is in the backup`).toBe(true);
        expect(await restore(target, records)).toBe(0);

        const restored = await readAll(target, keys);
        for (const key of keys)
          expect(restored.get(key), `seed ${seed}: ${key} restored exactly (clock, siblings, tombstones, expiry)`).toEqual(before.get(key));
        expect(liveValues(restored.get('deleted'), target.clock.nowMs())).toEqual([]);
        // Expiry is an absolute time in the version: once the target's clock passes it, the restored value is gone too.
        expect(liveValues(restored.get('expiring'), target.clock.nowMs())).toEqual(['for an hour']);
        await target.clock.advance(5000);
        expect(liveValues(restored.get('expired'), target.clock.nowMs())).toEqual([]);
        expect(await target.drive(target.members[3]!.node.dataTypes.read(bucket, 'hits', { r: 'all' }))).toMatchObject({ type: 'counter', value: 3 });
        expect(await target.drive(target.members[2]!.node.dataTypes.read(bucket, 'members', { r: 'all' }))).toMatchObject({
          type: 'set',
          value: ['ann', 'bob'],
        });

        // Restoring the same backup again is a no-op: every version is already there.
        expect(await restore(target, records)).toBe(0);
        expect(await readAll(target, keys)).toEqual(restored);
        expect(await target.drive(target.members[0]!.node.dataTypes.read(bucket, 'hits', { r: 'all' }))).toMatchObject({ value: 3 });
      } finally {
        await source.stop();
        await target.stop();
      }
    },
  );

  it.each(seeds)('seed %i: an old backup restored into the live cluster overwrites no newer write and revives no newer delete', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, { partitionCount: 32 });
    try {
      for (const key of plainKeys) await put(cluster, key, `old ${key}`);
      await put(cluster, 'deleted-then-written', 'first life');
      await remove(cluster, 'deleted-then-written');
      const records = await takeBackup(cluster);

      // After the backup: an overwrite (with the read's context), a delete, a blind write (a
      // sibling of the backed-up value), and a new value for a key the backup has deleted.
      const read = (key: string) => cluster.drive(cluster.members[0]!.node.get(bucket, key, { r: 'all' }));
      await put(cluster, 'key-0', 'newer', await read('key-0'));
      await remove(cluster, 'key-1');
      await cluster.drive(
        cluster.members[2]!.node.put({ bucket, key: 'key-2', value: text('blind'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
      );
      await put(cluster, 'deleted-then-written', 'second life', await read('deleted-then-written'));
      const keys = [...plainKeys, 'deleted-then-written'];
      const live = await readAll(cluster, keys);

      expect(await restore(cluster, records)).toBe(0);
      const after = await readAll(cluster, keys);
      for (const key of keys) expect(after.get(key), `seed ${seed}: ${key} unchanged by the restore of an older backup`).toEqual(live.get(key));
      const nowMs = cluster.clock.nowMs();
      expect(liveValues(after.get('key-0'), nowMs)).toEqual(['newer']);
      expect(liveValues(after.get('key-1'), nowMs)).toEqual([]);
      expect(liveValues(after.get('key-2'), nowMs)).toEqual(['blind', 'old key-2']);
      expect(liveValues(after.get('deleted-then-written'), nowMs)).toEqual(['second life']);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: a reaped delete travels in the backup as its tombstone, so an older backup of the key cannot bring it back', async (seed) => {
    const source = await SimCluster.start(seed, 3, { partitionCount: 32, ...reapConfig });
    try {
      await put(source, 'reaped', 'alive once');
      const older = await takeBackup(source);
      await remove(source, 'reaped');
      await source.runUntil(
        async () => {
          for (const member of source.members) if ((await member.storage.data.get(encodeDataKey(bucket, 'reaped'))) !== undefined) return false;
          return true;
        },
        60_000,
        'the tombstone is reaped on every replica',
      );
      const newer = await takeBackup(source);
      const reaped = newer.filter((record) => record.kind === 'reaped' && decodeDataKey(record.dataKey).key === 'reaped');
      expect(reaped.length, `seed ${seed}: the reaped-tombstone record is in the backup`).toBeGreaterThan(0);
      expect(newer.some((record) => record.kind === 'object' && decodeDataKey(record.dataKey).key === 'reaped')).toBe(false);

      // Either order: the newer backup's delete wins over the older backup's value.
      for (const order of [
        [older, newer],
        [newer, older],
      ] as const) {
        const target = await SimCluster.start(seed + 2000, 4, { partitionCount: 16 });
        try {
          for (const backup of order) expect(await restore(target, backup)).toBe(0);
          const read = await target.drive(target.members[1]!.node.get(bucket, 'reaped', { r: 'all' }));
          expect(liveValues(read, target.clock.nowMs()), `seed ${seed}: the reaped key stays deleted`).toEqual([]);
        } finally {
          await target.stop();
        }
      }
    } finally {
      await source.stop();
    }
  });
});

/** Two writes without a context through two coordinators: concurrent versions, kept as siblings. */
async function blindSiblings(cluster: SimCluster, key: string): Promise<void> {
  await cluster.drive(
    cluster.members[0]!.node.put({ bucket, key, value: text('first'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
  );
  await cluster.drive(
    cluster.members[1]!.node.put({ bucket, key, value: text('second'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
  );
}
