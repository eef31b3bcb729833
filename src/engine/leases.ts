import { type WriteCondition, neverWritten } from '../core/consensus/compare-and-set.js';
import type { ConsistentValue } from '../core/consensus/consistent-value.js';
import {
  type LeaseRecord,
  type LeaseSighting,
  attachKey,
  decodeLeaseRecord,
  encodeLeaseRecord,
  grantedLease,
  holdsKey,
  leaseBucket,
  leaseExpired,
  maxLeaseKeys,
  pruneKeys,
  sightLease,
} from '../core/leases/lease-record.js';
import type { Clock } from '../ports/clock.js';
import type { Logger } from '../ports/logger.js';
import type { Random } from '../ports/random.js';
import { KvError, isKvError } from '../util/errors.js';
import type { ConsistentCommand, ConsistentOutcome, LeaseDescription, LeaseGrant, LeaseService } from './kv-service.js';
import type { LeaseScan } from './lease-scanner.js';
import type { LeasedKey, LeasedKeyScan } from './leased-key-scanner.js';
import { PeriodicTask } from './periodic-task.js';

/** How often a node sweeps the leases it watches; its monotonic clock is the sum of these intervals. */
export const leaseSweepIntervalMs = 500;

/** Entries of the paxos space a sweep walks, and lease records it reads, at most each (LeaseScanner). */
export const leaseSweepScanLimit = 1024;

/** Leases a sweep ends at most; the rest wait for the next sweep. */
export const leaseEndsPerSweep = 16;

/** Leased keys a sweep checks at most for an orphan (LeasedKeyScanner); the walk goes on from there at the next sweep. */
export const leasedKeyChecksPerSweep = 64;

/** The sweeper's time from the start of one pass of the leased-key walk to the start of the next, at least. */
export const leasedKeyPassIntervalMs = 5000;

/** Compare-and-set attempts on one lease record before a request gives up with 409 KV_CONFLICT. */
const recordAttempts = 8;

/** Keys read at once when a full lease prunes its list. */
const pruneConcurrency = 16;

/** What the leases need from their node, handed to them (no cycle with the client requests). */
export interface LeasesOptions {
  /** A linearizable operation on a consistent key (ClientRequests.consistent). */
  readonly consistent: (bucket: string, key: string, command: ConsistentCommand, timeoutMs?: number) => Promise<ConsistentOutcome>;
  readonly clock: Clock;
  readonly random: Random;
  readonly logger: Logger;
  /** The next batch of the leases this node sweeps (LeaseScanner.next). */
  readonly scan: (limit: number) => Promise<LeaseScan>;
  /** The next leased keys this node checks for orphans, among at most `limit` entries of its acceptor state (LeasedKeyScanner.next). */
  readonly leasedKeys: (limit: number, maxKeys: number) => Promise<LeasedKeyScan>;
  /** The pause between sweeps (default leaseSweepIntervalMs). */
  readonly sweepIntervalMs?: number;
}

/** What a sweeper tracks of one lease: its sighting, and the scan cycle it was last seen in. */
interface Tracked extends LeaseSighting {
  readonly cycle: number;
}

/** Whether an error is a failed compare-and-set (the record or key changed under us). */
const isConflict = (error: unknown): boolean => isKvError(error) && error.code === 'KV_PRECONDITION_FAILED';

/** Whether an error says a key cannot be held by its lease: the lease ended (or is ending), or it is full. */
const isUnheld = (error: unknown): boolean => isKvError(error) && (error.code === 'KV_LEASE_NOT_FOUND' || error.code === 'KV_LEASE_FULL');

/** A lease record at the version a read or write left it; null when the lease has no record (it ended, or never was). */
type RecordAt = { readonly version: number; readonly record: LeaseRecord } | null;

/** What the check of a leased key found and did (Leases.checkLeasedKey). */
export type LeasedKeyCheck = 'held' | 'rewritten' | 'attached' | 'deleted';

/**
 * Leases and ephemeral keys on top of consistent buckets (README, "Leases and ephemeral keys";
 * docs/CONSENSUS.md, "Leases"). Every change is a compare-and-set of the lease's record in
 * `leaseBucket` or a consistent write of a key: there is no second consensus path. The sweeper
 * ends the leases this node watches once its own monotonic clock (its timers) has run a ttl
 * since it first saw their current refresh number, by a compare-and-set on the version it read:
 * no wall clock is read anywhere, so clock skew between nodes cannot end a lease early.
 */
export class Leases implements LeaseService {
  private readonly sweeper: PeriodicTask;
  /**
   * The sweeper's monotonic clock: the sum of the intervals its timers waited. A timer never fires
   * early and the next sweep is armed only once a sweep has finished, so from anything a sweep
   * observed to the start of a later sweep at least the difference of this clock has passed.
   */
  private elapsedMs = 0;
  private cycle = 0;
  private readonly tracked = new Map<string, Tracked>();
  /** When the leased-key walk's pass under way began (sweeper clock), undefined between passes. */
  private leasedKeyPassStartMs: number | undefined;
  /** The sweeper clock before which no new pass of the leased-key walk starts. */
  private nextLeasedKeyPassMs = 0;

  constructor(private readonly options: LeasesOptions) {
    const intervalMs = options.sweepIntervalMs ?? leaseSweepIntervalMs;
    this.sweeper = new PeriodicTask(
      options.clock,
      async () => {
        this.elapsedMs += intervalMs;
        await this.sweep();
      },
      (error) => options.logger.warn({ error }, 'a lease sweep failed; the next sweep retries'),
      () => intervalMs,
    );
  }

  /** Starts sweeping. */
  start(): void {
    this.sweeper.arm(this.options.sweepIntervalMs ?? leaseSweepIntervalMs);
  }

  /** Stops sweeping. */
  stop(): void {
    this.sweeper.stop();
  }

  /** POST /leases: a new lease (its record created only if absent). */
  async grant(ttlSeconds: number): Promise<LeaseGrant> {
    for (;;) {
      const id = this.newLeaseId();
      try {
        // Only a record never written: an ended lease's deleted record keeps its version, so no
        // id is granted twice, and a key left naming an ended lease is never held by a new one.
        await this.writeRecord(id, grantedLease(ttlSeconds), neverWritten);
        return { id, ttlSeconds };
      } catch (error) {
        // Two nodes drawing one 64-bit id is all but impossible; a clash draws again rather than share a lease.
        if (!isConflict(error)) throw error;
      }
    }
  }

  /** POST /leases/{id}/keepalive: a new refresh number, which restarts every sweeper's ttl. */
  async keepAlive(id: string): Promise<LeaseGrant> {
    return this.changeRecord(
      id,
      (record) => ({ ...record, refresh: record.refresh + 1 }),
      (record) => ({ id, ttlSeconds: record.ttlSeconds }),
    );
  }

  /** GET /leases/{id}: the record, and the time left as this node's sweeper counts it when it watches the lease. */
  async describe(id: string): Promise<LeaseDescription> {
    const { record } = await this.liveRecord(id);
    const sighting = this.tracked.get(id);
    const remainingMs =
      sighting !== undefined && sighting.refresh === record.refresh ? record.ttlSeconds * 1000 - (this.elapsedMs - sighting.firstSeenAtMs) : undefined;
    return {
      id,
      ttlSeconds: record.ttlSeconds,
      keepAlives: record.refresh - 1,
      keys: record.keys,
      ...(remainingMs === undefined ? {} : { remainingSeconds: Math.max(0, Math.ceil(remainingMs / 1000)) }),
    };
  }

  /** DELETE /leases/{id}: marks it ending, deletes its keys, then its record. */
  async revoke(id: string): Promise<void> {
    for (let attempt = 0; attempt < recordAttempts; attempt++) {
      const { version, record } = await this.liveRecord(id);
      if (await this.end(id, version, record)) return;
    }
    throw this.contended(id);
  }

  /**
   * PUT /kv/{consistent bucket}/{key}?lease=ID: attaches the key to the lease's record, writes it
   * (its value names the lease), then confirms by a compare-and-set that the lease is still live
   * and still lists the key. The confirmation's write fences a prune that read the key before
   * this write; a lease that ended in between has its key deleted here and the PUT answers 404.
   * Should this node die between the write and the confirmation, the key's replicas finish the
   * confirmation for it (checkLeasedKey).
   */
  async put(bucket: string, key: string, value: ConsistentValue, condition: WriteCondition, leaseId: string, timeoutMs?: number): Promise<ConsistentOutcome> {
    const attached = await this.changeRecord(
      leaseId,
      async (record) => this.withKey(leaseId, record, bucket, key),
      (record, version) => ({ record, version }),
      true,
    );
    const outcome = await this.options.consistent(bucket, key, { kind: 'write', value: { ...value, lease: leaseId }, condition }, timeoutMs);
    try {
      // The confirmation starts from the record the attach left, without reading it again: its
      // compare-and-set holds only while the record is still at that version (live, listing the
      // key), and otherwise the next attempt reads the record as any change does.
      await this.confirm(bucket, key, leaseId, attached);
    } catch (error) {
      // The key was written: an answer that said "did not happen" would lie.
      if (isUnheld(error) || !isKvError(error)) throw error;
      throw new KvError(error.code, `key '${key}' was written (version ${outcome.version}) but its lease ${leaseId} could not be confirmed: ${error.message}`, {
        details: { ...error.details, applied: 'unknown' },
        cause: error,
      });
    }
    return outcome;
  }

  /**
   * The confirmation of a leased write: a compare-and-set that finds the lease live and lists the
   * key (re-adding it if a prune removed it), on `known` first when given. When the lease has
   * ended or is full, the key is deleted if it still names the lease, and the error is thrown.
   */
  private async confirm(bucket: string, key: string, leaseId: string, known?: { readonly version: number; readonly record: LeaseRecord }): Promise<RecordAt> {
    try {
      return await this.changeRecord(
        leaseId,
        async (record) => this.withKey(leaseId, record, bucket, key),
        (record, version) => ({ record, version }),
        false,
        known,
      );
    } catch (error) {
      if (isUnheld(error)) await this.deleteIfLeased(bucket, key, leaseId);
      throw error;
    }
  }

  /**
   * The orphan check of a leased key (docs/CONSENSUS.md, "Leases"): finishes what its writer may
   * have left undone by dying between the key's write and the confirmation. The lease's decided
   * record is read (once per sweep for all its keys: `records`); when it is live and lists the key
   * nothing more is done (whatever ends it reads the key after that and deletes it). Otherwise
   * the key is read (a consistent read): a value that no longer names the lease is left alone; one
   * that does is deleted when the lease has no record or is ending (a compare-and-set on the
   * version read, so a newer write wins), and is confirmed as its writer would have when the lease
   * is live (attached again, or deleted when the lease is full). A lease id is granted once only,
   * so a record live under the id is the lease the key was written with.
   */
  async checkLeasedKey({ bucket, key, lease }: LeasedKey, records: Map<string, RecordAt>): Promise<LeasedKeyCheck> {
    let found = records.get(lease);
    if (found === undefined) {
      found = await this.decidedRecord(lease);
      records.set(lease, found);
    }
    if (found !== null && !found.record.ending && holdsKey(found.record, bucket, key)) return 'held';
    const read = await this.options.consistent(bucket, key, { kind: 'read' });
    if (read.value?.lease !== lease) return 'rewritten';
    if (found === null || found.record.ending) {
      await this.deleteIfLeased(bucket, key, lease, read);
      return 'deleted';
    }
    try {
      records.set(lease, await this.confirm(bucket, key, lease, found));
      return 'attached';
    } catch (error) {
      records.delete(lease);
      if (isUnheld(error)) return 'deleted';
      throw error;
    }
  }

  /** The lease's decided record at its version (a consistent read), null when there is none. */
  private async decidedRecord(id: string): Promise<RecordAt> {
    const read = await this.options.consistent(leaseBucket, id, { kind: 'read' });
    return read.value === null ? null : { version: read.version, record: decodeLeaseRecord(read.value.value) };
  }

  /** The lease's record with the key attached, pruned first when it is full. */
  private async withKey(leaseId: string, record: LeaseRecord, bucket: string, key: string): Promise<LeaseRecord> {
    const attached = attachKey(record, bucket, key);
    if (attached !== 'full') return attached;
    const pruned = attachKey(await this.prune(leaseId, record), bucket, key);
    if (pruned !== 'full') return pruned;
    throw new KvError('KV_LEASE_FULL', `lease ${leaseId} holds ${maxLeaseKeys} keys, the most a lease may hold; grant another lease for more keys`, {
      details: { lease: leaseId, keys: maxLeaseKeys },
    });
  }

  /** The record keeping only the keys whose value still names the lease (the others were rewritten without it or deleted). */
  private async prune(leaseId: string, record: LeaseRecord): Promise<LeaseRecord> {
    const keep = new Set<number>();
    for (let start = 0; start < record.keys.length; start += pruneConcurrency) {
      const batch = record.keys.slice(start, start + pruneConcurrency);
      const reads = await Promise.all(batch.map(async (entry) => this.options.consistent(entry.bucket, entry.key, { kind: 'read' })));
      reads.forEach((outcome, index) => {
        if (outcome.value?.lease === leaseId) keep.add(start + index);
      });
    }
    let index = 0;
    return pruneKeys(record, () => keep.has(index++));
  }

  /**
   * Ends a lease read at `version`: marks the record ending (a compare-and-set on that version:
   * a keep-alive or attach since makes it fail, and false says so), deletes each listed key whose
   * value still names the lease, then the record. A record already ending is finished as is, so
   * whoever finds one (a revoke, or another node's sweeper after this one died) completes it.
   */
  private async end(id: string, version: number, record: LeaseRecord): Promise<boolean> {
    let current = version;
    if (!record.ending) {
      try {
        current = (await this.writeRecord(id, { ...record, ending: true }, { kind: 'version', version })).version;
      } catch (error) {
        if (isConflict(error)) return false;
        throw error;
      }
    }
    for (const { bucket, key } of record.keys) await this.deleteIfLeased(bucket, key, id);
    try {
      await this.options.consistent(leaseBucket, id, { kind: 'write', value: null, condition: { kind: 'version', version: current } });
    } catch (error) {
      // Someone else finishing the same end deleted it first.
      if (!isConflict(error)) throw error;
    }
    return true;
  }

  /**
   * Deletes the key when its value still names the lease, by a compare-and-set on the version read
   * (a normal consistent delete: watchers see it); `known`, a read of the key just made, is the
   * first attempt's instead of reading it again.
   */
  private async deleteIfLeased(bucket: string, key: string, leaseId: string, known?: ConsistentOutcome): Promise<void> {
    for (let attempt = 0; attempt < recordAttempts; attempt++) {
      const read = attempt === 0 && known !== undefined ? known : await this.options.consistent(bucket, key, { kind: 'read' });
      if (read.value?.lease !== leaseId) return;
      try {
        await this.options.consistent(bucket, key, { kind: 'write', value: null, condition: { kind: 'version', version: read.version } });
        return;
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    throw new KvError('KV_CONFLICT', `key '${key}' of bucket '${bucket}' kept changing while lease ${leaseId} ended; its end is retried by the next sweep`);
  }

  /**
   * Reads the live record, applies `change`, writes it back on the version read (retried when
   * another writer got in between), and answers `answer` of the record written and its version.
   * `readOnlyWhenSame` skips the write when the change left the record as it was. `known`, a
   * live record at its version from an earlier change, is the first attempt's instead of a read.
   */
  private async changeRecord<T>(
    id: string,
    change: (record: LeaseRecord) => LeaseRecord | Promise<LeaseRecord>,
    answer: (record: LeaseRecord, version: number) => T,
    readOnlyWhenSame = false,
    known?: { readonly version: number; readonly record: LeaseRecord },
  ): Promise<T> {
    for (let attempt = 0; attempt < recordAttempts; attempt++) {
      const { version, record } = attempt === 0 && known !== undefined ? known : await this.liveRecord(id);
      const changed = await change(record);
      if (readOnlyWhenSame && changed === record) return answer(record, version);
      try {
        const written = await this.writeRecord(id, changed, { kind: 'version', version });
        return answer(changed, written.version);
      } catch (error) {
        if (!isConflict(error)) throw error;
      }
    }
    throw this.contended(id);
  }

  /** The lease's decided record; KV_LEASE_NOT_FOUND when it never existed, has ended, or is ending. */
  private async liveRecord(id: string): Promise<{ version: number; record: LeaseRecord }> {
    const read = await this.options.consistent(leaseBucket, id, { kind: 'read' });
    const record = read.value === null ? null : decodeLeaseRecord(read.value.value);
    if (record === null || record.ending) {
      throw new KvError('KV_LEASE_NOT_FOUND', `lease ${id} does not exist: it expired, was revoked or never was granted; grant a new one with POST /leases`, {
        details: { lease: id },
      });
    }
    return { version: read.version, record };
  }

  private async writeRecord(id: string, record: LeaseRecord, condition: WriteCondition): Promise<ConsistentOutcome> {
    return this.options.consistent(leaseBucket, id, {
      kind: 'write',
      value: { contentType: 'application/octet-stream', value: encodeLeaseRecord(record) },
      condition,
    });
  }

  private contended(id: string): KvError {
    return new KvError('KV_CONFLICT', `lease ${id} kept changing under ${recordAttempts} compare-and-set attempts (keep-alives or attaches racing); retry`, {
      details: { lease: id },
    });
  }

  /** 16 hex digits from the node's random source. */
  private newLeaseId(): string {
    let id = '';
    for (let part = 0; part < 4; part++) id += this.options.random.int(0x10000).toString(16).padStart(4, '0');
    return id;
  }

  /**
   * One sweep: the next batch of the leases this node watches (from its own acceptor state),
   * each sighted on the sweeper's monotonic clock; those whose ttl ran out since their refresh
   * number was first seen are read (a consistent read) and ended by a compare-and-set on the
   * version read, unless the read shows a newer refresh (a keep-alive came: its ttl starts now).
   */
  private async sweep(): Promise<void> {
    const scan = await this.options.scan(leaseSweepScanLimit);
    const due: string[] = [];
    for (const lease of scan.leases) {
      const sighting = sightLease(this.tracked.get(lease.id), lease.refresh, this.elapsedMs);
      this.tracked.set(lease.id, { ...sighting, cycle: this.cycle });
      if (lease.ending || leaseExpired(sighting, lease.ttlSeconds, this.elapsedMs)) due.push(lease.id);
    }
    if (scan.wrapped) {
      // A lease not seen in a whole cycle is no longer here (ended, or swept by another node now): forget it.
      for (const [id, tracked] of this.tracked) if (tracked.cycle < this.cycle) this.tracked.delete(id);
      this.cycle += 1;
    }
    for (const id of due.slice(0, leaseEndsPerSweep)) await this.expire(id);
    await this.checkLeasedKeys();
  }

  /**
   * The next leased keys of this node's acceptor state, each checked for an orphan
   * (checkLeasedKey), at most leasedKeyChecksPerSweep. A pass of the walk starts at most every
   * leasedKeyPassIntervalMs, so a node holding few leased keys checks each that often, not every
   * sweep. A check that fails is tried again on the walk's next pass; the first failure of a sweep
   * is logged and the others counted.
   */
  private async checkLeasedKeys(): Promise<void> {
    if (this.leasedKeyPassStartMs === undefined) {
      if (this.elapsedMs < this.nextLeasedKeyPassMs) return;
      this.leasedKeyPassStartMs = this.elapsedMs;
    }
    const scan = await this.options.leasedKeys(leaseSweepScanLimit, leasedKeyChecksPerSweep);
    if (scan.wrapped) {
      this.nextLeasedKeyPassMs = this.leasedKeyPassStartMs + leasedKeyPassIntervalMs;
      this.leasedKeyPassStartMs = undefined;
    }
    const records = new Map<string, RecordAt>();
    let failed = 0;
    for (const leased of scan.keys) {
      try {
        const done = await this.checkLeasedKey(leased, records);
        if (done === 'attached' || done === 'deleted')
          this.options.logger.info(
            { ...leased, done },
            "a leased key's writer had not confirmed it (it died between the write and the confirmation); finished for it",
          );
      } catch (error) {
        if (failed === 0) this.options.logger.warn({ error, ...leased }, 'a leased key could not be checked for its lease; the next pass checks it again');
        failed += 1;
      }
    }
    if (failed > 1) this.options.logger.warn({ failed }, 'leased keys could not be checked for their lease in this sweep');
  }

  /** Reads the decided record and ends it when it is ending, or its refresh is still the one sighted a ttl ago. */
  private async expire(id: string): Promise<void> {
    const read = await this.options.consistent(leaseBucket, id, { kind: 'read' });
    const record = read.value === null ? null : decodeLeaseRecord(read.value.value);
    const tracked = this.tracked.get(id);
    if (record === null || tracked === undefined) {
      this.tracked.delete(id);
      return;
    }
    if (!record.ending && tracked.refresh !== record.refresh) {
      // The acceptor state here was behind the decided record: that refresh's ttl starts now.
      this.tracked.set(id, { refresh: record.refresh, firstSeenAtMs: this.elapsedMs, cycle: this.cycle });
      return;
    }
    if ((record.ending || leaseExpired(tracked, record.ttlSeconds, this.elapsedMs)) && (await this.end(id, read.version, record))) this.tracked.delete(id);
  }
}
