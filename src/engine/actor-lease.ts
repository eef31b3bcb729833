import { createHash } from 'node:crypto';
import type { Random } from '../ports/random.js';
import type { Storage } from '../ports/storage.js';
import { KvError } from '../util/errors.js';
import { keyActorName } from '../core/versioning/key-actor.js';

/** Key epochs reserved by one synced write of the lease (Riak's counter_lease_size). */
export const keyEpochLeaseSize = 10_000;

/** Where the lease lives in the metadata space. */
const leaseMetaKey = Buffer.from('actor-lease');

/** The longest node id an actor name carries as it is; a longer one is carried as a digest. */
const maxNodeIdInActorLength = 100;

/**
 * How a node's actors name it: its id, or a digest of an id longer than 100 characters, so that
 * a key epoch's name (`name.storageEpoch.keyEpoch`) stays within the 128 characters a context
 * entry may have.
 */
export function actorNameOfNode(nodeId: string): string {
  return nodeId.length <= maxNodeIdInActorLength ? nodeId : `~${createHash('sha256').update(nodeId).digest('hex').slice(0, 40)}`;
}

/** The persisted lease: see ActorLease. */
interface StoredLease {
  /** Drawn once, when the storage is first created. */
  readonly storageEpoch: string;
  /** Every key epoch ever handed out is at most this. */
  readonly leasedUpTo: number;
  /** Key epochs below this were begun before the node last lost writes (see trustedKeyActor). */
  readonly trustedFrom: number;
  /** True while a run uses the lease; a start that finds it true follows an unclean stop. */
  readonly running: boolean;
}

/**
 * A node's actor and the counter of its key epochs (src/core/versioning/key-actor.ts), kept in
 * the metadata space as Riak's vnode status keeps a vnode id and a counter lease: the counter is
 * persisted, synced, a lease of keyEpochLeaseSize ahead of use, so a crash or a power loss
 * resumes above every key epoch ever handed out, without an fsync per write. A start that finds
 * the previous run did not stop cleanly distrusts every earlier key epoch, since that run may
 * have lost writes it had not synced.
 */
export class ActorLease {
  private nextEpoch = 0;
  private leasedUpTo = 0;
  private trustedFrom = 0;
  private storageEpoch = '';
  /** The synced lease write under way, which every mint waits for. */
  private extending: Promise<void> | undefined;

  private constructor(
    private readonly storage: Storage,
    /** The node's actor: `nodeId.storageEpoch` (see actorNameOfNode). */
    readonly nodeActor: string,
  ) {}

  /** Reads (or, on a new storage, creates) the lease and reserves the next key epochs, synced. */
  static async open(storage: Storage, nodeId: string, random: Random): Promise<ActorLease> {
    const bytes = await storage.meta.get(leaseMetaKey);
    const stored = bytes === undefined ? undefined : parseLease(bytes);
    // Eight base-36 digits: about 2.8e12 storage epochs, so two disks of one node id never share one.
    const storageEpoch = stored?.storageEpoch ?? Array.from({ length: 8 }, () => random.int(36).toString(36)).join('');
    const lease = new ActorLease(storage, `${actorNameOfNode(nodeId)}.${storageEpoch}`);
    lease.storageEpoch = storageEpoch;
    lease.nextEpoch = (stored?.leasedUpTo ?? 0) + 1;
    lease.trustedFrom = stored === undefined || stored.running ? lease.nextEpoch : stored.trustedFrom;
    await lease.persist(lease.nextEpoch - 1 + keyEpochLeaseSize, true);
    return lease;
  }

  /** Begins a new key epoch: answers its actor name. The lease is extended (synced) before a key epoch past it is handed out. */
  async beginKeyEpoch(): Promise<string> {
    while (this.nextEpoch > this.leasedUpTo) {
      this.extending ??= this.persist(this.leasedUpTo + keyEpochLeaseSize, true).finally(() => {
        this.extending = undefined;
      });
      await this.extending;
    }
    const epoch = this.nextEpoch;
    this.nextEpoch += 1;
    return keyActorName(this.nodeActor, epoch);
  }

  /** The first key epoch this node still trusts (see trustedKeyActor). */
  get trustedFromEpoch(): number {
    return this.trustedFrom;
  }

  /**
   * The node's copy of some key may now lack events of a key epoch it began (a copy was removed
   * and may come back from elsewhere): every key epoch begun so far is distrusted. Kept in memory
   * and saved with the next lease write; a crash before that is an unclean stop, which distrusts
   * them all anyway.
   */
  distrustEarlierEpochs(): void {
    this.trustedFrom = this.nextEpoch;
  }

  /** A clean stop: saves the lease as not running, so the next start trusts the key epochs this run kept whole. */
  async close(): Promise<void> {
    await this.extending;
    await this.persist(this.leasedUpTo, false);
  }

  private async persist(leasedUpTo: number, running: boolean): Promise<void> {
    const lease: StoredLease = { storageEpoch: this.storageEpoch, leasedUpTo, trustedFrom: this.trustedFrom, running };
    await this.storage.meta.put(leaseMetaKey, Buffer.from(JSON.stringify(lease), 'utf8'), { sync: true });
    this.leasedUpTo = leasedUpTo;
  }
}

function parseLease(bytes: Uint8Array): StoredLease {
  const broken = (): KvError =>
    new KvError(
      'KV_STORAGE',
      "the node's actor lease (metadata key 'actor-lease') is unreadable; restore the data directory from a backup, or wipe it and start the node as a new member",
    );
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch {
    throw broken();
  }
  const lease = value as Partial<StoredLease> | null;
  if (
    lease === null ||
    typeof lease !== 'object' ||
    typeof lease.storageEpoch !== 'string' ||
    !/^[0-9a-z]{1,16}$/.test(lease.storageEpoch) ||
    !Number.isSafeInteger(lease.leasedUpTo) ||
    !Number.isSafeInteger(lease.trustedFrom) ||
    typeof lease.running !== 'boolean'
  ) {
    throw broken();
  }
  return lease as StoredLease;
}
