import { type Ballot, compareBallots, zeroBallot } from './ballot.js';
import type { BrokenVariant } from './broken-variants.js';
import type { RegisterState } from './compare-and-set.js';

/**
 * The acceptor half of per-key Paxos (Lamport, Paxos Made Simple, phases 1b and 2b), with the
 * commit record of Cassandra's LWT: per key it holds the newest ballot it promised, the newest
 * proposal it accepted, and the newest proposal it learned was decided. The step function
 * returns the state that must be durable (fsynced) before the reply leaves: an acceptor that
 * answers first and then loses power can break the quorum intersection Paxos rests on.
 */

/** A proposed next state of the key, under the ballot that proposed it. */
export interface Proposal {
  readonly ballot: Ballot;
  readonly state: RegisterState;
}

/** One key's acceptor state. */
export interface AcceptorState {
  /**
   * The newest ring epoch (ring version) a request for this key came with. A prepare or proposal
   * from an older epoch is refused: once a joint round of a ring change has reached a majority of
   * the old replicas, a proposer still using the old ring alone cannot win them (docs/CONSENSUS.md).
   */
  readonly epoch: number;
  /** No proposal with an older ballot is accepted, and no prepare with an older or equal ballot promised. */
  readonly promised: Ballot;
  /** The newest proposal this acceptor accepted, decided or not. */
  readonly accepted: Proposal | null;
  /** The newest proposal this acceptor learned was accepted by a quorum (decided). */
  readonly committed: Proposal | null;
}

/** The state of a key this acceptor never heard of. */
export const emptyAcceptorState: AcceptorState = { epoch: 0, promised: zeroBallot, accepted: null, committed: null };

/** A request to an acceptor; `epoch` is the ring version the proposer took the key's replica groups from. */
export type AcceptorRequest =
  | { readonly type: 'prepare'; readonly epoch: number; readonly ballot: Ballot }
  | { readonly type: 'propose'; readonly epoch: number; readonly proposal: Proposal }
  | { readonly type: 'commit'; readonly proposal: Proposal };

/** An acceptor's answer. A commit is not answered: a lost commit is repaired by the next round. */
export type AcceptorReply =
  | { readonly type: 'promise'; readonly ballot: Ballot; readonly accepted: Proposal | null; readonly committed: Proposal | null }
  | { readonly type: 'prepare-rejected'; readonly ballot: Ballot; readonly promised: Ballot; readonly epoch: number }
  | { readonly type: 'accepted'; readonly ballot: Ballot }
  | { readonly type: 'propose-rejected'; readonly ballot: Ballot; readonly promised: Ballot; readonly epoch: number };

/** What the engine does with one request: persist `persist` (when not null) durably, then send `reply` (when not null). */
export interface AcceptorStep {
  readonly state: AcceptorState;
  readonly persist: AcceptorState | null;
  readonly reply: AcceptorReply | null;
}

/** step(state, request) -> the new state, what must be durable first, and the answer. */
export function stepAcceptor(state: AcceptorState, request: AcceptorRequest, broken?: BrokenVariant): AcceptorStep {
  switch (request.type) {
    case 'prepare': {
      if (request.epoch < state.epoch)
        return { state, persist: null, reply: { type: 'prepare-rejected', ballot: request.ballot, promised: state.promised, epoch: state.epoch } };
      // Phase 1b: promise only a ballot newer than every one promised; equal is refused too, so a
      // duplicated prepare of a ballot whose proposal was since accepted cannot be promised twice.
      if (compareBallots(request.ballot, state.promised) <= 0) {
        return { state, persist: null, reply: { type: 'prepare-rejected', ballot: request.ballot, promised: state.promised, epoch: state.epoch } };
      }
      const next: AcceptorState = { ...state, epoch: Math.max(state.epoch, request.epoch), promised: request.ballot };
      return { state: next, persist: next, reply: { type: 'promise', ballot: request.ballot, accepted: state.accepted, committed: state.committed } };
    }
    case 'propose': {
      const { ballot } = request.proposal;
      if (request.epoch < state.epoch)
        return { state, persist: null, reply: { type: 'propose-rejected', ballot, promised: state.promised, epoch: state.epoch } };
      // Phase 2b: accept unless a newer ballot was promised. Equal is the proposer's own promise.
      if (compareBallots(ballot, state.promised) < 0 && broken !== 'skip-promise-check') {
        return { state, persist: null, reply: { type: 'propose-rejected', ballot, promised: state.promised, epoch: state.epoch } };
      }
      // A duplicated or late proposal older than what was accepted since must not roll it back.
      if (state.accepted !== null && compareBallots(ballot, state.accepted.ballot) <= 0) {
        const answer: AcceptorReply =
          compareBallots(ballot, state.accepted.ballot) === 0
            ? { type: 'accepted', ballot }
            : { type: 'propose-rejected', ballot, promised: state.promised, epoch: state.epoch };
        return { state, persist: null, reply: answer };
      }
      const promised = compareBallots(ballot, state.promised) > 0 ? ballot : state.promised;
      const next: AcceptorState = { ...state, epoch: Math.max(state.epoch, request.epoch), promised, accepted: request.proposal };
      return { state: next, persist: broken === 'accept-without-persisting' ? null : next, reply: { type: 'accepted', ballot } };
    }
    case 'commit': {
      if (state.committed !== null && compareBallots(request.proposal.ballot, state.committed.ballot) <= 0) return { state, persist: null, reply: null };
      const next: AcceptorState = { ...state, committed: request.proposal };
      return { state: next, persist: next, reply: null };
    }
  }
}
