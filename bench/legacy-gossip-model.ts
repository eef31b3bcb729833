/**
 * A model of the whole-view gossip that SWIM replaced (src/engine/gossiper.ts before issue 21's
 * wiring, commit 1fb196e), for the "before" rows of the gossip-scale figures: every member, once
 * a round (1 s) at its own phase, pushes its whole view to 2 random members and gets the merged
 * view back (fanout 2, push-pull); every member raises its heartbeat each round; a member is
 * judged down when phi-accrual (the detector that gossiper used, kept below) passes 8.
 *
 * The model tracks only what the figures need (who knows the joiner, the heartbeats of the dead
 * member and of 8 sampled live ones: 9 x N detectors, not N x N), and a message's bytes are a
 * closed form of the view size (legacyGossipFrameBytes), so 10,000 members take seconds and
 * megabytes. Views of more than 1,024 members were refused by that wire (viewLimits.maxMembers):
 * past 1,024 the rows say what the same layout would have cost with the cap lifted.
 */
import { frameHeaderBytes } from '../src/core/wire/frames.js';
import { SeededRandom } from '../src/sim/seeded-random.js';
import type { GossipScaleFigures } from './swim-scale.js';

const intervalMs = 1000;
const fanout = 2;
const phiThreshold = 8;
const checkMs = intervalMs / 10;
const sampledMembers = 8;
const quietRounds = 10;
const detector = { windowSize: 100, minStdDeviationMs: 500, acceptableHeartbeatPauseMs: 3 * intervalMs, firstHeartbeatEstimateMs: intervalMs };

/** Bytes of an unsigned LEB128 varint. */
function varintBytes(value: number): number {
  let bytes = 1;
  for (let rest = value; rest >= 128; rest = Math.floor(rest / 128)) bytes++;
  return bytes;
}

/**
 * The bytes of one gossip frame carrying a view of `members` members, in the binary layout of the
 * retired gossip message (tag 40, src/core/wire/state-codec.ts at 1fb196e^): the frame header,
 * the tag, the view as length-prefixed bytes: a member count, then per member its id and address
 * (length-prefixed), generation and heartbeat (varints; heartbeats of two bytes, as the old
 * simulation had), a status byte and a flags byte; then no ring (one byte), the bucket
 * properties' version and an empty bucket table (a byte each). A reply carries the merged view,
 * the same size. Summed member by member: no view is built. It gives what that encoder gave
 * (240, 2,400, 25,472 and 26,120 bytes at 10, 100, 1,000 and 1,024 members).
 */
export function legacyGossipFrameBytes(members: number): number {
  let view = varintBytes(members) + 3;
  for (let index = 0; index < members; index++) {
    const id = `n${index}`.length;
    const address = `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:7000`.length;
    view += varintBytes(id) + id + varintBytes(address) + address + varintBytes(1) + varintBytes(1000) + 2;
  }
  return frameHeaderBytes + 1 + varintBytes(view) + view;
}

/** A phi-accrual detector's state for one (observer, watched member) pair: the last heartbeat and the intervals' window. */
interface PhiDetector {
  readonly intervalsMs: number[];
  lastHeartbeatMs: number | undefined;
  meanMs: number;
  deviationMs: number;
}

function distribution(state: PhiDetector): void {
  const intervals = state.intervalsMs;
  const meanMs = intervals.reduce((sum, value) => sum + value, 0) / intervals.length;
  const variance = intervals.reduce((sum, value) => sum + (value - meanMs) ** 2, 0) / intervals.length;
  state.meanMs = meanMs;
  state.deviationMs = Math.max(Math.sqrt(variance), detector.minStdDeviationMs);
}

/** A detector that has seen no heartbeat yet, seeded with the first estimate (as Akka does). */
function createDetector(): PhiDetector {
  const estimate = detector.firstHeartbeatEstimateMs;
  const state: PhiDetector = { intervalsMs: [estimate - estimate / 4, estimate + estimate / 4], lastHeartbeatMs: undefined, meanMs: 0, deviationMs: 0 };
  distribution(state);
  return state;
}

function heartbeat(state: PhiDetector, nowMs: number): void {
  if (state.lastHeartbeatMs !== undefined) {
    state.intervalsMs.push(Math.max(0, nowMs - state.lastHeartbeatMs));
    if (state.intervalsMs.length > detector.windowSize) state.intervalsMs.shift();
    distribution(state);
  }
  state.lastHeartbeatMs = nowMs;
}

/** The suspicion level at `nowMs` (the old src/core/membership/phi-accrual.ts: Akka's logistic approximation of the normal tail). */
function phi(state: PhiDetector, nowMs: number): number {
  if (state.lastHeartbeatMs === undefined) return 0;
  const y = (nowMs - state.lastHeartbeatMs - (state.meanMs + detector.acceptableHeartbeatPauseMs)) / state.deviationMs;
  const e = Math.exp(-y * (1.5976 + 0.070566 * y * y));
  const tail = y > 0 ? e / (1 + e) : 1 - 1 / (1 + e);
  return tail <= 0 ? Number.MAX_VALUE : -Math.log10(tail);
}

/** Runs the model with `nodes` members (the last joins during the run). */
export function measureLegacy(nodes: number, seed: number): GossipScaleFigures {
  const random = new SeededRandom(seed);
  const frameBytes = legacyGossipFrameBytes(nodes);
  const phaseMs = Array.from({ length: nodes }, () => random.int(intervalMs));
  const byPhase = [...phaseMs.keys()].sort((left, right) => phaseMs[left]! - phaseMs[right]!);
  const joiner = nodes - 1;
  const present = Array.from({ length: nodes }, (_, index) => index !== joiner);
  const killed = Array.from({ length: nodes }, () => false);
  const knowsJoiner = Array.from({ length: nodes }, () => false);
  const victim = random.int(nodes - 1);
  const sampled = [victim, ...Array.from({ length: sampledMembers }, () => random.int(nodes - 1)).filter((index) => index !== victim)];
  /** For each watched member: each member's known heartbeat of it, and its detector. */
  const known = sampled.map(() => new Array<number>(nodes).fill(0));
  const detectors: PhiDetector[][] = sampled.map(() => Array.from({ length: nodes }, () => createDetector()));
  let bytesSent = 0;
  /** (watched member, observer) pairs that ever judged a live member down. */
  const falseDowns = new Set<number>();
  let nowMs = 0;

  const learn = (watched: number, observer: number, heartbeatValue: number, atMs: number): void => {
    if (heartbeatValue <= (known[watched] as number[])[observer]!) return;
    (known[watched] as number[])[observer] = heartbeatValue;
    heartbeat((detectors[watched] as PhiDetector[])[observer]!, atMs);
  };

  /** One member's round at `atMs`: beat, then push-pull with `fanout` random members (a dead one among them costs a request unanswered). */
  const gossip = (member: number, atMs: number): void => {
    sampled.forEach((watched, slot) => {
      if (watched === member) learn(slot, member, (known[slot] as number[])[member]! + 1, atMs);
    });
    const targets = new Set<number>();
    while (targets.size < fanout) {
      const target = random.int(nodes);
      if (target !== member && present[target]) targets.add(target);
    }
    for (const target of targets) {
      bytesSent += frameBytes;
      if (killed[target]) continue;
      bytesSent += frameBytes;
      // Push-pull: both leave with the merge of the two views.
      for (let slot = 0; slot < sampled.length; slot++) {
        const best = Math.max((known[slot] as number[])[member]!, (known[slot] as number[])[target]!);
        learn(slot, member, best, atMs);
        learn(slot, target, best, atMs);
      }
      const joined = knowsJoiner[member]! || knowsJoiner[target]!;
      knowsJoiner[member] = joined;
      knowsJoiner[target] = joined;
    }
  };

  /** Advances a tenth of a round: the members whose phase falls in it gossip, in phase order. */
  const step = (): void => {
    const round = Math.floor(nowMs / intervalMs);
    for (const member of byPhase) {
      const atMs = round * intervalMs + phaseMs[member]!;
      if (atMs >= nowMs && atMs < nowMs + checkMs && present[member] && !killed[member]) gossip(member, atMs);
    }
    nowMs += checkMs;
    countFalseDowns();
  };

  /** Steps until `goal` holds; answers the ms it took, or throws after `limitRounds`. */
  const runUntil = (goal: () => boolean, limitRounds: number, what: string): number => {
    const startMs = nowMs;
    while (!goal()) {
      if (nowMs - startMs >= limitRounds * intervalMs) throw new Error(`legacy model, seed ${seed}: ${what} not reached within ${limitRounds} rounds`);
      step();
    }
    return nowMs - startMs;
  };

  const down = (slot: number, observer: number): boolean => phi((detectors[slot] as PhiDetector[])[observer]!, nowMs) > phiThreshold;
  const countFalseDowns = (): void => {
    sampled.forEach((watched, slot) => {
      if (killed[watched]) return;
      for (let observer = 0; observer < nodes; observer++)
        if (observer !== watched && present[observer] && !killed[observer] && down(slot, observer)) falseDowns.add(slot * nodes + observer);
    });
  };

  runUntil(() => nowMs >= 5 * intervalMs, 10, 'warm-up');
  const bytesBefore = bytesSent;
  const quietStartMs = nowMs;
  runUntil(() => nowMs - quietStartMs >= quietRounds * intervalMs, quietRounds + 1, 'quiet rounds');
  const bytesPerNodePerRound = (bytesSent - bytesBefore) / (nodes - 1) / ((nowMs - quietStartMs) / intervalMs);

  present[joiner] = true;
  knowsJoiner[joiner] = true;
  const joinMs = runUntil(() => knowsJoiner.every((knows, index) => knows || killed[index]), 60, 'every member knows the joiner');

  killed[victim] = true;
  const detectionMs = runUntil(
    () => {
      for (let observer = 0; observer < nodes; observer++) if (observer !== victim && !down(0, observer)) return false;
      return true;
    },
    120,
    'every member judges the dead one down',
  );

  return {
    protocol: 'legacy',
    seed,
    nodes,
    roundsToConverge: joinMs / intervalMs,
    detectionRounds: detectionMs / intervalMs,
    falseDownCount: falseDowns.size,
    // Every member's heartbeat changes every round, so a quiet round and a round of churn send the same whole views.
    bytesPerNodePerRoundIdle: Math.round(bytesPerNodePerRound),
    bytesPerNodePerRoundChurn: Math.round(bytesPerNodePerRound),
    maxMessageBytes: frameBytes,
  };
}
