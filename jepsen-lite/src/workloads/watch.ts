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
 *
 * On a plain bucket (`--bucket plain`; data types exist only there) the workload is about data
 * type updates instead: workers increment counters (`c0`…) by 1 through `client.dt.increment`, and
 * the watchers follow them with `dataTypes: true`, recording each `update` event's dot. A counter
 * of +1 increments counts the updates applied to it, so its final read says how many distinct
 * dots every watcher must have received (src/checkers/watch-data-types.ts).
 */
import type { RingClient, StoredValue, WatchEvent } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { SeededRandom } from '../../../src/sim/seeded-random.js';
import type { HistoryRecorder } from '../history.js';
import { consistentWriteFailure } from './cas-register.js';
import { type Completion, type PlannedOperation, type Workload, writeFailure } from './workload.js';

/** Settings of the watch workload. */
export interface WatchWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** The seed of the watchers' reconnection draws. */
  readonly seed: number;
  /** Counters on a plain bucket, watched with `dataTypes: true`, instead of plain writes to a consistent bucket. */
  readonly dataTypes: boolean;
}

/** What a watcher records for one event (the history's value of a `watch-event`). */
export interface WatchRecord {
  readonly event: 'ready' | 'put' | 'delete' | 'update' | 'compacted';
  readonly key?: string;
  readonly version?: number;
  /** A put's value (the integer written); an update's counter value on the replica that applied it. */
  readonly value?: number;
  /** An update's dot, as `actor:counter`. */
  readonly dot?: string;
  /** A compacted's nodes, and for a consistent key the versions missing. */
  readonly nodes?: readonly string[];
  readonly missing?: { readonly from: number; readonly to: number };
}

/**
 * A consistent key's state as the final reads record it; for a counter of +1 increments (the
 * data type mode) its value, which is also the number of updates applied to it, as `version`.
 */
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
  readonly bucket: string;
  private readonly writesByWorker = new Map<number, number>();

  constructor(private readonly options: WatchWorkloadOptions) {
    this.bucket = options.dataTypes ? 'jepsen-watch-dt' : 'jepsen-watch';
  }

  /** The keys written: `key0`… of the consistent bucket, or the counters `c0`… */
  private keyName(index: number): string {
    return `${this.options.dataTypes ? 'c' : 'key'}${index}`;
  }

  plan(worker: number, random: Random): PlannedOperation {
    if (this.options.dataTypes) return { f: 'increment', key: this.keyName(random.int(this.options.keyCount)), value: 1 };
    const count = this.writesByWorker.get(worker) ?? 0;
    this.writesByWorker.set(worker, count + 1);
    return { f: 'write', key: `key${random.int(this.options.keyCount)}`, value: worker + count * this.options.concurrency };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation): Promise<Completion> {
    if (this.options.dataTypes) {
      try {
        await client.dt.increment(this.bucket, operation.key, 1, { node });
        return { type: 'ok' };
      } catch (error) {
        return writeFailure(error);
      }
    }
    try {
      const written = await client.put(this.bucket, operation.key, JSON.stringify(operation.value), { node, contentType: 'application/json' });
      return { type: 'ok', value: { value: operation.value, version: written.version ?? null } };
    } catch (error) {
      return consistentWriteFailure(error);
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => this.keyName(index));
  }

  decode(siblings: readonly StoredValue[]): unknown {
    if (this.options.dataTypes) throw new Error('the watch workload reads its counters through readValue, not the key/value API');
    return siblings.map((sibling) => JSON.parse(sibling.value.toString('utf8')) as number);
  }

  /** A key's version and value through `node` (a linearizable read), for the final reads. */
  async readValue(client: RingClient, node: string, key: string): Promise<unknown> {
    if (this.options.dataTypes) {
      const total = (await client.dt.counter(this.bucket, key, { node, r: 'all' })) ?? 0;
      return { version: total, value: total } satisfies VersionedRead;
    }
    const read = await client.get(this.bucket, key, { node });
    const values = this.decode(read.siblings) as number[];
    return { version: read.version ?? 0, value: values[0] ?? null } satisfies VersionedRead;
  }

  /**
   * Starts the watchers: one per key and one on the prefix of all keys (`key`, or `c`), each recording what it
   * receives as `watch-event` entries of process `watch-N`, and `watch-resume` when it drops its
   * connection to resume with its last id on another node.
   */
  startWatchers(client: RingClient, nodes: readonly string[], history: HistoryRecorder): Background {
    const targets: (string | { prefix: string })[] = [...this.finalKeys(), { prefix: this.options.dataTypes ? 'c' : 'key' }];
    const random = new SeededRandom(this.options.seed * 7919 + 17);
    // Per watcher and key: the last version reported, or for counters the number of distinct dots.
    const latest = targets.map(() => new Map<string, number>());
    const dots = targets.map(() => new Map<string, Set<string>>());
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
            dataTypes: this.options.dataTypes,
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
            if (record.dot !== undefined && record.key !== undefined) {
              const seen = dots[watcher]!.get(record.key) ?? new Set<string>();
              dots[watcher]!.set(record.key, seen.add(record.dot));
              latest[watcher]!.set(record.key, seen.size);
            } else if (record.version !== undefined && record.key !== undefined)
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
      return { event: 'update', key: event.key, value: event.value as number, dot: `${event.dot.node}:${event.dot.counter}` };
  }
}
