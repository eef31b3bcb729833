import { afterEach, describe, expect, it } from 'vitest';
import { leasedKeyChecksPerSweep, leaseSweepScanLimit } from '../../src/engine/leases.js';
import { type LeasedKey, LeasedKeyScanner } from '../../src/engine/leased-key-scanner.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * What the orphan check of leased keys costs (README, "Leases and ephemeral keys"; bench/RESULTS.md):
 * one pass of every node's walk over its acceptor state, counted in messages and Paxos rounds on a
 * quiet three-node simulated cluster whose sweepers are stopped (so only the pass is counted).
 * Consistent keys of a bucket nobody leases cost no message at all, however many there are: the
 * walk reads them from the node's own storage. A leased key held by its live lease costs one read
 * of its lease record per sweep's batch of keys (shared by the keys of one lease), on at most a
 * majority of its replicas. The figures are printed for bench/RESULTS.md. Seeds replay with SIM_SEED.
 */

const config = { buckets: { locks: { consistent: true }, plain: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2811, 2812];
const plainKeys = 100;
const leases = 4;
const keysPerLease = 10;

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const valueOf = (text: string) => ({ contentType: 'text/plain', value: Buffer.from(text) });

/** One whole pass of `member`'s walk, each batch checked as its sweeper checks it: the keys checked, their outcomes, and the messages and rounds it took. */
async function pass(sim: SimCluster, member: SimMember): Promise<{ checked: number; outcomes: string[]; messages: number; rounds: number }> {
  const node = member.node;
  const scanner = new LeasedKeyScanner({
    selfId: member.nodeId,
    ring: () => node.gossiper.ring,
    isUp: (other) => node.gossiper.isUp(other),
    bucketProperties: (bucket) => node.bucketProperties(bucket),
    space: member.storage.paxos,
  });
  // The commits of the writes before are delivered first: only the pass is counted.
  await sim.clock.advance(1000);
  const trace = sim.startTrace();
  const outcomes: string[] = [];
  for (;;) {
    const scan = await sim.drive(scanner.next(leaseSweepScanLimit, leasedKeyChecksPerSweep));
    const records = new Map();
    for (const leased of scan.keys as LeasedKey[]) outcomes.push(await sim.drive(node.leases.checkLeasedKey(leased, records)));
    if (scan.wrapped) break;
  }
  // Gossip runs on while virtual time advances; the check's own messages are the Paxos ones (prepare, propose, commit, and listings).
  const paxos = trace.filter((line) => line.includes(' deliver paxos-'));
  return {
    checked: outcomes.length,
    outcomes,
    messages: paxos.length,
    rounds: paxos.filter((line) => line.includes('deliver paxos-prepare ')).length / 2,
  };
}

describe('simulation: the cost of the orphan check of leased keys', () => {
  it.each(seeds)('seed %i: unleased consistent keys cost no message; a held leased key costs a share of one lease record read', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 3, config));
    for (const member of sim.members) member.node.leases.stop();
    const writer = sim.members[0]!.node;
    for (let index = 0; index < plainKeys; index++)
      await sim.drive(writer.consistent('plain', `key-${index}`, { kind: 'write', value: valueOf('v'), condition: { kind: 'none' } }));
    for (const member of sim.members) {
      const unleased = await pass(sim, member);
      expect(unleased.checked, `seed ${seed}: ${member.nodeId} found leased keys among ${plainKeys} unleased ones`).toBe(0);
      expect(unleased.messages, `seed ${seed}: ${member.nodeId}'s pass over ${plainKeys} unleased keys sent Paxos messages`).toBe(0);
    }

    for (let lease = 0; lease < leases; lease++) {
      const { id } = await sim.drive(writer.leases.grant(600));
      for (let index = 0; index < keysPerLease; index++)
        await sim.drive(writer.leases.put('locks', `lock-${lease}-${index}`, valueOf('held'), { kind: 'none' }, id));
    }
    let checked = 0;
    let rounds = 0;
    let messages = 0;
    for (const member of sim.members) {
      const leased = await pass(sim, member);
      expect(new Set(leased.outcomes), `seed ${seed}: ${member.nodeId}: every leased key is held`).toEqual(new Set(leased.checked === 0 ? [] : ['held']));
      console.log(`seed ${seed}: ${member.nodeId}: ${leased.checked} checks, ${leased.rounds} rounds, ${leased.messages} Paxos messages`);
      checked += leased.checked;
      rounds += leased.rounds;
      messages += leased.messages;
    }
    // Each key is checked by the first majority of its up replicas: two of three.
    expect(checked, `seed ${seed}: checks of ${leases * keysPerLease} leased keys`).toBe(2 * leases * keysPerLease);
    // One read of each lease's record per node and batch; a read refused for another node's newer ballot on the record takes a second round.
    expect(rounds, `seed ${seed}: record reads per lease per node per batch`).toBeLessThanOrEqual(2 * leases * sim.members.length);
    console.log(
      `seed ${seed}: a pass over ${plainKeys} unleased consistent keys: 0 rounds on every node; over ${leases * keysPerLease} leased keys in ${leases} leases (plus those ${plainKeys}): ${checked} checks, ${rounds} Paxos rounds (${(rounds / checked).toFixed(2)} per check), ${messages} Paxos messages (${(messages / checked).toFixed(2)} per check)`,
    );
  });
});
