import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { encodeDataKey } from '../../src/core/keys.js';
import type { VersionedObject } from '../../src/core/versioning/versioned-object.js';
import { HintStore } from '../../src/engine/hint-store.js';

/**
 * Goal: hints are bounded per target node by count and by bytes, so a long outage under load
 * cannot fill the disk; a hint over a bound is dropped and counted, other targets are unaffected,
 * and the bounds hold across a restart (the store counts what is on disk).
 */

function objectOf(value: string, counter: number): VersionedObject {
  return {
    clock: { writer: counter },
    siblings: [{ dot: { node: 'writer', counter }, value: Buffer.from(value), contentType: 'text/plain', lastModifiedMs: 1000 + counter, tombstone: false }],
  };
}

async function openStore(
  limits: { maxHintsPerTarget: number; maxBytesPerTarget: number },
  storage?: MemoryStorage,
): Promise<{ store: HintStore; storage: MemoryStorage }> {
  const opened = storage ?? new MemoryStorage();
  if (storage === undefined) await opened.open();
  const store = new HintStore(opened.hints, limits);
  await store.load();
  return { store, storage: opened };
}

describe('HintStore bounds', () => {
  it('drops and counts the hints beyond maxHintsPerTarget, per target', async () => {
    const { store } = await openStore({ maxHintsPerTarget: 10, maxBytesPerTarget: 1 << 30 });
    let stored = 0;
    for (let index = 0; index < 25; index++)
      if (await store.add('down', encodeDataKey('b', `k${index}`), objectOf('v', index + 1), 'siblings', 0, false)) stored += 1;
    expect(stored).toBe(10);
    expect(store.pendingByTarget()).toEqual({ down: 10 });
    expect(store.dropped).toBe(15);
    // Another target has its own bound.
    expect(await store.add('other', encodeDataKey('b', 'k0'), objectOf('v', 1), 'siblings', 0, false)).toBe(true);
    // A newer write of a key that already has a hint still merges into it: it adds no hint.
    expect(await store.add('down', encodeDataKey('b', 'k0'), objectOf('v2', 99), 'siblings', 0, false)).toBe(true);
    expect(store.pendingByTarget()).toEqual({ down: 10, other: 1 });
  });

  it('drops and counts the hints beyond maxBytesPerTarget, and frees room when hints go', async () => {
    const value = 'x'.repeat(1000);
    const { store } = await openStore({ maxHintsPerTarget: 1_000_000, maxBytesPerTarget: 10_000 });
    for (let index = 0; index < 30; index++) await store.add('down', encodeDataKey('b', `k${index}`), objectOf(value, index + 1), 'siblings', 0, false);
    expect(store.pending).toBeGreaterThan(5);
    expect(store.pending).toBeLessThan(10);
    expect(store.bytesByTarget('down')).toBeLessThanOrEqual(10_000);
    expect(store.dropped).toBe(30 - store.pending);
    const before = store.pending;
    for (const hint of await store.batch('down', 3)) await store.remove(hint, 'delivered');
    expect(store.pending).toBe(before - 3);
    expect(await store.add('down', encodeDataKey('b', 'fresh'), objectOf(value, 500), 'siblings', 0, false)).toBe(true);
  });

  it('counts the hints and bytes already on disk when it loads', async () => {
    const { store, storage } = await openStore({ maxHintsPerTarget: 5, maxBytesPerTarget: 1 << 30 });
    for (let index = 0; index < 5; index++) await store.add('down', encodeDataKey('b', `k${index}`), objectOf('v', index + 1), 'siblings', 0, false);
    const bytes = store.bytesByTarget('down');
    const { store: reopened } = await openStore({ maxHintsPerTarget: 5, maxBytesPerTarget: 1 << 30 }, storage);
    expect(reopened.bytesByTarget('down')).toBe(bytes);
    expect(await reopened.add('down', encodeDataKey('b', 'k9'), objectOf('v', 9), 'siblings', 0, false)).toBe(false);
    expect(reopened.dropped).toBe(1);
  });
});
