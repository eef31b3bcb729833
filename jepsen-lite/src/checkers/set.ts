/**
 * Jepsen's set checker. Clients add unique elements to sets; after healing, a final read of each
 * key shows what survived. An element whose add was acknowledged must be there (else it is
 * lost); nothing may be there that no client ever tried to add (unexpected); an add that
 * certainly failed must not be there either; adds of unknown outcome may go either way, and
 * those that made it are "recovered".
 */
import { type Operation, pairOperations } from '../history.js';
import { nothingTested } from './checker.js';

/** What the set checker found. */
export interface SetCheckerResult {
  readonly valid: boolean;
  /** Why the run proves nothing, when it does not. */
  readonly nothingTested?: string;
  /** Adds invoked. */
  readonly attempted: number;
  /** Adds acknowledged (ok). */
  readonly acknowledged: number;
  /** Acknowledged adds missing from the final read. */
  readonly lost: number;
  /** Adds of unknown outcome (info, or no completion) present in the final read. */
  readonly recovered: number;
  /** Elements in the final read that were never attempted on that key. */
  readonly unexpected: number;
  /** Adds that completed `fail` (certainly not applied) yet are present. */
  readonly failedButPresent: number;
  /** Mid-run reads that found concurrent versions (siblings): shows the merge path was exercised. */
  readonly readsWithSiblings: number;
  /** The most siblings one read found. */
  readonly maxSiblings: number;
  /** Keys whose final read never succeeded: their adds cannot be judged. */
  readonly unreadKeys: readonly string[];
  /** Up to 50 lost elements, as key/element. */
  readonly lostElements: readonly { key: string; element: number }[];
  readonly unexpectedElements: readonly { key: string; element: number }[];
  readonly failedButPresentElements: readonly { key: string; element: number }[];
}

const listLimit = 50;

/** The final value of each key: the last successful final-read. */
export function finalReadValues(history: readonly Operation[]): Map<string, unknown> {
  const finals = new Map<string, unknown>();
  for (const operation of history) {
    if (operation.f === 'final-read' && operation.type === 'ok' && operation.key !== undefined) finals.set(operation.key, operation.value);
  }
  return finals;
}

/** Judges a set workload's history. */
export function checkSet(history: readonly Operation[]): SetCheckerResult {
  const outcomes = new Map<string, { key: string; element: number; outcome: 'ok' | 'fail' | 'info' }>();
  for (const { invoke, completion } of pairOperations(history)) {
    if (invoke.f !== 'add' || typeof invoke.process !== 'number' || invoke.key === undefined || typeof invoke.value !== 'number') continue;
    const outcome = completion === undefined ? 'info' : completion.type === 'invoke' ? 'info' : completion.type;
    outcomes.set(`${invoke.key}\u0000${invoke.value}`, { key: invoke.key, element: invoke.value, outcome });
  }
  const finals = finalReadValues(history);
  const present = new Set<string>();
  const unexpected: { key: string; element: number }[] = [];
  for (const [key, value] of finals) {
    for (const element of Array.isArray(value) ? (value as unknown[]) : []) {
      if (typeof element !== 'number') continue;
      const id = `${key}\u0000${element}`;
      present.add(id);
      if (!outcomes.has(id)) unexpected.push({ key, element });
    }
  }
  const unreadKeys = new Set<string>();
  const lost: { key: string; element: number }[] = [];
  const failedButPresent: { key: string; element: number }[] = [];
  let acknowledged = 0;
  let recovered = 0;
  for (const [id, { key, element, outcome }] of outcomes) {
    if (outcome === 'ok') acknowledged += 1;
    if (!finals.has(key)) {
      unreadKeys.add(key);
      continue;
    }
    const isPresent = present.has(id);
    if (outcome === 'ok') {
      if (!isPresent) lost.push({ key, element });
    } else if (outcome === 'info') {
      if (isPresent) recovered += 1;
    } else if (isPresent) {
      failedButPresent.push({ key, element });
    }
  }
  let readsWithSiblings = 0;
  let maxSiblings = 0;
  for (const operation of history) {
    if (operation.f !== 'read' || operation.type !== 'ok') continue;
    const siblings = (operation.value as { siblings?: unknown } | undefined)?.siblings;
    if (typeof siblings !== 'number') continue;
    if (siblings > 1) readsWithSiblings += 1;
    maxSiblings = Math.max(maxSiblings, siblings);
  }
  const byKeyAndElement = (left: { key: string; element: number }, right: { key: string; element: number }): number =>
    left.key.localeCompare(right.key) || left.element - right.element;
  const emptiness = nothingTested([
    [acknowledged === 0, 'no add was acknowledged'],
    [finals.size === 0, 'no final read succeeded'],
  ]);
  return {
    valid: emptiness === undefined && lost.length === 0 && unexpected.length === 0 && failedButPresent.length === 0 && unreadKeys.size === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    attempted: outcomes.size,
    acknowledged,
    lost: lost.length,
    recovered,
    unexpected: unexpected.length,
    failedButPresent: failedButPresent.length,
    readsWithSiblings,
    maxSiblings,
    unreadKeys: [...unreadKeys].sort(),
    lostElements: lost.sort(byKeyAndElement).slice(0, listLimit),
    unexpectedElements: unexpected.sort(byKeyAndElement).slice(0, listLimit),
    failedButPresentElements: failedButPresent.sort(byKeyAndElement).slice(0, listLimit),
  };
}
