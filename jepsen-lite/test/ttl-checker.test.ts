import { describe, expect, it } from 'vitest';
import { clockWindows, checkTtl, offsetRange } from '../src/checkers/ttl.js';
import { HistoryBuilder } from './history-builder.js';

/**
 * The ttl checker on hand-written histories: valid ones, and invalid ones (a value read after its
 * expiry, an acknowledged value lost before it, a value nobody wrote, nothing judged), with and
 * without clock faults, so a checker that waved everything through, or flagged what skew allows,
 * would fail here.
 */

const context = { replicas: 3, recoveryMs: 5000 };

const write = (
  history: HistoryBuilder,
  startMs: number,
  endMs: number,
  key: string,
  element: number,
  ttlSeconds: number,
  type: 'ok' | 'fail' | 'info' = 'ok',
  w = 2,
  process = 0,
): HistoryBuilder => history.op(startMs, endMs, { process, f: 'write', key, value: { element, ttlSeconds }, w }, { type });

const read = (history: HistoryBuilder, startMs: number, endMs: number, key: string, values: number[], r = 2, process = 1): HistoryBuilder =>
  history.op(startMs, endMs, { process, f: 'read', key, r }, { type: 'ok', value: values });

/** A write of t0 (ttl 2 s) acknowledged at 10 ms, read at once (quorum) and well after expiry. */
function baseline(): HistoryBuilder {
  const history = new HistoryBuilder();
  write(history, 0, 10, 't0', 7, 2);
  read(history, 100, 110, 't0', [7]);
  read(history, 2500, 2510, 't0', []);
  return history;
}

describe('the ttl checker', () => {
  it('accepts a value read before its expiry and gone after it, and counts what it judged', () => {
    const result = checkTtl(baseline().finalRead(9000, 't0', []).build(), context);
    expect(result).toMatchObject({
      valid: true,
      acknowledgedWrites: 1,
      checkedBeforeExpiry: 1,
      checkedAfterExpiry: 1,
      checkedAfterExpiryFinal: 1,
      liveAfterExpiry: 0,
      lostBeforeExpiry: 0,
      unexpected: 0,
      maxSkewAllowanceMs: 0,
    });
    expect(result.nothingTested).toBeUndefined();
  });

  it('judges invalid a value read after its expiry, without clock faults', () => {
    const history = baseline();
    read(history, 2100, 2110, 't0', [7]); // acknowledged at 10 ms, ttl 2 s: expired from 2010 ms on every clock
    const result = checkTtl(history.build(), context);
    expect(result).toMatchObject({ valid: false, liveAfterExpiry: 1 });
    expect(result.liveAfterExpiryExamples[0]).toMatchObject({ key: 't0', element: 7, ageMs: 2090, ttlMs: 2000, skewAllowanceMs: 0 });
  });

  it('does not judge a read in the window where the value may or may not have expired (request durations)', () => {
    const history = new HistoryBuilder();
    write(history, 0, 500, 't0', 7, 2); // stamped somewhere in [0, 500]: expires in [2000, 2500]
    read(history, 600, 610, 't0', [7]);
    read(history, 2200, 2210, 't0', [7]);
    read(history, 3000, 3010, 't0', []);
    expect(checkTtl(history.build(), context)).toMatchObject({ valid: true, undecidedReads: 1, checkedAfterExpiry: 1 });
  });

  it('judges invalid a value read by a final read after healing', () => {
    const result = checkTtl(baseline().finalRead(9000, 't0', [7]).build(), context);
    expect(result).toMatchObject({ valid: false, liveAfterExpiry: 1 });
    expect(result.liveAfterExpiryExamples[0]?.f).toBe('final-read');
  });

  it('allows a value to live longer by the offset of a clock ahead during the write, and no longer', () => {
    const history = new HistoryBuilder();
    history.fault(-1000, 1000, { kind: 'clock', offsetsMs: { n1: 5000, n2: -3000 } });
    write(history, 0, 10, 't0', 7, 2);
    read(history, 6000, 6010, 't0', [7]); // the writer's clock may have been 5 s ahead: expiry up to 7010 ms
    read(history, 7200, 7210, 't0', []);
    history.finalRead(20_000, 't0', []);
    const valid = checkTtl(history.build(), context);
    // The read before expiry (at 6000) is under the clock fault's lag: only the one after it is judged.
    expect(valid).toMatchObject({ checkedAfterExpiry: 1, liveAfterExpiry: 0, maxSkewAllowanceMs: 5000 });

    const late = new HistoryBuilder();
    late.fault(-1000, 1000, { kind: 'clock', offsetsMs: { n1: 5000 } });
    write(late, 0, 10, 't0', 7, 2);
    read(late, 7200, 7210, 't0', [7]);
    expect(checkTtl(late.build(), context)).toMatchObject({ valid: false, liveAfterExpiry: 1 });
  });

  it('allows a reader whose clock is behind to see the value longer, by its offset', () => {
    const history = baseline();
    history.fault(3000, 10_000, { kind: 'clock', offsetsMs: { n3: -4000 } });
    read(history, 5000, 5010, 't0', [7], 1); // expired at 2010 true time, but a clock 4 s slow reads 1000
    read(history, 6500, 6510, 't0', [7], 1); // a clock 4 s slow reads 2500: past the expiry even there
    const result = checkTtl(history.build(), context);
    expect(result).toMatchObject({ valid: false, liveAfterExpiry: 1, undecidedReads: 1 });
    expect(result.liveAfterExpiryExamples[0]).toMatchObject({ ageMs: 6490, skewAllowanceMs: 4000 });
  });

  it('judges invalid an acknowledged quorum write that a quorum read without faults does not see before expiry', () => {
    const history = baseline();
    read(history, 300, 310, 't0', []);
    const result = checkTtl(history.build(), context);
    expect(result).toMatchObject({ valid: false, lostBeforeExpiry: 1, checkedBeforeExpiry: 2 });
    expect(result.lostBeforeExpiryExamples[0]).toMatchObject({ key: 't0', element: 7, r: 2, w: 2 });
  });

  it('does not judge a missing value under a fault, nor with r + w <= replicas, and then says nothing was tested', () => {
    const history = new HistoryBuilder();
    history.fault(50, 1000, { kind: 'partition', grudge: 'halves' });
    write(history, 0, 10, 't0', 7, 2);
    read(history, 100, 110, 't0', []); // under the partition: sloppy quorum may hide it
    write(history, 20_000, 20_010, 't1', 8, 2, 'ok', 1);
    read(history, 20_100, 20_110, 't1', [], 1); // w=1, r=1: no overlap promised
    read(history, 25_000, 25_010, 't0', []);
    const result = checkTtl(history.build(), context);
    expect(result).toMatchObject({
      valid: false,
      lostBeforeExpiry: 0,
      skippedBeforeExpiryDuringFaults: 1,
      skippedBeforeExpiryWeakQuorum: 1,
      checkedBeforeExpiry: 0,
    });
    expect(result.nothingTested).toMatch(/no read was judged before expiry \(1 skipped during faults, 1 with r \+ w <= replicas\)/);
  });

  it('judges invalid a value nobody wrote and the value of a write that certainly failed', () => {
    const history = baseline();
    write(history, 200, 210, 't1', 8, 5, 'fail');
    read(history, 300, 310, 't1', [8]);
    read(history, 320, 330, 't0', [99]);
    expect(checkTtl(history.build(), context)).toMatchObject({ valid: false, unexpected: 2 });
  });

  it('does not judge expiry for a write of unknown outcome (it may be stamped when a paused node resumes)', () => {
    const history = baseline();
    write(history, 200, 5000, 't1', 8, 2, 'info');
    read(history, 9000, 9010, 't1', [8]);
    expect(checkTtl(history.build(), context)).toMatchObject({ valid: true, undecidedReads: 1 });
  });

  it('calls a run without a read after expiry during the workload "nothing was tested", even with final reads', () => {
    const history = new HistoryBuilder();
    write(history, 0, 10, 't0', 7, 2);
    read(history, 100, 110, 't0', [7]);
    history.finalRead(9000, 't0', []);
    const result = checkTtl(history.build(), context);
    expect(result.valid).toBe(false);
    expect(result.nothingTested).toBe(
      "nothing was tested: no read during the workload was judged after its value's expiry plus the clock allowance (1 final reads were)",
    );
    expect(checkTtl([], context).nothingTested).toBe('nothing was tested: no ttl write was acknowledged');
  });
});

describe('clock windows of a history', () => {
  it('span each clock fault from its start to its stop plus the libfaketime lag, and always allow 0', () => {
    const history = new HistoryBuilder();
    history.fault(1000, 5000, { kind: 'clock', offsetsMs: { n1: 12_000, n4: -7000 } });
    history.fault(10_000, 12_000, { kind: 'partition', grudge: 'ring' });
    const windows = clockWindows(history.build(), 2000);
    expect(windows).toEqual([{ fromMs: 1000, toMs: 7000, offsetsMs: [12_000, -7000] }]);
    expect(offsetRange(windows, 0, 500)).toEqual({ minMs: 0, maxMs: 0 });
    expect(offsetRange(windows, 0, 1000)).toEqual({ minMs: -7000, maxMs: 12_000 });
    expect(offsetRange(windows, 6999, 8000)).toEqual({ minMs: -7000, maxMs: 12_000 });
    expect(offsetRange(windows, 7001, 8000)).toEqual({ minMs: 0, maxMs: 0 });
  });

  it('keep a clock fault the history never stopped open to the end', () => {
    const history = new HistoryBuilder();
    history.at(1000, { type: 'invoke', process: 'nemesis', f: 'start', value: { kind: 'clock', offsetsMs: { n2: 3000 } } });
    expect(offsetRange(clockWindows(history.build()), 1e9, 1e9 + 1)).toEqual({ minMs: 0, maxMs: 3000 });
  });
});
