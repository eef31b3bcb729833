import { decodeAcceptorState } from '../core/consensus/acceptor-codec.js';
import { compareBallots } from '../core/consensus/ballot.js';
import { decodeConsistentValue } from '../core/consensus/consistent-value.js';
import { decodeDataKey, encodeDataKey, partitionOf } from '../core/keys.js';
import { decodeLeaseRecord, leaseBucket } from '../core/leases/lease-record.js';
import { preferenceList } from '../core/ring/ring.js';
import type { KeySpace } from '../ports/storage.js';
import type { NodeContext } from './node-context.js';

/** A lease as this node's acceptor last held it: possibly behind the decided record, which the sweeper reads before acting. */
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
 * lease record is still found by the walk over the paxos space, once a pass, so no lease is
 * missed, only swept later.
 */
export const maxKnownLeases = 65_536;

/** What the scanner needs from its node. */
export type LeaseScannerOptions = Pick<NodeContext, 'selfId' | 'ring' | 'isUp' | 'bucketProperties' | 'logger'> & {
  /** The storage space of acceptor state (Storage.paxos). */
  readonly space: KeySpace;
  /** The bound of the known lease ids (default maxKnownLeases). */
  readonly maxKnownLeases?: number;
};

/**
 * Finds the leases this node sweeps, from its own acceptor state (no network): the lease records
 * whose key has this node as its first up primary, so one node sweeps each lease and the next
 * primary takes over when it is down (docs/CONSENSUS.md, "Leases"). It reads the lease records
 * it knows of, at most `limit` a step, round and round: the acceptor store tells it of each one
 * it writes, and a walk over the whole paxos space, at most `limit` entries a step, finds those
 * written before this run. So how late a lease is found ending does not grow with the consistent
 * keys of other buckets the node holds (a walk alone took one step per `limit` of them), and a
 * step's work stays bounded however many there are. The known ids are bounded too
 * (`maxKnownLeases`): a lease record the set has no room for is read when the walk passes it,
 * once a pass instead of once a round, and a cycle ends only once a whole pass of the walk lies
 * within it, so the sweeper still sights every lease it sweeps in every cycle.
 */
export class LeaseScanner {
  /** The first key of the walk's next step (undefined: the start of the space). */
  private cursor: Uint8Array | undefined;
  /** The ids of the lease records this node's acceptor holds, as far as it has learned. */
  private readonly known = new Set<string>();
  /** The known leases not read yet in this round. */
  private round: string[] = [];
  /** How far the current cycle has seen a whole pass of the walk: none, one begun within it, or one begun and finished within it. */
  private pass: 'none' | 'started' | 'complete' = 'none';

  constructor(private readonly options: LeaseScannerOptions) {}

  /** The acceptor store wrote the state of this key (AcceptorStore's `stored`). */
  stored(bucket: string, key: string): void {
    if (bucket === leaseBucket) this.learn(key);
  }

  /** The leases that this node sweeps among the next at most `limit` it knows of. */
  async next(limit: number): Promise<LeaseScan> {
    const ring = this.options.ring();
    if (ring === null) return { leases: [], wrapped: true };
    const unknown = await this.walk(limit);
    if (this.round.length === 0) this.round = [...this.known];
    const nVal = this.options.bucketProperties(leaseBucket).nVal;
    const leases: LocalLease[] = [];
    for (const id of [...unknown, ...this.round.splice(0, Math.max(0, limit - unknown.length))]) {
      const firstUp = preferenceList(ring, partitionOf(leaseBucket, id, ring.partitionCount), nVal).find((node) => this.options.isUp(node));
      if (firstUp !== this.options.selfId) continue;
      const stored = await this.options.space.get(encodeDataKey(leaseBucket, id));
      const lease = stored === undefined ? null : this.leaseOf(id, stored);
      // A record deleted (the lease ended) or collected from here is forgotten until written here again.
      if (lease === null) this.known.delete(id);
      else if (lease !== 'unreadable') leases.push(lease);
    }
    // A cycle ends once every known lease was read and a whole pass of the walk lies within it, so
    // a lease the known set had no room for was read in it too.
    const wrapped = this.round.length === 0 && this.pass === 'complete';
    if (wrapped) this.pass = 'none';
    return { leases, wrapped };
  }

  /** Adds a lease id to the known ones; false when they are at their bound (the walk still finds it, once a pass). */
  private learn(id: string): boolean {
    if (this.known.size >= (this.options.maxKnownLeases ?? maxKnownLeases) && !this.known.has(id)) return false;
    this.known.add(id);
    return true;
  }

  /** The lease of a stored acceptor state: null when its newest state holds no record. */
  private leaseOf(id: string, stored: Uint8Array): LocalLease | 'unreadable' | null {
    const state = decodeAcceptorState(stored);
    const newest =
      state.accepted !== null && (state.committed === null || compareBallots(state.accepted.ballot, state.committed.ballot) > 0)
        ? state.accepted
        : state.committed;
    if (newest === null || newest.state.value === null) return null;
    try {
      const record = decodeLeaseRecord(decodeConsistentValue(newest.state.value).value);
      return { id, refresh: record.refresh, ending: record.ending, ttlSeconds: record.ttlSeconds };
    } catch (error) {
      // One unreadable record must not stop the sweeps of every other lease: it is reported and passed over.
      this.options.logger.error({ error, lease: id }, 'a lease record is unreadable; its lease is not swept');
      return 'unreadable';
    }
  }

  /**
   * One step of the walk over the paxos space: at most `limit` entries from where the last
   * stopped; the lease records it passes become known. Answers those it passed that the known
   * set had no room for.
   */
  private async walk(limit: number): Promise<string[]> {
    if (this.cursor === undefined && this.pass === 'none') this.pass = 'started';
    const unknown: string[] = [];
    let examined = 0;
    let last: Uint8Array | undefined;
    for await (const [dataKey] of this.options.space.entries(this.cursor === undefined ? {} : { gte: this.cursor })) {
      if (examined >= limit) break;
      examined += 1;
      last = dataKey;
      const { bucket, key } = decodeDataKey(dataKey);
      if (bucket === leaseBucket && !this.learn(key)) unknown.push(key);
    }
    // The next step starts just after the last key examined, or round again at the start.
    this.cursor = last === undefined || examined < limit ? undefined : Buffer.concat([last, Buffer.from([0])]);
    if (this.cursor === undefined && this.pass === 'started') this.pass = 'complete';
    return unknown;
  }
}
