import {
  MerkleTree,
  differingIndexes,
  hashText,
  itemHash,
  leafOfPosition,
  leafPositionRange,
  merkleFanout,
} from '../core/antientropy/merkle-tree.js';
import type { BucketProperties } from '../core/buckets.js';
import { decodeDataKey, partitionOfPosition } from '../core/keys.js';
import { type Ring, preferenceList } from '../core/ring/ring.js';
import { decodeObject } from '../core/versioning/object-codec.js';
import { type VersionedObject, deadSinceMs } from '../core/versioning/versioned-object.js';
import { wireLimits } from '../core/wire/codec.js';
import type {
  AntiEntropyFetchRequest,
  AntiEntropyKeysReply,
  AntiEntropyKeysRequest,
  AntiEntropyPushReply,
  AntiEntropyPushRequest,
  KeyDigest,
  ObjectPageReply,
  PeerReply,
  PeerRequest,
  StoredItem,
} from '../core/wire/messages.js';
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
  /** About how many bytes of values one page of objects carries (handoff.maxPageBytes); a page always carries at least one. */
  readonly maxPageBytes: number;
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

/** The anti-entropy messages that travel as binary messages of their own. */
export type AntiEntropyRequest = AntiEntropyKeysRequest | AntiEntropyFetchRequest | AntiEntropyPushRequest;

const keysPerLeafRequest = 64;
/** Reaped-tombstone records forgotten per sweep at most, so one sweep's extra work stays bounded. */
const reapedRecordsForgottenPerSweep = 10_000;
const itemsPerPush = 200;

/** One key as this side holds it: storage key and digest (values are read again when pushed). */
interface LocalDigest {
  readonly dataKey: Buffer;
  readonly digest: string;
}

/** Refuses a malformed request from a peer. */
function badRequest(message: string): KvError {
  return new KvError('KV_BAD_REQUEST', `${message}; the peer runs another ringkv version or is misbehaving`);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A short string field of a JSON payload. */
function requireText(payload: Record<string, unknown>, field: string, maxLength: number): string {
  const value = payload[field];
  if (typeof value !== 'string' || value.length > maxLength) throw badRequest(`field '${field}' must be a string of at most ${maxLength} characters`);
  return value;
}

/** A storage key sent as base64 text (ae-digest, ae-reap), checked to have the storage key's shape. */
function requireKeyText(payload: Record<string, unknown>): string {
  const text = requireText(payload, 'key', Math.ceil((wireLimits.maxDataKeyBytes * 4) / 3) + 4);
  const bytes = keyBytes(text);
  if (bytes.length < 6 || 6 + bytes.readUInt16BE(4) > bytes.length) throw badRequest("field 'key' is not a storage key");
  return text;
}

/** About how many bytes a message carries: keys, digests and values (for the bytesExchanged figure). */
function messageBytes(message: PeerRequest | PeerReply): number {
  const objectBytes = (items: readonly StoredItem[]): number =>
    items.reduce((sum, item) => sum + item.dataKey.byteLength + item.object.siblings.reduce((total, sibling) => total + sibling.value.byteLength + 32, 16), 0);
  const keyListBytes = (keys: readonly Uint8Array[]): number => keys.reduce((sum, key) => sum + key.byteLength + 1, 0);
  switch (message.type) {
    case 'control':
    case 'control-reply':
      return payloadBytes(message.payload);
    case 'ae-keys':
      return 8 + 2 * message.leaves.length + message.items.reduce((sum, item) => sum + item.dataKey.byteLength + item.digest.length + 2, 0);
    case 'ae-keys-reply':
      return 2 + keyListBytes(message.differing) + keyListBytes(message.need);
    case 'ae-fetch':
      return 8 + keyListBytes(message.keys);
    case 'ae-push':
    case 'object-page':
      return 4 + objectBytes(message.items);
    default:
      return 8;
  }
}

/** A list of strings from a peer's reply, at most `max` of them; anything else counts as empty. */
function stringList(value: unknown, max: number): string[] {
  return Array.isArray(value) && value.length <= max && value.every((item) => typeof item === 'string') ? (value as string[]) : [];
}

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
    // A key is a tombstone candidate when every sibling is a delete or expires; it is reaped once
    // the newest of those moments is older than the grace period on this node's clock.
    const deadSince = stored === undefined ? undefined : deadSinceMs(stored);
    if (deadSince !== undefined) {
      if (tombstones === undefined) {
        tombstones = new Map();
        this.tombstones.set(partition, tombstones);
      }
      tombstones.set(name, deadSince);
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

  /** Sends one binary anti-entropy message and checks the reply's type. */
  private async request<T extends PeerReply['type']>(peer: string, request: AntiEntropyRequest, replyType: T): Promise<Extract<PeerReply, { type: T }>> {
    const reply = await this.deps.send(peer, request);
    if (reply.type !== replyType) throw new KvError('KV_PEER_UNREACHABLE', `peer ${peer} answered ${reply.type} to ${request.type}`);
    this.bytesExchanged += messageBytes(request) + messageBytes(reply);
    return reply as Extract<PeerReply, { type: T }>;
  }

  /**
   * One exchange of a partition with a peer: roots, then differing branches, then differing
   * leaves, then the keys of those leaves; each side merges what the other has, a bounded page
   * at a time. Answers how many keys were repaired on either side.
   */
  async exchange(partition: number, peer: string): Promise<number> {
    this.exchanges += 1;
    const tree = this.trees.get(partition) ?? new MerkleTree();
    const rootReply = await this.control(peer, 'ae-root', { partition, root: tree.root() });
    if (!isRecord(rootReply)) throw new KvError('KV_PEER_UNREACHABLE', `peer ${peer} answered ae-root with a malformed payload`);
    if (rootReply.equal === true) return 0;
    const branches = differingIndexes(tree.branchHashes(), stringList(rootReply.branches, merkleFanout));
    const leavesReply = await this.control(peer, 'ae-leaves', { partition, branches });
    const leafHashes = isRecord(leavesReply) && isRecord(leavesReply.leaves) ? leavesReply.leaves : {};
    const differingLeaves: number[] = [];
    for (const branch of branches) {
      for (const index of differingIndexes(tree.leafHashes(branch), stringList(leafHashes[String(branch)], merkleFanout))) differingLeaves.push(branch * merkleFanout + index);
    }
    let repaired = 0;
    for await (const { leaves, mine } of this.leafGroups(partition, differingLeaves)) {
      const items: KeyDigest[] = [...mine.values()].map((entry) => ({ dataKey: entry.dataKey, digest: entry.digest }));
      const keysReply = await this.request(peer, { type: 'ae-keys', partition, leaves, items }, 'ae-keys-reply');
      repaired += await this.fetchFrom(peer, partition, keysReply.differing);
      // What the peer lacks is read again as it is stored now; a write since the scan reaches the peer anyway.
      const wanted = keysReply.need.filter((key) => mine.has(Buffer.from(key).toString('latin1')));
      // A key the peer still holds but this side reaped is answered with the remembered tombstone, so the stale peer converges.
      const reaped = await this.reapedAmong(keysReply.differing.filter((key) => !mine.has(Buffer.from(key).toString('latin1'))));
      repaired += await this.pushTo(peer, partition, [...wanted, ...reaped]);
    }
    return repaired;
  }

  /**
   * Groups leaves for ae-keys requests: at most keysPerLeafRequest leaves and wireLimits.maxKeys
   * keys per request, with this side's digests of their keys.
   */
  private async *leafGroups(partition: number, leaves: readonly number[]): AsyncGenerator<{ leaves: number[]; mine: Map<string, LocalDigest> }> {
    let group: number[] = [];
    let mine = new Map<string, LocalDigest>();
    for (const leaf of leaves) {
      const entries = await this.leafDigests(partition, [leaf]);
      if (entries.size > wireLimits.maxKeys) {
        this.deps.logger.warn({ partition, leaf, keys: entries.size }, 'a Merkle leaf holds more keys than one comparison carries; it is skipped');
        continue;
      }
      if (group.length >= keysPerLeafRequest || mine.size + entries.size > wireLimits.maxKeys) {
        yield { leaves: group, mine };
        group = [];
        mine = new Map();
      }
      group.push(leaf);
      for (const [name, entry] of entries) mine.set(name, entry);
    }
    if (group.length > 0) yield { leaves: group, mine };
  }

  /** Fetches the peer's objects of some keys, a page at a time, and merges them here. */
  private async fetchFrom(peer: string, partition: number, keys: readonly Uint8Array[]): Promise<number> {
    let repaired = 0;
    let remaining = keys;
    while (remaining.length > 0) {
      const asked = remaining.slice(0, wireLimits.maxItems);
      const page = await this.request(peer, { type: 'ae-fetch', partition, keys: asked, maxBytes: this.deps.settings.maxPageBytes }, 'object-page');
      repaired += await this.mergeItems(partition, page.items);
      if (page.done) {
        remaining = remaining.slice(asked.length);
        continue;
      }
      const last = page.items[page.items.length - 1];
      const position = last === undefined ? -1 : asked.findIndex((key) => Buffer.from(key).equals(last.dataKey));
      if (position < 0) throw new KvError('KV_PEER_UNREACHABLE', `peer ${peer} answered ae-fetch with a page that makes no progress`);
      remaining = remaining.slice(position + 1);
    }
    return repaired;
  }

  /** Pushes this side's objects of some keys to the peer, in pages bounded by keys and bytes. */
  private async pushTo(peer: string, partition: number, keys: readonly Uint8Array[]): Promise<number> {
    let repaired = 0;
    let page: StoredItem[] = [];
    let pageBytes = 0;
    const flush = async (): Promise<void> => {
      if (page.length === 0) return;
      const items = page;
      page = [];
      pageBytes = 0;
      repaired += (await this.request(peer, { type: 'ae-push', partition, items }, 'ae-push-reply')).repaired;
    };
    for (const key of new Set(keys.map((dataKey) => Buffer.from(dataKey).toString('latin1')))) {
      const dataKey = Buffer.from(key, 'latin1');
      const bytes = (await this.deps.replica.readBytes(dataKey)) ?? (await this.deps.replica.reapedBytes(dataKey));
      if (bytes === undefined) continue;
      page.push({ dataKey, object: decodeObject(bytes) });
      pageBytes += bytes.byteLength;
      if (page.length >= itemsPerPush || pageBytes >= this.deps.settings.maxPageBytes) await flush();
    }
    await flush();
    return repaired;
  }

  /** The keys stored in some leaves of a partition, by range scans, with their digests (values are not kept). */
  private async leafDigests(partition: number, leaves: readonly number[]): Promise<Map<string, LocalDigest>> {
    const entries = new Map<string, LocalDigest>();
    for (const leaf of leaves) {
      const { start, end } = leafPositionRange(partition, leaf, this.partitionCount);
      const gte = positionBound(start) as Buffer;
      const lt = positionBound(end);
      for await (const [key, value] of this.deps.data.entries(lt === undefined ? { gte } : { gte, lt })) {
        const dataKey = Buffer.from(key);
        entries.set(dataKey.toString('latin1'), { dataKey, digest: digestOf(key, value) });
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

  /** Merges objects of a partition from a peer into this replica; answers how many keys changed here. */
  private async mergeItems(partition: number, items: readonly StoredItem[]): Promise<number> {
    let changed = 0;
    for (const item of items) {
      const dataKey = Buffer.from(item.dataKey);
      // A key outside the partition asked about is the peer's mistake; it is not merged.
      if (!this.inPartition(partition, dataKey) || !this.replicates(dataKey)) continue;
      const { bucket } = decodeDataKey(dataKey);
      const result = await this.deps.replica.mergeByDataKey(dataKey, item.object, this.deps.bucketProperties(bucket).conflictMode, false);
      if (result.changed) changed += 1;
    }
    this.keysRepaired += changed;
    if (this.progress.running) this.progress = { ...this.progress, keysRepaired: this.progress.keysRepaired + changed };
    return changed;
  }

  /** True when the storage key lies in the partition (of the ring's partition count). */
  private inPartition(partition: number, dataKey: Uint8Array): boolean {
    return partitionOfPosition(Buffer.from(dataKey.buffer, dataKey.byteOffset, dataKey.byteLength).readUInt32BE(0), this.partitionCount) === partition;
  }

  /** Checks a partition number a peer sent: an integer of this ring, or KV_BAD_REQUEST (KV_NOT_READY before a ring). */
  private requirePartition(partition: unknown): number {
    if (this.deps.ring() === null || this.partitionCount === 0) throw new KvError('KV_NOT_READY', 'this node has no ring yet; retry once it has joined', { retryAfterSeconds: 1 });
    if (typeof partition !== 'number' || !Number.isInteger(partition) || partition < 0 || partition >= this.partitionCount) {
      // The value is not echoed: a hostile payload could be nested too deep to print.
      throw badRequest(`partition (${typeof partition === 'number' ? partition : typeof partition}) is not one of this ring's ${this.partitionCount}`);
    }
    return partition;
  }

  /** Checks that every key a peer sent lies in the partition it names. */
  private requireKeysInPartition(partition: number, keys: Iterable<Uint8Array>): void {
    for (const key of keys) if (!this.inPartition(partition, key)) throw badRequest(`a key outside partition ${partition}`);
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

  /** The keys among `keys` that this node reaped and still remembers. */
  private async reapedAmong(keys: readonly Uint8Array[]): Promise<Uint8Array[]> {
    const reaped: Uint8Array[] = [];
    for (const key of keys) if ((await this.deps.replica.reapedBytes(Buffer.from(key))) !== undefined) reaped.push(key);
    return reaped;
  }

  /** Serves the JSON-shaped side of an exchange; undefined for operations that are not anti-entropy's. Payloads are checked before use. */
  async handleControl(operation: string, payload: unknown): Promise<unknown> {
    if (!isRecord(payload)) throw badRequest(`${operation} needs an object payload`);
    switch (operation) {
      case 'ae-root': {
        const partition = this.requirePartition(payload.partition);
        const root = requireText(payload, 'root', wireLimits.maxDigestLength);
        const tree = this.trees.get(partition) ?? new MerkleTree();
        return tree.root() === root ? { equal: true } : { equal: false, branches: tree.branchHashes() };
      }
      case 'ae-leaves': {
        const partition = this.requirePartition(payload.partition);
        const branches = payload.branches;
        if (!Array.isArray(branches) || branches.length > merkleFanout || !branches.every((branch) => Number.isInteger(branch) && branch >= 0 && branch < merkleFanout)) {
          throw badRequest(`field 'branches' must list at most ${merkleFanout} branch numbers below ${merkleFanout}`);
        }
        const tree = this.trees.get(partition) ?? new MerkleTree();
        return { leaves: Object.fromEntries([...new Set(branches as number[])].map((branch) => [String(branch), tree.leafHashes(branch)])) };
      }
      case 'ae-digest': {
        const dataKey = keyBytes(requireKeyText(payload));
        const bytes = await this.deps.replica.readBytes(dataKey);
        return { digest: bytes === undefined ? null : digestOf(dataKey, bytes) };
      }
      case 'ae-reap': {
        const key = requireKeyText(payload);
        const digest = requireText(payload, 'digest', wireLimits.maxDigestLength);
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

  /** Serves the binary side of an exchange: key comparison, object pages and pushes, each checked and bounded. */
  async handleMessage(request: AntiEntropyRequest): Promise<PeerReply> {
    const partition = this.requirePartition(request.partition);
    switch (request.type) {
      case 'ae-keys':
        this.requireKeysInPartition(partition, request.items.map((item) => item.dataKey));
        return this.answerKeys(partition, request);
      case 'ae-fetch':
        this.requireKeysInPartition(partition, request.keys);
        return this.answerFetch(request);
      case 'ae-push':
        this.requireKeysInPartition(partition, request.items.map((item) => item.dataKey));
        return { type: 'ae-push-reply', repaired: await this.mergeItems(partition, request.items) } satisfies AntiEntropyPushReply;
    }
  }

  /**
   * The responder's side of the key comparison: what differs, both ways. The reply lists keys
   * only (the objects follow in ae-fetch pages), at most wireLimits.maxKeys of this side's and
   * about maxPageBytes of key bytes; beyond that it is truncated and the next exchange goes on.
   */
  private async answerKeys(partition: number, request: AntiEntropyKeysRequest): Promise<AntiEntropyKeysReply> {
    const theirs = new Map(request.items.map((item) => [Buffer.from(item.dataKey).toString('latin1'), item.digest]));
    const mine = await this.leafDigests(partition, [...new Set(request.leaves)]);
    const differing: Buffer[] = [];
    let differingBytes = 0;
    let truncated = false;
    for (const [name, entry] of mine) {
      if (theirs.get(name) === entry.digest) continue;
      if (differing.length >= wireLimits.maxKeys || differingBytes >= this.deps.settings.maxPageBytes) {
        truncated = true;
        break;
      }
      differing.push(entry.dataKey);
      differingBytes += entry.dataKey.byteLength;
    }
    const need: Buffer[] = [];
    for (const item of request.items) {
      const name = Buffer.from(item.dataKey).toString('latin1');
      if (mine.get(name)?.digest === item.digest) continue;
      // A key this side reaped is not asked for: the initiator fetches the remembered tombstone instead, and converges.
      if (!mine.has(name) && (await this.deps.replica.reapedBytes(Buffer.from(item.dataKey))) !== undefined) differing.push(Buffer.from(item.dataKey));
      else need.push(Buffer.from(item.dataKey));
    }
    return { type: 'ae-keys-reply', differing, need, truncated };
  }

  /** A page of this side's objects of the keys asked for, in their order, bounded by bytes and count; always one object when any is left. */
  private async answerFetch(request: AntiEntropyFetchRequest): Promise<ObjectPageReply> {
    const maxBytes = Math.min(request.maxBytes, this.deps.settings.maxPageBytes);
    const items: StoredItem[] = [];
    let bytes = 0;
    for (const [index, key] of request.keys.entries()) {
      const stored = (await this.deps.replica.readBytes(Buffer.from(key))) ?? (await this.deps.replica.reapedBytes(Buffer.from(key)));
      if (stored === undefined) continue;
      items.push({ dataKey: key, object: decodeObject(stored) });
      bytes += stored.byteLength;
      const more = index < request.keys.length - 1;
      if (more && (bytes >= maxBytes || items.length >= wireLimits.maxItems)) return { type: 'object-page', items, done: false };
    }
    return { type: 'object-page', items, done: true };
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
}
