import { describe, expect, it } from 'vitest';
import { insufficientReplicasError, recordReply, startTally, timeoutError } from '../../src/core/quorum/quorum.js';
import { startWrite, stepWrite } from '../../src/core/coordination/write-coordinator.js';
import { emptyContext } from '../../src/core/versioning/context.js';

/**
 * Goal: a failed read or write says exactly what happened to it. A read's 504 or 503 says the
 * read changed nothing (it never speaks of a write); a write refused before any replica was
 * asked says nothing was written (not "0 answered ok of 2 asked"); a write that was sent says it
 * may have been stored. A delete, a data type update and a restored version each speak of
 * themselves, and say what to do before retrying that operation.
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
    expect(error.message).toContain('only 1 replicas (1 primaries) are up to take it; nothing was changed');
    expect(error.message).not.toContain('answered ok');
    expect(error.details).toMatchObject({ written: false });
  });

  it('a write that was sent says it may have been stored', () => {
    const tally = recordReply(startTally(requirement), { ok: false, primary: true, durable: false, counts: true });
    expect(timeoutError('write', tally, 500).message).toContain('the write may have been stored by the replicas that answered ok');
    expect(insufficientReplicasError('write', tally).message).toContain('the write may have been stored');
  });

  it.each([
    ['delete', 'the delete may have been stored', 'read the key back before retrying', 'lower w/pw/dw'],
    ['update', 'the update may have been applied', 'read the data type back before retrying (an increment sent again may count twice)', 'lower w'],
    ['restore', 'the version may have been merged', 'running the restore again is safe', 'restore with a lower --w'],
  ] as const)('a failed %s speaks of itself, and of what to do before retrying it', (operation, outcome, remedy, lower) => {
    const tally = recordReply(startTally(requirement), { ok: false, primary: true, durable: false, counts: true });
    const timeout = timeoutError(operation, tally, 500).message;
    expect(timeout).toContain(`${operation} timed out after 500 ms`);
    const unmet = insufficientReplicasError(operation, tally).message;
    expect(unmet).toContain(`${operation} needed 2 replicas`);
    const refused = insufficientReplicasError(operation, startTally({ ...requirement, asked: 1, primariesAsked: 1 }), false).message;
    expect(refused).toContain(`the ${operation} was not sent`);
    for (const message of [timeout, unmet]) {
      expect(message).toContain(outcome);
      expect(message).toContain(remedy);
      expect(message).not.toMatch(/\bwrite\b/);
    }
    expect(unmet).toContain(`or ${lower}`);
    expect(refused).not.toMatch(/\bwrite\b/);
  });

  it('a write machine started as an update fails its deadline as an update', () => {
    const plan = { requirement: { ...requirement }, targets: [], keptHints: [], coordinating: 'n1', impossible: false, sync: false } as unknown as Parameters<
      typeof startWrite
    >[0];
    let state = startWrite(plan, emptyContext, 500, 'update');
    [state] = stepWrite(state, { type: 'start', nowMs: 0 });
    const [, effects] = stepWrite(state, { type: 'deadline' });
    const failure = effects.find((effect) => effect.type === 'fail');
    expect(failure?.type === 'fail' && failure.error.message).toMatch(/^update timed out after 500 ms .* the update may have been applied/);
  });
});
