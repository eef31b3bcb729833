/**
 * The watch checker of data type updates (the `watch` workload on a plain bucket,
 * jepsen-lite/src/workloads/watch.ts): workers increment counters by 1, watchers follow them with
 * `dataTypes: true` and record each `update` event's dot. An update's reply carries no dot, so the
 * checker identifies updates by counting: a counter of +1 increments holds the number of updates
 * applied to it, F (its final read, with r=all after healing), and each applied update is reported
 * under one dot of its own. The dots of one actor on one key count up by one from 1 (each update
 * adds one to the actor's entry of the key's clock, src/engine/replica.ts), so a counter below the
 * highest one any watcher received of that actor, which no watcher received, is a known update
 * that nobody was told of: a gap. Per key it requires:
 * - **lostOrPhantom**: acknowledged ≤ F ≤ acknowledged + unknown (an acknowledged update lost, or
 *   more applied than were sent);
 * - **extraDots**: no more distinct dots, over all watchers, with the gaps, than F (an update
 *   reported under two dots, a copy reported as an update, or dots that do not count up by one).
 * Per watcher and key:
 * - **duplicates**: no dot received twice, across all its reconnections;
 * - **missed**: at least F − (updates invoked before the watcher's first `ready`, not failed)
 *   distinct dots, less those a `compacted` excuses: a dot another watcher received, or a gap, whose
 *   node this watcher was told `compacted` for, and the updates neither received nor a gap (F −
 *   distinct dots of all watchers − gaps, the newest of some actor) when it was told `compacted`
 *   for any node (its lost log may have held them);
 * - **wrongEvents**: only `update` events of followed keys (a `put` or `delete` is no data type update).
 * A run whose watchers received no update, or in which no update was applied after they were
 * ready, proves nothing and is invalid.
 */
import { type Operation, pairOperations } from '../history.js';
import { type CheckerResult, nothingTested } from './checker.js';
import { follows, watcherLogs } from './watch.js';
import type { VersionedRead } from '../workloads/watch.js';

/** The verdict on data type watches. */
export interface WatchDataTypesResult extends CheckerResult {
  readonly watchers: number;
  /** Update events the watchers received. */
  readonly events: number;
  readonly acknowledged: number;
  readonly unknown: number;
  /** Per key, the updates applied (the final reads' values), summed. */
  readonly applied: number;
  /** (watcher, applied update) pairs the watchers had to report. */
  readonly required: number;
  readonly missed: number;
  /** Required updates a compacted excused. */
  readonly excused: number;
  readonly duplicates: number;
  readonly extraDots: number;
  readonly lostOrPhantom: number;
  readonly wrongEvents: number;
  readonly compacted: number;
  readonly examples: readonly string[];
}

/** One update of the workload as the history shows it. */
interface Update {
  readonly key: string;
  readonly invokeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info' | 'open';
}

const maxExamples = 10;

/** Whether `dot` (`actor:counter`) is one of `node`'s: an actor is `node.storageEpoch.keyEpoch` (src/engine/actor-lease.ts). */
function issuedBy(dot: string, node: string): boolean {
  return dot.startsWith(`${node}.`);
}

/** The dots below each actor's highest one in `dots` that are not in it, as `actor:counter`. */
function gapsOf(dots: ReadonlySet<string>): string[] {
  const highest = new Map<string, number>();
  for (const dot of dots) {
    const at = dot.lastIndexOf(':');
    const actor = dot.slice(0, at);
    highest.set(actor, Math.max(highest.get(actor) ?? 0, Number(dot.slice(at + 1))));
  }
  return [...highest].flatMap(([actor, top]) => Array.from({ length: top - 1 }, (_, index) => `${actor}:${index + 1}`).filter((dot) => !dots.has(dot)));
}

/** Judges a watch run of data type updates. */
export function checkWatchDataTypes(history: readonly Operation[]): WatchDataTypesResult {
  const updates: Update[] = [];
  for (const { invoke, completion } of pairOperations(history)) {
    if (invoke.f !== 'increment' || typeof invoke.process !== 'number' || invoke.key === undefined) continue;
    updates.push({ key: invoke.key, invokeMs: invoke.timeMs, outcome: completion === undefined ? 'open' : (completion.type as Update['outcome']) });
  }
  const finals = new Map<string, number>();
  for (const operation of history) {
    if (operation.f === 'final-read' && operation.type === 'ok' && operation.key !== undefined)
      finals.set(operation.key, (operation.value as VersionedRead).version);
  }
  // A data type watcher's records alone: no check here needs when an event came.
  const watchers = new Map([...watcherLogs(history)].map(([name, log]) => [name, { ...log, events: log.events.map((event) => event.record) }]));
  const examples: string[] = [];
  const note = (text: string): void => {
    if (examples.length < maxExamples) examples.push(text);
  };
  const keys = [...new Set([...updates.map((update) => update.key), ...finals.keys()])].sort();
  let lostOrPhantom = 0;
  let extraDots = 0;
  const allDots = new Map<string, Set<string>>();
  for (const key of keys) {
    const ofKey = updates.filter((update) => update.key === key);
    const acknowledged = ofKey.filter((update) => update.outcome === 'ok').length;
    const unknown = ofKey.filter((update) => update.outcome === 'info' || update.outcome === 'open').length;
    const final = finals.get(key);
    if (final === undefined) {
      note(`${key}: no final read`);
    } else if (final < acknowledged || final > acknowledged + unknown) {
      lostOrPhantom += 1;
      note(`${key}: final value ${final}, but ${acknowledged} updates acknowledged and ${unknown} unknown`);
    }
    const dots = new Set(
      [...watchers.values()].flatMap((log) => log.events.filter((record) => record.event === 'update' && record.key === key).map((record) => record.dot ?? '')),
    );
    const known = new Set([...dots, ...gapsOf(dots)]);
    allDots.set(key, known);
    if (final !== undefined && known.size > final) {
      extraDots += known.size - final;
      note(`${key}: the watchers received ${dots.size} distinct dots, with ${known.size - dots.size} gaps, for ${final} updates applied`);
    }
  }
  let events = 0;
  let required = 0;
  let missed = 0;
  let excused = 0;
  let duplicates = 0;
  let wrongEvents = 0;
  let compacted = 0;
  for (const [name, log] of [...watchers].sort(([left], [right]) => (left < right ? -1 : 1))) {
    if (log.readyMs === undefined) {
      note(`${name} never became ready`);
      missed += 1;
      continue;
    }
    const readyMs = log.readyMs;
    const compactions = log.events.filter((record) => record.event === 'compacted');
    const compactedNodes = new Set(compactions.flatMap((record) => record.nodes ?? []));
    compacted += compactions.length;
    for (const record of log.events) {
      if (record.event === 'compacted' || (record.event === 'update' && record.key !== undefined && follows(log.target, record.key))) continue;
      wrongEvents += 1;
      note(`${name}: ${record.event} event of ${record.key ?? 'no key'}, not an update of a followed counter`);
    }
    for (const key of keys) {
      if (!follows(log.target, key)) continue;
      const received = log.events.filter((record) => record.event === 'update' && record.key === key).map((record) => record.dot ?? '');
      events += received.length;
      const distinct = new Set(received);
      if (distinct.size < received.length) {
        duplicates += received.length - distinct.size;
        note(`${name} ${key}: ${received.length - distinct.size} dots received twice, e.g. ${received.find((dot, index) => received.indexOf(dot) !== index)}`);
      }
      const final = finals.get(key);
      if (final === undefined) continue;
      const before = updates.filter((update) => update.key === key && update.outcome !== 'fail' && update.invokeMs < readyMs).length;
      const owed = Math.max(0, final - before);
      required += owed;
      const deficit = owed - distinct.size;
      if (deficit <= 0) continue;
      const everyone = allDots.get(key) ?? new Set<string>();
      const excusable =
        [...everyone].filter((dot) => !distinct.has(dot) && [...compactedNodes].some((node) => issuedBy(dot, node))).length +
        (compactedNodes.size > 0 ? Math.max(0, final - everyone.size) : 0);
      excused += Math.min(deficit, excusable);
      if (deficit > excusable) {
        missed += deficit - excusable;
        const unseen = [...everyone].filter((dot) => !distinct.has(dot));
        note(
          `${name} ${key}: ${distinct.size} distinct dots of ${final} updates applied (${before} invoked before it was ready), ${deficit - excusable} missed; ${unseen.length > 0 ? `not received (by others, or a gap): ${unseen.slice(0, 3).join(', ')}` : 'no watcher received them'}`,
        );
      }
    }
  }
  const acknowledged = updates.filter((update) => update.outcome === 'ok').length;
  const unknown = updates.filter((update) => update.outcome === 'info' || update.outcome === 'open').length;
  const applied = [...finals.values()].reduce((sum, value) => sum + value, 0);
  const empty = nothingTested([
    [watchers.size === 0, 'no watcher recorded anything'],
    [events === 0, 'the watchers received no update event'],
    [required === 0, 'no update was applied after a watcher was ready'],
  ]);
  const valid = missed === 0 && duplicates === 0 && extraDots === 0 && lostOrPhantom === 0 && wrongEvents === 0 && empty === undefined;
  return {
    valid,
    ...(empty === undefined ? {} : { nothingTested: empty }),
    watchers: watchers.size,
    events,
    acknowledged,
    unknown,
    applied,
    required,
    missed,
    excused,
    duplicates,
    extraDots,
    lostOrPhantom,
    wrongEvents,
    compacted,
    examples,
  };
}
