import type { Ballot } from '../consensus/ballot.js';
import type { AcceptorReply, Proposal } from '../consensus/acceptor.js';
import type { QuorumSetting } from '../buckets.js';
import type { CausalContext } from '../versioning/context.js';
import type { DataTypeUpdate } from '../datatypes/data-type.js';
import type { Precondition } from '../versioning/preconditions.js';
import type { ConflictMode, Dot, VersionedObject, WriteIntent } from '../versioning/versioned-object.js';
import type { SwimAck, SwimDigest, SwimDigestReply, SwimGossip, SwimNack, SwimPing, SwimPingRequest, SwimRecords } from '../membership/swim-messages.js';
import type { LogCursor, WatchFilter } from '../watch/watch-cursor.js';

/**
 * Node-to-node messages. Each is one entry of the message table (message-table.ts), which gives
 * it a tag and its layout on the wire (docs/WIRE.md).
 */

/** Read a replica's version of a key. */
export interface ReplicaGetRequest {
  readonly type: 'replica-get';
  readonly bucket: string;
  readonly key: string;
}

/** Apply a new client write on this replica (it issues the dot), store it, return the result. */
export interface CoordinatePutRequest {
  readonly type: 'coordinate-put';
  readonly bucket: string;
  readonly key: string;
  readonly write: WriteIntent;
  readonly mode: ConflictMode;
  readonly sync: boolean;
  /** A conditional write: checked under the key lock against this replica's copy merged with `base`. */
  readonly precondition?: Precondition;
  /** What the coordinator's read of r replicas returned (null: nothing), merged in before the check. */
  readonly base?: VersionedObject | null;
}

/**
 * A client write (or delete) handed whole by an entry node that is not one of the key's replicas
 * to its coordinating replica, which runs the write there (issues the dot, replicates, counts
 * `w`) and answers the context: the value crosses the network once per replica (Riak's put
 * forwarding to a node of the preference list). The receiver never forwards it again.
 */
export interface ForwardPutRequest {
  readonly type: 'forward-put';
  readonly bucket: string;
  readonly key: string;
  readonly write: WriteIntent;
  /** The client's quorums; absent: the bucket's. */
  readonly w?: QuorumSetting;
  readonly pw?: QuorumSetting;
  readonly dw?: QuorumSetting;
  /** What is left of the client request's deadline when the entry node sends it. */
  readonly timeoutMs: number;
}

/** Merge a version into this replica's (replication, read repair, hint delivery, anti-entropy). */
export interface ReplicaPutRequest {
  readonly type: 'replica-put';
  readonly bucket: string;
  readonly key: string;
  readonly object: VersionedObject;
  readonly mode: ConflictMode;
  readonly sync: boolean;
  /** Set when this node is a fallback: the id of the primary the write belongs to. */
  readonly hintFor?: string;
}

/**
 * Fetch the ring and bucket properties whole (SWIM's digests carry only their versions; a node
 * that finds a peer's newer fetches them with this). The answer also names the peer, which is how
 * a joiner that knows only a seed's address learns its id.
 */
export interface ClusterStateRequest {
  readonly type: 'cluster-state';
}

/** Handoff's question before it streams a partition: which of `partitions` the source holds any key of. */
export interface HandoffHeldRequest {
  readonly type: 'handoff-held';
  readonly partitions: readonly number[];
}

/** A stored object with its storage key, as handoff and anti-entropy pages carry it. */
export interface StoredItem {
  readonly dataKey: Uint8Array;
  readonly object: VersionedObject;
}

/** A storage key with the digest of its stored version (anti-entropy's key comparison). */
export interface KeyDigest {
  readonly dataKey: Uint8Array;
  readonly digest: string;
}

/**
 * One page of a partition stream (ownership handoff): the keys after `after` in storage order,
 * at most `maxKeys` of them and about `maxBytes` of values, but always at least one object, so
 * that a single value larger than a page still moves.
 */
export interface HandoffFetchRequest {
  readonly type: 'handoff-fetch';
  readonly partition: number;
  /** The last key of the previous page; null for the first page. */
  readonly after: Uint8Array | null;
  readonly maxKeys: number;
  readonly maxBytes: number;
}

/**
 * Anti-entropy's key comparison over some leaves of a partition: the sender's keys and digests
 * in those leaves; the reply says which keys differ on either side.
 */
export interface AntiEntropyKeysRequest {
  readonly type: 'ae-keys';
  readonly partition: number;
  readonly leaves: readonly number[];
  readonly items: readonly KeyDigest[];
}

/** Anti-entropy asks a peer for its objects of some keys (that differ), a page at a time. */
export interface AntiEntropyFetchRequest {
  readonly type: 'ae-fetch';
  readonly partition: number;
  /** The keys, in the order the page follows; absent keys are skipped. */
  readonly keys: readonly Uint8Array[];
  readonly maxBytes: number;
}

/** Anti-entropy sends a peer the objects it lacks, to merge. */
export interface AntiEntropyPushRequest {
  readonly type: 'ae-push';
  readonly partition: number;
  readonly items: readonly StoredItem[];
}

/** A partition's Merkle root, as one entry of an anti-entropy summary. */
export interface PartitionRoot {
  readonly partition: number;
  /** The root hash (16 hex digits on this side; 8 bytes on the wire). */
  readonly root: string;
}

/**
 * Anti-entropy's first question to a peer in a round: the roots of the partitions the sender
 * wants compared with it (those changed since they last agreed, or all they share). The reply
 * names the partitions whose roots differ, with the responder's branch hashes of each, so the
 * descent goes on from there without a message per partition that agrees.
 */
export interface AntiEntropySummaryRequest {
  readonly type: 'ae-summary';
  readonly roots: readonly PartitionRoot[];
}

/** Anti-entropy asks for the leaf hashes under some branches of a partition's tree. */
export interface AntiEntropyLeavesRequest {
  readonly type: 'ae-leaves';
  readonly partition: number;
  readonly branches: readonly number[];
}

/** The tombstone reaper asks a replica for the digest of its stored version of a key. */
export interface AntiEntropyDigestRequest {
  readonly type: 'ae-digest';
  readonly dataKey: Uint8Array;
}

/** The tombstone reaper asks a replica to reap a key, if it still holds the version with this digest. */
export interface AntiEntropyReapRequest {
  readonly type: 'ae-reap';
  readonly dataKey: Uint8Array;
  readonly digest: string;
}

/**
 * One node's part of a key listing (a coverage query): its keys of `bucket` in the given
 * partitions, live or deleted, each with its version, in byte order, after `after` and starting
 * with `prefix`, at most `limit` of them.
 */
export interface ListKeysRequest {
  readonly type: 'list-keys';
  readonly bucket: string;
  readonly partitions: readonly number[];
  /** The cursor: only keys after it (exclusive); null for the first page. */
  readonly after: string | null;
  readonly prefix: string;
  readonly limit: number;
}

/**
 * Apply a data type update on this replica (it issues the update's dots as one of its actors),
 * store the result and return it; the coordinator then replicates it as a version (replica-put).
 */
export interface DataTypeUpdateRequest {
  readonly type: 'dt-update';
  readonly bucket: string;
  /** The stored key (the data type namespace's, src/core/datatypes/data-type.ts). */
  readonly key: string;
  readonly update: DataTypeUpdate;
  readonly sync: boolean;
  /** What the coordinator's read of r replicas returned (a remove needs it), merged in first; null: nothing. */
  readonly base: VersionedObject | null;
}

/**
 * Paxos phase 1a for a key of a consistent bucket (docs/CONSENSUS.md): promise `ballot`, and
 * answer the newest proposal accepted and committed. `epoch` is the ring version the proposer
 * took the key's acceptors from.
 */
export interface PaxosPrepareRequest {
  readonly type: 'paxos-prepare';
  readonly bucket: string;
  readonly key: string;
  readonly epoch: number;
  readonly ballot: Ballot;
}

/** Paxos phase 2a: accept `proposal` unless a newer ballot was promised. */
export interface PaxosProposeRequest {
  readonly type: 'paxos-propose';
  readonly bucket: string;
  readonly key: string;
  readonly epoch: number;
  readonly proposal: Proposal;
}

/** Paxos learn: `proposal` was accepted by a quorum; the acceptor records it as committed. */
export interface PaxosCommitRequest {
  readonly type: 'paxos-commit';
  readonly bucket: string;
  readonly key: string;
  readonly proposal: Proposal;
}

/**
 * A backup's question to a replica (src/engine/backup-service.ts): the keys of `partition` it
 * holds acceptor state of, in storage order after `after`, at most `maxKeys` of them. A backup
 * asks a majority of the partition's replicas, since a decided key may have missed any minority.
 */
export interface PaxosKeysRequest {
  readonly type: 'paxos-keys';
  readonly partition: number;
  /** The last storage key of the previous page; null for the first page. */
  readonly after: Uint8Array | null;
  readonly maxKeys: number;
}

/**
 * A watching node asks this node for the writes it coordinated (issued the dot of) after `cursor`
 * that the filter follows; with none yet, the answer waits up to `waitMs` for one (a long poll).
 */
export interface WatchPollRequest {
  readonly type: 'watch-poll';
  readonly filter: WatchFilter;
  /** Where the watch stands in this node's log; null: start at its head (a new watch). */
  readonly cursor: LogCursor | null;
  readonly waitMs: number;
  readonly maxWrites: number;
}

/** Every request a peer can send. */
export type PeerRequest =
  | ReplicaGetRequest
  | CoordinatePutRequest
  | ReplicaPutRequest
  | HandoffHeldRequest
  | SwimPing
  | SwimPingRequest
  | SwimGossip
  | SwimDigest
  | SwimRecords
  | ClusterStateRequest
  | HandoffFetchRequest
  | AntiEntropyKeysRequest
  | AntiEntropyFetchRequest
  | AntiEntropyPushRequest
  | ListKeysRequest
  | DataTypeUpdateRequest
  | AntiEntropySummaryRequest
  | AntiEntropyLeavesRequest
  | AntiEntropyDigestRequest
  | AntiEntropyReapRequest
  | PaxosPrepareRequest
  | PaxosProposeRequest
  | PaxosCommitRequest
  | PaxosKeysRequest
  | ForwardPutRequest
  | WatchPollRequest;

/** A replica's answer to replica-get. */
export interface ReplicaGetReply {
  readonly type: 'replica-get-reply';
  readonly object: VersionedObject | null;
}

/** A replica's answer to coordinate-put. */
export interface CoordinatePutReply {
  readonly type: 'coordinate-put-reply';
  readonly object: VersionedObject;
  readonly durable: boolean;
  /** The dot the write created: with the writer's context it is the context the write hands back. */
  readonly dot: Dot;
}

/** The coordinating replica's answer to forward-put: the context the write hands its writer. */
export interface ForwardPutReply {
  readonly type: 'forward-put-reply';
  readonly context: CausalContext;
}

/** A replica's answer to replica-put. */
export interface ReplicaPutReply {
  readonly type: 'replica-put-reply';
  readonly durable: boolean;
}

/**
 * The answer to cluster-state: the answering node's id, and its ring and bucket properties as a
 * cluster view without members (`state-codec.ts`'s layout; the receiver validates it).
 */
export interface ClusterStateReply {
  readonly type: 'cluster-state-reply';
  readonly from: string;
  readonly state: unknown;
}

/** The answer to a SWIM request that has nothing to answer with (gossip, records, a ping meant for another id). */
export interface SwimDone {
  readonly type: 'swim-done';
}

/** The partitions among those a handoff-held asked about that this node holds keys of. */
export interface HandoffHeldReply {
  readonly type: 'handoff-held-reply';
  readonly held: readonly number[];
}

/** A page of objects (the answer to handoff-fetch and ae-fetch); `done` when nothing is left after it. */
export interface ObjectPageReply {
  readonly type: 'object-page';
  readonly items: readonly StoredItem[];
  readonly done: boolean;
}

/**
 * The answer to ae-keys: the responder's keys whose version differs from the sender's (or that
 * the sender lacks), and the sender's keys the responder lacks or holds another version of.
 * `truncated` when the reply was bounded and the next exchange has to find the rest.
 */
export interface AntiEntropyKeysReply {
  readonly type: 'ae-keys-reply';
  readonly differing: readonly Uint8Array[];
  readonly need: readonly Uint8Array[];
  readonly truncated: boolean;
}

/** The answer to ae-push: how many keys changed on the receiver. */
export interface AntiEntropyPushReply {
  readonly type: 'ae-push-reply';
  readonly repaired: number;
}

/**
 * A key as one replica holds it, for a listing: its version without the values (clock, and each
 * sibling's dot, tombstone flag, timestamp and expiry, with empty value and content type), which
 * is all that merging replicas' versions and judging the result live needs.
 */
export interface ListedKey {
  readonly key: string;
  readonly version: VersionedObject;
}

/**
 * The answer to list-keys. When `more`, keys after `scannedTo` may exist (the page was full or
 * the scan reached its bound), and every key of the node's up to `scannedTo` is in `entries`.
 */
export interface ListKeysReply {
  readonly type: 'list-keys-reply';
  readonly entries: readonly ListedKey[];
  readonly more: boolean;
  /** The last key the node examined (meaningful when `more`). */
  readonly scannedTo: string;
}

/** A replica's answer to dt-update: the state it stored. */
export interface DataTypeUpdateReply {
  readonly type: 'dt-update-reply';
  readonly object: VersionedObject;
  readonly durable: boolean;
}

/** A partition whose roots differ, with the responder's branch hashes (merkleFanout of them). */
export interface DifferingPartition {
  readonly partition: number;
  readonly branches: readonly string[];
}

/**
 * The answer to ae-summary: the partitions whose roots differ, with this side's branch hashes,
 * and those this side cannot compare yet (its tree is still being rebuilt after a crash).
 */
export interface AntiEntropySummaryReply {
  readonly type: 'ae-summary-reply';
  readonly differing: readonly DifferingPartition[];
  readonly notReady: readonly number[];
}

/** The leaf hashes under one branch. */
export interface BranchLeaves {
  readonly branch: number;
  readonly leaves: readonly string[];
}

/** The answer to ae-leaves: the leaf hashes (merkleFanout per branch) of each branch asked about. */
export interface AntiEntropyLeavesReply {
  readonly type: 'ae-leaves-reply';
  readonly branches: readonly BranchLeaves[];
}

/** The answer to ae-digest: the digest of the stored version, or null when the key is absent. */
export interface AntiEntropyDigestReply {
  readonly type: 'ae-digest-reply';
  readonly digest: string | null;
}

/** The answer to ae-reap: whether the key was removed. */
export interface AntiEntropyReapReply {
  readonly type: 'ae-reap-reply';
  readonly removed: boolean;
}

/** An acceptor's answer to a paxos-prepare or paxos-propose (after its state was synced); null to a paxos-commit. */
export interface PaxosReply {
  readonly type: 'paxos-reply';
  readonly reply: AcceptorReply | null;
}

/** The answer to paxos-keys: storage keys in order; `done` when none is left after them. */
export interface PaxosKeysReply {
  readonly type: 'paxos-keys-reply';
  readonly keys: readonly Uint8Array[];
  readonly done: boolean;
}

/**
 * One write in a node's log of recent writes: its sequence number there and its key, and either
 * (plain bucket) the object it left and the dot it created, or (consistent bucket) the decided
 * register state: its version and value (null: deleted), as src/core/consensus decided it.
 */
export type LoggedWrite =
  | { readonly seq: number; readonly key: string; readonly kind: 'plain'; readonly object: VersionedObject; readonly dot: Dot }
  | { readonly seq: number; readonly key: string; readonly kind: 'consistent'; readonly version: number; readonly value: Uint8Array | null };

/**
 * The answer to watch-poll: the log's epoch, the matching writes after the cursor, and the cursor
 * to ask from next (past writes the filter does not follow). `gap` when the log no longer holds
 * everything after the cursor (it restarted, or dropped old writes): the writes then start at its head.
 */
export interface WatchPollReply {
  readonly type: 'watch-poll-reply';
  readonly epoch: string;
  readonly next: number;
  readonly gap: boolean;
  readonly writes: readonly LoggedWrite[];
}

/** A failure on the replica side, with a KV_* code. */
export interface ErrorReply {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
  /** The error's machine-readable facts (KvError.details) as JSON object text, which a client may act on (details.applied, details.written). */
  readonly details?: string;
  /** Seconds the client should wait before retrying (KvError.retryAfterSeconds), for overload answers. */
  readonly retryAfterSeconds?: number;
}

/** Every reply a peer can send. */
export type PeerReply =
  | ReplicaGetReply
  | CoordinatePutReply
  | ReplicaPutReply
  | HandoffHeldReply
  | SwimAck
  | SwimNack
  | SwimDigestReply
  | SwimDone
  | ClusterStateReply
  | ErrorReply
  | ObjectPageReply
  | AntiEntropyKeysReply
  | AntiEntropyPushReply
  | ListKeysReply
  | DataTypeUpdateReply
  | AntiEntropySummaryReply
  | AntiEntropyLeavesReply
  | AntiEntropyDigestReply
  | AntiEntropyReapReply
  | PaxosReply
  | PaxosKeysReply
  | ForwardPutReply
  | WatchPollReply;
