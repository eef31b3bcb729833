import { describe, expect, it } from 'vitest';
import { defaultSwimConfig } from '../../src/core/membership/swim.js';
import { SwimCluster } from '../../src/sim/swim-cluster.js';

/**
 * Goal (issue 21): a member's table does not keep every member there ever was. Members held dead,
 * left or removed are forgotten forgetDownAfterMs after they became so (an hour by default; a
 * minute here), so a table holds the live members and the recent departures. And a forgotten
 * member does not come back: a stale "alive" record of a dead member is probed and judged dead
 * again, and one of a removed member that still runs is corrected by its own digests, which carry
 * its removal (beating every record of it). A member the engine retains (a ring owner: the
 * gossiper retains every node its ring names) is kept however long it is dead. Seeds replay with SIM_SEED.
 */

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [31, 32];
const roundMs = defaultSwimConfig.probeIntervalMs;
const forgetDownAfterMs = 60_000;

describe('SWIM forgets members long gone', () => {
  it.each(seeds)('seed %i: dead and removed members are forgotten after the delay, and stale records of them do not bring them back', (seed) => {
    const cluster = new SwimCluster({ seed, members: 40, config: { forgetDownAfterMs } });
    cluster.runFor(5 * roundMs);
    // Records as a member that is cut off from here on would keep them.
    const staleRemoved = cluster.member('n1').recordOf('n3');
    const staleDead = cluster.member('n1').recordOf('n30');
    expect(staleRemoved?.state).toBe('alive');
    for (let index = 30; index < 40; index++) cluster.kill(`n${index}`);
    // n3 is removed (`ringkv remove`) while it still runs, as a removed node may.
    cluster.member('n0').remove('n3', cluster.nowMs);
    const stayers = cluster.liveIds.filter((id) => id !== 'n3');
    // n31 stands for a ring owner that died: the engine retains it until it is removed.
    for (const id of stayers) cluster.member(id).setRetained((member) => member === 'n31');
    const held = (id: string): number => [...cluster.member(id).members].length;
    const gone = (): string[] => stayers.filter((id) => held(id) !== stayers.length + 1 || cluster.member(id).stateOf('n31') !== 'dead');
    // Everyone holds the departures down first (the suspicion timeout), then forgets them.
    cluster.runUntil(
      () => stayers.every((id) => cluster.member(id).stateOf('n30') === 'dead' && cluster.member(id).stateOf('n3') === 'removed'),
      120 * roundMs,
      () => 'the departures are known',
    );
    expect(stayers.filter((id) => held(id) === 40).length, `seed ${seed}: every table still holds the departures just after`).toBe(stayers.length);
    cluster.runUntil(
      () => gone().length === 0,
      forgetDownAfterMs + 60 * roundMs,
      () =>
        `${gone()
          .map((id) => `${id} holds ${held(id)}`)
          .join(', ')} (want ${stayers.length + 1}, n31 dead)`,
    );

    // The cut-off member comes back with its stale records: n3 alive, n30 alive.
    cluster.member('n5').receive({ type: 'swim-gossip', from: 'n1', updates: [staleRemoved!, staleDead!] }, cluster.nowMs);
    const resurrected = (): string[] =>
      stayers.flatMap((id) => {
        const member = cluster.member(id);
        return ['n3', 'n30']
          .filter((gone) => member.stateOf(gone) === 'alive' || member.stateOf(gone) === 'suspect')
          .map((gone) => `${id} holds ${gone} ${member.stateOf(gone)}`);
      });
    expect(resurrected().length, `seed ${seed}: the stale records were taken (the check would see nothing otherwise)`).toBeGreaterThan(0);
    // Within a suspicion timeout and a few rounds nobody holds either alive again.
    cluster.runUntil(
      () => resurrected().length === 0,
      60 * roundMs,
      () => resurrected().slice(0, 5).join(', '),
    );
    expect(cluster.member('n5').stateOf('n3'), `seed ${seed}: the removed member's answer is its removal`).toBe('removed');
  });
});
