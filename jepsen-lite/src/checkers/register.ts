/**
 * The register checker. Clients read and write single values with per-request r and w. When a
 * read's r and the latest acknowledged write's w overlap (r + w > replicas) and no fault was in
 * force from that write's invocation to the read's completion (nor for a recovery margin after
 * one ended), Dynamo's quorum intersection promises the read sees that write or one concurrent
 * with or after it; a read that does not is stale. Faults void the promise, because sloppy
 * quorums let writes be acknowledged by fallbacks the read does not ask. Every value read must
 * also be one some client tried to write and did not certainly fail to.
 */
import { type Operation, faultIntervals, overlapsAny, pairOperations } from '../history.js';
import { type CheckContext, nothingTested } from './checker.js';

interface WriteRecord {
  readonly value: number;
  readonly w: number;
  readonly invokeMs: number;
  /** Infinity when the outcome is unknown: the write may take effect at any later time. */
  readonly completeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info';
}

/** A read that missed the latest acknowledged write. */
export interface StaleRead {
  readonly key: string;
  /** History index of the read's completion. */
  readonly index: number;
  readonly r: number;
  readonly values: readonly number[];
  /** The value of the latest acknowledged write before the read. */
  readonly latestWrite: number;
  readonly latestWriteW: number;
  /** Every value the read could have returned. */
  readonly allowed: readonly number[];
}

/** What the register checker found. */
export interface RegisterCheckerResult {
  readonly valid: boolean;
  /** Why the run proves nothing, when it does not (no acknowledged write, no read judged). */
  readonly nothingTested?: string;
  readonly reads: number;
  readonly writes: number;
  /** Reads judged against the quorum rule. */
  readonly checkedReads: number;
  readonly staleReads: number;
  /** Reads not judged because a fault (or its recovery margin) overlapped them. */
  readonly skippedDuringFaults: number;
  /** Reads not judged because r + w <= replicas. */
  readonly skippedWeakQuorum: number;
  /** Values read that no client could have written. */
  readonly unexpectedValues: number;
  readonly staleExamples: readonly StaleRead[];
  readonly unexpectedExamples: readonly { key: string; index: number; value: number }[];
}

/** Judges a register workload's history. */
export function checkRegister(history: readonly Operation[], context: CheckContext): RegisterCheckerResult {
  const faults = faultIntervals(history);
  const writesByKey = new Map<string, WriteRecord[]>();
  const reads: { key: string; r: number; invokeMs: number; completeMs: number; index: number; values: number[] }[] = [];
  for (const { invoke, completion } of pairOperations(history)) {
    if (typeof invoke.process !== 'number' || invoke.key === undefined) continue;
    if (invoke.f === 'write' && typeof invoke.value === 'number') {
      const outcome = completion === undefined || completion.type === 'invoke' ? 'info' : completion.type;
      const list = writesByKey.get(invoke.key) ?? [];
      list.push({
        value: invoke.value,
        w: invoke.w ?? context.replicas,
        invokeMs: invoke.timeMs,
        completeMs: outcome === 'info' || completion === undefined ? Number.POSITIVE_INFINITY : completion.timeMs,
        outcome,
      });
      writesByKey.set(invoke.key, list);
    } else if (invoke.f === 'read' && completion?.type === 'ok') {
      const values = Array.isArray(completion.value) ? (completion.value as unknown[]).filter((item): item is number => typeof item === 'number') : [];
      reads.push({ key: invoke.key, r: invoke.r ?? context.replicas, invokeMs: invoke.timeMs, completeMs: completion.timeMs, index: completion.index, values });
    }
  }
  let checkedReads = 0;
  let skippedDuringFaults = 0;
  let skippedWeakQuorum = 0;
  const stale: StaleRead[] = [];
  const unexpected: { key: string; index: number; value: number }[] = [];
  for (const read of reads) {
    const writes = writesByKey.get(read.key) ?? [];
    const possible = new Set(writes.filter((write) => write.outcome !== 'fail').map((write) => write.value));
    for (const value of read.values) if (!possible.has(value)) unexpected.push({ key: read.key, index: read.index, value });
    let latest: WriteRecord | undefined;
    for (const write of writes) {
      if (write.outcome === 'ok' && write.completeMs < read.invokeMs && (latest === undefined || write.completeMs > latest.completeMs)) latest = write;
    }
    if (latest === undefined) continue;
    if (latest.w + read.r <= context.replicas) {
      skippedWeakQuorum += 1;
      continue;
    }
    if (overlapsAny(latest.invokeMs, read.completeMs, faults, context.recoveryMs)) {
      skippedDuringFaults += 1;
      continue;
    }
    checkedReads += 1;
    const anchor = latest;
    const allowed = writes
      .filter((write) => write.outcome !== 'fail' && write.invokeMs < read.completeMs && write.completeMs > anchor.invokeMs)
      .map((write) => write.value);
    if (!read.values.some((value) => allowed.includes(value))) {
      stale.push({
        key: read.key,
        index: read.index,
        r: read.r,
        values: read.values,
        latestWrite: anchor.value,
        latestWriteW: anchor.w,
        allowed: allowed.sort((left, right) => left - right),
      });
    }
  }
  const acknowledgedWrites = [...writesByKey.values()].reduce((sum, list) => sum + list.filter((write) => write.outcome === 'ok').length, 0);
  const emptiness = nothingTested([
    [acknowledgedWrites === 0, 'no write was acknowledged'],
    [
      checkedReads === 0,
      `no read was judged against the quorum rule (${skippedDuringFaults} skipped during faults, ${skippedWeakQuorum} with r + w <= replicas)`,
    ],
  ]);
  return {
    valid: emptiness === undefined && stale.length === 0 && unexpected.length === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    reads: reads.length,
    writes: [...writesByKey.values()].reduce((sum, list) => sum + list.length, 0),
    checkedReads,
    staleReads: stale.length,
    skippedDuringFaults,
    skippedWeakQuorum,
    unexpectedValues: unexpected.length,
    staleExamples: stale.slice(0, 20),
    unexpectedExamples: unexpected.slice(0, 20),
  };
}
