/**
 * Every checker of a run, chosen by workload: the workload's own checker, convergence and the
 * statistics. Pure, so a stored history.jsonl can be judged again (`--check DIR`) and gives the
 * same verdict as the run that wrote it.
 */
import type { WorkloadName } from '../cli-options.js';
import type { Operation } from '../history.js';
import type { CheckContext, CheckerResult } from './checker.js';
import { checkClient } from './client.js';
import { type ConvergenceResult, checkConvergence } from './convergence.js';
import { checkDelete } from './delete.js';
import { checkRegister } from './register.js';
import { checkCounter } from './counter.js';
import { checkDtSet } from './dt-set.js';
import { checkCasRegister } from './linearizable.js';
import { checkLock } from './lock.js';
import { checkSet } from './set.js';
import { checkTtl } from './ttl.js';
import { checkWatch } from './watch.js';
import { checkWatchDataTypes } from './watch-data-types.js';
import { type StatsResult, computeStats } from './stats.js';

/** The verdicts of every checker on one history. */
export interface RunVerdict {
  /** True when the workload checker and the convergence checker both are, and both had something to judge. */
  readonly valid: boolean;
  readonly workload: CheckerResult;
  readonly convergence: ConvergenceResult;
  readonly stats: StatsResult;
  /** Why a checker proves nothing ("nothing was tested: ..."), for each that saw nothing to judge; any makes the run invalid. */
  readonly nothingTested: readonly string[];
}

/** The workload's checker. */
export function checkWorkload(workload: WorkloadName, history: readonly Operation[], context: CheckContext): CheckerResult {
  switch (workload) {
    case 'set':
      return checkSet(history);
    case 'register':
      return checkRegister(history, context);
    case 'delete':
      return checkDelete(history);
    case 'client':
      return checkClient(history);
    case 'ttl':
      return checkTtl(history, context);
    case 'counter':
      return checkCounter(history);
    case 'dt-set':
      return checkDtSet(history);
    case 'cas-register':
      return checkCasRegister(history);
    case 'lock':
      return checkLock(history, { fencingTokens: context.bucketMode === 'consistent' });
    case 'watch':
      return context.bucketMode === 'plain' ? checkWatchDataTypes(history) : checkWatch(history);
  }
}

/** Runs every checker of a run on its history. */
export function checkRun(workload: WorkloadName, history: readonly Operation[], context: CheckContext): RunVerdict {
  const workloadResult = checkWorkload(workload, history, context);
  const convergence = checkConvergence(history);
  const nothingTested = [
    ...(workloadResult.nothingTested === undefined ? [] : [`${workload}: ${workloadResult.nothingTested}`]),
    ...(convergence.nothingTested === undefined ? [] : [`convergence: ${convergence.nothingTested}`]),
  ];
  return {
    valid: workloadResult.valid && convergence.valid && nothingTested.length === 0,
    workload: workloadResult,
    convergence,
    stats: computeStats(history),
    nothingTested,
  };
}
