/**
 * The simulation's fault points (FoundationDB's BUGGIFY): each named place of
 * src/ports/fault-points.ts fires with its own probability, drawn from a seeded stream, so a
 * run that a fault broke replays from its seed. Every firing is counted and noted in the
 * scheduler's trace.
 */
import { type FaultPoint, type FaultPoints, faultPointNames } from '../ports/fault-points.js';
import type { Random } from '../ports/random.js';
import { assert } from '../util/assert.js';

/** How often one fault point fires, and how long it holds things up when it does. */
export interface FaultSetting {
  /** The chance of firing at each pass, from 0 to 1. */
  readonly probability: number;
  /** A fired delay lasts from 1 ms to this many (ignored by `peer-request-drop`); default 1,000 ms. */
  readonly maxDelayMs?: number;
}

/** The settings of the fault points a run turns on; the ones left out never fire. */
export type FaultSettings = Readonly<Partial<Record<FaultPoint, FaultSetting>>>;

/** The longest delay any fault point may add: a minute of virtual time, far past every timeout. */
const maxFaultDelayMs = 60_000;

/** Fault points that fire from a seeded stream. */
export class SeededFaultPoints implements FaultPoints {
  /** How often each point fired so far. */
  readonly fired = new Map<FaultPoint, number>();

  /** `random` is a stream of its own (a fork of the run's), so turning faults on changes no other draw; `note` adds a line to the trace. */
  constructor(
    private readonly settings: FaultSettings,
    private readonly random: Random,
    private readonly note: (line: string) => void = () => undefined,
  ) {
    for (const [point, setting] of Object.entries(settings) as [FaultPoint, FaultSetting][]) {
      assert(faultPointNames.includes(point), `unknown fault point ${point}`);
      assert(setting.probability >= 0 && setting.probability <= 1, `fault point ${point}: a probability is from 0 to 1`);
      const maxDelayMs = setting.maxDelayMs ?? 1000;
      assert(
        Number.isInteger(maxDelayMs) && maxDelayMs >= 1 && maxDelayMs <= maxFaultDelayMs,
        `fault point ${point}: maxDelayMs is an integer from 1 to ${maxFaultDelayMs}`,
      );
    }
  }

  /** True when the point fires on this pass (a draw from the seed, only for points that are on). */
  fires(point: FaultPoint): boolean {
    const setting = this.settings[point];
    if (setting === undefined || setting.probability === 0 || this.random.next() >= setting.probability) return false;
    this.fired.set(point, (this.fired.get(point) ?? 0) + 1);
    if (point === 'peer-request-drop') this.note(`fault ${point}`);
    return true;
  }

  /** The delay this pass gets: 0, or from 1 ms to the point's maxDelayMs when it fires. */
  delayMs(point: FaultPoint): number {
    if (!this.fires(point)) return 0;
    const delayMs = 1 + this.random.int(this.settings[point]?.maxDelayMs ?? 1000);
    this.note(`fault ${point} ${delayMs} ms`);
    return delayMs;
  }

  /** How many times any point fired. */
  get totalFired(): number {
    let total = 0;
    for (const count of this.fired.values()) total += count;
    return total;
  }
}
