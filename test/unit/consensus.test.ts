import { describe, expect, it } from 'vitest';
import {
  type AcceptorReply,
  type AcceptorRequest,
  type AcceptorState,
  type Proposal,
  emptyAcceptorState,
  stepAcceptor,
} from '../../src/core/consensus/acceptor.js';
import { acceptorStateFormat, decodeAcceptorState, encodeAcceptorState } from '../../src/core/consensus/acceptor-codec.js';
import { type Ballot, compareBallots, issueBallot, startBallotIssuer } from '../../src/core/consensus/ballot.js';
import {
  type RegisterOperation,
  type WriteCondition,
  applyOperation,
  emptyRegister,
  operationId,
  recentWritesKept,
  remembersFrom,
  versionWrittenBy,
} from '../../src/core/consensus/compare-and-set.js';
import { type ProposerEffect, type ProposerState, startProposer, stepProposer } from '../../src/core/consensus/proposer.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * Goals of the consensus core's parts, one at a time (docs/CONSENSUS.md): ballots are totally
 * ordered and never issued twice; an acceptor keeps its promises, asks for its state to be
 * synced before each answer that depends on it, and never rolls back; its state survives the
 * codec; a proposer uncontended writes in two round trips and reads in one, repairs an
 * undecided value before anyone observes it, and never says "not done" once its own value was
 * proposed.
 */

const ballot = (round: number, proposer = 'p'): Ballot => ({ round, proposer });
const text = (value: string): Uint8Array => Buffer.from(value);
/** The operation id of the proposer under test. */
const mine = operationId('test', 0);

describe('ballots', () => {
  it('order by round first, then by proposer, and a proposer never issues the same ballot twice', () => {
    expect(compareBallots(ballot(2, 'a'), ballot(1, 'z'))).toBeGreaterThan(0);
    expect(compareBallots(ballot(1, 'a'), ballot(1, 'b'))).toBeLessThan(0);
    expect(compareBallots(ballot(3, 'a'), ballot(3, 'a'))).toBe(0);
    let issuer = startBallotIssuer('n1#7');
    const issued: Ballot[] = [];
    for (const atLeast of [1, 1, 5, 2, 5]) {
      const [next, issuedBallot] = issueBallot(issuer, atLeast);
      issuer = next;
      issued.push(issuedBallot);
    }
    expect(issued.map((each) => each.round)).toEqual([1, 2, 5, 6, 7]);
  });
});

describe('acceptor', () => {
  it('promises only a newer ballot, and persists the promise before answering', () => {
    const first = stepAcceptor(emptyAcceptorState, { type: 'prepare', epoch: 1, ballot: ballot(2) });
    expect(first.reply?.type).toBe('promise');
    expect(first.persist).toEqual(first.state);
    for (const older of [ballot(2), ballot(1, 'z')]) {
      const refused = stepAcceptor(first.state, { type: 'prepare', epoch: 1, ballot: older });
      expect(refused.reply).toEqual({ type: 'prepare-rejected', ballot: older, promised: ballot(2), epoch: 1 });
      expect(refused.persist).toBeNull();
    }
  });

  it('accepts a proposal of its promised ballot or newer, persisted first; refuses an older one; a duplicate does not roll back', () => {
    const promised = stepAcceptor(emptyAcceptorState, { type: 'prepare', epoch: 1, ballot: ballot(2) }).state;
    const older = stepAcceptor(promised, { type: 'propose', epoch: 1, proposal: { ballot: ballot(1), state: { version: 1, value: text('a'), writes: [] } } });
    expect(older.reply?.type).toBe('propose-rejected');
    const accepted = stepAcceptor(promised, {
      type: 'propose',
      epoch: 1,
      proposal: { ballot: ballot(2), state: { version: 1, value: text('b'), writes: [] } },
    });
    expect(accepted.reply).toEqual({ type: 'accepted', ballot: ballot(2) });
    expect(accepted.persist?.accepted?.state.value).toEqual(text('b'));
    const newer = stepAcceptor(accepted.state, {
      type: 'propose',
      epoch: 1,
      proposal: { ballot: ballot(4), state: { version: 2, value: text('c'), writes: [] } },
    });
    const lateDuplicate = stepAcceptor(newer.state, {
      type: 'propose',
      epoch: 1,
      proposal: { ballot: ballot(2), state: { version: 1, value: text('b'), writes: [] } },
    });
    expect(lateDuplicate.reply?.type).toBe('propose-rejected');
    expect(lateDuplicate.state.accepted?.ballot).toEqual(ballot(4));
  });

  it('records the newest commit only, and answers nothing to a commit', () => {
    const commit = (round: number): AcceptorRequest => ({
      type: 'commit',
      proposal: { ballot: ballot(round), state: { version: round, value: text(`v${round}`), writes: [] } },
    });
    const newer = stepAcceptor(emptyAcceptorState, commit(3));
    expect(newer.reply).toBeNull();
    expect(newer.persist?.committed?.ballot).toEqual(ballot(3));
    const older = stepAcceptor(newer.state, commit(2));
    expect(older.state.committed?.ballot).toEqual(ballot(3));
    expect(older.persist).toBeNull();
  });

  it('refuses a prepare or proposal from an older ring epoch, and remembers (persists) the newest epoch it saw', () => {
    const joint = stepAcceptor(emptyAcceptorState, { type: 'prepare', epoch: 2, ballot: ballot(1) });
    expect(joint.persist?.epoch).toBe(2);
    const stalePrepare = stepAcceptor(joint.state, { type: 'prepare', epoch: 1, ballot: ballot(9) });
    expect(stalePrepare.reply).toEqual({ type: 'prepare-rejected', ballot: ballot(9), promised: ballot(1), epoch: 2 });
    const staleProposal = stepAcceptor(joint.state, {
      type: 'propose',
      epoch: 1,
      proposal: { ballot: ballot(1), state: { version: 1, value: null, writes: [] } },
    });
    expect(staleProposal.reply?.type).toBe('propose-rejected');
    expect(staleProposal.state.accepted).toBeNull();
  });

  it('the broken variant accept-without-persisting answers with nothing to sync (what the simulation catches)', () => {
    const promised = stepAcceptor(emptyAcceptorState, { type: 'prepare', epoch: 1, ballot: ballot(1) }).state;
    const step = stepAcceptor(
      promised,
      { type: 'propose', epoch: 1, proposal: { ballot: ballot(1), state: { version: 1, value: null, writes: [] } } },
      'accept-without-persisting',
    );
    expect(step.reply?.type).toBe('accepted');
    expect(step.persist).toBeNull();
  });
});

describe('acceptor state codec', () => {
  it('round-trips every shape, including an absent value and an empty one', () => {
    const states: AcceptorState[] = [
      emptyAcceptorState,
      {
        epoch: 4,
        promised: ballot(9, 'n2#1'),
        accepted: { ballot: ballot(9, 'n2#1'), state: { version: 4, value: null, writes: [] } },
        committed: { ballot: ballot(7, 'n1#3'), state: { version: 3, value: text(''), writes: [] } },
      },
      {
        epoch: 2 ** 33,
        promised: ballot(2 ** 40, 'ü'),
        accepted: { ballot: ballot(1), state: { version: 1, value: text('x'.repeat(1000)), writes: [] } },
        committed: null,
      },
      {
        epoch: 1,
        promised: ballot(5),
        accepted: {
          ballot: ballot(5),
          state: { version: 40, value: text('y'), writes: Array.from({ length: recentWritesKept }, (_, index) => operationId('w', index)) },
        },
        committed: { ballot: ballot(4), state: { version: 2, value: null, writes: [mine] } },
      },
    ];
    for (const state of states) expect(decodeAcceptorState(encodeAcceptorState(state))).toEqual(state);
  });

  it('refuses an unknown format, a truncated record and trailing bytes with KV_STORAGE', () => {
    const encoded = encodeAcceptorState({ epoch: 1, promised: ballot(3), accepted: null, committed: null });
    const unknownFormat = Buffer.from(encoded);
    unknownFormat[0] = acceptorStateFormat + 1;
    for (const bad of [unknownFormat, encoded.subarray(0, encoded.length - 1), Buffer.concat([encoded, Buffer.from([0])])]) {
      let error: unknown;
      try {
        decodeAcceptorState(bad);
      } catch (caught) {
        error = caught;
      }
      expect(isKvError(error) && error.code).toBe('KV_STORAGE');
    }
  });
});

describe('compare-and-set', () => {
  it('If-None-Match writes only an absent key, If-Match only the named live version, and every write adds one to the version', () => {
    const created = applyOperation(emptyRegister, { kind: 'write', value: text('a'), condition: { kind: 'absent' } }, mine);
    expect(created).toEqual({ outcome: 'written', state: { version: 1, value: text('a'), writes: [mine] } });
    expect(applyOperation(created.state, { kind: 'write', value: text('b'), condition: { kind: 'absent' } }, mine).outcome).toBe('precondition-failed');
    expect(applyOperation(created.state, { kind: 'write', value: text('b'), condition: { kind: 'version', version: 0 } }, mine).outcome).toBe(
      'precondition-failed',
    );
    const deleted = applyOperation(created.state, { kind: 'write', value: null, condition: { kind: 'version', version: 1 } }, mine);
    expect(deleted.state).toEqual({ version: 2, value: null, writes: [mine, mine] });
    // A state remembers the ids of its newest writes only (recentWritesKept), newest first.
    let many = created.state;
    for (let index = 0; index < recentWritesKept + 3; index++)
      many = applyOperation(many, { kind: 'write', value: null, condition: { kind: 'none' } }, operationId('other', index)).state;
    expect(many.writes).toHaveLength(recentWritesKept);
    expect(versionWrittenBy(many, operationId('other', recentWritesKept + 2))).toBe(many.version);
    expect(versionWrittenBy(many, operationId('other', 3))).toBe(5);
    expect(versionWrittenBy(many, mine), 'the first write is no longer remembered').toBeNull();
    expect(remembersFrom(many, 1)).toBe(false);
    expect(remembersFrom(many, many.version - recentWritesKept + 1)).toBe(true);
    // A deleted key is absent again, and its version keeps growing: a fencing token never repeats.
    expect(applyOperation(deleted.state, { kind: 'write', value: text('c'), condition: { kind: 'absent' } }, mine).state.version).toBe(3);
  });

  it("a restore writes only below the backed-up version and takes exactly it, remembering only its own id (README, 'Backup and restore')", () => {
    const restore = (version: number) => ({ kind: 'write', value: text('backed up'), condition: { kind: 'restore', version } }) as const;
    let target = emptyRegister;
    for (let index = 0; index < 3; index++)
      target = applyOperation(target, { kind: 'write', value: text('t'), condition: { kind: 'none' } }, operationId('t', index)).state;
    const raised = applyOperation(target, restore(7), mine);
    expect(raised).toEqual({ outcome: 'written', state: { version: 7, value: text('backed up'), writes: [mine] } });
    expect(versionWrittenBy(raised.state, mine)).toBe(7);
    expect(remembersFrom(raised.state, 7)).toBe(true);
    expect(remembersFrom(raised.state, 6), 'the skipped versions have no known writer').toBe(false);
    // The same version or an older one leaves the key as it is: a version never goes back.
    expect(applyOperation(raised.state, restore(7), operationId('again', 0))).toEqual({ outcome: 'precondition-failed', state: raised.state });
    expect(applyOperation(target, restore(3), mine).outcome).toBe('precondition-failed');
    expect(applyOperation(target, restore(2), mine).outcome).toBe('precondition-failed');
    // The next write after a restore goes on from the restored version.
    expect(applyOperation(raised.state, { kind: 'write', value: null, condition: { kind: 'version', version: 7 } }, operationId('t', 9)).state).toMatchObject({
      version: 8,
      writes: [operationId('t', 9), mine],
    });
  });
});

/** Runs one operation against in-memory acceptors over a perfect network, counting round trips. */
function runRound(
  acceptors: Map<string, AcceptorState>,
  operation: RegisterOperation,
  round: number,
  deliverTo?: (to: string, request: AcceptorRequest) => boolean,
): { effects: ProposerEffect[]; roundTrips: number; state: ProposerState } {
  let state = startProposer({ groups: [[...acceptors.keys()]], epoch: 1, timeoutMs: 1000, backoffMs: 10, operationId: operationId('test', round) }, operation);
  let pending: ProposerEffect[];
  [state, pending] = stepProposer(state, { type: 'start', nowMs: 0, ballot: ballot(round) });
  const done: ProposerEffect[] = [];
  let roundTrips = 0;
  while (pending.some((effect) => effect.type === 'send' && effect.request.type !== 'commit')) {
    roundTrips += 1;
    const answers: { from: string; reply: AcceptorReply }[] = [];
    for (const effect of pending) {
      if (effect.type !== 'send') {
        done.push(effect);
        continue;
      }
      if (deliverTo !== undefined && !deliverTo(effect.to, effect.request)) continue;
      const step = stepAcceptor(acceptors.get(effect.to) as AcceptorState, effect.request);
      acceptors.set(effect.to, step.state);
      if (step.reply !== null) answers.push({ from: effect.to, reply: step.reply });
    }
    pending = [];
    for (const answer of answers) {
      const [next, effects] = stepProposer(state, { type: 'answer', ...answer });
      state = next;
      pending.push(...effects);
    }
  }
  for (const effect of pending) {
    if (effect.type !== 'send') done.push(effect);
    else if (deliverTo === undefined || deliverTo(effect.to, effect.request))
      acceptors.set(effect.to, stepAcceptor(acceptors.get(effect.to) as AcceptorState, effect.request).state);
  }
  return { effects: done, roundTrips, state };
}

const freshAcceptors = (): Map<string, AcceptorState> => new Map(['a', 'b', 'c'].map((id) => [id, emptyAcceptorState]));

describe('proposer', () => {
  it('uncontended: a write takes two round trips and a read one', () => {
    const acceptors = freshAcceptors();
    const write = runRound(acceptors, { kind: 'write', value: text('v1'), condition: { kind: 'absent' } }, 1);
    expect(write.roundTrips).toBe(2);
    expect(write.effects.find((effect) => effect.type === 'reply')).toMatchObject({ result: { outcome: 'written', state: { version: 1 } } });
    const read = runRound(acceptors, { kind: 'read' }, 2);
    expect(read.roundTrips).toBe(1);
    expect(read.effects.find((effect) => effect.type === 'reply')).toMatchObject({ result: { outcome: 'read', state: { version: 1, value: text('v1') } } });
  });

  it('a value a paused proposer got accepted by one acceptor is repaired before a read returns it', () => {
    const acceptors = freshAcceptors();
    // The paused proposer's value reached only acceptor c: not decided, but a later round may see it.
    acceptors.set(
      'c',
      stepAcceptor(stepAcceptor(emptyAcceptorState, { type: 'prepare', epoch: 1, ballot: ballot(1, 'paused') }).state, {
        type: 'propose',
        epoch: 1,
        proposal: { ballot: ballot(1, 'paused'), state: { version: 1, value: text('half'), writes: [] } },
      }).state,
    );
    // Acceptor a is cut off, so the read's quorum is b and c, and c shows the undecided value.
    const read = runRound(acceptors, { kind: 'read' }, 2, (to) => to !== 'a');
    expect(read.roundTrips, 'the read proposed the value it saw before returning it').toBe(2);
    expect(read.effects.find((effect) => effect.type === 'reply')).toMatchObject({ result: { outcome: 'read', state: { version: 1, value: text('half') } } });
    expect(
      [...acceptors.values()].filter(
        (state) => state.accepted?.state.value !== undefined && Buffer.from(state.accepted.state.value ?? []).toString() === 'half',
      ).length,
    ).toBeGreaterThanOrEqual(2);
  });

  it('a write that finds an undecided value builds on it in the same proposal (its If-Match sees that version)', () => {
    const acceptors = freshAcceptors();
    acceptors.set('a', {
      epoch: 1,
      promised: ballot(1, 'paused'),
      accepted: { ballot: ballot(1, 'paused'), state: { version: 1, value: text('first'), writes: [] } },
      committed: null,
    });
    const write = runRound(acceptors, { kind: 'write', value: text('second'), condition: { kind: 'version', version: 1 } }, 2, (to) => to !== 'c');
    expect(write.roundTrips).toBe(2);
    expect(write.effects.find((effect) => effect.type === 'reply')).toMatchObject({
      result: { outcome: 'written', state: { version: 2, value: text('second'), writes: [operationId('test', 2)] } },
    });
  });

  it('with no quorum reachable it fails with KV_INSUFFICIENT_REPLICAS and says nothing happened', () => {
    let state = startProposer(
      { groups: [['a', 'b', 'c']], epoch: 1, timeoutMs: 1000, backoffMs: 10, operationId: mine },
      { kind: 'write', value: text('x'), condition: { kind: 'none' } },
    );
    [state] = stepProposer(state, { type: 'start', nowMs: 0, ballot: ballot(1) });
    [state] = stepProposer(state, { type: 'unreachable', from: 'a', ballot: ballot(1) });
    const [, effects] = stepProposer(state, { type: 'unreachable', from: 'b', ballot: ballot(1) });
    expect(effects).toMatchObject([{ type: 'fail', applied: 'no', error: { code: 'KV_INSUFFICIENT_REPLICAS' } }]);
  });

  it('a prepare lost to a newer ballot backs off for a newer round; once its own value was proposed, timing out is "unknown" and losing a race recovers', () => {
    let state = startProposer(
      { groups: [['a', 'b', 'c']], epoch: 1, timeoutMs: 1000, backoffMs: 10, operationId: mine },
      { kind: 'write', value: text('x'), condition: { kind: 'none' } },
    );
    let effects: ProposerEffect[];
    [state] = stepProposer(state, { type: 'start', nowMs: 0, ballot: ballot(1) });
    [state] = stepProposer(state, {
      type: 'answer',
      from: 'a',
      reply: { type: 'prepare-rejected', ballot: ballot(1), promised: ballot(5, 'other'), epoch: 1 },
    });
    [state, effects] = stepProposer(state, {
      type: 'answer',
      from: 'b',
      reply: { type: 'prepare-rejected', ballot: ballot(1), promised: ballot(6, 'other'), epoch: 1 },
    });
    expect(effects).toEqual([{ type: 'back-off', maxDelayMs: 10, atLeastRound: 7 }]);
    [state] = stepProposer(state, { type: 'retry', ballot: ballot(7) });
    [state] = stepProposer(state, { type: 'answer', from: 'a', reply: { type: 'promise', ballot: ballot(7), accepted: null, committed: null } });
    [state, effects] = stepProposer(state, { type: 'answer', from: 'b', reply: { type: 'promise', ballot: ballot(7), accepted: null, committed: null } });
    expect(effects.filter((effect) => effect.type === 'send' && effect.request.type === 'propose')).toHaveLength(3);
    const [, timedOut] = stepProposer(state, { type: 'deadline' });
    expect(timedOut).toMatchObject([{ type: 'fail', applied: 'unknown', error: { code: 'KV_TIMEOUT' } }]);
    [state] = stepProposer(state, {
      type: 'answer',
      from: 'a',
      reply: { type: 'propose-rejected', ballot: ballot(7), promised: ballot(8, 'other'), epoch: 1 },
    });
    [, effects] = stepProposer(state, {
      type: 'answer',
      from: 'c',
      reply: { type: 'propose-rejected', ballot: ballot(7), promised: ballot(8, 'other'), epoch: 1 },
    });
    expect(effects, 'a lost proposal race is retried (a recovery round), not reported at once').toMatchObject([{ type: 'back-off', atLeastRound: 9 }]);
  });

  /**
   * A write (If-Match 3, operation id `mine`) whose proposal of version 4 under ballot 7 lost a
   * race, then its recovery round under ballot 9 got promises from a and b carrying `onA` and
   * `onB` as their accepted proposals (b defaults to a's: then it is decided).
   */
  function recoveryAfterLostRace(
    onA: Proposal | null,
    onB: Proposal | null = onA,
    condition: WriteCondition = { kind: 'version', version: 3 },
  ): ProposerEffect[] {
    let state = startProposer(
      { groups: [['a', 'b', 'c']], epoch: 1, timeoutMs: 1000, backoffMs: 10, operationId: mine },
      { kind: 'write', value: text('mine'), condition },
    );
    [state] = stepProposer(state, { type: 'start', nowMs: 0, ballot: ballot(7) });
    for (const from of ['a', 'b'])
      [state] = stepProposer(state, { type: 'answer', from, reply: { type: 'promise', ballot: ballot(7), accepted: three, committed: three } });
    for (const from of ['a', 'b'])
      [state] = stepProposer(state, { type: 'answer', from, reply: { type: 'propose-rejected', ballot: ballot(7), promised: ballot(8, 'other'), epoch: 1 } });
    [state] = stepProposer(state, { type: 'retry', ballot: ballot(9) });
    let effects: ProposerEffect[] = [];
    for (const [from, accepted] of [
      ['a', onA],
      ['b', onB],
    ] as const)
      [state, effects] = stepProposer(state, { type: 'answer', from, reply: { type: 'promise', ballot: ballot(9), accepted, committed: three } });
    return effects;
  }
  const three: Proposal = { ballot: ballot(2, 'other'), state: { version: 3, value: text('three'), writes: [operationId('other', 3)] } };
  /** The answer among a round's effects (a decided state nobody committed is reported and committed first). */
  const answer = (effects: ProposerEffect[]): ProposerEffect[] => effects.filter((effect) => effect.type === 'reply' || effect.type === 'fail');
  const proposals = (effects: ProposerEffect[]): unknown[] =>
    effects.flatMap((effect) => (effect.type === 'send' && effect.request.type === 'propose' ? [effect.request.proposal] : []));

  it('a recovery round that finds its own proposal decided answers it as written, and one that finds it undecided finishes it, never applying the write twice', () => {
    const own: Proposal = { ballot: ballot(7), state: { version: 4, value: text('mine'), writes: [mine, operationId('other', 3)] } };
    const decided = recoveryAfterLostRace(own);
    expect(answer(decided)).toMatchObject([{ type: 'reply', result: { outcome: 'written', state: { version: 4, value: text('mine') } } }]);
    // Its own round never heard the quorum accept it, so nobody reported it to the watches: this round does, then commits it.
    expect(decided[0]).toMatchObject({ type: 'decided', states: [{ version: 4 }] });
    const finishing = recoveryAfterLostRace(own, three);
    expect(proposals(finishing)).toMatchObject([{ ballot: ballot(9), state: { version: 4, writes: [mine, operationId('other', 3)] } }, {}, {}]);
  });

  it('a recovery round that finds its own proposal decided reports the undecided state that proposal carried, when the history confirms it', () => {
    // Version 3 reached a quorum, but nobody committed it (its proposer lost the answers): the write carries it.
    const two: Proposal = { ballot: ballot(1, 'other'), state: { version: 2, value: text('two'), writes: [operationId('other', 2)] } };
    const three: Proposal = {
      ballot: ballot(2, 'other'),
      state: { version: 3, value: text('three'), writes: [operationId('other', 3), operationId('other', 2)] },
    };
    /** The write's first round carries `three`; its proposal is accepted by a and b but their answers are lost; its recovery round finds `found` on a and b. */
    const recovery = (found: Proposal): ProposerEffect[] => {
      let state = startProposer(
        { groups: [['a', 'b', 'c']], epoch: 1, timeoutMs: 1000, backoffMs: 10, operationId: mine },
        { kind: 'write', value: text('mine'), condition: { kind: 'none' } },
      );
      let effects: ProposerEffect[] = [];
      [state] = stepProposer(state, { type: 'start', nowMs: 0, ballot: ballot(7) });
      for (const from of ['a', 'b'])
        [state, effects] = stepProposer(state, { type: 'answer', from, reply: { type: 'promise', ballot: ballot(7), accepted: three, committed: two } });
      expect(proposals(effects), 'the write builds on the carried state').toMatchObject([{ state: { version: 4 } }, {}, {}]);
      [state] = stepProposer(state, { type: 'unreachable', from: 'c', ballot: ballot(7) });
      [state] = stepProposer(state, {
        type: 'answer',
        from: 'b',
        reply: { type: 'propose-rejected', ballot: ballot(7), promised: ballot(8, 'other'), epoch: 1 },
      });
      [state] = stepProposer(state, { type: 'retry', ballot: ballot(9) });
      for (const from of ['a', 'b'])
        [state, effects] = stepProposer(state, { type: 'answer', from, reply: { type: 'promise', ballot: ballot(9), accepted: found, committed: two } });
      return effects;
    };
    const own: Proposal = { ballot: ballot(7), state: { version: 4, value: text('mine'), writes: [mine, operationId('other', 3), operationId('other', 2)] } };
    const effects = recovery(own);
    expect(answer(effects)).toMatchObject([{ type: 'reply', result: { outcome: 'written', state: { version: 4 } } }]);
    // Its own round would have reported version 3 with 4; this round is the only one that knows 3's value.
    expect(effects[0]).toMatchObject({
      type: 'decided',
      states: [
        { version: 3, value: text('three') },
        { version: 4, value: text('mine') },
      ],
    });
    // A version 4 of this write built on another version 3 (an earlier own proposal, say): the carried 3 is not in its history.
    const onAnother: Proposal = {
      ballot: ballot(7),
      state: { version: 4, value: text('mine'), writes: [mine, operationId('third', 3), operationId('other', 2)] },
    };
    const reported = recovery(onAnother).flatMap((effect) => (effect.type === 'decided' ? effect.states.map((state) => state.version) : []));
    expect(reported).toEqual([4]);
  });

  it('a recovery round applies the write afresh when the newest state its quorum holds does not have it', () => {
    expect(proposals(recoveryAfterLostRace(null))).toMatchObject([
      { ballot: ballot(9), state: { version: 4, value: text('mine'), writes: [mine, operationId('other', 3)] } },
      {},
      {},
    ]);
    // A competitor's newer state without the write: an unconditional write goes on top of it.
    const theirs: Proposal = {
      ballot: ballot(8, 'other'),
      state: { version: 4, value: text('theirs'), writes: [operationId('other', 4), operationId('other', 3)] },
    };
    expect(proposals(recoveryAfterLostRace(theirs, theirs, { kind: 'none' }))).toMatchObject([
      { ballot: ballot(9), state: { version: 5, value: text('mine'), writes: [mine, operationId('other', 4), operationId('other', 3)] } },
      {},
      {},
    ]);
  });

  it("a recovery round that finds a competitor's decided state carrying its write answers written at the version the write got", () => {
    // The competitor read this write's proposal (version 4) and wrote version 5 on top of it.
    const onTop: Proposal = {
      ballot: ballot(8, 'other'),
      state: { version: 5, value: text('theirs'), writes: [operationId('other', 5), mine, operationId('other', 3)] },
    };
    expect(answer(recoveryAfterLostRace(onTop))).toMatchObject([
      { type: 'reply', result: { outcome: 'written', state: { version: 4, value: text('mine'), writes: [mine, operationId('other', 3)] } } },
    ]);
  });

  it("a recovery round that finds a competitor's newer decided state without its write answers 412 when its If-Match no longer holds (not done), and re-proposes first when that state is undecided", () => {
    const theirs: Proposal = {
      ballot: ballot(8, 'other'),
      state: { version: 4, value: text('theirs'), writes: [operationId('other', 4), operationId('other', 3)] },
    };
    expect(answer(recoveryAfterLostRace(theirs))).toMatchObject([{ type: 'reply', result: { outcome: 'precondition-failed', state: { version: 4 } } }]);
    const undecided = recoveryAfterLostRace(theirs, three);
    expect(undecided.some((effect) => effect.type === 'reply')).toBe(false);
    expect(proposals(undecided), 'the state is proposed unchanged, so no older proposal of the write can be chosen after the 412').toMatchObject([
      { ballot: ballot(9), state: { version: 4, value: text('theirs') } },
      {},
      {},
    ]);
  });

  it('a recovery round answers "unknown" only when the newest state no longer remembers the versions the write could have', () => {
    let far = three.state;
    for (let index = 0; index < recentWritesKept; index++)
      far = applyOperation(far, { kind: 'write', value: null, condition: { kind: 'none' } }, operationId('other', 10 + index)).state;
    // recentWritesKept writes after version 3: version 4 is still remembered, so the answer is definite.
    expect(answer(recoveryAfterLostRace({ ballot: ballot(8, 'other'), state: far }))).toMatchObject([
      { type: 'reply', result: { outcome: 'precondition-failed' } },
    ]);
    far = applyOperation(far, { kind: 'write', value: null, condition: { kind: 'none' } }, operationId('other', 99)).state;
    expect(recoveryAfterLostRace({ ballot: ballot(8, 'other'), state: far })).toMatchObject([
      { type: 'fail', applied: 'unknown', error: { code: 'KV_TIMEOUT' } },
    ]);
  });

  it('a round refused for a newer ring epoch fails with KV_NOT_READY and says nothing happened', () => {
    let state = startProposer({ groups: [['a', 'b', 'c']], epoch: 1, timeoutMs: 1000, backoffMs: 10, operationId: mine }, { kind: 'read' });
    [state] = stepProposer(state, { type: 'start', nowMs: 0, ballot: ballot(1) });
    [state] = stepProposer(state, { type: 'answer', from: 'a', reply: { type: 'prepare-rejected', ballot: ballot(1), promised: ballot(0, ''), epoch: 2 } });
    const [, effects] = stepProposer(state, {
      type: 'answer',
      from: 'b',
      reply: { type: 'prepare-rejected', ballot: ballot(1), promised: ballot(0, ''), epoch: 2 },
    });
    expect(effects).toMatchObject([{ type: 'fail', applied: 'no', error: { code: 'KV_NOT_READY' } }]);
  });

  it('a repair re-proposes the current state even when it is decided (the per-key round of a handoff)', () => {
    const acceptors = freshAcceptors();
    runRound(acceptors, { kind: 'write', value: text('v1'), condition: { kind: 'none' } }, 1);
    const repair = runRound(acceptors, { kind: 'repair' }, 2);
    expect(repair.roundTrips).toBe(2);
    expect(repair.effects.find((effect) => effect.type === 'reply')).toMatchObject({ result: { outcome: 'read', state: { version: 1, value: text('v1') } } });
    expect([...acceptors.values()].every((state) => state.accepted?.ballot.round === 2)).toBe(true);
  });

  it('counts each acceptor once however often its answer is duplicated', () => {
    let state = startProposer({ groups: [['a', 'b', 'c']], epoch: 1, timeoutMs: 1000, backoffMs: 10, operationId: mine }, { kind: 'read' });
    let effects: ProposerEffect[];
    [state] = stepProposer(state, { type: 'start', nowMs: 0, ballot: ballot(1) });
    const promise: AcceptorReply = { type: 'promise', ballot: ballot(1), accepted: null, committed: null };
    [state, effects] = stepProposer(state, { type: 'answer', from: 'a', reply: promise });
    [state, effects] = stepProposer(state, { type: 'answer', from: 'a', reply: promise });
    expect(effects, 'one acceptor twice is not a quorum of three').toEqual([]);
    [, effects] = stepProposer(state, { type: 'answer', from: 'b', reply: promise });
    expect(effects).toMatchObject([{ type: 'reply', result: { outcome: 'read', state: emptyRegister } }]);
  });
});
