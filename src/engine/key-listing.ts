import { encodeDataKey, partitionOfPosition } from '../core/keys.js';
import { resolveQuorum } from '../core/quorum/quorum.js';
import { type Ring, preferenceList } from '../core/ring/ring.js';
import { encodeObject } from '../core/versioning/object-codec.js';
import { type ConflictMode, type VersionedObject, isDeleted, mergeObjects } from '../core/versioning/versioned-object.js';
import type { ListKeysReply, ListKeysRequest, ListedKey, PeerReply, PeerRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import type { BucketIndex } from './bucket-index.js';
import type { Replica } from './replica.js';

/**
 * Key listing as a coverage query (Riak's coverage plan for 2i and list-keys), read at a quorum:
 * every partition is asked of `listingReplicaCount(n_val)` of its live replicas (this node first
 * when it is one). Each chosen node answers its keys of those partitions from its bucket index in
 * byte order after the cursor, deleted ones too, each with its version (without values); the
 * coordinator merges each key's versions as a read does and lists the keys whose merged version
 * is live on its clock. So a key written at w, or deleted at w, with w + r > n_val is seen as such
 * by at least one of the replicas asked, as a quorum read would see it (Dynamo's R + W > N).
 */

/**
 * How many replicas of each partition a listing reads: a quorum of the bucket's n_val, the
 * default `r` of a read, so a listing sees every write and delete acknowledged at a quorum.
 */
export function listingReplicaCount(nVal: number): number {
  return resolveQuorum('quorum', nVal);
}

/** A listing request, validated at the edge. */
export interface ListQuery {
  readonly bucket: string;
  /** Only keys after this one (exclusive); the `next` of the previous page. */
  readonly after?: string;
  readonly prefix?: string;
  /** Keys per page, 1..10,000. */
  readonly limit: number;
  readonly timeoutMs?: number;
}

/** One page of a listing. */
export interface ListPage {
  readonly keys: readonly string[];
  /** The cursor of the next page (pass it as `after`), or null when the listing is complete. */
  readonly next: string | null;
}

/**
 * How many index entries a node reads per page, at most, as a multiple of the page size: keys of
 * partitions asked of another node are skipped, and this bound keeps a page's work bounded when
 * many of them lie in a row (the page then ends early, with a cursor).
 */
export const scanBudgetFactor = 4;

/**
 * The most bytes of versions one node's answer carries (a key's version holds its clock and
 * siblings' metadata, one clock entry per writing node and up to limits.maxSiblings siblings); past it the
 * page ends early, with a cursor, so an answer stays far below the peer frame cap.
 */
export const maxListReplyBytes = 4 * 1024 * 1024;

/** What a node's part of a listing needs. */
export interface ListResponderDependencies {
  readonly index: BucketIndex;
  readonly replica: Replica;
  readonly partitionCount: () => number;
}

/** Compares keys in byte order of their UTF-8 encoding (the order of the index). */
export function compareKeys(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left, 'utf8'), Buffer.from(right, 'utf8'));
}

/** A stored object's version without its values: what a listing merges (see ListedKey). */
export function versionOnly(object: VersionedObject): VersionedObject {
  const empty = new Uint8Array(0);
  return { ...object, siblings: object.siblings.map((sibling) => ({ ...sibling, value: empty, contentType: '' })) };
}

/** Serves one node's part of a listing from its bucket index: its keys of the partitions asked, live or deleted, with their versions. */
export async function answerListKeys(deps: ListResponderDependencies, request: ListKeysRequest): Promise<ListKeysReply> {
  const wanted = new Set(request.partitions);
  const partitionCount = deps.partitionCount();
  const budget = request.limit * scanBudgetFactor;
  const entries: ListedKey[] = [];
  let replyBytes = 0;
  let scannedTo = request.after ?? '';
  let read = 0;
  for await (const entry of deps.index.entries(request.bucket, {
    ...(request.after === null ? {} : { after: request.after }),
    prefix: request.prefix,
    budget,
  })) {
    read += 1;
    scannedTo = entry.key;
    if (!wanted.has(partitionOfPosition(entry.position, partitionCount))) continue;
    // Dead entries (tombstones) are answered too: another replica asked may have missed the
    // delete, and only the merge of the versions tells which one is newer. The stored object
    // decides, not the entry, which may say live after a crash (bucket-index.ts).
    const object = await deps.replica.readByDataKey(encodeDataKey(request.bucket, entry.key));
    // Data types (/dt) share the bucket's index but are not its plain keys.
    if (object === undefined || object.kind !== undefined) continue;
    const version = versionOnly(object);
    entries.push({ key: entry.key, version });
    replyBytes += Buffer.byteLength(entry.key, 'utf8') + encodeObject(version).length;
    if (entries.length >= request.limit || replyBytes >= maxListReplyBytes) return { type: 'list-keys-reply', entries, more: true, scannedTo: entry.key };
  }
  return { type: 'list-keys-reply', entries, more: read >= budget, scannedTo };
}

/** What the coordinator of a listing needs from its node. */
export interface ListCoordinatorDependencies {
  readonly selfId: string;
  readonly ring: Ring;
  readonly nVal: number;
  /** The bucket's conflict mode: each key's versions merge as its reads merge them. */
  readonly mode: ConflictMode;
  /** This node's clock now: expiry is judged on it, as a read through this node judges it. */
  readonly nowMs: number;
  readonly isUp: (node: string) => boolean;
  readonly send: (node: string, request: PeerRequest, timeoutMs: number) => Promise<PeerReply>;
  readonly timeoutMs: number;
}

/**
 * For each partition, the `replicaCount` replicas asked for it: this node first when it is one,
 * then the live ones in preference list order. A partition with fewer live replicas is unavailable.
 */
export function coveragePlan(
  ring: Ring,
  nVal: number,
  replicaCount: number,
  selfId: string,
  isUp: (node: string) => boolean,
): { byNode: Map<string, number[]>; unavailable: number[] } {
  const byNode = new Map<string, number[]>();
  const unavailable: number[] = [];
  for (let partition = 0; partition < ring.partitionCount; partition++) {
    const replicas = preferenceList(ring, partition, nVal);
    const live = replicas.filter((node) => node !== selfId && isUp(node));
    const chosen = (replicas.includes(selfId) ? [selfId, ...live] : live).slice(0, replicaCount);
    if (chosen.length < replicaCount) unavailable.push(partition);
    else for (const node of chosen) byNode.set(node, [...(byNode.get(node) ?? []), partition]);
  }
  return { byNode, unavailable };
}

/**
 * Merges the nodes' answers into one page. A node that said `more` may hold keys after its
 * `scannedTo`, so the page stops at the smallest such position (the frontier): every key up to it
 * is known from every node asked, so no later page can hold a key before the cursor. Each key's
 * versions from the replicas asked are merged (`mode`), and the key is listed when the merged
 * version is live at `nowMs`: a replica that missed a write or a delete is outvoted exactly as
 * in a read.
 */
export function mergePages(replies: readonly ListKeysReply[], limit: number, mode: ConflictMode, nowMs: number): ListPage {
  const frontiers = replies.filter((reply) => reply.more).map((reply) => reply.scannedTo);
  const frontier = frontiers.length === 0 ? undefined : frontiers.reduce((low, key) => (compareKeys(key, low) < 0 ? key : low));
  const versions = new Map<string, VersionedObject>();
  for (const entry of replies.flatMap((reply) => reply.entries)) {
    if (frontier !== undefined && compareKeys(entry.key, frontier) > 0) continue;
    const known = versions.get(entry.key);
    versions.set(entry.key, known === undefined ? entry.version : mergeObjects(known, entry.version, mode));
  }
  const candidates = [...versions]
    .filter(([, version]) => !isDeleted(version, nowMs))
    .map(([key]) => key)
    .sort(compareKeys);
  const keys = candidates.slice(0, limit);
  if (keys.length === limit && (candidates.length > limit || frontier !== undefined)) return { keys, next: keys[keys.length - 1]! };
  if (frontier !== undefined) return { keys, next: frontier };
  return { keys, next: null };
}

/**
 * One page of a coverage listing. A partition with fewer than `listingReplicaCount` live
 * replicas, or one of whose chosen replicas does not answer within the deadline, fails the page
 * with 503 KV_INSUFFICIENT_REPLICAS naming the partitions, rather than answering a page that
 * silently lacks their keys or shows keys deleted at a quorum.
 */
export async function listKeys(deps: ListCoordinatorDependencies, query: ListQuery): Promise<ListPage> {
  const replicaCount = listingReplicaCount(deps.nVal);
  const plan = coveragePlan(deps.ring, deps.nVal, replicaCount, deps.selfId, deps.isUp);
  const missing = new Set(plan.unavailable);
  const replies: ListKeysReply[] = [];
  await Promise.all(
    [...plan.byNode].map(async ([node, partitions]) => {
      const request: ListKeysRequest = {
        type: 'list-keys',
        bucket: query.bucket,
        partitions,
        after: query.after ?? null,
        prefix: query.prefix ?? '',
        limit: query.limit,
      };
      try {
        const reply = await deps.send(node, request, deps.timeoutMs);
        if (reply.type === 'list-keys-reply') replies.push(reply);
        else for (const partition of partitions) missing.add(partition);
      } catch {
        for (const partition of partitions) missing.add(partition);
      }
    }),
  );
  if (missing.size > 0) {
    const partitions = [...missing].sort((left, right) => left - right);
    throw new KvError(
      'KV_INSUFFICIENT_REPLICAS',
      `the listing did not hear from ${replicaCount} of the ${deps.nVal} replicas of ${partitions.length} of ${deps.ring.partitionCount} partitions (${partitions.slice(0, 16).join(', ')}${partitions.length > 16 ? ', ...' : ''}) within ${deps.timeoutMs} ms; retry the same page (same cursor) once those nodes are back`,
      { details: { partitions }, retryAfterSeconds: 1 },
    );
  }
  return mergePages(replies, query.limit, deps.mode, deps.nowMs);
}
