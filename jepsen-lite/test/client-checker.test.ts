import { describe, expect, it } from 'vitest';
import { checkClient } from '../src/checkers/client.js';
import { checkRun } from '../src/checkers/check-run.js';
import { mergeElementSets, presentElements } from '../src/workloads/client.js';
import { HistoryBuilder } from './history-builder.js';

/**
 * The client checker judges hand-written histories of the client workload's two-phase sets:
 * every acknowledged element must be in the final read, an acknowledged removal must stay
 * removed, and what a delete's read saw is excused. A history that loses an element is invalid.
 */

type Outcome = 'ok' | 'fail' | 'info';
const set = (adds: number[], removes: number[] = []): { adds: number[]; removes: number[] } => ({ adds, removes });

function addOp(
  history: HistoryBuilder,
  f: 'add' | 'chain-add' | 'blind-add',
  process: number,
  atMs: number,
  element: number,
  type: Outcome,
  key = 'c0',
): HistoryBuilder {
  return history.op(atMs, atMs + 5, { process, f, key, value: element }, { type });
}

function removeOp(history: HistoryBuilder, process: number, atMs: number, element: number, type: Outcome, key = 'c0'): HistoryBuilder {
  return history.op(atMs, atMs + 5, { process, f: 'remove', key }, { type, value: { element } });
}

function deleteOp(
  history: HistoryBuilder,
  process: number,
  atMs: number,
  saw: { adds: number[]; removes: number[] },
  type: Outcome,
  key = 'c0',
): HistoryBuilder {
  return history.op(atMs, atMs + 5, { process, f: 'delete', key }, { type, value: saw });
}

describe('the client checker', () => {
  it('accepts a history where every acknowledged element survives, by every route, and a removal stays removed', () => {
    const history = new HistoryBuilder();
    addOp(history, 'add', 0, 0, 0, 'ok');
    addOp(history, 'chain-add', 0, 10, 3, 'ok');
    addOp(history, 'blind-add', 1, 12, 1, 'ok');
    addOp(history, 'add', 2, 14, 2, 'info');
    addOp(history, 'add', 3, 16, 5, 'fail');
    removeOp(history, 1, 20, 1, 'ok');
    history.op(30, 35, { process: 4, f: 'read', key: 'c0', r: 1 }, { type: 'ok', value: { size: 3, siblings: 2 } });
    history.finalRead(100, 'c0', set([0, 1, 3], [1]));
    const result = checkClient(history.build());
    expect(result).toMatchObject({
      valid: true,
      acknowledged: 3,
      acknowledgedBy: { add: 1, 'chain-add': 1, 'blind-add': 1 },
      lost: 0,
      checkedElements: 2,
      removalsAcknowledged: 1,
      resurrected: 0,
      readsWithSiblings: 1,
    });
  });

  it('judges invalid a history that loses an acknowledged element (a chained write superseded a sibling it never saw)', () => {
    // Worker 0 chains on its own write's context; worker 1's concurrent add is acknowledged; the
    // chained write's context covered worker 1's sibling, so the final read lacks element 1.
    const history = new HistoryBuilder();
    addOp(history, 'add', 0, 0, 0, 'ok');
    addOp(history, 'add', 1, 2, 1, 'ok');
    addOp(history, 'chain-add', 0, 20, 2, 'ok');
    history.finalRead(100, 'c0', set([0, 2]));
    const result = checkClient(history.build());
    expect(result.valid).toBe(false);
    expect(result.lost).toBe(1);
    expect(result.lostElements).toEqual([{ key: 'c0', element: 1, by: 'add' }]);
  });

  it('judges invalid an element whose acknowledged removal was undone', () => {
    const history = new HistoryBuilder();
    addOp(history, 'add', 0, 0, 7, 'ok');
    addOp(history, 'add', 0, 10, 8, 'ok');
    removeOp(history, 1, 20, 7, 'ok');
    history.finalRead(100, 'c0', set([7, 8]));
    const result = checkClient(history.build());
    expect(result).toMatchObject({ valid: false, resurrected: 1, lost: 0 });
    expect(result.resurrectedElements).toEqual([{ key: 'c0', element: 7 }]);
  });

  it('excuses what a delete (acknowledged or unknown) saw, and nothing it did not see', () => {
    const history = new HistoryBuilder();
    addOp(history, 'add', 0, 0, 0, 'ok');
    addOp(history, 'add', 0, 10, 1, 'ok');
    removeOp(history, 0, 15, 1, 'ok');
    deleteOp(history, 1, 20, set([0, 1], [1]), 'info');
    // Added after the delete's read: must survive it.
    addOp(history, 'blind-add', 2, 30, 2, 'ok');
    history.finalRead(100, 'c0', set([1]));
    const result = checkClient(history.build());
    // Element 1 is back (its removal marker went with the delete, which saw it): excused. Element 2 is lost.
    expect(result).toMatchObject({ valid: false, lost: 1, resurrected: 0, checkedElements: 1 });
    expect(result.lostElements).toEqual([{ key: 'c0', element: 2, by: 'blind-add' }]);
  });

  it('judges invalid an element nobody added, a failed add that is present, and a key never read at the end', () => {
    const history = new HistoryBuilder();
    addOp(history, 'add', 0, 0, 0, 'ok');
    addOp(history, 'add', 0, 10, 1, 'fail');
    addOp(history, 'add', 1, 12, 2, 'ok', 'c1');
    history.finalRead(100, 'c0', set([0, 1, 99]));
    const result = checkClient(history.build());
    expect(result).toMatchObject({ valid: false, unexpected: 1, failedButPresent: 1, unreadKeys: ['c1'] });
  });

  it('judges a history with nothing acknowledged invalid: nothing was tested', () => {
    const history = new HistoryBuilder();
    addOp(history, 'add', 0, 0, 0, 'fail');
    history.finalRead(100, 'c0', set([]));
    const result = checkClient(history.build());
    expect(result.valid).toBe(false);
    expect(result.nothingTested).toMatch(/nothing was tested/);
    expect(checkRun('client', history.build(), { replicas: 3, recoveryMs: 5000 }).valid).toBe(false);
  });

  it('merges siblings by union of adds and of removes, and an element removed anywhere is gone', () => {
    const merged = mergeElementSets([set([3, 1]), set([2], [1]), set([1, 4])]);
    expect(merged).toEqual({ adds: [1, 2, 3, 4], removes: [1] });
    expect(presentElements(merged)).toEqual([2, 3, 4]);
  });
});
