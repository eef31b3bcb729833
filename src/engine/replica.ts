import { createHash } from 'node:crypto';
import { type SiblingLimits, judgeSiblings } from '../core/versioning/sibling-limits.js';
import { type Precondition, checkPrecondition } from '../core/versioning/preconditions.js';
import { KvError } from '../util/errors.js';
import { decodeDataKey, encodeDataKey } from '../core/keys.js';
import { decodeObject, encodeObject } from '../core/versioning/object-codec.js';
import {
  type ConflictMode,
  type Dot,
  type VersionedObject,
  type WriteIntent,
  applyWrite,
  emptyObject,
  isDeleted,
  mergeObjects,
  pruneClock,
} from '../core/versioning/versioned-object.js';
import { type DataTypeLimits, type DataTypeUpdate, applyDataTypeUpdate } from '../core/datatypes/data-type.js';
import type { Storage } from '../ports/storage.js';
import { BucketIndex } from './bucket-index.js';
import { KeyLocks } from './key-locks.js';
import { ReapedTombstones } from './reaped-tombstones.js';

/**
 * Called after every change of a stored key with its stored bytes before and after (undefined
 * when absent) and the object now stored. Anti-entropy keeps its Merkle trees current this way.
 */
export type ChangeListener = (dataKey: Buffer, before: Uint8Array | undefined, after: Uint8Array | undefined, object: VersionedObject | undefined) => void;

/**
 * Holds writes of stored data back while anti-entropy's tree keeper rebuilds or saves its Merkle
 * trees (src/engine/anti-entropy/tree-keeper.ts), so no tree ever misses or double-counts a write.
 */
export interface WriteGate {
  /** Called before a write; a promise makes the write wait for it; a throw (or rejection) refuses the write. */
  enter(): Promise<void> | undefined;
  /** Called once a write that entered is stored and its change listeners have run (also when it failed). */
  leave(): void;
}

/**
 * One node's replica of its keys: reads, coordinated writes (this node issues the dot) and
 * merges, each serialised per key.
 *
 * Dots are issued by an actor id that is unique to this incarnation of the node
 * (`nodeId.generation`), numbered from one counter across all keys. A restart that lost
 * unsynced writes, a reaped tombstone or a handed-off partition therefore never makes the node
 * issue a dot it issued before: a reused dot would make replicas silently drop one of two
 * different writes (Riak's vnode epochs solve the same problem).
 */
export class Replica {
  private readonly locks = new KeyLocks();
  private readonly listeners: ChangeListener[] = [];
  private writeGate: WriteGate | undefined;
  private dotCounter = 0;
  private readonly reaped: ReapedTombstones;
  /** Versions refused because a tombstone reaped here had superseded them (each would have undone a delete). */
  staleVersionsRefused = 0;
  /** Coordinated writes that left a key with more than limits.siblingsWarn siblings. */
  manySiblingWrites = 0;
  /** Blind writes refused because their key was at limits.maxSiblings. */
  siblingRefusals = 0;
  /** The per-bucket index of the stored keys, kept by store and remove below (src/engine/bucket-index.ts). */
  readonly bucketIndex: BucketIndex;
  /** Per ring region (the top 16 bits of a position): how often a key there was removed or reaped in this incarnation. */
  private readonly dataTypeEpochs = new Map<number, number>();

  constructor(
    private readonly storage: Storage,
    /** The actor id in the dots this replica issues. */
    readonly actorId: string,
    private readonly maxVectorEntries: number,
    /** Sibling bounds of coordinated writes, and who hears of a key past the warning count. */
    private readonly siblingLimits: SiblingLimits = { siblingsWarn: Number.MAX_SAFE_INTEGER, maxSiblings: Number.MAX_SAFE_INTEGER },
    private readonly onManySiblings: (bucket: string, key: string, siblings: number) => void = () => undefined,
  ) {
    this.reaped = new ReapedTombstones(storage.meta);
    this.bucketIndex = new BucketIndex(storage.meta);
  }

  /** Registers a listener of stored changes. */
  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** Installs the gate every write of stored data passes (one: the tree keeper's). */
  setWriteGate(gate: WriteGate): void {
    this.writeGate = gate;
  }

  /** Runs a write of stored data through the gate. */
  private async gated<T>(write: () => Promise<T>): Promise<T> {
    const gate = this.writeGate;
    if (gate === undefined) return write();
    const waiting = gate.enter();
    if (waiting !== undefined) await waiting;
    try {
      return await write();
    } finally {
      gate.leave();
    }
  }

  /** The stored object of a key, or undefined. */
  async read(bucket: string, key: string): Promise<VersionedObject | undefined> {
    return this.readByDataKey(encodeDataKey(bucket, key));
  }

  /**
   * The stored object under a storage key, or undefined. A reaped key answers its remembered
   * tombstone, so a coordinator that also hears a stale replica (one that missed the delete)
   * still reads the key as deleted and read-repairs that replica with the tombstone.
   */
  async readByDataKey(dataKey: Buffer): Promise<VersionedObject | undefined> {
    const bytes = await this.storage.data.get(dataKey);
    return bytes === undefined ? this.reapedObject(dataKey) : decodeObject(bytes);
  }

  /** Applies a client write here, issuing its dot, and stores the result; answers it and the dot the write created. */
  async coordinateWrite(
    bucket: string,
    key: string,
    requested: WriteIntent,
    mode: ConflictMode,
    sync: boolean,
    condition?: { readonly precondition: Precondition; readonly base: VersionedObject | null },
  ): Promise<{ object: VersionedObject; dot: Dot }> {
    const dataKey = encodeDataKey(bucket, key);
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const beforeBytes = await this.storage.data.get(dataKey);
      // A key written again after its tombstone was reaped starts from that tombstone's history,
      // so the new version supersedes what the delete had, as it would have before the reap.
      const stored = beforeBytes === undefined ? ((await this.reapedObject(dataKey)) ?? emptyObject) : decodeObject(beforeBytes);
      // A conditional write is checked here, under the key lock, against this copy merged with
      // what the coordinator's read of r replicas returned, and then supersedes exactly what it matched.
      const before = condition?.base === undefined || condition.base === null ? stored : mergeObjects(stored, condition.base, mode);
      let write = requested;
      if (condition !== undefined) {
        const verdict = checkPrecondition(before, condition.precondition, requested.nowMs);
        if (!verdict.ok) {
          throw new KvError('KV_PRECONDITION_FAILED', `the precondition of this write does not hold for key '${key}' in bucket '${bucket}' (${condition.precondition.kind === 'absent' ? 'a live value exists' : 'the current version is not the one If-Match names'}); read the key again and decide`, {
            details: { clock: before.clock },
          });
        }
        write = { ...requested, context: verdict.context };
      }
      this.dotCounter += 1;
      const applied = applyWrite(before, this.actorId, write, mode, this.dotCounter);
      const siblings = judgeSiblings(this.siblingLimits, mode, before, applied, write.context, { bucket, key }, write.nowMs);
      if (siblings.kind === 'refuse') {
        this.siblingRefusals += 1;
        throw siblings.error;
      }
      if (siblings.kind === 'warn') {
        this.manySiblingWrites += 1;
        this.onManySiblings(bucket, key, siblings.siblings);
      }
      this.dotCounter = Math.max(this.dotCounter, applied.clock[this.actorId] ?? 0);
      const dot: Dot = { node: this.actorId, counter: applied.clock[this.actorId] ?? this.dotCounter };
      const after = pruneClock(applied, this.maxVectorEntries);
      await this.store(dataKey, beforeBytes, beforeBytes !== undefined && !isDeleted(stored), after, sync);
      return { object: after, dot };
    });
  }

  /**
   * Applies a data type update here as one of this replica's actors, after merging in `base` (the
   * coordinator's read, for removes), stores the result and answers it.
   *
   * The actor is a lineage of this incarnation, `actorId~epoch`, and its dots count from 1 per key
   * without gaps. A state-based counter or set is only safe while its actor updates from its own
   * latest state: an actor that lost its copy of a key and issued dots again from an empty state
   * would make the merge drop its earlier entries (a counter would lose increments, a set its
   * elements). Within an incarnation a copy is lost only by handoff clean-up or reaping, which
   * start a new epoch for their region of the ring; a restart is a new incarnation (new actor id).
   * So the lineage of the current epoch is found in the stored clock exactly when this copy holds
   * all of its events, and otherwise a fresh lineage begins.
   */
  async updateDataType(bucket: string, key: string, update: DataTypeUpdate, sync: boolean, base: VersionedObject | null, nowMs: number, limits: DataTypeLimits): Promise<VersionedObject> {
    const dataKey = encodeDataKey(bucket, key);
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const beforeBytes = await this.storage.data.get(dataKey);
      const stored = beforeBytes === undefined ? emptyObject : decodeObject(beforeBytes);
      const before = base === null ? stored : mergeObjects(stored, base, 'siblings');
      const after = applyDataTypeUpdate(before, this.dataTypeActor(dataKey), update, nowMs, limits);
      await this.store(dataKey, beforeBytes, beforeBytes !== undefined && !isDeleted(stored), after, sync);
      return after;
    });
  }

  /** The actor this replica's data type updates of a key use now (see updateDataType). */
  private dataTypeActor(dataKey: Buffer): string {
    const epoch = this.dataTypeEpochs.get(dataKey.readUInt32BE(0) >>> 16) ?? 0;
    const actor = `${this.actorId}~${epoch.toString(36)}`;
    // Contexts carry actor names of at most 128 characters; a long node id is shortened to a digest of it.
    return actor.length <= 128 ? actor : `~${createHash('sha256').update(actor).digest('hex').slice(0, 40)}`;
  }

  /** A stored key is about to go: data type updates in its region start a new lineage (see updateDataType). */
  private forgetDataTypeLineage(dataKey: Buffer): void {
    const region = dataKey.readUInt32BE(0) >>> 16;
    this.dataTypeEpochs.set(region, (this.dataTypeEpochs.get(region) ?? 0) + 1);
  }

  /** Merges a version from elsewhere into this replica; answers the merged object and whether it changed. */
  async merge(bucket: string, key: string, incoming: VersionedObject, mode: ConflictMode, sync: boolean): Promise<{ object: VersionedObject; changed: boolean }> {
    return this.mergeByDataKey(encodeDataKey(bucket, key), incoming, mode, sync);
  }

  /** merge() addressed by storage key (handoff and anti-entropy work on storage keys). */
  async mergeByDataKey(dataKey: Buffer, incoming: VersionedObject, mode: ConflictMode, sync: boolean): Promise<{ object: VersionedObject; changed: boolean }> {
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const beforeBytes = await this.storage.data.get(dataKey);
      let after: VersionedObject;
      let beforeLive = false;
      if (beforeBytes !== undefined) {
        const stored = decodeObject(beforeBytes);
        beforeLive = !isDeleted(stored);
        after = mergeObjects(stored, incoming, mode);
      } else {
        // The key may be absent because its tombstone was reaped: whoever pushes a version the
        // tombstone had superseded (an ex-owner, a removed node back with its old disk, a late
        // hint) must not undo the delete, so the push is merged against the reaped tombstone.
        const reaped = await this.reapedObject(dataKey);
        after = reaped === undefined ? incoming : mergeObjects(reaped, incoming, mode);
        // Judged as if every expiry had passed: a reaped object stays dead for good, and an
        // expiring version is not a value the delete could be undone by (it is stored, reads as
        // what it is, and is reaped again).
        if (reaped !== undefined && isDeleted(after, Number.POSITIVE_INFINITY) && !isDeleted(incoming, Number.POSITIVE_INFINITY)) {
          this.staleVersionsRefused += 1;
          return { object: after, changed: false };
        }
      }
      const afterBytes = encodeObject(after);
      const changed = beforeBytes === undefined || !Buffer.from(beforeBytes).equals(afterBytes);
      // A sync write must reach the disk even when nothing changed, or `dw` would count a write that is not durable.
      if (changed || sync) await this.storeBytes(dataKey, beforeBytes, beforeLive, afterBytes, after, sync);
      return { object: after, changed };
    });
  }

  /** The stored bytes of a key (anti-entropy digests them without decoding). */
  async readBytes(dataKey: Buffer): Promise<Uint8Array | undefined> {
    return this.storage.data.get(dataKey);
  }

  /**
   * Reaps a tombstone: removes the key if it is still stored as `expected`, remembering the
   * tombstone (for `antiEntropy.reapedRetentionMs`) so that no later push of a version it had
   * superseded brings the key back. The record is written before the key is deleted, and the
   * storage applies writes in order, so a crash never leaves the key gone without its record.
   */
  async reap(dataKey: Buffer, expected: Uint8Array, nowMs: number): Promise<boolean> {
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const current = await this.storage.data.get(dataKey);
      if (current === undefined || !Buffer.from(current).equals(expected)) return false;
      this.forgetDataTypeLineage(dataKey);
      return this.gated(async () => {
        await this.reaped.remember(dataKey, current, nowMs);
        await this.storage.data.del(dataKey);
        await this.bucketIndex.forget(dataKey);
        for (const listener of this.listeners) listener(dataKey, current, undefined, undefined);
        return true;
      });
    });
  }

  /** Forgets, in a bounded batch, the reaped tombstones older than `cutoffMs`; answers how many. */
  async forgetReapedBefore(cutoffMs: number, limit: number): Promise<number> {
    return this.reaped.forgetReapedBefore(cutoffMs, limit);
  }

  /** The stored bytes of the tombstone reaped under a storage key, if it is remembered. */
  async reapedBytes(dataKey: Buffer): Promise<Uint8Array | undefined> {
    return this.reaped.lookup(dataKey);
  }

  /** The reaped tombstone of an absent key, or undefined when none is remembered. */
  private async reapedObject(dataKey: Buffer): Promise<VersionedObject | undefined> {
    const bytes = await this.reaped.lookup(dataKey);
    return bytes === undefined ? undefined : decodeObject(bytes);
  }

  /** Removes a key outright if it is still stored as `expected` (handoff clean-up; reaping uses reap()). */
  async remove(dataKey: Buffer, expected: Uint8Array): Promise<boolean> {
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const current = await this.storage.data.get(dataKey);
      if (current === undefined || !Buffer.from(current).equals(expected)) return false;
      this.forgetDataTypeLineage(dataKey);
      return this.gated(async () => {
        await this.storage.data.del(dataKey);
        await this.bucketIndex.forget(dataKey);
        for (const listener of this.listeners) listener(dataKey, current, undefined, undefined);
        return true;
      });
    });
  }

  private async store(dataKey: Buffer, beforeBytes: Uint8Array | undefined, beforeLive: boolean, after: VersionedObject, sync: boolean): Promise<void> {
    await this.storeBytes(dataKey, beforeBytes, beforeLive, encodeObject(after), after, sync);
  }

  /**
   * Stores a key's new version. `beforeLive` says the version it replaces was live (as judged for
   * the index): its index entry then already says live, since a live version is only ever stored
   * with its live entry, and a live version replacing it needs no second copy of that entry.
   */
  private async storeBytes(dataKey: Buffer, beforeBytes: Uint8Array | undefined, beforeLive: boolean, afterBytes: Buffer, after: VersionedObject, sync: boolean): Promise<void> {
    // The data and its index entry (live or dead) go in one atomic write, so no crash separates them
    // (bucket-index.ts), and the write is one group-committed engine batch instead of two in turn;
    // `sync` fsyncs the write-ahead log that holds both.
    const live = !isDeleted(after);
    const data = { space: 'data', type: 'put', key: dataKey, value: afterBytes } as const;
    await this.gated(async () => {
      await this.storage.write(live && beforeLive ? [data] : [data, this.bucketIndex.entryOperation(dataKey, live)], { sync });
      for (const listener of this.listeners) listener(dataKey, beforeBytes, afterBytes, after);
    });
  }

  /** Bucket and key of a storage key. */
  static describe(dataKey: Uint8Array): { bucket: string; key: string } {
    const { bucket, key } = decodeDataKey(dataKey);
    return { bucket, key };
  }
}
