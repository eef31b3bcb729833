import { describe, expect, it } from 'vitest';
import { insufficientReplicasError, recordReply, startTally, timeoutError } from '../../src/core/quorum/quorum.js';

/**
 * Goal: a failed read or write says exactly what happened to it. A read's 504 or 503 says the
 * read changed nothing (it never speaks of a write); a write refused before any replica was
 * asked says nothing was written (not "0 answered ok of 2 asked"); a write that was sent says it
 * may have been stored.
 */

const requirement = { required: 2, primaryRequired: 0, durableRequired: 0, asked: 3, primariesAsked: 3 };

describe('quorum error messages', () => {
  it("a read's timeout and unmet quorum say the read changed nothing and never mention a write", () => {
    const tally = recordReply(startTally(requirement), { ok: true, primary: true, durable: false, counts: true });
    const timeout = timeoutError('read', tally, 500).message;
    expect(timeout).toContain('read timed out after 500 ms with 1 of 2 required replicas answering ok');
    expect(timeout).toContain('the read changed nothing');
    expect(timeout).not.toMatch(/write/);
    const unmet = insufficientReplicasError('read', tally).message;
    expect(unmet).toContain('the read changed nothing');
    expect(unmet).not.toMatch(/write/);
  });

  it('a write refused before it was sent says so, and how many replicas were up', () => {
    const error = insufficientReplicasError('write', startTally({ ...requirement, asked: 1, primariesAsked: 1 }), false);
    expect(error.message).toContain('the write was not sent');
    expect(error.message).toContain('only 1 replicas (1 primaries) are up to take it; nothing was written');
    expect(error.message).not.toContain('answered ok');
    expect(error.details).toMatchObject({ written: false });
  });

  it('a write that was sent says it may have been stored', () => {
    const tally = recordReply(startTally(requirement), { ok: false, primary: true, durable: false, counts: true });
    expect(timeoutError('write', tally, 500).message).toContain('the write may have been stored by the replicas that answered ok');
    expect(insufficientReplicasError('write', tally).message).toContain('the write may have been stored');
  });
});
