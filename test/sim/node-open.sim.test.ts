import { describe, expect, it } from 'vitest';
import { RingNode } from '../../src/engine/ring-node.js';
import { noFaultPoints } from '../../src/ports/fault-points.js';
import { silentLogger } from '../../src/ports/logger.js';
import { NodeClock } from '../../src/sim/node-clock.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: `RingNode.open` builds a node's whole context before any of its roles runs. A node
 * opened on a disk that has been in a cluster holds the cluster view it persisted (its ring and
 * members) before `start`, and what reads the gossiper (the status report, a request that needs
 * the ring) answers from it, instead of failing on a gossiper that does not exist yet.
 */
describe('simulation: a node opened on its disk', () => {
  it('knows the ring it persisted, and reports it, before it starts', async () => {
    const cluster = await SimCluster.start(9100, 3);
    try {
      const member = cluster.members[1] as SimMember;
      const ringBefore = member.node.gossiper.ring;
      expect(ringBefore).not.toBeNull();
      // A process crash keeps the disk whole, with the view the node persisted when its ring changed.
      await cluster.crash(member);
      const clock = new NodeClock(cluster.clock, member.clockError);
      const node = await cluster.drive(
        RingNode.open({
          identity: { nodeId: member.nodeId, generation: member.generation + 1, clusterSecret: 'simulation-secret-0123456789', address: member.address },
          config: { ...cluster.config, seeds: [cluster.members[0]!.address] },
          storage: member.storage,
          transport: cluster.network.transportFor(member.address, clock),
          clock,
          random: cluster.random.fork(),
          logger: silentLogger,
          faultPoints: noFaultPoints,
        }),
      );

      expect(node.gossiper.ring?.version, 'the ring version read from disk').toBe(ringBefore?.version);
      expect(node.gossiper.ring?.owners, 'the ring owners read from disk').toEqual(ringBefore?.owners);
      const status = await node.status();
      expect(status.members.map((memberStatus) => memberStatus.id).sort(), 'the members /status shows before start').toEqual(
        cluster.members.map((other) => other.nodeId).sort(),
      );
      await node.stop();
    } finally {
      await cluster.stop();
    }
  });
});
