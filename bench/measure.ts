import { randomBytes } from 'node:crypto';
import { type LoadOptions, type LoadResult, type PrefillResult, type Workload, prefill, runLoad } from './load-generator.js';
import { type DriverKind, type RequestDriver, createDriver } from './request-driver.js';
import { type RunningTarget, targetMemoryBytes } from './targets.js';

/** How each target of a suite is loaded: the shape of each load run, and what is run. */
export interface MeasureOptions extends Pick<
  LoadOptions,
  'distribution' | 'keyCount' | 'concurrency' | 'loop' | 'rateOpsPerSecond' | 'durationSeconds' | 'warmupSeconds' | 'readFraction' | 'showProgress'
> {
  readonly workloads: readonly Workload[];
  readonly valueSizeBytes: number;
  readonly timeoutMs: number;
  /** Write every key before the runs, so reads find values. */
  readonly prefill: boolean;
  /** ringkv-shaped targets (ringkv and the ceiling) go through this driver; etcd always uses its own. */
  readonly client: Exclude<DriverKind, 'etcd'>;
  /** ringkv's bucket conflict mode for the systems a suite starts. */
  readonly conflictMode: 'siblings' | 'lww';
  /** ringkv targets: requests go to the ring member (shard) that owns each key (README, "Shards"). */
  readonly shardAware?: boolean;
}

/** What one target gave. */
export interface TargetMeasurement {
  readonly target: string;
  readonly description: string;
  readonly nodes: readonly string[];
  readonly driver: string;
  readonly prefill: PrefillResult | null;
  readonly results: readonly LoadResult[];
  /** VmHWM of each node process after the runs, in bytes. */
  readonly peakRssBytesPerProcess: readonly (number | null)[];
}

/** The driver a target is loaded through under these options, for one bucket (the bench's own by default). */
export function driverFor(
  target: RunningTarget,
  options: Pick<MeasureOptions, 'client' | 'valueSizeBytes' | 'concurrency' | 'timeoutMs' | 'shardAware'>,
  keyCount: number,
  bucket = 'bench',
): RequestDriver {
  const kind: DriverKind = target.driverKind === 'etcd' ? 'etcd' : options.client;
  return createDriver(
    kind,
    {
      nodes: target.nodes,
      // Random bytes, so no system gains from compressing the values.
      value: randomBytes(options.valueSizeBytes),
      // Enough sockets per node that a request never waits for one, however the rotation falls.
      connectionsPerNode: options.concurrency,
      bucket,
      timeoutMs: options.timeoutMs,
      ...(target.conflictMode === 'siblings' ? { contextSlots: keyCount } : {}),
      // Only ringkv knows a ring (conflictMode is set for ringkv targets alone).
      ...(options.shardAware === true && target.conflictMode !== undefined ? { shardAware: true } : {}),
    },
    target.quorum,
  );
}

/** One load run of `workload` over `keyCount` keys of a started target, shaped by a suite's options. */
export function loadOptionsFor(
  target: RunningTarget,
  options: Omit<MeasureOptions, 'keyCount' | 'prefill'>,
  workload: Workload,
  keyCount: number,
  label: string,
): LoadOptions {
  return {
    workload,
    distribution: options.distribution,
    keyCount,
    concurrency: options.concurrency,
    loop: options.loop,
    ...(options.rateOpsPerSecond === undefined ? {} : { rateOpsPerSecond: options.rateOpsPerSecond }),
    durationSeconds: options.durationSeconds,
    warmupSeconds: options.warmupSeconds,
    readFraction: options.readFraction,
    label,
    showProgress: options.showProgress,
    serverPids: target.processes.map((server) => server.child.pid),
  };
}

/** Prefills (optionally) and runs every workload against a started target, one after another. */
export async function measureTarget(target: RunningTarget, options: MeasureOptions): Promise<TargetMeasurement> {
  const driver = driverFor(target, options, options.keyCount);
  try {
    const filled = options.prefill ? await prefill(driver, options.keyCount, options.concurrency, target.name, options.showProgress) : null;
    if (filled !== null && filled.errorCount > 0) {
      process.stderr.write(
        `warning: ${target.name}: ${filled.errorCount} of ${filled.keyCount} prefill writes failed: ${JSON.stringify(filled.errorsByOutcome)}\n`,
      );
    }
    const results: LoadResult[] = [];
    for (const workload of options.workloads) {
      const result = await runLoad(driver, loadOptionsFor(target, options, workload, options.keyCount, `${target.name} ${workload}`));
      if (result.warmupErrorCount > 0)
        process.stderr.write(`warning: ${target.name} ${workload}: ${result.warmupErrorCount} operations failed during the warm-up\n`);
      results.push(result);
    }
    return {
      target: target.name,
      description: target.description,
      nodes: target.nodes,
      driver: driver.name,
      prefill: filled,
      results,
      peakRssBytesPerProcess: targetMemoryBytes(target, 'VmHWM'),
    };
  } finally {
    await driver.close();
  }
}
