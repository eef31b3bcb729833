import { decodeDataKey, encodeDataKey } from '../core/keys.js';
import { decodeObject, encodeObject } from '../core/versioning/object-codec.js';
import {
  type ConflictMode,
  type VersionedObject,
  type WriteIntent,
  applyWrite,
  emptyObject,
  mergeObjects,
  pruneClock,
  versionIdentity,
} from '../core/versioning/versioned-object.js';
import type { Storage } from '../ports/storage.js';
import { KeyLocks } from './key-locks.js';

/** Called after every change of a stored key, with its old and new object (anti-entropy keeps its trees current this way). */
export type ChangeListener = (dataKey: Buffer, before: VersionedObject | undefined, after: VersionedObject) => void;

/**
 * One node's replica of its keys: reads, coordinated writes (this node issues the dot) and
 * merges, each serialised per key.
 */
export class Replica {
  private readonly locks = new KeyLocks();
  private readonly listeners: ChangeListener[] = [];

  constructor(
    private readonly storage: Storage,
    /** The actor id in dots this replica issues. */
    private readonly actorId: string,
    private readonly maxVectorEntries: number,
  ) {}

  /** Registers a listener of stored changes. */
  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** The stored object of a key, or undefined. */
  async read(bucket: string, key: string): Promise<VersionedObject | undefined> {
    return this.readByDataKey(encodeDataKey(bucket, key));
  }

  /** The stored object under a storage key, or undefined. */
  async readByDataKey(dataKey: Buffer): Promise<VersionedObject | undefined> {
    const bytes = await this.storage.data.get(dataKey);
    return bytes === undefined ? undefined : decodeObject(bytes);
  }

  /** Applies a client write here, issuing its dot, and stores the result. */
  async coordinateWrite(bucket: string, key: string, write: WriteIntent, mode: ConflictMode, sync: boolean): Promise<VersionedObject> {
    const dataKey = encodeDataKey(bucket, key);
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const before = await this.readByDataKey(dataKey);
      const after = pruneClock(applyWrite(before ?? emptyObject, this.actorId, write, mode), this.maxVectorEntries);
      await this.store(dataKey, before, after, sync);
      return after;
    });
  }

  /** Merges a version from elsewhere into this replica; answers the merged object and whether it changed. */
  async merge(bucket: string, key: string, incoming: VersionedObject, mode: ConflictMode, sync: boolean): Promise<{ object: VersionedObject; changed: boolean }> {
    return this.mergeByDataKey(encodeDataKey(bucket, key), incoming, mode, sync);
  }

  /** merge() addressed by storage key (handoff and anti-entropy work on storage keys). */
  async mergeByDataKey(dataKey: Buffer, incoming: VersionedObject, mode: ConflictMode, sync: boolean): Promise<{ object: VersionedObject; changed: boolean }> {
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const before = await this.readByDataKey(dataKey);
      const after = before === undefined ? incoming : mergeObjects(before, incoming, mode);
      const changed = before === undefined || versionIdentity(before) !== versionIdentity(after);
      // A sync write must reach the disk even when nothing changed, or `dw` would count a write that is not durable.
      if (changed || sync) await this.store(dataKey, before, after, sync);
      return { object: after, changed };
    });
  }

  /** Removes a key outright (tombstone reaping, handoff clean-up); the caller holds no lock. */
  async remove(dataKey: Buffer, expected: VersionedObject): Promise<boolean> {
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const current = await this.readByDataKey(dataKey);
      if (current === undefined || versionIdentity(current) !== versionIdentity(expected)) return false;
      await this.storage.data.del(dataKey);
      for (const listener of this.listeners) listener(dataKey, current, { clock: current.clock, siblings: [] });
      return true;
    });
  }

  private async store(dataKey: Buffer, before: VersionedObject | undefined, after: VersionedObject, sync: boolean): Promise<void> {
    await this.storage.data.put(dataKey, encodeObject(after), { sync });
    for (const listener of this.listeners) listener(dataKey, before, after);
  }

  /** Bucket and key of a storage key. */
  static describe(dataKey: Uint8Array): { bucket: string; key: string } {
    const { bucket, key } = decodeDataKey(dataKey);
    return { bucket, key };
  }
}
