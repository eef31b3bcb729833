import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { encodeDataKey } from '../../src/core/keys.js';
import { ReapedTombstones } from '../../src/engine/reaped-tombstones.js';

/** Goal: reaped-tombstone records are found while kept, forgotten after their time in bounded batches, and a key reaped twice keeps its newer record. */
describe('ReapedTombstones', () => {
  async function store(): Promise<{ reaped: ReapedTombstones; storage: MemoryStorage }> {
    const storage = new MemoryStorage();
    await storage.open();
    return { reaped: new ReapedTombstones(storage.meta), storage };
  }

  it('remembers a tombstone until it is older than the cutoff, then forgets it', async () => {
    const { reaped } = await store();
    const dataKey = encodeDataKey('b', 'k');
    await reaped.remember(dataKey, Buffer.from('tombstone'), 1000);
    expect(Buffer.from((await reaped.lookup(dataKey)) ?? []).toString()).toBe('tombstone');
    expect(await reaped.forgetReapedBefore(1000, 100)).toBe(0);
    expect(await reaped.lookup(dataKey)).toBeDefined();
    expect(await reaped.forgetReapedBefore(1001, 100)).toBe(1);
    expect(await reaped.lookup(dataKey)).toBeUndefined();
  });

  it('keeps the newer record of a key reaped twice, and leaves no stale index entry', async () => {
    const { reaped, storage } = await store();
    const dataKey = encodeDataKey('b', 'twice');
    await reaped.remember(dataKey, Buffer.from('first'), 1000);
    await reaped.remember(dataKey, Buffer.from('second'), 5000);
    expect(await reaped.forgetReapedBefore(2000, 100)).toBe(0);
    expect(Buffer.from((await reaped.lookup(dataKey)) ?? []).toString()).toBe('second');
    let entries = 0;
    for await (const _ of storage.meta.entries()) entries += 1;
    expect(entries, 'one record and one index entry').toBe(2);
  });

  it('forgets at most `limit` records per call, oldest first', async () => {
    const { reaped } = await store();
    const keys = Array.from({ length: 25 }, (_, index) => encodeDataKey('b', `k${index}`));
    for (const [index, key] of keys.entries()) await reaped.remember(key, Buffer.from('t'), 100 + index);
    expect(await reaped.forgetReapedBefore(10_000, 10)).toBe(10);
    expect(await reaped.lookup(keys[0]!)).toBeUndefined();
    expect(await reaped.lookup(keys[10]!)).toBeDefined();
    expect(await reaped.forgetReapedBefore(10_000, 100)).toBe(15);
    expect(await reaped.forgetReapedBefore(10_000, 100)).toBe(0);
  });
});
