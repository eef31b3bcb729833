/**
 * A rolling window of the requests one node answered, for the dashboard: rates and latency
 * percentiles over the last minute. Prometheus histograms are cumulative since start and
 * coarse-bucketed, which answers "how is it going now" badly; this keeps one slot per second,
 * each with an HDR histogram of latencies per operation (hdr-histogram-js, the histogram the
 * bench uses too), so memory stays fixed whatever the request rate and every request counts.
 */
import * as hdr from 'hdr-histogram-js';

/** Per-operation figures over the window. */
export interface OperationFigures {
  /** Requests answered in the whole window. */
  readonly count: number;
  /** Of those, answers with a 5xx status. */
  readonly errors: number;
  /** Requests per second over the last `rateSeconds`. */
  readonly ratePerSecond: number;
  readonly latencyMsP50: number | null;
  readonly latencyMsP95: number | null;
  readonly latencyMsP99: number | null;
  readonly latencyMsMax: number | null;
}

/** What the dashboard shows about requests. */
export interface RequestSummary {
  readonly windowSeconds: number;
  readonly rateSeconds: number;
  /** Figures per operation (get, put, delete, ...) and for all of them together under 'all'. */
  readonly operations: Readonly<Record<string, OperationFigures>>;
  /** Requests per second, one entry per second of the window, oldest first (the last is the second under way). */
  readonly perSecond: readonly number[];
}

interface OperationSlot {
  count: number;
  errors: number;
  /** Latencies in microseconds. */
  readonly latenciesUs: hdr.Histogram;
}

/** Microseconds per millisecond: latencies are recorded as whole microseconds. */
const microsecondsPerMillisecond = 1000;
/** The longest latency told apart (one hour); a longer one is recorded as this. */
const highestLatencyUs = 3_600_000_000;

/** Three significant digits: a percentile is within 0.1% of the latency it stands for. */
function newLatencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: highestLatencyUs, numberOfSignificantValueDigits: 3, bitBucketSize: 'packed' });
}

interface Slot {
  second: number;
  readonly operations: Map<string, OperationSlot>;
}

/** The rolling window; `record` on every answer, `summary` when the dashboard asks. */
export class RequestWindow {
  private readonly slots: Slot[];

  constructor(
    /** How far back percentiles and the per-second series look. */
    readonly windowSeconds = 60,
    /** How far back the rate looks: short enough to follow a change within seconds. */
    readonly rateSeconds = 10,
  ) {
    this.slots = Array.from({ length: windowSeconds }, () => ({ second: -1, operations: new Map<string, OperationSlot>() }));
  }

  /** Records one answered request. */
  record(operation: string, durationMs: number, statusCode: number, nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    const slot = this.slots[second % this.windowSeconds] as Slot;
    if (slot.second !== second) {
      slot.second = second;
      slot.operations.clear();
    }
    let figures = slot.operations.get(operation);
    if (figures === undefined) {
      figures = { count: 0, errors: 0, latenciesUs: newLatencyHistogram() };
      slot.operations.set(operation, figures);
    }
    figures.count += 1;
    if (statusCode >= 500) figures.errors += 1;
    const latencyUs = Math.round(durationMs * microsecondsPerMillisecond);
    figures.latenciesUs.recordValue(Math.min(Math.max(latencyUs, 1), highestLatencyUs));
  }

  /** Rates and percentiles as of `nowMs`. */
  summary(nowMs: number): RequestSummary {
    const now = Math.floor(nowMs / 1000);
    const live = this.slots.filter((slot) => slot.second > now - this.windowSeconds && slot.second <= now);
    const perSecond = Array.from({ length: this.windowSeconds }, () => 0);
    const totals = new Map<string, { count: number; errors: number; recent: number; latenciesUs: hdr.Histogram }>();
    const add = (name: string, figures: OperationSlot, recent: boolean): void => {
      let total = totals.get(name);
      if (total === undefined) {
        total = { count: 0, errors: 0, recent: 0, latenciesUs: newLatencyHistogram() };
        totals.set(name, total);
      }
      total.count += figures.count;
      total.errors += figures.errors;
      if (recent) total.recent += figures.count;
      total.latenciesUs.add(figures.latenciesUs);
    };
    for (const slot of live) {
      const recent = slot.second > now - this.rateSeconds;
      for (const [name, figures] of slot.operations) {
        add(name, figures, recent);
        add('all', figures, recent);
        perSecond[this.windowSeconds - 1 - (now - slot.second)]! += figures.count;
      }
    }
    const operations: Record<string, OperationFigures> = {};
    for (const [name, total] of totals) {
      const latencies = total.latenciesUs;
      operations[name] = {
        count: total.count,
        errors: total.errors,
        ratePerSecond: Math.round((total.recent / this.rateSeconds) * 100) / 100,
        latencyMsP50: percentileMs(latencies, 50),
        latencyMsP95: percentileMs(latencies, 95),
        latencyMsP99: percentileMs(latencies, 99),
        latencyMsMax: latencies.totalCount === 0 ? null : latencies.maxValue / microsecondsPerMillisecond,
      };
    }
    return { windowSeconds: this.windowSeconds, rateSeconds: this.rateSeconds, operations, perSecond };
  }
}

/** A percentile (0-100) of recorded latencies in milliseconds, or null when none were recorded. */
function percentileMs(latenciesUs: hdr.Histogram, percentile: number): number | null {
  if (latenciesUs.totalCount === 0) return null;
  return latenciesUs.getValueAtPercentile(percentile) / microsecondsPerMillisecond;
}
