/**
 * Goal: the linearizability checker calls a history valid exactly when some order of its
 * operations, each placed within its own interval, is legal for one compare-and-set register per
 * key; it says "unknown" (never "valid") when its search budget runs out, and "nothing tested"
 * when no write or read was acknowledged. Histories are hand-written in the style of the
 * Knossos and Porcupine examples.
 */
import { describe, expect, it } from 'vitest';
import { checkKeyLinearizable, checkLinearizable, stepRegister, type TimedCall } from '../src/checkers/linearizable.js';
import { HistoryBuilder } from './history-builder.js';

const read = (value: number | null, invokeMs: number, completeMs: number, index = invokeMs): TimedCall => ({
  call: { f: 'read', value },
  index,
  invokeMs,
  completeMs,
});
const write = (value: number, invokeMs: number, completeMs: number, index = invokeMs): TimedCall => ({
  call: { f: 'write', value },
  index,
  invokeMs,
  completeMs,
});
const cas = (from: number | null, to: number, invokeMs: number, completeMs: number, index = invokeMs): TimedCall => ({
  call: { f: 'cas', from, to },
  index,
  invokeMs,
  completeMs,
});

describe('the register model', () => {
  it('allows a read of the value held, a write of anything, and a compare-and-set from the value held only', () => {
    expect(stepRegister(1, { f: 'read', value: 1 })).toBe(1);
    expect(stepRegister(1, { f: 'read', value: 2 })).toBeUndefined();
    expect(stepRegister(null, { f: 'write', value: 3 })).toBe(3);
    expect(stepRegister(1, { f: 'cas', from: 1, to: 2 })).toBe(2);
    expect(stepRegister(1, { f: 'cas', from: 2, to: 3 })).toBeUndefined();
    expect(stepRegister(1, { f: 'cas-refused', from: 2 })).toBe(1);
    expect(stepRegister(2, { f: 'cas-refused', from: 2 })).toBeUndefined();
  });
});

describe('one key', () => {
  it('accepts a read that overlaps a write and sees it', () => {
    expect(checkKeyLinearizable('k', [write(1, 0, 10), read(1, 5, 15)]).verdict).toBe('valid');
  });

  it('accepts a read that overlaps a write and does not see it yet', () => {
    expect(checkKeyLinearizable('k', [write(1, 0, 10), read(null, 5, 15)]).verdict).toBe('valid');
  });

  it('refuses a read that begins after a write completed and misses it (a stale read)', () => {
    const verdict = checkKeyLinearizable('k', [write(1, 0, 10), read(null, 11, 12)]);
    expect(verdict.verdict).toBe('invalid');
    expect(verdict.unplaced).toContain(11);
  });

  it('orders two concurrent writes either way, but not both ways for two later readers', () => {
    const writes = [write(1, 0, 10, 0), write(2, 1, 9, 1)];
    expect(checkKeyLinearizable('k', [...writes, read(1, 11, 12)]).verdict).toBe('valid');
    expect(checkKeyLinearizable('k', [...writes, read(2, 11, 12)]).verdict).toBe('valid');
    expect(checkKeyLinearizable('k', [...writes, read(2, 11, 12), read(1, 13, 14)]).verdict).toBe('invalid');
  });

  it('lets two overlapping reads disagree only in the order the writes can take', () => {
    // Both reads overlap both writes: 1 then 2 is a legal order for reads seeing 1 and then 2.
    const concurrent = [write(1, 0, 20, 0), write(2, 0, 20, 1), read(1, 5, 25, 2), read(2, 6, 26, 3)];
    expect(checkKeyLinearizable('k', concurrent).verdict).toBe('valid');
    // A read that saw 2 and completed before another read began that saw 1: 2 was written
    // after 1, so no later read can see 1 once 2 was read; unless 1 was written after 2.
    expect(checkKeyLinearizable('k', [write(1, 0, 5, 0), write(2, 6, 10, 1), read(2, 11, 12, 2), read(1, 13, 14, 3)]).verdict).toBe('invalid');
  });

  it('lets a write of unknown outcome take effect late, or never, but a value once read cannot vanish', () => {
    const unknownWrite = write(1, 0, Infinity);
    expect(checkKeyLinearizable('k', [unknownWrite, read(null, 10, 11)]).verdict).toBe('valid');
    expect(checkKeyLinearizable('k', [unknownWrite, read(null, 10, 11), read(1, 50, 51)]).verdict).toBe('valid');
    expect(checkKeyLinearizable('k', [unknownWrite, read(1, 10, 11), read(null, 50, 51)]).verdict).toBe('invalid');
  });

  it('refuses two compare-and-sets from the same value that both succeed', () => {
    expect(checkKeyLinearizable('k', [write(0, 0, 1), cas(0, 1, 2, 10), cas(0, 2, 3, 11)]).verdict).toBe('invalid');
    expect(checkKeyLinearizable('k', [write(0, 0, 1), cas(0, 1, 2, 10), cas(1, 2, 3, 11)]).verdict).toBe('valid');
  });

  it('refuses a refusal: a compare-and-set answered "precondition failed" while the register held its expected value', () => {
    const refused = (from: number, invokeMs: number, completeMs: number): TimedCall => ({
      call: { f: 'cas-refused', from },
      index: invokeMs,
      invokeMs,
      completeMs,
    });
    expect(checkKeyLinearizable('k', [write(0, 0, 1), refused(0, 2, 3)]).verdict).toBe('invalid');
    expect(checkKeyLinearizable('k', [write(0, 0, 1), refused(5, 2, 3)]).verdict).toBe('valid');
  });

  it('agrees with Porcupine on the MIT 6.824 quiz histories (register starting at 0)', () => {
    // Porcupine's TestRegisterModel (from the 6.824 2017 quiz 2, section VII): put(100) over
    // [0, 100], get -> 100 over [25, 75], get -> 0 over [30, 60]: the second read linearizes before
    // the put, the first after it.
    expect(checkKeyLinearizable('k', [write(100, 0, 100, 0), read(100, 25, 75, 1), read(0, 30, 60, 2)], 0).verdict).toBe('valid');
    // put(200) over [0, 100], get -> 200 over [10, 30], get -> 0 over [40, 90]: the put must precede
    // the first read, which completed before the second began, so 0 cannot come back.
    expect(checkKeyLinearizable('k', [write(200, 0, 100, 0), read(200, 10, 30, 1), read(0, 40, 90, 2)], 0).verdict).toBe('invalid');
  });

  it('agrees with Porcupine on zero-length operations (TestZeroDuration)', () => {
    expect(checkKeyLinearizable('k', [write(100, 0, 100, 0), read(100, 25, 75, 1), read(0, 30, 30, 2), read(0, 30, 30, 3)], 0).verdict).toBe('valid');
    expect(checkKeyLinearizable('k', [write(200, 0, 100, 0), read(200, 10, 10, 1), read(200, 10, 10, 2), read(0, 40, 90, 3)], 0).verdict).toBe('invalid');
  });

  it('assumes an unknown write happened later when a later read needs it, and only after its invocation', () => {
    // write(1) timed out at 5; a read over [10, 11] saw nothing yet, one over [20, 21] saw 1: the
    // write took effect between them, after the client had given up on it.
    const timedOut = write(1, 0, Infinity, 0);
    expect(checkKeyLinearizable('k', [timedOut, read(null, 10, 11, 1), read(1, 20, 21, 2)]).verdict).toBe('valid');
    // Its effect cannot come before its invocation: a read that completed before the write was sent cannot see it.
    expect(checkKeyLinearizable('k', [write(1, 30, Infinity, 0), read(1, 10, 11, 1)]).verdict).toBe('invalid');
  });

  it('finds a stale read: an acknowledged write, then a read that began after it and returned the value before it', () => {
    const verdict = checkKeyLinearizable('k', [write(1, 0, 5, 0), write(2, 10, 15, 1), read(1, 20, 25, 2)]);
    expect(verdict).toMatchObject({ verdict: 'invalid', unplaced: [2] });
  });

  it('orders concurrent compare-and-sets: a chain is valid, a lost update is not, and an unknown one cannot hide a conflict', () => {
    // cas(0 -> 1) and cas(1 -> 2) overlap; the chain 0 -> 1 -> 2 explains a later read of 2.
    expect(checkKeyLinearizable('k', [write(0, 0, 1, 0), cas(1, 2, 2, 20, 1), cas(0, 1, 3, 21, 2), read(2, 30, 31, 3)]).verdict).toBe('valid');
    // The same two, but the read sees 1: cas(1 -> 2) succeeded, so 1 cannot be the last value.
    expect(checkKeyLinearizable('k', [write(0, 0, 1, 0), cas(1, 2, 2, 20, 1), cas(0, 1, 3, 21, 2), read(1, 30, 31, 3)]).verdict).toBe('invalid');
    // cas(0 -> 1) unknown, cas(0 -> 2) acknowledged: only one can have taken 0, so a read of 1 after both is impossible.
    const unknown = cas(0, 1, 2, Infinity, 1);
    expect(checkKeyLinearizable('k', [write(0, 0, 1, 0), unknown, cas(0, 2, 3, 10, 2), read(2, 20, 21, 3)]).verdict).toBe('valid');
    expect(checkKeyLinearizable('k', [write(0, 0, 1, 0), unknown, cas(0, 2, 3, 10, 2), read(1, 20, 21, 3)]).verdict).toBe('invalid');
  });

  it('says unknown, not valid, when its step budget runs out', () => {
    // Many concurrent writes and reads that see them in a legal but late-found order.
    const calls: TimedCall[] = [];
    for (let value = 0; value < 8; value += 1) calls.push(write(value, 0, 100, value));
    for (let value = 7; value >= 0; value -= 1) calls.push(read(value, 1, 100, 100 + value));
    expect(checkKeyLinearizable('k', calls, null, 50).verdict).toBe('unknown');
    expect(checkKeyLinearizable('k', calls).verdict).toBe('valid');
  });
});

describe('a recorded history', () => {
  const history = (): HistoryBuilder => new HistoryBuilder();

  it('judges each key alone, drops failed writes and unknown reads, and treats an unfinished write as unknown', () => {
    const valid = history()
      .op(0, 10, { process: 0, f: 'write', key: 'a', value: 1 }, { type: 'ok' })
      .op(0, 10, { process: 1, f: 'write', key: 'b', value: 7 }, { type: 'ok' })
      .op(11, 12, { process: 0, f: 'read', key: 'a' }, { type: 'ok', value: 1 })
      .op(11, 12, { process: 1, f: 'read', key: 'b' }, { type: 'ok', value: 7 })
      .op(13, 14, { process: 2, f: 'write', key: 'a', value: 9 }, { type: 'fail', error: 'refused' })
      .op(15, 16, { process: 0, f: 'read', key: 'a' }, { type: 'info', error: 'timeout' })
      .op(17, 18, { process: 0, f: 'cas', key: 'a', value: [1, 2] }, { type: 'ok' })
      .op(19, 20, { process: 1, f: 'cas', key: 'b', value: [1, 2] }, { type: 'fail', error: 'precondition-failed' })
      .op(21, 22, { process: 1, f: 'read', key: 'a' }, { type: 'ok', value: 2 })
      .at(23, { type: 'invoke', process: 3, f: 'write', key: 'b', value: 8 });
    const result = checkLinearizable(valid.operations);
    expect(result).toMatchObject({ valid: true, verdict: 'valid', keys: 2 });

    const readOfFailedWrite = history()
      .op(0, 10, { process: 0, f: 'write', key: 'a', value: 1 }, { type: 'ok' })
      .op(11, 12, { process: 2, f: 'write', key: 'a', value: 9 }, { type: 'fail', error: 'refused' })
      .op(13, 14, { process: 0, f: 'read', key: 'a' }, { type: 'ok', value: 9 });
    expect(checkLinearizable(readOfFailedWrite.operations)).toMatchObject({ valid: false, verdict: 'invalid' });
  });

  it('finds a deleted value read again', () => {
    const resurrected = history()
      .op(0, 10, { process: 0, f: 'write', key: 'a', value: 1 }, { type: 'ok' })
      .op(11, 12, { process: 0, f: 'delete', key: 'a' }, { type: 'ok' })
      .op(13, 14, { process: 1, f: 'read', key: 'a' }, { type: 'ok', value: 1 });
    const result = checkLinearizable(resurrected.operations);
    expect(result.valid).toBe(false);
    expect(result.invalidKeys.map((key) => key.key)).toEqual(['a']);
  });

  it('calls a history with no acknowledged write, or no acknowledged read, not tested', () => {
    const onlyReads = history().op(0, 1, { process: 0, f: 'read', key: 'a' }, { type: 'ok', value: null });
    expect(checkLinearizable(onlyReads.operations)).toMatchObject({ valid: false, nothingTested: expect.stringContaining('no write') as unknown });
    const onlyWrites = history().op(0, 1, { process: 0, f: 'write', key: 'a', value: 1 }, { type: 'ok' });
    expect(checkLinearizable(onlyWrites.operations)).toMatchObject({ valid: false, nothingTested: expect.stringContaining('no read') as unknown });
  });
});
