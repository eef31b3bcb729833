import {
  MerkleTree,
  differingIndexes,
  hashText,
  itemHash,
  leafOfPosition,
  leafPositionRange,
  merkleFanout,
  merkleLeafCount,
} from '../core/antientropy/merkle-tree.js';
import type { BucketProperties } from '../core/buckets.js';
import { decodeDataKey, partitionOfPosition } from '../core/keys.js';
import { type Ring, preferenceList } from '../core/ring/ring.js';
import { decodeObject, encodeObject } from '../core/versioning/object-codec.js';
import { type VersionedObject, isDeleted } from '../core/versioning/versioned-object.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { KeySpace } from '../ports/storage.js';
import { KvError } from '../util/errors.js';
import { PeriodicTask } from './periodic-task.js';
import type { Replica } from './replica.js';

/** Settings of anti-entropy (the `antiEntropy` config section). */
export interface AntiEntropySettings {
  readonly enabled: boolean;
  /** Pause between two sweeps over every partition. */
  readonly intervalMs: number;
  /** How long a tombstone stays after every replica has it, before it is reaped. */
  readonly tombstoneGraceMs: number;
  /**
   * How long a replica remembers a tombstone it reaped (its version vector, no value), so that a
   * node that missed the delete and comes back within this time cannot resurrect the key.
   */
  readonly reapedRetentionMs: number;
  /** Keys repaired per second at most, so foreground latency holds while replicas catch up. */
  readonly maxKeysPerSecond: number;
  readonly peerTimeoutMs: number;
}

/** What anti-entropy needs from its node. */
export interface AntiEntropyDependencies {
  readonly selfId: string;
  readonly data: KeySpace;
  readonly replica: Replica;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly settings: AntiEntropySettings;
  ring(): Ring | null;
  isUp(node: string): boolean;
  send(node: string, request: PeerRequest): Promise<PeerReply>;
  bucketProperties(bucket: string): BucketProperties;
  /** The largest n_val of any bucket: replica sets are compared with this many replicas. */
  maxNVal(): number;
}

/** Progress of a sweep started by `ringkv repair`. */
export interface RepairProgress {
  readonly running: boolean;
  readonly partitionsDone: number;
  readonly partitionsTotal: number;
  readonly keysRepaired: number;
  readonly startedAtMs: number | undefined;
  readonly finishedAtMs: number | undefined;
}

/** Anti-entropy figures for /status and /metrics. */
export interface AntiEntropyStatus {
  readonly enabled: boolean;
  readonly exchanges: number;
  readonly keysRepaired: number;
  readonly bytesExchanged: number;
  readonly tombstonesReaped: number;
  readonly tombstonesPending: number;
  /** Pushed versions refused because a tombstone reaped here had superseded them. */
  readonly staleVersionsRefused: number;
  /** Reaped-tombstone records forgotten after `antiEntropy.reapedRetentionMs`. */
  readonly reapedRecordsForgotten: number;
  readonly partitionsTracked: number;
  /** Age of the oldest "last full exchange" among the partitions this node replicates (null before the first sweep ends). */
  readonly oldestFullExchangeAgeMs: number | null;
  /** Per partition this node replicates: ms since every peer last agreed with it after an exchange. */
  readonly lastFullExchangeAgeMs: Readonly<Record<string, number>>;
  readonly repair: RepairProgress;
}

type WireItem = [key: string, value: string];

const keysPerLeafRequest = 64;
/** Reaped-tombstone records forgotten per sweep at most, so one sweep's extra work stays bounded. */
const reapedRecordsForgottenPerSweep = 10_000;
const itemsPerPush = 200;

function keyText(dataKey: Uint8Array): string {
  return Buffer.from(dataKey).toString('base64');
}

function keyBytes(text: string): Buffer {
  return Buffer.from(text, 'base64');
}

function positionBound(position: number): Buffer | undefined {
  if (position >= 2 ** 32) return undefined;
  const bound = Buffer.alloc(4);
  bound.writeUInt32BE(position, 0);
  return bound;
}

/** The digest of a stored item, as exchanged between replicas. */
function digestOf(dataKey: Uint8Array, storedBytes: Uint8Array): string {
  const hash = itemHash(dataKey, storedBytes);
  return hashText(hash.high, hash.low);
}

function payloadBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value ?? null));
}

/** The newest timestamp of any version of an object. */
function newestMs(object: VersionedObject): number {
  return Math.max(0, ...object.siblings.map((sibling) => sibling.lastModifiedMs));
}

/**
 * Merkle-tree anti-entropy (Dynamo 4.7, Riak AAE). Keeps one tree per partition current on
 * every write; in the background compares each partition it replicates with every other replica,
 * descends only into differing branches and leaves, and repairs the differing keys by merging
 * versions both ways. Also reaps tombstones once every replica has them and the grace period
 * has passed (Cassandra's gc_grace), so a delete can never be undone by a stale replica.
 */
export class AntiEntropy {
  private readonly trees = new Map<number, MerkleTree>();
  /** Tombstones per partition, by storage key (latin1), with the time of their newest version. */
  private readonly tombstones = new Map<number, Map<string, number>>();
  private readonly lastFullExchangeMs = new Map<number, number>();
  private readonly task: PeriodicTask;
  private stopped = false;
  private repairWanted = false;
  private progress: RepairProgress = { running: false, partitionsDone: 0, partitionsTotal: 0, keysRepaired: 0, startedAtMs: undefined, finishedAtMs: undefined };
  private exchanges = 0;
  private keysRepaired = 0;
  private bytesExchanged = 0;
  private tombstonesReaped = 0;
  private reapedRecordsForgotten = 0;
  private partitionCount = 0;

  constructor(private readonly deps: AntiEntropyDependencies) {
    // With anti-entropy off, only `ringkv repair` runs sweeps.
    this.task = new PeriodicTask(
      deps.clock,
      () => this.sweep(),
      (error) => deps.logger.warn({ error: String(error) }, 'anti-entropy sweep failed'),
      () => (this.repairWanted ? 0 : deps.settings.enabled ? deps.settings.intervalMs : undefined),
    );
  }

  /** Builds every tree with one scan of the data (Riak rebuilds its hash trees the same way). */
  async build(partitionCount: number): Promise<void> {
    this.partitionCount = partitionCount;
    this.trees.clear();
    this.tombstones.clear();
    for await (const [key, value] of this.deps.data.entries()) this.track(Buffer.from(key), undefined, value, undefined);
  }

  /** Keeps the trees current: called by the replica after every change of a stored key. */
  track(dataKey: Buffer, before: Uint8Array | undefined, after: Uint8Array | undefined, object: VersionedObject | undefined): void {
    // Q is the cluster's, fixed when it was created. A node that joined with another
    // partitionCount in its config built its (empty: it could store nothing before it had a
    // ring) trees with its own; it takes the ring's before it stores its first key.
    const ringPartitionCount = this.deps.ring()?.partitionCount;
    if (ringPartitionCount !== undefined && ringPartitionCount !== this.partitionCount && this.keyCount === 0) this.partitionCount = ringPartitionCount;
    if (this.partitionCount === 0) return;
    const position = dataKey.readUInt32BE(0);
    const partition = partitionOfPosition(position, this.partitionCount);
    const leaf = leafOfPosition(position, this.partitionCount);
    let tree = this.trees.get(partition);
    if (tree === undefined) {
      tree = new MerkleTree();
      this.trees.set(partition, tree);
    }
    if (before !== undefined) tree.remove(leaf, itemHash(dataKey, before));
    if (after !== undefined) tree.add(leaf, itemHash(dataKey, after));
    const name = dataKey.toString('latin1');
    const stored = after === undefined ? undefined : (object ?? decodeObject(after));
    let tombstones = this.tombstones.get(partition);
    if (stored !== undefined && isDeleted(stored)) {
      if (tombstones === undefined) {
        tombstones = new Map();
        this.tombstones.set(partition, tombstones);
      }
      tombstones.set(name, newestMs(stored));
    } else {
      tombstones?.delete(name);
    }
  }

  /** Keys stored on this node, tombstones included. */
  get keyCount(): number {
    let total = 0;
    for (const tree of this.trees.values()) total += tree.itemCount;
    return total;
  }

  /** Partitions this node holds any key of (handoff clean-up uses it). */
  heldPartitions(): number[] {
    return [...this.trees].filter(([, tree]) => tree.itemCount > 0).map(([partition]) => partition).sort((left, right) => left - right);
  }

  /** Starts periodic sweeps. */
  start(): void {
    if (this.deps.settings.enabled) this.task.arm(this.deps.settings.intervalMs);
  }

  /** Stops sweeping (a sweep under way finishes its current exchange). */
  stop(): void {
    this.stopped = true;
    this.task.stop();
  }

  /** `ringkv repair`: sweeps every partition now (after the sweep under way, if any). */
  requestRepair(): RepairProgress {
    if (this.task.busy) this.repairWanted = true;
    else this.task.arm(0);
    this.progress = { ...this.progress, running: true, partitionsDone: 0, keysRepaired: 0, startedAtMs: this.deps.clock.nowMs(), finishedAtMs: undefined };
    return this.progress;
  }

  /** The partitions this node replicates under the current owners. */
  private replicatedPartitions(ring: Ring): number[] {
    const nVal = this.deps.maxNVal();
    const partitions: number[] = [];
    for (let partition = 0; partition < ring.partitionCount; partition++) {
      if (preferenceList(ring, partition, nVal).includes(this.deps.selfId)) partitions.push(partition);
    }
    return partitions;
  }

  /** One pass over every partition this node replicates. */
  async sweep(): Promise<void> {
    const ring = this.deps.ring();
    if (ring === null) return;
    const repairing = this.progress.running;
    this.repairWanted = false;
    const partitions = this.replicatedPartitions(ring);
    if (repairing) this.progress = { ...this.progress, partitionsTotal: partitions.length };
    const nVal = this.deps.maxNVal();
    for (const partition of partitions) {
      if (this.stopped) return;
      const peers = preferenceList(ring, partition, nVal).filter((node) => node !== this.deps.selfId);
      let agreedWithAll = true;
      for (const peer of peers) {
        if (!this.deps.isUp(peer)) {
          agreedWithAll = false;
          continue;
        }
        try {
          const repaired = await this.exchange(partition, peer);
          if (repaired > 0) await this.deps.clock.sleep((repaired * 1000) / this.deps.settings.maxKeysPerSecond);
        } catch (error) {
          agreedWithAll = false;
          this.deps.logger.debug({ partition, peer, error: String(error) }, 'anti-entropy exchange failed');
        }
      }
      if (agreedWithAll) this.lastFullExchangeMs.set(partition, this.deps.clock.nowMs());
      if (ring.next === null) await this.reapTombstones(ring, partition);
      if (repairing) this.progress = { ...this.progress, partitionsDone: this.progress.partitionsDone + 1 };
    }
    this.reapedRecordsForgotten += await this.deps.replica.forgetReapedBefore(this.deps.clock.nowMs() - this.deps.settings.reapedRetentionMs, reapedRecordsForgottenPerSweep);
    if (repairing) this.progress = { ...this.progress, running: false, finishedAtMs: this.deps.clock.nowMs() };
  }

  private async control(peer: string, operation: string, payload: unknown): Promise<unknown> {
    const reply = await this.deps.send(peer, { type: 'control', operation, payload });
    if (reply.type !== 'control-reply') throw new KvError('KV_PEER_UNREACHABLE', `peer ${peer} answered ${reply.type} to ${operation}`);
    this.bytesExchanged += payloadBytes(payload) + payloadBytes(reply.payload);
    return reply.payload;
  }

  /**
   * One exchange of a partition with a peer: roots, then differing branches, then differing
   * leaves, then the keys of those leaves; each side merges what the other has. Answers how many
   * keys were repaired on either side.
   */
  async exchange(partition: number, peer: string): Promise<number> {
    this.exchanges += 1;
    const tree = this.trees.get(partition) ?? new MerkleTree();
    const rootReply = (await this.control(peer, 'ae-root', { partition, root: tree.root() })) as { equal: boolean; branches?: string[] };
    if (rootReply.equal) return 0;
    const branches = differingIndexes(tree.branchHashes(), rootReply.branches ?? []);
    const leavesReply = (await this.control(peer, 'ae-leaves', { partition, branches })) as { leaves: Record<string, string[]> };
    const differingLeaves: number[] = [];
    for (const branch of branches) {
      for (const index of differingIndexes(tree.leafHashes(branch), leavesReply.leaves[String(branch)] ?? [])) differingLeaves.push(branch * merkleFanout + index);
    }
    let repaired = 0;
    for (let start = 0; start < differingLeaves.length; start += keysPerLeafRequest) {
      const leaves = differingLeaves.slice(start, start + keysPerLeafRequest);
      const mine = await this.leafEntries(partition, leaves);
      const items: WireItem[] = [...mine].map(([key, entry]) => [key, entry.digest]);
      const keysReply = (await this.control(peer, 'ae-keys', { partition, leaves, items })) as { objects: WireItem[]; need: string[] };
      repaired += await this.mergeItems(keysReply.objects);
      const push: WireItem[] = await this.reapedAnswers(keysReply.objects.map(([key]) => key).filter((key) => !mine.has(key)));
      // What the peer lacks is sent as this side scanned it; a write since then reaches the peer anyway.
      for (const key of new Set(keysReply.need)) {
        const entry = mine.get(key);
        if (entry !== undefined) push.push([key, Buffer.from(entry.bytes).toString('base64')]);
        if (push.length >= itemsPerPush) {
          repaired += ((await this.control(peer, 'ae-push', { items: push.splice(0) })) as { repaired: number }).repaired;
        }
      }
      if (push.length > 0) repaired += ((await this.control(peer, 'ae-push', { items: push })) as { repaired: number }).repaired;
    }
    return repaired;
  }

  /** The keys stored in some leaves of a partition, by range scans, with their digests and stored bytes. */
  private async leafEntries(partition: number, leaves: readonly number[]): Promise<Map<string, { digest: string; bytes: Uint8Array }>> {
    const entries = new Map<string, { digest: string; bytes: Uint8Array }>();
    for (const leaf of leaves) {
      const { start, end } = leafPositionRange(partition, leaf, this.partitionCount);
      const gte = positionBound(start) as Buffer;
      const lt = positionBound(end);
      for await (const [key, value] of this.deps.data.entries(lt === undefined ? { gte } : { gte, lt })) {
        entries.set(keyText(key), { digest: digestOf(key, value), bytes: value });
      }
    }
    return entries;
  }

  /** True when this node is a replica of the key under the current owners (its bucket's own n_val). */
  private replicates(dataKey: Buffer): boolean {
    const ring = this.deps.ring();
    if (ring === null) return false;
    const { bucket, position } = decodeDataKey(dataKey);
    const partition = partitionOfPosition(position, ring.partitionCount);
    return preferenceList(ring, partition, this.deps.bucketProperties(bucket).nVal).includes(this.deps.selfId);
  }

  /** Merges objects from a peer into this replica; answers how many keys changed here. */
  private async mergeItems(items: readonly WireItem[]): Promise<number> {
    let changed = 0;
    for (const [key, encoded] of items) {
      const dataKey = keyBytes(key);
      if (!this.replicates(dataKey)) continue;
      const { bucket } = decodeDataKey(dataKey);
      const result = await this.deps.replica.mergeByDataKey(dataKey, decodeObject(keyBytes(encoded)), this.deps.bucketProperties(bucket).conflictMode, false);
      if (result.changed) changed += 1;
    }
    this.keysRepaired += changed;
    if (this.progress.running) this.progress = { ...this.progress, keysRepaired: this.progress.keysRepaired + changed };
    return changed;
  }

  /**
   * Reaps the partition's tombstones that are older than the grace period, when this node is the
   * first replica of the key and every replica is up and holds exactly the same tombstone.
   */
  private async reapTombstones(ring: Ring, partition: number): Promise<void> {
    const now = this.deps.clock.nowMs();
    for (const [name, newest] of [...(this.tombstones.get(partition) ?? [])]) {
      if (newest + this.deps.settings.tombstoneGraceMs > now) continue;
      const dataKey = Buffer.from(name, 'latin1');
      const { bucket } = decodeDataKey(dataKey);
      const replicas = preferenceList(ring, partition, this.deps.bucketProperties(bucket).nVal);
      if (replicas[0] !== this.deps.selfId || !replicas.every((node) => this.deps.isUp(node))) continue;
      const local = await this.deps.replica.readBytes(dataKey);
      if (local === undefined) continue;
      const digest = digestOf(dataKey, local);
      try {
        const digests = await Promise.all(replicas.filter((node) => node !== this.deps.selfId).map((node) => this.control(node, 'ae-digest', { key: keyText(dataKey) })));
        if (!digests.every((answer) => (answer as { digest: string | null }).digest === digest)) continue;
        await Promise.all(replicas.filter((node) => node !== this.deps.selfId).map((node) => this.control(node, 'ae-reap', { key: keyText(dataKey), digest })));
        if (await this.deps.replica.reap(dataKey, local, now)) this.tombstonesReaped += 1;
      } catch (error) {
        this.deps.logger.debug({ error: String(error) }, 'tombstone not reaped this time');
      }
    }
  }

  /**
   * The remembered tombstones of keys the peer holds and this node reaped. A peer that missed
   * the delete (a replica back with an old disk) merges the tombstone over its stale version and
   * converges, instead of pushing that version again on every sweep only to have it refused.
   */
  private async reapedAnswers(keys: readonly string[]): Promise<WireItem[]> {
    const answers: WireItem[] = [];
    for (const key of keys) {
      const bytes = await this.deps.replica.reapedBytes(keyBytes(key));
      if (bytes !== undefined) answers.push([key, Buffer.from(bytes).toString('base64')]);
    }
    return answers;
  }

  /** Serves the peer side of an exchange; undefined for operations that are not anti-entropy's. */
  async handleControl(operation: string, payload: unknown): Promise<unknown> {
    switch (operation) {
      case 'ae-root': {
        const { partition, root } = payload as { partition: number; root: string };
        const tree = this.trees.get(partition) ?? new MerkleTree();
        return tree.root() === root ? { equal: true } : { equal: false, branches: tree.branchHashes() };
      }
      case 'ae-leaves': {
        const { partition, branches } = payload as { partition: number; branches: number[] };
        const tree = this.trees.get(partition) ?? new MerkleTree();
        return { leaves: Object.fromEntries(branches.map((branch) => [String(branch), tree.leafHashes(branch)])) };
      }
      case 'ae-keys':
        return this.answerKeys(payload as { partition: number; leaves: number[]; items: WireItem[] });
      case 'ae-push': {
        const { items } = payload as { items: WireItem[] };
        return { repaired: await this.mergeItems(items) };
      }
      case 'ae-digest': {
        const dataKey = keyBytes((payload as { key: string }).key);
        const bytes = await this.deps.replica.readBytes(dataKey);
        return { digest: bytes === undefined ? null : digestOf(dataKey, bytes) };
      }
      case 'ae-reap': {
        const { key, digest } = payload as { key: string; digest: string };
        const dataKey = keyBytes(key);
        const bytes = await this.deps.replica.readBytes(dataKey);
        if (bytes === undefined || digestOf(dataKey, bytes) !== digest) return { removed: false };
        const removed = await this.deps.replica.reap(dataKey, bytes, this.deps.clock.nowMs());
        if (removed) this.tombstonesReaped += 1;
        return { removed };
      }
      default:
        return undefined;
    }
  }

  /** The responder's side of the key comparison: what differs, both ways. */
  private async answerKeys(request: { partition: number; leaves: number[]; items: WireItem[] }): Promise<{ objects: WireItem[]; need: string[] }> {
    const theirs = new Map(request.items);
    const mine = await this.leafEntries(request.partition, request.leaves.filter((leaf) => leaf >= 0 && leaf < merkleLeafCount));
    const objects: WireItem[] = [];
    const need: string[] = [];
    for (const [key, entry] of mine) {
      if (theirs.get(key) !== entry.digest) objects.push([key, Buffer.from(entry.bytes).toString('base64')]);
    }
    const missing = [...theirs.keys()].filter((key) => !mine.has(key));
    const reaped = await this.reapedAnswers(missing);
    objects.push(...reaped);
    const answered = new Set(reaped.map(([key]) => key));
    for (const [key, digest] of theirs) if (mine.get(key)?.digest !== digest && !answered.has(key)) need.push(key);
    return { objects, need };
  }

  /** Figures for /status. */
  status(): AntiEntropyStatus {
    const now = this.deps.clock.nowMs();
    const ring = this.deps.ring();
    const partitions = ring === null ? [] : this.replicatedPartitions(ring);
    const ages: Record<string, number> = {};
    // The oldest age is only known once every replicated partition has had a full exchange.
    let oldest: number | null = partitions.length > 0 ? 0 : null;
    for (const partition of partitions) {
      const last = this.lastFullExchangeMs.get(partition);
      if (last === undefined) {
        oldest = null;
        continue;
      }
      ages[String(partition)] = now - last;
      if (oldest !== null) oldest = Math.max(oldest, now - last);
    }
    return {
      enabled: this.deps.settings.enabled,
      exchanges: this.exchanges,
      keysRepaired: this.keysRepaired,
      bytesExchanged: this.bytesExchanged,
      tombstonesReaped: this.tombstonesReaped,
      tombstonesPending: [...this.tombstones.values()].reduce((sum, partition) => sum + partition.size, 0),
      staleVersionsRefused: this.deps.replica.staleVersionsRefused,
      reapedRecordsForgotten: this.reapedRecordsForgotten,
      partitionsTracked: this.trees.size,
      oldestFullExchangeAgeMs: oldest,
      lastFullExchangeAgeMs: ages,
      repair: this.progress,
    };
  }

  /** Encodes an object for a peer message (handoff reuses the same item shape). */
  static item(dataKey: Uint8Array, object: VersionedObject): WireItem {
    return [keyText(dataKey), encodeObject(object).toString('base64')];
  }
}
