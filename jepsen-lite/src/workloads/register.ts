/**
 * The register workload: clients read and write unique integers to a few keys, each request
 * with its own consistency (one, quorum or all, as explicit r and w). A write carries the causal
 * context the worker last saw for the key, so in sibling mode it supersedes what that worker
 * knew and stays concurrent with what it did not.
 */
import type { RingClient, StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { type Completion, type PlannedOperation, type Workload, quorumOf, readFailure, siblingIntegers, writeFailure } from './workload.js';

/** Settings of the register workload. */
export interface RegisterWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** Replicas per key, to turn consistency levels into r and w. */
  readonly replicas: number;
}

/** The register workload. */
export class RegisterWorkload implements Workload {
  readonly name = 'register';
  readonly bucket = 'jepsen-register';
  private readonly writesByWorker = new Map<number, number>();
  private readonly contexts = new Map<string, string>();

  constructor(private readonly options: RegisterWorkloadOptions) {}

  private level(random: Random): number {
    const draw = random.next();
    // Mostly quorum, so most reads are checkable; some one and all, so weak and strict requests mix.
    return quorumOf(draw < 0.6 ? 'quorum' : draw < 0.8 ? 'one' : 'all', this.options.replicas);
  }

  /** A read or a write of a unique value, half and half, with a random consistency level. */
  plan(worker: number, random: Random): PlannedOperation {
    const key = `r${random.int(this.options.keyCount)}`;
    if (random.next() < 0.5) return { f: 'read', key, r: this.level(random) };
    const count = this.writesByWorker.get(worker) ?? 0;
    this.writesByWorker.set(worker, count + 1);
    return { f: 'write', key, value: worker + count * this.options.concurrency, w: this.level(random) };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation, worker: number): Promise<Completion> {
    const contextKey = `${worker}\u0000${operation.key}`;
    if (operation.f === 'read') {
      try {
        const read = await client.get(this.bucket, operation.key, { node, ...(operation.r === undefined ? {} : { r: operation.r }) });
        if (read.context !== undefined) this.contexts.set(contextKey, read.context);
        return { type: 'ok', value: siblingIntegers(read.siblings) };
      } catch (error) {
        return readFailure(error);
      }
    }
    try {
      const context = this.contexts.get(contextKey);
      const written = await client.put(this.bucket, operation.key, JSON.stringify(operation.value), {
        node,
        contentType: 'application/json',
        ...(operation.w === undefined ? {} : { w: operation.w }),
        ...(context === undefined ? {} : { context }),
      });
      if (written.context !== '') this.contexts.set(contextKey, written.context);
      return { type: 'ok' };
    } catch (error) {
      return writeFailure(error);
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `r${index}`);
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return siblingIntegers(siblings);
  }
}
