/**
 * The one way a node lists the consistent keys of a partition that a Paxos round may have decided
 * (docs/CONSENSUS.md, "Backups" and "Leases"): the union of the acceptor keys (paxos-keys) of a
 * majority of the partition's replicas. A decided key has state on a majority of its replicas
 * (the round's quorum), and any majority meets it, so the union holds every decided key,
 * whichever minority missed it. A backup copies a partition's keys so; a lease sweeper finds the
 * lease records it sweeps so.
 */
import { preferenceList } from '../core/ring/ring.js';
import type { Ring } from '../core/ring/ring.js';
import { KvError } from '../util/errors.js';
import type { NodeContext } from './node-context.js';

/** Keys per page of a replica's listing of its acceptor keys (paxos-keys): what a listing holds of each replica's listing at once. */
const acceptorKeysPerPage = 256;

/** The replicas a listing of one partition reads, and when they are short of a majority, the group they fall short in. */
export interface ListingReplicas {
  readonly chosen: readonly string[];
  /** A replica group (of one of the n_vals asked for) of which fewer than a majority is up, with those up; undefined when none. */
  readonly short: { readonly group: readonly string[]; readonly up: readonly string[] } | undefined;
}

/**
 * The replicas to list `partition`'s consistent keys from: `selfId`, then the others `isUp` calls
 * up, in preference list order, until they hold a majority of the replicas of each of `nVals`.
 */
export function listingReplicas(ring: Ring, partition: number, nVals: readonly number[], selfId: string, isUp: (node: string) => boolean): ListingReplicas {
  const groups = nVals.map((nVal) => preferenceList(ring, partition, nVal));
  const majority = (group: readonly string[]): number => Math.floor(group.length / 2) + 1;
  const chosen: string[] = [];
  const short = (): string[][] => groups.filter((group) => chosen.filter((node) => group.includes(node)).length < majority(group));
  const candidates = preferenceList(ring, partition, Math.max(...nVals)).filter((node) => node !== selfId && isUp(node));
  for (const node of [selfId, ...candidates]) {
    if (short().some((group) => group.includes(node))) chosen.push(node);
  }
  const missing = short();
  const group = missing[missing.length - 1];
  return { chosen, short: group === undefined ? undefined : { group, up: group.filter((node) => chosen.includes(node)) } };
}

/**
 * The keys of `partition` that `node` holds acceptor state of, in storage order, a page at a time
 * (paxos-keys; this node's own through the same request). A replica that does not answer fails
 * the listing (KV_INSUFFICIENT_REPLICAS).
 */
async function* acceptorKeys(send: NodeContext['send'], node: string, partition: number): AsyncGenerator<Buffer> {
  let after: Uint8Array | null = null;
  for (;;) {
    let reply;
    try {
      reply = await send(node, { type: 'paxos-keys', partition, after, maxKeys: acceptorKeysPerPage });
    } catch (error) {
      throw new KvError(
        'KV_INSUFFICIENT_REPLICAS',
        `partition ${partition}: replica ${node} did not answer the listing of its consistent keys (${error instanceof Error ? error.message : String(error)}); they are listed from a majority of their replicas: try again once ${node} answers`,
        { details: { partitions: [partition] }, retryAfterSeconds: 5 },
      );
    }
    if (reply.type !== 'paxos-keys-reply') throw new KvError('KV_PEER_UNREACHABLE', `node ${node} answered ${reply.type} to paxos-keys`);
    for (const key of reply.keys) yield Buffer.from(key);
    if (reply.done || reply.keys.length === 0) return;
    after = reply.keys[reply.keys.length - 1]!;
  }
}

/**
 * Merges ascending streams of storage keys into one ascending stream, each key once; holds one
 * key of each stream (and whatever page each stream holds), however long they are.
 */
export async function* mergeAscending(streams: readonly AsyncIterator<Buffer>[]): AsyncGenerator<Buffer> {
  const heads = await Promise.all(streams.map(async (stream) => stream.next()));
  for (;;) {
    let low: Buffer | undefined;
    for (const head of heads) if (head.done !== true && (low === undefined || Buffer.compare(head.value, low) < 0)) low = head.value;
    if (low === undefined) return;
    yield low;
    await Promise.all(
      heads.map(async (head, index) => {
        if (head.done !== true && head.value.equals(low)) heads[index] = await streams[index]!.next();
      }),
    );
  }
}

/** The storage keys of `partition` that the `replicas` (listingReplicas' choice) hold acceptor state of, ascending, each once, a page per replica in memory. */
export function consistentKeys(send: NodeContext['send'], replicas: readonly string[], partition: number): AsyncGenerator<Buffer> {
  return mergeAscending(replicas.map((node) => acceptorKeys(send, node, partition)));
}
