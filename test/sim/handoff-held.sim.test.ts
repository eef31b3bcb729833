import { describe, expect, it } from 'vitest';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: a receiver can ask a source which partitions it holds keys of (`handoff-held`), so empty
 * partitions are marked done at once and a new cluster forms in round trips; the question goes
 * through the node's peer dispatch, not around it.
 */
describe('handoff-held through the peer dispatch', () => {
  it('answers which of the asked partitions hold keys', async () => {
    const cluster = await SimCluster.start(11, 1);
    try {
      const node = cluster.members[0]!.node;
      await cluster.drive(node.put({ bucket: 'b', key: 'k', value: Buffer.from('v'), contentType: 'text/plain', context: undefined, options: {} }));
      const partitionCount = node.gossiper.ring!.partitionCount;
      const reply = await cluster.drive(node.handlePeer({ type: 'handoff-held', partitions: Array.from({ length: partitionCount }, (_, index) => index) }));
      expect(reply).toEqual({ type: 'handoff-held-reply', held: [expect.any(Number)] });
      // A partition outside the ring is refused before any scan, as every handoff request is.
      const outside = await cluster.drive(node.handlePeer({ type: 'handoff-held', partitions: [0, partitionCount] }));
      expect(outside).toMatchObject({ type: 'error', code: 'KV_BAD_REQUEST' });
    } finally {
      await cluster.stop();
    }
  });
});
