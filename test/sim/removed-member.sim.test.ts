import { describe, expect, it } from 'vitest';
import { ringMembers } from '../../src/core/ring/ring.js';
import { emptyContext } from '../../src/core/versioning/context.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * A node removed with `ringkv remove` stays removed: when it restarts (with a higher generation)
 * it is not taken back into the membership or the ring, it learns that it was removed and stops
 * serving, and the data it still holds (here a key the others no longer have, as after a delete
 * whose tombstone was reaped) is not pushed back into the cluster. Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 4);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 5200 + index);

const config = {
  antiEntropy: { enabled: true, intervalMs: 1000, tombstoneGraceMs: 10_800_000, maxKeysPerSecond: 100_000 },
  handoff: { intervalMs: 200, batchSize: 50, cleanupDelayMs: 1000 },
};

describe('simulation: a removed node that restarts', () => {
  it.each(seeds)('seed %i: stays removed, stops serving, and pushes none of its data back', async (seed) => {
    const cluster = await SimCluster.start(seed, 4, config);
    try {
      const lost = cluster.members[1] as SimMember;
      const stayers = cluster.members.filter((member) => member !== lost);
      // A key only the removed node will still hold (the others never get it), written to its own disk before it goes.
      await cluster.drive(
        lost.node.localReplica.coordinateWrite(
          'stale',
          'reaped-elsewhere',
          { value: Buffer.from('old'), contentType: 'text/plain', tombstone: false, context: emptyContext, nowMs: cluster.clock.nowMs() },
          'siblings',
          false,
        ),
      );

      await cluster.crash(lost);
      await cluster.runUntil(() => stayers.every((member) => !member.node.gossiper.isUp(lost.nodeId)), 30_000, 'the lost node is judged down');
      stayers[0]!.node.removeMember(lost.nodeId);
      await cluster.runUntil(
        () => stayers.every((member) => member.node.gossiper.ring?.next === null && !ringMembers(member.node.gossiper.ring).includes(lost.nodeId)),
        120_000,
        'the ring of the three others',
      );
      await cluster.restart(lost);
      // Long enough for claims, handoff clean-up and anti-entropy rounds to have run many times.
      await cluster.clock.advance(30_000);

      for (const member of stayers) {
        expect(member.node.gossiper.view.members[lost.nodeId]?.status, `seed ${seed}: ${member.nodeId}'s record of the removed node`).toBe('removed');
        expect(ringMembers(member.node.gossiper.ring!), `seed ${seed}: ${member.nodeId}'s ring`).not.toContain(lost.nodeId);
        expect(await member.node.getLocal('stale', 'reaped-elsewhere'), `seed ${seed}: the removed node's data on ${member.nodeId}`).toBeUndefined();
      }
      expect(lost.node.gossiper.ownStatus, `seed ${seed}: the restarted node learns it was removed`).toBe('removed');
      await expect(
        cluster.drive(lost.node.put({ bucket: 'b', key: 'k', value: Buffer.from('v'), contentType: 'text/plain', context: undefined, options: { w: 1 } })),
      ).rejects.toThrow(/removed from the cluster/);
      const peerAnswer = await cluster.drive(lost.node.handlePeer({ type: 'replica-get', bucket: 'b', key: 'k' }));
      expect(peerAnswer.type).toBe('error');
    } finally {
      await cluster.stop();
    }
  });
});
