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

/** Where a run is, for a progress line: called after every simulated round or runUntil step. */
export interface SwimRunProgress {
  readonly phase: 'build' | 'settle' | 'idle' | 'join' | 'churn' | 'detection';
  /** Virtual time since the cluster was built. */
  readonly simulatedMs: number;
  /** Events the simulator has run. */
  readonly events: number;
  /** In the detection phase: how many of the other members hold the killed member dead, suspect, and alive. */
  readonly victim?: VictimHeld;
}

/** How the members other than a killed one hold it. */
export interface VictimHeld {
  readonly id: string;
  readonly dead: number;
  readonly suspect: number;
  /** Alive, or not known. */
  readonly up: number;
}

/** Runs SWIM with `nodes` members (the last of them joins during the run); `progress` is told where the run is after every simulated round. */
export function measureSwim(nodes: number, seed: number, progress: (where: SwimRunProgress) => void = () => {}): GossipScaleFigures {
  const random = new SeededRandom(seed ^ 0x5157);
  progress({ phase: 'build', simulatedMs: 0, events: 0 });
  const cluster = new SwimCluster({ seed, members: nodes - 1 });
  const startMs = cluster.nowMs;
  let phase: SwimRunProgress['phase'] = 'settle';
  const report = (victim?: VictimHeld): void =>
    progress({ phase, simulatedMs: cluster.nowMs - startMs, events: cluster.eventsRun, ...(victim === undefined ? {} : { victim }) });
  /** Runs `rounds` rounds one at a time, reporting after each (runFor in steps runs the same events as in one go). */
  const runRounds = (rounds: number): void => {
    for (let round = 0; round < rounds; round++) {
      cluster.runFor(roundMs);
      report();
    }
  };
  const everyone = (): string[] => cluster.liveIds;
  // Let every member's announcement of itself run its course.
  runRounds(5);

  phase = 'idle';
  let bytesBefore = cluster.bytesSent;
  runRounds(quietRounds);
  const bytesPerNodePerRoundIdle = (cluster.bytesSent - bytesBefore) / (nodes - 1) / quietRounds;

  phase = 'join';
  const seedMember = everyone()[random.int(nodes - 1)] as string;
  const joiner = cluster.join(seedMember);
  const knowJoiner = (): string[] => everyone().filter((id) => cluster.member(id).stateOf(joiner) !== 'alive');
  const joinMs = cluster.runUntil(
    () => {
      report();
      return knowJoiner().length === 0;
    },
    60 * roundMs,
    () => `${knowJoiner().length} members do not know the joiner ${joiner}`,
  );
  runRounds(5);

  phase = 'churn';
  bytesBefore = cluster.bytesSent;
  for (let round = 0; round < churnRounds; round++) {
    for (const id of everyone()) cluster.at(cluster.nowMs + random.int(roundMs), () => cluster.member(id).publish({ lifecycle: 'up' }));
    runRounds(1);
  }
  const bytesPerNodePerRoundChurn = (cluster.bytesSent - bytesBefore) / nodes / churnRounds;
  runRounds(10);

  phase = 'detection';
  const victim = everyone()[random.int(nodes)] as string;
  cluster.kill(victim);
  const held = (): VictimHeld => {
    let dead = 0;
    let suspect = 0;
    let up = 0;
    for (const id of everyone()) {
      const state = cluster.member(id).stateOf(victim);
      if (state === 'dead') dead++;
      else if (state === 'suspect') suspect++;
      else up++;
    }
    return { id: victim, dead, suspect, up };
  };
  let last = held();
  const detectionMs = cluster.runUntil(
    () => {
      last = held();
      report(last);
      return last.suspect + last.up === 0;
    },
    120 * roundMs,
    () => `${last.suspect + last.up} members still think ${victim} is up (${last.suspect} of them hold it suspect)`,
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
