import { afterEach, describe, expect, it } from 'vitest';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { leaseBucket } from '../../src/core/leases/lease-record.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * Goal of the lease sweeper (docs/CONSENSUS.md, "Leases"; issue 22): a lease decided while its
 * sweeper (the first up replica of its record) was cut off, so the sweeper's own acceptor never
 * held the record, still ends after its ttl once the cut heals: the sweeper learns the lease
 * records of the partitions it sweeps from a majority of their replicas, not only from its own
 * acceptor state. Seeds replay with SIM_SEED.
 */

const bucket = 'locks';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2701, 2702];
const ttlSeconds = 3;

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** The member at `position` in the preference list of lease `id`'s record (0: its sweeper while every node is up, 1: the next one). */
function replicaOf(sim: SimCluster, id: string, position: number): SimMember {
  const ring = sim.members[0]!.node.gossiper.ring!;
  const node = preferenceList(ring, partitionOf(leaseBucket, id, ring.partitionCount), 3)[position];
  return sim.members.find((member) => member.nodeId === node)!;
}

/**
 * Cuts `cutOff` off only for a few grants, healed long before gossip could judge it down, and
 * keeps a lease (with an ephemeral key) of which it is the replica at `position`: the other two
 * decided it, so `cutOff`'s acceptor holds no state of its record.
 */
async function grantUnseenBy(sim: SimCluster, cutOff: SimMember, position: number): Promise<string> {
  const others = sim.members.filter((member) => member !== cutOff);
  sim.network.partition([[cutOff.address], others.map((member) => member.address)]);
  let id: string | undefined;
  for (let attempt = 0; attempt < 30 && id === undefined; attempt++) {
    const granted = await sim.drive(others[0]!.node.leases.grant(ttlSeconds));
    if (replicaOf(sim, granted.id, position) === cutOff) id = granted.id;
    else await sim.drive(others[0]!.node.leases.revoke(granted.id));
  }
  expect(id, `no lease of 30 had the cut-off member at position ${position}`).toBeDefined();
  const lease = id!;
  await sim.drive(others[1]!.node.leases.put(bucket, 'ephemeral', { contentType: 'text/plain', value: Buffer.from('held') }, { kind: 'absent' }, lease));
  sim.network.heal();
  expect(
    others.every((other) => other.node.gossiper.isUp(cutOff.nodeId)),
    'the others never judged the cut-off member down',
  ).toBe(true);
  expect(await cutOff.storage.paxos.get(encodeDataKey(leaseBucket, lease)), 'the cut-off member holds no Paxos state of the lease').toBeUndefined();
  return lease;
}

/** Whether the lease is still there, as a consistent read through `member` shows it. */
async function alive(sim: SimCluster, member: SimMember, id: string): Promise<boolean> {
  try {
    await sim.drive(member.node.leases.describe(id));
    return true;
  } catch (error) {
    if (isKvError(error) && error.code === 'KV_LEASE_NOT_FOUND') return false;
    throw error;
  }
}

describe('simulation: a lease its sweeper never held', () => {
  it.each(seeds)(
    'seed %i: a lease granted while its sweeper was cut off ends after its ttl once healed, with its ephemeral key',
    async (seed) => {
      const sim = (cluster = await SimCluster.start(seed, 3, config));
      const [cutOff, ...others] = sim.members as [SimMember, ...SimMember[]];
      const lease = await grantUnseenBy(sim, cutOff, 0);
      expect(await alive(sim, others[0]!, lease), 'the lease is alive after the heal').toBe(true);

      await sim.clock.advance(60_000);
      expect(
        await alive(sim, others[0]!, lease),
        `seed ${seed}: lease ${lease} (swept by ${cutOff.nodeId}) still alive 60 s after its ${ttlSeconds} s ttl`,
      ).toBe(false);
      const key = await sim.drive(others[1]!.node.consistent(bucket, 'ephemeral', { kind: 'read' }));
      expect(key.value, `seed ${seed}: the ephemeral key outlived its lease`).toBeNull();
    },
    600_000,
  );

  it.each(seeds)(
    'seed %i: when its sweeper crashes, the next replica, which never held the record either, ends it',
    async (seed) => {
      const sim = (cluster = await SimCluster.start(seed, 3, config));
      const [cutOff] = sim.members as [SimMember, ...SimMember[]];
      const lease = await grantUnseenBy(sim, cutOff, 1);
      const sweeper = replicaOf(sim, lease, 0);
      const third = sim.members.find((member) => member !== cutOff && member !== sweeper)!;
      await sim.crash(sweeper);
      await sim.runUntil(() => !cutOff.node.gossiper.isUp(sweeper.nodeId), 60_000, `${cutOff.nodeId} judges the crashed sweeper ${sweeper.nodeId} down`);

      await sim.clock.advance(60_000);
      expect(await alive(sim, third, lease), `seed ${seed}: lease ${lease} (swept by ${cutOff.nodeId} once ${sweeper.nodeId} crashed) still alive`).toBe(false);
      const key = await sim.drive(third.node.consistent(bucket, 'ephemeral', { kind: 'read' }));
      expect(key.value, `seed ${seed}: the ephemeral key outlived its lease`).toBeNull();
    },
    600_000,
  );
});
