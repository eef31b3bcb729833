/**
 * Goal: the gossip-scale bench (bench/gossip-scale.ts) produces every figure issue 21 names, for
 * SWIM and for the model of today's gossip, from runs small enough for the slow lane; SWIM's
 * messages stay under their cap, and the legacy model's bytes are what its rule says (two
 * push-pull exchanges a round, each a request and a reply carrying the whole view). Not a speed
 * test, and no figure of the 1,000-member runs is asserted here.
 */
import { describe, expect, it } from 'vitest';
import { legacyGossipFrameBytes, measureLegacy } from '../../bench/legacy-gossip-model.js';
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

  it('models the legacy gossip: two exchanges of whole views per member per round', () => {
    const figures = measureLegacy(12, 4000);
    for (const field of fields) expect(Number.isFinite((figures as unknown as Record<string, number>)[field]), field).toBe(true);
    expect(figures.maxMessageBytes).toBe(legacyGossipFrameBytes(12));
    expect(figures.bytesPerNodePerRoundIdle).toBe(4 * legacyGossipFrameBytes(12));
    expect(legacyGossipFrameBytes(120)).toBeGreaterThan(9 * legacyGossipFrameBytes(12));
  });
});
