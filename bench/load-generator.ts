import { performance } from 'node:perf_hooks';
import * as hdr from 'hdr-histogram-js';
import { type CpuShares, cpuShares, cpuSnapshot } from './cpu-accounting.js';
import { type KeyChooser, type KeyDistribution, keyChooser } from './key-chooser.js';
import { Progress } from './progress.js';
import { type Outcome, type RequestDriver, okOutcome } from './request-driver.js';

/**
 * The load loop. Closed loop: `concurrency` workers, each sends its next request when the last
 * one answers (throughput is what the system gives). Open loop: the same workers each follow a
 * fixed schedule that adds up to `rateOpsPerSecond`, and latency is measured from the time a
 * request was due, not the time it was sent, so a stall is charged to every request it delayed
 * (Gil Tene's coordinated-omission correction, as wrk2 does it).
 */

/** Which operations a run sends. */
export type Workload = 'put' | 'get' | 'mixed';

/** Closed loop (fixed concurrency) or open loop (fixed rate). */
export type LoopKind = 'closed' | 'open';

/** The shape of one load run. */
export interface LoadOptions {
  readonly workload: Workload;
  readonly distribution: KeyDistribution;
  readonly keyCount: number;
  readonly concurrency: number;
  readonly loop: LoopKind;
  /** Open loop only: the total rate all workers aim for. */
  readonly rateOpsPerSecond?: number;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  /** Share of reads in the mixed workload. */
  readonly readFraction: number;
  /** Shown on the progress line. */
  readonly label: string;
  readonly showProgress: boolean;
  /** The processes under test, for the CPU accounting. */
  readonly serverPids?: readonly (number | undefined)[];
}

/** Latency percentiles of one operation kind, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly latencyMsMean: number;
  readonly latencyMsP50: number;
  readonly latencyMsP90: number;
  readonly latencyMsP99: number;
  readonly latencyMsP999: number;
  readonly latencyMsMax: number;
}

/** What one measured run gave. */
export interface LoadResult {
  readonly label: string;
  readonly workload: Workload;
  readonly distribution: KeyDistribution;
  readonly loop: LoopKind;
  readonly concurrency: number;
  readonly keyCount: number;
  readonly rateOpsPerSecond: number | null;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  /** Successful operations per second over the measured window. */
  readonly opsPerSecond: number;
  readonly okCount: number;
  readonly errorCount: number;
  /** Failed operations by outcome: HTTP status ('503') or network error code. */
  readonly errorsByOutcome: Readonly<Record<string, number>>;
  /** Failed operations during the warm-up (not in the figures, but a sign the system was not ready). */
  readonly warmupErrorCount: number;
  /** Latency of successful operations of every kind. */
  readonly latency: LatencySummary;
  /**
   * Where the CPU went over the measured window: the servers, the load generator (which shares
   * the cores on a small machine, so its share is what the servers did not get) and the rest.
   */
  readonly cpu: CpuShares;
  /** The same per operation kind (both present in the mixed workload). */
  readonly latencyByOperation: { readonly get?: LatencySummary; readonly put?: LatencySummary };
}

type Operation = 'get' | 'put';

/** Microseconds up to one hour at 3 significant digits: every latency a run can see. */
function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

function summarise(histogram: hdr.Histogram): LatencySummary {
  const ms = (micros: number): number => Math.round(micros) / 1000;
  return {
    count: histogram.totalCount,
    latencyMsMean: histogram.totalCount === 0 ? 0 : Math.round(histogram.mean) / 1000,
    latencyMsP50: ms(histogram.getValueAtPercentile(50)),
    latencyMsP90: ms(histogram.getValueAtPercentile(90)),
    latencyMsP99: ms(histogram.getValueAtPercentile(99)),
    latencyMsP999: ms(histogram.getValueAtPercentile(99.9)),
    latencyMsMax: ms(histogram.maxValue),
  };
}

/** The counters of one phase (warm-up or measurement); a fresh one starts each phase. */
class PhaseRecorder {
  readonly all = newHistogram();
  readonly get = newHistogram();
  readonly put = newHistogram();
  okCount = 0;
  errorCount = 0;
  readonly errorsByOutcome = new Map<Outcome, number>();

  record(operation: Operation, outcome: Outcome, latencyMicros: number): void {
    if (outcome === okOutcome) {
      this.okCount++;
      const micros = latencyMicros < 1 ? 1 : Math.round(latencyMicros);
      this.all.recordValue(micros);
      (operation === 'get' ? this.get : this.put).recordValue(micros);
    } else {
      this.errorCount++;
      const key = `${operation.toUpperCase()} ${outcome}`;
      this.errorsByOutcome.set(key, (this.errorsByOutcome.get(key) ?? 0) + 1);
    }
  }

  destroy(): void {
    this.all.destroy();
    this.get.destroy();
    this.put.destroy();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function operationChooser(workload: Workload, readFraction: number): () => Operation {
  if (workload === 'put') return () => 'put';
  if (workload === 'get') return () => 'get';
  return () => (Math.random() < readFraction ? 'get' : 'put');
}

/** Runs a warm-up and then a measured window of load through `driver`. */
export async function runLoad(driver: RequestDriver, options: LoadOptions): Promise<LoadResult> {
  if (options.loop === 'open' && !(options.rateOpsPerSecond !== undefined && options.rateOpsPerSecond > 0)) {
    throw new Error('the open loop needs --rate (operations per second)');
  }
  const chooser: KeyChooser = keyChooser(options.distribution, options.keyCount);
  const nextOperation = operationChooser(options.workload, options.readFraction);
  const startMs = performance.now();
  const measureStartMs = startMs + options.warmupSeconds * 1000;
  const stopMs = measureStartMs + options.durationSeconds * 1000;
  let recorder = new PhaseRecorder();
  let measuring = options.warmupSeconds <= 0;
  let warmupErrorCount = 0;
  const serverPids = options.serverPids ?? [];
  let cpuAtMeasureStart = cpuSnapshot(serverPids);
  let cpuAtStop = cpuAtMeasureStart;
  let stopped = false;
  const progress = new Progress(options.label, options.warmupSeconds, options.durationSeconds, options.showProgress);
  const send = (operation: Operation, keyIndex: number): Promise<Outcome> => (operation === 'put' ? driver.put(keyIndex) : driver.get(keyIndex));

  // Operations that end after the window closes are not counted: the in-flight tail would
  // otherwise add up to `concurrency` operations the window did not contain.
  const finish = (operation: Operation, outcome: Outcome, dueMs: number, endMs: number): void => {
    if (endMs > stopMs) return;
    if (!measuring && endMs >= measureStartMs) {
      warmupErrorCount = recorder.errorCount;
      recorder.destroy();
      recorder = new PhaseRecorder();
      measuring = true;
    }
    recorder.record(operation, outcome, (endMs - dueMs) * 1000);
    progress.count(outcome === okOutcome);
  };

  const closedWorker = async (): Promise<void> => {
    while (!stopped) {
      const operation = nextOperation();
      const keyIndex = chooser.next();
      const sentMs = performance.now();
      const outcome = await send(operation, keyIndex);
      finish(operation, outcome, sentMs, performance.now());
    }
  };

  const intervalMs = options.loop === 'open' ? (1000 * options.concurrency) / (options.rateOpsPerSecond as number) : 0;
  const openWorker = async (worker: number): Promise<void> => {
    // Workers are staggered so the schedule is smooth, not 64 requests at once every interval.
    let dueMs = startMs + (worker * intervalMs) / options.concurrency;
    while (!stopped) {
      const waitMs = dueMs - performance.now();
      if (waitMs > 1) await sleep(waitMs);
      if (stopped) break;
      const operation = nextOperation();
      const outcome = await send(operation, chooser.next());
      finish(operation, outcome, dueMs, performance.now());
      dueMs += intervalMs;
    }
  };

  progress.start();
  const measureTimer = setTimeout(
    () => {
      cpuAtMeasureStart = cpuSnapshot(serverPids);
    },
    Math.max(0, measureStartMs - performance.now()),
  );
  const timer = setTimeout(
    () => {
      stopped = true;
      cpuAtStop = cpuSnapshot(serverPids);
    },
    Math.max(0, stopMs - performance.now()),
  );
  try {
    await Promise.all(Array.from({ length: options.concurrency }, (_, worker) => (options.loop === 'open' ? openWorker(worker) : closedWorker())));
  } finally {
    clearTimeout(timer);
    clearTimeout(measureTimer);
    progress.stop();
  }
  if (!measuring) {
    // Nothing finished inside the window (the system stalled for all of it): report zeros.
    recorder.destroy();
    recorder = new PhaseRecorder();
  }
  const result: LoadResult = {
    label: options.label,
    workload: options.workload,
    distribution: options.distribution,
    loop: options.loop,
    concurrency: options.concurrency,
    keyCount: options.keyCount,
    rateOpsPerSecond: options.rateOpsPerSecond ?? null,
    durationSeconds: options.durationSeconds,
    warmupSeconds: options.warmupSeconds,
    opsPerSecond: Math.round(recorder.okCount / options.durationSeconds),
    okCount: recorder.okCount,
    errorCount: recorder.errorCount,
    errorsByOutcome: Object.fromEntries([...recorder.errorsByOutcome.entries()].sort()),
    warmupErrorCount,
    latency: summarise(recorder.all),
    cpu: cpuShares(cpuAtMeasureStart, cpuAtStop),
    latencyByOperation: {
      ...(recorder.get.totalCount > 0 ? { get: summarise(recorder.get) } : {}),
      ...(recorder.put.totalCount > 0 ? { put: summarise(recorder.put) } : {}),
    },
  };
  recorder.destroy();
  return result;
}

/** What a prefill wrote. */
export interface PrefillResult {
  readonly keyCount: number;
  readonly seconds: number;
  readonly errorCount: number;
  readonly errorsByOutcome: Readonly<Record<string, number>>;
}

/**
 * Writes every key of the key space once (keys firstKey..keyCount-1 in order, `concurrency` at a
 * time), so reads find values and writes overwrite as they would in a steady state. A failed key
 * is tried again up to 3 times; what still fails is reported.
 */
export async function prefill(
  driver: RequestDriver,
  keyCount: number,
  concurrency: number,
  label: string,
  showProgress: boolean,
  firstKey = 0,
): Promise<PrefillResult> {
  const startMs = performance.now();
  let next = firstKey;
  let done = 0;
  let errorCount = 0;
  const errors = new Map<string, number>();
  const progress = new Progress(`${label} prefill`, 0, 0, showProgress, keyCount - firstKey);
  progress.start();
  const worker = async (): Promise<void> => {
    while (next < keyCount) {
      const keyIndex = next++;
      let outcome: Outcome = okOutcome;
      for (let attempt = 0; attempt < 4; attempt++) {
        outcome = await driver.put(keyIndex);
        if (outcome === okOutcome) break;
      }
      done++;
      progress.count(outcome === okOutcome, done);
      if (outcome !== okOutcome) {
        errorCount++;
        errors.set(`PUT ${outcome}`, (errors.get(`PUT ${outcome}`) ?? 0) + 1);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, keyCount - firstKey)) }, () => worker()));
  } finally {
    progress.stop();
  }
  return {
    keyCount: keyCount - firstKey,
    seconds: Math.round((performance.now() - startMs) / 100) / 10,
    errorCount,
    errorsByOutcome: Object.fromEntries(errors),
  };
}
