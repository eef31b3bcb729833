/**
 * The lock workload: each worker takes one of a few locks by writing a fresh holder id to the
 * lock's key with `If-None-Match: *`, holds it until its next turn (the generator's random gap
 * between operations), and releases it by deleting the key: on a consistent bucket with
 * `If-Match: <its version>` (the context of its own write, or of the read that showed it held
 * the lock), on a plain one with that context.
 * The acquire's reply carries the key's version (`x-ringkv-version` on a consistent bucket): the
 * fencing token. Judged by the lock checker (holders never overlap, tokens grow).
 *
 * A worker whose acquire or release ended unknown does not know whether it holds the lock, so
 * its next operations are reads of the lock (value: its holder id) until one tells it: its own
 * holder id means it holds it (then it releases it), anything else means it does not; after
 * three reads that do not show it, it gives up. An unknown acquire that takes effect after that
 * leaves its lock held for good, as an expired session would without a lease: the lock then
 * only refuses acquires, which is safe and shows in the counts.
 */
import type { ReadResult, RingClient, StoredValue, WriteResult } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { casRefusedError } from '../checkers/linearizable.js';
import type { LockState } from '../checkers/lock.js';
import { consistentWriteFailure, plainWriteFailure } from './cas-register.js';
import { type Completion, type PlannedOperation, type Workload, readFailure } from './workload.js';

/** Settings of the lock workload. */
export interface LockWorkloadOptions {
  readonly keyCount: number;
  readonly concurrency: number;
  /** Whether the bucket is consistent; otherwise plain, read and written with r=1, w=1. */
  readonly consistent: boolean;
}

/** Reads of an unsure worker's lock before it gives up on learning whether it holds it. */
const checksBeforeGivingUp = 3;

/** The fencing token of a reply: the key's version (`x-ringkv-version`) on a consistent bucket, null on a plain one. */
export function fencingTokenOf(result: ReadResult | WriteResult): number | null {
  return result.version ?? null;
}

/** A lock read as the history records it: its one holder, or null when free (or when siblings disagree). */
export function lockStateOf(read: ReadResult): LockState {
  const holders = read.siblings.map((sibling: StoredValue) => JSON.parse(sibling.value.toString('utf8')) as number);
  return { holder: holders.length === 1 ? (holders[0] as number) : null, token: fencingTokenOf(read) };
}

/** The lock workload. */
export class LockWorkload implements Workload {
  readonly name = 'lock';
  readonly bucket = 'jepsen-lock';
  private readonly acquiresByWorker = new Map<number, number>();
  /** What each worker holds, with the context its release deletes with. */
  private readonly held = new Map<number, { key: string; holder: number; context: string | undefined }>();
  /** Workers that do not know whether they hold a lock. */
  private readonly unsure = new Map<number, { key: string; holder: number; checks: number }>();

  constructor(private readonly options: LockWorkloadOptions) {}

  plan(worker: number, random: Random): PlannedOperation {
    const quorum = this.options.consistent ? {} : { w: 1 };
    const held = this.held.get(worker);
    if (held !== undefined) return { f: 'release', key: held.key, value: held.holder, ...quorum };
    const unsure = this.unsure.get(worker);
    if (unsure !== undefined) return { f: 'read', key: unsure.key, value: unsure.holder, ...(this.options.consistent ? {} : { r: 1 }) };
    const count = this.acquiresByWorker.get(worker) ?? 0;
    this.acquiresByWorker.set(worker, count + 1);
    return { f: 'acquire', key: `lock${random.int(this.options.keyCount)}`, value: worker + count * this.options.concurrency, ...quorum };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation, worker: number): Promise<Completion> {
    const failure = this.options.consistent ? consistentWriteFailure : plainWriteFailure;
    const holder = operation.value as number;
    const w = operation.w === undefined ? {} : { w: operation.w };
    if (operation.f === 'acquire') {
      try {
        const written = await client.put(this.bucket, operation.key, JSON.stringify(holder), {
          node,
          contentType: 'application/json',
          ifNoneMatch: true,
          ...w,
        });
        this.held.set(worker, { key: operation.key, holder, context: written.context === '' ? undefined : written.context });
        const state: LockState = { holder, token: fencingTokenOf(written) };
        return { type: 'ok', value: state };
      } catch (error) {
        const completion = failure(error);
        if (completion.type === 'info') this.unsure.set(worker, { key: operation.key, holder, checks: 0 });
        return completion;
      }
    }
    if (operation.f === 'read') {
      const unsure = this.unsure.get(worker) as { key: string; holder: number; checks: number };
      let read: ReadResult;
      try {
        read = await client.get(this.bucket, operation.key, { node, ...(operation.r === undefined ? {} : { r: operation.r }) });
      } catch (error) {
        this.giveUpAfterChecks(worker, unsure);
        return readFailure(error);
      }
      const state = lockStateOf(read);
      if (state.holder === holder) {
        this.unsure.delete(worker);
        this.held.set(worker, { key: operation.key, holder, context: read.context });
      } else this.giveUpAfterChecks(worker, unsure);
      return { type: 'ok', value: state };
    }
    const held = this.held.get(worker) as { key: string; holder: number; context: string | undefined };
    // On a consistent bucket the context is the key's version: delete only the holder's own write.
    const condition = held.context === undefined ? {} : this.options.consistent ? { ifMatch: held.context } : { context: held.context };
    try {
      await client.delete(this.bucket, operation.key, { node, ...condition, ...w });
      this.held.delete(worker);
      return { type: 'ok' };
    } catch (error) {
      const completion = failure(error);
      if (completion.error === casRefusedError) {
        // The key's version moved while this worker held the lock: it is no longer its holder. The
        // checker keeps its tenure open (a refused release did nothing), so whoever took the lock overlaps it.
        this.held.delete(worker);
      } else if (completion.type === 'info') {
        // An unknown release is checked by reading; one that certainly did nothing is tried again next turn.
        this.held.delete(worker);
        this.unsure.set(worker, { key: operation.key, holder, checks: 0 });
      }
      return completion;
    }
  }

  private giveUpAfterChecks(worker: number, unsure: { key: string; holder: number; checks: number }): void {
    unsure.checks += 1;
    if (unsure.checks >= checksBeforeGivingUp) this.unsure.delete(worker);
  }

  finalKeys(): string[] {
    return Array.from({ length: this.options.keyCount }, (_, index) => `lock${index}`);
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return siblings.map((sibling) => JSON.parse(sibling.value.toString('utf8')) as number).sort((left, right) => left - right);
  }

  /** A lock's holders through `node`, for the final reads and the convergence check. */
  async readValue(client: RingClient, node: string, key: string): Promise<unknown> {
    return this.decode((await client.get(this.bucket, key, { node, ...(this.options.consistent ? {} : { r: 'all' as const }) })).siblings);
  }
}
