import { describe, expect, it } from 'vitest';
import { recordReply, resolveQuorum, startTally, verdict, type TallyRequirement } from '../../src/core/quorum/quorum.js';

const ok = { ok: true, primary: true, durable: false, counts: true };
const failed = { ok: false, primary: true, durable: false, counts: true };

describe('resolveQuorum: symbolic levels follow the replicas the cluster can have', () => {
  it.each([
    ['one', 3, 1],
    ['quorum', 3, 2],
    ['all', 3, 3],
    ['quorum', 1, 1],
    ['all', 1, 1],
    ['quorum', 5, 3],
    ['quorum', 4, 3],
    [2, 3, 2],
  ] as const)('%s of %i replicas is %i', (setting, replicas, expected) => {
    expect(resolveQuorum(setting, replicas)).toBe(expected);
  });
});

describe('quorum tally', () => {
  const requirement: TallyRequirement = { required: 2, primaryRequired: 0, durableRequired: 0, asked: 3, primariesAsked: 3 };

  it('is met as soon as enough replicas succeed', () => {
    let state = startTally(requirement);
    state = recordReply(state, ok);
    expect(verdict(state)).toBe('pending');
    state = recordReply(state, ok);
    expect(verdict(state)).toBe('met');
  });

  it('is impossible once too many replicas failed to ever reach the quorum', () => {
    let state = startTally(requirement);
    state = recordReply(state, failed);
    expect(verdict(state)).toBe('pending');
    state = recordReply(state, failed);
    expect(verdict(state)).toBe('impossible');
  });

  it('never counts a fallback for pw, and counts a coordinator-kept hint for nothing', () => {
    const strict: TallyRequirement = { required: 2, primaryRequired: 2, durableRequired: 0, asked: 2, primariesAsked: 1 };
    let state = startTally(strict);
    state = recordReply(state, ok);
    state = recordReply(state, { ok: true, primary: false, durable: false, counts: true });
    expect(state.succeeded).toBe(2);
    expect(verdict(state)).toBe('impossible');
    const kept = recordReply(startTally(requirement), { ok: true, primary: false, durable: false, counts: false });
    expect(kept.succeeded).toBe(0);
  });

  it('counts only fsynced answers for dw', () => {
    const durable: TallyRequirement = { required: 1, primaryRequired: 0, durableRequired: 2, asked: 2, primariesAsked: 2 };
    let state = recordReply(startTally(durable), { ...ok, durable: true });
    expect(verdict(state)).toBe('pending');
    state = recordReply(state, ok);
    expect(verdict(state)).toBe('impossible');
  });
});
