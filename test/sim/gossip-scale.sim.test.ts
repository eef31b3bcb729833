import { describe, expect, it } from 'vitest';
import { NodeClock } from '../../src/sim/node-clock.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { SimulatedNetwork, type SimulatedTransport } from '../../src/sim/simulated-transport.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import type { ClusterView, MemberRecord } from '../../src/core/membership/membership.js';
import { encodeViewState } from '../../src/core/wire/state-codec.js';
import { Claimant } from '../../src/engine/claimant.js';
import { Gossiper } from '../../src/engine/gossiper.js';
import { silentLogger } from '../../src/ports/logger.js';

/**
 * Goal: gossip membership scales as an epidemic. Over the simulated network (real codec, so
 * real bytes) and per-node skewed clocks, N gossipers (the engine's Gossiper, without the rest
 * of a node) learn of a member that joins through one seed in O(log N) rounds, and every one of
 * them judges one dead member down. The figures are printed; the README's "Simulation"
 * section quotes them. N = 10 and 100 run in `npm test`. Figures at 1,000 members and beyond
 * come from `npm run sim:gossip-scale` (bench/gossip-scale.ts), which models this gossip
 * (bench/legacy-gossip-model.ts) beside SWIM; this test is the check of the real Gossiper.
 */

const intervalMs = 1000;
const fanout = 2;
/** Virtual time between checks of the goal: a tenth of a round, so rounds are measured to a tenth. */
const tickMs = intervalMs / 10;

/** One gossiper of the simulation, with what its crash stops. */
interface GossipMember {
  readonly record: MemberRecord;
  readonly clock: NodeClock;
  readonly transport: SimulatedTransport;
  gossiper: Gossiper;
}

/** Figures of one run. */
interface ScaleFigures {
  readonly nodes: number;
  readonly joinRounds: number;
  readonly joinBytesPerRound: number;
  readonly detectionRounds: number;
  readonly detectionBytesPerRound: number;
  readonly viewBytes: number;
  readonly viewJsonBytes: number;
}

function addressOf(index: number): string {
  return `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:7000`;
}

/** Advances virtual time a tick at a time until `goal` holds; answers the virtual time it took, or fails with the seed. */
async function timeUntil(clock: VirtualClock, goal: () => boolean, limitMs: number, what: string, seed: number): Promise<number> {
  const startMs = clock.nowMs();
  while (!goal()) {
    if (clock.nowMs() - startMs > limitMs) throw new Error(`seed ${seed}: '${what}' not reached within ${limitMs} ms of virtual time`);
    await clock.advance(tickMs);
  }
  return clock.nowMs() - startMs;
}

async function measure(nodes: number, seed: number): Promise<ScaleFigures> {
  const random = new SeededRandom(seed);
  const scheduler = new VirtualClock(1_700_000_000_000, { random: random.fork() });
  const network = new SimulatedNetwork(scheduler, random.fork());
  const records: MemberRecord[] = Array.from({ length: nodes }, (_, index) => ({ id: `n${index}`, address: addressOf(index), generation: 1, heartbeat: 0, status: 'up' }));
  const joinerRecord = records.pop()!;
  // The others start as a settled cluster: each knows every other (as from its persisted view).
  const settled: ClusterView = { members: Object.fromEntries(records.map((record) => [record.id, record])), ring: null, bucketProperties: {}, bucketPropertiesVersion: 0 };

  const boot = (record: MemberRecord, initialView: ClusterView | undefined, seeds: string[]): GossipMember => {
    const clock = new NodeClock(scheduler, { offsetMs: Math.round((random.next() * 2 - 1) * 2000), drift: (random.next() * 2 - 1) * 1e-4 });
    const transport = network.transportFor(record.address, clock);
    const gossiper = new Gossiper({
      self: record,
      seeds,
      partitionCount: 64,
      bucketProperties: {},
      intervalMs,
      fanout,
      phiThreshold: 8,
      peerTimeoutMs: 500,
      initialView,
      transport,
      clock,
      random: random.fork(),
      logger: silentLogger,
      claimant: new Claimant({ selfId: record.id, nVals: () => [3], logger: silentLogger }),
      persist: async () => undefined,
    });
    network.register(record.address, async (request) =>
      request.type === 'gossip' ? { type: 'gossip-reply', state: gossiper.receive(request.state) } : { type: 'error', code: 'KV_BAD_REQUEST', message: 'gossip only' },
    );
    // Nodes start at random moments within a round, so their rounds are out of phase as in a real cluster.
    clock.setTimer(random.int(intervalMs), () => gossiper.start());
    return { record, clock, transport, gossiper };
  };

  const members = records.map((record, index) => boot(record, settled, [addressOf((index + 1) % records.length)]));
  // Let heartbeats flow for a few rounds, so every failure detector has seen some.
  await scheduler.advance(3 * intervalMs);

  // A member joins through one seed; how long until every member knows it?
  let bytesBefore = network.bytesSent;
  const joiner = boot(joinerRecord, undefined, [records[random.int(records.length)]!.address]);
  members.push(joiner);
  const joinMs = await timeUntil(scheduler, () => members.every((member) => member.gossiper.view.members[joinerRecord.id] !== undefined), 60 * intervalMs, 'every member knows the joiner', seed);
  const joinRounds = joinMs / intervalMs;
  const joinBytesPerRound = (network.bytesSent - bytesBefore) / joinRounds;
  // The view as gossip carries it (binary, peer protocol version 2; its JSON text was the form before).
  const viewBytes = encodeViewState(members[0]!.gossiper.view)?.length ?? Number.NaN;
  const viewJsonBytes = Buffer.byteLength(JSON.stringify(members[0]!.gossiper.view));

  // A member dies (its process stops at once); how long until every other member judges it down?
  await scheduler.advance(intervalMs);
  const victim = members[random.int(members.length)]!;
  network.unregister(victim.record.address);
  victim.transport.kill();
  victim.clock.stop();
  bytesBefore = network.bytesSent;
  const survivors = members.filter((member) => member !== victim);
  const detectionMs = await timeUntil(scheduler, () => survivors.every((member) => !member.gossiper.isUp(victim.record.id)), 120 * intervalMs, 'every member judges the dead one down', seed);
  const detectionRounds = detectionMs / intervalMs;
  const detectionBytesPerRound = (network.bytesSent - bytesBefore) / detectionRounds;

  for (const member of survivors) member.gossiper.stop();
  return { nodes, joinRounds, joinBytesPerRound, detectionRounds, detectionBytesPerRound, viewBytes, viewJsonBytes };
}

function report(figures: ScaleFigures): string {
  const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
  return (
    `N=${figures.nodes}: join known to all in ${figures.joinRounds.toFixed(1)} rounds (log2 N = ${Math.log2(figures.nodes).toFixed(1)}), ` +
    `${kib(figures.joinBytesPerRound)}/round (${kib(figures.joinBytesPerRound / figures.nodes)}/node/round, view ${kib(figures.viewBytes)}, as JSON ${kib(figures.viewJsonBytes)}); ` +
    `dead node judged down by all in ${figures.detectionRounds.toFixed(1)} rounds, ${kib(figures.detectionBytesPerRound)}/round`
  );
}

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [4000, 4001];
/** N = 10 and 100 for every seed; SIM_GOSSIP_NODES=5,100 measures other sizes (the figures of bench/RESULTS.md's gossip bytes). */
const sizes = process.env.SIM_GOSSIP_NODES !== undefined ? process.env.SIM_GOSSIP_NODES.split(',').map(Number) : [10, 100];
const cases: (readonly [number, number])[] = sizes.flatMap((nodes) => seeds.map((seed) => [nodes, seed] as const));

describe('gossip membership at scale (virtual time, rounds of 1 s, fanout 2)', () => {
  it.each(cases)(
    'N=%i, seed %i: a join reaches every member in O(log N) rounds and every member judges a dead one down',
    async (nodes, seed) => {
      const figures = await measure(nodes, seed);
      console.log(`gossip scale, seed ${seed}: ${report(figures)}`);
      // Push-pull gossip with fanout 2 spreads news in about log3(N) rounds; 3 log2(N) + 3 is generous.
      expect(figures.joinRounds, `seed ${seed}: ${report(figures)}`).toBeLessThanOrEqual(3 * Math.log2(nodes) + 3);
      // Detection waits for phi to pass its threshold, then the missing heartbeats are everywhere already.
      expect(figures.detectionRounds, `seed ${seed}: ${report(figures)}`).toBeLessThanOrEqual(60);
    },
    1_800_000,
  );
});
