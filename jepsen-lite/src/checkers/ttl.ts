/**
 * The TTL checker. Every key is written once, with a short ttl, and read back at varied
 * consistency levels as it ages, while partitions, kills, pauses and clock jumps come and go.
 *
 * ringkv stamps a version with `expiresAtMs` = the clock of the node that takes the write + ttl,
 * and the node answering a read decides on its own clock whether it has expired. The history's
 * times are the harness's (true, monotonic) time; the nodes' clocks are true time plus the offset
 * the clock nemesis gave them. So with a write invoked at Wi and acknowledged at Wc, and a read
 * invoked at Ri and completed at Rc:
 *
 *   stamped expiry   <= Wc + max offset of any node during [Wi, Wc] + ttl      (E_late)
 *   stamped expiry   >= Wi + min offset of any node during [Wi, Wc] + ttl      (E_early)
 *   reader's clock   >= Ri + min offset of any node during [Ri, Rc]
 *   reader's clock   <= Rc + max offset of any node during [Ri, Rc]
 *
 * "Any node" because the stamping node (the one the client asked, or a primary it forwarded to)
 * and the reading coordinator are not in the history; the offsets in force are, from the clock
 * nemesis's `start` values, widened by the time libfaketime takes to see a change (its file
 * cache) and always including 0 (the nodes the fault leaves alone). Without clock faults the
 * allowance is just the two request durations; with them it is at most the largest offset
 * ahead plus the largest behind that the nemesis set around those moments, never more than twice
 * the nemesis's maximum (clockOffsetRangeS.max, 60 s).
 *
 * - **live after expiry** (invalid): a read whose reader's clock was certainly past E_late
 *   (plus a small slack for millisecond rounding) still returned the value. Judged for every
 *   read: mid-run reads, the final r=all reads and the local reads of the convergence phase.
 * - **lost before expiry** (invalid): a write acknowledged with w, then a read with r, r + w >
 *   replicas, invoked after the write completed, whose reader's clock was certainly before
 *   E_early, with no fault (nor its recovery margin) from the write's invocation to the read's
 *   completion, did not return the value. Reads under faults are skipped as the register
 *   checker skips them: sloppy quorums let fallbacks acknowledge writes the read does not ask.
 * - **unexpected** (invalid): a value read that is not the key's one write, or whose write
 *   certainly failed.
 * - Writes of unknown outcome (`info`) are not judged for expiry: a request held by a paused node
 *   may be stamped long after the client gave up, so its expiry has no bound from the history.
 * - **nothing was tested** (invalid): no acknowledged write, no mid-run read judged after expiry,
 *   or no read judged before expiry.
 */
import { type Operation, faultIntervals, overlapsAny, pairOperations } from '../history.js';
import { type CheckContext, nothingTested } from './checker.js';

/** How long after the harness rewrites a node's offset file the node may still run on the old offset (FAKETIME_CACHE_DURATION=1 s, plus a second of margin). */
export const clockChangeLagMs = 2000;

/** Slack for millisecond rounding of expiresAtMs and drift between the harness's monotonic clock and the wall clock. */
export const expirySlackMs = 50;

/** What the history records as a ttl write's value. */
export interface TtlWriteValue {
  readonly element: number;
  readonly ttlSeconds: number;
}

/** A span during which some nodes' clocks may have had the given offsets. */
interface ClockWindow {
  readonly fromMs: number;
  readonly toMs: number;
  readonly offsetsMs: readonly number[];
}

/** The clock-fault windows of a history, each from its start's invocation to its stop's (or heal's) completion plus the lag. */
export function clockWindows(history: readonly Operation[], lagMs = clockChangeLagMs): ClockWindow[] {
  const windows: ClockWindow[] = [];
  let open: { fromMs: number; offsetsMs: number[] } | undefined;
  for (const operation of history) {
    if (operation.process !== 'nemesis') continue;
    const value = operation.value as { kind?: string; offsetsMs?: Record<string, unknown> } | undefined;
    if (operation.f === 'start' && operation.type === 'invoke' && value?.kind === 'clock') {
      const offsetsMs = Object.values(value.offsetsMs ?? {}).filter((offset): offset is number => typeof offset === 'number');
      if (open !== undefined) windows.push({ fromMs: open.fromMs, toMs: Number.POSITIVE_INFINITY, offsetsMs: open.offsetsMs });
      open = { fromMs: operation.timeMs, offsetsMs };
    } else if ((operation.f === 'stop' || operation.f === 'heal') && operation.type !== 'invoke' && open !== undefined) {
      windows.push({ fromMs: open.fromMs, toMs: operation.timeMs + lagMs, offsetsMs: open.offsetsMs });
      open = undefined;
    }
  }
  // A clock fault never stopped in the history: its offsets may be in force to the end and beyond.
  if (open !== undefined) windows.push({ fromMs: open.fromMs, toMs: Number.POSITIVE_INFINITY, offsetsMs: open.offsetsMs });
  return windows;
}

/** The smallest and largest offset any node's clock may have had at some moment of [startMs, endMs]. */
export function offsetRange(windows: readonly ClockWindow[], startMs: number, endMs: number): { minMs: number; maxMs: number } {
  let minMs = 0;
  let maxMs = 0;
  for (const window of windows) {
    if (window.fromMs > endMs || window.toMs < startMs) continue;
    for (const offset of window.offsetsMs) {
      minMs = Math.min(minMs, offset);
      maxMs = Math.max(maxMs, offset);
    }
  }
  return { minMs, maxMs };
}

interface TtlWrite {
  readonly key: string;
  readonly element: number;
  readonly ttlMs: number;
  readonly w: number | undefined;
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info';
  readonly index: number;
}

/** A read that returned a value whose expiry had certainly passed on the reader's clock. */
export interface LiveAfterExpiry {
  readonly key: string;
  readonly element: number;
  /** History index of the read's completion. */
  readonly index: number;
  readonly f: string;
  /** Milliseconds of true time from the write's acknowledgement to the read's invocation. */
  readonly ageMs: number;
  readonly ttlMs: number;
  /** The clock allowance the check granted: the writer's largest offset minus the reader's smallest. */
  readonly skewAllowanceMs: number;
}

/** A read that certainly should have seen an acknowledged, unexpired value and did not. */
export interface LostBeforeExpiry {
  readonly key: string;
  readonly element: number;
  readonly index: number;
  readonly r: number;
  readonly w: number;
  readonly ageMs: number;
  readonly ttlMs: number;
}

/** What the TTL checker found. */
export interface TtlCheckerResult {
  readonly valid: boolean;
  readonly nothingTested?: string;
  readonly writes: number;
  readonly acknowledgedWrites: number;
  /** Reads that completed ok (mid-run, final and local). */
  readonly reads: number;
  /** Mid-run reads judged against the expiry bound. */
  readonly checkedAfterExpiry: number;
  /** Final and local reads (after healing) judged against the expiry bound. */
  readonly checkedAfterExpiryFinal: number;
  readonly liveAfterExpiry: number;
  /** Reads judged against "an acknowledged unexpired value is not lost". */
  readonly checkedBeforeExpiry: number;
  readonly lostBeforeExpiry: number;
  /** Reads of a value acknowledged and certainly unexpired, not judged because a fault or its recovery margin overlapped. */
  readonly skippedBeforeExpiryDuringFaults: number;
  /** Reads not judged before expiry because r + w <= replicas. */
  readonly skippedBeforeExpiryWeakQuorum: number;
  /** Reads of a key whose write was not acknowledged, or in the window where the value may or may not have expired. */
  readonly undecidedReads: number;
  readonly unexpected: number;
  /** The largest clock allowance any judged read got (ms). */
  readonly maxSkewAllowanceMs: number;
  readonly liveAfterExpiryExamples: readonly LiveAfterExpiry[];
  readonly lostBeforeExpiryExamples: readonly LostBeforeExpiry[];
  readonly unexpectedExamples: readonly { key: string; index: number; value: number }[];
}

function numbers(value: unknown): number[] {
  return Array.isArray(value) ? (value as unknown[]).filter((item): item is number => typeof item === 'number') : [];
}

function ttlWriteValue(value: unknown): TtlWriteValue | undefined {
  const candidate = value as Partial<TtlWriteValue> | undefined;
  return typeof candidate?.element === 'number' && typeof candidate.ttlSeconds === 'number'
    ? { element: candidate.element, ttlSeconds: candidate.ttlSeconds }
    : undefined;
}

const readFunctions = new Set(['read', 'final-read', 'local-read']);

/** Judges a ttl workload's history. */
export function checkTtl(history: readonly Operation[], context: CheckContext): TtlCheckerResult {
  const windows = clockWindows(history);
  const faults = faultIntervals(history);
  const writes = new Map<string, TtlWrite>();
  const pairs = pairOperations(history);
  for (const { invoke, completion } of pairs) {
    const value = ttlWriteValue(invoke.value);
    if (invoke.f !== 'write' || typeof invoke.process !== 'number' || invoke.key === undefined || value === undefined) continue;
    const outcome = completion === undefined || completion.type === 'invoke' ? 'info' : completion.type;
    writes.set(invoke.key, {
      key: invoke.key,
      element: value.element,
      ttlMs: value.ttlSeconds * 1000,
      w: invoke.w,
      invokeMs: invoke.timeMs,
      completeMs: outcome === 'info' || completion === undefined ? Number.POSITIVE_INFINITY : completion.timeMs,
      outcome,
      index: invoke.index,
    });
  }
  let reads = 0;
  let checkedAfterExpiry = 0;
  let checkedAfterExpiryFinal = 0;
  let checkedBeforeExpiry = 0;
  let skippedDuringFaults = 0;
  let skippedWeakQuorum = 0;
  let undecided = 0;
  let maxSkewAllowanceMs = 0;
  const live: LiveAfterExpiry[] = [];
  const lost: LostBeforeExpiry[] = [];
  const unexpected: { key: string; index: number; value: number }[] = [];
  for (const { invoke, completion } of pairs) {
    if (!readFunctions.has(invoke.f) || invoke.key === undefined || completion?.type !== 'ok') continue;
    reads += 1;
    const values = numbers(completion.value);
    const write = writes.get(invoke.key);
    for (const value of values) {
      if (write === undefined || write.outcome === 'fail' || value !== write.element) unexpected.push({ key: invoke.key, index: completion.index, value });
    }
    if (write === undefined || write.outcome !== 'ok') {
      undecided += 1;
      continue;
    }
    const found = values.includes(write.element);
    const writerOffsets = offsetRange(windows, write.invokeMs, write.completeMs);
    const readerOffsets = offsetRange(windows, invoke.timeMs, completion.timeMs);
    const expiresLate = write.completeMs + writerOffsets.maxMs + write.ttlMs;
    const expiresEarly = write.invokeMs + writerOffsets.minMs + write.ttlMs;
    const readerEarliest = invoke.timeMs + readerOffsets.minMs;
    const readerLatest = completion.timeMs + readerOffsets.maxMs;
    if (readerEarliest >= expiresLate + expirySlackMs) {
      if (invoke.f === 'read') checkedAfterExpiry += 1;
      else checkedAfterExpiryFinal += 1;
      maxSkewAllowanceMs = Math.max(maxSkewAllowanceMs, writerOffsets.maxMs - readerOffsets.minMs);
      if (found) {
        live.push({
          key: invoke.key,
          element: write.element,
          index: completion.index,
          f: invoke.f,
          ageMs: Math.round(invoke.timeMs - write.completeMs),
          ttlMs: write.ttlMs,
          skewAllowanceMs: writerOffsets.maxMs - readerOffsets.minMs,
        });
      }
      continue;
    }
    if (invoke.f === 'read' && invoke.timeMs > write.completeMs && readerLatest + expirySlackMs < expiresEarly) {
      const w = write.w ?? context.replicas;
      const r = invoke.r ?? context.replicas;
      if (r + w <= context.replicas) {
        skippedWeakQuorum += 1;
        continue;
      }
      if (overlapsAny(write.invokeMs, completion.timeMs, faults, context.recoveryMs)) {
        skippedDuringFaults += 1;
        continue;
      }
      checkedBeforeExpiry += 1;
      if (!found)
        lost.push({
          key: invoke.key,
          element: write.element,
          index: completion.index,
          r,
          w,
          ageMs: Math.round(invoke.timeMs - write.completeMs),
          ttlMs: write.ttlMs,
        });
      continue;
    }
    undecided += 1;
  }
  const acknowledgedWrites = [...writes.values()].filter((write) => write.outcome === 'ok').length;
  const emptiness = nothingTested([
    [acknowledgedWrites === 0, 'no ttl write was acknowledged'],
    [
      checkedAfterExpiry === 0,
      `no read during the workload was judged after its value's expiry plus the clock allowance (${checkedAfterExpiryFinal} final reads were)`,
    ],
    [checkedBeforeExpiry === 0, `no read was judged before expiry (${skippedDuringFaults} skipped during faults, ${skippedWeakQuorum} with r + w <= replicas)`],
  ]);
  return {
    valid: emptiness === undefined && live.length === 0 && lost.length === 0 && unexpected.length === 0,
    ...(emptiness === undefined ? {} : { nothingTested: emptiness }),
    writes: writes.size,
    acknowledgedWrites,
    reads,
    checkedAfterExpiry,
    checkedAfterExpiryFinal,
    liveAfterExpiry: live.length,
    checkedBeforeExpiry,
    lostBeforeExpiry: lost.length,
    skippedBeforeExpiryDuringFaults: skippedDuringFaults,
    skippedBeforeExpiryWeakQuorum: skippedWeakQuorum,
    undecidedReads: undecided,
    unexpected: unexpected.length,
    maxSkewAllowanceMs,
    liveAfterExpiryExamples: live.slice(0, 20),
    lostBeforeExpiryExamples: lost.slice(0, 20),
    unexpectedExamples: unexpected.slice(0, 20),
  };
}
