/**
 * The set workload (Jepsen's Riak test): clients add unique integers to a few sets, each add a
 * read-modify-write: read the key with its causal context, merge the siblings by union, add the
 * element, write the union back with that context. With siblings nothing is lost, because the
 * write supersedes only what it read and concurrent writes stay as siblings to be merged by the
 * next reader; with last-write-wins, concurrent read-modify-writes overwrite each other.
 */
import type { RingClient, StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { type Completion, type PlannedOperation, type Workload, readFailure, siblingIntegers, writeFailure } from './workload.js';

/** Settings of the set workload. */
export interface SetWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** Share of operations that are plain reads (for latency and availability; the checker ignores them). */
  readonly readFraction?: number;
}

/** The set workload. */
export class SetWorkload implements Workload {
  readonly name = 'set';
  readonly bucket = 'jepsen-set';
  private readonly addsByWorker = new Map<number, number>();

  constructor(private readonly options: SetWorkloadOptions) {}

  /** An add of the worker's next unique element (worker + k * concurrency), or now and then a read. */
  plan(worker: number, random: Random): PlannedOperation {
    const key = `s${random.int(this.options.keyCount)}`;
    if (random.next() < (this.options.readFraction ?? 0.1)) return { f: 'read', key };
    const count = this.addsByWorker.get(worker) ?? 0;
    this.addsByWorker.set(worker, count + 1);
    return { f: 'add', key, value: worker + count * this.options.concurrency };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation): Promise<Completion> {
    let read;
    try {
      read = await client.get(this.bucket, operation.key, { node });
    } catch (error) {
      return readFailure(error);
    }
    const elements = siblingIntegers(read.siblings);
    // Mid-run reads record only the size: the full set is what the final read is for, and
    // thousands of elements per read would swell the history without helping any checker.
    if (operation.f === 'read') return { type: 'ok', value: { size: elements.length, siblings: read.siblings.length } };
    const element = operation.value as number;
    const merged = elements.includes(element) ? elements : [...elements, element].sort((left, right) => left - right);
    try {
      await client.put(this.bucket, operation.key, JSON.stringify(merged), {
        node,
        contentType: 'application/json',
        ...(read.context === undefined ? {} : { context: read.context }),
      });
      return { type: 'ok' };
    } catch (error) {
      return writeFailure(error);
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `s${index}`);
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return siblingIntegers(siblings);
  }
}
