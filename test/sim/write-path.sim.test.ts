import { afterEach, describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { plannedRing, preferenceList } from '../../src/core/ring/ring.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { isKvError } from '../../src/util/errors.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goals of the write path, in simulation (virtual time, so the durations below are exact and
 * not wall-clock figures):
 * - one deadline per request: a write whose coordinating replica is another node answers within
 *   its timeout_ms, not within twice it;
 * - while a ring change is under way, a write is acknowledged only once a quorum of the key's
 *   planned replicas holds it, so that after the flip an r=2 read of the new replicas meets it.
 */

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const refused = (message: string): PeerReply => ({ type: 'error', code: 'KV_UNAVAILABLE', message });

/** Replaces a member's peer handler by one that refuses the requests `refuse` picks. */
function refuseAt(sim: SimCluster, member: SimMember, refuse: (request: PeerRequest) => boolean): void {
  sim.network.register(member.address, async (request) => (refuse(request) ? refused(`test refuses ${request.type}`) : member.node.handlePeer(request)));
}

const replicaTraffic = new Set([
  'replica-get',
  'coordinate-put',
  'replica-put',
  'swim-ping',
  'swim-ping-req',
  'swim-gossip',
  'swim-digest',
  'swim-records',
  'cluster-state',
]);

describe('one deadline per request', () => {
  it.each([1, 2, 3])('seed %i: a forwarded write that then replicates answers 504 at its deadline, not after twice it', async (seed) => {
    cluster = await SimCluster.start(seed, 4, { buckets: { pair: { nVal: 2, r: 1, w: 2 } }, limits: { requestTimeoutMs: 2000, peerTimeoutMs: 5000 } });
    const sim = cluster;
    const entry = sim.members[0]!;
    const ring = entry.node.gossiper.ring!;
    // A key neither of whose two replicas is the entry node: a forward, then a replica write.
    const key = Array.from({ length: 500 }, (_, index) => `k${index}`).find(
      (candidate) => !preferenceList(ring, partitionOf('pair', candidate, ring.partitionCount), 2).includes(entry.nodeId),
    )!;
    Object.assign(sim.network.faults, { minDelayMs: 300, maxDelayMs: 300 });
    const before = sim.clock.nowMs();
    let code = 'ok';
    await sim
      .drive(
        entry.node.put({ bucket: 'pair', key, value: Buffer.from('v'), contentType: 'text/plain', context: undefined, options: { w: 2, timeoutMs: 1000 } }),
      )
      .catch((error: unknown) => {
        code = isKvError(error) ? error.code : String(error);
      });
    const tookMs = sim.clock.nowMs() - before;
    // Forward 600 ms + replica round trip 600 ms = 1,200 ms of work against a 1,000 ms deadline.
    expect(code).toBe('KV_TIMEOUT');
    expect(tookMs, `the write answered after ${tookMs} ms of virtual time`).toBeLessThanOrEqual(1000 + 20);
  });
});

describe('writes during a ring change', () => {
  it.each([1, 2, 3])('seed %i: a write is acknowledged only when a quorum of the planned replicas holds it', async (seed) => {
    cluster = await SimCluster.start(seed, 3, { antiEntropy: { enabled: false }, hintedHandoff: { enabled: false } });
    const sim = cluster;
    const [first, second, third] = sim.members as [SimMember, SimMember, SimMember];
    // The old replicas refuse partition streams, so the plan that adds a fourth node stays a plan.
    for (const member of [first, second, third]) refuseAt(sim, member, (request) => !replicaTraffic.has(request.type));
    const joiner = await sim.addMember();
    await sim.runUntil(
      () => sim.members.every((member) => member.node.gossiper.ring?.next?.includes(joiner.nodeId) === true),
      60_000,
      'the join is planned everywhere',
    );
    const ring = first.node.gossiper.ring!;
    const planned = plannedRing(ring);
    // A key that moves: its current replicas lose one node (the leaver) to the joiner.
    const moved = Array.from({ length: 2000 }, (_, index) => `k${index}`)
      .map((key) => {
        const partition = partitionOf('demo', key, ring.partitionCount);
        return { key, now: preferenceList(ring, partition, 3), next: preferenceList(planned, partition, 3) };
      })
      .find(({ now, next }) => next.includes(joiner.nodeId) && now.some((node) => !next.includes(node)));
    expect(moved, 'some key moves to the joiner').toBeDefined();
    const { key, now, next } = moved!;
    const byId = (id: string): SimMember => sim.members.find((member) => member.nodeId === id)!;
    const leaver = byId(now.find((node) => !next.includes(node))!);
    const [, other] = now.filter((node) => next.includes(node)).map(byId) as [SimMember, SimMember];
    // One kept replica and the joiner lose every replica write: only the other kept replica and the leaver can take it.
    refuseAt(sim, other, (request) => request.type === 'replica-put' || !replicaTraffic.has(request.type));
    refuseAt(sim, joiner, (request) => request.type === 'replica-put');

    let acknowledged = true;
    await sim
      .drive(leaver.node.put({ bucket: 'demo', key, value: Buffer.from('during the plan'), contentType: 'text/plain', context: undefined, options: { w: 2 } }))
      .catch(() => {
        acknowledged = false;
      });
    const holders = await Promise.all(next.map(async (id) => ((await byId(id).node.getLocal('demo', key)) === undefined ? 0 : 1)));
    const plannedHolders = holders.reduce<number>((sum, held) => sum + held, 0);
    if (acknowledged)
      expect(plannedHolders, `acknowledged, but only ${plannedHolders} of the planned replicas ${next.join(',')} hold it`).toBeGreaterThanOrEqual(2);

    // With the kept replicas answering again, the same write is acknowledged: the rule refuses only what it must.
    refuseAt(sim, other, (request) => !replicaTraffic.has(request.type));
    const partition = partitionOf('demo', key, ring.partitionCount);
    const sibling = Array.from({ length: 20_000 }, (_, index) => `again${index}`).find(
      (candidate) => partitionOf('demo', candidate, ring.partitionCount) === partition,
    )!;
    await sim.drive(
      leaver.node.put({ bucket: 'demo', key: sibling, value: Buffer.from('ok'), contentType: 'text/plain', context: undefined, options: { w: 2 } }),
    );
    const heldAgain = await Promise.all(next.map(async (id) => ((await byId(id).node.getLocal('demo', sibling)) === undefined ? 0 : 1)));
    expect(heldAgain.reduce<number>((sum, held) => sum + held, 0)).toBeGreaterThanOrEqual(2);
  });
});
