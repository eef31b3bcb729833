import { describe, expect, it } from 'vitest';
import { checkCounter, subsetSums } from '../src/checkers/counter.js';
import { checkDtSet } from '../src/checkers/dt-set.js';
import { HistoryBuilder } from './history-builder.js';

/**
 * The counter and dt-set checkers on hand-written histories, valid and invalid, so that a
 * checker that waved everything through (or flagged what the data types allow) fails here.
 */

const increment = (
  history: HistoryBuilder,
  process: number,
  startMs: number,
  endMs: number,
  delta: number,
  type: 'ok' | 'fail' | 'info',
  key = 'c0',
): HistoryBuilder => history.op(startMs, endMs, { process, f: 'increment', key, value: delta }, { type });

/** The final phase of `key`: the r=all read through n1 (the first value), then a read through each node (the values in node order). */
const finalEverywhere = (history: HistoryBuilder, timeMs: number, key: string, values: readonly unknown[]): HistoryBuilder => {
  history.op(timeMs, timeMs + 1, { process: 'final-0', f: 'final-read', key, node: 'n1' }, { type: 'ok', value: values[0] });
  values.forEach((value, node) => history.localRead(timeMs + 10 + node * 2, key, `n${node + 1}`, value));
  return history;
};

describe('the counter checker', () => {
  it('accepts a final value of sum(ok) plus a subset of the unknown increments, equal on every node', () => {
    const history = new HistoryBuilder();
    increment(history, 0, 0, 10, 5, 'ok');
    increment(history, 1, 5, 15, -2, 'ok');
    increment(history, 2, 6, 5000, 3, 'info');
    increment(history, 3, 7, 5000, -4, 'info');
    increment(history, 4, 8, 20, 100, 'fail');
    history.op(30, 40, { process: 5, f: 'read', key: 'c0' }, { type: 'ok', value: 6 });
    finalEverywhere(history, 6000, 'c0', [6, 6, 6]); // 5 - 2 + 3
    const result = checkCounter(history.build());
    expect(result).toMatchObject({
      valid: true,
      acknowledged: 2,
      unknown: 2,
      failed: 1,
      keysChecked: 1,
      wrongKeys: 0,
      disagreeingKeys: 0,
      readsChecked: 1,
      impossibleReads: 0,
    });
  });

  it('judges invalid a final value that no subset of the unknown increments explains, even inside the interval', () => {
    const history = new HistoryBuilder();
    increment(history, 0, 0, 10, 5, 'ok');
    increment(history, 1, 6, 5000, 4, 'info');
    increment(history, 2, 7, 5000, -4, 'info');
    // Reachable: 5 + {0, 4, -4, 0} = {1, 5, 9}; 7 lies in [1, 9] but is no subset sum.
    finalEverywhere(history, 6000, 'c0', [7, 7, 7]);
    const result = checkCounter(history.build());
    expect(result).toMatchObject({ valid: false, wrongKeys: 1 });
    expect(result.problems[0]).toMatchObject({ key: 'c0', acknowledgedSum: 5, lower: 1, upper: 9, infos: 2 });
  });

  it('judges invalid a lost acknowledged increment, and one applied twice', () => {
    const lost = new HistoryBuilder();
    increment(lost, 0, 0, 10, 5, 'ok');
    increment(lost, 1, 20, 30, 1, 'ok');
    finalEverywhere(lost, 6000, 'c0', [5, 5, 5]);
    expect(checkCounter(lost.build())).toMatchObject({ valid: false, wrongKeys: 1 });
    const twice = new HistoryBuilder();
    increment(twice, 0, 0, 10, 5, 'ok');
    finalEverywhere(twice, 6000, 'c0', [10, 10, 10]);
    expect(checkCounter(twice.build())).toMatchObject({ valid: false, wrongKeys: 1 });
  });

  it('judges invalid a failed increment that was applied', () => {
    const history = new HistoryBuilder();
    increment(history, 0, 0, 10, 5, 'ok');
    increment(history, 1, 20, 30, 2, 'fail');
    finalEverywhere(history, 6000, 'c0', [7, 7, 7]);
    expect(checkCounter(history.build())).toMatchObject({ valid: false, wrongKeys: 1 });
  });

  it('judges invalid nodes that disagree after healing, even when each value is possible', () => {
    const history = new HistoryBuilder();
    increment(history, 0, 0, 10, 5, 'ok');
    increment(history, 1, 6, 5000, 3, 'info');
    finalEverywhere(history, 6000, 'c0', [5, 8, 5]);
    const result = checkCounter(history.build());
    expect(result).toMatchObject({ valid: false, disagreeingKeys: 1, wrongKeys: 0 });
    expect(result.problems[0]?.finalValues).toEqual({ 'r=all via n1': 5, n1: 5, n2: 8, n3: 5 });
  });

  it('reads a counter absent at the end (404, recorded as null) as 0', () => {
    const history = new HistoryBuilder();
    increment(history, 0, 0, 10, 5, 'ok');
    increment(history, 1, 0, 10, 3, 'fail', 'c1');
    finalEverywhere(history, 6000, 'c0', [5, 5]);
    finalEverywhere(history, 7000, 'c1', [null, null]);
    expect(checkCounter(history.build())).toMatchObject({ valid: true, keysChecked: 2 });
  });

  it('judges invalid an intermediate read outside every possible value, and allows a stale one', () => {
    const history = new HistoryBuilder();
    increment(history, 0, 0, 10, 5, 'ok');
    increment(history, 1, 20, 30, -1, 'ok');
    history.op(40, 50, { process: 2, f: 'read', key: 'c0' }, { type: 'ok', value: 0 }); // stale: saw nothing
    history.op(40, 50, { process: 3, f: 'read', key: 'c0' }, { type: 'ok', value: 6 }); // more than was ever added
    history.op(40, 50, { process: 4, f: 'read', key: 'c0' }, { type: 'ok', value: -2 });
    finalEverywhere(history, 6000, 'c0', [4, 4, 4]);
    const result = checkCounter(history.build());
    expect(result).toMatchObject({ valid: false, readsChecked: 3, impossibleReads: 2 });
    expect(result.impossibleReadExamples.map((read) => read.value)).toEqual([6, -2]);
  });

  it('says nothing was tested without an acknowledged increment or a final read, or with an unread key', () => {
    const noFinal = new HistoryBuilder();
    increment(noFinal, 0, 0, 10, 5, 'ok');
    expect(checkCounter(noFinal.build())).toMatchObject({
      valid: false,
      nothingTested: 'nothing was tested: no counter was read at the end',
      unreadKeys: ['c0'],
    });
    const noAck = new HistoryBuilder();
    increment(noAck, 0, 0, 10, 5, 'info');
    finalEverywhere(noAck, 6000, 'c0', [5]);
    expect(checkCounter(noAck.build()).nothingTested).toBe('nothing was tested: no increment was acknowledged');
  });

  it('computes subset sums exactly', () => {
    expect([...subsetSums([1, 2, -4])].sort((a, b) => a - b)).toEqual([-4, -3, -2, -1, 0, 1, 2, 3]);
    expect([...subsetSums([])]).toEqual([0]);
  });
});

const add = (
  history: HistoryBuilder,
  process: number,
  startMs: number,
  endMs: number,
  element: string,
  type: 'ok' | 'fail' | 'info',
  key = 'ds0',
): HistoryBuilder => history.op(startMs, endMs, { process, f: 'add', key, value: element }, { type });
const remove = (
  history: HistoryBuilder,
  process: number,
  startMs: number,
  endMs: number,
  element: string,
  type: 'ok' | 'fail' | 'info',
  key = 'ds0',
): HistoryBuilder => history.op(startMs, endMs, { process, f: 'remove', key, value: element }, { type });
const finalSet = (history: HistoryBuilder, timeMs: number, key: string, values: string[], nodes = 3): HistoryBuilder => {
  history.finalRead(timeMs, key, values);
  for (let node = 0; node < nodes; node++) history.localRead(timeMs + 10 + node * 2, key, `n${node + 1}`, values);
  return history;
};

describe('the dt-set checker', () => {
  it('accepts acknowledged adds present, removed elements absent, and a re-add after a remove present', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    add(history, 1, 0, 10, 'b', 'ok');
    remove(history, 2, 20, 30, 'b', 'ok');
    add(history, 3, 5, 5000, 'c', 'info');
    add(history, 4, 40, 50, 'a', 'ok'); // a re-add of a present element
    add(history, 5, 60, 70, 'd', 'ok');
    remove(history, 6, 80, 90, 'd', 'ok');
    add(history, 7, 100, 110, 'd', 'ok'); // re-added after its remove: present again
    remove(history, 8, 120, 130, 'e', 'fail');
    finalSet(history, 6000, 'ds0', ['a', 'd']);
    const result = checkDtSet(history.build());
    expect(result).toMatchObject({
      valid: true,
      acknowledgedAdds: 5,
      acknowledgedRemoves: 2,
      addsChecked: 3,
      removalsChecked: 1,
      lost: 0,
      resurrected: 0,
      unexpected: 0,
    });
  });

  it('judges invalid an acknowledged add missing when no remove could have observed it', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    remove(history, 1, 2, 8, 'a', 'info'); // gave up before the add below began: its read cannot have seen it
    add(history, 2, 20, 30, 'a', 'ok');
    finalSet(history, 6000, 'ds0', []);
    const result = checkDtSet(history.build());
    expect(result).toMatchObject({ valid: false, lost: 1 });
    expect(result.lostExamples).toEqual([{ key: 'ds0', element: 'a' }]);
  });

  it('allows an add to be gone when a remove that may have observed it was attempted (info or concurrent)', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    remove(history, 1, 5, 5000, 'a', 'info');
    add(history, 2, 0, 10, 'b', 'ok');
    finalSet(history, 6000, 'ds0', ['b']);
    expect(checkDtSet(history.build())).toMatchObject({ valid: true, lost: 0, addsChecked: 1 });
  });

  it('judges invalid an element back after its only add was removed by an acknowledged remove', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    add(history, 1, 0, 10, 'b', 'ok');
    remove(history, 2, 20, 30, 'b', 'ok');
    finalSet(history, 6000, 'ds0', ['a', 'b']);
    const result = checkDtSet(history.build());
    expect(result).toMatchObject({ valid: false, resurrected: 1, removalsChecked: 1 });
    expect(result.resurrectedExamples).toEqual([{ key: 'ds0', element: 'b' }]);
  });

  it('keeps an element whose add was concurrent with the remove (add wins), and draws no verdict from an ambiguous remove', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    add(history, 1, 0, 10, 'b', 'ok');
    remove(history, 2, 20, 40, 'b', 'ok');
    add(history, 3, 25, 35, 'b', 'ok'); // concurrent re-add: the remove's read may not have seen it
    finalSet(history, 6000, 'ds0', ['a', 'b']);
    expect(checkDtSet(history.build())).toMatchObject({ valid: true, resurrected: 0, removalsChecked: 0 });
  });

  it('judges invalid an element nobody added, and one whose every add failed', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    add(history, 1, 0, 10, 'f', 'fail');
    history.op(20, 30, { process: 2, f: 'read', key: 'ds0' }, { type: 'ok', value: ['a', 'zz'] });
    finalSet(history, 6000, 'ds0', ['a', 'f']);
    const result = checkDtSet(history.build());
    // f counts in the final read and in each node's read.
    expect(result).toMatchObject({ valid: false, unexpected: 5, failedButPresent: 1 });
    expect(result.unexpectedExamples.map((entry) => entry.element)).toEqual(['zz', 'f', 'f', 'f', 'f']);
  });

  it('judges invalid a node whose set differs from the final r=all read', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    history.finalRead(6000, 'ds0', ['a']);
    history.localRead(6010, 'ds0', 'n1', ['a']);
    history.localRead(6012, 'ds0', 'n2', []);
    expect(checkDtSet(history.build())).toMatchObject({ valid: false, disagreeingKeys: 1 });
  });

  it('says nothing was tested when every acknowledged add may have been removed, or no set was read', () => {
    const history = new HistoryBuilder();
    add(history, 0, 0, 10, 'a', 'ok');
    remove(history, 1, 20, 30, 'a', 'ok');
    finalSet(history, 6000, 'ds0', []);
    expect(checkDtSet(history.build()).nothingTested).toBe(
      'nothing was tested: no acknowledged add could be held to the final read (every one may have been removed)',
    );
    const unread = new HistoryBuilder();
    add(unread, 0, 0, 10, 'a', 'ok');
    expect(checkDtSet(unread.build())).toMatchObject({ valid: false, nothingTested: 'nothing was tested: no set was read at the end', unreadKeys: ['ds0'] });
  });
});
