import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { CausalContext } from '../core/versioning/context.js';
import type { Precondition } from '../core/versioning/preconditions.js';
import type { VersionedObject } from '../core/versioning/versioned-object.js';
import type { StorageStats } from '../ports/storage.js';
import type { RepairProgress } from './anti-entropy.js';
import type { BackupDescription, BackupRecord, RestoreOutcome } from './backup-format.js';
import type { BucketProperties, QuorumSetting } from '../config/schema.js';
import type { ListPage, ListQuery } from './key-listing.js';
import type { DataTypeUpdate, DataTypeValue } from '../core/datatypes/data-type.js';
import type { WriteCondition } from '../core/consensus/compare-and-set.js';
import type { ConsistentValue } from '../core/consensus/consistent-value.js';
import type { LeaseKey } from '../core/leases/lease-record.js';
import type { WatchFilter } from '../core/watch/watch-cursor.js';
import type { WatchStream } from './watches.js';

/** Per-request read parameters (already validated at the HTTP edge). */
export interface ReadOptions {
  readonly r?: QuorumSetting;
  readonly pr?: QuorumSetting;
  readonly timeoutMs?: number;
}

/** Per-request write parameters (already validated at the HTTP edge). */
export interface WriteOptions {
  readonly w?: QuorumSetting;
  readonly pw?: QuorumSetting;
  readonly dw?: QuorumSetting;
  readonly timeoutMs?: number;
}

/** A client write. */
export interface PutCommand {
  readonly bucket: string;
  readonly key: string;
  readonly value: Uint8Array;
  readonly contentType: string;
  /** The causal context from an earlier read or write; undefined for a blind write. */
  readonly context: CausalContext | undefined;
  readonly options: WriteOptions;
  /** A conditional write (If-None-Match / If-Match); its context comes from the version it matched. */
  readonly precondition?: Precondition;
  /** Seconds until the value expires (1..maxTtlSeconds, validated at the edge); absent: the bucket's ttlSeconds. */
  readonly ttlSeconds?: number;
}

/** A client delete. */
export interface DeleteCommand {
  readonly bucket: string;
  readonly key: string;
  readonly context: CausalContext | undefined;
  readonly options: WriteOptions;
}

/**
 * What a coordinated write answers: the context to hand its writer. It covers what the writer had
 * seen plus the one dot its write created, never the concurrent siblings the write left in place
 * (docs/ARCHITECTURE.md#contexts-are-safe-to-write-back).
 */
export interface WriteOutcome {
  readonly context: CausalContext;
}

/** A linearizable operation on a key of a consistent bucket: a read, or a write (null value: a delete) under a condition. */
export type ConsistentCommand =
  { readonly kind: 'read' } | { readonly kind: 'write'; readonly value: ConsistentValue | null; readonly condition: WriteCondition };

/**
 * A consistent key's state after the operation: its version (the fencing token, grows with every
 * write, deletes included; 0 before the first) and its value (null: absent).
 */
export interface ConsistentOutcome {
  readonly version: number;
  readonly value: ConsistentValue | null;
}

/** A granted or kept-alive lease. */
export interface LeaseGrant {
  readonly id: string;
  readonly ttlSeconds: number;
}

/** What GET /leases/{id} answers. */
export interface LeaseDescription extends LeaseGrant {
  /** Keep-alives that succeeded since the grant. */
  readonly keepAlives: number;
  /** The keys attached (a key rewritten without the lease since may be listed until the list is pruned). */
  readonly keys: readonly LeaseKey[];
  /** Seconds before this node's sweeper may end the lease, when this node is the one watching it. */
  readonly remainingSeconds?: number;
}

/** Leases and ephemeral keys (src/engine/leases.ts; README, "Leases and ephemeral keys"). */
export interface LeaseService {
  /** A new lease of `ttlSeconds`. */
  grant(ttlSeconds: number): Promise<LeaseGrant>;
  /** Restarts the lease's ttl; KV_LEASE_NOT_FOUND once it ended. */
  keepAlive(id: string): Promise<LeaseGrant>;
  /** Ends the lease now: its keys are deleted, then it. */
  revoke(id: string): Promise<void>;
  /** The lease's record. */
  describe(id: string): Promise<LeaseDescription>;
  /** A consistent write of a key attached to the lease: the key is deleted when the lease ends. */
  put(bucket: string, key: string, value: ConsistentValue, condition: WriteCondition, leaseId: string, timeoutMs?: number): Promise<ConsistentOutcome>;
}

/** A data type update's options: a write's, and the r of the read a remove makes first. */
export type DataTypeWriteOptions = WriteOptions & { readonly r?: ReadOptions['r'] };

/** What the HTTP layer needs for /dt: reads and updates of counters and sets (src/engine/data-types.ts). */
export interface DataTypeService {
  /** A coordinated read of r replicas (with read repair); undefined when the key holds no data type. */
  read(bucket: string, key: string, options: ReadOptions): Promise<DataTypeValue | undefined>;
  /** A coordinated update: applied at one replica, then replicated with w like a write. */
  update(bucket: string, key: string, update: DataTypeUpdate, options: DataTypeWriteOptions): Promise<void>;
}

/** One member as /status shows it. */
export interface MemberStatus {
  readonly id: string;
  readonly address: string;
  readonly status: 'joining' | 'up' | 'down' | 'leaving';
  readonly generation: number;
  readonly partitionsOwned: number;
  /** The host the member runs on, as the ring places it (its own id when unlabelled). */
  readonly host: string;
  /** The member's zone, when labelled. */
  readonly zone?: string;
  /** What this node's SWIM holds of the member: alive, suspect, dead, left or removed. */
  readonly membership?: string;
}

/** What GET /status answers. */
export interface NodeStatus {
  readonly node: { readonly id: string; readonly address: string; readonly generation: number; readonly startedAtMs: number };
  readonly members: readonly MemberStatus[];
  readonly partitionCount: number;
  readonly storage: StorageStats & { readonly keys: number };
  readonly hints: {
    readonly pending: number;
    readonly delivered: number;
    readonly expired: number;
    readonly dropped?: number;
    readonly byTarget?: Readonly<Record<string, number>>;
  };
  readonly [extra: string]: unknown;
}

/** What the HTTP layer needs from a node: the public operations, peer requests and admin. */
export interface KvService {
  readonly nodeId: string;
  /** Coordinated read; resolves to the merged object (undefined when no replica has the key). */
  get(bucket: string, key: string, options: ReadOptions): Promise<VersionedObject | undefined>;
  /** This node's own stored version, without coordination or read repair (`?local=true`). */
  getLocal(bucket: string, key: string): Promise<VersionedObject | undefined>;
  /** Coordinated write; resolves to the new object and the context its writer may send with its next write. */
  put(command: PutCommand): Promise<WriteOutcome>;
  /** Coordinated delete: writes a tombstone. */
  delete(command: DeleteCommand): Promise<WriteOutcome>;
  /**
   * A linearizable read or write of a key of a consistent bucket (one Paxos round on its
   * primaries, docs/CONSENSUS.md). A write whose condition fails is KV_PRECONDITION_FAILED with
   * `details.version`, the version it was judged on.
   */
  consistent(bucket: string, key: string, command: ConsistentCommand, timeoutMs?: number): Promise<ConsistentOutcome>;
  /** One page of the bucket's live keys in byte order (a coverage query over every partition). */
  list(query: ListQuery): Promise<ListPage>;
  /** Counters and sets (/dt), in a namespace of their own beside the bucket's plain keys. */
  readonly dataTypes: DataTypeService;
  /** Leases and the ephemeral keys attached to them (/leases, PUT /kv with ?lease). */
  readonly leases: LeaseService;
  /** Backup and restore (/admin/backup, /admin/restore); absent on a node without storage of its own (the HTTP tests' fake). */
  readonly backup?: BackupAdmin;
  /**
   * Starts a watch of a key or a prefix (GET /watch), from now or from the event id a client
   * received last; KV_OVERLOADED past watch.maxWatchers, KV_BAD_REQUEST for an id that is no watch's.
   */
  watch(filter: WatchFilter, resumeFrom?: string): WatchStream;
  /** The bucket's properties (defaults merged with its own). */
  bucketProperties(bucket: string): BucketProperties;
  /** This node's clock: it decides whether a version read here has expired. */
  nowMs(): number;
  /** Handles a request from a peer (already authenticated: src/http checks the cluster secret, the framed transport proves it). */
  handlePeer(request: PeerRequest): Promise<PeerReply>;
  status(): Promise<NodeStatus>;
  /** Compacts this node's storage (the whole data space, or a key range). */
  compact(start?: Uint8Array, end?: Uint8Array): Promise<void>;
  /** Starts an anti-entropy exchange of every partition now (`ringkv repair`). */
  repair(): RepairProgress;
  /** Progress of the last repair. */
  repairProgress(): RepairProgress;
  /** Starts decommissioning this node (`ringkv leave`). */
  leave(): Promise<{ status: string }>;
  /** Plans a node that is gone for good out of the ring (`ringkv remove`). */
  removeMember(nodeId: string): { status: string };
}

/** What the HTTP layer needs for backup and restore (src/engine/backup-service.ts). */
export interface BackupAdmin {
  /** The cluster as this node sees it, for a backup's manifest. */
  describe(): BackupDescription;
  /** Refuses (KvError) unless this node can back up the partition now under the given ring version. */
  checkPartition(partition: number, ringVersion: number | undefined, member?: string): void;
  /** The partition's backup file, as chunks. */
  partitionFile(partition: number, partitionCount: number): AsyncGenerator<Buffer>;
  /** Merges restored records into their keys' replicas with `options.w`. */
  restore(records: readonly BackupRecord[], options: WriteOptions): Promise<RestoreOutcome>;
}
