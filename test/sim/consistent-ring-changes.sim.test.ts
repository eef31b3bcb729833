import { afterEach, describe, expect, it } from 'vitest';
import { type TimedCall, checkKeyLinearizable } from '../../jepsen-lite/src/checkers/linearizable.js';
import { replicaGroups } from '../../src/core/consensus/replica-groups.js';
import { decodeDataKey, encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { type Ring, preferenceList, ringMembers } from '../../src/core/ring/ring.js';
import type { HandoffStatus } from '../../src/engine/handoff.js';
import type { ConsistentCommand, ConsistentOutcome } from '../../src/engine/kv-service.js';
import { RecordingStorage } from '../../src/sim/recording-storage.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * Consistent keys across ring changes on real RingNode engines (docs/CONSENSUS.md, "Ring
 * changes"): while nodes join, one leaves, and a dead one is removed, a client on every running
 * member increments a few consistent counters by read-then-If-Match. Judged by:
 * - jepsen-lite's linearizability checker (Wing–Gong–Lowe, per key) over the history of reads,
 *   compare-and-sets, refused compare-and-sets and unknown outcomes, with invocation and
 *   completion ordered by one global event counter (the real-time order the clients observed);
 * - no acknowledged increment lost: each counter's final value is at least the increments
 *   acknowledged on it, and at most those plus the unknown ones.
 * The run must have moved some key to another group and acknowledged increments (a run that
 * checked nothing fails). SIM_SEED=<n> replays one seed.
 */

const bucket = 'counters';
const config = { buckets: { [bucket]: { consistent: true } } };
const keys = ['c0', 'c1', 'c2', 'c3', 'c4', 'c5'];
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2301, 2302, 2303];

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

type Outcome = { ok: true; result: ConsistentOutcome } | { ok: false; code: string; applied: 'no' | 'unknown' };

/** One operation through `member`, bounded on the client side (a node that crashes under it never answers: unknown). */
async function attempt(sim: SimCluster, member: SimMember, key: string, command: ConsistentCommand): Promise<Outcome> {
  const operation = member.node.consistent(bucket, key, command, 1000).then(
    (result): Outcome => ({ ok: true, result }),
    (error: unknown): Outcome => {
      if (!isKvError(error)) throw error;
      const applied = error.code === 'KV_PRECONDITION_FAILED' || error.details?.applied === 'no' ? 'no' : 'unknown';
      return { ok: false, code: error.code, applied };
    },
  );
  const silence = sim.clock.sleep(3000).then((): Outcome => ({ ok: false, code: 'client-timeout', applied: 'unknown' }));
  return Promise.race([operation, silence]);
}

const numberOf = (outcome: ConsistentOutcome): number | null => (outcome.value === null ? null : Number(Buffer.from(outcome.value.value).toString()));

/** Every running member that has not left holds one settled ring whose members are exactly `expected`. */
function settledOn(sim: SimCluster, expected: readonly SimMember[]): boolean {
  const wanted = JSON.stringify(expected.map((member) => member.nodeId).sort());
  const running = sim.members.filter((member) => member.running && member.node.gossiper.ownStatus !== 'left');
  const version = running[0]?.node.gossiper.ring?.version;
  return running.every((member) => {
    const ring = member.node.gossiper.ring;
    return ring !== null && ring.next === null && JSON.stringify(ringMembers(ring).sort()) === wanted && ring.version === version;
  });
}

const groupsOf = (ring: Ring, key: string): string => JSON.stringify(replicaGroups(ring, partitionOf(bucket, key, ring.partitionCount), 3));

describe('simulation: consistent keys across joins, a leave and a removal', () => {
  it.each(seeds)('seed %i: read-then-If-Match counters stay linearizable and lose no acknowledged increment', async (seed) => {
    /**
     * Acceptor state is deleted only on a settled ring: until a change completes, a majority of a
     * key's old group may be the only holder of its decided state. Every member's storage reports
     * its deletes, judged against the ring the member holds at that moment.
     */
    const collectedEarly: string[] = [];
    const storage = (nodeId: string): RecordingStorage => {
      const recording = new RecordingStorage();
      recording.onDelete((space, dataKey) => {
        if (space !== 'paxos') return;
        const ring = sim.members.find((member) => member.nodeId === nodeId)?.node.gossiper.ring;
        if (ring?.next != null && collectedEarly.length < 10)
          collectedEarly.push(`${nodeId} deleted ${decodeDataKey(dataKey).key} while ring ${ring.version} was changing`);
      });
      return recording;
    };
    const sim = (cluster = await SimCluster.start(seed, 4, config, { storage }));
    const random = sim.random.fork();
    const startRing = sim.members[0]!.node.gossiper.ring!;
    let clock = 0;
    const history = new Map<string, TimedCall[]>(keys.map((key) => [key, []]));
    const acknowledged = new Map<string, number>(keys.map((key) => [key, 0]));
    const unknown = new Map<string, number>(keys.map((key) => [key, 0]));
    let stopping = false;
    /**
     * The keys the clients increment now. Half of them go quiet during each change: a key written
     * during a change is carried to the new group by the joint quorums themselves, but one last
     * decided before the change reaches the new group only by handoff's repair round.
     */
    let active = keys;
    const quietHalf = (round: number): void => {
      active = keys.filter((_key, index) => index % 2 === round % 2);
    };
    const busy = async (ms: number): Promise<void> => {
      active = keys;
      await sim.drive(sim.clock.sleep(ms));
    };
    let operationIndex = 0;
    /** Per key, the acknowledged increments (to which value, at which event): a read invoked after one must not see less. */
    const acknowledgedWrites = new Map<string, { value: number; at: number }[]>(keys.map((key) => [key, []]));
    const lost: string[] = [];
    const checkRead = (key: string, value: number | null, invokedAt: number): void => {
      const floor = Math.max(
        0,
        ...acknowledgedWrites
          .get(key)!
          .filter((write) => write.at < invokedAt)
          .map((write) => write.value),
      );
      if ((value ?? 0) < floor && lost.length < 10)
        lost.push(`${key}: a read invoked at event ${invokedAt} saw ${value}, after the increment to ${floor} was acknowledged`);
    };
    const record = (key: string, call: TimedCall['call'], invokeMs: number, completeMs: number): void => {
      history.get(key)!.push({ call, index: operationIndex++, invokeMs, completeMs });
    };

    /** One client's loop on `member` until the run stops or the member stops serving. */
    const client = async (member: SimMember): Promise<void> => {
      while (!stopping && member.running && member.node.gossiper.ownStatus !== 'left' && member.node.gossiper.ownStatus !== 'removed') {
        if (active.length === 0) {
          await sim.clock.sleep(20);
          continue;
        }
        const key = active[random.int(active.length)]!;
        const readAt = ++clock;
        const read = await attempt(sim, member, key, { kind: 'read' });
        if (read.ok) {
          record(key, { f: 'read', value: numberOf(read.result) }, readAt, ++clock);
          checkRead(key, numberOf(read.result), readAt);
        }
        if (read.ok) {
          const from = numberOf(read.result);
          const to = (from ?? 0) + 1;
          const condition = read.result.value === null ? ({ kind: 'absent' } as const) : ({ kind: 'version', version: read.result.version } as const);
          const writeAt = ++clock;
          const write = await attempt(sim, member, key, { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from(String(to)) }, condition });
          if (write.ok) {
            record(key, { f: 'cas', from, to }, writeAt, ++clock);
            acknowledgedWrites.get(key)!.push({ value: to, at: clock });
            acknowledged.set(key, acknowledged.get(key)! + 1);
          } else if (write.code === 'KV_PRECONDITION_FAILED') {
            record(key, { f: 'cas-refused', from }, writeAt, ++clock);
          } else if (write.applied === 'unknown') {
            record(key, { f: 'cas', from, to }, writeAt, Infinity);
            unknown.set(key, unknown.get(key)! + 1);
          }
        }
        await sim.clock.sleep(1 + random.int(40));
      }
    };
    const clients = sim.members.map((member) => client(member));
    const [n0, n1, n2, n3] = sim.members as [SimMember, SimMember, SimMember, SimMember];
    await busy(1500);
    // Two nodes join at once, with the clients running on every node (and on the joiners).
    quietHalf(0);
    const joinerA = await sim.addMember();
    const joinerB = await sim.addMember();
    clients.push(client(joinerA), client(joinerB));
    await sim.runUntil(() => settledOn(sim, [n0, n1, n2, n3, joinerA, joinerB]), 300_000, 'the two joins complete');
    await busy(1500);
    // One node leaves.
    quietHalf(1);
    await n1.node.leave();
    await sim.runUntil(() => settledOn(sim, [n0, n2, n3, joinerA, joinerB]) && n1.node.gossiper.ownStatus === 'left', 300_000, 'the leave completes');
    await busy(1500);
    // One node dies for good and is removed, while another joins.
    quietHalf(0);
    await sim.crash(n3);
    await sim.runUntil(() => !n0.node.gossiper.isUp(n3.nodeId), 60_000, 'the dead node is judged down');
    n0.node.removeMember(n3.nodeId);
    const joinerC = await sim.addMember();
    clients.push(client(joinerC));
    await sim.runUntil(() => settledOn(sim, [n0, n2, joinerA, joinerB, joinerC]), 300_000, 'the removal and the third join complete');
    await busy(1500);
    stopping = true;
    await sim.drive(Promise.all(clients));

    const endRing = n0.node.gossiper.ring!;
    const moved = keys.filter((key) => groupsOf(startRing, key) !== groupsOf(endRing, key));
    expect(moved.length, `seed ${seed}: some key changed its replica group (the run tested a move)`).toBeGreaterThan(0);
    const failures: string[] = [];
    const finals = new Map<string, number>();
    for (const key of keys) {
      const final = await sim.drive(attempt(sim, n0, key, { kind: 'read' }));
      if (!final.ok) {
        failures.push(`${key}: the final read failed (${final.code})`);
        continue;
      }
      const value = numberOf(final.result) ?? 0;
      finals.set(key, value);
      const finalAt = ++clock;
      record(key, { f: 'read', value: numberOf(final.result) }, finalAt, ++clock);
      checkRead(key, numberOf(final.result), finalAt);
      const acked = acknowledged.get(key)!;
      const maybe = unknown.get(key)!;
      if (value < acked) failures.push(`${key}: ${acked} increments acknowledged, the counter reads ${value} (acknowledged increments lost)`);
      if (value > acked + maybe)
        failures.push(`${key}: the counter reads ${value}, above ${acked} acknowledged + ${maybe} unknown (an increment counted twice)`);
    }
    failures.push(...lost, ...collectedEarly);
    const verdicts = keys.map((key) => checkKeyLinearizable(key, history.get(key)!));
    for (const verdict of verdicts)
      if (verdict.verdict !== 'valid')
        failures.push(`${verdict.key}: ${verdict.verdict} (${verdict.operations} operations, unplaced ${JSON.stringify(verdict.unplaced ?? [])})`);
    const total = [...acknowledged.values()].reduce((sum, count) => sum + count, 0);
    expect(total, `seed ${seed}: increments were acknowledged (the run did something)`).toBeGreaterThan(20);
    expect(failures, `seed ${seed}: ${total} increments acknowledged, keys moved: ${moved.join(', ')}`).toEqual([]);
    // The repair rounds of handoff ran (on the members still running): the path under test was taken.
    let repaired = 0;
    for (const member of sim.members.filter((each) => each.running))
      repaired += ((await sim.drive(member.node.status())).handoff as HandoffStatus).consistentKeysRepaired;
    expect(repaired, `seed ${seed}: consistent keys were given repair rounds by handoff`).toBeGreaterThan(0);

    // Stale acceptor state is collected: once the changes completed, no running member of the ring
    // keeps a record of a key whose group no longer includes it, and some member had one to delete.
    const members = sim.members.filter((member) => member.running && ringMembers(endRing).includes(member.nodeId));
    const stale = async (): Promise<string[]> => {
      const found: string[] = [];
      for (const member of members) {
        for (const key of keys) {
          const group = preferenceList(endRing, partitionOf(bucket, key, endRing.partitionCount), 3);
          if (!group.includes(member.nodeId) && (await member.storage.paxos.get(encodeDataKey(bucket, key))) !== undefined)
            found.push(`${member.nodeId} holds ${key} (group ${group.join(', ')})`);
        }
      }
      return found;
    };
    await sim.runUntil(async () => (await stale()).length === 0, 120_000, `stale acceptor state collected (still: ${(await stale()).join('; ')})`, 500);
    let collected = 0;
    for (const member of members) collected += ((await sim.drive(member.node.status())).handoff as HandoffStatus).consistentKeysCollected;
    expect(collected, `seed ${seed}: some member deleted the acceptor state of a key that moved away from it`).toBeGreaterThan(0);
    // And the counters read the same after the collection: no decided state lived only there.
    for (const key of keys) {
      const after = await sim.drive(attempt(sim, n0, key, { kind: 'read' }));
      expect(after.ok && (numberOf(after.result) ?? 0), `seed ${seed}: ${key} after collection`).toBe(finals.get(key));
    }
  });
});
