import { encodeDataKey, partitionOfPosition } from '../core/keys.js';
import { type Ring, preferenceList } from '../core/ring/ring.js';
import { isDeleted } from '../core/versioning/versioned-object.js';
import type { ListKeysReply, ListKeysRequest, PeerReply, PeerRequest } from '../core/wire/messages.js';
import { KvError } from '../util/errors.js';
import type { BucketIndex } from './bucket-index.js';
import type { Replica } from './replica.js';

/**
 * Key listing as a coverage query (Riak's coverage plan for 2i and list-keys): every partition is
 * asked once, of the first live replica in its preference list (this node first when it is one),
 * each chosen node answers its live keys of those partitions from its bucket index in byte order
 * after the cursor, and the coordinator merges the answers in byte order.
 */

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
 * How many index entries a node reads per page, at most, as a multiple of the page size: dead
 * entries (tombstones) and keys of partitions asked of another node are skipped, and this bound
 * keeps a page's work bounded when many of them lie in a row (the page then ends early, with a
 * cursor).
 */
export const scanBudgetFactor = 4;

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

/** Serves one node's part of a listing from its bucket index. */
export async function answerListKeys(deps: ListResponderDependencies, request: ListKeysRequest): Promise<ListKeysReply> {
  const wanted = new Set(request.partitions);
  const partitionCount = deps.partitionCount();
  const budget = request.limit * scanBudgetFactor;
  const keys: string[] = [];
  let scannedTo = request.after ?? '';
  let read = 0;
  for await (const entry of deps.index.entries(request.bucket, { ...(request.after === null ? {} : { after: request.after }), prefix: request.prefix, budget })) {
    read += 1;
    scannedTo = entry.key;
    if (!entry.live || !wanted.has(partitionOfPosition(entry.position, partitionCount))) continue;
    // The entry may say live after a crash between its update and the data's (bucket-index.ts):
    // the stored object decides. This is also where an expired value reads as deleted.
    const object = await deps.replica.readByDataKey(encodeDataKey(request.bucket, entry.key));
    // Data types (/dt) share the bucket's index but are not its plain keys.
    if (object === undefined || isDeleted(object) || object.kind !== undefined) continue;
    keys.push(entry.key);
    if (keys.length >= request.limit) return { type: 'list-keys-reply', keys, more: true, scannedTo: entry.key };
  }
  return { type: 'list-keys-reply', keys, more: read >= budget, scannedTo };
}

/** What the coordinator of a listing needs from its node. */
export interface ListCoordinatorDependencies {
  readonly selfId: string;
  readonly ring: Ring;
  readonly nVal: number;
  readonly isUp: (node: string) => boolean;
  readonly send: (node: string, request: PeerRequest, timeoutMs: number) => Promise<PeerReply>;
  readonly timeoutMs: number;
}

/** For each partition, the node asked for it: this node when it is a replica, else the first live one. */
export function coveragePlan(ring: Ring, nVal: number, selfId: string, isUp: (node: string) => boolean): { byNode: Map<string, number[]>; unavailable: number[] } {
  const byNode = new Map<string, number[]>();
  const unavailable: number[] = [];
  for (let partition = 0; partition < ring.partitionCount; partition++) {
    const replicas = preferenceList(ring, partition, nVal);
    const chosen = replicas.includes(selfId) ? selfId : replicas.find((node) => isUp(node));
    if (chosen === undefined) unavailable.push(partition);
    else byNode.set(chosen, [...(byNode.get(chosen) ?? []), partition]);
  }
  return { byNode, unavailable };
}

/**
 * Merges the nodes' answers into one page. A node that said `more` may hold keys after its
 * `scannedTo`, so the page stops at the smallest such position (the frontier): every key up to it
 * is known from every node, so no later page can hold a key before the cursor.
 */
export function mergePages(replies: readonly ListKeysReply[], limit: number): ListPage {
  const frontiers = replies.filter((reply) => reply.more).map((reply) => reply.scannedTo);
  const frontier = frontiers.length === 0 ? undefined : frontiers.reduce((low, key) => (compareKeys(key, low) < 0 ? key : low));
  const candidates = replies
    .flatMap((reply) => reply.keys)
    .filter((key) => frontier === undefined || compareKeys(key, frontier) <= 0)
    .sort(compareKeys);
  const keys = candidates.filter((key, index) => index === 0 || key !== candidates[index - 1]).slice(0, limit);
  if (keys.length === limit && (candidates.length > limit || frontier !== undefined)) return { keys, next: keys[keys.length - 1]! };
  if (frontier !== undefined) return { keys, next: frontier };
  return { keys, next: null };
}

/**
 * One page of a coverage listing. A partition whose chosen replica does not answer within the
 * deadline (or that has no live replica) fails the page with 503 KV_INSUFFICIENT_REPLICAS naming
 * the partitions, rather than answering a page that silently lacks their keys.
 */
export async function listKeys(deps: ListCoordinatorDependencies, query: ListQuery): Promise<ListPage> {
  const plan = coveragePlan(deps.ring, deps.nVal, deps.selfId, deps.isUp);
  const missing = [...plan.unavailable];
  const replies: ListKeysReply[] = [];
  await Promise.all(
    [...plan.byNode].map(async ([node, partitions]) => {
      const request: ListKeysRequest = { type: 'list-keys', bucket: query.bucket, partitions, after: query.after ?? null, prefix: query.prefix ?? '', limit: query.limit };
      try {
        const reply = await deps.send(node, request, deps.timeoutMs);
        if (reply.type === 'list-keys-reply') replies.push(reply);
        else missing.push(...partitions);
      } catch {
        missing.push(...partitions);
      }
    }),
  );
  if (missing.length > 0) {
    missing.sort((left, right) => left - right);
    throw new KvError(
      'KV_INSUFFICIENT_REPLICAS',
      `the listing did not hear from a replica of ${missing.length} of ${deps.ring.partitionCount} partitions (${missing.slice(0, 16).join(', ')}${missing.length > 16 ? ', ...' : ''}) within ${deps.timeoutMs} ms; retry the same page (same cursor) once those nodes are back`,
      { details: { partitions: missing }, retryAfterSeconds: 1 },
    );
  }
  return mergePages(replies, query.limit);
}
