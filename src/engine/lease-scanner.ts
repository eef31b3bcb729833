import { decodeConsistentValue } from '../core/consensus/consistent-value.js';
import { decodeDataKey, encodeDataKey, partitionOf } from '../core/keys.js';
import { decodeLeaseRecord, leaseBucket } from '../core/leases/lease-record.js';
import { type Ring, preferenceList } from '../core/ring/ring.js';
import type { KeySpace } from '../ports/storage.js';
import { consistentKeys, listingReplicas } from './consistent-listing.js';
import { newestStoredValue } from './leased-key-scanner.js';
import type { NodeContext } from './node-context.js';

/** A lease as this node's acceptor last held it (or as a read found it decided, when it held none): possibly behind the decided record, which the sweeper reads before acting. */
export interface LocalLease {
  readonly id: string;
  readonly refresh: number;
  readonly ending: boolean;
  readonly ttlSeconds: number;
}

/** One scan step: the leases found, and whether it went round every lease record this node knows of (a cycle ended). */
export interface LeaseScan {
  readonly leases: readonly LocalLease[];
  readonly wrapped: boolean;
}

/**
 * Lease ids a scanner keeps in its set of known lease records at most (a few MB): beyond it, a
 * lease record is still found by the walk over the listings, once a pass, so no lease is
 * missed, only swept later.
 */
export const maxKnownLeases = 65_536;

/**
 * Partitions a step of the walk lists at most (each listing asks a majority of the partition's
 * replicas): the walk's cost, paced. Listing every partition this node sweeps at each sweep (every
 * 500 ms) cost an idle 3-node cluster of 256 partitions about 170 listing requests a sweep per
 * node (bench/RESULTS.md, "Leases"); two a step is four or so, and a pass of the walk takes
 * partitions swept / 2 sweeps (about 21 s there), which is how much later, at most, a lease that
 * this node's acceptor never held is found ending. Leases it holds are read every sweep.
 */
export const leaseWalkPartitionsPerStep = 2;

/** What the scanner needs from its node. */
export type LeaseScannerOptions = Pick<NodeContext, 'selfId' | 'ring' | 'isUp' | 'bucketProperties' | 'logger' | 'send'> & {
  /** The storage space of acceptor state (Storage.paxos). */
  readonly space: KeySpace;
  /** The decided record of a lease (a consistent read of its key in leaseBucket), null when there is none. */
  readonly readRecord: (id: string) => Promise<Uint8Array | null>;
  /** The bound of the known lease ids (default maxKnownLeases). */
  readonly maxKnownLeases?: number;
};

/**
 * Finds the leases this node sweeps: the lease records whose key has this node as its first up
 * primary, so one node sweeps each lease and the next primary takes over when it is down
 * (docs/CONSENSUS.md, "Leases"). It reads the lease records it knows of, at most `limit` a step,
 * round and round: the acceptor store tells it of each one it writes, and a walk over the
 * consistent keys of the partitions this node sweeps, as a majority of each one's replicas lists
 * them (src/engine/consistent-listing.ts, the listing a backup reads), at most `limit` keys a
 * step, finds the rest: those written before this run, and those decided while this node was cut
 * off or not yet their sweeper, which its own acceptor never held (their record is then read by a
 * consistent read). So how late a lease is found ending does not grow with the consistent keys
 * of other buckets the node holds (a walk alone took one step per `limit` of them), and a step's
 * work stays bounded however many there are. The known ids are bounded too (`maxKnownLeases`): a
 * lease record the set has no room for is read when the walk passes it, once a pass instead of
 * once a round, and a cycle ends only once a whole pass of the walk lies within it, so the
 * sweeper still sights every lease it sweeps in every cycle.
 */
export class LeaseScanner {
  /** The next partition the walk lists (it wraps round to 0 once past the last). */
  private nextPartition = 0;
  /** The listing of the partition the walk is in, if any. */
  private listing: AsyncGenerator<Buffer> | undefined;
  /** The ids of the lease records this node sweeps or holds, as far as it has learned. */
  private readonly known = new Set<string>();
  /** The known leases not read yet in this round. */
  private round: string[] = [];
  /** How far the current cycle has seen a whole pass of the walk: none, one begun within it, or one begun and finished within it. */
  private pass: 'none' | 'started' | 'complete' = 'none';
  /** Partitions whose listing failed in the current pass of the walk. */
  private failedInPass = 0;

  constructor(private readonly options: LeaseScannerOptions) {}

  /** The acceptor store wrote the state of this key (AcceptorStore's `stored`). */
  stored(bucket: string, key: string): void {
    if (bucket === leaseBucket) this.learn(key);
  }

  /** The leases that this node sweeps among the next at most `limit` it knows of. */
  async next(limit: number): Promise<LeaseScan> {
    const ring = this.options.ring();
    if (ring === null) return { leases: [], wrapped: true };
    const passed = await this.walk(ring, limit);
    if (this.round.length === 0) this.round = [...this.known];
    const nVal = this.options.bucketProperties(leaseBucket).nVal;
    const fromWalk = new Set(passed);
    const leases: LocalLease[] = [];
    for (const id of [...passed, ...this.round.splice(0, Math.max(0, limit - passed.length)).filter((known) => !fromWalk.has(known))]) {
      const firstUp = preferenceList(ring, partitionOf(leaseBucket, id, ring.partitionCount), nVal).find((node) => this.options.isUp(node));
      if (firstUp !== this.options.selfId) continue;
      const stored = await this.options.space.get(encodeDataKey(leaseBucket, id));
      const held = stored === undefined ? undefined : this.leaseOf(id, stored);
      // A record this node's acceptor holds no value of (none, or a promise only: a majority decided
      // it without this node) is read as decided when the walk passes it, once a pass, not every round.
      const lease = held !== undefined ? held : fromWalk.has(id) ? await this.decided(id) : null;
      // A record deleted (the lease ended), or held elsewhere only, is forgotten until written here or passed by the walk again.
      if (lease === null) this.known.delete(id);
      else if (lease !== 'unreadable') leases.push(lease);
    }
    // A cycle ends once every known lease was read and a whole pass of the walk lies within it, so
    // a lease the known set had no room for was read in it too.
    const wrapped = this.round.length === 0 && this.pass === 'complete';
    if (wrapped) this.pass = 'none';
    return { leases, wrapped };
  }

  /** Adds a lease id to the known ones, unless they are at their bound (the walk still finds it, once a pass). */
  private learn(id: string): void {
    if (this.known.size < (this.options.maxKnownLeases ?? maxKnownLeases) || this.known.has(id)) this.known.add(id);
  }

  /** The lease of a stored acceptor state: null when its newest value is a deletion, undefined when it holds no value (a promise only). */
  private leaseOf(id: string, stored: Uint8Array): LocalLease | 'unreadable' | null | undefined {
    const value = newestStoredValue(stored);
    if (value === undefined || value === null) return value;
    return this.decode(id, decodeConsistentValue(value).value);
  }

  /** The lease of a record this node's acceptor holds no state of (a majority listed it), as a consistent read finds it decided. */
  private async decided(id: string): Promise<LocalLease | 'unreadable' | null> {
    let record: Uint8Array | null;
    try {
      record = await this.options.readRecord(id);
    } catch (error) {
      this.options.logger.warn({ error, lease: id }, 'a lease record this node holds no state of could not be read; the next round reads it again');
      return 'unreadable';
    }
    return record === null ? null : this.decode(id, record);
  }

  private decode(id: string, bytes: Uint8Array): LocalLease | 'unreadable' {
    try {
      const record = decodeLeaseRecord(bytes);
      return { id, refresh: record.refresh, ending: record.ending, ttlSeconds: record.ttlSeconds };
    } catch (error) {
      // One unreadable record must not stop the sweeps of every other lease: it is reported and passed over.
      this.options.logger.error({ error, lease: id }, 'a lease record is unreadable; its lease is not swept');
      return 'unreadable';
    }
  }

  /**
   * One step of the walk over the consistent keys of the partitions this node sweeps, each as a
   * majority of its replicas lists it: at most `limit` keys and `leaseWalkPartitionsPerStep`
   * partitions from where the last step stopped; the lease records it passes become known. Answers the lease ids it passed (the known set may have
   * had no room for them, or this node's acceptor may hold no value of them). A partition whose replicas are not a majority up, or whose listing fails, is passed over
   * in this pass (no lease of it can be ended before a majority answers anyway).
   */
  private async walk(ring: Ring, limit: number): Promise<string[]> {
    if (this.nextPartition === 0 && this.listing === undefined && this.pass === 'none') this.pass = 'started';
    const passed: string[] = [];
    let examined = 0;
    let listed = 0;
    while (examined < limit) {
      if (this.listing === undefined) {
        if (listed >= leaseWalkPartitionsPerStep) break;
        if (this.nextPartition >= ring.partitionCount) {
          // Round again at the first partition.
          this.nextPartition = 0;
          if (this.failedInPass > 1)
            this.options.logger.warn({ partitions: this.failedInPass }, 'the lease records of partitions could not be listed in this pass');
          this.failedInPass = 0;
          if (this.pass === 'started') this.pass = 'complete';
          break;
        }
        this.listing = this.open(ring, this.nextPartition);
        this.nextPartition += 1;
        if (this.listing !== undefined) listed += 1;
        continue;
      }
      let step: IteratorResult<Buffer>;
      try {
        step = await this.listing.next();
      } catch (error) {
        // One replica that gossip still holds up but that does not answer fails the listing of
        // each partition it holds: the first failure of a pass is logged, the others counted.
        if (this.failedInPass === 0)
          this.options.logger.warn(
            { error, partition: this.nextPartition - 1 },
            'the lease records of a partition could not be listed; the next pass lists it again (further failures in this pass are counted)',
          );
        this.failedInPass += 1;
        this.listing = undefined;
        continue;
      }
      if (step.done === true) {
        this.listing = undefined;
        continue;
      }
      examined += 1;
      const { bucket, key } = decodeDataKey(step.value);
      if (bucket !== leaseBucket) continue;
      this.learn(key);
      passed.push(key);
    }
    return passed;
  }

  /** The listing of `partition`'s consistent keys from a majority of its replicas, when this node sweeps its leases and a majority is up. */
  private open(ring: Ring, partition: number): AsyncGenerator<Buffer> | undefined {
    const nVal = this.options.bucketProperties(leaseBucket).nVal;
    if (preferenceList(ring, partition, nVal).find((node) => this.options.isUp(node)) !== this.options.selfId) return undefined;
    const { chosen, short } = listingReplicas(ring, partition, [nVal], this.options.selfId, this.options.isUp);
    if (short !== undefined) {
      this.options.logger.debug(
        { partition, up: short.up },
        "fewer than a majority of a partition's replicas are up; its lease records are listed once they are",
      );
      return undefined;
    }
    return consistentKeys(this.options.send, chosen, partition);
  }
}
