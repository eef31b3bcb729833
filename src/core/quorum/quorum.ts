import { KvError } from '../../util/errors.js';
import type { QuorumSetting } from '../buckets.js';

/**
 * Resolving per-request quorums. The rule (documented in the README): the number of replicas a
 * key can have is `replicaCount = min(n_val, members in the ring)`; 'one' is 1, 'quorum' is
 * floor(replicaCount / 2) + 1 and 'all' is replicaCount, so a node started alone serves the
 * default requests. An explicit number is taken as asked: above n_val is a bad request, and
 * above what the cluster can give is an honest 503 KV_INSUFFICIENT_REPLICAS.
 */
export function resolveQuorum(setting: QuorumSetting, replicaCount: number): number {
  if (setting === 'one') return 1;
  if (setting === 'quorum') return Math.floor(replicaCount / 2) + 1;
  if (setting === 'all') return replicaCount;
  return setting;
}

/**
 * The one check of an explicit r, w, pr, pw or dw against the bucket's n_val: a number above it
 * can never be met, so the edge refuses it (400 KV_BAD_PARAMETER) instead of asking the replicas.
 */
export function quorumWithinNVal(setting: QuorumSetting, nVal: number): boolean {
  return typeof setting !== 'number' || (setting >= 1 && setting <= nVal);
}

/** One replica's answer as the tally counts it. */
export interface TallyReply {
  readonly ok: boolean;
  /** The replica is one of the key's primaries (not a fallback). */
  readonly primary: boolean;
  /** The replica fsynced the write before answering. */
  readonly durable: boolean;
  /** The answer counts towards `required` (a hint kept by the coordinator does not). */
  readonly counts: boolean;
  /** The replica is in the key's planned preference list (while a ring change is under way). */
  readonly planned?: boolean;
}

/** What a coordinator waits for. */
export interface TallyRequirement {
  readonly required: number;
  readonly primaryRequired: number;
  readonly durableRequired: number;
  /** How many replicas were asked, so the tally knows when no more answers can come. */
  readonly asked: number;
  /** How many of those asked are primaries. */
  readonly primariesAsked: number;
  /**
   * While a ring change is under way, a write must also reach a quorum of the key's planned
   * replicas, so that once the plan becomes the ring an `r` read of the new replicas still meets
   * every write acknowledged before (Cassandra counts pending endpoints in the same way).
   */
  readonly plannedRequired?: number;
  /** How many of those asked are planned replicas. */
  readonly plannedAsked?: number;
}

/** The running count of answers. */
export interface TallyState {
  readonly requirement: TallyRequirement;
  readonly answered: number;
  readonly succeeded: number;
  readonly primarySucceeded: number;
  readonly durableSucceeded: number;
  readonly primaryAnswered: number;
  readonly plannedSucceeded: number;
  readonly plannedAnswered: number;
}

/** The tally's verdict after each answer. */
export type TallyVerdict = 'pending' | 'met' | 'impossible';

/** A fresh tally. */
export function startTally(requirement: TallyRequirement): TallyState {
  return { requirement, answered: 0, succeeded: 0, primarySucceeded: 0, durableSucceeded: 0, primaryAnswered: 0, plannedSucceeded: 0, plannedAnswered: 0 };
}

/** Counts one answer: step(state, event) -> state. */
export function recordReply(state: TallyState, reply: TallyReply): TallyState {
  const counted = reply.ok && reply.counts;
  return {
    requirement: state.requirement,
    answered: state.answered + 1,
    succeeded: state.succeeded + (counted ? 1 : 0),
    primarySucceeded: state.primarySucceeded + (counted && reply.primary ? 1 : 0),
    durableSucceeded: state.durableSucceeded + (counted && reply.durable ? 1 : 0),
    primaryAnswered: state.primaryAnswered + (reply.primary ? 1 : 0),
    plannedSucceeded: state.plannedSucceeded + (reply.ok && reply.planned === true ? 1 : 0),
    plannedAnswered: state.plannedAnswered + (reply.planned === true ? 1 : 0),
  };
}

/** Whether the requirement is met, can still be met, or cannot be met any more. */
export function verdict(state: TallyState): TallyVerdict {
  const need = state.requirement;
  const plannedRequired = need.plannedRequired ?? 0;
  if (
    state.succeeded >= need.required &&
    state.primarySucceeded >= need.primaryRequired &&
    state.durableSucceeded >= need.durableRequired &&
    state.plannedSucceeded >= plannedRequired
  ) {
    return 'met';
  }
  const outstanding = need.asked - state.answered;
  const primaryOutstanding = need.primariesAsked - state.primaryAnswered;
  const plannedOutstanding = (need.plannedAsked ?? 0) - state.plannedAnswered;
  if (
    state.succeeded + outstanding < need.required ||
    state.primarySucceeded + primaryOutstanding < need.primaryRequired ||
    state.durableSucceeded + outstanding < need.durableRequired ||
    state.plannedSucceeded + plannedOutstanding < plannedRequired
  ) {
    return 'impossible';
  }
  return 'pending';
}

/** What an operation needed, in words: "2 replicas (1 primary, 0 durable)". */
function neededText(need: TallyRequirement): string {
  return `${need.required} replicas (${need.primaryRequired} primaries, ${need.durableRequired} durable${need.plannedRequired ? `, ${need.plannedRequired} of the planned replicas of a ring change` : ''})`;
}

/**
 * What a coordinated change is, for its error messages: a `write` (PUT), a `delete`, an `update`
 * of a data type (/dt), or a `restore` merging a backed-up version.
 */
export type WriteOperation = 'write' | 'delete' | 'update' | 'restore';

/**
 * What to do before retrying a change whose outcome is unknown (some replica may hold it): the
 * one text of it, in the quorum errors here, the coordinator's and the Paxos proposer's.
 */
export function checkBeforeRetrying(operation: WriteOperation | 'consistent-write'): string {
  switch (operation) {
    case 'write':
    case 'delete':
      return 'read the key back before retrying';
    case 'update':
      return 'read the data type back before retrying (an increment sent again may count twice)';
    case 'restore':
      return 'running the restore again is safe, as merging twice changes nothing';
    case 'consistent-write':
      return 'read the key (a consistent read settles it) before retrying';
  }
}

/** What happened to a change that failed after it was sent (some replicas may hold it), and what to do before retrying. */
function outcomeUnknown(operation: WriteOperation): string {
  const happened = {
    write: 'the write may have been stored',
    delete: 'the delete may have been stored',
    update: 'the update may have been applied',
    restore: 'the version may have been merged',
  }[operation];
  return `${happened} by the replicas that answered ok (and by those that did not answer), so ${checkBeforeRetrying(operation)}`;
}

/** The quorum parameters that make a change easier to acknowledge. */
function writeRemedy(operation: WriteOperation): string {
  return operation === 'update' ? 'lower w' : operation === 'restore' ? 'restore with a lower --w' : 'lower w/pw/dw';
}

/**
 * The 503 an unmet quorum answers with, saying what was needed and what answered, and what
 * that means for the operation: a read changed nothing; a write refused before any replica was
 * asked (`written` false) certainly did not happen; a write sent to replicas may have happened.
 */
export function insufficientReplicasError(
  operation: 'read' | WriteOperation,
  state: TallyState,
  written?: boolean,
  knownDown: readonly string[] = [],
): KvError {
  const need = state.requirement;
  const remedy = operation === 'read' ? 'lower r/pr' : writeRemedy(operation);
  // A replica this node already holds down is counted as failed without being asked (a read fails at once when r cannot be met).
  const asked =
    knownDown.length === 0
      ? `of the ${need.asked} asked`
      : `of the ${need.asked - knownDown.length} asked (${knownDown.length} more, ${knownDown.join(', ')}, not asked: this node holds ${knownDown.length === 1 ? 'it' : 'them'} down)`;
  const message =
    written === false
      ? `the ${operation} was not sent: it needs ${neededText(need)} but only ${need.asked} replicas (${need.primariesAsked} primaries) are up to take it; nothing was changed, so it is safe to retry once nodes are back, or ${remedy}`
      : `${operation} needed ${neededText(need)} but only ${state.succeeded} answered ok (${state.primarySucceeded} primaries, ${state.durableSucceeded} durable${need.plannedRequired ? `, ${state.plannedSucceeded} planned` : ''}) ${asked}; ${
          operation === 'read' ? `the read changed nothing; retry later or ${remedy}` : `${outcomeUnknown(operation)}, or ${remedy}`
        }`;
  return new KvError('KV_INSUFFICIENT_REPLICAS', message, {
    details: {
      required: need.required,
      primaryRequired: need.primaryRequired,
      durableRequired: need.durableRequired,
      succeeded: state.succeeded,
      primarySucceeded: state.primarySucceeded,
      durableSucceeded: state.durableSucceeded,
      asked: need.asked,
      ...(knownDown.length === 0 ? {} : { knownDown: [...knownDown] }),
      ...(written === undefined ? {} : { written }),
    },
    retryAfterSeconds: 1,
  });
}

/** The 504 a coordinator answers when the deadline passes first, saying what it received and what that means for the operation. */
export function timeoutError(operation: 'read' | WriteOperation, state: TallyState, timeoutMs: number): KvError {
  const need = state.requirement;
  const outcome = operation === 'read' ? 'the read changed nothing; retry with a longer timeout_ms or a lower r' : outcomeUnknown(operation);
  return new KvError(
    'KV_TIMEOUT',
    `${operation} timed out after ${timeoutMs} ms with ${state.succeeded} of ${need.required} required replicas answering ok (${state.answered} of ${need.asked} answered at all); ${outcome}`,
    { details: { required: need.required, succeeded: state.succeeded, answered: state.answered, asked: need.asked, timeoutMs } },
  );
}
