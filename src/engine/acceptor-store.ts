import { type AcceptorReply, type AcceptorRequest, emptyAcceptorState, stepAcceptor } from '../core/consensus/acceptor.js';
import { decodeAcceptorState, encodeAcceptorState } from '../core/consensus/acceptor-codec.js';
import { type Ballot, proposerNode } from '../core/consensus/ballot.js';
import { encodeDataKey, partitionKeyRange } from '../core/keys.js';
import type { PaxosCommitRequest, PaxosKeysReply, PaxosKeysRequest, PaxosPrepareRequest, PaxosProposeRequest, PaxosReply } from '../core/wire/messages.js';
import type { BucketProperties } from '../config/schema.js';
import type { KeySpace } from '../ports/storage.js';
import { KvError } from '../util/errors.js';
import { KeyLocks } from './key-locks.js';

/** What the acceptor store needs from its node. */
export interface AcceptorStoreOptions {
  /** The storage space of acceptor state (Storage.paxos). */
  readonly space: KeySpace;
  readonly bucketProperties: (bucket: string) => BucketProperties;
  /**
   * The version of the ring this node holds (0 before it has one): the acceptor refuses a request
   * from an older ring even for a key it holds no state of, so a proposer behind on gossip cannot
   * win a key that no repair round fenced (one never written before a ring change).
   */
  readonly ringVersion: () => number;
  /**
   * Whether this node's view holds `node` as left or removed: a prepare or proposal from a
   * proposer of such a node is refused (docs/CONSENSUS.md, "Watches"), so a node removed while it
   * still runs decides nothing once its acceptors know, and a watch that read its log to the end
   * misses nothing.
   */
  readonly departed: (node: string) => boolean;
  /** Told of every key whose acceptor state was written (the lease scanner keeps the lease records it learns of so). */
  readonly stored: (bucket: string, key: string) => void;
}

/** The most bytes of storage keys one paxos-keys answer carries (past them the page ends, with at least one key). */
export const maxPaxosKeysReplyBytes = 1024 * 1024;

/**
 * The acceptor side of consistent buckets on one node (docs/CONSENSUS.md): per key, the state of
 * src/core/consensus/acceptor.ts in the `paxos` storage space under the key's data key. Each
 * request runs under the key's lock (read, step, write), and a changed state is written with
 * `sync` (fsync) before the answer leaves: Paxos's quorum intersection rests on an acceptor never
 * forgetting a promise or an acceptance it answered (Lamport, Paxos Made Simple, "stable storage").
 * A prepare or proposal from a ring older than the key's persisted epoch or this node's own ring
 * is refused (the epoch fence of a ring change).
 */
export class AcceptorStore {
  private readonly locks = new KeyLocks();

  constructor(private readonly options: AcceptorStoreOptions) {}

  /** Serves a paxos-prepare, paxos-propose or paxos-commit from a proposer. */
  async handle(request: PaxosPrepareRequest | PaxosProposeRequest | PaxosCommitRequest): Promise<PaxosReply> {
    if (this.options.bucketProperties(request.bucket).consistent !== true) {
      throw new KvError(
        'KV_BAD_REQUEST',
        `bucket ${JSON.stringify(request.bucket)} is not consistent here, so this node keeps no Paxos state for it; the sender's bucket properties differ from this node's (check that every node has the cluster's view)`,
      );
    }
    if (request.type !== 'paxos-commit') this.refuseDeparted(request.type === 'paxos-prepare' ? request.ballot : request.proposal.ballot);
    const acceptorRequest: AcceptorRequest =
      request.type === 'paxos-prepare'
        ? { type: 'prepare', epoch: request.epoch, ballot: request.ballot }
        : request.type === 'paxos-propose'
          ? { type: 'propose', epoch: request.epoch, proposal: request.proposal }
          : { type: 'commit', proposal: request.proposal };
    const dataKey = encodeDataKey(request.bucket, request.key);
    const reply = await this.locks.withLock(dataKey.toString('latin1'), async (): Promise<AcceptorReply | null> => {
      const stored = await this.options.space.get(dataKey);
      const state = stored === undefined ? emptyAcceptorState : decodeAcceptorState(stored);
      // The fence is the newer of the key's persisted epoch and this node's ring: rings only move
      // forward, and a ring change completes only once a majority of each moving key's old
      // replicas holds the planned ring (src/engine/claimant.ts), so a proposer on the ring
      // before the change can no longer win a majority of the old replicas (docs/CONSENSUS.md).
      const fenced: typeof state = { ...state, epoch: Math.max(state.epoch, this.options.ringVersion()) };
      const step = stepAcceptor(fenced, acceptorRequest);
      if (step.persist !== null) {
        await this.options.space.put(dataKey, encodeAcceptorState(step.persist), { sync: true });
        this.options.stored(request.bucket, request.key);
      }
      return step.reply;
    });
    return { type: 'paxos-reply', reply };
  }

  /**
   * Refuses a prepare or proposal of a proposer whose node this node holds as left or removed. A
   * leaver drains its operations before it flips to left, but a node removed while it still runs
   * (judged down while cut off) may hold the ring planned without it before it hears of its
   * removal, and propose at that ring's epoch; a watch reads a departed node's log to its end once,
   * so what it decided after that would be missed. A commit is still taken: it only teaches a
   * decided state.
   */
  private refuseDeparted(ballot: Ballot): void {
    const node = proposerNode(ballot.proposer);
    if (node === undefined || !this.options.departed(node)) return;
    throw new KvError(
      'KV_NOT_READY',
      `node ${node} proposed this round, but it has left or was removed from the cluster, so its acceptors refuse it and it decides nothing; the operation was not applied: send it to a member of the cluster`,
      { details: { applied: 'no' } },
    );
  }

  /**
   * A page of the keys of `request.partition` (of a ring of `partitionCount` partitions) this node
   * holds acceptor state of, in storage order after `request.after`: at most `maxKeys` keys and
   * about maxPaxosKeysReplyBytes of them. A backup merges such pages from a majority of a
   * partition's replicas (src/engine/backup-service.ts), this node's own too.
   */
  async keys(request: PaxosKeysRequest, partitionCount: number): Promise<PaxosKeysReply> {
    if (request.partition >= partitionCount)
      throw new KvError('KV_BAD_REQUEST', `partition ${request.partition} does not exist: this node's ring has ${partitionCount} partitions`);
    const range = partitionKeyRange(request.partition, partitionCount);
    const next = request.after === null ? range.gte : Buffer.concat([request.after, Buffer.of(0)]);
    const keys: Buffer[] = [];
    let bytes = 0;
    // One more than the page, to tell whether anything is left after it.
    for await (const [stored] of this.options.space.entries({
      ...range,
      gte: Buffer.compare(next, range.gte) > 0 ? next : range.gte,
      limit: request.maxKeys + 1,
    })) {
      if (keys.length === request.maxKeys || bytes >= maxPaxosKeysReplyBytes) return { type: 'paxos-keys-reply', keys, done: false };
      keys.push(Buffer.from(stored));
      bytes += stored.length;
    }
    return { type: 'paxos-keys-reply', keys, done: true };
  }

  /**
   * Deletes the acceptor state stored under `dataKey` (a consistent key this node's ring of
   * version `ringVersion` no longer places here, with no change planned: handoff's clean-up) unless
   * a request from a newer ring reached it since, which would mean a later change counts this
   * node again. Judged and deleted under the key's lock, so no answer in flight is forgotten.
   * True when nothing is left.
   */
  async collect(dataKey: Buffer, ringVersion: number): Promise<boolean> {
    return this.locks.withLock(dataKey.toString('latin1'), async () => {
      const stored = await this.options.space.get(dataKey);
      if (stored === undefined) return true;
      if (decodeAcceptorState(stored).epoch > ringVersion) return false;
      await this.options.space.del(dataKey);
      return true;
    });
  }
}
