import type { ConflictMode, Dot, VersionedObject, WriteIntent } from '../versioning/versioned-object.js';

/**
 * Node-to-node messages. Each has a numeric tag in the binary encoding (src/core/wire/codec.ts);
 * tags are append-only so that nodes of different versions can still talk.
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

/** Exchange membership and ring state (the payload is the gossip state, opaque here). */
export interface GossipRequest {
  readonly type: 'gossip';
  readonly state: unknown;
}

/** Anti-entropy and handoff messages carry their own JSON-shaped payloads. */
export interface ControlRequest {
  readonly type: 'control';
  readonly operation: string;
  readonly payload: unknown;
}

/** Every request a peer can send. */
export type PeerRequest = ReplicaGetRequest | CoordinatePutRequest | ReplicaPutRequest | GossipRequest | ControlRequest;

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

/** A replica's answer to replica-put. */
export interface ReplicaPutReply {
  readonly type: 'replica-put-reply';
  readonly durable: boolean;
}

/** The answer to gossip: the receiver's state after merging. */
export interface GossipReply {
  readonly type: 'gossip-reply';
  readonly state: unknown;
}

/** The answer to a control request. */
export interface ControlReply {
  readonly type: 'control-reply';
  readonly payload: unknown;
}

/** A failure on the replica side, with a KV_* code. */
export interface ErrorReply {
  readonly type: 'error';
  readonly code: string;
  readonly message: string;
}

/** Every reply a peer can send. */
export type PeerReply = ReplicaGetReply | CoordinatePutReply | ReplicaPutReply | GossipReply | ControlReply | ErrorReply;
