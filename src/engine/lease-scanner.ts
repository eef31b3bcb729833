import { decodeAcceptorState } from '../core/consensus/acceptor-codec.js';
import { compareBallots } from '../core/consensus/ballot.js';
import { decodeConsistentValue } from '../core/consensus/consistent-value.js';
import { decodeDataKey, partitionOf } from '../core/keys.js';
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

/** One scan step: the leases found, and whether the scan went round to the start of the space (a cycle ended). */
export interface LeaseScan {
  readonly leases: readonly LocalLease[];
  readonly wrapped: boolean;
}

/** What the scanner needs from its node. */
export type LeaseScannerOptions = Pick<NodeContext, 'selfId' | 'ring' | 'isUp' | 'bucketProperties' | 'logger'> & {
  /** The storage space of acceptor state (Storage.paxos). */
  readonly space: KeySpace;
};

/**
 * Finds the leases this node sweeps, from its own acceptor state (no network): the lease records
 * whose key has this node as its first up primary, so one node sweeps each lease and the next
 * primary takes over when it is down (docs/CONSENSUS.md, "Leases"). Each step examines at most
 * `limit` entries of the paxos space from where the last one stopped, so a sweep's work is
 * bounded however many consistent keys the node holds.
 */
export class LeaseScanner {
  /** The first key of the next step (undefined: the start of the space). */
  private cursor: Uint8Array | undefined;

  constructor(private readonly options: LeaseScannerOptions) {}

  /** The next at most `limit` entries' leases that this node sweeps. */
  async next(limit: number): Promise<LeaseScan> {
    const ring = this.options.ring();
    if (ring === null) return { leases: [], wrapped: true };
    const nVal = this.options.bucketProperties(leaseBucket).nVal;
    const leases: LocalLease[] = [];
    let examined = 0;
    let last: Uint8Array | undefined;
    for await (const [dataKey, stored] of this.options.space.entries(this.cursor === undefined ? {} : { gte: this.cursor })) {
      if (examined >= limit) break;
      examined += 1;
      last = dataKey;
      const { bucket, key } = decodeDataKey(dataKey);
      if (bucket !== leaseBucket) continue;
      const firstUp = preferenceList(ring, partitionOf(bucket, key, ring.partitionCount), nVal).find((node) => this.options.isUp(node));
      if (firstUp !== this.options.selfId) continue;
      const state = decodeAcceptorState(stored);
      const newest =
        state.accepted !== null && (state.committed === null || compareBallots(state.accepted.ballot, state.committed.ballot) > 0)
          ? state.accepted
          : state.committed;
      if (newest === null || newest.state.value === null) continue;
      try {
        const record = decodeLeaseRecord(decodeConsistentValue(newest.state.value).value);
        leases.push({ id: key, refresh: record.refresh, ending: record.ending, ttlSeconds: record.ttlSeconds });
      } catch (error) {
        // One unreadable record must not stop the sweeps of every other lease: it is reported and passed over.
        this.options.logger.error({ error, lease: key }, 'a lease record is unreadable; its lease is not swept');
      }
    }
    // The next step starts just after the last key examined, or round again at the start.
    this.cursor = last === undefined || examined < limit ? undefined : Buffer.concat([last, Buffer.from([0])]);
    return { leases, wrapped: this.cursor === undefined };
  }
}
