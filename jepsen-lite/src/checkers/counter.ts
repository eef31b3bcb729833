/**
 * The counter checker (ringkv's counter data type, /dt). Clients increment a few counters by
 * small amounts of either sign and read them now and then; after healing, each counter is read
 * through every node.
 *
 * An increment that ended `ok` happened once; one that ended `fail` did not happen; one that
 * ended `info` happened once or not at all (the harness never retries an increment whose outcome
 * is unknown, so none can apply twice). What is checked, per key:
 *
 * - **final**: the final r=all read and every node's read after it (`local-read`: the same
 *   r=all read, through each member) return the same value (**disagreeing** otherwise), and
 *   that value is exactly sum(ok) + the sum of some subset of the info increments. The subset
 *   sums are computed exactly (a dynamic programme over the reachable totals, feasible because
 *   increments are small); the interval [sum(ok) + sum(negative infos), sum(ok) + sum(positive
 *   infos)] is reported beside it. A value outside is **wrong** — invalid. A counter never
 *   incremented successfully reads 404 (recorded as 0).
 * - **intermediate reads**: a read during the workload returns the sum of some subset of the
 *   increments invoked before it completed that did not certainly fail; checked as the interval
 *   [sum of their negative amounts, sum of their positive amounts]. Nothing stronger is claimed
 *   mid-run: a read at r=one, or under a sloppy quorum, may miss any acknowledged increment.
 *   Outside that interval is **impossible** — invalid.
 * - **nothing was tested** (invalid): no increment acknowledged, or no counter read at the end.
 */
import { type Operation, pairOperations } from '../history.js';
import { nothingTested } from './checker.js';

interface Increment {
  readonly delta: number;
  readonly invokeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info';
}

/** A counter whose final reads are wrong or disagree. */
export interface CounterProblem {
  readonly key: string;
  /** Each final read's value by node. */
  readonly finalValues: Readonly<Record<string, number>>;
  readonly acknowledgedSum: number;
  /** The interval the value must lie in: [sum(ok) + sum(negative infos), sum(ok) + sum(positive infos)]. */
  readonly lower: number;
  readonly upper: number;
  readonly infos: number;
}

/** What the counter checker found. */
export interface CounterCheckerResult {
  readonly valid: boolean;
  readonly nothingTested?: string;
  readonly keys: number;
  readonly increments: number;
  readonly acknowledged: number;
  readonly unknown: number;
  readonly failed: number;
  /** Keys whose final reads were all in range and agreed. */
  readonly keysChecked: number;
  /** Keys whose final value is not sum(ok) plus a subset of the infos. */
  readonly wrongKeys: number;
  /** Keys whose nodes answered different final values. */
  readonly disagreeingKeys: number;
  /** Keys without any successful final read. */
  readonly unreadKeys: readonly string[];
  /** Intermediate reads judged, and those outside any possible value. */
  readonly readsChecked: number;
  readonly impossibleReads: number;
  readonly problems: readonly CounterProblem[];
  /** Each key's final value beside what it was judged against. */
  readonly finals: readonly { key: string; value: number | undefined; acknowledgedSum: number; lower: number; upper: number; infos: number }[];
  readonly impossibleReadExamples: readonly { key: string; index: number; value: number; lower: number; upper: number }[];
}

/** Every total a subset of `deltas` can sum to. */
export function subsetSums(deltas: readonly number[]): Set<number> {
  let sums = new Set<number>([0]);
  for (const delta of deltas) {
    const next = new Set(sums);
    for (const sum of sums) next.add(sum + delta);
    sums = next;
  }
  return sums;
}

function counterValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (value === null) return 0;
  return undefined;
}

/** Judges a counter workload's history. */
export function checkCounter(history: readonly Operation[]): CounterCheckerResult {
  const incrementsByKey = new Map<string, Increment[]>();
  const reads: { key: string; completeMs: number; index: number; value: number }[] = [];
  const finals = new Map<string, Map<string, number>>();
  for (const { invoke, completion } of pairOperations(history)) {
    if (invoke.key === undefined) continue;
    if (invoke.f === 'increment' && typeof invoke.process === 'number' && typeof invoke.value === 'number') {
      const outcome = completion === undefined || completion.type === 'invoke' ? 'info' : completion.type;
      const list = incrementsByKey.get(invoke.key) ?? [];
      list.push({ delta: invoke.value, invokeMs: invoke.timeMs, outcome });
      incrementsByKey.set(invoke.key, list);
    } else if (invoke.f === 'read' && completion?.type === 'ok') {
      const value = counterValue(completion.value);
      if (value !== undefined) reads.push({ key: invoke.key, completeMs: completion.timeMs, index: completion.index, value });
    } else if ((invoke.f === 'final-read' || invoke.f === 'local-read') && completion?.type === 'ok') {
      const value = counterValue(completion.value);
      if (value === undefined) continue;
      const byNode = finals.get(invoke.key) ?? new Map<string, number>();
      byNode.set(invoke.f === 'final-read' ? `r=all via ${invoke.node ?? '?'}` : (invoke.node ?? `#${invoke.index}`), value);
      finals.set(invoke.key, byNode);
    }
  }
  const keys = [...new Set([...incrementsByKey.keys(), ...finals.keys()])].sort();
  const problems: CounterProblem[] = [];
  const summaries: { key: string; value: number | undefined; acknowledgedSum: number; lower: number; upper: number; infos: number }[] = [];
  const unread: string[] = [];
  let wrongKeys = 0;
  let disagreeingKeys = 0;
  let keysChecked = 0;
  for (const key of keys) {
    const increments = incrementsByKey.get(key) ?? [];
    const acknowledgedSum = increments.filter((increment) => increment.outcome === 'ok').reduce((sum, increment) => sum + increment.delta, 0);
    const infoDeltas = increments.filter((increment) => increment.outcome === 'info').map((increment) => increment.delta);
    const lower = acknowledgedSum + infoDeltas.filter((delta) => delta < 0).reduce((sum, delta) => sum + delta, 0);
    const upper = acknowledgedSum + infoDeltas.filter((delta) => delta > 0).reduce((sum, delta) => sum + delta, 0);
    const byNode = finals.get(key);
    summaries.push({ key, value: byNode === undefined ? undefined : [...byNode.values()][0], acknowledgedSum, lower, upper, infos: infoDeltas.length });
    if (byNode === undefined || byNode.size === 0) {
      unread.push(key);
      continue;
    }
    const reachable = subsetSums(infoDeltas);
    const values = [...byNode.values()];
    const disagree = new Set(values).size > 1;
    const wrong = values.some((value) => !reachable.has(value - acknowledgedSum));
    if (disagree) disagreeingKeys += 1;
    if (wrong) wrongKeys += 1;
    if (!disagree && !wrong) keysChecked += 1;
    else if (problems.length < 20) problems.push({ key, finalValues: Object.fromEntries(byNode), acknowledgedSum, lower, upper, infos: infoDeltas.length });
  }
  let readsChecked = 0;
  const impossible: { key: string; index: number; value: number; lower: number; upper: number }[] = [];
  for (const read of reads) {
    readsChecked += 1;
    const possible = (incrementsByKey.get(read.key) ?? []).filter((increment) => increment.outcome !== 'fail' && increment.invokeMs < read.completeMs);
    const lower = possible.filter((increment) => increment.delta < 0).reduce((sum, increment) => sum + increment.delta, 0);
    const upper = possible.filter((increment) => increment.delta > 0).reduce((sum, increment) => sum + increment.delta, 0);
    if (read.value < lower || read.value > upper) impossible.push({ key: read.key, index: read.index, value: read.value, lower, upper });
  }
  const all = [...incrementsByKey.values()].flat();
  const acknowledged = all.filter((increment) => increment.outcome === 'ok').length;
  const emptiness = nothingTested([
    [acknowledged === 0, 'no increment was acknowledged'],
    [finals.size === 0, 'no counter was read at the end'],
  ]);
  return {
    valid: emptiness === undefined && wrongKeys === 0 && disagreeingKeys === 0 && unread.length === 0 && impossible.length === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    keys: keys.length,
    increments: all.length,
    acknowledged,
    unknown: all.filter((increment) => increment.outcome === 'info').length,
    failed: all.filter((increment) => increment.outcome === 'fail').length,
    keysChecked,
    wrongKeys,
    disagreeingKeys,
    unreadKeys: unread,
    readsChecked,
    impossibleReads: impossible.length,
    problems,
    finals: summaries.slice(0, 50),
    impossibleReadExamples: impossible.slice(0, 20),
  };
}
