/**
 * Statistics of every run, whatever the workload: operations by outcome, latency percentiles,
 * and availability (the share of operations that succeeded) during faults and outside them.
 * Always valid; it describes rather than judges.
 */
import { type Operation, faultIntervals, pairOperations } from '../history.js';

/** Counts of one operation by outcome; `incomplete` had no completion when the run ended. */
export interface OutcomeCounts {
  ok: number;
  fail: number;
  info: number;
  incomplete: number;
}

/** Latency percentiles of completed operations, in milliseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
}

/** Share of invoked operations that completed ok. */
export interface Availability {
  readonly invoked: number;
  readonly ok: number;
  /** ok / invoked, or null when nothing was invoked. */
  readonly okFraction: number | null;
}

/** What the stats checker found. */
export interface StatsResult {
  readonly valid: true;
  readonly counts: Readonly<Record<string, OutcomeCounts>>;
  /** Latency of every completion (ok, fail and info) per operation. */
  readonly latency: Readonly<Record<string, LatencySummary>>;
  /** Latency of ok completions only per operation. */
  readonly latencyOk: Readonly<Record<string, LatencySummary>>;
  /** By invocation time: inside a fault interval or not. */
  readonly availability: { readonly duringFaults: Availability; readonly outsideFaults: Availability };
  readonly faults: number;
  readonly faultTimeMs: number;
}

/** The nearest-rank percentile `fraction` of ascending `sorted`. */
export function percentile(sorted: readonly number[], fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Summarises latencies in milliseconds. */
export function summariseLatency(latenciesMs: readonly number[]): LatencySummary {
  const sorted = [...latenciesMs].sort((left, right) => left - right);
  const round = (value: number): number => Math.round(value * 10) / 10;
  return {
    count: sorted.length,
    p50Ms: round(percentile(sorted, 0.5)),
    p95Ms: round(percentile(sorted, 0.95)),
    p99Ms: round(percentile(sorted, 0.99)),
    maxMs: round(sorted.length === 0 ? 0 : (sorted[sorted.length - 1] as number)),
  };
}

function availability(invoked: number, ok: number): Availability {
  return { invoked, ok, okFraction: invoked === 0 ? null : Math.round((ok / invoked) * 10_000) / 10_000 };
}

/** Computes the statistics of the client operations of a history. */
export function computeStats(history: readonly Operation[]): StatsResult {
  const faults = faultIntervals(history);
  const counts: Record<string, OutcomeCounts> = {};
  const latencies = new Map<string, number[]>();
  const okLatencies = new Map<string, number[]>();
  const during = { invoked: 0, ok: 0 };
  const outside = { invoked: 0, ok: 0 };
  for (const { invoke, completion } of pairOperations(history)) {
    if (typeof invoke.process !== 'number') continue;
    const tally = (counts[invoke.f] ??= { ok: 0, fail: 0, info: 0, incomplete: 0 });
    const type = completion === undefined || completion.type === 'invoke' ? 'incomplete' : completion.type;
    tally[type] += 1;
    const bucket = faults.some((fault) => invoke.timeMs >= fault.startMs && invoke.timeMs <= fault.endMs) ? during : outside;
    bucket.invoked += 1;
    if (type === 'ok') bucket.ok += 1;
    if (completion === undefined || type === 'incomplete') continue;
    const latencyMs = completion.timeMs - invoke.timeMs;
    (latencies.get(invoke.f) ?? latencies.set(invoke.f, []).get(invoke.f))?.push(latencyMs);
    if (type === 'ok') (okLatencies.get(invoke.f) ?? okLatencies.set(invoke.f, []).get(invoke.f))?.push(latencyMs);
  }
  const summarise = (map: Map<string, number[]>): Record<string, LatencySummary> =>
    Object.fromEntries([...map].sort(([left], [right]) => left.localeCompare(right)).map(([f, list]) => [f, summariseLatency(list)]));
  return {
    valid: true,
    counts,
    latency: summarise(latencies),
    latencyOk: summarise(okLatencies),
    availability: { duringFaults: availability(during.invoked, during.ok), outsideFaults: availability(outside.invoked, outside.ok) },
    faults: faults.length,
    faultTimeMs: Math.round(faults.reduce((sum, fault) => sum + (fault.endMs - fault.startMs), 0)),
  };
}
