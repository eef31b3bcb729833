import { hash } from 'node:crypto';
import { assert } from '../../util/assert.js';

/**
 * Merkle trees for anti-entropy (Dynamo section 4.7, Riak's active anti-entropy): one tree per
 * partition over (key, version) pairs, so two replicas find the keys they disagree on by
 * exchanging hashes proportional to the differences, not to the data.
 *
 * The tree has three levels: a root, `fanout` branches, and `fanout` leaves under each branch.
 * A key's leaf comes from the bits of its ring position just below the partition bits, so a
 * leaf is one contiguous range of storage keys and can be listed with one range scan.
 *
 * Every level is the XOR of the 64-bit hashes of the items below it. XOR makes an update O(1)
 * (remove the old item's hash, add the new one) with no rebuild, and the result does not depend
 * on the order writes arrived in, so equal contents give equal trees on every replica.
 *
 * The tree is a mutable value: it is updated on every write, and copying it per write would
 * cost more than the write. Only the engine holds one.
 */

/** Branches under the root, and leaves under each branch. */
export const merkleFanout = 32;

/** Leaves per partition tree. */
export const merkleLeafCount = merkleFanout * merkleFanout;

const leafBits = Math.log2(merkleLeafCount);

/** A 64-bit item hash as two 32-bit halves. */
export interface ItemHash {
  readonly high: number;
  readonly low: number;
}

/**
 * The hash of one stored item: the storage key and the exact stored bytes of its version.
 * Computed on every write (twice: the old version out, the new one in), so it uses the
 * one-shot digest, which costs about half of a streaming hash object.
 */
export function itemHash(dataKey: Uint8Array, storedBytes: Uint8Array): ItemHash {
  const digest = hash('sha1', Buffer.concat([dataKey, storedBytes]), 'buffer');
  return { high: digest.readUInt32BE(0), low: digest.readUInt32BE(4) };
}

/** The leaf (0..merkleLeafCount-1) of a ring position inside a ring of `partitionCount` partitions. */
export function leafOfPosition(position: number, partitionCount: number): number {
  const partitionBits = Math.log2(partitionCount);
  // Shift the partition bits out, then keep the next leafBits bits.
  return Math.floor(((position * 2 ** partitionBits) % 2 ** 32) / 2 ** (32 - leafBits));
}

/** The ring positions [start, end) a leaf of a partition covers (end is 2^32 for the last leaf of the last partition). */
export function leafPositionRange(partition: number, leaf: number, partitionCount: number): { start: number; end: number } {
  const partitionWidth = 2 ** 32 / partitionCount;
  const leafWidth = partitionWidth / merkleLeafCount;
  assert(Number.isInteger(leafWidth) && leafWidth >= 1, 'partitionCount too large for the Merkle leaf layout');
  const start = partition * partitionWidth + leaf * leafWidth;
  return { start, end: start + leafWidth };
}

/** Hex text of a hash pair (for the wire and for tests). */
export function hashText(high: number, low: number): string {
  return high.toString(16).padStart(8, '0') + low.toString(16).padStart(8, '0');
}

/** One partition's tree. */
export class MerkleTree {
  /** [high, low] per leaf, per branch, and the root. */
  private readonly leaves = new Uint32Array(merkleLeafCount * 2);
  private readonly branches = new Uint32Array(merkleFanout * 2);
  private rootHigh = 0;
  private rootLow = 0;
  /** Items per leaf, so a partition knows how many keys it holds. */
  private readonly leafItems = new Uint32Array(merkleLeafCount);
  private items = 0;

  /** Adds an item's hash to its leaf (a key stored, or a version replacing another: remove the old first). */
  add(leaf: number, hash: ItemHash): void {
    this.toggle(leaf, hash);
    this.leafItems[leaf] = (this.leafItems[leaf] ?? 0) + 1;
    this.items += 1;
  }

  /** Removes an item's hash from its leaf. */
  remove(leaf: number, hash: ItemHash): void {
    this.toggle(leaf, hash);
    this.leafItems[leaf] = Math.max(0, (this.leafItems[leaf] ?? 0) - 1);
    this.items = Math.max(0, this.items - 1);
  }

  private toggle(leaf: number, hash: ItemHash): void {
    assert(leaf >= 0 && leaf < merkleLeafCount, 'leaf out of range');
    const branch = Math.floor(leaf / merkleFanout);
    this.leaves[leaf * 2] = ((this.leaves[leaf * 2] as number) ^ hash.high) >>> 0;
    this.leaves[leaf * 2 + 1] = ((this.leaves[leaf * 2 + 1] as number) ^ hash.low) >>> 0;
    this.branches[branch * 2] = ((this.branches[branch * 2] as number) ^ hash.high) >>> 0;
    this.branches[branch * 2 + 1] = ((this.branches[branch * 2 + 1] as number) ^ hash.low) >>> 0;
    this.rootHigh = (this.rootHigh ^ hash.high) >>> 0;
    this.rootLow = (this.rootLow ^ hash.low) >>> 0;
  }

  /** Keys stored in the partition. */
  get itemCount(): number {
    return this.items;
  }

  /** The root hash. */
  root(): string {
    return hashText(this.rootHigh, this.rootLow);
  }

  /** The hashes of every branch. */
  branchHashes(): string[] {
    return Array.from({ length: merkleFanout }, (_, branch) => hashText(this.branches[branch * 2] as number, this.branches[branch * 2 + 1] as number));
  }

  /**
   * The tree's state as bytes (its leaf hashes and item counts; branches and root follow from
   * them), so a clean shutdown can keep it and the next start need not scan the data again.
   */
  toBytes(): Buffer {
    const bytes = Buffer.alloc(merkleTreeBytes);
    for (let index = 0; index < merkleLeafCount * 2; index++) bytes.writeUInt32BE(this.leaves[index] as number, index * 4);
    for (let leaf = 0; leaf < merkleLeafCount; leaf++) bytes.writeUInt32BE(this.leafItems[leaf] as number, merkleLeafCount * 8 + leaf * 4);
    return bytes;
  }

  /** A tree from toBytes(); undefined when the bytes are not one (the caller rebuilds from the data instead). */
  static fromBytes(bytes: Uint8Array): MerkleTree | undefined {
    if (bytes.byteLength !== merkleTreeBytes) return undefined;
    const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const tree = new MerkleTree();
    for (let leaf = 0; leaf < merkleLeafCount; leaf++) {
      const high = view.readUInt32BE(leaf * 8);
      const low = view.readUInt32BE(leaf * 8 + 4);
      const items = view.readUInt32BE(merkleLeafCount * 8 + leaf * 4);
      tree.toggle(leaf, { high, low });
      tree.leafItems[leaf] = items;
      tree.items += items;
    }
    return tree;
  }

  /** The hashes of the leaves under one branch. */
  leafHashes(branch: number): string[] {
    return Array.from({ length: merkleFanout }, (_, index) => {
      const leaf = branch * merkleFanout + index;
      return hashText(this.leaves[leaf * 2] as number, this.leaves[leaf * 2 + 1] as number);
    });
  }
}

/** The length of MerkleTree.toBytes(): a hash pair and an item count per leaf. */
export const merkleTreeBytes = merkleLeafCount * 12;

/** Indexes where two equal-length hash lists differ. */
export function differingIndexes(left: readonly string[], right: readonly string[]): number[] {
  const differing: number[] = [];
  for (let index = 0; index < Math.max(left.length, right.length); index++) if (left[index] !== right[index]) differing.push(index);
  return differing;
}
