/**
 * The gossip-scale figures of SWIM membership (src/core/membership/swim.ts) from one simulated
 * run (src/sim/swim-cluster.ts): a settled cluster of N - 1 members, then in turn a quiet spell,
 * a member joining through one seed, every member changing its record once per round, and a
 * member killed. A round is one probe interval (1 s). bench/gossip-scale.ts prints the figures.
 */
import { defaultSwimConfig } from '../src/core/membership/swim.js';
import { SeededRandom } from '../src/sim/seeded-random.js';
import { SwimCluster } from '../src/sim/swim-cluster.js';

/** The figures of one run, as issue 21 names them. */
export interface GossipScaleFigures {
  readonly protocol: 'swim' | 'legacy';
  readonly seed: number;
  readonly nodes: number;
  /** Rounds until a member that joined through one seed is known to every member. */
  readonly roundsToConverge: number;
  /** Rounds from a member's death until every other member judges it down. */
  readonly detectionRounds: number;
  /** Members judged down by some member while they were not dead, over the whole run. */
  readonly falseDownCount: number;
  readonly bytesPerNodePerRoundIdle: number;
  readonly bytesPerNodePerRoundChurn: number;
  readonly maxMessageBytes: number;
}

const roundMs = defaultSwimConfig.probeIntervalMs;
/** Rounds of each measured spell. */
const quietRounds = 10;
const churnRounds = 10;

/** Runs SWIM with `nodes` members (the last of them joins during the run). */
export function measureSwim(nodes: number, seed: number): GossipScaleFigures {
  const random = new SeededRandom(seed ^ 0x5157);
  const cluster = new SwimCluster({ seed, members: nodes - 1 });
  const everyone = (): string[] => cluster.liveIds;
  // Let every member's announcement of itself run its course.
  cluster.runFor(5 * roundMs);

  let bytesBefore = cluster.bytesSent;
  cluster.runFor(quietRounds * roundMs);
  const bytesPerNodePerRoundIdle = (cluster.bytesSent - bytesBefore) / (nodes - 1) / quietRounds;

  const seedMember = everyone()[random.int(nodes - 1)] as string;
  const joiner = cluster.join(seedMember);
  const knowJoiner = (): string[] => everyone().filter((id) => cluster.member(id).stateOf(joiner) !== 'alive');
  const joinMs = cluster.runUntil(
    () => knowJoiner().length === 0,
    60 * roundMs,
    () => `${knowJoiner().length} members do not know the joiner ${joiner}`,
  );
  cluster.runFor(5 * roundMs);

  bytesBefore = cluster.bytesSent;
  for (let round = 0; round < churnRounds; round++) {
    for (const id of everyone()) cluster.at(cluster.nowMs + random.int(roundMs), () => cluster.member(id).publish({ lifecycle: 'up' }));
    cluster.runFor(roundMs);
  }
  const bytesPerNodePerRoundChurn = (cluster.bytesSent - bytesBefore) / nodes / churnRounds;
  cluster.runFor(10 * roundMs);

  const victim = everyone()[random.int(nodes)] as string;
  cluster.kill(victim);
  const stillUp = (): string[] => everyone().filter((id) => cluster.member(id).stateOf(victim) !== 'dead');
  const detectionMs = cluster.runUntil(
    () => stillUp().length === 0,
    120 * roundMs,
    () => `${stillUp().length} members still think ${victim} is up`,
  );

  return {
    protocol: 'swim',
    seed,
    nodes,
    roundsToConverge: joinMs / roundMs,
    detectionRounds: detectionMs / roundMs,
    falseDownCount: cluster.falseDowns.length,
    bytesPerNodePerRoundIdle: Math.round(bytesPerNodePerRoundIdle),
    bytesPerNodePerRoundChurn: Math.round(bytesPerNodePerRoundChurn),
    maxMessageBytes: cluster.maxMessageBytes,
  };
}
