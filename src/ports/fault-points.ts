/**
 * Seeded fault points, FoundationDB's BUGGIFY: named places in engine code where a simulation
 * may make something go wrong that rarely goes wrong on a test machine (a slow disk, a lost or
 * late peer message, a late timer), each with a probability drawn from the run's seed, so a
 * failure it provokes replays from that seed. Production wires `noFaultPoints`: nothing fires.
 */

/**
 * The named places (src/engine/fault-points.ts wraps the ports with them):
 * - `storage-write`: a write to the node's storage (any space) starts late, as on a slow disk;
 * - `peer-request-drop`: a request to a peer is lost on the way; its sender hears a timeout;
 * - `peer-request-delay`: a request to a peer arrives late, possibly after its sender gave up;
 * - `timer`: a timer of the node (a periodic round, a retry, a deadline) fires late, as on a
 *   starved event loop.
 */
export type FaultPoint = 'storage-write' | 'peer-request-drop' | 'peer-request-delay' | 'timer';

/** Every fault point, in one list (for settings and reports). */
export const faultPointNames: readonly FaultPoint[] = ['storage-write', 'peer-request-drop', 'peer-request-delay', 'timer'];

/** Where a fault fires: asked at each pass through a fault point. */
export interface FaultPoints {
  /** True when the fault at `point` fires on this pass. */
  fires(point: FaultPoint): boolean;
  /** How long the fault at `point` holds this pass up, in milliseconds: 0 when it does not fire. */
  delayMs(point: FaultPoint): number;
}

/** Production's fault points: none ever fires. It holds no state, so nothing in production can turn one on. */
export const noFaultPoints: FaultPoints = Object.freeze({
  fires: () => false,
  delayMs: () => 0,
});
