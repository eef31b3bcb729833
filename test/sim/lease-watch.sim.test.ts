import { afterEach, describe, expect, it } from 'vitest';
import { decodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import type { WatchItem } from '../../src/engine/watches.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal (issue 22, README "Leases and ephemeral keys"): a key written with a lease vanishes
 * linearizably when the lease expires or is revoked, and a watcher of the key sees the deletion:
 * a `decided` event with no value at the version after the leased write, on a node that is
 * neither the writer nor (necessarily) the lease's sweeper. SIM_SEED=<n> replays one seed.
 */

const bucket = 'locks';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2501, 2502];
const ttlSeconds = 2;

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** What a watcher saw of one key: each decided version and whether it held a value. */
function decided(items: readonly WatchItem[], key: string): { version: number; value: string | null }[] {
  return items.flatMap((item) =>
    item.kind === 'decided' && item.key === key
      ? [{ version: item.version, value: item.value === null ? null : Buffer.from(decodeConsistentValue(item.value).value).toString() }]
      : [],
  );
}

describe('simulation: a watcher sees a leased key vanish', () => {
  it.each(seeds)('seed %i: on expiry and on revoke, the deletion is a decided event without a value, one version after the leased write', async (seed) => {
    const sim = (cluster = await SimCluster.start(seed, 3, config));
    const [writer, watcherNode] = sim.members as [SimMember, SimMember];
    const items: WatchItem[] = [];
    const stream = watcherNode.node.watch({ bucket, kind: 'prefix', name: '' });
    const reading = (async () => {
      for await (const item of stream) items.push(item);
    })();
    await sim.runUntil(() => items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');

    const expiring = await sim.drive(writer.node.leases.grant(ttlSeconds));
    const revoked = await sim.drive(writer.node.leases.grant(60));
    const value = (text: string) => ({ contentType: 'text/plain', value: Buffer.from(text) });
    const first = await sim.drive(writer.node.leases.put(bucket, 'expires', value('e'), { kind: 'absent' }, expiring.id));
    const second = await sim.drive(writer.node.leases.put(bucket, 'revoked', value('r'), { kind: 'absent' }, revoked.id));
    await sim.drive(writer.node.leases.revoke(revoked.id));

    // Nobody keeps `expiring` alive: its sweeper ends it after the ttl (plus its scan cycles).
    const gone = (key: string, after: number) => decided(items, key).some((event) => event.value === null && event.version > after);
    await sim.runUntil(() => gone('expires', first.version) && gone('revoked', second.version), 60_000, 'the watcher sees both leased keys deleted');
    stream.close();
    await sim.drive(reading);

    for (const [key, written] of [
      ['expires', first],
      ['revoked', second],
    ] as const) {
      expect(decided(items, key), `seed ${seed}: what the watcher saw of ${key}`).toEqual([
        { version: written.version, value: key === 'expires' ? 'e' : 'r' },
        { version: written.version + 1, value: null },
      ]);
      const read = await sim.drive(watcherNode.node.consistent(bucket, key, { kind: 'read' }, 5000));
      expect(read, `seed ${seed}: a read of ${key} after the watcher saw it go`).toMatchObject({ version: written.version + 1, value: null });
    }
  });
});
