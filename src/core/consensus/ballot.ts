import { assert } from '../../util/assert.js';

/**
 * Paxos ballots ("proposal numbers" in Lamport's Paxos Made Simple): totally ordered, and never
 * issued twice. A ballot is (round, proposer): rounds are compared first, then the proposer
 * identity as a string, so two proposers never tie. No wall clock is involved (Cassandra's
 * ballots are time UUIDs, so a skewed clock makes a proposer lose every race or win them all);
 * a proposer learns the rounds it must beat from the acceptors' answers instead.
 *
 * `proposer` must name one proposer for the life of its process (node id plus an incarnation
 * drawn at start), and `issueBallot` keeps that proposer's rounds strictly rising, so the same
 * ballot is never used for two different values, even after a restart.
 */
export interface Ballot {
  readonly round: number;
  readonly proposer: string;
}

/** Below every ballot any proposer issues: what an acceptor that never promised holds. */
export const zeroBallot: Ballot = { round: 0, proposer: '' };

/** Orders ballots: negative when `left` is older, 0 when equal, positive when newer. */
export function compareBallots(left: Ballot, right: Ballot): number {
  if (left.round !== right.round) return left.round < right.round ? -1 : 1;
  if (left.proposer === right.proposer) return 0;
  return left.proposer < right.proposer ? -1 : 1;
}

/** The newer of two ballots. */
export function newerBallot(left: Ballot, right: Ballot): Ballot {
  return compareBallots(left, right) >= 0 ? left : right;
}

/** A ballot as text for messages and logs: "round.proposer". */
export function ballotText(ballot: Ballot): string {
  return `${ballot.round}.${ballot.proposer}`;
}

/**
 * The proposer identity of one process of node `nodeId`: the node id, its start's generation and
 * a nonce drawn at start, joined by ':'. Generation and nonce hold no ':', so the node id is read
 * back from the right (`proposerNode`), whatever characters it has.
 */
export function proposerIdentity(nodeId: string, generation: number, nonce: string): string {
  assert(!nonce.includes(':'), 'a proposer nonce holds no colon');
  return `${nodeId}:${generation}:${nonce}`;
}

/** The node a proposer identity (`proposerIdentity`) belongs to; undefined for one of another shape. */
export function proposerNode(proposer: string): string | undefined {
  const nonceAt = proposer.lastIndexOf(':');
  const generationAt = nonceAt <= 0 ? -1 : proposer.lastIndexOf(':', nonceAt - 1);
  return generationAt <= 0 ? undefined : proposer.slice(0, generationAt);
}

/** What one proposer remembers to keep its ballots unique and rising. */
export interface BallotIssuer {
  readonly proposer: string;
  readonly lastRound: number;
}

/** A fresh issuer for `proposer` (node id plus incarnation: unique for this process's life). */
export function startBallotIssuer(proposer: string): BallotIssuer {
  assert(proposer.length > 0, 'a proposer needs a non-empty identity');
  return { proposer, lastRound: 0 };
}

/**
 * The next ballot of this proposer, above round `atLeastRound - 1` (the newest round the
 * acceptors reported, plus one) and above every ballot it issued before.
 */
export function issueBallot(issuer: BallotIssuer, atLeastRound: number): [BallotIssuer, Ballot] {
  const round = Math.max(atLeastRound, issuer.lastRound + 1);
  assert(Number.isSafeInteger(round) && round > 0, 'a ballot round is a positive safe integer');
  return [
    { proposer: issuer.proposer, lastRound: round },
    { round, proposer: issuer.proposer },
  ];
}
