import { afterEach, describe, expect, it } from 'vitest';
import { dataTypeKey } from '../../src/core/datatypes/data-type.js';
import { emptyContext } from '../../src/core/versioning/context.js';
import type { WatchItem } from '../../src/engine/watches.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';
import { isKvError } from '../../src/util/errors.js';
import { versionsOf } from './watch-items.js';

/**
 * Goal (issue 22; docs/CONSENSUS.md, "Watches", membership changes): a consistent write is in
 * the watch log of the node that decided it alone, and a watch reads a departed node's log to its
 * end once and then no more. So a leaving node stops taking consistent operations, waits for
 * those under way to finish, and only then marks itself `left`: no version it acknowledges is
 * decided after the others could see it left, and a watcher on another node sees every version
 * the leaver acknowledged (or is told `compacted`). The leaver writes one key without pause (a
 * refused write waits 10 ms of virtual time and tries again) while it leaves; the virtual time of
 * its flip to `left` is recorded where the status is set. The sibling on plain buckets: a write
 * is reported by the replica that coordinated it (issued its dot), so a leaver no longer in the
 * ring that still takes a `coordinate-put` (from a node whose ring is behind) would report a
 * write no watch reads: once drained it refuses one, applied "no" (so it issues no dot and logs nothing).
 * SIM_SEED=<n> replays one seed.
 */

const bucket = 'config';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2701, 2702, 2703];

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const kinds = (items: readonly WatchItem[]): string => items.map((item) => (item.kind === 'decided' ? `decided ${item.version}` : item.kind)).join(', ');

/** A write the leaver acknowledged: its version and the virtual time of the acknowledgement. */
interface Acknowledged {
  readonly version: number;
  readonly atMs: number;
}

/** What `node` answered to a consistent write: 'applied', or the error's code and `applied` detail. */
async function tryWrite(member: SimMember, text: string, timeoutMs: number): Promise<{ version: number } | string> {
  return member.node
    .consistent(bucket, 'k', { kind: 'write', value: { contentType: 'text/plain', value: Buffer.from(text) }, condition: { kind: 'none' } }, timeoutMs)
    .then(
      (outcome) => ({ version: outcome.version }),
      (error: unknown) => (isKvError(error) ? `${error.code} ${String(error.details?.applied)}` : String(error)),
    );
}

describe('simulation: a leaving node drains its consistent operations before it is left', () => {
  it.each(seeds)('seed %i: no version the leaver acknowledged is decided after its flip to left, and the watcher sees each one', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 4, config));
    const [watcherNode, , , leaver] = sim.members as [SimMember, SimMember, SimMember, SimMember];
    const items: WatchItem[] = [];
    const stream = watcherNode.node.watch({ bucket, kind: 'key', name: 'k' });
    const reading = (async () => {
      for await (const item of stream) items.push(item);
    })();
    await sim.runUntil(() => items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');

    let leftAtMs: number | undefined;
    const gossiper = leaver.node.gossiper;
    const setOwnStatus = gossiper.setOwnStatus.bind(gossiper);
    gossiper.setOwnStatus = async (status: 'leaving' | 'left') => {
      if (status === 'left') leftAtMs ??= sim.clock.nowMs();
      await setOwnStatus(status);
    };

    const acknowledged: Acknowledged[] = [];
    let refused = 0;
    let stop = false;
    const writing = (async () => {
      for (let index = 0; !stop; index++) {
        const answer = await tryWrite(leaver, `w${index}`, 2000);
        if (typeof answer !== 'string') {
          acknowledged.push({ version: answer.version, atMs: sim.clock.nowMs() });
          continue;
        }
        if (answer === 'KV_NOT_READY no') refused += 1;
        await sim.clock.sleep(10);
      }
    })();
    await sim.runUntil(() => acknowledged.length >= 5, 10_000, 'the leaver has acknowledged five writes');
    await leaver.node.leave();
    await sim.runUntil(
      () => gossiper.ownStatus === 'left' && watcherNode.node.gossiper.view.members[leaver.nodeId]?.status === 'left',
      300_000,
      'the leaver has left, as the watcher node sees it',
    );
    // A few more refused writes, then the loop ends.
    await sim.clock.advance(100);
    stop = true;
    await sim.drive(writing);

    const flip = leftAtMs!;
    const late = acknowledged.filter((write) => write.atMs > flip);
    expect(
      late.map((write) => `version ${write.version} at ${write.atMs} ms`),
      `seed ${seed}: writes acknowledged by the leaver after its flip to left at ${flip} ms`,
    ).toEqual([]);
    expect(refused, `seed ${seed}: the loop ran across the flip (its writes were refused from then on)`).toBeGreaterThan(0);

    const last = acknowledged[acknowledged.length - 1]!.version;
    const compacted = () => items.some((item) => item.kind === 'compacted');
    try {
      await sim.runUntil(() => versionsOf(items).includes(last) || compacted(), 20_000, `the watcher reports version ${last}, the last acknowledged`);
    } catch (error) {
      throw new Error(`${(error as Error).message}; the watch received: ${kinds(items)}`, { cause: error });
    }
    stream.close();
    await sim.drive(reading);
    if (!compacted()) {
      const seen = new Set(versionsOf(items));
      expect(
        acknowledged.filter((write) => !seen.has(write.version)).map((write) => write.version),
        `seed ${seed}: acknowledged versions the watcher never saw`,
      ).toEqual([]);
    }
  });

  it.each(seeds)(
    'seed %i: a leaver that has drained refuses to coordinate a plain write or apply a data type update from a node whose ring is behind',
    async (seed) => {
      const sim = (cluster = await SimCluster.start(seed, 4, config));
      const leaver = sim.members[3]!;
      await leaver.node.leave();
      await sim.runUntil(() => leaver.node.gossiper.ownStatus === 'left', 300_000, 'the leaver has left');
      const answer = await sim.drive(
        leaver.node
          .handlePeer({
            type: 'coordinate-put',
            bucket: 'plain',
            key: 'p',
            write: { value: Buffer.from('late'), contentType: 'text/plain', tombstone: false, context: emptyContext, nowMs: leaver.node.nowMs() },
            mode: 'siblings',
            sync: true,
          })
          .then((reply) =>
            reply.type === 'error' ? `${reply.code} ${String((JSON.parse(reply.details ?? '{}') as { applied?: string }).applied)}` : reply.type,
          ),
      );
      expect(answer, `seed ${seed}: a coordinate-put on the leaver after it drained`).toBe('KV_NOT_READY no');
      // A data type update is this replica's own change as well, reported in its log alone: refused too.
      const update = await sim.drive(
        leaver.node
          .handlePeer({ type: 'dt-update', bucket: 'plain', key: dataTypeKey('c'), update: { type: 'counter', increment: 1 }, sync: true, base: null })
          .then((reply) =>
            reply.type === 'error' ? `${reply.code} ${String((JSON.parse(reply.details ?? '{}') as { applied?: string }).applied)}` : reply.type,
          ),
      );
      expect(update, `seed ${seed}: a dt-update on the leaver after it drained`).toBe('KV_NOT_READY no');
    },
  );
});
