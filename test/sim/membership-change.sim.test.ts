import { describe, expect, it } from 'vitest';
import { partitionsOwnedBy, preferenceList, ringMembers } from '../../src/core/ring/ring.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Joins, leaves and removals in simulation, under a steady write load: no acknowledged write is
 * lost or unreadable, no request fails because of the change, and the ring ends balanced.
 * Seeds replay with SIM_SEED.
 */

const seedCount = Number(process.env.SIM_SEEDS ?? 4);
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : Array.from({ length: seedCount }, (_, index) => 3000 + index);

const changeConfig = {
  antiEntropy: { enabled: true, intervalMs: 2000, tombstoneGraceMs: 10_800_000, maxKeysPerSecond: 100_000 },
  handoff: { intervalMs: 200, batchSize: 50, cleanupDelayMs: 1000 },
};

/** A client that keeps writing new keys through random live nodes until stopped; remembers what was acknowledged and what failed. */
class SteadyWriter {
  readonly acknowledged = new Map<string, string>();
  failures: string[] = [];
  private running = true;
  private sequence = 0;

  constructor(private readonly pick: () => SimMember) {}

  /** One write per call, so the test drives the pace with virtual time. */
  async step(): Promise<void> {
    if (!this.running) return;
    const key = `steady-${this.sequence++}`;
    const value = `v-${key}`;
    try {
      await this.pick().node.put({ bucket: 'load', key, value: Buffer.from(value), contentType: 'text/plain', context: undefined, options: { w: 'quorum' } });
      this.acknowledged.set(key, value);
    } catch (error) {
      this.failures.push(`${key}: ${(error as Error).message}`);
    }
  }

  stop(): void {
    this.running = false;
  }
}

/** Runs the writer while advancing virtual time until `done` holds. */
async function writeUntil(cluster: SimCluster, writer: SteadyWriter, done: () => boolean, limitMs: number, what: string): Promise<void> {
  const deadline = cluster.clock.nowMs() + limitMs;
  while (!done()) {
    if (cluster.clock.nowMs() > deadline) throw new Error(`simulation seed ${cluster.seed}: '${what}' not reached within ${limitMs} ms of virtual time`);
    await cluster.drive(Promise.all([writer.step(), writer.step(), writer.step()]));
    await cluster.clock.advance(20);
  }
}

async function expectAllReadable(cluster: SimCluster, reader: SimMember, acknowledged: Map<string, string>, seed: number): Promise<void> {
  const unreadable: string[] = [];
  for (const [key, value] of acknowledged) {
    const read = await cluster.drive(reader.node.get('load', key, { r: 'all' }));
    const values = read === undefined ? [] : liveSiblings(read).map((sibling) => Buffer.from(sibling.value).toString());
    if (values.length !== 1 || values[0] !== value) unreadable.push(`${key}=${JSON.stringify(values)}`);
  }
  expect(unreadable, `seed ${seed}: acknowledged writes not readable with r=all`).toEqual([]);
}

function settledWith(cluster: SimCluster, members: readonly SimMember[]): boolean {
  return members.every((member) => {
    const ring = member.node.gossiper.ring;
    return ring !== null && ring.next === null && ringMembers(ring).length === members.length && members.every((other) => ring.owners.includes(other.nodeId));
  });
}

describe('simulation: a node joins under load', () => {
  it.each(seeds)('seed %i: a 4th node joins a 3-node cluster; nothing acknowledged is lost, nothing fails, the ring ends balanced', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, changeConfig);
    const random = cluster.random.fork();
    try {
      const writer = new SteadyWriter(() => cluster.members.filter((member) => member.running)[random.int(3)] as SimMember);
      await writeUntil(cluster, writer, () => writer.acknowledged.size >= 150, 60_000, 'initial load');
      const before = cluster.members[0]!.node.gossiper.ring!;
      const joiner = await cluster.addMember();
      const beforeJoin = new Map(writer.acknowledged);
      await writeUntil(cluster, writer, () => settledWith(cluster, cluster.members), 300_000, 'the 4th node owns its share');
      // The ownership flipped only after the stream: the joiner already holds what it replicates.
      const flipped = joiner.node.gossiper.ring!;
      const { partitionOf } = await import('../../src/core/keys.js');
      for (const [key, value] of beforeJoin) {
        if (!preferenceList(flipped, partitionOf('load', key, flipped.partitionCount), 3).includes(joiner.nodeId)) continue;
        const local = await joiner.node.getLocal('load', key);
        expect(
          local === undefined ? [] : liveSiblings(local).map((sibling) => Buffer.from(sibling.value).toString()),
          `seed ${seed}: ${key} streamed to the joiner`,
        ).toEqual([value]);
      }
      await writeUntil(cluster, writer, () => writer.acknowledged.size >= 400, 60_000, 'load after the join');
      writer.stop();
      expect(writer.failures, `seed ${seed}: requests failed during the join`).toEqual([]);

      const after = cluster.members[0]!.node.gossiper.ring!;
      const share = after.partitionCount / 4;
      for (const member of cluster.members) {
        const owned = partitionsOwnedBy(after, member.nodeId).length;
        expect(Math.abs(owned - share), `seed ${seed}: ${member.nodeId} owns ${owned}`).toBeLessThanOrEqual(1);
      }
      const moved = after.owners.filter((owner, partition) => owner !== before.owners[partition]).length;
      expect(moved / after.partitionCount).toBeCloseTo(0.25, 1);
      expect(after.owners.filter((owner, partition) => owner !== before.owners[partition] && owner !== joiner.nodeId)).toEqual([]);
      await expectAllReadable(cluster, cluster.members[3]!, writer.acknowledged, seed);
      // Old owners hand off and delete what they no longer replicate.
      await cluster.runUntil(
        () =>
          cluster.members.every((member) =>
            member.node.antiEntropyService.heldPartitions().every((partition) => preferenceList(after, partition, 3).includes(member.nodeId)),
          ),
        120_000,
        'old replicas hand off and delete what they no longer replicate',
      );
      await expectAllReadable(cluster, cluster.members[0]!, writer.acknowledged, seed);
    } finally {
      await cluster.stop();
    }
  });
});

describe('simulation: a node joins with another partitionCount in its config', () => {
  it.each(seeds.slice(0, 2))('seed %i: it takes the ring of the cluster, and anti-entropy finds nothing to repair with it', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, changeConfig);
    try {
      const joiner = await cluster.addMember({ partitionCount: cluster.config.partitionCount * 2 });
      await cluster.runUntil(() => settledWith(cluster, cluster.members), 300_000, 'the joiner owns its share');
      for (let index = 0; index < 60; index++) {
        await cluster.drive(
          cluster.members[0]!.node.put({
            bucket: 'q',
            key: `k${index}`,
            value: Buffer.from('v'),
            contentType: 'text/plain',
            context: undefined,
            options: { w: 'all' },
          }),
        );
      }
      expect((await joiner.node.status()).partitionCount).toBe(cluster.config.partitionCount);
      expect(joiner.node.antiEntropyService.heldPartitions().every((partition) => partition < cluster.config.partitionCount)).toBe(true);
      joiner.node.repair();
      await cluster.runUntil(() => !joiner.node.repairProgress().running, 120_000, 'the repair finishes');
      expect(joiner.node.repairProgress().keysRepaired, `seed ${seed}: replicas written with w=all should already agree`).toBe(0);
    } finally {
      await cluster.stop();
    }
  });
});

describe('simulation: a node leaves, or is removed, under load', () => {
  it.each(seeds)('seed %i: after `leave`, the node exits and everything acknowledged reads back with r=all', async (seed) => {
    const cluster = await SimCluster.start(seed, 4, changeConfig);
    const random = cluster.random.fork();
    try {
      const leaving = cluster.members[2] as SimMember;
      const stayers = cluster.members.filter((member) => member !== leaving);
      const writer = new SteadyWriter(() => stayers[random.int(stayers.length)] as SimMember);
      await writeUntil(cluster, writer, () => writer.acknowledged.size >= 150, 60_000, 'initial load');
      let left = false;
      leaving.node.onLeft = () => {
        left = true;
      };
      await leaving.node.leave();
      await writeUntil(cluster, writer, () => left, 300_000, 'the leaving node hands off and leaves');
      await cluster.crash(leaving);
      await writeUntil(cluster, writer, () => settledWith(cluster, stayers), 60_000, 'ring of 3');
      writer.stop();
      expect(writer.failures, `seed ${seed}: requests failed during the leave`).toEqual([]);
      await expectAllReadable(cluster, stayers[0]!, writer.acknowledged, seed);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds.slice(0, 2))('seed %i: a node gone for good is removed and its partitions rebuilt from the other replicas', async (seed) => {
    const cluster = await SimCluster.start(seed, 4, changeConfig);
    const random = cluster.random.fork();
    try {
      const lost = cluster.members[1] as SimMember;
      const stayers = cluster.members.filter((member) => member !== lost);
      const writer = new SteadyWriter(() => stayers[random.int(stayers.length)] as SimMember);
      await writeUntil(cluster, writer, () => writer.acknowledged.size >= 150, 60_000, 'initial load');
      await cluster.crash(lost);
      await writeUntil(cluster, writer, () => !stayers[0]!.node.gossiper.isUp(lost.nodeId), 30_000, 'the lost node is judged down');
      stayers[0]!.node.removeMember(lost.nodeId);
      await writeUntil(cluster, writer, () => settledWith(cluster, stayers), 300_000, 'ring of the 3 others');
      writer.stop();
      await expectAllReadable(cluster, stayers[1]!, writer.acknowledged, seed);
      // Rebuilt: every key is on all 3 remaining replicas again, not only readable.
      for (const [key] of [...writer.acknowledged].slice(0, 50)) {
        for (const member of stayers) expect((await member.node.getLocal('load', key)) !== undefined, `seed ${seed}: ${key} on ${member.nodeId}`).toBe(true);
      }
    } finally {
      await cluster.stop();
    }
  });
});
