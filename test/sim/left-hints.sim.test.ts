import { describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { type Ring, preferenceList } from '../../src/core/ring/ring.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: a hint for a node that has left the cluster (or was removed) reaches the key's replicas
 * under the ring without that node, instead of waiting out the hint window and being dropped:
 * the hinted write may be on fewer replicas than its write quorum otherwise. Anti-entropy is off,
 * and hint rounds run only when the test asks, so the hints alone must carry the writes.
 * Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 2);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 7400 + index);

const config = {
  antiEntropy: { enabled: false },
  // Rounds an hour apart: the test runs them itself once the node is gone.
  hintedHandoff: { intervalMs: 3_600_000 },
  handoff: { intervalMs: 200, cleanupDelayMs: 1000 },
  buckets: { small: { nVal: 2 } },
};

async function localValues(member: SimMember, bucket: string, key: string): Promise<string[]> {
  const object = await member.node.getLocal(bucket, key);
  return object === undefined ? [] : liveSiblings(object).map((sibling) => Buffer.from(sibling.value).toString());
}

describe('simulation: hints for a node that left', () => {
  it.each(seeds.flatMap((seed) => (['leave', 'remove'] as const).map((how) => [seed, how] as const)))(
    "seed %i (%s): are delivered to the key's new replicas",
    async (seed, how) => {
      const cluster = await SimCluster.start(seed, 4, config);
      try {
        const gone = cluster.members[1] as SimMember;
        const stayers = cluster.members.filter((member) => member !== gone);
        await cluster.crash(gone);
        await cluster.runUntil(() => stayers.every((member) => !member.node.gossiper.isUp(gone.nodeId)), 30_000, 'the node is judged down');
        // Writes while it is down: its share goes to fallbacks as hints.
        const written: { bucket: string; key: string }[] = [];
        for (const bucket of ['plain', 'small']) {
          for (let index = 0; index < 40; index++) {
            const key = `${bucket}-${index}`;
            await cluster.drive(
              stayers[index % 3]!.node.put({ bucket, key, value: Buffer.from(`v-${key}`), contentType: 'text/plain', context: undefined, options: { w: 1 } }),
            );
            written.push({ bucket, key });
          }
        }
        const held = (): number => stayers.reduce((sum, member) => sum + (member.node.hintStore.pendingByTarget()[gone.nodeId] ?? 0), 0);
        expect(held(), `seed ${seed}: writes while the node was down left hints for it`).toBeGreaterThan(0);
        if (how === 'leave') {
          // It comes back (its hints stay where they are: no hint round runs) and leaves.
          await cluster.restart(gone);
          await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'the node is back');
          let left = false;
          gone.node.onLeft = () => {
            left = true;
          };
          await gone.node.leave();
          await cluster.runUntil(() => left, 120_000, 'the node hands off and leaves');
          await cluster.crash(gone);
        } else {
          stayers[0]!.node.removeMember(gone.nodeId);
        }
        await cluster.runUntil(
          () => stayers.every((member) => member.node.gossiper.ring?.next === null && !member.node.gossiper.ring.owners.includes(gone.nodeId)),
          120_000,
          'the ring without the node',
        );
        for (const member of stayers) await cluster.drive(member.node.hintedHandoffService.deliverHints());
        expect(held(), `seed ${seed}: hints still waiting for the node that is gone`).toBe(0);
        const ring = stayers[0]!.node.gossiper.ring as Ring;
        const missing: string[] = [];
        for (const { bucket, key } of written) {
          const replicas = preferenceList(ring, partitionOf(bucket, key, ring.partitionCount), bucket === 'small' ? 2 : 3);
          for (const nodeId of replicas) {
            const member = stayers.find((candidate) => candidate.nodeId === nodeId) as SimMember;
            if ((await localValues(member, bucket, key)).length === 0) missing.push(`${bucket}/${key}@${nodeId}`);
          }
        }
        expect(missing, `seed ${seed}: replicas without a write whose hint was for the node that is gone`).toEqual([]);
      } finally {
        await cluster.stop();
      }
    },
  );
});
