import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { encodeDataKey } from '../../src/core/keys.js';
import { emptyContext } from '../../src/core/versioning/context.js';
import { ObjectCache } from '../../src/engine/object-cache.js';
import { Replica } from '../../src/engine/replica.js';
import type { SpaceBatchOperation, WriteOptions } from '../../src/ports/storage.js';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';

/**
 * Goals: the replica's object cache stays within its byte bound, dropping the least recently used
 * key first, and the memory it really holds stays within that bound too; and a key that leaves the storage (handoff's remove, the reaper's reap) or whose
 * write failed leaves the cache too, so no later write or read starts from a copy the disk no
 * longer holds. (test/sim/object-cache.sim.test.ts shows a merge that left the cache stale losing
 * a write.)
 */

const bytesOf = (size: number): Uint8Array => new Uint8Array(size);

describe('ObjectCache', () => {
  it('keeps within its byte bound, dropping the least recently used key first', () => {
    // Each entry is charged its name, its bytes and 64 bytes of overhead: 1 + 936 + 64 = 1001.
    const cache = new ObjectCache(3000);
    cache.set('a', bytesOf(936));
    cache.set('b', bytesOf(936));
    cache.set('c', bytesOf(936));
    expect(cache.size).toBe(2);
    expect(cache.get('a')).toBeUndefined();
    // b is used, so c is now the least recently used and goes when d arrives.
    expect(cache.get('b')).toBeDefined();
    cache.set('d', bytesOf(936));
    expect(cache.get('c')).toBeUndefined();
    expect(cache.get('b')).toBeDefined();
    expect(cache.bytes).toBeLessThanOrEqual(3000);
    // An entry larger than the whole bound is not kept, and does not push the others out.
    cache.set('huge', bytesOf(5000));
    expect(cache.get('huge')).toBeUndefined();
    expect(cache.size).toBe(2);
  });

  // On Node 20 (past its end of life, best effort only: README) the same cache measured
  // 2.5-3x its charge in half the runs (10.5-12.5 MB for 4 MiB), passing in the others; on 22 and
  // 24, where the 64 KiB pool slabs made the bound a fiction, it holds what it is charged.
  it.skipIf(Number(process.versions.node.split('.')[0]) < 22)(
    'holds what it is charged: a copy of the bytes, not the pool slab a small Buffer is a slice of',
    () => {
      setFlagsFromString('--expose-gc');
      const gc = runInNewContext('gc') as () => void;
      const held = (): number => {
        gc();
        const usage = process.memoryUsage();
        return usage.heapUsed + usage.arrayBuffers;
      };
      const boundBytes = 4 * 1024 * 1024;
      const cache = new ObjectCache(boundBytes);
      const before = held();
      // As on a server: each stored object's bytes are a small Buffer cut from Node's shared pool
      // between other short-lived Buffers, so the slab of a kept slice is mostly garbage.
      for (let index = 0; index < 100_000; index++) {
        Buffer.from('x'.repeat(600));
        const bytes = Buffer.from(`stored object ${index} `.padEnd(150, '.'));
        cache.set(`\u0001bucket\u0000key-${index}`, bytes);
      }
      const growth = held() - before;
      expect(cache.bytes).toBeLessThanOrEqual(boundBytes);
      // Slices would hold a 64 KiB slab per few entries: several times the bound.
      expect(growth, `the cache holds ${cache.size} entries charged ${cache.bytes} bytes in ${growth} bytes of heap and buffers`).toBeLessThan(
        boundBytes * 1.5,
      );
      expect(cache.get('\u0001bucket\u0000key-99999')?.toString('latin1')).toBe('stored object 99999 '.padEnd(150, '.'));
    },
  );

  it('evicts exactly what a plain least-recently-used list would, over long random runs of gets, sets and deletes', () => {
    // The cache evicts from a cursor it keeps across calls (src/engine/object-cache.ts); a
    // reference list, searched and spliced by hand, says what each step must leave.
    for (const seed of [1, 2, 3]) {
      const random = new SeededRandom(seed);
      const cache = new ObjectCache(10_000);
      const order: { name: string; size: number }[] = []; // least recently used first
      const charge = (entry: { name: string; size: number }): number => entry.name.length + entry.size + 64;
      const take = (name: string): { name: string; size: number } | undefined => {
        const at = order.findIndex((entry) => entry.name === name);
        return at < 0 ? undefined : order.splice(at, 1)[0];
      };
      for (let step = 0; step < 20_000; step += 1) {
        const name = `k${random.int(60)}`;
        const roll = random.int(10);
        if (roll < 5) {
          const size = 20 + random.int(600);
          cache.set(name, bytesOf(size));
          take(name);
          order.push({ name, size });
          let held = order.reduce((sum, entry) => sum + charge(entry), 0);
          while (held > 10_000) held -= charge(order.shift()!);
        } else if (roll < 9) {
          const hit = cache.get(name);
          const expected = take(name);
          if (expected !== undefined) order.push(expected);
          expect(hit?.byteLength, `seed ${seed} step ${step}: get ${name}`).toBe(expected?.size);
        } else {
          cache.delete(name);
          take(name);
        }
        expect(cache.size, `seed ${seed} step ${step}`).toBe(order.length);
      }
      expect(cache.hits, 'the run hit the cache').toBeGreaterThan(1000);
      expect(cache.misses, 'the run evicted keys it then missed').toBeGreaterThan(1000);
    }
  });

  it('holds nothing when its bound is 0 (the cache off)', () => {
    const cache = new ObjectCache(0);
    cache.set('a', bytesOf(1));
    expect(cache.size).toBe(0);
  });
});

describe('the replica keeps its cache to what the storage holds', () => {
  const write = async (replica: Replica, value: string, tombstone = false): Promise<void> => {
    await replica.coordinateWrite(
      'b',
      'k',
      { value: Buffer.from(value), contentType: 'text/plain', tombstone, context: emptyContext, nowMs: 1_000 },
      'lww',
      false,
    );
  };
  const dataKey = encodeDataKey('b', 'k');

  it('drops a removed key, so a read finds it gone', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    const replica = new Replica(storage, 'n1', new SeededRandom(1), undefined, undefined, 1_000_000);
    await write(replica, 'v');
    expect(replica.cache.size).toBe(1);
    const stored = (await replica.readBytes(dataKey))!;
    expect(await replica.remove(dataKey, stored)).toBe(true);
    expect(replica.cache.size).toBe(0);
    expect(await replica.read('b', 'k')).toBeUndefined();
    await storage.close();
  });

  it('drops a reaped key, so a read answers the remembered tombstone from the storage', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    const replica = new Replica(storage, 'n1', new SeededRandom(1), undefined, undefined, 1_000_000);
    await write(replica, '', true);
    const stored = (await replica.readBytes(dataKey))!;
    expect(await replica.reap(dataKey, stored, 2_000)).toBe(true);
    expect(replica.cache.size).toBe(0);
    expect(await replica.readBytes(dataKey)).toBeUndefined();
    expect(await replica.read('b', 'k')).toBeDefined();
    await storage.close();
  });

  it('drops a key whose write failed, since the disk may or may not hold it', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    const replica = new Replica(storage, 'n1', new SeededRandom(1), undefined, undefined, 1_000_000);
    await write(replica, 'v1');
    expect(replica.cache.size).toBe(1);
    const original = storage.write.bind(storage);
    storage.write = async (_operations: readonly SpaceBatchOperation[], _options?: WriteOptions): Promise<void> => {
      throw new Error('disk full');
    };
    await expect(write(replica, 'v2')).rejects.toThrow('disk full');
    expect(replica.cache.size).toBe(0);
    storage.write = original;
    await storage.close();
  });
});
