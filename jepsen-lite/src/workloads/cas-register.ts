/**
 * The cas-register workload: reads, writes of unique integers and compare-and-sets on a few keys,
 * judged by the linearizability checker (Wing–Gong–Lowe, per key). Run against a consistent
 * bucket it checks that every GET, PUT and conditional PUT is linearizable; against a plain
 * bucket (r=1, w=1) it shows that a Dynamo-style register is not.
 *
 * A compare-and-set is two requests, and the history records them as two operations so that the
 * checker's model of each is exactly what the server promises:
 *
 * - a `read` (GET): the value it returned, null for 404, and the worker keeps the read's context;
 * - a later `cas` of the same worker on the same key, value `[from, to]`: a PUT of the fresh
 *   value `to` with `If-Match: <that read's context>` (`If-None-Match: *` when the read found
 *   nothing, from = null). The server applies it only while the key's version is still the one
 *   the read saw, and every value written is unique and nothing deletes, so "the version is the
 *   one the read saw" is exactly "the register holds `from`": an acknowledged PUT is
 *   cas(from → to) at an instant inside the PUT, and a 412 is a refused cas — the register held
 *   something other than `from` at an instant inside the PUT — which the checker must also place.
 *
 * The read may be long stale when the cas is sent; that only makes a refusal likely, never a
 * wrong record. Outcomes on a consistent bucket follow its API: 412 refused (`fail` with error
 * `precondition-failed`), 503 not done (`fail`), 504 and broken connections unknown (`info`).
 * On a plain bucket the client's own judgement of a failed write decides (`fail` only when
 * nothing can have been written). A read that returned several siblings is recorded as the list
 * of their values: no register returns two values, so the checker finds it invalid.
 */
import { RingClientError, type ReadResult, type RingClient, type StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { casRefusedError } from '../checkers/linearizable.js';
import { type Completion, type PlannedOperation, type Workload, readFailure, writeFailure } from './workload.js';

/** Settings of the cas-register workload. */
export interface CasRegisterWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** Whether the bucket is consistent (`consistent: true`); otherwise plain, read and written with r=1, w=1. */
  readonly consistent: boolean;
}

/** A register value as the history records a read: null (absent), one integer, or the integers of several siblings. */
export type RegisterRead = number | null | number[];

/** A read's value as the history records it. */
export function registerReadOf(siblings: readonly StoredValue[]): RegisterRead {
  const values = siblings.map((sibling) => JSON.parse(sibling.value.toString('utf8')) as number);
  if (values.length === 0) return null;
  if (values.length === 1) return values[0] as number;
  return values.sort((left, right) => left - right);
}

/**
 * The completion of a failed write on a consistent bucket, as its API defines the statuses: 412
 * the condition failed (nothing written), 503 no quorum (not done), 504 outcome unknown.
 */
export function consistentWriteFailure(error: unknown): Completion {
  if (error instanceof RingClientError && error.status === 412) return { type: 'fail', error: casRefusedError };
  if (error instanceof RingClientError && error.status === 503) return { type: 'fail', error: `${error.code} (503): ${error.message}`.slice(0, 300) };
  return writeFailure(error);
}

/** The completion of a failed write on a plain bucket: a 412 wrote nothing; otherwise the client's outcome decides. */
export function plainWriteFailure(error: unknown): Completion {
  if (error instanceof RingClientError && error.status === 412) return { type: 'fail', error: casRefusedError };
  return writeFailure(error);
}

interface Remembered {
  readonly value: number | null;
  readonly context: string | undefined;
}

/** The cas-register workload. */
export class CasRegisterWorkload implements Workload {
  readonly name = 'cas-register';
  readonly bucket = 'jepsen-cas-register';
  private readonly writesByWorker = new Map<number, number>();
  /** Per worker and key, the last read that found one value or none: what its next cas compares with. */
  private readonly lastRead = new Map<string, Remembered>();
  /** The read each worker's planned cas was drawn from (plan takes it, perform uses it). */
  private readonly casFrom = new Map<number, Remembered>();

  constructor(private readonly options: CasRegisterWorkloadOptions) {}

  private fresh(worker: number): number {
    const count = this.writesByWorker.get(worker) ?? 0;
    this.writesByWorker.set(worker, count + 1);
    return worker + count * this.options.concurrency;
  }

  /** 40 % cas when the worker has read the key since its last cas or write (else a read), 30 % reads, 30 % writes. */
  plan(worker: number, random: Random): PlannedOperation {
    const key = `cr${random.int(this.options.keyCount)}`;
    const draw = random.next();
    const slot = `${worker}\u0000${key}`;
    const remembered = this.lastRead.get(slot);
    const quorum = this.options.consistent ? {} : { r: 1 };
    if (draw < 0.4 && remembered !== undefined) {
      this.lastRead.delete(slot);
      this.casFrom.set(worker, remembered);
      return { f: 'cas', key, value: [remembered.value, this.fresh(worker)], ...(this.options.consistent ? {} : { w: 1 }) };
    }
    if (draw < 0.7) return { f: 'read', key, ...quorum };
    this.lastRead.delete(slot);
    return { f: 'write', key, value: this.fresh(worker), ...(this.options.consistent ? {} : { w: 1 }) };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation, worker: number): Promise<Completion> {
    const failure = this.options.consistent ? consistentWriteFailure : plainWriteFailure;
    if (operation.f === 'read') {
      let read: ReadResult;
      try {
        read = await client.get(this.bucket, operation.key, { node, ...(operation.r === undefined ? {} : { r: operation.r }) });
      } catch (error) {
        return readFailure(error);
      }
      const value = registerReadOf(read.siblings);
      // A cas needs one value to compare with, and for a found value the context that names its version.
      if (value === null || (!Array.isArray(value) && read.context !== undefined))
        this.lastRead.set(`${worker}\u0000${operation.key}`, { value, context: read.context });
      return { type: 'ok', value };
    }
    const w = operation.w === undefined ? {} : { w: operation.w };
    if (operation.f === 'write') {
      try {
        await client.put(this.bucket, operation.key, JSON.stringify(operation.value), { node, contentType: 'application/json', ...w });
        return { type: 'ok' };
      } catch (error) {
        return failure(error);
      }
    }
    const from = this.casFrom.get(worker) as Remembered;
    this.casFrom.delete(worker);
    const [, to] = operation.value as [number | null, number];
    // A read that found nothing compares with "absent"; one that found a value, with its version.
    const condition = from.value === null ? { ifNoneMatch: true } : { ifMatch: from.context as string };
    try {
      await client.put(this.bucket, operation.key, JSON.stringify(to), { node, contentType: 'application/json', ...condition, ...w });
      return { type: 'ok' };
    } catch (error) {
      return failure(error);
    }
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `cr${index}`);
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return registerReadOf(siblings);
  }

  /**
   * A key's value through `node`, for the final reads and the convergence check: a consistent
   * GET (linearizable from any node), or on a plain bucket a GET with r=all.
   */
  async readValue(client: RingClient, node: string, key: string): Promise<unknown> {
    return registerReadOf((await client.get(this.bucket, key, { node, ...(this.options.consistent ? {} : { r: 'all' as const }) })).siblings);
  }
}
