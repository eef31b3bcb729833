/**
 * What every workload provides: Jepsen's client (how an operation is performed against a node)
 * and its share of the generator (which operation a worker runs next).
 */
import { type RingClient, RingClientError, type StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { resolveQuorum } from '../../../src/core/quorum/quorum.js';
import type { CompletionType } from '../history.js';

/** An operation a worker is about to invoke. */
export interface PlannedOperation {
  readonly f: string;
  readonly key: string;
  readonly value?: unknown;
  /** Replicas a read must hear from (explicit, so checkers know it). */
  readonly r?: number;
  /** Replicas a write must be acknowledged by. */
  readonly w?: number;
  /** Spell `r` as this named level rather than a number, as applications may (it equals `r`). */
  readonly consistency?: 'one' | 'quorum' | 'all';
  /** A seeded fraction in [0, 1) for choices the operation makes once it sees the data (which element to remove). */
  readonly pick?: number;
}

/** How an operation ended. */
export interface Completion {
  readonly type: CompletionType;
  /** What the history records as the completed operation's value; the invocation's when absent. */
  readonly value?: unknown;
  readonly error?: string;
}

/** A workload. */
export interface Workload {
  readonly name: string;
  readonly bucket: string;
  /** The next operation of worker `worker`, drawn from its own seeded stream. */
  plan(worker: number, random: Random): PlannedOperation;
  /** Performs the operation on `node` through the client; never throws, every outcome is a completion. */
  perform(client: RingClient, node: string, operation: PlannedOperation, worker: number): Promise<Completion>;
  /** The keys the final reads cover. */
  finalKeys(): string[];
  /** A read's siblings as the history records them. */
  decode(siblings: readonly StoredValue[]): unknown;
  /**
   * How long after healing the final reads must wait at least, given the largest offset ahead of
   * true time any node's clock had during the run (the ttl workload: until every value expired).
   */
  finalReadDelayMs?(maxClockAheadMs: number): number;
  /**
   * Reads a key's value through `node` with r=all, as the history records it, for a workload
   * whose keys are not read with the key/value API (the data types). The final phase then reads
   * each key with it once (`final-read`) and through every member (`local-read`, since /dt
   * serves no local=true), instead of each primary's own copy.
   */
  readValue?(client: RingClient, node: string, key: string): Promise<unknown>;
}

function describeError(error: unknown): string {
  if (error instanceof RingClientError) return `${error.code}${error.status === 0 ? '' : ` (${error.status})`}: ${error.message}`.slice(0, 300);
  return (error instanceof Error ? error.message : String(error)).slice(0, 300);
}

/**
 * The completion of a failed write: `fail` only when the client knows nothing was applied
 * (refused connection, bad request, quorum refused before writing); anything else, a timeout
 * above all, is `info`, because the write may yet take effect.
 */
export function writeFailure(error: unknown): Completion {
  const type: CompletionType = error instanceof RingClientError && error.outcome === 'failed' ? 'fail' : 'info';
  return { type, error: describeError(error) };
}

/** The completion of a failed read: always `fail`, since a read changes nothing (Jepsen's convention). */
export function readFailure(error: unknown): Completion {
  return { type: 'fail', error: describeError(error) };
}

/** The integers of siblings whose values are JSON numbers or arrays of numbers, merged, sorted and unique. */
export function siblingIntegers(siblings: readonly StoredValue[]): number[] {
  const values = new Set<number>();
  for (const sibling of siblings) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(sibling.value.toString('utf8'));
    } catch {
      continue;
    }
    for (const item of Array.isArray(parsed) ? parsed : [parsed]) if (typeof item === 'number') values.add(item);
  }
  return [...values].sort((left, right) => left - right);
}

/** The quorum for `level` among `replicas` replicas: ringkv's one quorum rule (src/core/quorum), not a copy of it. */
export function quorumOf(level: 'one' | 'quorum' | 'all', replicas: number): number {
  return resolveQuorum(level, replicas);
}
