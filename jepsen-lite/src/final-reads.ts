/**
 * The end of a run, after every fault is healed: wait for hints to drain, let a quiet period
 * pass, read every key with r=all, then read each key's own copy on each of its primaries for
 * the convergence checker. Reads are retried a few times, since a node that just came back may
 * answer 503 until gossip has caught up.
 */
import { RingClientError, type RingClient } from '../../src/client/ring-client.js';
import { partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import type { Cluster, NodeStatusView } from './cluster.js';
import type { HistoryRecorder, Process } from './history.js';
import { delay, waitFor } from './wait.js';
import type { Workload } from './workloads/workload.js';

/** Settings of the final phase. */
export interface FinalReadOptions {
  /** n_val of the workload's bucket. */
  readonly nVal: number;
  /** Final reads in flight at once (a bounded fan-out). */
  readonly parallelism?: number;
  /** Attempts per final read. */
  readonly attempts?: number;
  /** How long replicas may take to agree after the final reads' read repair. */
  readonly convergenceDeadlineMs?: number;
}

/** Runs `task` over `items` with at most `parallelism` at once. */
export async function forEachBounded<T>(items: readonly T[], parallelism: number, task: (item: T, slot: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallelism, items.length) }, async (_, slot) => {
      while (next < items.length) {
        const item = items[next++] as T;
        await task(item, slot);
      }
    }),
  );
}

/**
 * Waits until no member has hints pending; returns undefined once drained, or, if `deadlineMs`
 * passed first, which member still holds hints for which target (by node name where known).
 */
export async function waitForHints(cluster: Cluster, deadlineMs: number): Promise<string | undefined> {
  let pending = '';
  try {
    await waitFor(
      'every node to have delivered its hints',
      deadlineMs,
      async () => {
        const holders: string[] = [];
        // Members only: a node that left has exited, and a removed one moves no data.
        // Every shard of a node at its own address (shard 0 at the node's shared port).
        for (const node of cluster.members) {
          for (const [shard, address] of node.memberAddresses.entries()) {
            const hints = (await cluster.statusAt(address)).hints;
            if (hints.pending === 0) continue;
            const targets = Object.entries(hints.byTarget ?? {}).map(([id, count]) => `${cluster.nameOf(id)} ${count}`);
            holders.push(`${node.name}${cluster.shards > 1 ? `.s${shard}` : ''} holds ${hints.pending} (${targets.join(', ')})`);
          }
        }
        pending = holders.join('; ');
        return holders.length === 0;
      },
      500,
    );
    return undefined;
  } catch {
    return pending === '' ? 'no answer from a member' : pending;
  }
}

function errorText(error: unknown): string {
  return error instanceof RingClientError ? `${error.code}: ${error.message}`.slice(0, 300) : String(error).slice(0, 300);
}

/** Reads every key of the workload with r=all, each attempt recorded as a `final-read` operation; returns each key's value as recorded. */
export async function finalReads(
  workload: Workload,
  client: RingClient,
  cluster: Cluster,
  history: HistoryRecorder,
  options: FinalReadOptions,
): Promise<Map<string, unknown>> {
  const addresses = cluster.memberAddresses;
  const attempts = options.attempts ?? 5;
  const values = new Map<string, unknown>();
  await forEachBounded(workload.finalKeys(), options.parallelism ?? 8, async (key, slot) => {
    const process: Process = `final-${slot}`;
    for (let attempt = 0; attempt < attempts; attempt++) {
      const node = addresses[(slot + attempt) % addresses.length] as string;
      history.record({ type: 'invoke', process, f: 'final-read', key, node, r: options.nVal });
      try {
        const value =
          workload.readValue !== undefined
            ? await workload.readValue(client, node, key)
            : workload.decode((await client.get(workload.bucket, key, { node, r: 'all' })).siblings);
        values.set(key, value);
        history.record({ type: 'ok', process, f: 'final-read', key, node, r: options.nVal, value });
        return;
      } catch (error) {
        history.record({ type: 'fail', process, f: 'final-read', key, node, r: options.nVal, error: errorText(error) });
        await delay(1000);
      }
    }
  });
  return values;
}

/**
 * Reads each key's own copy on each of its primaries (from the ring in /status), again and again
 * while they disagree with each other or with the final read, up to the convergence deadline: read repair from the r=all reads is
 * asynchronous, and anti-entropy runs on its own interval. Every attempt is a `local-read` in the
 * history; the convergence checker judges the last one per replica.
 */
export async function localReads(
  workload: Workload,
  client: RingClient,
  cluster: Cluster,
  history: HistoryRecorder,
  finalValues: ReadonlyMap<string, unknown>,
  options: FinalReadOptions,
): Promise<void> {
  const status = await waitFor<NodeStatusView>('a ring in /status', 10_000, async () => {
    for (const node of cluster.members) {
      const view = await cluster.status(node).catch(() => undefined);
      if (view?.ring !== null && view?.ring !== undefined) return view;
    }
    return undefined;
  });
  const ring = status.ring as NonNullable<NodeStatusView['ring']>;
  const addressOf = new Map(status.members.map((member) => [member.id, member.address]));
  // The members' placement (host, zone) as /status shows it, so the preference list is the one the
  // nodes use: with hosts of several shards, placement skips a second shard of a host already chosen.
  const locations = Object.fromEntries(
    status.members.map((member) => [member.id, { host: member.host ?? member.id, ...(member.zone === undefined ? {} : { zone: member.zone }) }]),
  );
  const ringForPlacement = { partitionCount: ring.owners.length, owners: ring.owners, version: 0, next: null, locations };
  const deadline = Date.now() + (options.convergenceDeadlineMs ?? 15_000);
  await forEachBounded(workload.finalKeys(), options.parallelism ?? 8, async (key, slot) => {
    const process: Process = `final-${slot}`;
    // A workload read through readValue (the data types) has no local read: ask every member instead.
    const primaries =
      workload.readValue !== undefined
        ? cluster.memberAddresses
        : preferenceList(ringForPlacement, partitionOf(workload.bucket, key, ring.owners.length), options.nVal).map((id) => addressOf.get(id) ?? id);
    for (;;) {
      const seen = new Set<string>();
      for (const node of primaries) {
        history.record({ type: 'invoke', process, f: 'local-read', key, node });
        try {
          // A local read asks one member for its own copy: on the member's own connection (a shard behind a shared port, see memberClient).
          const value =
            workload.readValue !== undefined
              ? await workload.readValue(client, node, key)
              : workload.decode((await (await cluster.memberClient(node)).get(workload.bucket, key, { node, local: true })).siblings);
          seen.add(JSON.stringify(value));
          history.record({ type: 'ok', process, f: 'local-read', key, node, value });
        } catch (error) {
          seen.add('no answer');
          history.record({ type: 'fail', process, f: 'local-read', key, node, error: errorText(error) });
        }
      }
      const agreed = seen.size === 1 && !seen.has('no answer') && finalValues.has(key) && seen.has(JSON.stringify(finalValues.get(key)));
      if (agreed || Date.now() >= deadline) return;
      await delay(500);
    }
  });
}
