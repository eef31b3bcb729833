import { afterEach, describe, expect, it } from 'vitest';
import { readContext } from '../../src/core/versioning/context.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { isKvError } from '../../src/util/errors.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Issue 18, item 8: an object larger than the peer frame cap could never be replicated. Blind
 * writes of 8 MiB values pile up siblings; once the object passed the cap (64 MiB, which the
 * simulated network enforces by the same rule as the framed transport) the write landed on the
 * coordinating replica only and answered 503, stranding the object there. Now the coordinating
 * replica judges the object a write would leave, under the key lock, against
 * limits.maxObjectBytes (well under the cap) and refuses it with 413 KV_OBJECT_TOO_LARGE before
 * anything is stored; a write with a read's context, which resolves the siblings, is taken.
 */

const valueBytes = 8 * 1024 * 1024;

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

describe('simulation: object size', () => {
  it(
    'refuses a write whose object would pass limits.maxObjectBytes with 413 before storing it, and every replica keeps the same object',
    { timeout: 300_000 },
    async () => {
      cluster = await SimCluster.start(1800, 3, { limits: { maxValueBytes: valueBytes, peerTimeoutMs: 2000 }, antiEntropy: { enabled: false } });
      const sim = cluster;
      const outcomes: string[] = [];
      // Eight blind writes of 8 MiB through the three nodes in turn: eight siblings would be 64 MiB.
      for (let index = 0; index < 8; index++) {
        const entry = sim.members[index % 3]!;
        const value = Buffer.alloc(valueBytes, index);
        outcomes.push(
          await sim.drive(entry.node.put({ bucket: 'big', key: 'k', value, contentType: 'application/octet-stream', context: undefined, options: {} })).then(
            () => 'ok',
            (error: unknown) => (isKvError(error) ? `${error.status} ${error.code}: ${error.message}` : String(error)),
          ),
        );
      }
      // Every write was either taken or refused as too large; none was half done (503 after one replica stored it).
      expect(outcomes.filter((outcome) => outcome !== 'ok' && !outcome.startsWith('413 KV_OBJECT_TOO_LARGE'))).toEqual([]);
      const taken = outcomes.filter((outcome) => outcome === 'ok').length;
      expect(taken).toBeGreaterThan(0);
      expect(taken).toBeLessThan(8);
      const refusal = outcomes.find((outcome) => outcome !== 'ok')!;
      expect(refusal).toMatch(/limits\.maxObjectBytes/);
      expect(refusal).toMatch(/context/);
      // Nothing of a refused write was stored: every replica holds exactly the taken siblings.
      await sim.runUntil(
        async () =>
          (await Promise.all(sim.members.map(async (member) => liveSiblings((await member.node.getLocal('big', 'k'))!).length))).every(
            (count) => count === taken,
          ),
        30_000,
        `every replica holds the ${taken} taken siblings`,
      );
      // A write with the read's context resolves the siblings and is taken, and reaches every replica.
      const read = await sim.drive(sim.members[1]!.node.get('big', 'k', { r: 'all' }));
      expect(liveSiblings(read!)).toHaveLength(taken);
      await sim.drive(
        sim.members[2]!.node.put({
          bucket: 'big',
          key: 'k',
          value: Buffer.alloc(valueBytes, 99),
          contentType: 'application/octet-stream',
          context: readContext(read!.clock),
          options: { w: 'all' },
        }),
      );
      for (const member of sim.members) {
        const siblings = liveSiblings((await member.node.getLocal('big', 'k'))!);
        expect(siblings.map((sibling) => sibling.value[0])).toEqual([99]);
      }
    },
  );
});
