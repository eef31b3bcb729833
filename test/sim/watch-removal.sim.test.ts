import { afterEach, describe, expect, it } from 'vitest';
import { replicaGroups } from '../../src/core/consensus/replica-groups.js';
import { partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import type { WatchFilter } from '../../src/core/watch/watch-cursor.js';
import type { WatchItem } from '../../src/engine/watches.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { isKvError } from '../../src/util/errors.js';
import { collect, versionsOf } from './watch-items.js';

/**
 * Goal (issue 22; docs/CONSENSUS.md, "Watches"): a node removed while it still runs (judged down
 * while cut off, so it could not drain as a leaver does) decides no version a watch misses. A
 * watch reads a departed node's log to its end once and then never again, so the acceptors that
 * hold the node as removed refuse its proposals. The construction: the node is cut off, removed,
 * and the watch settles its log; then everything but SWIM gets through to it, so, alone in its
 * view, it fetches the newest ring from a seed (`cluster-state` carries no member records) and
 * holds the ring planned without it before it hears of its removal (the two travel apart in
 * gossip), and a client writes through it. The watcher must report the key's final version, or
 * say `compacted` after the write was answered. Before the fence the write was decided at
 * version 2 and never reported, on every seed. The same when two replicas of the key have not
 * heard of the removal (their SWIM news of it is lost): the watch's node tells every member
 * before the last read. And a removed node that still answers is told too, so it refuses that
 * read (it may still log a decision made with acceptances from before the fence) and the watch
 * says `compacted` for it. SIM_SEED=<n> replays one seed.
 */

const bucket = 'config';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2801, 2802, 2803];

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const kinds = (items: readonly WatchItem[]): string =>
  items
    .map((item) => (item.kind === 'decided' ? `decided ${item.version}` : item.kind === 'compacted' ? `compacted ${item.nodes.join('+')}` : item.kind))
    .join(', ');

/** A key of the bucket whose replicas (n_val 3) include `node`. */
function keyOn(sim: SimCluster, node: string): string {
  const ring = sim.members[0]!.node.gossiper.ring!;
  for (let index = 0; ; index++) {
    const key = `key-${index}`;
    if (preferenceList(ring, partitionOf(bucket, key, ring.partitionCount), 3).includes(node)) return key;
  }
}

async function write(sim: SimCluster, member: SimMember, key: string, text: string): Promise<string> {
  return sim.drive(
    member.node
      .consistent(bucket, key, { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from(text) }, condition: { kind: 'none' } }, 5000)
      .then(
        (outcome) => `version ${outcome.version}`,
        (error: unknown) => (isKvError(error) ? `${error.code} ${String(error.details?.applied)} ${error.message}` : String(error)),
      ),
  );
}

describe('simulation: a watch and a node removed while it still runs', () => {
  it.each(seeds)('seed %i: what the removed node decides after the watch read its log to the end is reported, or refused', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 4, config));
    const [remover, watching, , removed] = sim.members as [SimMember, SimMember, SimMember, SimMember];
    const key = keyOn(sim, removed.nodeId);
    const filter: WatchFilter = { bucket, kind: 'key', name: key };
    const watch = collect(watching.node.watch(filter));
    await sim.runUntil(() => watch.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
    expect(await write(sim, remover, key, 'one')).toBe('version 1');
    // Cut off, the node is judged down and removed; the watch reads (fails to read) its log a last time and drops it.
    sim.network.partition([sim.members.filter((member) => member !== removed).map((member) => member.address), [removed.address]]);
    await sim.runUntil(() => !remover.node.gossiper.isUp(removed.nodeId), 60_000, 'the remover judges the node down');
    remover.node.removeMember(removed.nodeId);
    await sim.runUntil(
      () => watch.items.some((item) => item.kind === 'compacted' && item.nodes.includes(removed.nodeId)),
      60_000,
      `the watch has settled the removed node's log (saw ${kinds(watch.items)})`,
    );
    // The link comes back for everything but SWIM: the removed node, alone in its view, fetches the
    // newest ring from a seed (`cluster-state`, which carries no member records), so it holds the
    // ring planned without it but not the record of its removal (the two travel apart in gossip).
    sim.network.heal();
    sim.network.faults.blocks = (source, target, message) => (source === removed.address || target === removed.address) && message.type.startsWith('swim-');
    await sim.runUntil(() => removed.node.gossiper.ring?.version === remover.node.gossiper.ring?.version, 60_000, 'the removed node holds the newest ring');
    expect(removed.node.gossiper.ownStatus, `seed ${seed}: the removed node has not heard of its removal`).not.toBe('removed');
    const late = await write(sim, removed, key, 'late');
    const answeredAt = watch.items.length;
    const final = await sim.drive(remover.node.consistent(bucket, key, { kind: 'read' }, 5000));
    await sim.runUntil(
      () => versionsOf(watch.items).includes(final.version) || watch.items.slice(answeredAt).some((item) => item.kind === 'compacted'),
      20_000,
      `seed ${seed}: the watcher reports version ${final.version} (the removed node's write answered ${late}), or says compacted after it (saw ${kinds(watch.items)})`,
    );
  });

  it.each(seeds)('seed %i: replicas that have not heard of the removal are told before the watch reads the removed node a last time', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 5, config));
    const [remover, watching, unaware, alsoUnaware, removed] = sim.members as [SimMember, SimMember, SimMember, SimMember, SimMember];
    const unawareAddresses = new Set([unaware.address, alsoUnaware.address]);
    const watch = collect(watching.node.watch({ bucket, kind: 'prefix', name: '' }));
    await sim.runUntil(() => watch.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
    // Two replicas hear nothing of the removal by gossip: every SWIM message to them that says the
    // node was removed is lost, bar one that pushes that record alone (what a watch's fence sends).
    // The removed node hears no SWIM at all. It is cut off, judged down and removed.
    const tells = (message: PeerRequest | PeerReply): boolean => {
      if (!message.type.startsWith('swim-')) return false;
      const records: readonly { readonly id: string; readonly state: string }[] =
        'updates' in message ? message.updates : 'records' in message ? message.records : message.type === 'swim-digest' ? message.entries : [];
      return records.some((record) => record.id === removed.nodeId && record.state === 'removed');
    };
    const pushAlone = (message: PeerRequest | PeerReply): boolean => message.type === 'swim-records' && message.records.length === 1;
    sim.network.faults.blocks = (source, target, message) =>
      source === removed.address || target === removed.address
        ? message.type.startsWith('swim-')
        : unawareAddresses.has(target) && tells(message) && !pushAlone(message);
    sim.network.partition([sim.members.filter((member) => member !== removed).map((member) => member.address), [removed.address]]);
    await sim.runUntil(() => !remover.node.gossiper.isUp(removed.nodeId), 60_000, 'the remover judges the node down');
    remover.node.removeMember(removed.nodeId);
    await sim.runUntil(
      () => watch.items.some((item) => item.kind === 'compacted' && item.nodes.includes(removed.nodeId)),
      120_000,
      `the watch has settled the removed node's log (saw ${kinds(watch.items)})`,
    );
    // Everything but SWIM comes back to the removed node: it fetches the newest ring from a seed.
    sim.network.heal();
    await sim.runUntil(() => removed.node.gossiper.ring?.version === remover.node.gossiper.ring?.version, 60_000, 'the removed node holds the newest ring');
    expect(removed.node.gossiper.ownStatus, `seed ${seed}: the removed node has not heard of its removal`).not.toBe('removed');
    // A key the removed node and the two unaware replicas are a majority of every group of, under its ring.
    const ring = removed.node.gossiper.ring!;
    const majorityOf = (group: readonly string[]) =>
      group.filter((node) => [removed, unaware, alsoUnaware].some((member) => member.nodeId === node)).length * 2 > group.length;
    let key = '';
    for (let index = 0; key === ''; index++) {
      if (replicaGroups(ring, partitionOf(bucket, `late-${index}`, ring.partitionCount), 3).every(majorityOf)) key = `late-${index}`;
    }
    const late = await write(sim, removed, key, 'late');
    const answeredAt = watch.items.length;
    const final = await sim.drive(remover.node.consistent(bucket, key, { kind: 'read' }, 5000));
    await sim.runUntil(
      () =>
        final.version === 0 ||
        watch.items.some((item) => item.kind === 'decided' && item.key === key && item.version === final.version) ||
        watch.items.slice(answeredAt).some((item) => item.kind === 'compacted'),
      20_000,
      `seed ${seed}: key ${key} is at version ${final.version} (the removed node's write answered ${late}): the watcher reports it, or says compacted after it (saw ${kinds(watch.items)})`,
    );
  });

  it.each(seeds)('seed %i: a removed node that still answers is told before its last read, so it refuses it and the watch says compacted', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 4, config));
    const [remover, watching, , removed] = sim.members as [SimMember, SimMember, SimMember, SimMember];
    const watch = collect(watching.node.watch({ bucket, kind: 'prefix', name: '' }));
    await sim.runUntil(() => watch.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
    // The node hears no SWIM (bar a push of one record, what a watch's fence sends), so it is
    // judged down and removed while it still answers every other request, the watch's polls too.
    sim.network.faults.blocks = (source, target, message) =>
      (source === removed.address || target === removed.address) &&
      message.type.startsWith('swim-') &&
      !(message.type === 'swim-records' && message.records.length === 1);
    await sim.runUntil(() => !remover.node.gossiper.isUp(removed.nodeId), 60_000, 'the remover judges the node down');
    remover.node.removeMember(removed.nodeId);
    await sim.runUntil(
      () => watch.items.some((item) => item.kind === 'compacted' && item.nodes.includes(removed.nodeId)),
      60_000,
      `seed ${seed}: the watch says compacted for the removed node (saw ${kinds(watch.items)})`,
    );
    // It was told by the watch's node (no gossip reached it), and serves no data since.
    expect(removed.node.gossiper.ownStatus, `seed ${seed}`).toBe('removed');
    expect(await write(sim, removed, 'after', 'late')).toMatch(/^KV_/);
  });
});
