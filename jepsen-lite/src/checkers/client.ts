/**
 * The client checker: a set checker for the client workload's two-phase sets. After healing, the
 * final read of each key (siblings merged by union) must hold every element whose add was
 * acknowledged, unless a removal of it or a delete whose read saw it was attempted; and an element
 * whose removal was acknowledged must not be back, unless a delete whose read saw the removal was
 * attempted (a delete drops the removal marker with the rest, so what it did not see may stay).
 * Nothing may be there that no client tried to add, nor an add that certainly failed.
 */
import { type Operation, pairOperations } from '../history.js';
import { nothingTested } from './checker.js';
import { finalReadValues } from './set.js';

/** The adds of the client workload: each adds its invocation's value to the key's set. */
const addFunctions = new Set(['add', 'chain-add', 'blind-add']);

/** One element of one key, for the lists of findings. */
export interface KeyElement {
  readonly key: string;
  readonly element: number;
}

/** What the client checker found. */
export interface ClientCheckerResult {
  readonly valid: boolean;
  /** Why the run proves nothing, when it does not (nothing acknowledged, no key read at the end). */
  readonly nothingTested?: string;
  /** Adds invoked, by every route. */
  readonly attempted: number;
  /** Adds acknowledged (ok). */
  readonly acknowledged: number;
  /** Acknowledged adds by route: read-modify-write, chained on a write's context, blind. */
  readonly acknowledgedBy: Readonly<Record<string, number>>;
  /** Acknowledged adds missing from the final read with no removal or delete to explain it. */
  readonly lost: number;
  /** Acknowledged adds the checker could judge (neither removed nor covered by a delete). */
  readonly checkedElements: number;
  readonly removalsAcknowledged: number;
  /** Acknowledged removals whose element is back in the final read. */
  readonly resurrected: number;
  readonly deletesAcknowledged: number;
  /** Elements in a final read never attempted on that key. */
  readonly unexpected: number;
  /** Adds that completed `fail` (certainly not applied) yet are present. */
  readonly failedButPresent: number;
  /** Mid-run reads that found siblings: shows the merge path was exercised. */
  readonly readsWithSiblings: number;
  /** Keys with operations whose final read never succeeded. */
  readonly unreadKeys: readonly string[];
  /** Lost elements (up to 50) with the route that acknowledged them. */
  readonly lostElements: readonly (KeyElement & { readonly by: string })[];
  readonly resurrectedElements: readonly KeyElement[];
  readonly unexpectedElements: readonly KeyElement[];
  readonly failedButPresentElements: readonly KeyElement[];
}

const listLimit = 50;

interface ElementSetValue {
  readonly adds: readonly number[];
  readonly removes: readonly number[];
}

function elementSet(value: unknown): ElementSetValue {
  const object = value as { adds?: unknown; removes?: unknown } | null | undefined;
  const numbers = (list: unknown): number[] => (Array.isArray(list) ? list.filter((item): item is number => typeof item === 'number') : []);
  return { adds: numbers(object?.adds), removes: numbers(object?.removes) };
}

type Outcome = 'ok' | 'fail' | 'info';

function outcomeOf(completion: Operation | undefined): Outcome {
  return completion === undefined || completion.type === 'invoke' ? 'info' : completion.type;
}

/** Judges a client workload's history. */
export function checkClient(history: readonly Operation[]): ClientCheckerResult {
  const id = (key: string, element: number): string => `${key}\u0000${element}`;
  const adds = new Map<string, KeyElement & { outcome: Outcome; by: string }>();
  /** Removals attempted (ok or unknown), and those acknowledged. */
  const removalsTried = new Set<string>();
  const removalsAcknowledged = new Map<string, KeyElement>();
  /** Per key element: a delete (ok or unknown) whose read saw its add / its removal. */
  const deleteSawAdd = new Set<string>();
  const deleteSawRemoval = new Set<string>();
  const keysUsed = new Set<string>();
  let deletesAcknowledged = 0;
  let readsWithSiblings = 0;
  for (const { invoke, completion } of pairOperations(history)) {
    if (typeof invoke.process !== 'number' || invoke.key === undefined) continue;
    const key = invoke.key;
    const outcome = outcomeOf(completion);
    keysUsed.add(key);
    if (addFunctions.has(invoke.f) && typeof invoke.value === 'number') {
      adds.set(id(key, invoke.value), { key, element: invoke.value, outcome, by: invoke.f });
    } else if (invoke.f === 'remove') {
      const element = (completion?.value as { element?: unknown } | undefined)?.element;
      if (typeof element !== 'number' || outcome === 'fail') continue;
      removalsTried.add(id(key, element));
      if (outcome === 'ok') removalsAcknowledged.set(id(key, element), { key, element });
    } else if (invoke.f === 'delete') {
      // A delete's completion records what its read saw; without that (the read failed) it deleted nothing.
      if (completion?.value === undefined || outcome === 'fail') continue;
      if (outcome === 'ok') deletesAcknowledged += 1;
      const seen = elementSet(completion.value);
      for (const element of seen.adds) deleteSawAdd.add(id(key, element));
      for (const element of seen.removes) deleteSawRemoval.add(id(key, element));
    } else if (invoke.f === 'read' && completion?.type === 'ok') {
      const siblings = (completion.value as { siblings?: unknown } | undefined)?.siblings;
      if (typeof siblings === 'number' && siblings > 1) readsWithSiblings += 1;
    }
  }

  const finals = finalReadValues(history);
  const present = new Set<string>();
  const everAdded = new Set<string>();
  const unexpected: KeyElement[] = [];
  for (const [key, value] of finals) {
    const set = elementSet(value);
    const removed = new Set(set.removes);
    for (const element of set.adds) {
      everAdded.add(id(key, element));
      if (!removed.has(element)) present.add(id(key, element));
      if (!adds.has(id(key, element))) unexpected.push({ key, element });
    }
  }

  const lost: (KeyElement & { by: string })[] = [];
  const failedButPresent: KeyElement[] = [];
  const acknowledgedBy: Record<string, number> = {};
  let acknowledged = 0;
  let checkedElements = 0;
  for (const [elementId, add] of adds) {
    if (add.outcome === 'ok') {
      acknowledged += 1;
      acknowledgedBy[add.by] = (acknowledgedBy[add.by] ?? 0) + 1;
    }
    if (!finals.has(add.key)) continue;
    if (add.outcome === 'fail' && everAdded.has(elementId)) failedButPresent.push({ key: add.key, element: add.element });
    if (add.outcome !== 'ok' || removalsTried.has(elementId) || deleteSawAdd.has(elementId)) continue;
    checkedElements += 1;
    if (!present.has(elementId)) lost.push({ key: add.key, element: add.element, by: add.by });
  }
  const resurrected: KeyElement[] = [];
  for (const [elementId, removal] of removalsAcknowledged) {
    if (present.has(elementId) && !deleteSawRemoval.has(elementId)) resurrected.push(removal);
  }
  const unreadKeys = [...keysUsed].filter((key) => !finals.has(key)).sort();

  const emptiness = nothingTested([
    [acknowledged === 0, 'no add was acknowledged'],
    [finals.size === 0, 'no final read succeeded'],
    [checkedElements === 0, 'no acknowledged element could be checked (each was removed or deleted)'],
  ]);
  const byKeyAndElement = (left: KeyElement, right: KeyElement): number => left.key.localeCompare(right.key) || left.element - right.element;
  return {
    valid:
      emptiness === undefined &&
      lost.length === 0 &&
      resurrected.length === 0 &&
      unexpected.length === 0 &&
      failedButPresent.length === 0 &&
      unreadKeys.length === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    attempted: adds.size,
    acknowledged,
    acknowledgedBy,
    lost: lost.length,
    checkedElements,
    removalsAcknowledged: removalsAcknowledged.size,
    resurrected: resurrected.length,
    deletesAcknowledged,
    unexpected: unexpected.length,
    failedButPresent: failedButPresent.length,
    readsWithSiblings,
    unreadKeys,
    lostElements: lost.sort(byKeyAndElement).slice(0, listLimit),
    resurrectedElements: resurrected.sort(byKeyAndElement).slice(0, listLimit),
    unexpectedElements: unexpected.sort(byKeyAndElement).slice(0, listLimit),
    failedButPresentElements: failedButPresent.sort(byKeyAndElement).slice(0, listLimit),
  };
}
