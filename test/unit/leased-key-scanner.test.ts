import { describe, expect, it } from 'vitest';
import { encodeAcceptorState } from '../../src/core/consensus/acceptor-codec.js';
import { encodeConsistentValue } from '../../src/core/consensus/consistent-value.js';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { encodeLeaseRecord, grantedLease, leaseBucket } from '../../src/core/leases/lease-record.js';
import { createRing, preferenceList } from '../../src/core/ring/ring.js';
import type { BucketProperties } from '../../src/config/schema.js';
import { LeasedKeyScanner } from '../../src/engine/leased-key-scanner.js';
import { MemoryStorage } from '../../src/sim/memory-storage.js';

/**
 * Goal (docs/CONSENSUS.md, "Leases", "Orphans"): the walk that finds leased keys for the orphan
 * check reads at most `limit` entries of the node's acceptor state a step and answers at most
 * `maxKeys` leased keys, going on where it stopped and wrapping round; it answers only keys whose
 * newest value (an accepted proposal newer than the committed value counts) names a lease, never a
 * lease record or a deleted key, and only on the first majority of a key's up replicas.
 */

const bucketProperties = (): BucketProperties => ({ nVal: 3, consistent: true }) as BucketProperties;

/** An acceptor state whose committed value names `lease` (undefined: none; null: deleted), and, when given, a newer accepted value naming `accepted`. */
function state(lease: string | null | undefined, accepted?: string | null): Uint8Array {
  const value = (named: string | null | undefined) =>
    named === null ? null : encodeConsistentValue({ contentType: 'text/plain', value: Buffer.from('v'), ...(named === undefined ? {} : { lease: named }) });
  const old = { round: 1, proposer: 'p' };
  const newer = { round: 2, proposer: 'p' };
  return encodeAcceptorState({
    epoch: 1,
    promised: accepted === undefined ? old : newer,
    accepted: accepted === undefined ? null : { ballot: newer, state: { version: 2, value: value(accepted), writes: [] } },
    committed: { ballot: old, state: { version: 1, value: value(lease), writes: [] } },
  });
}

async function scanner(nodes: string[], selfId: string, up: (node: string) => boolean = () => true) {
  const storage = new MemoryStorage();
  await storage.open();
  const ring = createRing(8, nodes);
  return { storage, ring, scanner: new LeasedKeyScanner({ selfId, ring: () => ring, isUp: up, bucketProperties, space: storage.paxos }) };
}

describe('LeasedKeyScanner', () => {
  it('answers the leased keys among the entries, a bounded number a step, and wraps round', async () => {
    const { storage, scanner: walk } = await scanner(['n1'], 'n1');
    for (let index = 0; index < 300; index++) await storage.paxos.put(encodeDataKey('plain', `p${index}`), state(undefined));
    for (let index = 0; index < 150; index++) await storage.paxos.put(encodeDataKey('locks', `l${index}`), state('aaaaaaaaaaaaaaaa'));
    await storage.paxos.put(encodeDataKey('locks', 'deleted'), state(null));
    await storage.paxos.put(encodeDataKey('locks', 'rewritten'), state('aaaaaaaaaaaaaaaa', null));
    await storage.paxos.put(encodeDataKey('locks', 'proposed'), state(undefined, 'bbbbbbbbbbbbbbbb'));
    await storage.paxos.put(
      encodeDataKey(leaseBucket, 'aaaaaaaaaaaaaaaa'),
      encodeAcceptorState({
        epoch: 1,
        promised: { round: 1, proposer: 'p' },
        accepted: null,
        committed: {
          ballot: { round: 1, proposer: 'p' },
          state: {
            version: 1,
            value: encodeConsistentValue({ contentType: 'application/octet-stream', value: encodeLeaseRecord(grantedLease(5)) }),
            writes: [],
          },
        },
      }),
    );
    const found: string[] = [];
    const steps: { keys: number; wrapped: boolean }[] = [];
    for (let step = 0; step < 100; step++) {
      const scan = await walk.next(100, 10);
      steps.push({ keys: scan.keys.length, wrapped: scan.wrapped });
      found.push(...scan.keys.map((leased) => `${leased.key}:${leased.lease}`));
      expect(scan.keys.length, 'leased keys answered in a step').toBeLessThanOrEqual(10);
      if (scan.wrapped) break;
    }
    expect(steps.at(-1)?.wrapped, 'a pass ended').toBe(true);
    expect(found.sort()).toEqual([...Array.from({ length: 150 }, (_, index) => `l${index}:aaaaaaaaaaaaaaaa`), 'proposed:bbbbbbbbbbbbbbbb'].sort());
    // The next pass starts again at the first entry.
    expect((await walk.next(10_000, 10_000)).keys).toHaveLength(151);
  });

  it('answers a key only on the first majority of its up replicas', async () => {
    const nodes = ['n1', 'n2', 'n3', 'n4'];
    const keys = Array.from({ length: 40 }, (_, index) => `l${index}`);
    const checkers = new Map<string, number>();
    for (const node of nodes) {
      for (const down of [undefined, 'n1']) {
        if (node === down) continue;
        const { storage, ring, scanner: walk } = await scanner(nodes, node, (other) => other !== down);
        for (const key of keys) await storage.paxos.put(encodeDataKey('locks', key), state('aaaaaaaaaaaaaaaa'));
        const answered = (await walk.next(1000, 1000)).keys.map((leased) => leased.key);
        for (const key of keys) {
          const up = preferenceList(ring, partitionOf('locks', key, ring.partitionCount), 3).filter((other) => other !== down);
          expect(answered.includes(key), `${node} (down: ${down ?? 'none'}) checks ${key} of replicas ${up.join(',')}`).toBe(up.slice(0, 2).includes(node));
          if (answered.includes(key)) checkers.set(`${down}/${key}`, (checkers.get(`${down}/${key}`) ?? 0) + 1);
        }
      }
    }
    expect(new Set(checkers.values()), 'every key is checked by exactly two nodes').toEqual(new Set([2]));
  });
});
