/**
 * A rolling window of the requests one node answered, for the dashboard: rates and latency
 * percentiles over the last minute. Prometheus histograms are cumulative since start and
 * coarse-bucketed, which answers "how is it going now" badly; this keeps one slot per second,
 * each with a bounded sample of latencies, so memory stays fixed whatever the request rate.
 */

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
  /** Seen so far in this slot, for reservoir sampling. */
  seen: number;
  readonly samplesMs: number[];
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
    /** Latency samples kept per operation per second; beyond it a uniform sample is kept (reservoir sampling). */
    private readonly maxSamplesPerSlot = 1000,
    private readonly random: () => number = Math.random,
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
      figures = { count: 0, errors: 0, seen: 0, samplesMs: [] };
      slot.operations.set(operation, figures);
    }
    figures.count += 1;
    if (statusCode >= 500) figures.errors += 1;
    figures.seen += 1;
    if (figures.samplesMs.length < this.maxSamplesPerSlot) {
      figures.samplesMs.push(durationMs);
    } else {
      const index = Math.floor(this.random() * figures.seen);
      if (index < this.maxSamplesPerSlot) figures.samplesMs[index] = durationMs;
    }
  }

  /** Rates and percentiles as of `nowMs`. */
  summary(nowMs: number): RequestSummary {
    const now = Math.floor(nowMs / 1000);
    const live = this.slots.filter((slot) => slot.second > now - this.windowSeconds && slot.second <= now);
    const perSecond = Array.from({ length: this.windowSeconds }, () => 0);
    const totals = new Map<string, { count: number; errors: number; recent: number; samplesMs: number[] }>();
    const add = (name: string, figures: OperationSlot, recent: boolean): void => {
      let total = totals.get(name);
      if (total === undefined) {
        total = { count: 0, errors: 0, recent: 0, samplesMs: [] };
        totals.set(name, total);
      }
      total.count += figures.count;
      total.errors += figures.errors;
      if (recent) total.recent += figures.count;
      total.samplesMs.push(...figures.samplesMs);
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
      const sorted = total.samplesMs.sort((left, right) => left - right);
      operations[name] = {
        count: total.count,
        errors: total.errors,
        ratePerSecond: Math.round((total.recent / this.rateSeconds) * 100) / 100,
        latencyMsP50: percentile(sorted, 0.5),
        latencyMsP95: percentile(sorted, 0.95),
        latencyMsP99: percentile(sorted, 0.99),
        latencyMsMax: sorted.length === 0 ? null : round(sorted[sorted.length - 1] as number),
      };
    }
    return { windowSeconds: this.windowSeconds, rateSeconds: this.rateSeconds, operations, perSecond };
  }
}

function round(valueMs: number): number {
  return Math.round(valueMs * 1000) / 1000;
}

/** The nearest-rank percentile of sorted samples. */
function percentile(sorted: readonly number[], fraction: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil(fraction * sorted.length));
  return round(sorted[rank - 1] as number);
}
