import { MerkleTree, itemHash, leafOfPosition, leafPositionRange } from '../../core/antientropy/merkle-tree.js';
import { partitionKeyRange, partitionOfPosition } from '../../core/keys.js';
import type { Ring } from '../../core/ring/ring.js';
import { decodeObject } from '../../core/versioning/object-codec.js';
import { type VersionedObject, deadSinceMs } from '../../core/versioning/versioned-object.js';
import { ByteReader, ByteWriter } from '../../core/wire/bytes.js';
import type { Clock } from '../../ports/clock.js';
import type { Logger } from '../../ports/logger.js';
import type { KeySpace } from '../../ports/storage.js';
import { KvError } from '../../util/errors.js';
import type { Replica, WriteGate } from '../replica.js';
import { type LocalDigest, digestOf, positionBound } from './shared.js';

/** What the tree keeper needs from its node. */
export interface TreeKeeperDependencies {
  readonly data: KeySpace;
  readonly meta: KeySpace;
  readonly replica: Replica;
  readonly clock: Clock;
  readonly logger: Logger;
  ring(): Ring | null;
  /** Called when partitions became comparable after a start (their trees were rebuilt in the background). */
  onTreesRebuilt(): void;
}

/** The saved trees' header (and clean-shutdown marker): format, partition count, then a bit per partition whose tree was saved. */
const headerKey = Buffer.from('ae-trees/header', 'latin1');
/** One saved tree: prefix, then the partition (4 bytes, big-endian). */
const treePrefix = Buffer.from('ae-trees/p/', 'latin1');
const snapshotFormatVersion = 1;
/** Up to this many leaves are listed by a scan each; more by one scan across them (fewer iterators, a few keys read in vain). */
const leavesScannedApart = 4;

function treeKey(partition: number): Buffer {
  const key = Buffer.alloc(treePrefix.length + 4);
  treePrefix.copy(key);
  key.writeUInt32BE(partition, treePrefix.length);
  return key;
}

/**
 * The tree keeper: one Merkle tree per partition over (key, stored version), kept current from
 * every write (Dynamo 4.7, Riak AAE's hash trees), and the index of tombstones the reaper works on.
 *
 * Start-up does not scan the data. A clean stop saves the trees (and the tombstone index) with a
 * header that marks them as current; the next start loads them and deletes the header, synced,
 * before any write is let through, so saved trees are only ever trusted when no write can have
 * happened since they were saved. After an unclean stop (kill -9, power loss) there is no header:
 * the node starts at once and rebuilds the trees in the background, one partition at a time,
 * comparing only partitions whose tree is built (a peer asked about another hears "not ready").
 *
 * Writes pass the keeper's gate (Replica.setWriteGate): while a partition is scanned, or the trees
 * are loaded or saved, writes wait (a partition scan is short), so no tree misses or
 * double-counts a write that raced with its scan.
 */
export class TreeKeeper implements WriteGate {
  private readonly trees = new Map<number, MerkleTree>();
  /** Tombstones per partition, by storage key (latin1), with the time of their newest version. */
  private readonly tombstones = new Map<number, Map<string, number>>();
  /** Changes per partition since this start: an exchange compares a partition again only when it moved. */
  private readonly changes = new Map<number, number>();
  /** Partitions whose tree is current (every one once the rebuild is done). */
  private ready = new Set<number>();
  private partitionCount = 0;
  private loadedFromSnapshot = false;
  private rebuilding = false;
  private partitionsRebuilt = 0;
  private closed = false;
  private opened = false;
  /** Writes that passed the gate and have not finished. */
  private writesInFlight = 0;
  private drained: (() => void)[] = [];
  /** Set while writes must wait (opening, a partition scan, saving); resolved when they may go on. */
  private barrier: Promise<void> | undefined;
  private releaseOpening: (() => void) | undefined;
  private rebuilt: Promise<void> = Promise.resolve();

  constructor(private readonly deps: TreeKeeperDependencies) {
    // Writes wait until the trees are open (a peer may write before start() has run).
    this.barrier = new Promise((resolve) => {
      this.releaseOpening = resolve;
    });
    deps.replica.setWriteGate(this);
  }

  /** WriteGate: a write waits while the keeper holds writes back, and is refused once the node is stopping. */
  enter(): Promise<void> | undefined {
    if (this.closed) throw new KvError('KV_NOT_READY', 'this node is stopping and takes no more writes; retry on another replica');
    if (this.barrier !== undefined) return this.barrier.then(() => this.enter());
    this.writesInFlight += 1;
    return undefined;
  }

  /** WriteGate: a write that entered is done. */
  leave(): void {
    this.writesInFlight -= 1;
    if (this.writesInFlight === 0) for (const resolve of this.drained.splice(0)) resolve();
  }

  /** Runs `work` with every write held back and none in flight. */
  private async exclusive<T>(work: () => Promise<T>): Promise<T> {
    while (this.barrier !== undefined) await this.barrier;
    let release!: () => void;
    this.barrier = new Promise((resolve) => {
      release = resolve;
    });
    try {
      while (this.writesInFlight > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
      return await work();
    } finally {
      this.barrier = undefined;
      release();
    }
  }

  /**
   * Opens the trees: loads the saved ones if the last stop was clean (and forgets the marker, so a
   * crash from now on is noticed), else starts rebuilding them in the background. Writes are let
   * through once this has returned.
   */
  async open(partitionCount: number): Promise<void> {
    this.partitionCount = partitionCount;
    this.opened = true;
    try {
      this.loadedFromSnapshot = await this.loadSnapshot(partitionCount);
      // Synced: a power loss must not bring the marker back over writes made after this start.
      await this.deps.meta.del(headerKey, { sync: true });
    } finally {
      this.barrier = undefined;
      this.releaseOpening?.();
    }
    if (this.ready.size < partitionCount) {
      this.rebuilding = true;
      this.rebuilt = this.rebuild().catch((error: unknown) =>
        this.deps.logger.error({ error: String(error) }, 'rebuilding the Merkle trees failed; anti-entropy compares only the partitions already rebuilt'),
      );
    }
  }

  /** Loads the trees of the last clean stop; false (with nothing loaded) when there are none to trust. */
  private async loadSnapshot(partitionCount: number): Promise<boolean> {
    const header = await this.deps.meta.get(headerKey);
    if (header === undefined) return false;
    const bytes = Buffer.from(header);
    if (
      bytes.length < 5 ||
      bytes.readUInt8(0) !== snapshotFormatVersion ||
      bytes.readUInt32BE(1) !== partitionCount ||
      bytes.length !== 5 + Math.ceil(partitionCount / 8)
    ) {
      this.deps.logger.info({}, 'the saved Merkle trees do not fit this node (another format or partition count); rebuilding them');
      return false;
    }
    const saved = new Set<number>();
    for (let partition = 0; partition < partitionCount; partition++)
      if (((bytes[5 + (partition >> 3)] as number) & (1 << (partition & 7))) !== 0) saved.add(partition);
    const found = new Map<number, Uint8Array>();
    for await (const [key, value] of this.deps.meta.entries({ gte: treePrefix, lt: treeKey(2 ** 32 - 1) }))
      found.set(Buffer.from(key).readUInt32BE(treePrefix.length), value);
    for (const partition of saved) {
      const value = found.get(partition);
      // A saved partition without an entry was empty.
      if (value === undefined) {
        this.ready.add(partition);
        continue;
      }
      const decoded = this.decodePartition(value);
      if (decoded === undefined) continue;
      this.trees.set(partition, decoded.tree);
      if (decoded.tombstones.size > 0) this.tombstones.set(partition, decoded.tombstones);
      this.ready.add(partition);
    }
    return true;
  }

  private decodePartition(value: Uint8Array): { tree: MerkleTree; tombstones: Map<string, number> } | undefined {
    try {
      const reader = new ByteReader(value);
      const tree = MerkleTree.fromBytes(reader.bytes());
      if (tree === undefined) return undefined;
      const tombstones = new Map<string, number>();
      const count = reader.varint();
      for (let index = 0; index < count; index++) tombstones.set(reader.bytes().toString('latin1'), reader.f64());
      return reader.done() ? { tree, tombstones } : undefined;
    } catch {
      return undefined;
    }
  }

  /** Rebuilds, one partition scan at a time, every tree that was not loaded. */
  private async rebuild(): Promise<void> {
    const started = this.deps.clock.nowMs();
    for (let partition = 0; partition < this.partitionCount; partition++) {
      if (this.closed) return;
      if (this.ready.has(partition)) continue;
      await this.exclusive(async () => this.scanPartition(partition));
      this.partitionsRebuilt += 1;
    }
    this.rebuilding = false;
    this.deps.logger.info(
      { partitions: this.partitionsRebuilt, keys: this.keyCount, ms: this.deps.clock.nowMs() - started },
      'rebuilt the Merkle trees from the data',
    );
    this.deps.onTreesRebuilt();
  }

  /** Builds one partition's tree with one range scan (writes are held back meanwhile). */
  private async scanPartition(partition: number): Promise<void> {
    if (this.closed || this.ready.has(partition) || partition >= this.partitionCount) return;
    this.trees.delete(partition);
    this.tombstones.delete(partition);
    this.ready.add(partition);
    const range = partitionKeyRange(partition, this.partitionCount);
    for await (const [key, value] of this.deps.data.entries(range.lt === undefined ? { gte: range.gte } : { gte: range.gte, lt: range.lt })) {
      this.apply(Buffer.from(key), undefined, value, undefined);
    }
  }

  /** Keeps the trees current: called by the replica after every change of a stored key. */
  track(dataKey: Buffer, before: Uint8Array | undefined, after: Uint8Array | undefined, object: VersionedObject | undefined): void {
    // Q is the cluster's, fixed when it was created. A node that joined with another
    // partitionCount in its config opened its (empty: it could store nothing before it had a
    // ring) trees with its own; it takes the ring's before it stores its first key.
    const ringPartitionCount = this.deps.ring()?.partitionCount;
    if (ringPartitionCount !== undefined && ringPartitionCount !== this.partitionCount && !this.rebuilding && this.keyCount === 0) {
      this.partitionCount = ringPartitionCount;
      this.trees.clear();
      this.tombstones.clear();
      this.ready = new Set(Array.from({ length: ringPartitionCount }, (_, partition) => partition));
    }
    if (this.partitionCount === 0) return;
    const partition = partitionOfPosition(dataKey.readUInt32BE(0), this.partitionCount);
    // A partition not rebuilt yet is left to its scan, which comes later and sees this write.
    if (!this.ready.has(partition)) return;
    this.changes.set(partition, (this.changes.get(partition) ?? 0) + 1);
    this.apply(dataKey, before, after, object);
  }

  private apply(dataKey: Buffer, before: Uint8Array | undefined, after: Uint8Array | undefined, object: VersionedObject | undefined): void {
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

  /**
   * Stops taking writes (they are refused from now on) once those under way are done, and saves
   * the trees with the header that marks them current, synced, so the next start loads them.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.opened) {
      // Never opened (the node did not start): there is nothing to save, and no write may begin.
      this.closed = true;
      this.barrier = undefined;
      this.releaseOpening?.();
      return;
    }
    await this.exclusive(async () => {
      this.closed = true;
      if (this.partitionCount === 0) return;
      const header = Buffer.alloc(5 + Math.ceil(this.partitionCount / 8));
      header.writeUInt8(snapshotFormatVersion, 0);
      header.writeUInt32BE(this.partitionCount, 1);
      const operations: { type: 'put' | 'del'; key: Buffer; value?: Buffer }[] = [];
      for (let partition = 0; partition < this.partitionCount; partition++) {
        const tree = this.trees.get(partition);
        const tombstones = this.tombstones.get(partition);
        if (this.ready.has(partition)) header[5 + (partition >> 3)] = (header[5 + (partition >> 3)] as number) | (1 << (partition & 7));
        if (!this.ready.has(partition) || ((tree === undefined || tree.itemCount === 0) && (tombstones === undefined || tombstones.size === 0))) {
          operations.push({ type: 'del', key: treeKey(partition) });
          continue;
        }
        const writer = new ByteWriter().bytes((tree ?? new MerkleTree()).toBytes()).varint(tombstones?.size ?? 0);
        for (const [name, deadSince] of tombstones ?? []) writer.bytes(Buffer.from(name, 'latin1')).f64(deadSince);
        operations.push({ type: 'put', key: treeKey(partition), value: writer.finish() });
      }
      operations.push({ type: 'put', key: headerKey, value: header });
      await this.deps.meta.batch(
        operations.map((operation) =>
          operation.type === 'put' ? { type: 'put', key: operation.key, value: operation.value as Buffer } : { type: 'del', key: operation.key },
        ),
        { sync: true },
      );
    });
  }

  /** Settles once the background rebuild of this start has ended (at once when the trees were loaded). */
  async whenRebuilt(): Promise<void> {
    await this.rebuilt;
  }

  /** True when the partition's tree is current (false while it waits for its rebuild). */
  isReady(partition: number): boolean {
    return this.ready.has(partition);
  }

  /** The partition's tree (an empty one when it holds nothing). */
  tree(partition: number): MerkleTree {
    return this.trees.get(partition) ?? new MerkleTree();
  }

  /** How often the partition changed since this start (an exchange remembers it to skip an unchanged partition next time). */
  changeCount(partition: number): number {
    return this.changes.get(partition) ?? 0;
  }

  /** The partition count the trees are laid out for. */
  get partitions(): number {
    return this.partitionCount;
  }

  /** The tombstone candidates of a partition: storage key (latin1) and the time it died. */
  tombstonesOf(partition: number): ReadonlyMap<string, number> {
    return this.tombstones.get(partition) ?? new Map();
  }

  /** Tombstones waiting to be reaped. */
  get tombstonesPending(): number {
    let total = 0;
    for (const partition of this.tombstones.values()) total += partition.size;
    return total;
  }

  /** Keys stored on this node, tombstones included (of the partitions rebuilt so far, while a rebuild runs). */
  get keyCount(): number {
    let total = 0;
    for (const tree of this.trees.values()) total += tree.itemCount;
    return total;
  }

  /** Partitions with a tree. */
  get partitionsTracked(): number {
    return this.trees.size;
  }

  /** Figures of the start: whether the trees came from the last clean stop, and the rebuild's progress. */
  get startFigures(): { loadedFromSnapshot: boolean; rebuilding: boolean; partitionsRebuilt: number; partitionsReady: number } {
    return {
      loadedFromSnapshot: this.loadedFromSnapshot,
      rebuilding: this.rebuilding,
      partitionsRebuilt: this.partitionsRebuilt,
      partitionsReady: this.ready.size,
    };
  }

  /**
   * Partitions this node holds any key of (handoff clean-up and leaving use it). One not rebuilt
   * yet counts as held: a leaving node must not think itself empty before it has looked.
   */
  heldPartitions(): number[] {
    const held: number[] = [];
    for (let partition = 0; partition < this.partitionCount; partition++) {
      if (!this.ready.has(partition) || (this.trees.get(partition)?.itemCount ?? 0) > 0) held.push(partition);
    }
    return held;
  }

  /**
   * The keys stored in some leaves of a partition, with their digests (values are not kept): one
   * range scan per leaf for a few leaves, else one scan from the first leaf to the last, keeping
   * the keys of the leaves asked for.
   */
  async leafDigests(partition: number, leaves: readonly number[]): Promise<Map<string, LocalDigest>> {
    const entries = new Map<string, LocalDigest>();
    if (leaves.length === 0) return entries;
    const scan = async (first: number, last: number, wanted: ReadonlySet<number> | undefined): Promise<void> => {
      const gte = positionBound(leafPositionRange(partition, first, this.partitionCount).start) as Buffer;
      const lt = positionBound(leafPositionRange(partition, last, this.partitionCount).end);
      for await (const [key, value] of this.deps.data.entries(lt === undefined ? { gte } : { gte, lt })) {
        const dataKey = Buffer.from(key);
        if (wanted !== undefined && !wanted.has(leafOfPosition(dataKey.readUInt32BE(0), this.partitionCount))) continue;
        entries.set(dataKey.toString('latin1'), { dataKey, digest: digestOf(key, value) });
      }
    };
    if (leaves.length <= leavesScannedApart) {
      for (const leaf of leaves) await scan(leaf, leaf, undefined);
      return entries;
    }
    await scan(Math.min(...leaves), Math.max(...leaves), new Set(leaves));
    return entries;
  }

  /** True when the storage key lies in the partition (of the trees' partition count). */
  inPartition(partition: number, dataKey: Uint8Array): boolean {
    return partitionOfPosition(Buffer.from(dataKey.buffer, dataKey.byteOffset, dataKey.byteLength).readUInt32BE(0), this.partitionCount) === partition;
  }
}
