/**
 * A model of today's gossip (src/engine/gossiper.ts) at scale, for the "before" column of the
 * gossip-scale figures: every member, once a round (1 s) at its own phase, pushes its whole view
 * to 2 random members and gets the merged view back (fanout 2, push-pull); every member raises
 * its heartbeat each round; a member is judged down when phi-accrual (the gossiper's detector
 * and options, src/core/membership/phi-accrual.ts) passes 8. Message bytes are those of the real
 * codec (encodeRequest, binary gossip) for a view of N members, in a frame.
 *
 * The engine's Gossiper itself took 26 minutes for 1,000 members in the old vitest simulation,
 * mostly encoding 100 KB views; the model tracks only what the figures need (who knows the
 * joiner, the heartbeats of the dead member and of 8 sampled live ones), so it runs 1,000
 * members in seconds. Its 10- and 100-member figures can be checked against the README's
 * figures of the real Gossiper (test/sim/gossip-scale.sim.test.ts).
 */
import type { ClusterView, MemberRecord } from '../src/core/membership/membership.js';
import { type PhiAccrualState, createDetector, heartbeat, phi } from '../src/core/membership/phi-accrual.js';
import { frameHeaderBytes } from '../src/core/wire/frames.js';
import { encodeRequest } from '../src/core/wire/codec.js';
import { SeededRandom } from '../src/sim/seeded-random.js';
import type { GossipScaleFigures } from './swim-scale.js';

const intervalMs = 1000;
const fanout = 2;
const phiThreshold = 8;
const checkMs = intervalMs / 10;
const sampledMembers = 8;
const quietRounds = 10;
const detectorOptions = { windowSize: 100, minStdDeviationMs: 500, acceptableHeartbeatPauseMs: 3 * intervalMs, firstHeartbeatEstimateMs: intervalMs };

/** The bytes of one gossip frame carrying a view of `members` members (heartbeats of two varint bytes, no ring, as the old simulation had). */
export function legacyGossipFrameBytes(members: number): number {
  const records: MemberRecord[] = Array.from({ length: members }, (_, index) => ({
    id: `n${index}`,
    address: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:7000`,
    generation: 1,
    heartbeat: 1000,
    status: 'up',
  }));
  const view: ClusterView = { members: Object.fromEntries(records.map((record) => [record.id, record])), ring: null, bucketProperties: {}, bucketPropertiesVersion: 0 };
  // A frame header, then the request as the peer connection encodes it (a reply carries the merged view, the same size).
  return frameHeaderBytes + encodeRequest({ type: 'gossip', state: view }).length;
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
  const detectors: PhiAccrualState[][] = sampled.map(() => Array.from({ length: nodes }, () => createDetector(detectorOptions)));
  let bytesSent = 0;
  /** (watched member, observer) pairs that ever judged a live member down. */
  const falseDowns = new Set<number>();
  let nowMs = 0;

  const learn = (watched: number, observer: number, heartbeatValue: number, atMs: number): void => {
    if (heartbeatValue <= (known[watched] as number[])[observer]!) return;
    (known[watched] as number[])[observer] = heartbeatValue;
    (detectors[watched] as PhiAccrualState[])[observer] = heartbeat((detectors[watched] as PhiAccrualState[])[observer]!, atMs);
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

  const down = (slot: number, observer: number): boolean => phi((detectors[slot] as PhiAccrualState[])[observer]!, nowMs) > phiThreshold;
  const countFalseDowns = (): void => {
    sampled.forEach((watched, slot) => {
      if (killed[watched]) return;
      for (let observer = 0; observer < nodes; observer++) if (observer !== watched && present[observer] && !killed[observer] && down(slot, observer)) falseDowns.add(slot * nodes + observer);
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
