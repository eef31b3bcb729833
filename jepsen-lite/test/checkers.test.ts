import { describe, expect, it } from 'vitest';
import { checkRun } from '../src/checkers/check-run.js';
import { checkConvergence } from '../src/checkers/convergence.js';
import { checkDelete } from '../src/checkers/delete.js';
import { checkRegister } from '../src/checkers/register.js';
import { checkSet } from '../src/checkers/set.js';
import { computeStats, percentile } from '../src/checkers/stats.js';
import { faultIntervals, pairOperations } from '../src/history.js';
import { HistoryBuilder } from './history-builder.js';

/**
 * The checkers are pure functions of a history; these tests judge hand-written histories,
 * valid and invalid ones, so a checker that waved everything through would fail here.
 */

const add = (
  history: HistoryBuilder,
  process: number,
  startMs: number,
  endMs: number,
  element: number,
  type: 'ok' | 'fail' | 'info',
  key = 's0',
): HistoryBuilder => history.op(startMs, endMs, { process, f: 'add', key, value: element }, { type });

describe('the set checker', () => {
  it('accepts a history where every acknowledged add survives and counts unknown adds that made it as recovered', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 0, 'ok');
    add(history, 1, 5, 15, 1, 'ok');
    add(history, 2, 6, 5000, 2, 'info');
    add(history, 3, 7, 5000, 3, 'info');
    add(history, 4, 8, 20, 4, 'fail');
    history.op(30, 40, { process: 5, f: 'read', key: 's0' }, { type: 'ok', value: { size: 2, siblings: 2 } });
    history.finalRead(6000, 's0', [0, 1, 2]);
    const result = checkSet(history.build());
    expect(result).toMatchObject({
      valid: true,
      attempted: 5,
      acknowledged: 2,
      lost: 0,
      recovered: 1,
      unexpected: 0,
      failedButPresent: 0,
      readsWithSiblings: 1,
      maxSiblings: 2,
    });
  });

  it('judges invalid a history that lost an acknowledged add, and names the element', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 0, 'ok');
    add(history, 1, 20, 30, 1, 'ok');
    history.finalRead(100, 's0', [0]);
    const result = checkSet(history.build());
    expect(result.valid).toBe(false);
    expect(result.lost).toBe(1);
    expect(result.lostElements).toEqual([{ key: 's0', element: 1 }]);
  });

  it('flags what last-write-wins does to two concurrent read-modify-writes: both acknowledged, one survives', () => {
    // Both clients read {0}, one writes {0,1}, the other {0,2}; with lww the later write wins whole.
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 0, 'ok');
    add(history, 1, 20, 40, 1, 'ok');
    add(history, 2, 21, 41, 2, 'ok');
    history.finalRead(100, 's0', [0, 2]);
    const result = checkSet(history.build());
    expect(result).toMatchObject({ valid: false, acknowledged: 3, lost: 1 });
    expect(result.lostElements).toEqual([{ key: 's0', element: 1 }]);
  });

  it('judges invalid an element nobody tried to add', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 0, 'ok');
    history.finalRead(100, 's0', [0, 99]);
    const result = checkSet(history.build());
    expect(result).toMatchObject({ valid: false, unexpected: 1, lost: 0 });
    expect(result.unexpectedElements).toEqual([{ key: 's0', element: 99 }]);
  });

  it('judges invalid an element added to a different key than the one it shows up in', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 7, 'ok', 's1');
    history.finalRead(100, 's0', [7]).finalRead(100, 's1', [7]);
    expect(checkSet(history.build())).toMatchObject({ valid: false, unexpected: 1 });
  });

  it('judges invalid an add that answered fail (certainly not applied) yet is present', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 5, 'fail');
    history.finalRead(100, 's0', [5]);
    expect(checkSet(history.build())).toMatchObject({ valid: false, failedButPresent: 1 });
  });

  it('cannot vouch for a key whose final read never succeeded', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 0, 'ok');
    history.op(100, 200, { process: 'final-0', f: 'final-read', key: 's0' }, { type: 'fail', error: 'KV_TIMEOUT' });
    const result = checkSet(history.build());
    expect(result.valid).toBe(false);
    expect(result.unreadKeys).toEqual(['s0']);
  });
});

const write = (
  history: HistoryBuilder,
  process: number,
  startMs: number,
  endMs: number,
  value: number,
  type: 'ok' | 'fail' | 'info',
  w = 2,
  key = 'r0',
): HistoryBuilder => history.op(startMs, endMs, { process, f: 'write', key, value, w }, { type });
const read = (history: HistoryBuilder, process: number, startMs: number, endMs: number, values: number[], r = 2, key = 'r0'): HistoryBuilder =>
  history.op(startMs, endMs, { process, f: 'read', key, r }, { type: 'ok', value: values });
const registerContext = { replicas: 3, recoveryMs: 1000 };

describe('the register checker', () => {
  it('accepts reads that see the latest acknowledged write', () => {
    const history = new HistoryBuilder();
    write(history, 0, 0, 10, 1, 'ok');
    read(history, 1, 20, 30, [1]);
    write(history, 0, 40, 50, 2, 'ok');
    read(history, 1, 60, 70, [2]);
    expect(checkRegister(history.build(), registerContext)).toMatchObject({ valid: true, checkedReads: 2, staleReads: 0 });
  });

  it('judges invalid a quorum read that misses the latest acknowledged write with no fault in sight', () => {
    const history = new HistoryBuilder();
    write(history, 0, 0, 10, 1, 'ok');
    write(history, 0, 20, 30, 2, 'ok');
    read(history, 1, 40, 50, [1]);
    const result = checkRegister(history.build(), registerContext);
    expect(result).toMatchObject({ valid: false, staleReads: 1 });
    expect(result.staleExamples[0]).toMatchObject({ key: 'r0', values: [1], latestWrite: 2, r: 2 });
  });

  it('judges invalid a quorum read that finds nothing after an acknowledged write', () => {
    const history = new HistoryBuilder();
    write(history, 0, 0, 10, 1, 'ok');
    read(history, 1, 20, 30, []);
    expect(checkRegister(history.build(), registerContext)).toMatchObject({ valid: false, staleReads: 1 });
  });

  it('accepts a read that sees a write concurrent with it, or one of unknown outcome', () => {
    const history = new HistoryBuilder();
    write(history, 0, 0, 10, 1, 'ok');
    write(history, 2, 15, 5000, 3, 'info');
    read(history, 1, 20, 30, [3]);
    write(history, 0, 40, 60, 4, 'ok');
    read(history, 1, 45, 55, [4]);
    expect(checkRegister(history.build(), registerContext)).toMatchObject({ valid: true, checkedReads: 2 });
  });

  it('excuses a stale read while a fault (or its recovery margin) is in force, since sloppy quorums allow it', () => {
    const history = new HistoryBuilder();
    history.fault(5, 100);
    write(history, 0, 20, 30, 1, 'ok');
    write(history, 0, 40, 50, 2, 'ok');
    read(history, 1, 1050, 1060, [1]);
    // Once the recovery margin is over, the rule holds again (and gives the checker something to judge).
    write(history, 0, 1200, 1210, 3, 'ok');
    read(history, 1, 2000, 2010, [3]);
    expect(checkRegister(history.build(), registerContext)).toMatchObject({ valid: true, skippedDuringFaults: 1, checkedReads: 1 });
  });

  it('does not hold r + w <= n to the quorum rule', () => {
    const history = new HistoryBuilder();
    write(history, 0, 0, 10, 1, 'ok', 1);
    write(history, 0, 20, 30, 2, 'ok', 1);
    read(history, 1, 40, 50, [1], 1);
    // A quorum read of a quorum write after them is judged, so the checker had something to judge.
    write(history, 0, 60, 70, 3, 'ok');
    read(history, 1, 80, 90, [3]);
    expect(checkRegister(history.build(), registerContext)).toMatchObject({ valid: true, skippedWeakQuorum: 1, checkedReads: 1 });
  });

  it('judges invalid a value nobody wrote, or one whose write certainly failed', () => {
    const history = new HistoryBuilder();
    write(history, 0, 0, 10, 1, 'fail');
    read(history, 1, 20, 30, [1], 1);
    read(history, 1, 40, 50, [42], 1);
    expect(checkRegister(history.build(), registerContext)).toMatchObject({ valid: false, unexpectedValues: 2 });
  });
});

describe('the convergence checker', () => {
  it('accepts replicas that hold the same values as the final read', () => {
    const history = new HistoryBuilder().finalRead(0, 'r0', [1, 2]);
    for (const node of ['a', 'b', 'c']) history.localRead(10, 'r0', node, [2, 1]);
    expect(checkConvergence(history.build())).toMatchObject({ valid: true, keysChecked: 1, divergedKeys: 0 });
  });

  it('judges invalid replicas that still disagree after healing', () => {
    const history = new HistoryBuilder().finalRead(0, 'r0', [1, 2]);
    history.localRead(10, 'r0', 'a', [1, 2]).localRead(10, 'r0', 'b', [1, 2]).localRead(10, 'r0', 'c', [1]);
    const result = checkConvergence(history.build());
    expect(result).toMatchObject({ valid: false, divergedKeys: 1 });
    expect(result.diverged[0]?.replicas).toEqual({ a: [1, 2], b: [1, 2], c: [1] });
  });

  it('judges by the last local read of each replica, and counts a replica that does not answer as diverged', () => {
    const history = new HistoryBuilder().finalRead(0, 'r0', [1]);
    history.localRead(10, 'r0', 'a', []).localRead(20, 'r0', 'a', [1]).localRead(20, 'r0', 'b', [1]);
    history.op(20, 21, { process: 'final-1', f: 'local-read', key: 'r0', node: 'c' }, { type: 'fail', error: 'KV_CONNECTION' });
    expect(checkConvergence(history.build())).toMatchObject({ valid: false, divergedKeys: 1 });
  });

  it('judges invalid replicas that agree with each other but not with the final r=all read', () => {
    const history = new HistoryBuilder().finalRead(0, 'r0', [1, 2]);
    for (const node of ['a', 'b', 'c']) history.localRead(10, 'r0', node, [1]);
    expect(checkConvergence(history.build()).valid).toBe(false);
  });
});

const deleteCycle = (
  history: HistoryBuilder,
  process: number,
  startMs: number,
  key: string,
  value: number,
  deleteType: 'ok' | 'info' | 'fail',
  covered: number[],
): HistoryBuilder => {
  history.op(startMs, startMs + 10, { process, f: 'write', key, value }, { type: 'ok' });
  return history.op(startMs + 20, startMs + 30, { process, f: 'delete', key }, { type: deleteType, value: covered });
};

describe('the delete checker', () => {
  it('accepts deleted keys that stay deleted, and undeleted keys that keep their value', () => {
    const history = new HistoryBuilder();
    deleteCycle(history, 0, 0, 'd0-0', 0, 'ok', [0]);
    deleteCycle(history, 1, 0, 'd1-0', 1, 'fail', [1]);
    history.finalRead(100, 'd0-0', []).finalRead(100, 'd1-0', [1]);
    expect(checkDelete(history.build())).toMatchObject({ valid: true, keysWritten: 2, deletesAcknowledged: 1, resurrected: 0 });
  });

  it('judges invalid a deleted key that comes back with the value its delete covered', () => {
    const history = new HistoryBuilder();
    deleteCycle(history, 0, 0, 'd0-0', 0, 'ok', [0]);
    history.finalRead(100, 'd0-0', [0]);
    const result = checkDelete(history.build());
    expect(result).toMatchObject({ valid: false, resurrected: 1 });
    expect(result.resurrectedExamples[0]).toMatchObject({ key: 'd0-0', values: [0] });
  });

  it('lets a value the delete never saw survive as a concurrent sibling', () => {
    const history = new HistoryBuilder();
    deleteCycle(history, 0, 0, 'd0-0', 0, 'ok', []);
    history.finalRead(100, 'd0-0', [0]);
    expect(checkDelete(history.build())).toMatchObject({ valid: true, resurrected: 0 });
  });

  it('judges invalid a value nobody wrote, and a key it could not read at the end', () => {
    const history = new HistoryBuilder();
    deleteCycle(history, 0, 0, 'd0-0', 0, 'ok', [0]);
    deleteCycle(history, 1, 0, 'd1-0', 1, 'ok', [1]);
    history.finalRead(100, 'd0-0', [77]);
    const result = checkDelete(history.build());
    expect(result).toMatchObject({ valid: false, unexpected: 1 });
    expect(result.unreadKeys).toEqual(['d1-0']);
  });
});

describe('the statistics', () => {
  it('count outcomes, take nearest-rank percentiles and split availability by fault intervals', () => {
    const history = new HistoryBuilder();
    history.fault(100, 200);
    add(history, 0, 0, 10, 0, 'ok');
    add(history, 0, 20, 40, 10, 'ok');
    add(history, 0, 120, 150, 20, 'fail');
    add(history, 0, 160, 1160, 30, 'info');
    add(history, 10, 300, 302, 40, 'ok');
    history.at(400, { type: 'invoke', process: 10, f: 'add', key: 's0', value: 50 });
    const stats = computeStats(history.build());
    expect(stats.counts.add).toEqual({ ok: 3, fail: 1, info: 1, incomplete: 1 });
    expect(stats.latency.add).toMatchObject({ count: 5, p50Ms: 20, maxMs: 1000 });
    expect(stats.latencyOk.add).toMatchObject({ count: 3, maxMs: 20 });
    expect(stats.availability.duringFaults).toEqual({ invoked: 2, ok: 0, okFraction: 0 });
    expect(stats.availability.outsideFaults).toEqual({ invoked: 4, ok: 3, okFraction: 0.75 });
    expect(stats.faults).toBe(1);
    expect(percentile([1, 2, 3, 4], 0.99)).toBe(4);
    expect(percentile([], 0.5)).toBe(0);
  });
});

describe('the history helpers', () => {
  it('pair each invocation with the next completion of its process and find fault intervals', () => {
    const history = new HistoryBuilder();
    history.at(0, { type: 'invoke', process: 0, f: 'add', value: 1 });
    history.at(1, { type: 'invoke', process: 1, f: 'add', value: 2 });
    history.at(2, { type: 'ok', process: 1, f: 'add', value: 2 });
    history.fault(3, 9, { kind: 'kill', nodes: ['n2'] });
    const operations = history.build();
    const pairs = pairOperations(operations.filter((operation) => operation.process !== 'nemesis'));
    expect(pairs.map((pair) => [pair.invoke.value, pair.completion?.type])).toEqual([
      [1, undefined],
      [2, 'ok'],
    ]);
    expect(faultIntervals(operations)).toEqual([{ startMs: 3, endMs: 9, label: 'kill n2' }]);
  });
});

describe('a run verdict', () => {
  it('is invalid when the workload checker passes but the replicas diverged', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 0, 'ok');
    history.finalRead(100, 's0', [0]).localRead(200, 's0', 'a', [0]).localRead(200, 's0', 'b', []);
    const verdict = checkRun('set', history.build(), registerContext);
    expect(verdict.workload.valid).toBe(true);
    expect(verdict.convergence.valid).toBe(false);
    expect(verdict.valid).toBe(false);
  });
});

describe('every checker, when it saw nothing to check', () => {
  const context = { replicas: 3, recoveryMs: 1000 };

  it('judges an empty history invalid with "nothing was tested", never valid', () => {
    for (const workload of ['set', 'register', 'delete', 'client'] as const) {
      const verdict = checkRun(workload, [], context);
      expect(verdict.valid, workload).toBe(false);
      expect(verdict.workload.nothingTested, workload).toMatch(/^nothing was tested: /);
      expect(verdict.convergence.nothingTested, workload).toBe('nothing was tested: no key was read on its replicas');
      expect(verdict.nothingTested, workload).toHaveLength(2);
    }
  });

  it('set: no acknowledged add is nothing tested, though every final read succeeded', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 0, 'fail');
    add(history, 1, 0, 10, 1, 'info');
    history.finalRead(100, 's0', []);
    expect(checkSet(history.build())).toMatchObject({ valid: false, nothingTested: 'nothing was tested: no add was acknowledged' });
  });

  it('register: acknowledged writes but no read judged (all under faults) is nothing tested', () => {
    const history = new HistoryBuilder();
    history.fault(5, 100);
    write(history, 0, 20, 30, 1, 'ok');
    read(history, 1, 40, 50, [1]);
    const result = checkRegister(history.build(), registerContext);
    expect(result).toMatchObject({ valid: false, checkedReads: 0, skippedDuringFaults: 1 });
    expect(result.nothingTested).toMatch(/^nothing was tested: no read was judged against the quorum rule \(1 skipped during faults/);
  });

  it('delete: keys written and read back but no delete acknowledged is nothing tested', () => {
    const history = new HistoryBuilder();
    history.op(0, 10, { process: 0, f: 'write', key: 'd0-0', value: 0 }, { type: 'ok' });
    history.op(20, 30, { process: 0, f: 'delete', key: 'd0-0' }, { type: 'fail', value: [0] });
    history.finalRead(100, 'd0-0', [0]);
    expect(checkDelete(history.build())).toMatchObject({ valid: false, nothingTested: 'nothing was tested: no delete was acknowledged' });
  });

  it('convergence: no key read on its replicas is nothing tested; one agreeing key is valid', () => {
    const history = new HistoryBuilder();
    history.finalRead(100, 's0', [1]);
    expect(checkConvergence(history.build())).toMatchObject({ valid: false, keysChecked: 0 });
    history.localRead(200, 's0', 'n1', [1]);
    expect(checkConvergence(history.build())).toMatchObject({ valid: true, keysChecked: 1 });
  });
});
