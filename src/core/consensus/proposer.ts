import { KvError } from '../../util/errors.js';
import { type Ballot, compareBallots } from './ballot.js';
import type { AcceptorReply, AcceptorRequest, Proposal } from './acceptor.js';
import type { BrokenVariant } from './broken-variants.js';
import {
  type OperationResult,
  type RegisterOperation,
  type RegisterState,
  applyOperation,
  emptyRegister,
  recentWritesKept,
  remembersFrom,
  versionWrittenBy,
} from './compare-and-set.js';
import { acceptorsOf, jointQuorumImpossible, jointQuorumMet } from './replica-groups.js';
import { checkBeforeRetrying } from '../quorum/quorum.js';
import { assert } from '../../util/assert.js';

/**
 * One linearizable operation on a consistent key, as a step machine like the coordinators in
 * ../coordination: the engine feeds it events (acceptor answers, timers) and carries out the
 * effects it returns. It is Paxos (Lamport, Paxos Made Simple) with the register as the value,
 * as in CASPaxos and Cassandra's LWT, and the round trips of Cassandra's Paxos v2 (CEP-14):
 *
 * 1. prepare(b) to every acceptor of the key's replica groups; a quorum of promises also reads
 *    the key: each promise carries the acceptor's newest accepted and committed proposals.
 * 2. The newest proposal among them is the key's current state. If it is not known decided
 *    (committed somewhere, or accepted under one ballot by a quorum of those that promised) it
 *    may belong to a proposer that paused or died mid-round, and Paxos's rule applies: the new
 *    proposal must carry it. A write proposes the operation applied to it (which repairs it
 *    and writes in one proposal); a read or a failed precondition proposes it unchanged (the
 *    repair) and answers only once that is accepted, so nobody ever observes a value that a
 *    later round could still lose.
 * 3. propose(b, next state) to every acceptor; a quorum of acceptances decides it and the
 *    operation is answered. 4. commit is then sent without waiting (a lost commit is repaired
 *    by the next round's step 2).
 *
 * Uncontended, a write takes two round trips and a read one. A ballot that loses a prepare or
 * a proposal to a newer one is replaced by a newer ballot after a random back-off (the engine
 * draws it), until the deadline. Every write has an operation id, and a register state remembers
 * the ids of its newest writes, so once the operation's own new state was proposed, a retry is a
 * recovery round that reads whether the write is in the key's newest state (see `recover`): if
 * so it is answered as written at its version, if not it is applied afresh (or answered 412 when
 * its precondition no longer holds), never twice. Once an own proposal was sent, only a deadline,
 * an unreachable quorum or a race lost to more than `recentWritesKept` writes answers "outcome
 * unknown" (never "not done", because a quorum may have accepted it).
 */

/** How a round is run. */
export interface ProposerConfig {
  /** The key's replica groups (replicaGroups): a majority of each must promise and accept. */
  readonly groups: readonly (readonly string[])[];
  /** The ring version the groups were taken from; acceptors that saw a newer one refuse the round. */
  readonly epoch: number;
  readonly timeoutMs: number;
  /** The largest back-off before the first retry; the n-th retry waits up to n times it. */
  readonly backoffMs: number;
  /** This operation's id (operationId), unique to it: a state its write made remembers it. */
  readonly operationId: string;
  /** A deliberately broken protocol, for the simulation tests only. */
  readonly broken?: BrokenVariant;
}

/** What the engine must do next for the operation. */
export type ProposerEffect =
  | { readonly type: 'arm-deadline'; readonly atMs: number }
  | { readonly type: 'send'; readonly to: string; readonly request: AcceptorRequest }
  /**
   * States of the key this round decided that no earlier round is known to have reported, oldest
   * first (watches: docs/CONSENSUS.md, "Watches"). It comes before the commits, so a state some
   * acceptor holds as committed has been reported.
   */
  | { readonly type: 'decided'; readonly states: readonly RegisterState[] }
  /** Wait a random time in [0, maxDelayMs), then feed `retry` with a ballot issued for at least `atLeastRound`. */
  | { readonly type: 'back-off'; readonly maxDelayMs: number; readonly atLeastRound: number }
  /** The operation is done: a read's state, a write's new state, or the state a precondition failed on. */
  | { readonly type: 'reply'; readonly result: OperationResult }
  /** It failed; `applied` says whether the operation certainly did not happen ('no') or may have ('unknown'). */
  | { readonly type: 'fail'; readonly error: KvError; readonly applied: 'no' | 'unknown' };

/** What happened. */
export type ProposerEvent =
  | { readonly type: 'start'; readonly nowMs: number; readonly ballot: Ballot }
  | { readonly type: 'answer'; readonly from: string; readonly reply: AcceptorReply }
  /** The transport could not deliver a request of `ballot` to `from` (connection refused, peer down). */
  | { readonly type: 'unreachable'; readonly from: string; readonly ballot: Ballot }
  | { readonly type: 'retry'; readonly ballot: Ballot }
  | { readonly type: 'deadline' };

/** A promise as the proposer keeps it. */
interface Promised {
  readonly from: string;
  readonly accepted: Proposal | null;
  readonly committed: Proposal | null;
}

/** An operation in progress. */
export interface ProposerState {
  readonly config: ProposerConfig;
  readonly operation: RegisterOperation;
  readonly phase: 'new' | 'preparing' | 'proposing' | 'backing-off' | 'done';
  readonly ballot: Ballot | null;
  readonly attempts: number;
  readonly promises: readonly Promised[];
  /** Acceptors that refused this phase (a newer promise) or could not be reached. */
  readonly refused: ReadonlySet<string>;
  /** Refusals this phase that were a newer ballot (contention), as opposed to unreachable acceptors. */
  readonly preempted: boolean;
  /** The newest ring epoch an acceptor refused this round for: above the config's, this node's ring is stale. */
  readonly newestEpoch: number;
  /** The newest round any acceptor reported: the next ballot must be above it. */
  readonly newestRound: number;
  readonly proposal: Proposal | null;
  readonly acceptedBy: ReadonlySet<string>;
  /** The answer once `proposal` is accepted. */
  readonly pending: OperationResult | null;
  /** The states to report as decided once `proposal` is accepted (the `decided` effect). */
  readonly report: readonly RegisterState[];
  /** The ballots under which this operation proposed a state with its own write in it, oldest first. */
  readonly ownBallots: readonly Ballot[];
  /** The lowest version its write had in those states (Infinity before the first): its id is looked for from there on. */
  readonly lowestOwnVersion: number;
}

/** A fresh operation. */
export function startProposer(config: ProposerConfig, operation: RegisterOperation): ProposerState {
  return {
    config,
    operation,
    phase: 'new',
    ballot: null,
    attempts: 0,
    promises: [],
    refused: new Set(),
    preempted: false,
    newestEpoch: config.epoch,
    newestRound: 0,
    proposal: null,
    acceptedBy: new Set(),
    pending: null,
    report: [],
    ownBallots: [],
    lowestOwnVersion: Infinity,
  };
}

/** step(state, event) -> [state, effects]. */
export function stepProposer(state: ProposerState, event: ProposerEvent): [ProposerState, ProposerEffect[]] {
  if (state.phase === 'done') return [state, []];
  switch (event.type) {
    case 'start': {
      const [next, effects] = prepare(state, event.ballot);
      return [next, [{ type: 'arm-deadline', atMs: event.nowMs + state.config.timeoutMs }, ...effects]];
    }
    case 'retry':
      return state.phase === 'backing-off' ? prepare(state, event.ballot) : [state, []];
    case 'answer':
      return onAnswer(state, event.from, event.reply);
    case 'unreachable':
      if (state.ballot === null || compareBallots(event.ballot, state.ballot) !== 0) return [state, []];
      return onRefusal(state, event.from, 0, false, 0);
    case 'deadline':
      return state.ownBallots.length > 0
        ? finish(state, outcomeUnknown(state, `timed out after ${state.config.timeoutMs} ms`))
        : finish(state, notApplied('KV_TIMEOUT', state, `timed out after ${state.config.timeoutMs} ms before a quorum of acceptors took its ballot`));
  }
}

function prepare(state: ProposerState, ballot: Ballot): [ProposerState, ProposerEffect[]] {
  const next: ProposerState = {
    ...state,
    phase: 'preparing',
    ballot,
    attempts: state.attempts + 1,
    promises: [],
    refused: new Set(),
    preempted: false,
    newestRound: Math.max(state.newestRound, ballot.round),
    proposal: null,
    acceptedBy: new Set(),
    pending: null,
  };
  return [
    next,
    acceptorsOf(state.config.groups).map((to): ProposerEffect => ({ type: 'send', to, request: { type: 'prepare', epoch: state.config.epoch, ballot } })),
  ];
}

function onAnswer(state: ProposerState, from: string, reply: AcceptorReply): [ProposerState, ProposerEffect[]] {
  if (state.ballot === null || compareBallots(reply.ballot, state.ballot) !== 0) return [state, []];
  if (!acceptorsOf(state.config.groups).includes(from)) return [state, []];
  switch (reply.type) {
    case 'promise': {
      if (state.phase !== 'preparing' || state.promises.some((promise) => promise.from === from) || state.refused.has(from)) return [state, []];
      const promises = [...state.promises, { from, accepted: reply.accepted, committed: reply.committed }];
      const next = { ...state, promises };
      return jointQuorumMet(state.config.groups, new Set(promises.map((promise) => promise.from)), state.config.broken) ? decide(next) : [next, []];
    }
    case 'prepare-rejected':
      if (state.phase !== 'preparing' || state.promises.some((promise) => promise.from === from)) return [state, []];
      return onRefusal(state, from, reply.promised.round, true, reply.epoch);
    case 'accepted': {
      if (state.phase !== 'proposing' || state.acceptedBy.has(from) || state.refused.has(from)) return [state, []];
      const acceptedBy = new Set(state.acceptedBy).add(from);
      const next = { ...state, acceptedBy };
      if (!jointQuorumMet(state.config.groups, acceptedBy, state.config.broken)) return [next, []];
      const proposal = state.proposal as Proposal;
      const decided: ProposerEffect[] = state.report.length > 0 ? [{ type: 'decided', states: state.report }] : [];
      return [{ ...next, phase: 'done' }, [...decided, ...commits(state, proposal), { type: 'reply', result: state.pending as OperationResult }]];
    }
    case 'propose-rejected':
      if (state.phase !== 'proposing' || state.acceptedBy.has(from)) return [state, []];
      return onRefusal(state, from, reply.promised.round, true, reply.epoch);
  }
}

/** A quorum promised: read the key's state from the promises, then answer or propose. */
function decide(state: ProposerState): [ProposerState, ProposerEffect[]] {
  const { current, decided } = currentState(state);
  if (state.ownBallots.length > 0) return recover(state, current, decided);
  const result = applyOperation(current?.state ?? emptyRegister, state.operation, state.config.operationId);
  if (result.outcome !== 'written' && decided && state.operation.kind !== 'repair') return answerDecided(state, current, result);
  // A write proposes its new state built on the current one; a read or a failed precondition
  // re-proposes the undecided current state (the repair) and answers once that is decided; a
  // repair operation re-proposes it even when decided.
  const nextState = result.outcome === 'written' ? result.state : (current?.state ?? emptyRegister);
  return propose(state, result, nextState, unreportedStates(state, current, nextState));
}

/**
 * Answers at once on a decided state. A decided state no acceptor of the quorum holds as
 * committed may come from a proposer that died before reporting it, so this round reports and
 * commits it (a duplicate report is dropped by the watches, which count versions).
 */
function answerDecided(
  state: ProposerState,
  current: Proposal | null,
  result: OperationResult,
  report: readonly RegisterState[] = current === null ? [] : unreportedStates(state, current, current.state),
): [ProposerState, ProposerEffect[]] {
  const learned: ProposerEffect[] = report.length > 0 && current !== null ? [{ type: 'decided', states: report }, ...commits(state, current)] : [];
  return [{ ...state, phase: 'done' }, [...learned, { type: 'reply', result }]];
}

/**
 * What a round that proposes `nextState` on top of `current` reports once it is decided: the
 * current state unless an acceptor of the quorum holds it as committed (its decider reported it
 * before committing), then the next state when it is a new version. Version 0 (never written)
 * is nothing to report.
 */
function unreportedStates(state: ProposerState, current: Proposal | null, nextState: RegisterState): RegisterState[] {
  const states: RegisterState[] = [];
  const committed =
    current !== null && state.promises.some((promise) => promise.committed !== null && compareBallots(promise.committed.ballot, current.ballot) === 0);
  if (current !== null && !committed && current.state.version > 0 && state.config.broken !== 'skip-carried-report') states.push(current.state);
  if (nextState.version > (current?.state.version ?? 0)) states.push(nextState);
  return states;
}

/**
 * The states the operation's last proposal carried (its report, before its own new state) that
 * are in `register`'s history: the register names the same writer at their version. An earlier
 * own proposal may have carried another state at that version, and only the one in the history
 * was decided.
 */
function carriedIn(state: ProposerState, register: RegisterState): RegisterState[] {
  return state.report.filter(
    (carried) => carried.version < register.version && carried.writes.length > 0 && register.writes[register.version - carried.version] === carried.writes[0],
  );
}

/** The commit of a decided proposal to every acceptor (not waited for). */
function commits(state: ProposerState, proposal: Proposal): ProposerEffect[] {
  return acceptorsOf(state.config.groups).map((to): ProposerEffect => ({ type: 'send', to, request: { type: 'commit', proposal } }));
}

function propose(state: ProposerState, result: OperationResult, nextState: RegisterState, report: readonly RegisterState[]): [ProposerState, ProposerEffect[]] {
  const proposal: Proposal = { ballot: state.ballot as Ballot, state: nextState };
  // A proposal is the operation's own when its state holds the write, whoever applied it first.
  const ownVersion = versionWrittenBy(nextState, state.config.operationId);
  const next: ProposerState =
    ownVersion === null
      ? { ...state, phase: 'proposing', proposal, pending: result, report }
      : {
          ...state,
          phase: 'proposing',
          proposal,
          pending: result,
          report,
          ownBallots: [...state.ownBallots, proposal.ballot],
          lowestOwnVersion: Math.min(state.lowestOwnVersion, ownVersion),
        };
  return [
    next,
    acceptorsOf(state.config.groups).map((to): ProposerEffect => ({ type: 'send', to, request: { type: 'propose', epoch: state.config.epoch, proposal } })),
  ];
}

/**
 * A round after an own proposal lost a race: the quorum's newest state says what became of the
 * write, through the operation ids it remembers (compare-and-set.ts).
 * - The write is in its history at version v: it is answered as written at v, at once when that
 *   state is known decided, else once this ballot re-proposed it (the repair).
 * - It is not, and the state remembers every version from the lowest the write ever had: no state
 *   this quorum holds has the write, so the operation is applied to it afresh. Any own proposal
 *   that could still be chosen is older than this ballot, so once this ballot's proposal is
 *   decided none of them can be, and the write appears once in every history. A precondition the
 *   state fails is answered (412, so not done) at once when the state is decided and newer than
 *   every own ballot: every later state builds on it, so no older own proposal can be chosen any
 *   more; otherwise once this ballot re-proposed the state unchanged.
 * - It is not, and the state does not remember that far back (more than `recentWritesKept`
 *   writes were decided since): the write may be in the history or not, so the outcome is unknown.
 */
function recover(state: ProposerState, current: Proposal | null, decided: boolean): [ProposerState, ProposerEffect[]] {
  const { operation, config } = state;
  assert(operation.kind === 'write', 'only a write proposes a state of its own');
  const register = current?.state ?? emptyRegister;
  const version = versionWrittenBy(register, config.operationId);
  if (version !== null) {
    const written: RegisterState = { version, value: operation.value, writes: register.writes.slice(register.version - version) };
    const result: OperationResult = { outcome: 'written', state: written };
    // When the write is the newest state, this round reports what the own proposal carried, as its
    // own round would have once decided: that round lost its answers, so nobody may have.
    const report =
      version === register.version
        ? [...carriedIn(state, register), ...unreportedStates(state, current, register)]
        : unreportedStates(state, current, register);
    if (decided) return answerDecided(state, current, result, report);
    return propose(state, result, register, report);
  }
  if (!remembersFrom(register, state.lowestOwnVersion)) {
    return finish(
      state,
      outcomeUnknown(
        state,
        `lost a race with competing writers (more than ${recentWritesKept} writes were decided since its proposal, so the key no longer says whether it was one of them)`,
      ),
    );
  }
  const last = state.ownBallots[state.ownBallots.length - 1] as Ballot;
  const settled = decided && current !== null && compareBallots(current.ballot, last) > 0;
  const result = applyOperation(register, operation, config.operationId);
  if (result.outcome !== 'written' && settled) return answerDecided(state, current, result);
  const nextState = result.outcome === 'written' ? result.state : register;
  return propose(state, result, nextState, unreportedStates(state, current, nextState));
}

/** The newest proposal the promises carry, and whether it is known to be decided. */
function currentState(state: ProposerState): { current: Proposal | null; decided: boolean } {
  const { promises, config } = state;
  const newest = (proposals: readonly (Proposal | null)[]): Proposal | null =>
    proposals.reduce<Proposal | null>(
      (best, proposal) => (proposal !== null && (best === null || compareBallots(proposal.ballot, best.ballot) > 0) ? proposal : best),
      null,
    );
  const committed = newest(promises.map((promise) => promise.committed));
  // The broken variant trusts only commits, so a value a paused proposer got accepted is dropped.
  if (config.broken === 'skip-repair') return { current: committed, decided: true };
  const current = newest([committed, ...promises.map((promise) => promise.accepted)]);
  if (current === null) return { current, decided: true };
  if (committed !== null && compareBallots(committed.ballot, current.ballot) === 0) return { current, decided: true };
  const acceptedIt = new Set(
    promises.filter((promise) => promise.accepted !== null && compareBallots(promise.accepted.ballot, current.ballot) === 0).map((promise) => promise.from),
  );
  return { current, decided: jointQuorumMet(config.groups, acceptedIt, config.broken) };
}

/** An acceptor refused (a newer ballot: `preempted`, or a newer ring `epoch`) or could not be reached. */
function onRefusal(state: ProposerState, from: string, round: number, preempted: boolean, epoch: number): [ProposerState, ProposerEffect[]] {
  if (state.refused.has(from) || (state.phase !== 'preparing' && state.phase !== 'proposing')) return [state, []];
  const next: ProposerState = {
    ...state,
    refused: new Set(state.refused).add(from),
    preempted: state.preempted || preempted,
    newestRound: Math.max(state.newestRound, round),
    newestEpoch: Math.max(state.newestEpoch, epoch),
  };
  if (!jointQuorumImpossible(state.config.groups, next.refused, state.config.broken)) return [next, []];
  // Our own value may sit on a minority that a later round will carry forward: never say "not done".
  // Losing a race goes on to a recovery round (decide's `recover`), which never applies it twice.
  if (next.ownBallots.length > 0 && (!next.preempted || next.newestEpoch > state.config.epoch)) {
    return finish(
      next,
      outcomeUnknown(
        next,
        next.newestEpoch > state.config.epoch
          ? `was refused by replicas on a newer ring (version ${next.newestEpoch})`
          : 'could not reach a quorum of acceptors with its proposal',
      ),
    );
  }
  if (next.newestEpoch > state.config.epoch) {
    // Retrying with the same groups cannot succeed: the replicas are on a newer ring than this node.
    return finish(
      next,
      notApplied(
        'KV_NOT_READY',
        next,
        `was refused by replicas on ring version ${next.newestEpoch}, newer than this node's ${state.config.epoch} (a ring change is under way)`,
      ),
    );
  }
  if (!next.preempted) {
    return finish(
      next,
      notApplied('KV_INSUFFICIENT_REPLICAS', next, `could not reach a quorum of the key's acceptors (${[...next.refused].join(', ')} unreachable)`),
    );
  }
  return [{ ...next, phase: 'backing-off' }, [{ type: 'back-off', maxDelayMs: state.config.backoffMs * next.attempts, atLeastRound: next.newestRound + 1 }]];
}

function finish(state: ProposerState, failure: { error: KvError; applied: 'no' | 'unknown' }): [ProposerState, ProposerEffect[]] {
  return [{ ...state, phase: 'done' }, [{ type: 'fail', error: failure.error, applied: failure.applied }]];
}

function describeGroups(state: ProposerState): string {
  return state.config.groups.map((group) => `[${group.join(', ')}]`).join(' and ');
}

function outcomeUnknown(state: ProposerState, what: string): { error: KvError; applied: 'unknown' } {
  return {
    applied: 'unknown',
    error: new KvError(
      'KV_TIMEOUT',
      `the consistent write ${what}; its outcome is unknown (a quorum of ${describeGroups(state)} may have accepted it), so ${checkBeforeRetrying('consistent-write')}`,
      { details: { applied: 'unknown', attempts: state.attempts } },
    ),
  };
}

function notApplied(code: 'KV_TIMEOUT' | 'KV_INSUFFICIENT_REPLICAS' | 'KV_NOT_READY', state: ProposerState, what: string): { error: KvError; applied: 'no' } {
  const operation = state.operation.kind === 'write' ? 'consistent write' : 'consistent read';
  const when =
    code === 'KV_INSUFFICIENT_REPLICAS'
      ? " once a majority of the key's replicas is reachable"
      : code === 'KV_NOT_READY'
        ? ' in a second, once this node has the new ring'
        : '';
  return {
    applied: 'no',
    error: new KvError(code, `the ${operation} ${what}; it did not happen, so it is safe to retry${when}`, {
      details: { applied: 'no', attempts: state.attempts },
      ...(code === 'KV_TIMEOUT' ? {} : { retryAfterSeconds: 1 }),
    }),
  };
}
