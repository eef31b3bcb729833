import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { keyEpochOf } from '../../src/core/versioning/key-actor.js';
import { ActorLease, actorNameOfNode, keyEpochLeaseSize } from '../../src/engine/actor-lease.js';

/**
 * Goal: a node's actor lease (src/engine/actor-lease.ts) never hands out a key epoch twice, even
 * across a power loss that takes every unsynced write (the simulator's memory storage loses them
 * as a machine would), keeps its actor across restarts of one disk and gets a new one on a new
 * disk, and distrusts the key epochs of a run that did not stop cleanly.
 */

async function openStorage(): Promise<MemoryStorage> {
  const storage = new MemoryStorage();
  await storage.open();
  return storage;
}

const epochOf = (lease: ActorLease, actor: string): number => keyEpochOf(actor, lease.nodeActor)!;

describe('the actor lease', () => {
  it('resumes above every key epoch handed out after a power loss, past a lease extension too', async () => {
    let storage = await openStorage();
    const lease = await ActorLease.open(storage, 'n1', new SeededRandom(1));
    let highest = 0;
    for (let index = 0; index < keyEpochLeaseSize + 5; index++) highest = Math.max(highest, epochOf(lease, await lease.beginKeyEpoch()));
    // Unsynced writes after the last lease write are lost with the power.
    await storage.data.put(Buffer.from('unsynced'), Buffer.from('x'));
    storage = (await storage.crash('power-loss')) as MemoryStorage;
    expect(await storage.data.get(Buffer.from('unsynced')), 'the power loss took the unsynced write').toBeUndefined();
    const after = await ActorLease.open(storage, 'n1', new SeededRandom(2));
    expect(after.nodeActor).toBe(lease.nodeActor);
    expect(epochOf(after, await after.beginKeyEpoch())).toBeGreaterThan(highest);
    await storage.close();
  });

  it('gives a new disk a new actor, so a wiped node never reuses a dot', async () => {
    const first = await ActorLease.open(await openStorage(), 'n1', new SeededRandom(1));
    const wiped = await ActorLease.open(await openStorage(), 'n1', new SeededRandom(2));
    expect(wiped.nodeActor).not.toBe(first.nodeActor);
    expect(wiped.nodeActor.startsWith('n1.')).toBe(true);
  });

  it('trusts the key epochs of a run that stopped cleanly, and none of one that did not', async () => {
    let storage = await openStorage();
    const lease = await ActorLease.open(storage, 'n1', new SeededRandom(1));
    const kept = epochOf(lease, await lease.beginKeyEpoch());
    await lease.close();
    const cleanAfter = await ActorLease.open(storage, 'n1', new SeededRandom(1));
    expect(cleanAfter.trustedFromEpoch).toBeLessThanOrEqual(kept);
    const begun = epochOf(cleanAfter, await cleanAfter.beginKeyEpoch());
    storage = (await storage.crash('process')) as MemoryStorage;
    const uncleanAfter = await ActorLease.open(storage, 'n1', new SeededRandom(1));
    expect(uncleanAfter.trustedFromEpoch).toBeGreaterThan(begun);
    await storage.close();
  });

  it('distrusts every key epoch begun so far when a copy is removed, and keeps that across a clean stop', async () => {
    const storage = await openStorage();
    const lease = await ActorLease.open(storage, 'n1', new SeededRandom(1));
    const begun = epochOf(lease, await lease.beginKeyEpoch());
    lease.distrustEarlierEpochs();
    expect(lease.trustedFromEpoch).toBeGreaterThan(begun);
    await lease.close();
    expect((await ActorLease.open(storage, 'n1', new SeededRandom(1))).trustedFromEpoch).toBeGreaterThan(begun);
    await storage.close();
  });

  it('refuses an unreadable lease with KV_STORAGE naming what to do', async () => {
    const storage = await openStorage();
    await storage.meta.put(Buffer.from('actor-lease'), Buffer.from('{"storageEpoch":1}'));
    await expect(ActorLease.open(storage, 'n1', new SeededRandom(1))).rejects.toMatchObject({ code: 'KV_STORAGE', message: expect.stringMatching(/backup/) });
    await storage.close();
  });
});

describe('actor names', () => {
  it('stay within the 128 characters a context entry may have, whatever the node id', async () => {
    const longId = 'n'.repeat(128);
    const lease = await ActorLease.open(await openStorage(), longId, new SeededRandom(1));
    const actor = await lease.beginKeyEpoch();
    expect(actor.length).toBeLessThanOrEqual(128);
    expect(actorNameOfNode('node1')).toBe('node1');
    expect(actorNameOfNode(longId)).not.toBe(actorNameOfNode(`${'n'.repeat(127)}m`));
  });
});
