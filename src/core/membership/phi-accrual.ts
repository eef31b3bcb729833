/**
 * The phi accrual failure detector (Hayashibara et al., as Cassandra and Akka use it). Instead
 * of a yes/no timeout it gives a suspicion level phi = -log10(P(a heartbeat is still coming)),
 * from the observed distribution of heartbeat intervals; a node is judged down when phi passes
 * a threshold (8 by default: a one in 10^8 chance of being wrong under the model).
 */

/** Tuning of a detector. */
export interface PhiAccrualOptions {
  /** How many recent intervals the distribution is estimated from. */
  readonly windowSize: number;
  /** A floor under the standard deviation, so a very regular peer is not judged down on a small delay. */
  readonly minStdDeviationMs: number;
  /** Extra pause tolerated on top of the mean (GC pauses, a slow gossip round). */
  readonly acceptableHeartbeatPauseMs: number;
  /** The interval assumed before any has been observed. */
  readonly firstHeartbeatEstimateMs: number;
}

/** The detector's state for one peer. */
export interface PhiAccrualState {
  readonly options: PhiAccrualOptions;
  readonly intervalsMs: readonly number[];
  readonly lastHeartbeatMs: number | undefined;
  /** Mean and standard deviation of the intervals, kept with them: phi is asked on every request, heartbeats come once a second. */
  readonly meanMs: number;
  readonly deviationMs: number;
}

function withDistribution(options: PhiAccrualOptions, intervalsMs: readonly number[], lastHeartbeatMs: number | undefined): PhiAccrualState {
  const meanMs = intervalsMs.reduce((sum, value) => sum + value, 0) / intervalsMs.length;
  const variance = intervalsMs.reduce((sum, value) => sum + (value - meanMs) ** 2, 0) / intervalsMs.length;
  return { options, intervalsMs, lastHeartbeatMs, meanMs, deviationMs: Math.max(Math.sqrt(variance), options.minStdDeviationMs) };
}

/** A detector that has seen no heartbeat yet, seeded with the first estimate (as Akka does). */
export function createDetector(options: PhiAccrualOptions): PhiAccrualState {
  const estimate = options.firstHeartbeatEstimateMs;
  const spread = estimate / 4;
  return withDistribution(options, [estimate - spread, estimate + spread], undefined);
}

/** Records a heartbeat arriving at `nowMs`. */
export function heartbeat(state: PhiAccrualState, nowMs: number): PhiAccrualState {
  if (state.lastHeartbeatMs === undefined) return { ...state, lastHeartbeatMs: nowMs };
  const interval = Math.max(0, nowMs - state.lastHeartbeatMs);
  return withDistribution(state.options, [...state.intervalsMs, interval].slice(-state.options.windowSize), nowMs);
}

/** The suspicion level at `nowMs`: 0 right after a heartbeat, rising while none arrives. */
export function phi(state: PhiAccrualState, nowMs: number): number {
  if (state.lastHeartbeatMs === undefined) return 0;
  const elapsed = nowMs - state.lastHeartbeatMs;
  const y = (elapsed - (state.meanMs + state.options.acceptableHeartbeatPauseMs)) / state.deviationMs;
  // A logistic approximation of the normal CDF (as Akka's detector uses), computed on the tail
  // side so that large y does not round 1 - cdf to zero.
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  const tail = y > 0 ? e / (1 + e) : 1 - 1 / (1 + e);
  return tail <= 0 ? Number.MAX_VALUE : -Math.log10(tail);
}
