import { assert } from '../util/assert.js';

/**
 * What one entry is charged besides its key's and its stored bytes' lengths: the Map's slot and
 * the two strings' headers. An entry is two one-byte strings (the key, and the stored bytes as
 * latin1), so the charge is what it holds on the V8 heap, within a few words.
 */
const entryOverheadBytes = 64;

/**
 * The replica's bounded cache of the latest stored bytes per key (least recently used goes first),
 * so a write to a hot key skips LevelDB's read-before-write. It is only correct while every path
 * that changes a stored key goes through the replica, which sets or drops the key's entry under
 * the key's lock once the storage took the change (src/engine/replica.ts). Absent keys are not
 * cached: a miss reads the storage, which also answers for reaped tombstones. Memory only: a
 * restart starts empty, so a crash can never leave it ahead of (or behind) what the disk kept.
 *
 * An entry holds a copy of the bytes as one string, not the caller's Buffer nor its decoding: a
 * small Buffer is a slice of one of Node's shared 64 KiB pool slabs (Buffer.poolSize on Node 24),
 * and a cached slice keeps its whole slab alive. Holding slices and decoded objects, a 16 MiB
 * bound held 71 MiB (46 MiB of slabs) at 80,000 keys per shard (bench/RESULTS.md, "a shard's
 * memory"). A hit decodes the bytes again, a few microseconds for a small object.
 */
export class ObjectCache {
  /** Map order is recency order: the first entry is the least recently used. */
  private readonly entries = new Map<string, string>();
  /**
   * The one iterator eviction walks the entries with, from the first set on. Every entry it passed
   * was evicted, so the least recently used entry is the next live one ahead of it (a used or
   * rewritten key is deleted and set again, which moves it to the end). A Map iterator skips the
   * entries deleted ahead of it and visits those set after it was made, and it only ends when it
   * is asked with no entry ahead, which eviction never does. A fresh iterator per eviction would
   * start at the front, where V8 keeps the slots of deleted entries until it rebuilds the table,
   * and step over all of them every time: at 500,000 keys per shard that took 10% of a shard's
   * busy time (bench/RESULTS.md, "a million keys").
   */
  private readonly evictionCursor: Iterator<[string, string]> = this.entries.entries();
  private bytesHeld = 0;
  hits = 0;
  misses = 0;

  constructor(
    /** The most bytes the entries may be charged (storage.objectCacheBytes); 0 turns the cache off. */
    private readonly maxBytes: number,
  ) {}

  /** The cached stored bytes of a key (as `dataKey.toString('latin1')`), a fresh Buffer the caller may keep, or undefined. */
  get(name: string): Buffer | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined) {
      this.misses += 1;
      return undefined;
    }
    this.hits += 1;
    this.entries.delete(name);
    this.entries.set(name, entry);
    return Buffer.from(entry, 'latin1');
  }

  /** Records the bytes now stored under a key (copied); an entry over the whole bound is not kept. */
  set(name: string, bytes: Uint8Array): void {
    this.delete(name);
    if (chargeOf(name, bytes.byteLength) > this.maxBytes) return;
    const copy = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
    this.entries.set(name, copy);
    this.bytesHeld += chargeOf(name, copy.length);
    while (this.bytesHeld > this.maxBytes) {
      const [oldest, entry] = this.leastRecentlyUsed();
      this.entries.delete(oldest);
      this.bytesHeld -= chargeOf(oldest, entry.length);
    }
  }

  /** The least recently used entry; only called while some entry is held. */
  private leastRecentlyUsed(): [string, string] {
    const next = this.evictionCursor.next();
    assert(next.done !== true, 'the object cache evicts only while it holds an entry');
    return next.value;
  }

  /** Forgets a key (removed, reaped, or a write whose outcome on disk is unknown). */
  delete(name: string): void {
    const entry = this.entries.get(name);
    if (entry === undefined) return;
    this.entries.delete(name);
    this.bytesHeld -= chargeOf(name, entry.length);
  }

  /** Entries held now. */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes the entries are charged now (at most the bound). */
  get bytes(): number {
    return this.bytesHeld;
  }
}

function chargeOf(name: string, byteLength: number): number {
  return name.length + byteLength + entryOverheadBytes;
}
