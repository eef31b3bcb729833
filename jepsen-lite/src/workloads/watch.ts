/**
 * The watch workload: workers write unique values (integers) to a few keys of a consistent
 * bucket with plain PUTs; each acknowledged write has the key's version (`x-ringkv-version`).
 * Meanwhile watchers follow the keys the way the README tells users, through the client
 * library's `watch()`: one watcher per key and one on the prefix of all of them. Every few
 * seconds (a seeded draw) each watcher drops its connection and resumes with the id of the last
 * event it received on a node drawn at random; the nemesis forces more reconnections (a killed
 * or paused node, a cut link), which the client library handles by itself. Every event a watcher
 * receives is recorded in the history (process `watch-N`), so the watch checker can compare what
 * each watcher saw with the acknowledged writes and the final reads, and `--check` can judge a
 * stored run again. Watchers run until they have seen the final reads' versions (or a bound).
 */
import type { RingClient, StoredValue, WatchEvent } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { SeededRandom } from '../../../src/sim/seeded-random.js';
import type { HistoryRecorder } from '../history.js';
import { consistentWriteFailure } from './cas-register.js';
import { type Completion, type PlannedOperation, type Workload } from './workload.js';

/** Settings of the watch workload. */
export interface WatchWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** The seed of the watchers' reconnection draws. */
  readonly seed: number;
}

/** What a watcher records for one event (the history's value of a `watch-event`). */
export interface WatchRecord {
  readonly event: 'ready' | 'put' | 'delete' | 'compacted';
  readonly key?: string;
  readonly version?: number;
  /** A put's value (the integer written). */
  readonly value?: number;
  /** A compacted's nodes, and for a consistent key the versions missing. */
  readonly nodes?: readonly string[];
  readonly missing?: { readonly from: number; readonly to: number };
}

/** A consistent key's state as the final reads record it. */
export interface VersionedRead {
  readonly version: number;
  readonly value: number | null;
}

/** Running watchers; `stop` ends them once they have seen `until` (key → version) or after `boundMs`. */
export interface Background {
  stop(until: ReadonlyMap<string, number>, boundMs: number): Promise<void>;
}

/** The shortest and longest time a watcher stays on one connection before it resumes elsewhere. */
const minStayMs = 2000;
const maxStayMs = 6000;

/** The watch workload. */
export class WatchWorkload implements Workload {
  readonly name = 'watch';
  readonly bucket = 'jepsen-watch';
  private readonly writesByWorker = new Map<number, number>();

  constructor(private readonly options: WatchWorkloadOptions) {}

  plan(worker: number, random: Random): PlannedOperation {
    const count = this.writesByWorker.get(worker) ?? 0;
    this.writesByWorker.set(worker, count + 1);
    return { f: 'write', key: `key${random.int(this.options.keyCount)}`, value: worker + count * this.options.concurrency };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation): Promise<Completion> {
    try {
      const written = await client.put(this.bucket, operation.key, JSON.stringify(operation.value), { node, contentType: 'application/json' });
      return { type: 'ok', value: { value: operation.value, version: written.version ?? null } };
    } catch (error) {
      return consistentWriteFailure(error);
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `key${index}`);
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return siblings.map((sibling) => JSON.parse(sibling.value.toString('utf8')) as number);
  }

  /** A key's version and value through `node` (a linearizable read), for the final reads. */
  async readValue(client: RingClient, node: string, key: string): Promise<unknown> {
    const read = await client.get(this.bucket, key, { node });
    const values = this.decode(read.siblings) as number[];
    return { version: read.version ?? 0, value: values[0] ?? null } satisfies VersionedRead;
  }

  /**
   * Starts the watchers: one per key and one on the prefix `key`, each recording what it
   * receives as `watch-event` entries of process `watch-N`, and `watch-resume` when it drops its
   * connection to resume with its last id on another node.
   */
  startWatchers(client: RingClient, nodes: readonly string[], history: HistoryRecorder): Background {
    const targets: (string | { prefix: string })[] = [...this.finalKeys(), { prefix: 'key' }];
    const random = new SeededRandom(this.options.seed * 7919 + 17);
    const latest = targets.map(() => new Map<string, number>());
    let stopping = false;
    const runs = targets.map(async (target, watcher) => {
      const process = `watch-${watcher}` as const;
      let lastId: string | undefined;
      let ready = false;
      history.record({ type: 'ok', process, f: 'watch-start', value: typeof target === 'string' ? { key: target } : { prefix: target.prefix } });
      while (!stopping) {
        const node = nodes[random.int(nodes.length)] as string;
        const stay = new AbortController();
        const timer = setTimeout(() => stay.abort(), minStayMs + random.int(maxStayMs - minStayMs));
        try {
          for await (const event of client.watch(this.bucket, target, {
            node,
            signal: stay.signal,
            reconnectDelayMs: 200,
            ...(lastId === undefined ? {} : { lastEventId: lastId }),
          })) {
            lastId = event.id;
            // Only the first ready marks when the watcher began: a resume goes on from its id. Writes
            // may arrive before it (from the nodes that answered first), and they do not count as it.
            if (event.type === 'ready') {
              if (ready) continue;
              ready = true;
            }
            const record = recordOf(event);
            if (record.version !== undefined && record.key !== undefined)
              latest[watcher]!.set(record.key, Math.max(record.version, latest[watcher]!.get(record.key) ?? 0));
            history.record({ type: 'ok', process, f: 'watch-event', node, ...(record.key === undefined ? {} : { key: record.key }), value: record });
          }
        } catch (error) {
          history.record({ type: 'info', process, f: 'watch-error', node, error: String(error).slice(0, 300) });
        } finally {
          clearTimeout(timer);
        }
        if (!stopping) history.record({ type: 'ok', process, f: 'watch-resume', node });
      }
    });
    const stopAll = async (): Promise<void> => {
      stopping = true;
      await Promise.all(runs);
    };
    return {
      stop: async (until, boundMs) => {
        const deadline = Date.now() + boundMs;
        const caughtUp = (): boolean =>
          targets.every((target, watcher) =>
            [...until].every(([key, version]) => (typeof target === 'string' && target !== key) || (latest[watcher]!.get(key) ?? 0) >= version),
          );
        // Watchers run until they have seen the final versions (a wait for a condition, bounded).
        while (!caughtUp() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
        // Each watcher ends at its next reconnection, at most maxStayMs away.
        await stopAll();
      },
    };
  }
}

/** What the history records of one event. */
function recordOf(event: WatchEvent): WatchRecord {
  switch (event.type) {
    case 'ready':
      return { event: 'ready' };
    case 'put':
      return {
        event: 'put',
        key: event.key,
        ...(event.version === undefined ? {} : { version: event.version }),
        value: JSON.parse(event.value.toString('utf8')) as number,
      };
    case 'delete':
      return { event: 'delete', key: event.key, ...(event.version === undefined ? {} : { version: event.version }) };
    case 'compacted':
      return {
        event: 'compacted',
        nodes: event.nodes,
        ...(event.key === undefined ? {} : { key: event.key }),
        ...(event.missing === undefined ? {} : { missing: event.missing }),
      };
    case 'update':
      // Only a watch that asked for data types (`dataTypes`) gets updates; this workload never does.
      throw new Error(`the watch workload got a data type update of key ${event.key}, which it never asks for`);
  }
}
