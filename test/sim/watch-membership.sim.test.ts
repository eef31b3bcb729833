import { afterEach, describe, expect, it } from 'vitest';
import type { WatchFilter } from '../../src/core/watch/watch-cursor.js';
import type { WatchItem } from '../../src/engine/watches.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import { isKvError } from '../../src/util/errors.js';
import { collect, versionsOf } from './watch-items.js';

/**
 * Goal (README, "Watches"; issue 22): a watcher that resumes with its last id misses nothing, or
 * is told `compacted`, also when a node whose log its id names has left the cluster meanwhile
 * and the node it resumes on already knows it left. The leaver decides the key's last version
 * (its log alone holds it) after the watcher disconnected; the watcher resumes on a node that no
 * longer counts the leaver as a member. The resumed watch reads the leaver's log to its end
 * (the leaver still answers), or, when the leaver is gone, says `compacted` for it; it never goes
 * silent; and a node that has left decides no more versions (it refuses consistent
 * operations), since watches read its log no more. And once it has read a departed node to its
 * end, its later ids no longer name that node, so a resume after that does not report
 * `compacted` for a log that held nothing more.
 * This is the jepsen-lite `watch` run under `membership`, seed 3, of issue 22 (one version
 * missed) made deterministic. Likewise a node that joined and decided a version before any watch
 * asked it (its log kept nothing yet): a watch resumed from an id that does not name it reads it
 * from its start and says `compacted` for it; and a member the watch never read (its polls
 * failed from the start) that is removed is `compacted`, not passed over. SIM_SEED=<n> replays
 * one seed.
 */

const bucket = 'config';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2601, 2602];
const filter: WatchFilter = { bucket, kind: 'key', name: 'k' };

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const lastIdOf = (items: readonly WatchItem[]): string => {
  for (const item of [...items].reverse()) if (item.kind !== 'overflow') return item.id;
  throw new Error('the watch sent no item with an id');
};
const kinds = (items: readonly WatchItem[]): string => items.map((item) => (item.kind === 'decided' ? `decided ${item.version}` : item.kind)).join(', ');

/** Runs the simulation until `predicate` holds; on failure says what the watch had received by then. */
async function waitFor(sim: SimCluster, predicate: () => boolean, deadlineMs: number, what: string, items: readonly WatchItem[]): Promise<void> {
  try {
    await sim.runUntil(predicate, deadlineMs, what);
  } catch (error) {
    throw new Error(`${(error as Error).message}; the watch received: ${kinds(items) || 'nothing'}`, { cause: error });
  }
}

/**
 * Starts four nodes, a watch on the first that sees version 1 (decided by the leaver, the last
 * node), disconnects it, has the leaver decide version 2, and lets it leave until the second
 * node holds it as left. Answers the members and the id the watcher holds.
 */
async function leaveAfterTheLastWrite(seed: number): Promise<{ sim: SimCluster; resumeOn: SimMember; leaver: SimMember; lastId: string }> {
  const sim = (cluster = await SimCluster.start(seed, 4, config));
  const [first, resumeOn, , leaver] = sim.members as [SimMember, SimMember, SimMember, SimMember];
  const stream = first.node.watch(filter);
  const watch = collect(stream);
  await sim.runUntil(() => watch.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
  const write = async (text: string): Promise<number> => {
    const outcome = await sim.drive(
      leaver.node.consistent(bucket, 'k', { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from(text) }, condition: { kind: 'none' } }, 5000),
    );
    return outcome.version;
  };
  expect(await write('one')).toBe(1);
  await waitFor(sim, () => versionsOf(watch.items).includes(1), 10_000, 'the watch reports version 1', watch.items);
  stream.close();
  await sim.drive(watch.done);
  const lastId = lastIdOf(watch.items);
  expect(await write('two')).toBe(2);
  await leaver.node.leave();
  await sim.runUntil(
    () => leaver.node.gossiper.ownStatus === 'left' && resumeOn.node.gossiper.view.members[leaver.nodeId]?.status === 'left',
    300_000,
    'the leaver has left, as the node the watcher resumes on sees it',
  );
  return { sim, resumeOn, leaver, lastId };
}

describe('simulation: a watch resumed across membership changes', () => {
  it.each(seeds)('seed %i: the leaver still answers: the resumed watch reads its log to the end and reports the last version', async (seed) => {
    const { sim, resumeOn, lastId } = await leaveAfterTheLastWrite(seed);
    const resumed = collect(resumeOn.node.watch(filter, lastId));
    await waitFor(
      sim,
      () => versionsOf(resumed.items).includes(2) || resumed.items.some((item) => item.kind === 'compacted'),
      20_000,
      'the resumed watch reports version 2',
      resumed.items,
    );
    expect(kinds(resumed.items), `seed ${seed}: the leaver answered, so nothing is compacted`).not.toContain('compacted');
    expect(versionsOf(resumed.items)).toEqual([2]);
  });

  it.each(seeds)('seed %i: a node that has left refuses consistent operations, so it decides nothing a watch would no longer read', async (seed) => {
    const { sim, leaver } = await leaveAfterTheLastWrite(seed);
    const refused = await sim.drive(
      leaver.node
        .consistent(bucket, 'k', { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from('late') }, condition: { kind: 'none' } }, 5000)
        .then(
          () => 'applied',
          (error: unknown) => (isKvError(error) ? `${error.code} ${String(error.details?.applied)}` : String(error)),
        ),
    );
    expect(refused).toBe('KV_NOT_READY no');
  });

  it.each(seeds)('seed %i: the leaver is gone: the resumed watch says compacted for it, and a resume after that does not again', async (seed) => {
    const { sim, resumeOn, leaver, lastId } = await leaveAfterTheLastWrite(seed);
    await sim.crash(leaver);
    const resumedStream = resumeOn.node.watch(filter, lastId);
    const resumed = collect(resumedStream);
    await waitFor(
      sim,
      () => resumed.items.some((item) => item.kind === 'compacted'),
      20_000,
      'the resumed watch says compacted for the departed leaver',
      resumed.items,
    );
    const compacted = resumed.items.find((item) => item.kind === 'compacted');
    expect(compacted?.kind === 'compacted' && compacted.nodes).toEqual([leaver.nodeId]);
    await sim.runUntil(() => resumed.items.some((item) => item.kind === 'ready'), 10_000, 'the resumed watch is ready');
    await sim.clock.advance(2000);
    resumedStream.close();
    await sim.drive(resumed.done);
    const again = collect(sim.members[2]!.node.watch(filter, lastIdOf(resumed.items)));
    await sim.runUntil(() => again.items.some((item) => item.kind === 'ready'), 10_000, 'the second resume is ready');
    await sim.clock.advance(3000);
    expect(kinds(again.items), `seed ${seed}: the departed leaver's log was settled by the first resume`).not.toContain('compacted');
  });

  it.each(seeds)('seed %i: a joiner decided a version before any watch asked it: the resumed watch says compacted for it, never silence', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 3, config));
    const first = sim.members[0]!;
    const stream = first.node.watch(filter);
    const watch = collect(stream);
    await waitFor(sim, () => watch.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready', watch.items);
    stream.close();
    await sim.drive(watch.done);
    const joiner = await sim.addMember();
    await sim.runUntil(
      () => joiner.node.gossiper.ring !== null && first.node.gossiper.view.members[joiner.nodeId]?.status === 'up',
      60_000,
      'the joiner has a ring, and the first node counts it as a member',
    );
    const outcome = await sim.drive(
      joiner.node.consistent(
        bucket,
        'k',
        { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from('one') }, condition: { kind: 'none' } },
        5000,
      ),
    );
    expect(outcome.version).toBe(1);
    const resumed = collect(first.node.watch(filter, lastIdOf(watch.items)));
    await waitFor(
      sim,
      () => versionsOf(resumed.items).includes(1) || resumed.items.some((item) => item.kind === 'compacted'),
      20_000,
      'the resumed watch reports version 1, or says compacted for the joiner',
      resumed.items,
    );
    const compacted = resumed.items.find((item) => item.kind === 'compacted');
    if (!versionsOf(resumed.items).includes(1)) expect(compacted?.kind === 'compacted' && compacted.nodes).toEqual([joiner.nodeId]);
  });

  it.each(seeds)('seed %i: a member that never answered the watch and is then removed is compacted, not passed over', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 4, config));
    const [first, , , gone] = sim.members as [SimMember, SimMember, SimMember, SimMember];
    await sim.crash(gone);
    const watch = collect(first.node.watch(filter));
    await waitFor(sim, () => watch.items.some((item) => item.kind === 'ready'), 20_000, 'the watch is ready (the dead member counts as asked)', watch.items);
    await sim.runUntil(() => !first.node.gossiper.isUp(gone.nodeId), 60_000, 'the dead member is judged down');
    first.node.removeMember(gone.nodeId);
    await waitFor(
      sim,
      () => watch.items.some((item) => item.kind === 'compacted'),
      20_000,
      'the watch says compacted for the removed member it never read',
      watch.items,
    );
    const compacted = watch.items.find((item) => item.kind === 'compacted');
    expect(compacted?.kind === 'compacted' && compacted.nodes).toEqual([gone.nodeId]);
  });
});
