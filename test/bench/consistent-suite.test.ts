/**
 * Goal: the consistent suite's CAS phase (`npm run bench -- --suite consistent`, issue 22 "Cost")
 * drives real contention on one key of a consistent bucket through RingClient, and its check
 * holds: the count read back after the phase covers every increment acknowledged and nothing
 * beyond the unknown answers. Its cost ratios are sums over rounds. Not a speed test: no figure
 * is asserted beyond "increments were acknowledged".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadResult } from '../../bench/load-generator.js';
import { removeTemporaryFolder, temporaryFolder } from '../../bench/processes.js';
import { consistentBucket, consistentCosts, runCas } from '../../bench/suites/consistent.js';
import { type RunningTarget, startRingkv, stopTarget } from '../../bench/targets.js';

function result(opsPerSecond: number, serversPercent: number, p99: number): LoadResult {
  const durationSeconds = 10;
  return {
    opsPerSecond,
    okCount: opsPerSecond * durationSeconds,
    durationSeconds,
    cpu: { serversPercent, benchPercent: 0, otherPercent: 0 },
    latency: { latencyMsP99: p99 },
  } as unknown as LoadResult;
}

describe('bench consistent suite', () => {
  it('gives consistent over plain as ratios of sums over the rounds: throughput, server CPU per PUT, p99', () => {
    const costs = consistentCosts([
      { phase: 'plain 1', bucket: 'bench', result: result(300, 150, 20) },
      { phase: 'consistent 1', bucket: consistentBucket, result: result(100, 100, 60) },
      { phase: 'plain 2', bucket: 'bench', result: result(500, 150, 20) },
      { phase: 'consistent 2', bucket: consistentBucket, result: result(100, 100, 40) },
    ]);
    expect(costs.throughput).toBeCloseTo(800 / 200);
    // CPU-s per PUT: plain 1.5*10/3000 + 1.5*10/5000 = 0.008; consistent 2 * (10/1000) = 0.02.
    expect(costs.cpuPerOperation).toBeCloseTo(0.02 / 0.008);
    expect(costs.p99).toBeCloseTo(100 / 40);
    expect(consistentCosts([{ phase: 'plain 1', bucket: 'bench', result: result(300, 150, 20) }]).throughput).toBeUndefined();
  });

  describe('on 3 real nodes', () => {
    const dataRoot = temporaryFolder('ringkv-bench-consistent-');
    let target: RunningTarget | undefined;
    beforeAll(async () => {
      target = await startRingkv({
        name: 'consistent-smoke',
        nodeCount: 3,
        nVal: 3,
        dataRoot,
        config: { buckets: { [consistentBucket]: { consistent: true } } },
      });
    });
    afterAll(async () => {
      if (target !== undefined) await stopTarget(target);
      removeTemporaryFolder(dataRoot, false);
    });

    it('increments one key from 4 clients by read then If-Match, and reads back every acknowledged increment', async () => {
      const cas = await runCas(target as RunningTarget, 4, 3, 60_000);
      expect(cas.acknowledged, JSON.stringify(cas)).toBeGreaterThan(0);
      expect({ lost: cas.lost, unexplained: cas.unexplained }, JSON.stringify(cas)).toEqual({ lost: 0, unexplained: 0 });
      expect(cas.finalCount).toBeGreaterThanOrEqual(cas.acknowledged);
      expect(cas.finalCount).toBeLessThanOrEqual(cas.acknowledged + cas.unknown);
    });
  });
});
