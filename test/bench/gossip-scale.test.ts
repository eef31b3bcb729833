/**
 * Goal: the gossip-scale bench (bench/gossip-scale.ts) produces every figure issue 21 names for
 * SWIM, from runs small enough for the slow lane, and SWIM's messages stay under their cap. Not a
 * speed test, and no figure of the 1,000-member runs is asserted here.
 */
import { describe, expect, it } from 'vitest';
import { measureSwim } from '../../bench/swim-scale.js';
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
});
