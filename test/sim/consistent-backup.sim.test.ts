import { afterEach, describe, expect, it } from 'vitest';
import { decodeConsistentValue, encodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import { decodeDataKey, encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { decodeLeaseRecord, encodeLeaseRecord, leaseBucket } from '../../src/core/leases/lease-record.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { type BackupRecord, BackupRecordReader } from '../../src/engine/backup-format.js';
import type { ConsistentOutcome } from '../../src/engine/kv-service.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goals of backup and restore for consistent buckets and leases (README, "Backup and restore"),
 * on real engines in simulated clusters:
 * - a backup holds every consistent key's decided state (read by a Paxos round): restored into a
 *   fresh cluster of another size and partition count, every key reads back with its value and
 *   exactly its backed-up version (so a fencing token never goes back), a deleted key stays absent
 *   at its version, and a key the target already had at a lower version takes the backup's while
 *   one at a higher version is kept; a CAS with the backed-up context succeeds once and an older
 *   context fails with 412; a second restore changes nothing;
 * - restored into the live cluster after newer writes and deletes, it changes none of them;
 * - a leased key comes back under its lease, which the target ends after its ttl (the key is then
 *   deleted, its version grows); a leased key whose lease is not in the backup, or is ending there,
 *   is restored deleted at its version, never as a permanent key;
 * - a backup lists a partition's consistent keys from a majority of its replicas: a key whose every
 *   request missed the streaming replica (cut off for the key's whole life) is in the backup and
 *   restored, and a partition of which only a minority is reachable fails loudly
 *   (KV_INSUFFICIENT_REPLICAS), never as a file that silently lacks keys.
 * Seeds replay with SIM_SEED.
 */

const bucket = 'locks';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2501, 2502];
const ttlSeconds = 30;

const clusters: SimCluster[] = [];
afterEach(async () => {
  for (const cluster of clusters.splice(0)) await cluster.stop();
});

async function start(seed: number, count: number, partitionCount: number): Promise<SimCluster> {
  const cluster = await SimCluster.start(seed, count, { ...config, partitionCount });
  clusters.push(cluster);
  return cluster;
}

const valueOf = (text: string) => ({ contentType: 'text/plain', value: Buffer.from(text) });

async function write(
  cluster: SimCluster,
  key: string,
  text: string | null,
  condition: { kind: 'none' } | { kind: 'version'; version: number } = { kind: 'none' },
) {
  return cluster.drive(cluster.members[0]!.node.consistent(bucket, key, { kind: 'write', value: text === null ? null : valueOf(text), condition }));
}

async function read(cluster: SimCluster, key: string, member = 0): Promise<ConsistentOutcome> {
  return cluster.drive(cluster.members[member % cluster.members.length]!.node.consistent(bucket, key, { kind: 'read' }));
}

/** What a read shows: the text (null when absent), its lease, and the version. */
function shown(outcome: ConsistentOutcome): { text: string | null; lease?: string; version: number } {
  if (outcome.value === null) return { text: null, version: outcome.version };
  return {
    text: Buffer.from(outcome.value.value).toString(),
    version: outcome.version,
    ...(outcome.value.lease === undefined ? {} : { lease: outcome.value.lease }),
  };
}

/** The member first in the preference list of `partition`: the one a backup streams it from. */
function firstReplica(cluster: SimCluster, partition: number): SimMember {
  const ring = cluster.members[0]!.node.gossiper.ring!;
  return cluster.members.find((member) => member.nodeId === preferenceList(ring, partition, 3)[0])!;
}

/** Backs up the partitions (every one by default) each from its first replica, as `ringkv backup` reads the stream (framing checked). */
async function takeBackup(cluster: SimCluster, partitions?: readonly number[]): Promise<BackupRecord[]> {
  const ring = cluster.members[0]!.node.gossiper.ring!;
  const records: BackupRecord[] = [];
  const copy = async (): Promise<void> => {
    for (const partition of partitions ?? Array.from({ length: ring.partitionCount }, (_, index) => index)) {
      const reader = new BackupRecordReader(`partition ${partition}`, 'file');
      for await (const chunk of firstReplica(cluster, partition).node.backup.partitionFile(partition, ring.partitionCount)) records.push(...reader.push(chunk));
      reader.finish();
    }
  };
  await cluster.drive(copy(), 600_000);
  return records;
}

const isLease = (record: BackupRecord): boolean => record.kind === 'consistent' && decodeDataKey(record.dataKey).bucket === leaseBucket;

/** Restores as `ringkv restore` does: the leases first, then the rest, in batches through every node in turn. */
async function restore(cluster: SimCluster, records: readonly BackupRecord[]) {
  const totals = { merged: 0, kept: 0, unleased: 0, failed: 0 };
  let turn = 0;
  for (const pass of [records.filter(isLease), records.filter((record) => !isLease(record))]) {
    for (let start = 0; start < pass.length; start += 20) {
      const node = cluster.members[turn++ % cluster.members.length]!.node;
      const outcome = await cluster.drive(node.backup.restore(pass.slice(start, start + 20), { w: 'all' }), 600_000);
      expect(outcome.failures).toEqual([]);
      totals.merged += outcome.merged;
      totals.kept += outcome.kept;
      totals.unleased += outcome.unleased;
      totals.failed += outcome.failed;
    }
  }
  return totals;
}

/** The consistent records by key (bucket/key). */
function consistentByKey(records: readonly BackupRecord[]): Map<string, Extract<BackupRecord, { kind: 'consistent' }>> {
  const byKey = new Map<string, Extract<BackupRecord, { kind: 'consistent' }>>();
  for (const record of records) {
    if (record.kind !== 'consistent') continue;
    const { bucket: name, key } = decodeDataKey(record.dataKey);
    byKey.set(`${name}/${key}`, record);
  }
  return byKey;
}

/** Writes keys with several versions, one written once, deleted ones (one deleted and written again), and a leased key. */
async function writeHistory(cluster: SimCluster): Promise<{ keys: string[]; lease: string }> {
  for (let index = 0; index < 6; index++) for (let round = 0; round <= index; round++) await write(cluster, `multi-${index}`, `multi-${index} round ${round}`);
  await write(cluster, 'once', 'written once');
  await write(cluster, 'deleted', 'soon gone');
  await write(cluster, 'deleted', null);
  await write(cluster, 'reborn', 'first life');
  await write(cluster, 'reborn', null);
  await write(cluster, 'reborn', 'second life');
  const { id } = await cluster.drive(cluster.members[1]!.node.leases.grant(ttlSeconds));
  await cluster.drive(cluster.members[2]!.node.leases.put(bucket, 'ephemeral', valueOf('held'), { kind: 'absent' }, id));
  const keys = [...Array.from({ length: 6 }, (_, index) => `multi-${index}`), 'once', 'deleted', 'reborn', 'ephemeral'];
  return { keys, lease: id };
}

describe('simulation: backup and restore of consistent buckets and leases', () => {
  it.each(seeds)(
    'seed %i: a fresh cluster of another size reads every key with its value and backed-up version; deleted keys stay absent; CAS on the old context works once',
    async (seed) => {
      const source = await start(seed, 3, 32);
      const { keys, lease } = await writeHistory(source);
      const before = new Map<string, ReturnType<typeof shown>>();
      for (const key of keys) before.set(key, shown(await read(source, key)));
      expect(before.get('multi-5')).toEqual({ text: 'multi-5 round 5', version: 6 });
      expect(before.get('deleted')).toEqual({ text: null, version: 2 });
      expect(before.get('ephemeral')).toEqual({ text: 'held', lease, version: 1 });

      const records = await takeBackup(source);
      const backedUp = consistentByKey(records);
      for (const key of keys)
        expect(backedUp.get(`${bucket}/${key}`)?.version, `seed ${seed}: ${key} is in the backup at its version`).toBe(before.get(key)!.version);
      expect(backedUp.has(`${leaseBucket}/${lease}`), `seed ${seed}: the lease is in the backup`).toBe(true);

      // The target already holds two of the keys: one at a lower version than the backup's, one at a higher.
      const target = await start(seed + 1000, 4, 16);
      await write(target, 'multi-3', 'target, lower');
      for (let round = 0; round < 8; round++) await write(target, 'multi-1', `target round ${round}`);
      const totals = await restore(target, records);
      expect(totals.failed).toBe(0);
      expect(totals.kept, `seed ${seed}: only multi-1 (higher in the target) is kept`).toBe(1);

      for (const [index, key] of keys.entries()) {
        const after = shown(await read(target, key, index));
        if (key === 'multi-1')
          expect(after, `seed ${seed}: a key at a higher version in the target keeps its state`).toEqual({ text: 'target round 7', version: 8 });
        else expect(after, `seed ${seed}: ${key} restored with its value and exactly its backed-up version`).toEqual(before.get(key));
      }
      expect((await target.drive(target.members[3]!.node.leases.describe(lease))).keys).toEqual([{ bucket, key: 'ephemeral' }]);

      // The backed-up context is the restored key's version: a CAS with it succeeds (once), an older one fails.
      await expect(write(target, 'multi-4', 'stale', { kind: 'version', version: 3 })).rejects.toMatchObject({ code: 'KV_PRECONDITION_FAILED' });
      expect((await write(target, 'multi-4', 'cas after restore', { kind: 'version', version: 5 })).version).toBe(6);
      await expect(write(target, 'multi-4', 'again', { kind: 'version', version: 5 })).rejects.toMatchObject({ code: 'KV_PRECONDITION_FAILED' });
      // A deleted key comes back as created after its backed-up version, never below it.
      expect((await write(target, 'deleted', 'recreated')).version).toBe(3);

      // A second restore changes nothing: every key holds its backed-up version or a newer one.
      const again = await restore(target, records);
      expect([again.merged, again.unleased, again.failed]).toEqual([0, 0, 0]);
      expect(shown(await read(target, 'multi-4'))).toEqual({ text: 'cas after restore', version: 6 });
      expect(shown(await read(target, 'deleted'))).toEqual({ text: 'recreated', version: 3 });

      // The restored lease is a lease of the target: without keep-alives it ends after its ttl and deletes its key.
      const restoredAtMs = target.clock.nowMs();
      await target.runUntil(async () => (await read(target, 'ephemeral')).value === null, 10 * ttlSeconds * 1000, 'the restored lease ends', 1000);
      expect(target.clock.nowMs() - restoredAtMs, `seed ${seed}: the restored lease ran its full ttl in the target`).toBeGreaterThanOrEqual(
        ttlSeconds * 1000 * 0.99,
      );
      expect(shown(await read(target, 'ephemeral'))).toEqual({ text: null, version: 2 });
    },
    600_000,
  );

  it.each(seeds)(
    'seed %i: an old backup restored into the live cluster changes no newer write or delete',
    async (seed) => {
      const cluster = await start(seed, 3, 32);
      const { keys } = await writeHistory(cluster);
      const records = await takeBackup(cluster);
      await write(cluster, 'multi-2', 'newer');
      await write(cluster, 'once', null);
      await write(cluster, 'deleted', 'written since');
      const live = new Map<string, ReturnType<typeof shown>>();
      for (const key of keys) live.set(key, shown(await read(cluster, key)));
      const totals = await restore(cluster, records);
      expect([totals.failed, totals.unleased]).toEqual([0, 0]);
      for (const key of keys) expect(shown(await read(cluster, key)), `seed ${seed}: ${key} unchanged by an older backup`).toEqual(live.get(key));
    },
    600_000,
  );

  it.each(seeds)(
    'seed %i: a backup restored into its own cluster after its lease ended brings back neither the lease nor its key',
    async (seed) => {
      // The orphan check of leased keys deletes a key whose lease has no record (docs/CONSENSUS.md,
      // "Orphans"): that rests on an ended lease never coming back under its id, a restore included.
      const cluster = await start(seed, 3, 32);
      const { lease } = await writeHistory(cluster);
      const records = await takeBackup(cluster);
      await cluster.drive(cluster.members[0]!.node.leases.revoke(lease));
      const ended = await cluster.drive(cluster.members[0]!.node.consistent(leaseBucket, lease, { kind: 'read' }));
      await restore(cluster, records);
      const record = await cluster.drive(cluster.members[1]!.node.consistent(leaseBucket, lease, { kind: 'read' }));
      expect(record, `seed ${seed}: the ended lease ${lease} after the restore`).toEqual(ended);
      expect(shown(await read(cluster, 'ephemeral')), `seed ${seed}: its key after the restore`).toEqual({ text: null, version: 2 });
    },
    600_000,
  );

  it.each(seeds)(
    'seed %i: a leased key whose lease is missing from the backup, or ending in it, is restored deleted at its version, never as a permanent key',
    async (seed) => {
      const source = await start(seed, 3, 32);
      const { lease } = await writeHistory(source);
      const records = await takeBackup(source);
      const leaseKey = `${leaseBucket}/${lease}`;
      // As when the lease ended between the copies of the key's partition and of the lease's.
      const withoutLease = records.filter((record) => !(record.kind === 'consistent' && consistentByKey([record]).has(leaseKey)));
      expect(withoutLease.length).toBe(records.length - 1);
      // As when the backup copied the lease while it was ending.
      const ending = records.map((record): BackupRecord => {
        if (!(record.kind === 'consistent' && consistentByKey([record]).has(leaseKey) && record.value !== null)) return record;
        const value = decodeConsistentValue(record.value);
        const ended = encodeLeaseRecord({ ...decodeLeaseRecord(value.value), ending: true });
        return { ...record, value: Buffer.from(encodeConsistentValue({ ...value, value: ended })) };
      });
      for (const [index, backup] of [withoutLease, ending].entries()) {
        const target = await start(seed + 2000 + index, 3, 16);
        const totals = await restore(target, backup);
        expect(totals.unleased, `seed ${seed}: the leased key is restored deleted`).toBe(1);
        expect(shown(await read(target, 'ephemeral')), `seed ${seed}: no permanent copy of the leased key`).toEqual({ text: null, version: 1 });
        expect(shown(await read(target, 'once'))).toEqual({ text: 'written once', version: 1 });
        // Long after any ttl, nothing brought it back.
        await target.clock.advance(3 * ttlSeconds * 1000);
        expect(shown(await read(target, 'ephemeral')).text).toBeNull();
      }
    },
    600_000,
  );

  /**
   * Cuts the first replica of `key`'s partition off while the key is written (three versions) and
   * read through the other two: every decision needs only a majority, so the cut-off replica never
   * hears of the key, and only a listing of a majority of the partition's replicas finds it.
   */
  async function keyUnseenByItsFirstReplica(source: SimCluster, key: string): Promise<{ holder: SimMember; others: SimMember[]; partition: number }> {
    const partition = partitionOf(bucket, key, source.members[0]!.node.gossiper.ring!.partitionCount);
    const holder = firstReplica(source, partition);
    const others = source.members.filter((member) => member !== holder);
    source.network.partition([[holder.address], others.map((member) => member.address)]);
    for (let round = 0; round < 3; round++) {
      const value = valueOf(`${key} round ${round}`);
      await source.drive(others[round % 2]!.node.consistent(bucket, key, { kind: 'write', value, condition: { kind: 'none' } }));
      await source.drive(others[(round + 1) % 2]!.node.consistent(bucket, key, { kind: 'read' }));
    }
    expect(await holder.storage.paxos.get(encodeDataKey(bucket, key)), 'the cut-off replica holds no Paxos state of the key').toBeUndefined();
    return { holder, others, partition };
  }

  it.each(seeds)(
    'seed %i: a key whose every request missed the streaming replica is in the backup and restored',
    async (seed) => {
      const source = await start(seed, 3, 32);
      const { holder, others, partition } = await keyUnseenByItsFirstReplica(source, 'unseen');
      source.network.heal();
      await source.runUntil(() => others.every((other) => holder.node.gossiper.isUp(other.nodeId)), 60_000, 'the healed replica sees the others up');
      expect(await holder.storage.paxos.get(encodeDataKey(bucket, 'unseen')), 'still no Paxos state of the key on the streaming replica').toBeUndefined();

      const records = await takeBackup(source, [partition]);
      expect(consistentByKey(records).get(`${bucket}/unseen`)?.version, `seed ${seed}: the key is in the backup at its version`).toBe(3);
      const target = await start(seed + 3000, 3, 16);
      const totals = await restore(target, records);
      expect(totals.failed).toBe(0);
      expect(shown(await read(target, 'unseen')), `seed ${seed}: the key is restored`).toEqual({ text: 'unseen round 2', version: 3 });
    },
    600_000,
  );

  it.each(seeds)(
    'seed %i: a partition of which only a minority of replicas is reachable fails loudly; once healed, it is backed up with the key',
    async (seed) => {
      const source = await start(seed, 3, 32);
      const { holder, others, partition } = await keyUnseenByItsFirstReplica(source, 'unseen');
      await expect(takeBackup(source, [partition]), `seed ${seed}: no file that silently lacks the key`).rejects.toMatchObject({
        code: 'KV_INSUFFICIENT_REPLICAS',
        message: expect.stringContaining('majority'),
      });
      // Once gossip judges the others down, the node refuses the partition before any byte (the route's 503).
      await source.runUntil(() => others.every((other) => !holder.node.gossiper.isUp(other.nodeId)), 60_000, 'the cut-off replica sees the others down');
      expect(() => holder.node.backup.checkPartition(partition, undefined)).toThrow(expect.objectContaining({ code: 'KV_INSUFFICIENT_REPLICAS' }));
      await expect(takeBackup(source, [partition])).rejects.toThrow(/a majority of their replicas \(2 of .*\), and only node\d is up/);
      source.network.heal();
      await source.runUntil(() => others.every((other) => holder.node.gossiper.isUp(other.nodeId)), 60_000, 'the healed replica sees the others up');
      expect(consistentByKey(await takeBackup(source, [partition])).get(`${bucket}/unseen`)?.version).toBe(3);
    },
    600_000,
  );
});
