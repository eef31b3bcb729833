/**
 * The data-type workloads: `counter` (increments of either sign and reads of a few counters) and
 * `dt-set` (adds, removes with the context of a read, re-adds and reads of a few
 * observed-remove sets), through RingClient's `dt` API (/dt/{bucket}/{key}). After healing each
 * key is read with r=all, then through every member (the /dt API serves no local=true, so the
 * replicas' agreement is judged on what each node answers).
 */
import type { DataTypeClient, RingClient, StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { type Completion, type PlannedOperation, type Workload, quorumOf, readFailure, writeFailure } from './workload.js';

function dataTypes(client: RingClient): DataTypeClient {
  return client.dt;
}

/** Settings of the data-type workloads. */
export interface DataTypeWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** Replicas per key, to turn consistency levels into r and w. */
  readonly replicas: number;
}

function level(random: Random, replicas: number): number {
  const draw = random.next();
  return quorumOf(draw < 0.6 ? 'quorum' : draw < 0.8 ? 'one' : 'all', replicas);
}

/** The counter workload: 70 % increments by ±1..5 (one in five negative), 30 % reads, at one, quorum or all. */
export class CounterWorkload implements Workload {
  readonly name = 'counter';
  readonly bucket = 'jepsen-counter';

  constructor(private readonly options: DataTypeWorkloadOptions) {}

  plan(_worker: number, random: Random): PlannedOperation {
    const key = `c${random.int(this.options.keyCount)}`;
    if (random.next() < 0.3) return { f: 'read', key, r: level(random, this.options.replicas) };
    const size = 1 + random.int(5);
    return { f: 'increment', key, value: random.next() < 0.2 ? -size : size, w: level(random, this.options.replicas) };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation): Promise<Completion> {
    const dt = dataTypes(client);
    if (operation.f === 'read') {
      try {
        return {
          type: 'ok',
          value: (await dt.counter(this.bucket, operation.key, { node, ...(operation.r === undefined ? {} : { r: operation.r }) })) ?? null,
        };
      } catch (error) {
        return readFailure(error);
      }
    }
    try {
      await dt.increment(this.bucket, operation.key, operation.value as number, { node, ...(operation.w === undefined ? {} : { w: operation.w }) });
      return { type: 'ok' };
    } catch (error) {
      return writeFailure(error);
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `c${index}`);
  }

  decode(_siblings: readonly StoredValue[]): unknown {
    throw new Error('the counter workload reads through readValue, not the key/value API');
  }

  /** A counter's value through `node` with r=all; null when absent (404). */
  async readValue(client: RingClient, node: string, key: string): Promise<unknown> {
    return (await dataTypes(client).counter(this.bucket, key, { node, r: 'all' })) ?? null;
  }
}

/** The dt-set workload. */
export class DtSetWorkload implements Workload {
  readonly name = 'dt-set';
  readonly bucket = 'jepsen-dt-set';
  private readonly addsByWorker = new Map<number, number>();
  /** Per key, elements acknowledged added and not yet picked for removal; and those acknowledged removed. */
  private readonly present = new Map<string, string[]>();
  private readonly removed = new Map<string, string[]>();

  constructor(private readonly options: DataTypeWorkloadOptions) {}

  private pickFrom(map: Map<string, string[]>, key: string, random: Random): string | undefined {
    const list = map.get(key) ?? [];
    if (list.length === 0) return undefined;
    const [element] = list.splice(random.int(list.length), 1);
    return element;
  }

  /**
   * 55 % adds of a fresh element (worker + k * concurrency), 10 % re-adds of an element whose
   * remove was acknowledged, 20 % removes of an acknowledged element, 15 % reads.
   */
  plan(worker: number, random: Random): PlannedOperation {
    const key = `ds${random.int(this.options.keyCount)}`;
    const draw = random.next();
    if (draw < 0.15) return { f: 'read', key, r: level(random, this.options.replicas) };
    if (draw < 0.35) {
      const element = this.pickFrom(this.present, key, random);
      if (element !== undefined) return { f: 'remove', key, value: element, r: level(random, this.options.replicas) };
    } else if (draw < 0.45) {
      const element = this.pickFrom(this.removed, key, random);
      if (element !== undefined) return { f: 'add', key, value: element, w: level(random, this.options.replicas) };
    }
    const count = this.addsByWorker.get(worker) ?? 0;
    this.addsByWorker.set(worker, count + 1);
    return { f: 'add', key, value: String(worker + count * this.options.concurrency), w: level(random, this.options.replicas) };
  }

  private remember(map: Map<string, string[]>, key: string, element: string): void {
    map.set(key, [...(map.get(key) ?? []), element]);
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation): Promise<Completion> {
    const dt = dataTypes(client);
    if (operation.f === 'read') {
      try {
        const read = await dt.set(this.bucket, operation.key, { node, ...(operation.r === undefined ? {} : { r: operation.r }) });
        return { type: 'ok', value: [...(read?.value ?? [])].sort() };
      } catch (error) {
        return readFailure(error);
      }
    }
    const element = operation.value as string;
    if (operation.f === 'add') {
      try {
        await dt.updateSet(this.bucket, operation.key, { add: [element] }, { node, ...(operation.w === undefined ? {} : { w: operation.w }) });
        this.remember(this.present, operation.key, element);
        return { type: 'ok' };
      } catch (error) {
        return writeFailure(error);
      }
    }
    // A remove: read the set for its context, and remove the element only if that read saw it.
    let read;
    try {
      read = await dt.set(this.bucket, operation.key, { node, ...(operation.r === undefined ? {} : { r: operation.r }) });
    } catch (error) {
      this.remember(this.present, operation.key, element);
      return readFailure(error);
    }
    if (read === undefined || !read.value.includes(element)) {
      this.remember(this.present, operation.key, element);
      return { type: 'fail', error: 'not in the read: no remove sent' };
    }
    try {
      await dt.updateSet(this.bucket, operation.key, { remove: [element], context: read.context }, { node });
      this.remember(this.removed, operation.key, element);
      return { type: 'ok' };
    } catch (error) {
      return writeFailure(error);
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `ds${index}`);
  }

  decode(_siblings: readonly StoredValue[]): unknown {
    throw new Error('the dt-set workload reads through readValue, not the key/value API');
  }

  /** A set's elements through `node` with r=all, sorted; [] when absent (404). */
  async readValue(client: RingClient, node: string, key: string): Promise<unknown> {
    return [...((await dataTypes(client).set(this.bucket, key, { node, r: 'all' }))?.value ?? [])].sort();
  }
}
