/**
 * Convergence: once every fault is healed and the quiet period has passed, every replica of a
 * key must hold the same set of values, and it must be the set the final `r=all` read returned.
 * The runner reads each key's own copy on each of its primaries (`?local=true`) and records
 * those reads as `local-read` operations; this checker compares the last one of each replica.
 */
import type { Operation } from '../history.js';
import { nothingTested } from './checker.js';
import { finalReadValues } from './set.js';

/** A key whose replicas disagree. */
export interface Divergence {
  readonly key: string;
  /** What the final r=all read returned (undefined when it never succeeded). */
  readonly finalRead: unknown;
  /** Each replica's own copy, or "no answer". */
  readonly replicas: Readonly<Record<string, unknown>>;
}

/** What the convergence checker found. */
export interface ConvergenceResult {
  readonly valid: boolean;
  /** Why the check proves nothing, when it does not (no key read on its replicas). */
  readonly nothingTested?: string;
  readonly keysChecked: number;
  readonly divergedKeys: number;
  /** Up to 20 diverged keys with every replica's value. */
  readonly diverged: readonly Divergence[];
}

function canonical(value: unknown): string {
  const list = Array.isArray(value) ? [...(value as unknown[])] : value === undefined ? [] : [value];
  return JSON.stringify(list.map((item) => JSON.stringify(item)).sort());
}

/** Judges whether the replicas of every locally read key agree with each other and with the final read. */
export function checkConvergence(history: readonly Operation[]): ConvergenceResult {
  const copies = new Map<string, Map<string, { answered: boolean; value: unknown }>>();
  for (const operation of history) {
    if (operation.f !== 'local-read' || operation.type === 'invoke' || operation.key === undefined || operation.node === undefined) continue;
    const byNode = copies.get(operation.key) ?? new Map<string, { answered: boolean; value: unknown }>();
    byNode.set(operation.node, { answered: operation.type === 'ok', value: operation.value });
    copies.set(operation.key, byNode);
  }
  const finals = finalReadValues(history);
  const diverged: Divergence[] = [];
  let divergedKeys = 0;
  for (const [key, byNode] of [...copies].sort(([left], [right]) => left.localeCompare(right))) {
    const finalRead = finals.get(key);
    const expected = finals.has(key) ? canonical(finalRead) : undefined;
    const agrees = [...byNode.values()].every((copy) => copy.answered && (expected === undefined || canonical(copy.value) === expected));
    const versions = new Set([...byNode.values()].map((copy) => (copy.answered ? canonical(copy.value) : 'no answer')));
    if (agrees && versions.size === 1 && expected !== undefined) continue;
    divergedKeys += 1;
    if (diverged.length < 20) {
      const replicas: Record<string, unknown> = {};
      for (const [node, copy] of byNode) replicas[node] = copy.answered ? copy.value : 'no answer';
      diverged.push({ key, finalRead, replicas });
    }
  }
  const emptiness = nothingTested([[copies.size === 0, 'no key was read on its replicas']]);
  return {
    valid: emptiness === undefined && divergedKeys === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    keysChecked: copies.size,
    divergedKeys,
    diverged,
  };
}
