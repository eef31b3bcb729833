import { describe, expect, it } from 'vitest';
import { ringMembers } from '../../src/core/ring/ring.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: hints for a node that was removed from the cluster leave its queue within a few hint
 * rounds (it will never take them: its id stays removed), handed to the key's replicas under the
 * new ring instead of being retried until the hint window runs out (test/sim/left-hints.sim.test.ts
 * checks that those replicas hold them).
 */
describe('hints for a removed node', () => {
  it.each([1, 2])('seed %i: leave the queue once the node is removed, and the writes stay readable', async (seed) => {
    const cluster = await SimCluster.start(seed, 4);
    try {
      const lost = cluster.members[1] as SimMember;
      const stayers = cluster.members.filter((member) => member !== lost);
      await cluster.crash(lost);
      await cluster.runUntil(() => stayers.every((member) => !member.node.gossiper.isUp(lost.nodeId)), 30_000, 'the lost node is judged down');
      for (let index = 0; index < 40; index++) {
        await cluster.drive(
          stayers[index % 3]!.node.put({
            bucket: 'h',
            key: `k${index}`,
            value: Buffer.from(`v${index}`),
            contentType: 'text/plain',
            context: undefined,
            options: { w: 2 },
          }),
        );
      }
      const held = (): number => stayers.reduce((sum, member) => sum + (member.node.hintStore.pendingByTarget()[lost.nodeId] ?? 0), 0);
      expect(held(), 'writes while the node was down left hints for it').toBeGreaterThan(0);
      stayers[0]!.node.removeMember(lost.nodeId);
      await cluster.runUntil(
        () => stayers.every((member) => member.node.gossiper.ring?.next === null && !ringMembers(member.node.gossiper.ring!).includes(lost.nodeId)),
        120_000,
        'the ring without the removed node',
      );
      // A few hint rounds (1 s each here), far less than the 3 h hint window.
      await cluster.runUntil(() => held() === 0, 10_000, 'hints for the removed node leave the queue');
      for (let index = 0; index < 40; index++) {
        const read = await cluster.drive(stayers[0]!.node.get('h', `k${index}`, { r: 2 }));
        expect(
          read?.siblings.map((sibling) => Buffer.from(sibling.value).toString()),
          `k${index}`,
        ).toEqual([`v${index}`]);
      }
    } finally {
      await cluster.stop();
    }
  });
});
