import { describe, expect, it } from 'vitest';
import type { SeededFaultPoints } from '../../src/sim/seeded-fault-points.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: a simulated node boots, restarts and stops on the virtual clock, so what it waits on
 * while doing so (here every storage write, slowed by the `storage-write` fault point) is
 * waited out in virtual time. A boot awaited outside the scheduler would wait for a virtual
 * timer that nothing advances, and hang for real. Seeds replay with SIM_SEED.
 */

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [9500];

describe('simulation: boot on the virtual clock', () => {
  it.each(seeds)('seed %i: with every storage write slowed, a cluster boots, restarts a node, serves, and stops', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, {}, { faults: { 'storage-write': { probability: 1, maxDelayMs: 300 } } });
    try {
      const faults = cluster.faultPoints as SeededFaultPoints;
      const firedAtBoot = faults.fired.get('storage-write') ?? 0;
      expect(firedAtBoot, `simulation seed ${seed}: storage writes were slowed while the cluster booted`).toBeGreaterThan(0);

      const member = cluster.members[1] as SimMember;
      await cluster.stopCleanly(member);
      await cluster.restart(member);
      await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'the ring settles after the restart');

      await cluster.drive(
        member.node.put({ bucket: 'b', key: 'k', value: Buffer.from('v'), contentType: 'text/plain', context: undefined, options: { w: 3, dw: 3 } }),
      );
      const read = await cluster.drive((cluster.members[2] as SimMember).node.get('b', 'k', { r: 3 }));
      expect(
        read?.siblings.map((sibling) => Buffer.from(sibling.value).toString('utf8')),
        `simulation seed ${seed}: the write acknowledged by all three is read back`,
      ).toEqual(['v']);
      expect(faults.fired.get('storage-write') ?? 0, `simulation seed ${seed}: writes after boot were slowed too`).toBeGreaterThan(firedAtBoot);
    } finally {
      await cluster.stop();
    }
  });
});
