import type { VersionedObject } from '../core/versioning/versioned-object.js';

/** One cached stored object: its bytes as stored (change listeners and size checks need them) and their decoding. */
export interface CachedObject {
  readonly bytes: Uint8Array;
  readonly object: VersionedObject;
}

/**
 * What one entry is charged besides its key and stored bytes: the decoded object, the map entry
 * and the strings. A rough figure, so the byte bound holds within a small factor.
 */
const entryOverheadBytes = 256;

/**
 * The replica's bounded cache of the latest stored object per key (least recently used goes first),
 * so a write to a hot key skips LevelDB's read-before-write. It is only correct while every path
 * that changes a stored key goes through the replica, which sets or drops the key's entry under
 * the key's lock once the storage took the change (src/engine/replica.ts). Absent keys are not
 * cached: a miss reads the storage, which also answers for reaped tombstones. Memory only: a
 * restart starts empty, so a crash can never leave it ahead of (or behind) what the disk kept.
 */
export class ObjectCache {
  /** Map order is recency order: the first entry is the least recently used. */
  private readonly entries = new Map<string, CachedObject>();
  private bytesHeld = 0;
  hits = 0;
  misses = 0;

  constructor(
    /** The most bytes the entries may be charged (storage.objectCacheBytes); 0 turns the cache off. */
    private readonly maxBytes: number,
  ) {}

  /** The cached object of a key (as `dataKey.toString('latin1')`), or undefined. */
  get(name: string): CachedObject | undefined {
    const entry = this.entries.get(name);
    if (entry === undefined) {
      this.misses += 1;
      return undefined;
    }
    this.hits += 1;
    this.entries.delete(name);
    this.entries.set(name, entry);
    return entry;
  }

  /** Records the object now stored under a key; an entry over the whole bound is not kept. */
  set(name: string, bytes: Uint8Array, object: VersionedObject): void {
    this.delete(name);
    const charge = chargeOf(name, bytes);
    if (charge > this.maxBytes) return;
    this.entries.set(name, { bytes, object });
    this.bytesHeld += charge;
    for (const [oldest, entry] of this.entries) {
      if (this.bytesHeld <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytesHeld -= chargeOf(oldest, entry.bytes);
    }
  }

  /** Forgets a key (removed, reaped, or a write whose outcome on disk is unknown). */
  delete(name: string): void {
    const entry = this.entries.get(name);
    if (entry === undefined) return;
    this.entries.delete(name);
    this.bytesHeld -= chargeOf(name, entry.bytes);
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

function chargeOf(name: string, bytes: Uint8Array): number {
  return name.length + bytes.byteLength + entryOverheadBytes;
}
