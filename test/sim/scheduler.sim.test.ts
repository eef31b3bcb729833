import { describe, expect, it } from 'vitest';
import { NodeClock } from '../../src/sim/node-clock.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goals of the simulation's scheduler: interleavings come from the seed, not from library
 * internals. Events due at the same instant fire in the seed's order (one node's own timers
 * keep their arming order, as on a real event loop); the work an event starts runs until it is
 * quiet before the next event, however many event-loop turns it takes; and a seeded cluster run
 * replays exactly: the same trace of deliveries and the same stored state, while another seed
 * gives another interleaving.
 */

const startMs = 1_700_000_000_000;

describe('the seeded scheduler', () => {
  it('orders events due at the same instant by the seed: the same seed gives the same order, another seed another', async () => {
    const order = async (seed: number): Promise<string> => {
      const scheduler = new VirtualClock(startMs, { random: new SeededRandom(seed) });
      const fired: number[] = [];
      for (let index = 0; index < 12; index++) scheduler.setTimer(10, () => fired.push(index));
      await scheduler.advance(10);
      return fired.join(',');
    };
    const first = await order(1);
    expect(await order(1)).toBe(first);
    // One after the other: two schedulers advancing at once would each wait for the other's work to go quiet.
    const others = new Set([first]);
    for (const seed of [2, 3, 4, 5]) others.add(await order(seed));
    expect(others.size, 'five seeds give more than one order').toBeGreaterThan(1);
  });

  it("keeps one node clock's ties in arming order, and puts them among another node's in the seed's order", async () => {
    const scheduler = new VirtualClock(startMs, { random: new SeededRandom(9) });
    const left = new NodeClock(scheduler, { offsetMs: 0, drift: 0 });
    const right = new NodeClock(scheduler, { offsetMs: 0, drift: 0 });
    const fired: string[] = [];
    for (let index = 0; index < 5; index++) {
      left.setTimer(10, () => fired.push(`L${index}`));
      right.setTimer(10, () => fired.push(`R${index}`));
    }
    await scheduler.advance(10);
    expect(fired.filter((name) => name.startsWith('L'))).toEqual(['L0', 'L1', 'L2', 'L3', 'L4']);
    expect(fired.filter((name) => name.startsWith('R'))).toEqual(['R0', 'R1', 'R2', 'R3', 'R4']);
  });

  it('runs the work an event starts until it is quiet before the next event fires, however many turns it takes', async () => {
    // Fifty macrotask hops: a long chain of storage batches or a large range delete looks like this.
    const scheduler = new VirtualClock(startMs);
    const log: string[] = [];
    scheduler.setTimer(10, () => {
      void (async () => {
        for (let hop = 0; hop < 50; hop++) await new Promise<void>((resolve) => setImmediate(resolve));
        log.push('long work done');
      })();
    });
    scheduler.setTimer(10, () => log.push('next event'));
    await scheduler.advance(10);
    expect(log).toEqual(['long work done', 'next event']);
  });
});

/** The scenario a replay repeats: concurrent writes through random coordinators, message loss, a power loss and a restart. */
async function scenario(seed: number): Promise<{ trace: string; state: string; clocks: number[] }> {
  const cluster = await SimCluster.start(seed, 4, { hintedHandoff: { enabled: true } });
  try {
    const trace = cluster.startTrace();
    const random = cluster.random.fork();
    cluster.network.faults.dropProbability = 0.05;
    for (let round = 0; round < 3; round++) {
      const writes = Array.from({ length: 6 }, (_, index) => {
        const coordinator = cluster.members.filter((member) => member.running)[random.int(3)] as SimMember;
        return coordinator.node
          .put({
            bucket: 'replay',
            key: `k${random.int(4)}`,
            value: Buffer.from(`r${round}w${index}`),
            contentType: 'text/plain',
            context: undefined,
            options: { w: 1 },
          })
          .then(
            () => 'ok',
            (error: unknown) => String((error as { code?: string }).code),
          );
      });
      const outcomes = await cluster.drive(Promise.all(writes));
      cluster.clock.note(`outcomes ${outcomes.join(',')}`);
      if (round === 1) await cluster.crash(cluster.members[3]!, 'power-loss');
      await cluster.clock.advance(random.int(1500));
    }
    await cluster.restart(cluster.members[3]!);
    cluster.network.faults.dropProbability = 0;
    await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles');
    await cluster.clock.advance(3000);
    const state: string[] = [];
    for (const member of cluster.members) {
      for await (const [key, value] of member.storage.data.entries())
        state.push(`${member.nodeId} ${Buffer.from(key).toString('hex')} ${Buffer.from(value).toString('hex')}`);
    }
    return { trace: trace.join('\n'), state: state.join('\n'), clocks: cluster.members.map((member) => member.clock.nowMs() - cluster.clock.nowMs()) };
  } finally {
    await cluster.stop();
  }
}

describe('a seed replays a run exactly', () => {
  it('runs the same seeded scenario twice to the same trace and the same stored state; another seed interleaves differently', async () => {
    const first = await scenario(31);
    const again = await scenario(31);
    expect(first.trace.split('\n').length, 'the trace records the run').toBeGreaterThan(100);
    expect(again.trace).toBe(first.trace);
    expect(again.state).toBe(first.state);
    expect(first.state.length, 'the run stored data').toBeGreaterThan(0);
    const other = await scenario(32);
    expect(other.trace).not.toBe(first.trace);
  });

  it('gives every node its own clock, off by up to the skew either way', async () => {
    const cluster = await SimCluster.start(5, 4, {}, { clockSkewMs: 2000, clockDrift: 1e-4 });
    try {
      const offsets = cluster.members.map((member) => member.clock.nowMs() - cluster.clock.nowMs());
      expect(new Set(offsets).size, `offsets ${offsets.join(',')}`).toBe(4);
      for (const offset of offsets) expect(Math.abs(offset)).toBeLessThanOrEqual(2000 + 10);
    } finally {
      await cluster.stop();
    }
  });
});
