import { decodeAcceptorState } from '../core/consensus/acceptor-codec.js';
import { compareBallots } from '../core/consensus/ballot.js';
import { decodeConsistentValue } from '../core/consensus/consistent-value.js';
import { decodeDataKey, partitionOfPosition } from '../core/keys.js';
import { leaseBucket } from '../core/leases/lease-record.js';
import { preferenceList } from '../core/ring/ring.js';
import type { KeySpace } from '../ports/storage.js';
import type { NodeContext } from './node-context.js';

/** A consistent key whose newest value in this node's acceptor state names a lease (possibly behind the decided value, which the check reads). */
export interface LeasedKey {
  readonly bucket: string;
  readonly key: string;
  readonly lease: string;
}

/** One step of the walk: the leased keys found, and whether the walk went round to the first key again. */
export interface LeasedKeyScan {
  readonly keys: readonly LeasedKey[];
  readonly wrapped: boolean;
}

/** What the scanner needs from its node. */
export type LeasedKeyScannerOptions = Pick<NodeContext, 'selfId' | 'ring' | 'isUp' | 'bucketProperties'> & {
  /** The storage space of acceptor state (Storage.paxos). */
  readonly space: KeySpace;
};

/**
 * The newest value of a stored acceptor state: the accepted one when it is newer than the
 * committed one (a proposal this acceptor took that may not be decided yet), else the committed
 * one; null when that is a deletion, undefined when the state holds no value (a promise only).
 */
export function newestStoredValue(stored: Uint8Array): Uint8Array | null | undefined {
  const state = decodeAcceptorState(stored);
  const newest =
    state.accepted !== null && (state.committed === null || compareBallots(state.accepted.ballot, state.committed.ballot) > 0)
      ? state.accepted
      : state.committed;
  return newest === null ? undefined : newest.state.value;
}

/**
 * Finds the leased keys whose writer may have left them orphaned (docs/CONSENSUS.md, "Leases",
 * "Orphans"): a walk over this node's own acceptor state, round and round, at most `limit`
 * entries a step, that answers the consistent keys whose newest value names a lease. Reading the
 * local state is the whole cost for a key of a bucket nobody leases: no Paxos round, no message.
 * A key is answered only on the first majority of its up replicas (in preference list order), so
 * at most a majority checks it, and one that holds its decided value always does: a decided
 * value is on a majority of the replicas, and two majorities meet.
 */
export class LeasedKeyScanner {
  /** The storage key the walk passed last; null at the start of a pass. */
  private after: Buffer | null = null;

  constructor(private readonly options: LeasedKeyScannerOptions) {}

  /** The leased keys this node checks among the next at most `limit` entries of its acceptor state, and at most `maxKeys` of them. */
  async next(limit: number, maxKeys: number): Promise<LeasedKeyScan> {
    const ring = this.options.ring();
    if (ring === null) return { keys: [], wrapped: true };
    const keys: LeasedKey[] = [];
    let examined = 0;
    const from = this.after === null ? {} : { gte: Buffer.concat([this.after, Buffer.of(0)]) };
    for await (const [dataKey, stored] of this.options.space.entries({ ...from, limit })) {
      examined += 1;
      this.after = Buffer.from(dataKey);
      const lease = this.leaseNamed(dataKey, stored);
      if (lease === undefined) continue;
      const { position, bucket, key } = decodeDataKey(dataKey);
      const replicas = preferenceList(ring, partitionOfPosition(position, ring.partitionCount), this.options.bucketProperties(bucket).nVal);
      const checkers = replicas.filter((node) => this.options.isUp(node)).slice(0, Math.floor(replicas.length / 2) + 1);
      if (checkers.includes(this.options.selfId)) keys.push({ bucket, key, lease });
      if (keys.length >= maxKeys) return { keys, wrapped: false };
    }
    const wrapped = examined < limit;
    if (wrapped) this.after = null;
    return { keys, wrapped };
  }

  /** The lease the newest value of a stored acceptor state names, if any (lease records themselves name none). */
  private leaseNamed(dataKey: Uint8Array, stored: Uint8Array): string | undefined {
    let lease: string | undefined;
    try {
      const value = newestStoredValue(stored);
      lease = value === null || value === undefined ? undefined : decodeConsistentValue(value).lease;
    } catch {
      // A state this node cannot read is one it cannot serve either (its reads fail, saying why); the walk goes on past it.
      return undefined;
    }
    // The bucket is read from the key's bytes only once the value names a lease: most keys stop at the value.
    return lease === undefined || decodeDataKey(dataKey).bucket === leaseBucket ? undefined : lease;
  }
}
