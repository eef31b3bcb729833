import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goals of unclean crashes in simulation: a crash keeps what LevelDB would keep (a power loss
 * keeps everything up to the last synced write and loses every write after it; a process crash
 * loses nothing), the crashed node's work under way never lands on its disk, and so `dw`
 * means something: a write acknowledged with dw=all survives a power loss of every replica,
 * while one acknowledged with w alone can be lost by it.
 */

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text);
const text = (value: Uint8Array | undefined): string | undefined => (value === undefined ? undefined : new TextDecoder().decode(value));

describe('memory storage keeps what was synced apart from what was only written', () => {
  it('after a power loss holds every write up to the last synced one (which makes earlier writes durable) and none after it', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    await storage.data.put(bytes('a'), bytes('written'));
    await storage.meta.put(bytes('b'), bytes('synced'), { sync: true });
    await storage.data.put(bytes('c'), bytes('written after the sync'));
    await storage.hints.batch([{ type: 'put', key: bytes('d'), value: bytes('batch after the sync') }]);
    expect(storage.unsyncedWrites).toBe(2);
    const recovered = await storage.crash('power-loss');
    expect(text(await recovered.data.get(bytes('a')))).toBe('written');
    expect(text(await recovered.meta.get(bytes('b')))).toBe('synced');
    expect(await recovered.data.get(bytes('c'))).toBeUndefined();
    expect(await recovered.hints.get(bytes('d'))).toBeUndefined();
    // What survived one crash is on disk for good: a second power loss keeps it.
    const again = await recovered.crash('power-loss');
    expect(text(await again.data.get(bytes('a')))).toBe('written');
    await again.close();
  });

  it('after a process crash holds every write, as the operating system still has the log', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    await storage.data.put(bytes('a'), bytes('never synced'));
    const recovered = await storage.crash('process');
    expect(text(await recovered.data.get(bytes('a')))).toBe('never synced');
    await recovered.close();
  });

  it('refuses every write of the crashed handle, including one already queued when the crash came', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    await storage.data.put(bytes('before'), bytes('1'), { sync: true });
    // Queued for the next group commit, which runs after the crash.
    const inFlight = storage.data.put(bytes('in flight'), bytes('2'), { sync: true });
    inFlight.catch(() => undefined);
    const recovered = await storage.crash('process');
    await expect(inFlight).rejects.toMatchObject({ code: 'KV_STORAGE' });
    await expect(storage.data.put(bytes('after'), bytes('3'))).rejects.toMatchObject({ code: 'KV_STORAGE' });
    expect(storage.crashed).toBe(true);
    expect(await recovered.data.get(bytes('in flight'))).toBeUndefined();
    expect(text(await recovered.data.get(bytes('before')))).toBe('1');
    await recovered.close();
  });
});

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [5000, 5001, 5002];

async function valuesEverywhere(cluster: SimCluster, key: string): Promise<string[][]> {
  return Promise.all(
    cluster.members.map(async (member) => {
      const object = await member.node.getLocal('durable', key);
      return object === undefined ? [] : liveSiblings(object).map((sibling) => Buffer.from(sibling.value).toString());
    }),
  );
}

/** Crashes every member with a power loss, restarts them all and waits for the ring to settle. */
async function powerLossOfAll(cluster: SimCluster): Promise<void> {
  for (const member of cluster.members) await cluster.crash(member, 'power-loss');
  for (const member of cluster.members) await cluster.restart(member);
  await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles after the power loss');
}

describe('simulation: dw means something under power loss', () => {
  it.each(seeds)('seed %i: a write acknowledged with dw=all survives a power loss of every replica', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, { antiEntropy: { enabled: false } });
    try {
      const entry = cluster.members[0] as SimMember;
      await cluster.drive(
        entry.node.put({
          bucket: 'durable',
          key: 'k',
          value: Buffer.from('synced'),
          contentType: 'text/plain',
          context: undefined,
          options: { w: 'all', dw: 'all' },
        }),
      );
      await powerLossOfAll(cluster);
      expect(await valuesEverywhere(cluster, 'k'), `seed ${seed}`).toEqual([['synced'], ['synced'], ['synced']]);
      const read = await cluster.drive(entry.node.get('durable', 'k', { r: 'all' }));
      expect(read === undefined ? [] : liveSiblings(read).map((sibling) => Buffer.from(sibling.value).toString())).toEqual(['synced']);
    } finally {
      await cluster.stop();
    }
  });

  it.each(seeds)('seed %i: a write acknowledged with w=all but no dw can be lost by a power loss of every replica', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, { antiEntropy: { enabled: false } });
    try {
      const entry = cluster.members[0] as SimMember;
      await cluster.drive(
        entry.node.put({
          bucket: 'durable',
          key: 'k',
          value: Buffer.from('only written'),
          contentType: 'text/plain',
          context: undefined,
          options: { w: 'all' },
        }),
      );
      expect(await valuesEverywhere(cluster, 'k'), 'every replica holds it before the crash').toEqual([['only written'], ['only written'], ['only written']]);
      await powerLossOfAll(cluster);
      expect(await valuesEverywhere(cluster, 'k'), `seed ${seed}: nothing synced it, so the power loss took it`).toEqual([[], [], []]);
    } finally {
      await cluster.stop();
    }
  });

  it('a process crash of every replica (kill -9) loses no acknowledged write, synced or not', async () => {
    const cluster = await SimCluster.start(seeds[0]!, 3, { antiEntropy: { enabled: false } });
    try {
      const entry = cluster.members[0] as SimMember;
      await cluster.drive(
        entry.node.put({
          bucket: 'durable',
          key: 'k',
          value: Buffer.from('only written'),
          contentType: 'text/plain',
          context: undefined,
          options: { w: 'all' },
        }),
      );
      for (const member of cluster.members) await cluster.crash(member, 'process');
      for (const member of cluster.members) await cluster.restart(member);
      await cluster.runUntil(() => cluster.ringSettled(), 60_000, 'ring settles after the crash');
      expect(await valuesEverywhere(cluster, 'k')).toEqual([['only written'], ['only written'], ['only written']]);
    } finally {
      await cluster.stop();
    }
  });
});

describe('simulation: a crashed node finishes nothing', () => {
  it('a replica write under way on a node that crashes never reaches its disk, and the node answers nothing more', async () => {
    const cluster = await SimCluster.start(seeds[0]!, 3, { antiEntropy: { enabled: false }, hintedHandoff: { enabled: false } });
    try {
      const [entry, , victim] = cluster.members as [SimMember, SimMember, SimMember];
      // The victim takes replica writes but answers only after a while: it crashes in between.
      cluster.network.register(victim.address, async (request) => {
        if (request.type === 'replica-put') await victim.clock.sleep(300);
        return victim.node.handlePeer(request);
      });
      const writing = entry.node.put({
        bucket: 'durable',
        key: 'late',
        value: Buffer.from('v'),
        contentType: 'text/plain',
        context: undefined,
        options: { w: 2 },
      });
      await cluster.drive(writing);
      await cluster.crash(victim, 'process');
      await cluster.clock.advance(5000);
      expect((await valuesEverywhere(cluster, 'late'))[2], 'the crashed node held the write back, then died').toEqual([]);
      await cluster.restart(victim);
      expect(await victim.node.getLocal('durable', 'late')).toBeUndefined();
    } finally {
      await cluster.stop();
    }
  });
});
