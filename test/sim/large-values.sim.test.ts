import type { HandoffStatus } from '../../src/engine/handoff.js';
import { describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { incomingTransfers, planClaim, preferenceList, ringMembers } from '../../src/core/ring/ring.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Large values do not stall a ring change: a partition holding a hundred values of 8 MiB
 * (800 MiB, more than any single string or JSON text can hold) streams to a joining node page by
 * page, the join completes, and the old owner hands the partition off and deletes it. One
 * replica per key (n_val 1) keeps the simulation's memory to two copies of the data.
 */

const valueBytes = 8 * 1024 * 1024;
const valueCount = 100;

describe('simulation: a join with large values', () => {
  it(`a partition of ${valueCount} values of 8 MiB streams to a joining node and the join completes`, { timeout: 600_000 }, async () => {
    const cluster = await SimCluster.start(6100, 2, {
      bucketDefaults: { nVal: 1, r: 1, w: 1 },
      limits: { maxValueBytes: valueBytes, peerTimeoutMs: 2000 },
      antiEntropy: { enabled: false },
      handoff: { intervalMs: 200, cleanupDelayMs: 1000 },
    });
    try {
      const [first] = cluster.members as [SimMember, SimMember];
      // The claim is deterministic: find a partition the third node will take over, and fill it.
      const ring = first.node.gossiper.ring!;
      const planned = planClaim(ring, [...ringMembers(ring), 'node3'].sort());
      const partition = incomingTransfers(planned, 'node3', [1])[0]!.partition;
      const source = preferenceList(ring, partition, 1)[0]!;
      const keys: string[] = [];
      for (let candidate = 0; keys.length < valueCount; candidate++) {
        if (partitionOf('big', `key-${candidate}`, ring.partitionCount) === partition) keys.push(`key-${candidate}`);
      }
      for (const [index, key] of keys.entries()) {
        const value = Buffer.alloc(valueBytes, index);
        await cluster.drive(first.node.put({ bucket: 'big', key, value, contentType: 'application/octet-stream', context: undefined, options: { w: 1 } }));
      }
      const joiner = await cluster.addMember();
      await cluster.runUntil(
        () => cluster.ringSettled() && preferenceList(joiner.node.gossiper.ring!, partition, 1)[0] === joiner.nodeId,
        300_000,
        'the join completes and the joiner owns the large partition',
      );
      const sourceMember = cluster.members.find((member) => member.nodeId === source)!;
      await cluster.runUntil(
        () => !sourceMember.node.antiEntropyService.heldPartitions().includes(partition),
        120_000,
        'the old owner hands the partition off',
      );
      for (const [index, key] of keys.entries()) {
        const local = await joiner.node.getLocal('big', key);
        const sibling = local?.siblings[0];
        expect(sibling?.value.byteLength, key).toBe(valueBytes);
        expect(sibling?.value[valueBytes - 1], key).toBe(index % 256);
      }
      expect(((await joiner.node.status()).handoff as HandoffStatus).keysReceived).toBe(valueCount);
    } finally {
      await cluster.stop();
    }
  });
});
