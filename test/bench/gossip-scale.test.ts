/**
 * Goal: the gossip-scale bench (bench/gossip-scale.ts) produces every figure issue 21 names for
 * SWIM and for the model of the whole-view gossip it replaced, from runs small enough for the
 * fast lane; SWIM's messages stay under their cap, and the model's closed-form frame size is what
 * the retired encoder gave. Not a speed test, and no figure of the large runs is asserted here.
 */
import { describe, expect, it } from 'vitest';
import { legacyGossipFrameBytes, measureLegacy } from '../../bench/legacy-gossip-model.js';
import { type SwimRunProgress, measureSwim } from '../../bench/swim-scale.js';
import { defaultSwimConfig } from '../../src/core/membership/swim.js';

const fields = ['nodes', 'roundsToConverge', 'detectionRounds', 'falseDownCount', 'bytesPerNodePerRoundIdle', 'bytesPerNodePerRoundChurn', 'maxMessageBytes'];

describe('gossip-scale bench (smoke)', () => {
  it('measures SWIM: every figure, messages under the cap, quiet rounds far cheaper than churn', () => {
    const figures = measureSwim(12, 4000);
    for (const field of fields) expect(Number.isFinite((figures as unknown as Record<string, number>)[field]), field).toBe(true);
    expect(figures.falseDownCount).toBe(0);
    expect(figures.maxMessageBytes).toBeLessThanOrEqual(defaultSwimConfig.maxMessageBytes);
    expect(figures.bytesPerNodePerRoundIdle * 4).toBeLessThan(figures.bytesPerNodePerRoundChurn);
  });

  it('tells its progress hook every phase in order, with simulated time and events that only grow', () => {
    const seen: SwimRunProgress[] = [];
    measureSwim(12, 4000, (where) => seen.push(where));
    const phases = seen.map((where) => where.phase).filter((phase, index, all) => phase !== all[index - 1]);
    expect(phases).toEqual(['build', 'settle', 'idle', 'join', 'churn', 'detection']);
    for (let index = 1; index < seen.length; index++) {
      expect(seen[index]!.simulatedMs).toBeGreaterThanOrEqual(seen[index - 1]!.simulatedMs);
      expect(seen[index]!.events).toBeGreaterThanOrEqual(seen[index - 1]!.events);
    }
    expect(seen.at(-1)!.events).toBeGreaterThan(1000);
    expect(seen.at(-1)!.simulatedMs).toBeGreaterThan(40_000);
  });

  it('sizes the whole-view frame as the retired encoder did, and the model sends two per member per round (push and reply)', () => {
    // encodeRequest({ type: 'gossip', state }) plus the frame header, run at commit 1fb196e^ on the model's views.
    expect([10, 100, 1000, 1024].map(legacyGossipFrameBytes)).toEqual([240, 2400, 25_472, 26_120]);
    const figures = measureLegacy(12, 4000);
    for (const field of fields) expect(Number.isFinite((figures as unknown as Record<string, number>)[field]), field).toBe(true);
    expect(figures.maxMessageBytes).toBe(legacyGossipFrameBytes(12));
    expect(figures.bytesPerNodePerRoundIdle).toBeCloseTo(2 * 2 * legacyGossipFrameBytes(12), -2);
  });
});
