import { ByteReader, ByteWriter } from '../core/wire/bytes.js';
import { readObject, writeObject } from '../core/versioning/object-codec.js';
import { type ConflictMode, type VersionedObject, mergeObjects } from '../core/versioning/versioned-object.js';
import { KvError } from '../util/errors.js';
import type { KeySpace } from '../ports/storage.js';
import { KeyLocks } from './key-locks.js';

/** The hint format version, first byte of every stored hint. */
const hintFormatVersion = 1;

/** A write held for a replica that was down (Dynamo's hinted handoff). */
export interface Hint {
  readonly target: string;
  readonly dataKey: Buffer;
  readonly object: VersionedObject;
  readonly mode: ConflictMode;
  readonly createdMs: number;
  /** The stored bytes, so a delivered hint is deleted only if no newer write merged into it meanwhile. */
  readonly raw: Buffer;
}

function hintKey(target: string, dataKey: Uint8Array): Buffer {
  const targetBytes = Buffer.from(target, 'utf8');
  return Buffer.concat([Buffer.of(targetBytes.length), targetBytes, dataKey]);
}

function encodeHint(object: VersionedObject, mode: ConflictMode, createdMs: number): Buffer {
  const writer = new ByteWriter()
    .u8(hintFormatVersion)
    .f64(createdMs)
    .u8(mode === 'lww' ? 1 : 0);
  writeObject(writer, object);
  return writer.finish();
}

function decodeHint(target: string, dataKey: Buffer, raw: Buffer): Hint {
  const reader = new ByteReader(raw);
  const version = reader.u8();
  if (version !== hintFormatVersion) throw new KvError('KV_STORAGE', `hint format ${version} is not readable by this ringkv; upgrade ringkv`);
  const createdMs = reader.f64();
  const mode: ConflictMode = reader.u8() === 1 ? 'lww' : 'siblings';
  return { target, dataKey, object: readObject(reader), mode, createdMs, raw };
}

/** How many hints, and how many bytes of them, one target node may have waiting (the `hintedHandoff` bounds). */
export interface HintLimits {
  readonly maxHintsPerTarget: number;
  readonly maxBytesPerTarget: number;
}

/** The bytes a stored hint takes: its key and its value. */
function storedBytes(key: Uint8Array, value: Uint8Array): number {
  return key.length + value.length;
}

/**
 * Hints kept in the hints sublevel, keyed by target node then storage key, so one target's
 * hints are one range scan. Two hints for the same key and target merge into one.
 *
 * Hints are bounded per target by count and by bytes, besides the hint window (Cassandra bounds
 * them by time only and a long outage under load fills its disk): a hint beyond a bound is
 * dropped and counted. Nothing is lost for good by that: the write reached its other replicas,
 * and anti-entropy repairs the target once it is back.
 */
export class HintStore {
  private readonly locks = new KeyLocks();
  private readonly countsByTarget = new Map<string, number>();
  private readonly storedBytesByTarget = new Map<string, number>();
  /** Hints handed to their target and acknowledged. */
  delivered = 0;
  /** Hints dropped because they outlived the hint window. */
  expired = 0;
  /** Hints not stored because their target already had `maxHintsPerTarget` hints or `maxBytesPerTarget` bytes waiting. */
  dropped = 0;

  constructor(
    private readonly space: KeySpace,
    private readonly limits: HintLimits,
  ) {}

  /** Counts the stored hints and their bytes per target (once, at start). */
  async load(): Promise<void> {
    this.countsByTarget.clear();
    this.storedBytesByTarget.clear();
    for await (const [key, value] of this.space.entries()) {
      const target = Buffer.from(key).toString('utf8', 1, 1 + (key[0] ?? 0));
      this.countsByTarget.set(target, (this.countsByTarget.get(target) ?? 0) + 1);
      this.storedBytesByTarget.set(target, (this.storedBytesByTarget.get(target) ?? 0) + storedBytes(key, value));
    }
  }

  /** Bytes of the hints waiting for a target. */
  bytesByTarget(target: string): number {
    return this.storedBytesByTarget.get(target) ?? 0;
  }

  /** Hints waiting in all. */
  get pending(): number {
    let total = 0;
    for (const count of this.countsByTarget.values()) total += count;
    return total;
  }

  /** Targets with hints waiting. */
  targets(): string[] {
    return [...this.countsByTarget].filter(([, count]) => count > 0).map(([target]) => target);
  }

  /** Pending hints per target. */
  pendingByTarget(): Record<string, number> {
    return Object.fromEntries(this.countsByTarget);
  }

  /**
   * Stores (or merges into) the hint of a key for a target; answers false when the hint was
   * dropped because the target's hints are at a bound (an existing hint then stays as it was).
   */
  async add(target: string, dataKey: Buffer, object: VersionedObject, mode: ConflictMode, nowMs: number, sync: boolean): Promise<boolean> {
    const key = hintKey(target, dataKey);
    return this.locks.withLock(key.toString('latin1'), async () => {
      const existing = await this.space.get(key);
      const merged = existing === undefined ? object : mergeObjects(decodeHint(target, dataKey, Buffer.from(existing)).object, object, mode);
      const value = encodeHint(merged, mode, nowMs);
      const count = (this.countsByTarget.get(target) ?? 0) + (existing === undefined ? 1 : 0);
      const bytes = this.bytesByTarget(target) + storedBytes(key, value) - (existing === undefined ? 0 : storedBytes(key, existing));
      if (count > this.limits.maxHintsPerTarget || bytes > this.limits.maxBytesPerTarget) {
        this.dropped += 1;
        return false;
      }
      // The figures are reserved before the write, so that concurrent adds of other keys (the
      // lock is per key) see them and cannot overshoot the bound together; a failed write gives
      // its reservation back.
      const countDelta = count - (this.countsByTarget.get(target) ?? 0);
      const bytesDelta = bytes - this.bytesByTarget(target);
      this.countsByTarget.set(target, count);
      this.storedBytesByTarget.set(target, bytes);
      try {
        await this.space.put(key, value, { sync });
      } catch (error) {
        this.countsByTarget.set(target, (this.countsByTarget.get(target) ?? 0) - countDelta);
        this.storedBytesByTarget.set(target, this.bytesByTarget(target) - bytesDelta);
        throw error;
      }
      return true;
    });
  }

  /** Up to `limit` hints for a target, oldest key first. */
  async batch(target: string, limit: number): Promise<Hint[]> {
    const prefix = hintKey(target, Buffer.alloc(0));
    const hints: Hint[] = [];
    for await (const [key, value] of this.space.entries({ gte: prefix, lt: targetUpperBound(target), limit })) {
      hints.push(decodeHint(target, Buffer.from(key).subarray(prefix.length), Buffer.from(value)));
    }
    return hints;
  }

  /** Deletes a hint if it is still the version that was delivered (a newer write keeps it). */
  async remove(hint: Hint, reason: 'delivered' | 'expired'): Promise<boolean> {
    const key = hintKey(hint.target, hint.dataKey);
    return this.locks.withLock(key.toString('latin1'), async () => {
      const current = await this.space.get(key);
      if (current === undefined || !Buffer.from(current).equals(hint.raw)) return false;
      await this.space.del(key);
      this.countsByTarget.set(hint.target, Math.max(0, (this.countsByTarget.get(hint.target) ?? 1) - 1));
      this.storedBytesByTarget.set(hint.target, Math.max(0, this.bytesByTarget(hint.target) - storedBytes(key, current)));
      if (reason === 'delivered') this.delivered += 1;
      else this.expired += 1;
      return true;
    });
  }
}

/** The first key after every hint of `target`: the same length byte and name, then 0xff... past any storage key. */
function targetUpperBound(target: string): Buffer {
  const targetBytes = Buffer.from(target, 'utf8');
  return Buffer.concat([Buffer.of(targetBytes.length), targetBytes, Buffer.alloc(8, 0xff)]);
}
