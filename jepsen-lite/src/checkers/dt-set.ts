/**
 * The dt-set checker (ringkv's set data type, /dt: an observed-remove set). Clients add elements
 * to a few sets, remove elements they have just read (the remove carries that read's context, so
 * it removes exactly the adds the read observed), and now and then add a removed element again.
 * After healing each set is read with r=all and on every node.
 *
 * An add or remove that ended `ok` happened, `fail` did not, `info` may have. A remove operation
 * reads the set first and removes only an element that read saw; its history entry spans both.
 * What is checked, per key, on the final read:
 *
 * - **lost** (invalid): an element with an acknowledged add is absent, although no remove of it
 *   that did not certainly fail ended after that add began. (A remove that ended before the add
 *   began cannot have observed it, so cannot have removed it; this holds for a remove of unknown
 *   outcome too, applied however late, since its context is that of its read, which ended
 *   before the client gave up.)
 * - **resurrected** (invalid): an element is present although every add of it was surely removed.
 *   An add is surely removed by an acknowledged remove of its element when it is the only add of
 *   that element invoked before the remove completed: the remove's read saw the element, so it
 *   observed that add. With several adds of the element before a remove, its read may have seen
 *   only some of them (a stale replica), and an observed-remove set rightly keeps the others, so
 *   no verdict is drawn from that remove. Adds concurrent with or after every remove keep the
 *   element, rightly.
 * - **unexpected** (invalid): an element in any read that no add of that key (not certainly
 *   failed) had been invoked for; **failedButPresent** (invalid): present at the end though its
 *   every add failed.
 * - the final r=all read and every node's read of the key must agree (**disagreeing**, invalid).
 * - **nothing was tested** (invalid): no acknowledged add, no key read at the end, or no
 *   acknowledged add that the final read could be held to.
 */
import { type Operation, pairOperations } from '../history.js';
import { nothingTested } from './checker.js';

interface SetOperation {
  readonly element: string;
  readonly invokeMs: number;
  /** When the client saw it end (ok, fail or gave up); Infinity when the run ended first. */
  readonly completeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info';
}

/** What the dt-set checker found. */
export interface DtSetCheckerResult {
  readonly valid: boolean;
  readonly nothingTested?: string;
  readonly adds: number;
  readonly acknowledgedAdds: number;
  readonly removes: number;
  readonly acknowledgedRemoves: number;
  /** Acknowledged adds the final read was held to (no remove could have covered them). */
  readonly addsChecked: number;
  /** Elements surely removed, whose absence the final read was held to. */
  readonly removalsChecked: number;
  readonly lost: number;
  readonly resurrected: number;
  readonly unexpected: number;
  readonly failedButPresent: number;
  readonly disagreeingKeys: number;
  readonly unreadKeys: readonly string[];
  readonly lostExamples: readonly { key: string; element: string }[];
  readonly resurrectedExamples: readonly { key: string; element: string }[];
  readonly unexpectedExamples: readonly { key: string; element: string; index: number }[];
  readonly disagreeingExamples: readonly { key: string; values: Readonly<Record<string, readonly string[]>> }[];
}

function elements(value: unknown): string[] | undefined {
  if (value === null) return [];
  return Array.isArray(value) ? (value as unknown[]).filter((item): item is string => typeof item === 'string') : undefined;
}

function outcomeOf(completion: Operation | undefined): 'ok' | 'fail' | 'info' {
  return completion === undefined || completion.type === 'invoke' ? 'info' : completion.type;
}

/** Judges a dt-set workload's history. */
export function checkDtSet(history: readonly Operation[]): DtSetCheckerResult {
  const adds = new Map<string, SetOperation[]>();
  const removes = new Map<string, SetOperation[]>();
  const reads: { key: string; completeMs: number; index: number; values: string[] }[] = [];
  const finals = new Map<string, string[]>();
  const everyNode = new Map<string, Map<string, string[]>>();
  for (const { invoke, completion } of pairOperations(history)) {
    if (invoke.key === undefined) continue;
    if ((invoke.f === 'add' || invoke.f === 'remove') && typeof invoke.process === 'number' && typeof invoke.value === 'string') {
      const outcome = outcomeOf(completion);
      // Even a remove of unknown outcome removes only what its read saw, and that read ended
      // before the client gave up: its completion bounds what it can cover.
      const entry = {
        element: invoke.value,
        invokeMs: invoke.timeMs,
        completeMs: completion === undefined ? Number.POSITIVE_INFINITY : completion.timeMs,
        outcome,
      };
      const target = invoke.f === 'add' ? adds : removes;
      target.set(invoke.key, [...(target.get(invoke.key) ?? []), entry]);
    } else if ((invoke.f === 'read' || invoke.f === 'final-read' || invoke.f === 'local-read') && completion?.type === 'ok') {
      const values = elements(completion.value);
      if (values === undefined) continue;
      reads.push({ key: invoke.key, completeMs: completion.timeMs, index: completion.index, values });
      if (invoke.f === 'final-read') finals.set(invoke.key, values);
      else if (invoke.f === 'local-read') {
        const byNode = everyNode.get(invoke.key) ?? new Map<string, string[]>();
        byNode.set(invoke.node ?? `#${invoke.index}`, values);
        everyNode.set(invoke.key, byNode);
      }
    }
  }
  const unexpected: { key: string; element: string; index: number }[] = [];
  for (const read of reads) {
    const possible = new Set((adds.get(read.key) ?? []).filter((add) => add.outcome !== 'fail' && add.invokeMs < read.completeMs).map((add) => add.element));
    for (const element of read.values) if (!possible.has(element)) unexpected.push({ key: read.key, element, index: read.index });
  }
  const lost: { key: string; element: string }[] = [];
  const resurrected: { key: string; element: string }[] = [];
  let failedButPresent = 0;
  let addsChecked = 0;
  let removalsChecked = 0;
  const keys = [...new Set([...adds.keys(), ...finals.keys()])].sort();
  const unread: string[] = [];
  for (const key of keys) {
    const final = finals.get(key);
    if (final === undefined) {
      unread.push(key);
      continue;
    }
    const present = new Set(final);
    const keyAdds = adds.get(key) ?? [];
    const keyRemoves = removes.get(key) ?? [];
    for (const element of new Set(keyAdds.map((add) => add.element))) {
      const elementAdds = keyAdds.filter((add) => add.element === element);
      const elementRemoves = keyRemoves.filter((remove) => remove.element === element && remove.outcome !== 'fail');
      const live = elementAdds.filter((add) => add.outcome !== 'fail');
      if (live.length === 0) {
        if (present.has(element)) failedButPresent += 1;
        continue;
      }
      // Held to presence: an acknowledged add no remove of the element can have observed.
      const uncovered = elementAdds.filter((add) => add.outcome === 'ok' && elementRemoves.every((remove) => remove.completeMs <= add.invokeMs));
      if (uncovered.length > 0) {
        addsChecked += uncovered.length;
        if (!present.has(element)) lost.push({ key, element });
        continue;
      }
      // Held to absence: every add of the element that may have happened was surely removed.
      const surelyRemoved = (add: SetOperation): boolean =>
        elementRemoves.some(
          (remove) => remove.outcome === 'ok' && add.invokeMs < remove.completeMs && live.filter((other) => other.invokeMs < remove.completeMs).length === 1,
        );
      if (live.every(surelyRemoved)) {
        removalsChecked += 1;
        if (present.has(element)) resurrected.push({ key, element });
      }
    }
  }
  const disagreeing: { key: string; values: Record<string, readonly string[]> }[] = [];
  let disagreeingKeys = 0;
  for (const [key, byNode] of everyNode) {
    const expected = JSON.stringify([...(finals.get(key) ?? [])].sort());
    if ([...byNode.values()].every((values) => JSON.stringify([...values].sort()) === expected) && finals.has(key)) continue;
    disagreeingKeys += 1;
    if (disagreeing.length < 20) disagreeing.push({ key, values: { 'final r=all': finals.get(key) ?? [], ...Object.fromEntries(byNode) } });
  }
  const allAdds = [...adds.values()].flat();
  const allRemoves = [...removes.values()].flat();
  const acknowledgedAdds = allAdds.filter((add) => add.outcome === 'ok').length;
  const emptiness = nothingTested([
    [acknowledgedAdds === 0, 'no add was acknowledged'],
    [finals.size === 0, 'no set was read at the end'],
    [addsChecked === 0, 'no acknowledged add could be held to the final read (every one may have been removed)'],
  ]);
  return {
    valid:
      emptiness === undefined &&
      lost.length === 0 &&
      resurrected.length === 0 &&
      unexpected.length === 0 &&
      failedButPresent === 0 &&
      disagreeingKeys === 0 &&
      unread.length === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    adds: allAdds.length,
    acknowledgedAdds,
    removes: allRemoves.length,
    acknowledgedRemoves: allRemoves.filter((remove) => remove.outcome === 'ok').length,
    addsChecked,
    removalsChecked,
    lost: lost.length,
    resurrected: resurrected.length,
    unexpected: unexpected.length,
    failedButPresent,
    disagreeingKeys,
    unreadKeys: unread,
    lostExamples: lost.slice(0, 20),
    resurrectedExamples: resurrected.slice(0, 20),
    unexpectedExamples: unexpected.slice(0, 20),
    disagreeingExamples: disagreeing,
  };
}
