import { type CausalContext, writeContext } from '../versioning/context.js';
import type { Dot, VersionedObject } from '../versioning/versioned-object.js';
import { type TallyState, type WriteOperation, insufficientReplicasError, recordReply, startTally, timeoutError, verdict } from '../quorum/quorum.js';
import type { KvError } from '../../util/errors.js';
import type { WritePlan, WriteTarget } from './plan.js';

/**
 * The decision half of a coordinated write, as a state machine (the shape of etcd raft's
 * `Step`): the engine feeds it events (the coordinating replica's answer, each replica's
 * answer, the deadline) and carries out the effects it returns. It never does I/O itself, so
 * every path through a write can be tested by feeding events in any order.
 */

/** What the engine must do next for a write. */
export type WriteEffect =
  | { readonly type: 'arm-deadline'; readonly atMs: number }
  | { readonly type: 'coordinate'; readonly node: string }
  | { readonly type: 'replicate'; readonly target: WriteTarget; readonly object: VersionedObject; readonly sync: boolean }
  | { readonly type: 'keep-hints'; readonly nodes: readonly string[]; readonly object: VersionedObject; readonly sync: boolean }
  | { readonly type: 'reply'; readonly object: VersionedObject; readonly context: CausalContext }
  | { readonly type: 'fail'; readonly error: KvError };

/** What happened. */
export type WriteEvent =
  | { readonly type: 'start'; readonly nowMs: number }
  | { readonly type: 'coordinated'; readonly object: VersionedObject; readonly dot: Dot; readonly durable: boolean }
  | { readonly type: 'coordinate-failed'; readonly error: KvError }
  | { readonly type: 'replicated'; readonly node: string; readonly ok: boolean; readonly durable: boolean }
  | { readonly type: 'hints-kept' }
  | { readonly type: 'deadline' };

/** A write in progress. */
export interface WriteState {
  readonly plan: WritePlan;
  /** What the change is, so its errors speak of a delete, an update or a restore rather than a write. */
  readonly operation: WriteOperation;
  readonly context: CausalContext;
  readonly timeoutMs: number;
  readonly tally: TallyState;
  readonly phase: 'new' | 'coordinating' | 'replicating' | 'done';
  readonly object?: VersionedObject;
  readonly dot?: Dot;
  /** Kept hints not yet stored: the reply waits for them, so an acknowledged write has them on disk. */
  readonly hintsPending: boolean;
  /** Targets whose answer was counted: each counts once, and the coordinating replica only by `coordinated`. */
  readonly answered: readonly string[];
}

/** A fresh write of `plan`, whose writer holds `context`, to be answered within `timeoutMs`. */
export function startWrite(plan: WritePlan, context: CausalContext, timeoutMs: number, operation: WriteOperation): WriteState {
  return { plan, operation, context, timeoutMs, tally: startTally(plan.requirement), phase: 'new', hintsPending: plan.keptHints.length > 0, answered: [] };
}

/** step(state, event) -> [state, effects]. */
export function stepWrite(state: WriteState, event: WriteEvent): [WriteState, WriteEffect[]] {
  if (state.phase === 'done') return [state, []];
  switch (event.type) {
    case 'start': {
      const { plan } = state;
      if (plan.impossible || plan.coordinating === undefined) return finish(state, insufficientReplicasError(state.operation, state.tally, false));
      return [
        { ...state, phase: 'coordinating' },
        [
          { type: 'arm-deadline', atMs: event.nowMs + state.timeoutMs },
          { type: 'coordinate', node: plan.coordinating },
        ],
      ];
    }
    case 'coordinated': {
      if (state.phase !== 'coordinating') return [state, []];
      const { plan } = state;
      const coordinating = plan.targets.find((target) => target.node === plan.coordinating);
      const tally = recordReply(state.tally, { ok: true, primary: true, durable: event.durable, counts: true, planned: coordinating?.planned === true });
      const next: WriteState = { ...state, tally, phase: 'replicating', object: event.object, dot: event.dot, answered: [plan.coordinating ?? ''] };
      const effects: WriteEffect[] = [
        ...plan.targets
          .filter((target) => target.node !== plan.coordinating)
          .map((target): WriteEffect => ({ type: 'replicate', target, object: event.object, sync: plan.sync })),
        ...(plan.keptHints.length === 0 ? [] : [{ type: 'keep-hints', nodes: plan.keptHints, object: event.object, sync: plan.sync } as const]),
      ];
      const [judged, decision] = judge(next);
      return [judged, [...effects, ...decision]];
    }
    case 'coordinate-failed':
      return finish(state, event.error);
    case 'replicated': {
      if (state.phase !== 'replicating') return [state, []];
      const target = state.plan.targets.find((candidate) => candidate.node === event.node);
      if (target === undefined || state.answered.includes(event.node)) return [state, []];
      const tally = recordReply(state.tally, {
        ok: event.ok,
        primary: target.primary,
        durable: event.ok && event.durable,
        counts: target.counts,
        planned: target.planned,
      });
      return judge({ ...state, tally, answered: [...state.answered, event.node] });
    }
    case 'hints-kept':
      return judge({ ...state, hintsPending: false });
    case 'deadline':
      return finish(state, timeoutError(state.operation, state.tally, state.timeoutMs));
  }
}

/** Replies once the tally is met and kept hints are stored; fails once it can no longer be met. */
function judge(state: WriteState): [WriteState, WriteEffect[]] {
  if (state.phase !== 'replicating' || state.object === undefined || state.dot === undefined) return [state, []];
  const current = verdict(state.tally);
  if (current === 'impossible') return finish(state, insufficientReplicasError(state.operation, state.tally));
  if (current === 'met' && !state.hintsPending) {
    // The context carries the new version's time, so a write chained on it is stamped after it (lww under skew).
    const dot = state.dot;
    const created = state.object.siblings.find((sibling) => sibling.dot.node === dot.node && sibling.dot.counter === dot.counter);
    return [{ ...state, phase: 'done' }, [{ type: 'reply', object: state.object, context: writeContext(state.context, dot, created?.lastModifiedMs) }]];
  }
  return [state, []];
}

function finish(state: WriteState, error: KvError): [WriteState, WriteEffect[]] {
  return [{ ...state, phase: 'done' }, [{ type: 'fail', error }]];
}
