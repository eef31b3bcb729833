import { describe, expect, it } from 'vitest';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: an idle cluster stays quiet (README, "Anti-entropy"; `npm run bench:idle`). Once the ring
 * has settled and nothing is written, the peer messages of every background role together
 * (anti-entropy, hints, handoff, the lease sweeper's walk, watches) stay under a small budget
 * per node per second, besides membership (SWIM's probes and digests, which have their own
 * figures in bench/RESULTS.md). The lease sweeper's walk once listed every partition it sweeps at
 * each 500 ms sweep (here, 32 partitions: 19 requests a second per node, against 3.4 paced), and
 * no test saw it. Counts messages over virtual time, never wall-clock time. Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 2);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 5300 + index);

/** Requests a second per node that the background roles of an idle node may send, membership aside. */
const idleBudgetPerNodeSecond = 6;

const membership = new Set(['swim-ping', 'swim-ping-req', 'swim-gossip', 'swim-digest', 'swim-records', 'cluster-state']);

describe('simulation: an idle cluster is quiet', () => {
  it.each(seeds)('seed %i: the background roles of an idle 3-node cluster send at most a few requests a second per node', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, {});
    try {
      await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles');
      // Let the first full comparisons and the start-up work pass.
      await cluster.clock.advance(15_000);
      const seen = new Map<string, number>();
      for (const member of cluster.members) {
        cluster.network.register(member.address, async (request) => {
          if (!membership.has(request.type)) seen.set(request.type, (seen.get(request.type) ?? 0) + 1);
          return member.node.handlePeer(request);
        });
      }
      const seconds = 20;
      await cluster.clock.advance(seconds * 1000);
      const total = [...seen.values()].reduce((sum, count) => sum + count, 0);
      const perNodeSecond = total / cluster.members.length / seconds;
      const breakdown = [...seen].map(([type, count]) => `${type} ${count}`).join(', ');
      expect(perNodeSecond, `seed ${seed}: ${total} requests in ${seconds} s of an idle 3-node cluster (${breakdown || 'none'})`).toBeLessThanOrEqual(
        idleBudgetPerNodeSecond,
      );
    } finally {
      await cluster.stop();
    }
  });
});
