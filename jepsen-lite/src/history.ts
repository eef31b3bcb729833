/**
 * The history of a run, as Jepsen keeps it: every client operation is recorded once when it is
 * invoked and once when it completes, and the nemesis records its faults the same way. The
 * checkers are pure functions over this list.
 */
import { type WriteStream, createWriteStream } from 'node:fs';

/** How an operation ended: `ok` it happened, `fail` it certainly did not, `info` nobody knows. */
export type CompletionType = 'ok' | 'fail' | 'info';

/** An entry's type: the invocation, or one of the three completions. */
export type OperationType = 'invoke' | CompletionType;

/** Who performed an operation: a client process number, the nemesis, or one of the final readers after healing. */
export type Process = number | 'nemesis' | `final-${number}` | `watch-${number}`;

/** One history entry (one line of history.jsonl). */
export interface Operation {
  /** Position in the history, from 0. */
  readonly index: number;
  readonly type: OperationType;
  readonly process: Process;
  /** The operation's function: add, read, write, delete, final-read, local-read, start, stop, heal. */
  readonly f: string;
  readonly key?: string;
  /** Workload-specific: the element added, the values read, the value written, the fault started. */
  readonly value?: unknown;
  /** Milliseconds since the run started (monotonic clock). */
  readonly timeMs: number;
  /** The node (host:port) the operation was sent to. */
  readonly node?: string;
  /** Replicas a read had to hear from. */
  readonly r?: number;
  /** Replicas a write had to be acknowledged by. */
  readonly w?: number;
  /** Why it failed or is unknown. */
  readonly error?: string;
}

/** An operation as a caller describes it, before the history numbers and stamps it. */
export type OperationDraft = Omit<Operation, 'index' | 'timeMs'>;

/** An invocation and its completion (absent when the run ended first). */
export interface OperationPair {
  readonly invoke: Operation;
  readonly completion: Operation | undefined;
}

/** Pairs each invocation with the next completion of the same process (a process runs one operation at a time). */
export function pairOperations(history: readonly Operation[]): OperationPair[] {
  const pairs: { invoke: Operation; completion: Operation | undefined }[] = [];
  const open = new Map<Process, { invoke: Operation; completion: Operation | undefined }>();
  for (const operation of history) {
    if (operation.type === 'invoke') {
      const pair = { invoke: operation, completion: undefined };
      pairs.push(pair);
      open.set(operation.process, pair);
      continue;
    }
    const pair = open.get(operation.process);
    if (pair === undefined) continue;
    pair.completion = operation;
    open.delete(operation.process);
  }
  return pairs;
}

/** A time span of the run in milliseconds since its start. */
export interface Interval {
  readonly startMs: number;
  readonly endMs: number;
  /** What was going on, such as "partition halves" or "kill n2". */
  readonly label: string;
}

/**
 * The intervals during which a fault was in force: from each nemesis `start` invocation to the
 * completion of the `stop` (or `heal`) that ended it, or to the end of the history.
 */
export function faultIntervals(history: readonly Operation[]): Interval[] {
  const intervals: Interval[] = [];
  let open: { startMs: number; label: string } | undefined;
  const endMs = history.length === 0 ? 0 : (history[history.length - 1] as Operation).timeMs;
  for (const operation of history) {
    if (operation.process !== 'nemesis') continue;
    if (operation.f === 'start' && operation.type === 'invoke' && open === undefined) {
      open = { startMs: operation.timeMs, label: faultLabel(operation.value) };
    } else if ((operation.f === 'stop' || operation.f === 'heal') && operation.type !== 'invoke' && open !== undefined) {
      intervals.push({ startMs: open.startMs, endMs: operation.timeMs, label: open.label });
      open = undefined;
    }
  }
  if (open !== undefined) intervals.push({ startMs: open.startMs, endMs, label: open.label });
  return intervals;
}

/** A fault's short description, from the value of its nemesis operation. */
export function faultLabel(value: unknown): string {
  const fault = value as { kind?: string; grudge?: string; nodes?: string[] } | undefined;
  if (fault?.kind === 'partition') return `partition ${fault.grudge ?? ''}`.trim();
  if (fault?.kind !== undefined) return `${fault.kind} ${(fault.nodes ?? []).join(',')}`.trim();
  return 'fault';
}

/** Whether [startMs, endMs] overlaps any interval, each widened at its end by `marginMs`. */
export function overlapsAny(startMs: number, endMs: number, intervals: readonly Interval[], marginMs = 0): boolean {
  return intervals.some((interval) => startMs <= interval.endMs + marginMs && endMs >= interval.startMs);
}

/**
 * The history of a running test: numbers and time-stamps entries, keeps them in memory for the
 * checkers and appends each to history.jsonl as it happens, so a crashed run still leaves one.
 */
export class HistoryRecorder {
  private readonly entries: Operation[] = [];
  private readonly startNs = process.hrtime.bigint();
  private readonly file: WriteStream | undefined;
  private closed = false;

  constructor(path?: string) {
    this.file = path === undefined ? undefined : createWriteStream(path, { flags: 'w' });
  }

  /** Milliseconds since the recorder was created (the run's time zero). */
  nowMs(): number {
    return Number(process.hrtime.bigint() - this.startNs) / 1e6;
  }

  /** Records one entry and returns it. */
  record(draft: OperationDraft): Operation {
    // Field order is for people reading history.jsonl: what happened first, then the details.
    const { type, process: performer, f, ...details } = draft;
    const operation: Operation = { index: this.entries.length, type, process: performer, f, ...details, timeMs: Math.round(this.nowMs() * 1000) / 1000 };
    this.entries.push(operation);
    if (!this.closed) this.file?.write(`${JSON.stringify(operation)}\n`);
    return operation;
  }

  /** Every entry so far. */
  get operations(): readonly Operation[] {
    return this.entries;
  }

  /** Flushes and closes history.jsonl; later calls do nothing. */
  async close(): Promise<void> {
    const file = this.file;
    if (file === undefined || this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve, reject) => file.end((error?: Error | null) => (error ? reject(error) : resolve())));
  }
}

/** Parses history.jsonl text back into operations (for re-checking a stored run). */
export function parseHistory(text: string): Operation[] {
  return text
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line) => JSON.parse(line) as Operation);
}
