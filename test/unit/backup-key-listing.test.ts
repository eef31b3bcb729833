import { describe, expect, it } from 'vitest';
import type { BucketProperties } from '../../src/config/schema.js';
import { encodeDataKey, partitionOf } from '../../src/core/keys.js';
import { AcceptorStore } from '../../src/engine/acceptor-store.js';
import { mergeAscending } from '../../src/engine/consistent-listing.js';
import { MemoryStorage } from '../../src/sim/memory-storage.js';

/**
 * The pieces of a backup's listing of consistent keys (README, "Backup and restore"): a replica
 * answers its acceptor keys of one partition a page at a time (AcceptorStore.keys), and the
 * backup merges the replicas' streams into one ascending stream, each key once (mergeAscending).
 * The simulation (test/sim/consistent-backup.sim.test.ts) covers partitions smaller than a page.
 */

const partitionCount = 4;

async function storeWith(keys: readonly string[]): Promise<AcceptorStore> {
  const storage = new MemoryStorage();
  await storage.open();
  for (const key of keys) await storage.paxos.put(encodeDataKey('b', key), Buffer.of(1));
  return new AcceptorStore({
    space: storage.paxos,
    bucketProperties: () => ({ consistent: true }) as BucketProperties,
    ringVersion: () => 1,
    departed: () => false,
    stored: () => undefined,
  });
}

async function* streamOf(keys: readonly Buffer[]): AsyncGenerator<Buffer> {
  for (const key of keys) yield key;
}

describe('a backup lists consistent keys', () => {
  it("AcceptorStore.keys pages through one partition's keys in storage order, after the cursor, and says when it is done", async () => {
    const keys = Array.from({ length: 300 }, (_, index) => `key-${index}`);
    const store = await storeWith(keys);
    const partition = 2;
    const expected = keys
      .filter((key) => partitionOf('b', key, partitionCount) === partition)
      .map((key) => encodeDataKey('b', key))
      .sort(Buffer.compare);
    expect(expected.length).toBeGreaterThan(50);
    const listed: Buffer[] = [];
    let after: Uint8Array | null = null;
    let pages = 0;
    for (;;) {
      const reply = await store.keys({ type: 'paxos-keys', partition, after, maxKeys: 20 }, partitionCount);
      pages += 1;
      expect(reply.keys.length).toBeLessThanOrEqual(20);
      listed.push(...reply.keys.map((key) => Buffer.from(key)));
      if (reply.done) break;
      expect(reply.keys.length, 'a page that is not the last is full').toBe(20);
      after = reply.keys[reply.keys.length - 1]!;
    }
    expect(listed).toEqual(expected);
    expect(pages).toBe(Math.ceil(expected.length / 20));
    // Exactly a page left: answered done, not an empty page after it.
    const last = await store.keys({ type: 'paxos-keys', partition, after: expected[expected.length - 21]!, maxKeys: 20 }, partitionCount);
    expect([last.keys.length, last.done]).toEqual([20, true]);
    await expect(store.keys({ type: 'paxos-keys', partition: partitionCount, after: null, maxKeys: 20 }, partitionCount)).rejects.toMatchObject({
      code: 'KV_BAD_REQUEST',
    });
  });

  it('mergeAscending merges ascending streams into one, each key once, whichever streams hold it', async () => {
    const key = (index: number) => Buffer.from([index >> 8, index & 255]);
    const first = [1, 2, 5, 9, 10].map(key);
    const second = [2, 3, 9, 300].map(key);
    const third = [0, 5, 301].map(key);
    const merged: Buffer[] = [];
    for await (const item of mergeAscending([streamOf(first), streamOf(second), streamOf(third), streamOf([])])) merged.push(item);
    expect(merged).toEqual([0, 1, 2, 3, 5, 9, 10, 300, 301].map(key));
  });
});
