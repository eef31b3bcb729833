import { describe, expect, it } from 'vitest';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { partitionOf } from '../../src/core/keys.js';
import { locationOf, preferenceList, type Ring } from '../../src/core/ring/ring.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: losing a whole host loses no key's quorum. Three hosts run two nodes each
 * (`placement.host`); every key is written at quorum; then both nodes of one host crash at once,
 * and every acknowledged key must still be readable and writable at a quorum of its primaries
 * (pr and pw, so sloppy-quorum fallbacks cannot stand in for the replicas the host took).
 * With placement blind to hosts, some keys keep two of their three replicas on one host and lose
 * their quorum with it. Two layouts: two nodes on each host (the claim alone can keep a host's
 * nodes apart there), and hosts of three, two and one nodes, where half the partitions belong to
 * one host and only the placement walk keeps its nodes out of each other's preference lists.
 */

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [7100, 7101];
const keyCount = 48;

/** Hosts of the nodes, in the order they join, and the host to lose. */
interface Layout {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly lost: (seed: number) => string;
}

const layouts: readonly Layout[] = [
  {
    name: 'two nodes on each of three hosts',
    hosts: ['rack-a', 'rack-a', 'rack-b', 'rack-b', 'rack-c', 'rack-c'],
    lost: (seed) => ['rack-a', 'rack-b', 'rack-c'][seed % 3] as string,
  },
  { name: 'three, two and one nodes on three hosts', hosts: ['rack-a', 'rack-b', 'rack-a', 'rack-c', 'rack-b', 'rack-a'], lost: () => 'rack-a' },
];

async function startHostCluster(seed: number, layout: Layout): Promise<SimCluster> {
  const cluster = await SimCluster.launch(seed, 0, { partitionCount: 64 });
  for (const host of layout.hosts) await cluster.addMember({ placement: { host, zone: '' } });
  await cluster.runUntil(() => cluster.ringSettled(), 120_000, `ring of ${layout.name} settles`);
  return cluster;
}

function hostOf(ring: Ring, member: SimMember): string {
  return locationOf(ring, member.nodeId).host;
}

describe('placement by host: a whole host lost', () => {
  const runs = [...seeds.map((seed) => ({ seed, layout: layouts[0] as Layout })), { seed: seeds[0] as number, layout: layouts[1] as Layout }];
  for (const { seed, layout } of runs) {
    it(`keeps every acknowledged key readable and writable at a quorum of primaries after every node of a host crashes (${layout.name}, seed ${seed})`, async () => {
      const cluster = await startHostCluster(seed, layout);
      try {
        const ring = cluster.members[0]?.node.gossiper.ring as Ring;
        expect(cluster.members.map((member) => hostOf(ring, member))).toEqual(layout.hosts);
        const status = await cluster.drive(cluster.members[0]!.node.status());
        expect(status.members.map((member) => member.host).sort()).toEqual([...layout.hosts].sort());
        expect(status.placement).toEqual({ warnings: [] });

        const acknowledged: string[] = [];
        for (let index = 0; index < keyCount; index++) {
          const key = `key-${index}`;
          const coordinator = cluster.members[index % cluster.members.length] as SimMember;
          await cluster.drive(
            coordinator.node.put({
              bucket: 'b',
              key,
              value: Buffer.from(`v${index}`),
              contentType: 'text/plain',
              context: undefined,
              options: { w: 'quorum', pw: 'quorum' },
            }),
          );
          acknowledged.push(key);
        }

        const lost = layout.lost(seed);
        const victims = cluster.members.filter((member) => hostOf(ring, member) === lost);
        const survivors = cluster.members.filter((member) => hostOf(ring, member) !== lost);
        for (const victim of victims) await cluster.crash(victim);
        await cluster.runUntil(
          () => survivors.every((member) => victims.every((victim) => !member.node.gossiper.isUp(victim.nodeId))),
          60_000,
          `survivors see host ${lost} down`,
        );

        const unreadable: string[] = [];
        const unwritable: string[] = [];
        for (const [index, key] of acknowledged.entries()) {
          const coordinator = survivors[index % survivors.length] as SimMember;
          try {
            const object = await cluster.drive(coordinator.node.get('b', key, { r: 'quorum', pr: 'quorum' }));
            const values = object === undefined ? [] : liveSiblings(object).map((sibling) => Buffer.from(sibling.value).toString());
            if (!values.includes(`v${index}`)) unreadable.push(`${key}: read ${JSON.stringify(values)}`);
          } catch (error) {
            unreadable.push(`${key}: ${(error as Error).message}`);
          }
          try {
            await cluster.drive(
              coordinator.node.put({
                bucket: 'b',
                key,
                value: Buffer.from(`after-${index}`),
                contentType: 'text/plain',
                context: undefined,
                options: { w: 'quorum', pw: 'quorum' },
              }),
            );
          } catch (error) {
            unwritable.push(`${key}: ${(error as Error).message}`);
          }
        }
        const keysWithTwoReplicasOnTheLostHost = acknowledged
          .map((key) => preferenceList(ring, partitionOf('b', key, ring.partitionCount), 3))
          .filter((replicas) => replicas.filter((node) => victims.some((victim) => victim.nodeId === node)).length > 1).length;
        expect({ seed, lost, unreadable, unwritable, keysWithTwoReplicasOnTheLostHost }).toEqual({
          seed,
          lost,
          unreadable: [],
          unwritable: [],
          keysWithTwoReplicasOnTheLostHost: 0,
        });
      } finally {
        await cluster.stop();
      }
    }, 300_000);
  }
});
