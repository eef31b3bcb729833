import { afterEach, describe, expect, it } from 'vitest';
import { partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { readContext } from '../../src/core/versioning/context.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { isKvError } from '../../src/util/errors.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal: sibling limits, on a simulated 3-node cluster. Past limits.maxSiblings a write without a
 * context is refused with KV_TOO_MANY_SIBLINGS, wherever it enters the cluster (the coordinating
 * replica may be another node), while a write with the read's context resolves the key and blind
 * writes are taken again; past limits.siblingsWarn writes are counted.
 */

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('sibling limits', () => {
  it.each([1, 2])('seed %i: refuses a blind write at maxSiblings, takes a resolving one, counts those past siblingsWarn', async (seed) => {
    cluster = await SimCluster.start(seed, 3, { limits: { siblingsWarn: 2, maxSiblings: 4 } });
    const sim = cluster;
    const put = async (entry: number, value: string, context?: ReturnType<typeof readContext>): Promise<string> => {
      try {
        await sim.drive(
          sim.members[entry]!.node.put({ bucket: 'pile', key: 'k', value: Buffer.from(value), contentType: 'text/plain', context, options: { w: 'all' } }),
        );
        return 'ok';
      } catch (error) {
        return isKvError(error) ? error.code : String(error);
      }
    };
    // Four blind writes through different entry nodes pile up as four siblings.
    for (let index = 0; index < 4; index++) expect(await put(index % 3, `v${index}`)).toBe('ok');
    expect(await put(1, 'one too many')).toBe('KV_TOO_MANY_SIBLINGS');
    const read = await sim.drive(sim.members[2]!.node.get('pile', 'k', { r: 'all' }));
    expect(
      liveSiblings(read!)
        .map((sibling) => Buffer.from(sibling.value).toString())
        .sort(),
    ).toEqual(['v0', 'v1', 'v2', 'v3']);
    // The read's context resolves them all; then blind writes are taken again.
    expect(await put(2, 'merged', readContext(read!.clock))).toBe('ok');
    expect(await put(0, 'blind again')).toBe('ok');
    const statuses = await Promise.all(sim.members.map(async (member) => (await member.node.status()).siblings as { manyWrites: number; refused: number }));
    expect(statuses.reduce((sum, status) => sum + status.refused, 0)).toBe(1);
    expect(statuses.reduce((sum, status) => sum + status.manyWrites, 0)).toBeGreaterThanOrEqual(2);
  });

  it('refuses with KV_TOO_MANY_SIBLINGS when the coordinating replica is another node', async () => {
    cluster = await SimCluster.start(3, 3, { limits: { siblingsWarn: 1, maxSiblings: 2 }, buckets: { single: { nVal: 1, r: 1, w: 1 } } });
    const sim = cluster;
    const ring = sim.members[0]!.node.gossiper.ring!;
    const entry = sim.members.find((member) => preferenceList(ring, partitionOf('single', 'k', ring.partitionCount), 1)[0] !== member.nodeId)!;
    const blind = async (value: string): Promise<string> =>
      sim.drive(entry.node.put({ bucket: 'single', key: 'k', value: Buffer.from(value), contentType: 'text/plain', context: undefined, options: {} })).then(
        () => 'ok',
        (error: unknown) => (isKvError(error) ? error.code : String(error)),
      );
    expect([await blind('a'), await blind('b'), await blind('c')]).toEqual(['ok', 'ok', 'KV_TOO_MANY_SIBLINGS']);
  });
});
