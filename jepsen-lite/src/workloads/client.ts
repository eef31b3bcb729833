/**
 * The client workload: workers use RingClient exactly as README.md tells applications to, and the
 * checker holds ringkv to what the README promises them. Each key holds a set with removals (a
 * two-phase set, as JSON `{"adds":[...],"removes":[...]}`); siblings merge by union of both lists,
 * and the set's elements are the adds minus the removes, so a removal survives any merge.
 *
 * The operations mix every documented way of writing:
 * - `add`: read (at a random consistency), merge siblings with `resolve` when there are several
 *   (else update the single value), add an element, write back with the read's context;
 * - `chain-add`: add an element by writing with the context the worker's previous write of the key
 *   returned (`WriteResult.context`) and that write's value plus the element, without reading;
 * - `blind-add`: a write without context, which must become a sibling of whatever is there;
 * - `remove`: read, merge, mark one present element removed, write back with the read's context;
 * - `read`: at one, quorum, all, or r = 1..n;
 * - `delete`: read, then delete the key with the read's context (it supersedes what that read saw);
 *   only the last key is deleted, so the others keep their acknowledged elements to be checked.
 *
 * A context that covers versions its holder never saw (a write reply's plain version vector after a
 * concurrent write) makes a chained write supersede siblings it does not contain: their acknowledged
 * elements are lost, which the checker reports.
 */
import type { ReadRequestOptions, ReadResult, RingClient, StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { type Completion, type PlannedOperation, type Workload, quorumOf, readFailure, writeFailure } from './workload.js';

/** A key's value in the client workload: elements added, and elements removed for good. */
export interface ElementSet {
  readonly adds: readonly number[];
  readonly removes: readonly number[];
}

/** Settings of the client workload. */
export interface ClientWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** Replicas per key (min(n_val, nodes)): the largest explicit r a read asks for. */
  readonly replicas: number;
}

/** What a worker remembers of its last acknowledged write of a key, to chain the next one on it. */
interface Chain {
  readonly context: string;
  readonly value: ElementSet;
}

const sortedUnique = (values: Iterable<number>): number[] => [...new Set(values)].sort((left, right) => left - right);

/** Parses one sibling's bytes; anything that is not an element set counts as an empty one. */
function parseElementSet(bytes: Buffer): ElementSet {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    return { adds: [], removes: [] };
  }
  const numbers = (list: unknown): number[] => (Array.isArray(list) ? list.filter((item): item is number => typeof item === 'number') : []);
  const object = parsed as { adds?: unknown; removes?: unknown } | null;
  return { adds: numbers(object?.adds), removes: numbers(object?.removes) };
}

/** Merges siblings (or any element sets) by union of adds and of removes. */
export function mergeElementSets(sets: Iterable<ElementSet>): ElementSet {
  const adds: number[] = [];
  const removes: number[] = [];
  for (const set of sets) {
    adds.push(...set.adds);
    removes.push(...set.removes);
  }
  return { adds: sortedUnique(adds), removes: sortedUnique(removes) };
}

/** The siblings of a read as one merged element set. */
export function siblingElementSet(siblings: readonly StoredValue[]): ElementSet {
  return mergeElementSets(siblings.map((sibling) => parseElementSet(sibling.value)));
}

/** The elements of a set: added and not removed. */
export function presentElements(set: ElementSet): number[] {
  const removed = new Set(set.removes);
  return set.adds.filter((element) => !removed.has(element));
}

function encode(set: ElementSet): string {
  return JSON.stringify({ adds: sortedUnique(set.adds), removes: sortedUnique(set.removes) });
}

/** The client workload. */
export class ClientWorkload implements Workload {
  readonly name = 'client';
  readonly bucket = 'jepsen-client';
  private readonly addsByWorker = new Map<number, number>();
  /** Per worker, per key: the last acknowledged write's context and value. */
  private readonly chains = new Map<number, Map<string, Chain>>();

  constructor(private readonly options: ClientWorkloadOptions) {}

  private chainsOf(worker: number): Map<string, Chain> {
    let chains = this.chains.get(worker);
    if (chains === undefined) {
      chains = new Map();
      this.chains.set(worker, chains);
    }
    return chains;
  }

  private nextElement(worker: number): number {
    const count = this.addsByWorker.get(worker) ?? 0;
    this.addsByWorker.set(worker, count + 1);
    return worker + count * this.options.concurrency;
  }

  /**
   * The next operation: a mix weighted towards adds (so there is plenty to lose), with reads at
   * every level, removals and the odd delete. The read level is drawn here so the history shows it.
   */
  plan(worker: number, random: Random): PlannedOperation {
    const key = `c${random.int(this.options.keyCount)}`;
    const draw = random.next();
    const read = this.readLevel(random);
    if (draw < 0.3) return { f: 'add', key, value: this.nextElement(worker), ...read };
    if (draw < 0.55) {
      // A chain continues on a key this worker last wrote; without one it starts with a read-modify-write.
      const chained = [...this.chainsOf(worker).keys()];
      if (chained.length === 0) return { f: 'add', key, value: this.nextElement(worker), ...read };
      return { f: 'chain-add', key: chained[random.int(chained.length)] as string, value: this.nextElement(worker) };
    }
    if (draw < 0.65) return { f: 'blind-add', key, value: this.nextElement(worker) };
    if (draw < 0.77) return { f: 'remove', key, ...read, pick: random.next() };
    if (draw < 0.97) return { f: 'read', key, ...read };
    // Deletes strike one key only (the last, when there are several): a delete takes every element
    // its read saw out of judgement, so on the other keys acknowledged elements accumulate to check.
    return { f: 'delete', key: `c${this.options.keyCount - 1}`, ...read };
  }

  /** A read level: r = 1..replicas, half the time spelled as the named level it equals (one, quorum, all), as applications may. */
  private readLevel(random: Random): { r: number; consistency?: 'one' | 'quorum' | 'all' } {
    const replicas = this.options.replicas;
    const r = 1 + random.int(replicas);
    const named = r === 1 ? 'one' : r === replicas ? 'all' : r === quorumOf('quorum', replicas) ? 'quorum' : undefined;
    return named !== undefined && random.next() < 0.5 ? { r, consistency: named } : { r };
  }

  /** A read's options, as the plan spelled them. */
  private readOptions(node: string, operation: PlannedOperation): ReadRequestOptions {
    if (operation.consistency !== undefined) return { node, consistency: operation.consistency };
    return { node, r: operation.r ?? this.options.replicas };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation, worker: number): Promise<Completion> {
    const chains = this.chainsOf(worker);
    const remember = (context: string, value: ElementSet): void => {
      chains.set(operation.key, { context, value });
    };
    // Whatever the outcome of a write that is not acknowledged, the chain on this key stops: the
    // worker no longer knows which version its context would supersede.
    const forget = (): void => {
      chains.delete(operation.key);
    };

    if (operation.f === 'blind-add' || operation.f === 'chain-add') {
      const element = operation.value as number;
      const chain = operation.f === 'chain-add' ? chains.get(operation.key) : undefined;
      const value: ElementSet = chain === undefined ? { adds: [element], removes: [] } : { adds: [...chain.value.adds, element], removes: chain.value.removes };
      try {
        const written = await client.put(this.bucket, operation.key, encode(value), {
          node,
          contentType: 'application/json',
          ...(chain === undefined ? {} : { context: chain.context }),
        });
        remember(written.context, value);
        return { type: 'ok' };
      } catch (error) {
        forget();
        return writeFailure(error);
      }
    }

    let read: ReadResult;
    try {
      read = await client.get(this.bucket, operation.key, this.readOptions(node, operation));
    } catch (error) {
      return readFailure(error);
    }
    const merged = siblingElementSet(read.siblings);
    if (operation.f === 'read') return { type: 'ok', value: { size: presentElements(merged).length, siblings: read.siblings.length } };

    if (operation.f === 'delete') {
      // The history records what the delete's read saw: that, and only that, the delete supersedes.
      try {
        await client.delete(this.bucket, operation.key, { node, ...(read.context === undefined ? {} : { context: read.context }) });
        forget();
        return { type: 'ok', value: merged };
      } catch (error) {
        forget();
        return { ...writeFailure(error), value: merged };
      }
    }

    let next: ElementSet;
    let recorded: unknown;
    if (operation.f === 'remove') {
      const present = presentElements(merged);
      // Nothing to remove: the read alone is the operation.
      if (present.length === 0) return { type: 'ok', value: { element: null } };
      const element = present[Math.floor((operation.pick ?? 0) * present.length)] as number;
      next = { adds: merged.adds, removes: [...merged.removes, element] };
      recorded = { element };
    } else {
      next = { adds: [...merged.adds, operation.value as number], removes: merged.removes };
      recorded = operation.value;
    }
    try {
      // README: several siblings are merged and written back with `resolve` and the read's context;
      // a single value is updated with `put` and the read's context.
      const written =
        read.siblings.length > 1
          ? await client.resolve(this.bucket, operation.key, () => ({ value: encode(next), contentType: 'application/json' }), { read, node })
          : await client.put(this.bucket, operation.key, encode(next), {
              node,
              contentType: 'application/json',
              ...(read.context === undefined ? {} : { context: read.context }),
            });
      remember(written.context, next);
      return { type: 'ok', value: recorded };
    } catch (error) {
      forget();
      return { ...writeFailure(error), value: recorded };
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `c${index}`);
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return siblingElementSet(siblings);
  }
}
