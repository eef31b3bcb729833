/**
 * The delete workload: each worker writes a fresh key, reads it back to take its causal context,
 * deletes it with that context, and reads it again; then on to the next key. Faults strike in
 * between, so tombstones must outlive hints, read repair and anti-entropy of the old value.
 */
import type { RingClient, StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { type Completion, type PlannedOperation, type Workload, readFailure, siblingIntegers, writeFailure } from './workload.js';

/** Settings of the delete workload. */
export interface DeleteWorkloadOptions {
  readonly concurrency: number;
  /** Keys written at most over the run, so the final reads stay bounded. */
  readonly maxKeys?: number;
}

interface WorkerState {
  /** Keys this worker has started. */
  keys: number;
  /** The step the worker's current key is at; a certainly failed write skips to the next key. */
  step: 'write' | 'delete' | 'read';
}

/** The delete workload. */
export class DeleteWorkload implements Workload {
  readonly name = 'delete';
  readonly bucket = 'jepsen-delete';
  private readonly workers = new Map<number, WorkerState>();
  private readonly written = new Set<string>();
  private readonly maxKeys: number;

  constructor(private readonly options: DeleteWorkloadOptions) {
    this.maxKeys = options.maxKeys ?? 5000;
  }

  private state(worker: number): WorkerState {
    let state = this.workers.get(worker);
    if (state === undefined) {
      state = { keys: 0, step: 'write' };
      this.workers.set(worker, state);
    }
    return state;
  }

  private keyOf(worker: number, state: WorkerState): string {
    return `d${worker}-${state.keys}`;
  }

  /** The worker's next step: write a fresh key, delete it, read it; after the key budget, only reads of old keys. */
  plan(worker: number, random: Random): PlannedOperation {
    const state = this.state(worker);
    if (state.step === 'write' && this.written.size >= this.maxKeys) {
      const old = [...this.written];
      return { f: 'read', key: old[random.int(old.length)] as string };
    }
    const key = this.keyOf(worker, state);
    if (state.step === 'write') {
      this.written.add(key);
      return { f: 'write', key, value: worker + state.keys * this.options.concurrency };
    }
    return { f: state.step, key };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation, worker: number): Promise<Completion> {
    const state = this.state(worker);
    const advance = (step: WorkerState['step']): void => {
      if (step === 'write') state.keys += 1;
      state.step = step;
    };
    if (operation.f === 'write') {
      try {
        await client.put(this.bucket, operation.key, JSON.stringify(operation.value), { node, contentType: 'application/json' });
        advance('delete');
        return { type: 'ok' };
      } catch (error) {
        const completion = writeFailure(error);
        if (completion.type === 'fail') advance('write');
        else advance('delete');
        return completion;
      }
    }
    if (operation.f === 'delete') {
      advance('read');
      let read;
      try {
        read = await client.get(this.bucket, operation.key, { node });
      } catch (error) {
        return readFailure(error);
      }
      // The delete covers what this read saw; the history records exactly that.
      const covered = siblingIntegers(read.siblings);
      try {
        await client.delete(this.bucket, operation.key, { node, ...(read.context === undefined ? {} : { context: read.context }) });
        return { type: 'ok', value: covered };
      } catch (error) {
        return { ...writeFailure(error), value: covered };
      }
    }
    if (this.keyOf(worker, state) === operation.key && state.step === 'read') advance('write');
    try {
      const read = await client.get(this.bucket, operation.key, { node });
      return { type: 'ok', value: siblingIntegers(read.siblings) };
    } catch (error) {
      return readFailure(error);
    }
  }

  finalKeys(): string[] {
    return [...this.written].sort();
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return siblingIntegers(siblings);
  }
}
