import { afterEach, describe, expect, it } from 'vitest';
import { readContext } from '../../src/core/versioning/context.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import type { WriteOptions } from '../../src/engine/kv-service.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goals of the actors that issue dots, in simulation (issue 18, item 1):
 * - restarts do not grow a key's clock, so no clock limit can make a delete stop covering the
 *   value it deleted: a delete acknowledged at w=all with an r=all read's context stays a delete;
 * - a node that lost its own copy of a key (a power loss before its write was synced) never
 *   issues a dot that claims the lost write as seen: an acknowledged write survives as a sibling.
 */

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [1801, 1802, 1803];
const bucket = 'demo';
const key = 'hot';

async function put(sim: SimCluster, member: SimMember, value: string, withReadContext: boolean, options: WriteOptions = { w: 'all' }): Promise<void> {
  const read = withReadContext ? await sim.drive(member.node.get(bucket, key, { r: 'all' })) : undefined;
  await sim.drive(
    member.node.put({
      bucket,
      key,
      value: Buffer.from(value),
      contentType: 'text/plain',
      context: read === undefined ? undefined : readContext(read.clock),
      options,
    }),
  );
}

async function restart(sim: SimCluster, member: SimMember, how: 'clean' | 'power-loss'): Promise<void> {
  if (how === 'clean') await sim.stopCleanly(member);
  else await sim.crash(member, 'power-loss');
  await sim.restart(member);
  await sim.runUntil(() => sim.ringSettled(), 60_000, `ring settles after ${member.nodeId} restarts`);
}

async function liveValues(sim: SimCluster, member: SimMember): Promise<string[]> {
  const object = await sim.drive(member.node.get(bucket, key, { r: 'all' }));
  return object === undefined ? [] : liveSiblings(object, member.node.nowMs()).map((sibling) => Buffer.from(sibling.value).toString());
}

describe('a delete stays a delete whatever the restarts and the clock limit', () => {
  it.each(seeds)('seed %i: restart, write with a read context, restart, delete at w=all: the key reads as deleted', async (seed) => {
    cluster = await SimCluster.start(seed, 3, { antiEntropy: { enabled: false } }, { clockSkewMs: 0 });
    const sim = cluster;
    const [first, , third] = sim.members as [SimMember, SimMember, SimMember];
    // Every node writes the key twice (each with what it read), so each has history in its clock.
    for (const member of sim.members) for (const round of [1, 2]) await put(sim, member, `${member.nodeId}-${round}`, true);
    await restart(sim, third, 'clean');
    await put(sim, third, 'V', true);
    expect(await liveValues(sim, first)).toEqual(['V']);
    await restart(sim, first, 'clean');
    const read = await sim.drive(first.node.get(bucket, key, { r: 'all' }));
    expect(read, 'the key is there before the delete').toBeDefined();
    await sim.drive(first.node.delete({ bucket, key, context: readContext(read!.clock), options: { w: 'all' } }));
    for (const member of sim.members) expect(await liveValues(sim, member), `a read through ${member.nodeId} after the acknowledged delete`).toEqual([]);
    // Restarts that stopped cleanly begin no new actor: the clock has one entry per node that wrote.
    for (const member of sim.members) {
      const clock = (await member.node.getLocal(bucket, key))?.clock ?? {};
      expect(Object.keys(clock), `the clock at ${member.nodeId}`).toHaveLength(3);
    }
  });
});

describe('a node that lost its own unsynced write never claims it as seen', () => {
  it.each(seeds)('seed %i: write at w=all, power loss of the writer, a blind write there: both stay as siblings', async (seed) => {
    cluster = await SimCluster.start(seed, 3, { antiEntropy: { enabled: false }, hintedHandoff: { enabled: false } }, { clockSkewMs: 0 });
    const sim = cluster;
    const [first] = sim.members as [SimMember];
    // Synced everywhere: node1 keeps this copy through the power loss, with its own key epoch in it.
    await put(sim, first, 'before', true, { w: 'all', dw: 'all' });
    // Acknowledged by every replica, but not synced anywhere (no dw): the power loss takes it from node1's disk.
    await put(sim, first, 'acknowledged', true);
    await restart(sim, first, 'power-loss');
    const local = await first.node.getLocal(bucket, key);
    expect(
      local === undefined ? [] : liveSiblings(local).map((sibling) => Buffer.from(sibling.value).toString()),
      'node1 kept the synced write and lost the other',
    ).toEqual(['before']);
    await put(sim, first, 'blind', false);
    expect((await liveValues(sim, first)).sort(), 'after the blind write at node1').toEqual(['acknowledged', 'blind']);
  });
});
