import type { BucketProperties } from '../../core/buckets.js';
import { decodeDataKey } from '../../core/keys.js';
import { type Ring, preferenceList } from '../../core/ring/ring.js';
import type { PeerReply, PeerRequest } from '../../core/wire/messages.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { Replica } from '../replica.js';
import { digestOf, requestOf } from './shared.js';
import type { TreeKeeper } from './tree-keeper.js';

/** Reaped-tombstone records forgotten per round at most, so one round's extra work stays bounded. */
const reapedRecordsForgottenPerRound = 10_000;

/** What the reaper needs from its node. */
export interface ReaperDependencies {
  readonly selfId: string;
  readonly replica: Replica;
  readonly keeper: TreeKeeper;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly settings: { readonly tombstoneGraceMs: number; readonly reapedRetentionMs: number };
  isUp(node: string): boolean;
  send(node: string, request: PeerRequest): Promise<PeerReply>;
  bucketProperties(bucket: string): BucketProperties;
  countBytes(bytes: number): void;
}

/**
 * The tombstone reaper: removes a tombstone once every replica is up and holds exactly the same
 * tombstone and the grace period has passed (Cassandra's gc_grace), so a delete can never be
 * undone by a stale replica; the replica remembers what it reaped for reapedRetentionMs.
 */
export class TombstoneReaper {
  tombstonesReaped = 0;
  reapedRecordsForgotten = 0;

  constructor(private readonly deps: ReaperDependencies) {}

  /**
   * Reaps the partition's tombstones that are older than the grace period, when this node is the
   * first replica of the key and every replica is up and holds exactly the same tombstone.
   */
  async reapPartition(ring: Ring, partition: number): Promise<void> {
    const now = this.deps.clock.nowMs();
    for (const [name, newest] of [...this.deps.keeper.tombstonesOf(partition)]) {
      if (newest + this.deps.settings.tombstoneGraceMs > now) continue;
      const dataKey = Buffer.from(name, 'latin1');
      const { bucket } = decodeDataKey(dataKey);
      const replicas = preferenceList(ring, partition, this.deps.bucketProperties(bucket).nVal);
      if (replicas[0] !== this.deps.selfId || !replicas.every((node) => this.deps.isUp(node))) continue;
      const local = await this.deps.replica.readBytes(dataKey);
      if (local === undefined) continue;
      const digest = digestOf(dataKey, local);
      const peers = replicas.filter((node) => node !== this.deps.selfId);
      try {
        const digests = await Promise.all(
          peers.map(async (node) => (await requestOf(this.deps, node, { type: 'ae-digest', dataKey }, 'ae-digest-reply')).digest),
        );
        if (!digests.every((answer) => answer === digest)) continue;
        await Promise.all(peers.map(async (node) => requestOf(this.deps, node, { type: 'ae-reap', dataKey, digest }, 'ae-reap-reply')));
        if (await this.deps.replica.reap(dataKey, local, now)) this.tombstonesReaped += 1;
      } catch (error) {
        this.deps.logger.debug({ error: String(error) }, 'tombstone not reaped this time');
      }
    }
  }

  /** Forgets, in a bounded batch, the reaped-tombstone records older than the retention. */
  async forgetExpired(): Promise<void> {
    this.reapedRecordsForgotten += await this.deps.replica.forgetReapedBefore(
      this.deps.clock.nowMs() - this.deps.settings.reapedRetentionMs,
      reapedRecordsForgottenPerRound,
    );
  }

  /** A replica's answer to ae-digest: the digest of its stored version, or null. */
  async answerDigest(dataKey: Buffer): Promise<string | null> {
    const bytes = await this.deps.replica.readBytes(dataKey);
    return bytes === undefined ? null : digestOf(dataKey, bytes);
  }

  /** A replica's answer to ae-reap: reaps the key if it still holds the version with this digest. */
  async answerReap(dataKey: Buffer, digest: string): Promise<boolean> {
    const bytes = await this.deps.replica.readBytes(dataKey);
    if (bytes === undefined || digestOf(dataKey, bytes) !== digest) return false;
    const removed = await this.deps.replica.reap(dataKey, bytes, this.deps.clock.nowMs());
    if (removed) this.tombstonesReaped += 1;
    return removed;
  }

  /** The keys among `keys` that this node reaped and still remembers. */
  async reapedAmong(keys: readonly Uint8Array[]): Promise<Uint8Array[]> {
    const reaped: Uint8Array[] = [];
    for (const key of keys) if ((await this.deps.replica.reapedBytes(Buffer.from(key))) !== undefined) reaped.push(key);
    return reaped;
  }
}
