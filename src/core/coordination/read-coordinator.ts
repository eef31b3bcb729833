import { type TallyState, insufficientReplicasError, recordReply, startTally, timeoutError, verdict } from '../quorum/quorum.js';
import { type ConflictMode, type VersionedObject, mergeObjects, versionIdentity } from '../versioning/versioned-object.js';
import type { KvError } from '../../util/errors.js';
import type { ReadPlan } from './plan.js';

/**
 * The decision half of a coordinated read, as a state machine: ask the replicas the plan
 * needs, start the spares when one fails or after the speculative-retry delay (Cassandra's
 * speculative retry), answer the merged object once `r` answered, and once every asked replica
 * has answered send the merged version to those that answered with something older (Dynamo's
 * read repair).
 */

/** What the engine must do next for a read. */
export type ReadEffect =
  | { readonly type: 'arm-deadline'; readonly atMs: number }
  | { readonly type: 'arm-spares'; readonly atMs: number }
  | { readonly type: 'ask'; readonly node: string }
  | { readonly type: 'reply'; readonly object: VersionedObject | undefined }
  | { readonly type: 'fail'; readonly error: KvError }
  | { readonly type: 'repair'; readonly nodes: readonly string[]; readonly object: VersionedObject };

/** What happened. */
export type ReadEvent =
  | { readonly type: 'start'; readonly nowMs: number; readonly speculativeRetryMs: number; readonly isUp: (node: string) => boolean }
  | { readonly type: 'answered'; readonly node: string; readonly object: VersionedObject | null }
  | { readonly type: 'failed'; readonly node: string }
  | { readonly type: 'spares-due' }
  | { readonly type: 'deadline' };

/** A read in progress. */
export interface ReadState {
  readonly plan: ReadPlan;
  readonly mode: ConflictMode;
  readonly timeoutMs: number;
  readonly tally: TallyState;
  readonly asked: readonly string[];
  readonly answers: ReadonlyMap<string, VersionedObject | null>;
  readonly failed: number;
  /** Replicas of the plan this node held down at the start: counted as failed, never asked. */
  readonly knownDown: readonly string[];
  /** Replicas whose answer (or failure) was counted: each counts once. */
  readonly heard: readonly string[];
  readonly sparesStarted: boolean;
  readonly decided: boolean;
  readonly repaired: boolean;
}

/** A fresh read of `plan` in a bucket of `mode`, to be answered within `timeoutMs`. */
export function startRead(plan: ReadPlan, mode: ConflictMode, timeoutMs: number): ReadState {
  return {
    plan,
    mode,
    timeoutMs,
    tally: startTally(plan.requirement),
    asked: [],
    answers: new Map(),
    failed: 0,
    knownDown: [],
    heard: [],
    sparesStarted: plan.spares.length === 0,
    decided: false,
    repaired: false,
  };
}

/** The merge of every answer received so far (undefined when no replica has the key). */
export function mergedAnswers(answers: ReadonlyMap<string, VersionedObject | null>, mode: ConflictMode): VersionedObject | undefined {
  let merged: VersionedObject | undefined;
  for (const object of answers.values()) {
    if (object === null) continue;
    merged = merged === undefined ? object : mergeObjects(merged, object, mode);
  }
  return merged;
}

/** step(state, event) -> [state, effects]. */
export function stepRead(state: ReadState, event: ReadEvent): [ReadState, ReadEffect[]] {
  switch (event.type) {
    case 'start': {
      const effects: ReadEffect[] = [{ type: 'arm-deadline', atMs: event.nowMs + state.timeoutMs }];
      if (!state.sparesStarted) effects.push({ type: 'arm-spares', atMs: event.nowMs + event.speculativeRetryMs });
      let next: ReadState = { ...state, asked: [...state.plan.first] };
      for (const node of state.plan.first) {
        // A replica already known to be down counts as a failed answer at once, which starts the spares.
        if (event.isUp(node)) effects.push({ type: 'ask', node });
        else next = { ...recordFailure(next, node), knownDown: [...next.knownDown, node] };
      }
      if (!next.sparesStarted && next.failed > 0) next = startSpares(next, effects);
      const [judged, decision] = judge(next);
      // r cannot be met with the replicas held down: fail without asking the others (their answers would be dropped).
      if (judged.decided) return [judged, decision];
      return [judged, [...effects, ...decision]];
    }
    case 'answered': {
      if (!state.asked.includes(event.node) || state.heard.includes(event.node)) return [state, []];
      const answers = new Map(state.answers).set(event.node, event.object);
      const tally = recordReply(state.tally, { ok: true, primary: true, durable: false, counts: true });
      return judge({ ...state, answers, tally, heard: [...state.heard, event.node] });
    }
    case 'failed': {
      if (!state.asked.includes(event.node) || state.heard.includes(event.node)) return [state, []];
      const effects: ReadEffect[] = [];
      let next = recordFailure(state, event.node);
      if (!next.sparesStarted && !next.decided) next = startSpares(next, effects);
      const [judged, decision] = judge(next);
      return [judged, [...effects, ...decision]];
    }
    case 'spares-due': {
      if (state.sparesStarted || state.decided) return [state, []];
      const effects: ReadEffect[] = [];
      const next = startSpares(state, effects);
      return [next, effects];
    }
    case 'deadline':
      if (state.decided) return [state, []];
      return [{ ...state, decided: true, repaired: true }, [{ type: 'fail', error: timeoutError('read', state.tally, state.timeoutMs) }]];
  }
}

function recordFailure(state: ReadState, node: string): ReadState {
  const tally = recordReply(state.tally, { ok: false, primary: true, durable: false, counts: true });
  return { ...state, tally, failed: state.failed + 1, heard: [...state.heard, node], asked: state.asked.includes(node) ? state.asked : [...state.asked, node] };
}

function startSpares(state: ReadState, effects: ReadEffect[]): ReadState {
  for (const node of state.plan.spares) effects.push({ type: 'ask', node });
  return { ...state, sparesStarted: true, asked: [...state.asked, ...state.plan.spares] };
}

/** Replies once r answered, fails once r can no longer answer; repairs once every asked replica answered. */
function judge(state: ReadState): [ReadState, ReadEffect[]] {
  const effects: ReadEffect[] = [];
  let next = state;
  if (!state.decided) {
    const current = verdict(state.tally);
    if (current === 'met') {
      next = { ...next, decided: true };
      effects.push({ type: 'reply', object: mergedAnswers(state.answers, state.mode) });
    } else if (current === 'impossible') {
      next = { ...next, decided: true, repaired: true };
      effects.push({ type: 'fail', error: insufficientReplicasError('read', state.tally, undefined, state.knownDown) });
    }
  }
  const everyAskedAnswered = next.tally.answered >= next.asked.length;
  if (next.decided && !next.repaired && everyAskedAnswered) {
    next = { ...next, repaired: true };
    const merged = mergedAnswers(next.answers, next.mode);
    if (merged !== undefined) {
      const identity = versionIdentity(merged);
      const stale = [...next.answers].filter(([, object]) => object === null || versionIdentity(object) !== identity).map(([node]) => node);
      if (stale.length > 0) effects.push({ type: 'repair', nodes: stale, object: merged });
    }
  }
  return [next, effects];
}
