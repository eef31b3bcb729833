/**
 * The watch checker (the `watch` workload, jepsen-lite/src/workloads/watch.ts): compares what
 * each watcher received (its `watch-event` entries, over all its reconnections) with the
 * acknowledged writes and the final reads. Per watcher and key it requires:
 * - nothing twice and nothing out of order: the versions of its events strictly rise;
 * - the right values: an event's value is the one acknowledged for its version, and never the
 *   value of a write that certainly did not happen, nor one nobody wrote;
 * - nothing missed: every write acknowledged after the watcher's first `ready` (invoked after
 *   it) is among its events, unless a `compacted` covers it: one for the key naming its
 *   version, or, for a version newer than every one the watcher received of the key, one for
 *   some node received after the write began (that node's lost log may have held it, as the
 *   README says; a version older than one received is named by a compacted for the key);
 * - the end: its last version of each key is at least the final read's, unless a compacted
 *   after the last write covers it.
 * A run whose watchers received no write event, or that acknowledged no write a watcher had
 * to see, proves nothing and is invalid.
 */
import { type Operation, pairOperations } from '../history.js';
import { type CheckerResult, nothingTested } from './checker.js';
import type { VersionedRead, WatchRecord } from '../workloads/watch.js';

/** The watch checker's verdict. */
export interface WatchResult extends CheckerResult {
  readonly watchers: number;
  /** Write events (put and delete) the watchers received. */
  readonly events: number;
  readonly acknowledged: number;
  /** (watcher, acknowledged write) pairs the watcher had to report. */
  readonly required: number;
  readonly missed: number;
  /** Required writes a compacted excused. */
  readonly excused: number;
  readonly duplicatesOrReordered: number;
  readonly wrongValues: number;
  readonly shortAtEnd: number;
  readonly compacted: number;
  readonly examples: readonly string[];
}

/** A write of the workload as the history shows it. */
interface Write {
  readonly key: string;
  readonly value: number;
  readonly invokeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info' | 'open';
  readonly version: number | null;
}

/** One watcher's events. */
export interface WatcherLog {
  /** What it follows (its `watch-start`): one key, or every key with a prefix. */
  target: { readonly key?: string; readonly prefix?: string } | undefined;
  /** When its first `ready` came (writes invoked before it need not reach it). */
  readyMs: number | undefined;
  /** Every event but `ready`, in the order they came. */
  readonly events: { readonly timeMs: number; readonly record: WatchRecord }[];
}

/** Each watcher's log (by process name), from its `watch-start` and `watch-event` operations. */
export function watcherLogs(history: readonly Operation[]): Map<string, WatcherLog> {
  const watchers = new Map<string, WatcherLog>();
  for (const operation of history) {
    if ((operation.f !== 'watch-event' && operation.f !== 'watch-start') || typeof operation.process !== 'string') continue;
    const log = watchers.get(operation.process) ?? { target: undefined, readyMs: undefined, events: [] };
    watchers.set(operation.process, log);
    if (operation.f === 'watch-start') {
      log.target = operation.value as { key?: string; prefix?: string };
      continue;
    }
    const record = operation.value as WatchRecord;
    if (record.event === 'ready') log.readyMs ??= operation.timeMs;
    else log.events.push({ timeMs: operation.timeMs, record });
  }
  return watchers;
}

/** Whether a watcher of `target` follows `key`. */
export function follows(target: WatcherLog['target'], key: string): boolean {
  return key === target?.key || (target?.prefix !== undefined && key.startsWith(target.prefix));
}

const maxExamples = 10;

/** Judges a watch run. */
export function checkWatch(history: readonly Operation[]): WatchResult {
  const writes: Write[] = [];
  for (const { invoke, completion } of pairOperations(history)) {
    if (invoke.f !== 'write' || typeof invoke.process !== 'number' || invoke.key === undefined) continue;
    const outcome = completion === undefined ? 'open' : (completion.type as 'ok' | 'fail' | 'info');
    const acknowledged = completion?.type === 'ok' ? (completion.value as { version: number | null }) : undefined;
    writes.push({ key: invoke.key, value: invoke.value as number, invokeMs: invoke.timeMs, outcome, version: acknowledged?.version ?? null });
  }
  const finals = new Map<string, VersionedRead>();
  for (const operation of history) {
    if (operation.f === 'final-read' && operation.type === 'ok' && operation.key !== undefined) finals.set(operation.key, operation.value as VersionedRead);
  }
  const watchers = watcherLogs(history);
  const byKeyVersion = new Map<string, Write>();
  const byValue = new Map<string, Write>();
  for (const write of writes) {
    if (write.outcome === 'ok' && write.version !== null) byKeyVersion.set(`${write.key}@${write.version}`, write);
    byValue.set(`${write.key}=${write.value}`, write);
  }
  const keys = [...new Set([...writes.map((write) => write.key), ...finals.keys()])].sort();
  const examples: string[] = [];
  const note = (text: string): void => {
    if (examples.length < maxExamples) examples.push(text);
  };
  let events = 0;
  let required = 0;
  let missed = 0;
  let excused = 0;
  let duplicatesOrReordered = 0;
  let wrongValues = 0;
  let shortAtEnd = 0;
  let compacted = 0;
  for (const [name, log] of [...watchers].sort(([left], [right]) => (left < right ? -1 : 1))) {
    if (log.readyMs === undefined) {
      note(`${name} never became ready`);
      missed += 1;
      continue;
    }
    const readyMs = log.readyMs;
    const compactions = log.events.filter((event) => event.record.event === 'compacted');
    compacted += compactions.length;
    // A compacted for the key names the versions missing. One for a node (its log was lost) can
    // only excuse the newest versions: once a later version of the key arrives, the watch itself
    // names the versions skipped (a compacted for the key), so a gap before it is never silent.
    const excusedBy = (key: string, version: number, sinceMs: number, lastSeen: number): boolean =>
      compactions.some(
        ({ record, timeMs }) =>
          (record.key === key && record.missing !== undefined && record.missing.from <= version && version <= record.missing.to) ||
          (record.key === undefined && timeMs >= sinceMs && version > lastSeen),
      );
    for (const key of keys) {
      if (!follows(log.target, key)) continue;
      const seen = log.events.filter((event) => event.record.key === key && (event.record.event === 'put' || event.record.event === 'delete'));
      events += seen.length;
      let last = 0;
      const versions = new Set<number>();
      for (const { record } of seen) {
        const version = record.version ?? 0;
        if (version <= last) {
          duplicatesOrReordered += 1;
          note(`${name} ${key}: version ${version} after ${last} (twice or out of order)`);
        }
        last = Math.max(last, version);
        versions.add(version);
        const acknowledged = byKeyVersion.get(`${key}@${version}`);
        const written = byValue.get(`${key}=${String(record.value)}`);
        const otherVersion = written?.outcome === 'ok' && written.version !== null && written.version !== version;
        if (
          record.event === 'delete' ||
          written === undefined ||
          written.outcome === 'fail' ||
          otherVersion ||
          (acknowledged !== undefined && acknowledged.value !== record.value)
        ) {
          wrongValues += 1;
          note(
            `${name} ${key}: version ${version} reported as ${record.event} ${String(record.value)}, ${acknowledged !== undefined ? `acknowledged as ${acknowledged.value}` : written === undefined ? 'a value nobody wrote' : otherVersion ? `acknowledged as version ${written.version}` : `written by a ${written.outcome} write`}`,
          );
        }
      }
      for (const write of writes) {
        if (write.key !== key || write.outcome !== 'ok' || write.version === null || write.invokeMs < readyMs) continue;
        required += 1;
        if (versions.has(write.version)) continue;
        if (excusedBy(key, write.version, write.invokeMs, last)) excused += 1;
        else {
          missed += 1;
          note(`${name} ${key}: acknowledged version ${write.version} (value ${write.value}, invoked at ${write.invokeMs} ms) never reported`);
        }
      }
      const final = finals.get(key);
      const lastWriteMs = Math.max(0, ...writes.filter((write) => write.key === key).map((write) => write.invokeMs));
      if (final !== undefined && last < final.version && !excusedBy(key, final.version, lastWriteMs, last)) {
        shortAtEnd += 1;
        note(`${name} ${key}: last reported version ${last}, the final read shows ${final.version}`);
      }
    }
  }
  const acknowledged = writes.filter((write) => write.outcome === 'ok').length;
  const empty = nothingTested([
    [watchers.size === 0, 'no watcher recorded anything'],
    [events === 0, 'the watchers received no write event'],
    [required === 0, 'no acknowledged write came after a watcher was ready'],
  ]);
  const valid = missed === 0 && duplicatesOrReordered === 0 && wrongValues === 0 && shortAtEnd === 0 && empty === undefined;
  return {
    valid,
    ...(empty === undefined ? {} : { nothingTested: empty }),
    watchers: watchers.size,
    events,
    acknowledged,
    required,
    missed,
    excused,
    duplicatesOrReordered,
    wrongValues,
    shortAtEnd,
    compacted,
    examples,
  };
}
