/**
 * Hand-written histories for checker tests: a tiny builder that numbers entries the way the
 * recorder does, so tests read like the history.jsonl they stand for.
 */
import type { Operation, OperationDraft } from '../src/history.js';

/** Builds a history one entry at a time; each entry gets the next index and the given time. */
export class HistoryBuilder {
  readonly operations: Operation[] = [];

  /** Appends an entry at `timeMs`. */
  at(timeMs: number, draft: OperationDraft): this {
    this.operations.push({ index: this.operations.length, ...draft, timeMs });
    return this;
  }

  /** An invocation and its completion. */
  op(startMs: number, endMs: number, invoke: Omit<OperationDraft, 'type'>, completion: Partial<OperationDraft> & { type: OperationDraft['type'] }): this {
    this.at(startMs, { ...invoke, type: 'invoke' });
    return this.at(endMs, { ...invoke, ...completion });
  }

  /** A nemesis fault in force from `startMs` to `endMs`. */
  fault(startMs: number, endMs: number, value: unknown = { kind: 'partition', grudge: 'halves' }): this {
    this.at(startMs, { type: 'invoke', process: 'nemesis', f: 'start', value });
    this.at(startMs + 1, { type: 'info', process: 'nemesis', f: 'start', value });
    this.at(endMs - 1, { type: 'invoke', process: 'nemesis', f: 'stop', value });
    return this.at(endMs, { type: 'info', process: 'nemesis', f: 'stop', value });
  }

  /** A successful final r=all read of `key`. */
  finalRead(timeMs: number, key: string, value: unknown): this {
    return this.op(timeMs, timeMs + 1, { process: 'final-0', f: 'final-read', key }, { type: 'ok', value });
  }

  /** A successful local read of `key` on `node`. */
  localRead(timeMs: number, key: string, node: string, value: unknown): this {
    return this.op(timeMs, timeMs + 1, { process: 'final-1', f: 'local-read', key, node }, { type: 'ok', value });
  }

  /** The history, sorted by time as a recorder would have written it. */
  build(): Operation[] {
    return [...this.operations]
      .sort((left, right) => left.timeMs - right.timeMs || left.index - right.index)
      .map((operation, index) => ({ ...operation, index }));
  }
}
