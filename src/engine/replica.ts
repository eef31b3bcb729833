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
} from '../core/versioning/versioned-object.js';
import { trustedKeyActor } from '../core/versioning/key-actor.js';
import type { VersionVector } from '../core/versioning/version-vector.js';
import type { Random } from '../ports/random.js';
import { type DataTypeLimits, type DataTypeUpdate, applyDataTypeUpdate } from '../core/datatypes/data-type.js';
import type { Storage } from '../ports/storage.js';
import { ActorLease, actorNameOfNode } from './actor-lease.js';
import { BucketIndex } from './bucket-index.js';
import { KeyLocks } from './key-locks.js';
import { ObjectCache } from './object-cache.js';
import { ReapedTombstones } from './reaped-tombstones.js';
import { OperationDrain } from './operation-drain.js';

/** Bounds a coordinated write is judged by on this replica: its siblings, and the size of the object it leaves. */
export interface WriteLimits extends SiblingLimits {
  /** The largest encoded object a write or update may leave (limits.maxObjectBytes); see judgeObjectSize. */
  readonly maxObjectBytes: number;
}

/**
 * Called after every change of a stored key with its stored bytes before and after (undefined
 * when absent) and the object now stored. Anti-entropy keeps its Merkle trees current this way.
 */
export type ChangeListener = (dataKey: Buffer, before: Uint8Array | undefined, after: Uint8Array | undefined, object: VersionedObject | undefined) => void;

/**
 * Called after this replica applied and stored a change it issued a dot for (a client write it
 * coordinated, or a data type update it applied), with the object it left and that dot: each
 * change is reported once, by the node that created it, which is what watches follow
 * (src/engine/watch-log.ts). Copies of versions made elsewhere (replication, read repair,
 * hints, anti-entropy, handoff, restore) are not reported: see `StoreOrigin`.
 */
export type WriteListener = (bucket: string, key: string, objectBytes: Uint8Array, dot: Dot) => void;

/**
 * Why a key's object is stored, which every store names (`Replica.storeBytes`), so no path that
 * changes a stored object can leave the watches out by mistake: `issued` is a change this replica
 * made and issued `dot` for (reported to the write listeners, once), `copied` merges versions
 * issued elsewhere, which their issuer reported (README, "Watches").
 */
type StoreOrigin = { readonly kind: 'issued'; readonly bucket: string; readonly key: string; readonly dot: Dot } | { readonly kind: 'copied' };

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
 * Dots are issued by the node's key epochs (src/core/versioning/key-actor.ts, Riak's per-key
 * actor epochs): an actor that survives restarts, so a key's clock keeps one entry per node that
 * wrote it, and that still never issues a dot twice nor claims an event its copy lost. Plain
 * values and data types (counters, sets) take their dots the same way.
 */
export class Replica {
  private readonly locks = new KeyLocks();
  private readonly listeners: ChangeListener[] = [];
  private readonly writeListeners: WriteListener[] = [];
  /** The client writes and data type updates this replica applies under way, and the refusal of new ones once a leaving node has drained them. */
  private readonly coordinating = new OperationDrain(
    () =>
      new KvError(
        'KV_NOT_READY',
        'this node is leaving the cluster (or has left) and coordinates no writes or data type updates; this one was not applied, send it to another member',
        {
          retryAfterSeconds: 1,
          details: { applied: 'no' },
        },
      ),
  );
  private writeGate: WriteGate | undefined;
  /** The node's actor and key epoch counter, read from storage at the first write that needs it. */
  private lease: Promise<ActorLease> | undefined;
  private readonly reaped: ReapedTombstones;
  /** Versions refused because a tombstone reaped here had superseded them (each would have undone a delete). */
  staleVersionsRefused = 0;
  /** Coordinated writes that left a key with more than limits.siblingsWarn siblings. */
  manySiblingWrites = 0;
  /** Blind writes refused because their key was at limits.maxSiblings. */
  siblingRefusals = 0;
  /** The per-bucket index of the stored keys, kept by store and remove below (src/engine/bucket-index.ts). */
  readonly bucketIndex: BucketIndex;
  /**
   * The latest stored object of recently used keys (src/engine/object-cache.ts), so a write to a
   * hot key skips the read before it. Every change of a stored key goes through storeBytes,
   * reap or remove below, which set or drop the key's entry under its lock.
   */
  readonly cache: ObjectCache;
  /**
   * Counts changes of stored keys, so that a read outside the key lock caches what it read only
   * when no change landed while it read (else it might cache a version a write just replaced).
   */
  private changes = 0;

  constructor(
    private readonly storage: Storage,
    /** The node this replica belongs to: its actors are named after it. */
    private readonly nodeId: string,
    /** Draws the storage epoch when the storage is new (see ActorLease). */
    private readonly random: Random,
    /** Sibling and object size bounds of coordinated writes, and who hears of a key past the warning count. */
    private readonly limits: WriteLimits = {
      siblingsWarn: Number.MAX_SAFE_INTEGER,
      maxSiblings: Number.MAX_SAFE_INTEGER,
      maxObjectBytes: Number.MAX_SAFE_INTEGER,
    },
    private readonly onManySiblings: (bucket: string, key: string, siblings: number) => void = () => undefined,
    /** storage.objectCacheBytes: the bound of the object cache (0: off). */
    cacheBytes = 0,
  ) {
    this.reaped = new ReapedTombstones(storage.meta);
    this.bucketIndex = new BucketIndex(storage.meta);
    this.cache = new ObjectCache(cacheBytes);
  }

  /** Registers a listener of stored changes. */
  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** Registers a listener of the client writes this replica coordinates (one call per dot it issues). */
  onCoordinatedWrite(listener: WriteListener): void {
    this.writeListeners.push(listener);
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
    const name = dataKey.toString('latin1');
    const cached = this.cache.get(name);
    if (cached !== undefined) return decodeObject(cached);
    const changesBefore = this.changes;
    const bytes = await this.storage.data.get(dataKey);
    if (bytes === undefined) return this.reapedObject(dataKey);
    const object = decodeObject(bytes);
    // Outside the key lock: what was read is only known to be current if nothing changed since.
    if (this.changes === changesBefore) this.cache.set(name, bytes);
    return object;
  }

  /**
   * The stored bytes and object of a key, from the cache or else the storage (caching them).
   * Called under the key's lock, where nothing else changes the key, so what it reads is current.
   */
  private async storedUnderLock(dataKey: Buffer, name: string): Promise<{ readonly bytes: Uint8Array; readonly object: VersionedObject } | undefined> {
    const cached = this.cache.get(name);
    if (cached !== undefined) return { bytes: cached, object: decodeObject(cached) };
    const bytes = await this.storage.data.get(dataKey);
    if (bytes === undefined) return undefined;
    this.cache.set(name, bytes);
    return { bytes, object: decodeObject(bytes) };
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
    return this.coordinating.run(async () => this.applyClientWrite(bucket, key, requested, mode, sync, condition));
  }

  /**
   * Stops coordinating client writes (a later `coordinateWrite` is refused with 503
   * KV_NOT_READY, applied "no") and resolves once those under way are applied or failed. A
   * leaving node awaits it before it marks itself left: a write is reported in the watch log of
   * the replica that coordinated it alone, so it must be there before any watch can see the node
   * gone (docs/CONSENSUS.md, "Watches").
   */
  async stopCoordinating(): Promise<void> {
    await this.coordinating.close();
  }

  /** `coordinateWrite` under way: the write applied to this copy under the key lock. */
  private async applyClientWrite(
    bucket: string,
    key: string,
    requested: WriteIntent,
    mode: ConflictMode,
    sync: boolean,
    condition?: { readonly precondition: Precondition; readonly base: VersionedObject | null },
  ): Promise<{ object: VersionedObject; dot: Dot }> {
    const dataKey = encodeDataKey(bucket, key);
    const name = dataKey.toString('latin1');
    return this.locks.withLock(name, async () => {
      const found = await this.storedUnderLock(dataKey, name);
      const beforeBytes = found?.bytes;
      // A key written again after its tombstone was reaped starts from that tombstone's history,
      // so the new version supersedes what the delete had, as it would have before the reap.
      const stored = found === undefined ? ((await this.reapedObject(dataKey)) ?? emptyObject) : found.object;
      // A conditional write is checked here, under the key lock, against this copy merged with
      // what the coordinator's read of r replicas returned, and then supersedes exactly what it matched.
      const before = condition?.base === undefined || condition.base === null ? stored : mergeObjects(stored, condition.base, mode);
      let write = requested;
      if (condition !== undefined) {
        const verdict = checkPrecondition(before, condition.precondition, requested.nowMs);
        if (!verdict.ok) {
          throw new KvError(
            'KV_PRECONDITION_FAILED',
            `the precondition of this write does not hold for key '${key}' in bucket '${bucket}' (${condition.precondition.kind === 'absent' ? 'a live value exists' : 'the current version is not the one If-Match names'}); read the key again and decide`,
            {
              details: { clock: before.clock },
            },
          );
        }
        write = { ...requested, context: verdict.context };
      }
      const actor = await this.keyActor(beforeBytes === undefined ? undefined : stored.clock);
      const applied = applyWrite(before, actor, write, mode);
      const siblings = judgeSiblings(this.limits, mode, before, applied, write.context, { bucket, key }, write.nowMs);
      if (siblings.kind === 'refuse') {
        this.siblingRefusals += 1;
        throw siblings.error;
      }
      if (siblings.kind === 'warn') {
        this.manySiblingWrites += 1;
        this.onManySiblings(bucket, key, siblings.siblings);
      }
      const dot: Dot = { node: actor, counter: applied.clock[actor] ?? 0 };
      // The clock is never pruned: any entry may be the only record that a superseded version's dot
      // was seen, and forgetting it would let a replica that still holds that version bring it back.
      const appliedBytes = this.judgeObjectSize(encodeObject(applied), beforeBytes, { bucket, key }, 'write');
      await this.storeBytes(dataKey, name, beforeBytes, beforeBytes !== undefined && !isDeleted(stored), appliedBytes, applied, sync, {
        kind: 'issued',
        bucket,
        key,
        dot,
      });
      return { object: applied, dot };
    });
  }

  /**
   * Applies a data type update here as one of this node's key epochs, after merging in `base` (the
   * coordinator's read, for removes), stores the result and answers it. A state-based counter or
   * set is only safe while its actor updates from its own latest state, which is what a key epoch
   * guarantees (see keyActor). The update is this replica's own change, as a coordinated write is:
   * it is reported to the write listeners with the last dot it issued, and a leaving node's drain
   * (`stopCoordinating`) refuses it too.
   */
  async updateDataType(
    bucket: string,
    key: string,
    update: DataTypeUpdate,
    sync: boolean,
    base: VersionedObject | null,
    nowMs: number,
    limits: DataTypeLimits,
  ): Promise<VersionedObject> {
    const dataKey = encodeDataKey(bucket, key);
    const name = dataKey.toString('latin1');
    return this.coordinating.run(async () =>
      this.locks.withLock(name, async () => {
        const found = await this.storedUnderLock(dataKey, name);
        const beforeBytes = found?.bytes;
        const stored = found?.object ?? emptyObject;
        const before = base === null ? stored : mergeObjects(stored, base, 'siblings');
        const actor = await this.keyActor(beforeBytes === undefined ? undefined : stored.clock);
        const after = applyDataTypeUpdate(before, actor, update, nowMs, limits);
        const afterBytes = this.judgeObjectSize(encodeObject(after), beforeBytes, { bucket, key }, 'update');
        // Every update issues at least one dot of the actor (a set's remove alone issues an event with no element).
        const dot: Dot = { node: actor, counter: after.clock[actor] ?? 0 };
        await this.storeBytes(dataKey, name, beforeBytes, beforeBytes !== undefined && !isDeleted(stored), afterBytes, after, sync, {
          kind: 'issued',
          bucket,
          key,
          dot,
        });
        return after;
      }),
    );
  }

  /**
   * The encoded object a coordinated write or update would store, or KV_OBJECT_TOO_LARGE when it
   * is over limits.maxObjectBytes and larger than the stored copy: refused before anything is
   * stored, so no object past the peer frame cap lands on this replica alone. A write that does
   * not grow the object (one that resolves siblings, a delete) is always taken; merges of
   * versions from other replicas are never judged (a replica that refused them would stay behind).
   */
  private judgeObjectSize(
    afterBytes: Buffer,
    beforeBytes: Uint8Array | undefined,
    where: { readonly bucket: string; readonly key: string },
    what: 'write' | 'update',
  ): Buffer {
    const { maxObjectBytes } = this.limits;
    if (afterBytes.byteLength <= maxObjectBytes || afterBytes.byteLength <= (beforeBytes?.byteLength ?? 0)) return afterBytes;
    const remedy =
      what === 'write'
        ? "Resolve its siblings: read the key and write the merged value back with the read's context (that replaces the siblings it read), or write a smaller value"
        : 'Remove elements, or spread them over several keys';
    throw new KvError(
      'KV_OBJECT_TOO_LARGE',
      `this ${what} would leave key '${where.key}' in bucket '${where.bucket}' with an object of ${afterBytes.byteLength} bytes, over limits.maxObjectBytes (${maxObjectBytes}); nothing was stored. ${remedy}`,
      { details: { objectBytes: afterBytes.byteLength, maxObjectBytes } },
    );
  }

  /**
   * The actor of this node's next event on a key whose stored copy has `storedClock` (undefined:
   * no copy is stored). It continues the key epoch of the copy when this node trusts that the copy
   * holds every event of it; otherwise (no copy, or an epoch begun before this node last lost
   * writes) it begins a new key epoch, so the dot it issues claims no event the copy lacks.
   */
  private async keyActor(storedClock: VersionVector | undefined): Promise<string> {
    const lease = await this.actorLease();
    const continued = storedClock === undefined ? undefined : trustedKeyActor(storedClock, lease.nodeActor, lease.trustedFromEpoch);
    return continued ?? lease.beginKeyEpoch();
  }

  /** The node's actor lease, opened once. */
  private async actorLease(): Promise<ActorLease> {
    this.lease ??= ActorLease.open(this.storage, this.nodeId, this.random);
    return this.lease;
  }

  /** A clean stop: saves the actor lease as stopped cleanly (a start after an unclean stop distrusts the key epochs before it). */
  async close(): Promise<void> {
    if (this.lease !== undefined) await (await this.lease).close();
  }

  /** A copy came back from elsewhere and may lack events of this node's key epochs: none begun so far is continued. */
  private async forgetKeyEpochs(): Promise<void> {
    (await this.actorLease()).distrustEarlierEpochs();
  }

  /** Merges a version from elsewhere into this replica; answers the merged object and whether it changed. */
  async merge(
    bucket: string,
    key: string,
    incoming: VersionedObject,
    mode: ConflictMode,
    sync: boolean,
  ): Promise<{ object: VersionedObject; changed: boolean }> {
    return this.mergeByDataKey(encodeDataKey(bucket, key), incoming, mode, sync);
  }

  /** merge() addressed by storage key (handoff and anti-entropy work on storage keys). */
  async mergeByDataKey(dataKey: Buffer, incoming: VersionedObject, mode: ConflictMode, sync: boolean): Promise<{ object: VersionedObject; changed: boolean }> {
    const name = dataKey.toString('latin1');
    return this.locks.withLock(name, async () => {
      const found = await this.storedUnderLock(dataKey, name);
      const beforeBytes = found?.bytes;
      let after: VersionedObject;
      let beforeLive = false;
      if (found !== undefined) {
        const stored = found.object;
        beforeLive = !isDeleted(stored);
        after = mergeObjects(stored, incoming, mode);
      } else {
        // The key may be absent because its tombstone was reaped: whoever pushes a version the
        // tombstone had superseded (an ex-owner, a removed node back with its old disk, a late
        // hint) must not undo the delete, so the push is merged against the reaped tombstone.
        const reaped = await this.reapedObject(dataKey);
        after = reaped === undefined ? incoming : mergeObjects(reaped, incoming, mode);
        // A copy of a key that names this node's own key epochs, taken without a local record of
        // it, may lack some of their events (its last holder here was lost): none is continued.
        if (reaped === undefined && this.namesOwnActor(incoming.clock)) await this.forgetKeyEpochs();
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
      if (changed || sync) await this.storeBytes(dataKey, name, beforeBytes, beforeLive, afterBytes, after, sync, { kind: 'copied' });
      return { object: after, changed };
    });
  }

  /** True when `clock` may have an entry of one of this node's actors (any storage epoch; a longer id that shares the prefix only costs a new key epoch). */
  private namesOwnActor(clock: VersionVector): boolean {
    const prefix = `${actorNameOfNode(this.nodeId)}.`;
    return Object.keys(clock).some((actor) => actor.startsWith(prefix));
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
      // The remembered tombstone holds this copy's whole history, so a later write or push is
      // merged against it and the key's key epochs stay whole: nothing to distrust.
      return this.gated(async () => {
        await this.reaped.remember(dataKey, current, nowMs);
        await this.forgetting(dataKey, async () => this.storage.data.del(dataKey));
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
      // The next write here finds no copy and begins a new key epoch; a copy that comes back by a
      // merge is distrusted there (mergeByDataKey), so removing needs nothing more.
      return this.gated(async () => {
        await this.forgetting(dataKey, async () => this.storage.data.del(dataKey));
        await this.bucketIndex.forget(dataKey);
        for (const listener of this.listeners) listener(dataKey, current, undefined, undefined);
        return true;
      });
    });
  }

  /**
   * Stores a key's new version: the one place a stored object changes (reap and remove only
   * delete). `beforeLive` says the version it replaces was live (as judged for the index): its
   * index entry then already says live, since a live version is only ever stored with its live
   * entry, and a live version replacing it needs no second copy of that entry. `origin` says
   * whether this replica issued the change, which is then reported to the write listeners once
   * it is stored, still under the key's lock, so a key's changes reach them in the order they
   * were applied.
   */
  private async storeBytes(
    dataKey: Buffer,
    name: string,
    beforeBytes: Uint8Array | undefined,
    beforeLive: boolean,
    afterBytes: Buffer,
    after: VersionedObject,
    sync: boolean,
    origin: StoreOrigin,
  ): Promise<void> {
    // The data and its index entry (live or dead) go in one atomic write, so no crash separates them
    // (bucket-index.ts), and the write is one group-committed engine batch instead of two in turn;
    // `sync` fsyncs the write-ahead log that holds both.
    const live = !isDeleted(after);
    const data = { space: 'data', type: 'put', key: dataKey, value: afterBytes } as const;
    await this.gated(async () => {
      this.changes += 1;
      try {
        await this.storage.write(live && beforeLive ? [data] : [data, this.bucketIndex.entryOperation(dataKey, live)], { sync });
      } catch (error) {
        // The write may or may not have reached the disk: the next use of the key reads it there.
        this.cache.delete(name);
        throw error;
      } finally {
        this.changes += 1;
      }
      this.cache.set(name, afterBytes);
      for (const listener of this.listeners) listener(dataKey, beforeBytes, afterBytes, after);
      if (origin.kind === 'issued') for (const listener of this.writeListeners) listener(origin.bucket, origin.key, afterBytes, origin.dot);
    });
  }

  /** Deletes a stored key through `del`, and its cache entry whether or not the delete succeeded. */
  private async forgetting(dataKey: Buffer, del: () => Promise<void>): Promise<void> {
    this.changes += 1;
    try {
      await del();
    } finally {
      this.changes += 1;
      this.cache.delete(dataKey.toString('latin1'));
    }
  }

  /** Bucket and key of a storage key. */
  static describe(dataKey: Uint8Array): { bucket: string; key: string } {
    const { bucket, key } = decodeDataKey(dataKey);
    return { bucket, key };
  }
}
