/**
 * The generator: `concurrency` worker threads, each running one operation at a time until the
 * time limit, staggered by seeded random delays so that together they make about `rate`
 * operations per second. As in Jepsen, a worker whose operation ended `info` may still have it in
 * flight somewhere, so it continues as a new process (its id plus `concurrency`); every process
 * thus has at most one operation open in the history. Each process talks to one node
 * (process mod nodes), as Jepsen binds clients to nodes, so a partition splits the clients too.
 */
import type { RingClient } from '../../src/client/ring-client.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import type { HistoryRecorder } from './history.js';
import { delay } from './wait.js';
import type { Workload } from './workloads/workload.js';

/** Settings of the client workers. */
export interface GeneratorOptions {
  readonly concurrency: number;
  readonly timeLimitMs: number;
  readonly ratePerSecond: number;
  readonly seed: number;
  /** Node addresses; process p talks to nodes[p mod nodes.length]. */
  readonly nodes: readonly string[];
}

/** The seeded stream of one worker: the run's seed and the worker's number, so each replays on its own. */
export function workerRandom(seed: number, worker: number): SeededRandom {
  return new SeededRandom(seed * 1024 + worker + 1);
}

/** Runs the workers until the time limit (measured on the history's clock from `startMs`) or `shouldStop`. */
export async function runClients(
  workload: Workload,
  client: RingClient,
  history: HistoryRecorder,
  options: GeneratorOptions,
  startMs: number,
  shouldStop: () => boolean = () => false,
): Promise<void> {
  const endMs = startMs + options.timeLimitMs;
  // Each worker waits U(0, 2 * mean) between operations: the mean gap gives `rate` over all workers.
  const meanGapMs = (options.concurrency / options.ratePerSecond) * 1000;
  const worker = async (index: number): Promise<void> => {
    const random = workerRandom(options.seed, index);
    let process = index;
    for (;;) {
      const gapMs = random.next() * 2 * meanGapMs;
      if (history.nowMs() + gapMs >= endMs || shouldStop()) return;
      await delay(gapMs);
      const operation = workload.plan(index, random);
      const node = options.nodes[process % options.nodes.length] as string;
      const base = {
        process,
        f: operation.f,
        key: operation.key,
        node,
        ...(operation.r === undefined ? {} : { r: operation.r }),
        ...(operation.w === undefined ? {} : { w: operation.w }),
      };
      history.record({ ...base, type: 'invoke', ...(operation.value === undefined ? {} : { value: operation.value }) });
      const completion = await workload.perform(client, node, operation, index);
      const value = completion.value ?? operation.value;
      history.record({
        ...base,
        type: completion.type,
        ...(value === undefined ? {} : { value }),
        ...(completion.error === undefined ? {} : { error: completion.error }),
      });
      if (completion.type === 'info') process += options.concurrency;
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, index) => worker(index)));
}
