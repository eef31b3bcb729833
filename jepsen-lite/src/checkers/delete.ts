/**
 * The delete checker. Each key is written once, read, then deleted with the context of that read,
 * while faults come and go. A delete supersedes exactly the versions its context covers, so a
 * value the delete's read saw must never come back once the delete was acknowledged: not after
 * hints drain, not after read repair, not after anti-entropy (Cassandra's zombie data). A value
 * the read did not see (a write still in flight) may legitimately survive as a sibling.
 */
import { type Operation, pairOperations } from '../history.js';
import { nothingTested } from './checker.js';
import { finalReadValues } from './set.js';

/** What the delete checker found. */
export interface DeleteCheckerResult {
  readonly valid: boolean;
  /** Why the run proves nothing, when it does not (no acknowledged delete, no deleted key read at the end). */
  readonly nothingTested?: string;
  /** Keys with at least one write invoked. */
  readonly keysWritten: number;
  /** Deletes acknowledged (ok). */
  readonly deletesAcknowledged: number;
  /** Acknowledged deletes whose key is back in the final read with a value the delete covered. */
  readonly resurrected: number;
  /** Values in final reads that no client could have written. */
  readonly unexpected: number;
  /** Keys whose final read never succeeded (cannot be judged). */
  readonly unreadKeys: readonly string[];
  /** Reads during the run, after an acknowledged delete, that still saw a covered value (allowed under sloppy quorums; for information). */
  readonly staleReadsAfterDelete: number;
  readonly resurrectedExamples: readonly { key: string; values: readonly number[]; deleteIndex: number }[];
  readonly unexpectedExamples: readonly { key: string; value: number }[];
}

function numbers(value: unknown): number[] {
  return Array.isArray(value) ? (value as unknown[]).filter((item): item is number => typeof item === 'number') : [];
}

/** Judges a delete workload's history. */
export function checkDelete(history: readonly Operation[]): DeleteCheckerResult {
  const possibleValues = new Map<string, Set<number>>();
  const deleted = new Map<string, { covered: Set<number>; completeMs: number; index: number }>();
  const reads: { key: string; invokeMs: number; values: number[] }[] = [];
  let deletesAcknowledged = 0;
  for (const { invoke, completion } of pairOperations(history)) {
    if (typeof invoke.process !== 'number' || invoke.key === undefined) continue;
    if (invoke.f === 'write' && typeof invoke.value === 'number') {
      const set = possibleValues.get(invoke.key) ?? new Set<number>();
      if (completion?.type !== 'fail') set.add(invoke.value);
      possibleValues.set(invoke.key, set);
    } else if (invoke.f === 'delete' && completion?.type === 'ok') {
      deletesAcknowledged += 1;
      const entry = deleted.get(invoke.key) ?? { covered: new Set<number>(), completeMs: completion.timeMs, index: completion.index };
      for (const value of numbers(completion.value)) entry.covered.add(value);
      deleted.set(invoke.key, entry);
    } else if (invoke.f === 'read' && completion?.type === 'ok') {
      reads.push({ key: invoke.key, invokeMs: invoke.timeMs, values: numbers(completion.value) });
    }
  }
  const finals = finalReadValues(history);
  const resurrected: { key: string; values: number[]; deleteIndex: number }[] = [];
  const unexpected: { key: string; value: number }[] = [];
  const unreadKeys: string[] = [];
  for (const [key, possible] of possibleValues) {
    if (!finals.has(key)) {
      unreadKeys.push(key);
      continue;
    }
    const values = numbers(finals.get(key));
    for (const value of values) if (!possible.has(value)) unexpected.push({ key, value });
    const deletion = deleted.get(key);
    if (deletion === undefined) continue;
    const back = values.filter((value) => deletion.covered.has(value));
    if (back.length > 0) resurrected.push({ key, values: back, deleteIndex: deletion.index });
  }
  const staleReadsAfterDelete = reads.filter((read) => {
    const deletion = deleted.get(read.key);
    return deletion !== undefined && read.invokeMs > deletion.completeMs && read.values.some((value) => deletion.covered.has(value));
  }).length;
  const deletedKeysRead = [...deleted.keys()].filter((key) => finals.has(key)).length;
  const emptiness = nothingTested([
    [deletesAcknowledged === 0, 'no delete was acknowledged'],
    [deletedKeysRead === 0, 'no deleted key had a successful final read'],
  ]);
  return {
    valid: emptiness === undefined && resurrected.length === 0 && unexpected.length === 0 && unreadKeys.length === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    keysWritten: possibleValues.size,
    deletesAcknowledged,
    resurrected: resurrected.length,
    unexpected: unexpected.length,
    unreadKeys: unreadKeys.sort().slice(0, 50),
    staleReadsAfterDelete,
    resurrectedExamples: resurrected.slice(0, 20),
    unexpectedExamples: unexpected.slice(0, 20),
  };
}
