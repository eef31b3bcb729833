import { describe, expect, it } from 'vitest';
import type { QuorumSetting } from '../../src/core/buckets.js';
import type { FaultSettings, SeededFaultPoints } from '../../src/sim/seeded-fault-points.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goal: the seeded fault points (FoundationDB's BUGGIFY, src/ports/fault-points.ts) shake out
 * failures that the simulated network's usual 1-5 ms hides, and a run they broke replays from
 * its seed. The deliberately broken variant is a client that writes with w=1 and reads with r=1
 * from another node of a 3-replica bucket (R + W <= N: no read-your-writes): with the fault
 * points off, every write has reached every replica before the read, so it always reads its
 * own write; with `peer-request-delay` on, a replica write arrives late and the read is stale.
 * The same faults never make a quorum client (w=2, r=2) read stale. Every failure names its
 * seed; `SIM_SEED=<seed>` replays one.
 */

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [9300, 9301];

/** Late peer requests: about one in three, by up to 1.5 s (a peer call gives up after 500 ms). */
const lateRequests: FaultSettings = { 'peer-request-delay': { probability: 0.3, maxDelayMs: 1500 } };

/** Keys each run writes and reads back. */
const keyCount = 24;

/** What the reads of one run saw. */
interface ReadYourWrites {
  /** Acknowledged writes whose read back answered without the written value. */
  readonly stale: number;
  /** Acknowledged writes read back with their value. */
  readonly fresh: number;
  /** Writes or reads that failed (timeouts, unavailable): they promise nothing. */
  readonly failed: number;
  /** How often the fault points fired. */
  readonly faultsFired: number;
}

/** Writes each key at one node with `w`, lets 50 ms of virtual time pass, and reads it at another node with `r`. */
async function readYourWrites(seed: number, quorum: QuorumSetting, faults: FaultSettings | undefined, trace?: string[]): Promise<ReadYourWrites> {
  const cluster = await SimCluster.start(seed, 3, {}, faults === undefined ? {} : { faults });
  const recorded = cluster.startTrace();
  let stale = 0;
  let fresh = 0;
  let failed = 0;
  try {
    for (let index = 0; index < keyCount; index++) {
      const writer = cluster.members[index % 3] as SimMember;
      const reader = cluster.members[(index + 1) % 3] as SimMember;
      const key = `key-${index}`;
      const value = `value-${index}`;
      try {
        await cluster.drive(
          writer.node.put({
            bucket: 'read-your-writes',
            key,
            value: Buffer.from(value),
            contentType: 'text/plain',
            context: undefined,
            options: { w: quorum },
          }),
        );
      } catch {
        failed += 1;
        continue;
      }
      await cluster.clock.advance(50);
      try {
        const read = await cluster.drive(reader.node.get('read-your-writes', key, { r: quorum }));
        const values = (read?.siblings ?? []).map((sibling) => Buffer.from(sibling.value).toString('utf8'));
        if (values.includes(value)) fresh += 1;
        else stale += 1;
      } catch {
        failed += 1;
      }
    }
  } finally {
    await cluster.stop();
  }
  trace?.push(...recorded);
  const faultsFired = faults === undefined ? 0 : (cluster.faultPoints as SeededFaultPoints).totalFired;
  return { stale, fresh, failed, faultsFired };
}

describe('simulation: seeded fault points', () => {
  it.each(seeds)('seed %i: late peer requests make the w=1/r=1 client read stale, never the quorum client', async (seed) => {
    const calm = await readYourWrites(seed, 1, undefined);
    expect(calm, `simulation seed ${seed}: without faults the w=1/r=1 client reads every write back`).toMatchObject({ stale: 0, fresh: keyCount, failed: 0 });

    const broken = await readYourWrites(seed, 1, lateRequests);
    expect(broken.faultsFired, `simulation seed ${seed}: the fault points fired`).toBeGreaterThan(0);
    expect(broken.stale, `simulation seed ${seed}: late replica writes should make some w=1/r=1 reads stale (saw ${JSON.stringify(broken)})`).toBeGreaterThan(
      0,
    );

    const quorum = await readYourWrites(seed, 2, lateRequests);
    expect(quorum.faultsFired, `simulation seed ${seed}: the fault points fired`).toBeGreaterThan(0);
    expect(quorum.fresh, `simulation seed ${seed}: some quorum writes are read back at all (saw ${JSON.stringify(quorum)})`).toBeGreaterThan(0);
    expect(quorum.stale, `simulation seed ${seed}: a w=2/r=2 client never reads stale, whatever arrives late (saw ${JSON.stringify(quorum)})`).toBe(0);
  });

  it('a run with fault points replays from its seed: the same faults at the same virtual times, the same reads', async () => {
    const seed = seeds[0] as number;
    const first: string[] = [];
    const second: string[] = [];
    const firstRun = await readYourWrites(seed, 1, lateRequests, first);
    const secondRun = await readYourWrites(seed, 1, lateRequests, second);
    expect(first.filter((line) => line.includes(' fault ')).length, `simulation seed ${seed}: the trace notes the faults`).toBeGreaterThan(0);
    expect(secondRun, `simulation seed ${seed}`).toEqual(firstRun);
    expect(second, `simulation seed ${seed}: two runs of one seed give one trace`).toEqual(first);
  });
});
