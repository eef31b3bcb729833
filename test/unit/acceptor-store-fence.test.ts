import { describe, expect, it } from 'vitest';
import type { BucketProperties } from '../../src/config/schema.js';
import { AcceptorStore } from '../../src/engine/acceptor-store.js';
import { MemoryStorage } from '../../src/sim/memory-storage.js';

/**
 * The epoch fence of a ring change (docs/CONSENSUS.md, "Ring changes", step 2) in the engine's
 * acceptor: a prepare or proposal from a ring older than this node's own is refused even for a
 * key the acceptor holds no state of (one no repair round fenced), and is taken from its ring on.
 */
describe('AcceptorStore: the ring-version fence', () => {
  it('refuses an older ring for a key it never saw, answers the newest epoch, and promises from the current ring on', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    let ringVersion = 5;
    const store = new AcceptorStore({
      space: storage.paxos,
      bucketProperties: () => ({ consistent: true }) as BucketProperties,
      ringVersion: () => ringVersion,
      stored: () => undefined,
    });
    const stale = await store.handle({ type: 'paxos-prepare', bucket: 'b', key: 'never-written', epoch: 4, ballot: { round: 1, proposer: 'p' } });
    expect(stale.reply).toMatchObject({ type: 'prepare-rejected', epoch: 5 });
    const staleProposal = await store.handle({
      type: 'paxos-propose',
      bucket: 'b',
      key: 'never-written',
      epoch: 4,
      proposal: { ballot: { round: 1, proposer: 'p' }, state: { version: 1, value: null, writes: [] } },
    });
    expect(staleProposal.reply).toMatchObject({ type: 'propose-rejected', epoch: 5 });
    const current = await store.handle({ type: 'paxos-prepare', bucket: 'b', key: 'never-written', epoch: 5, ballot: { round: 2, proposer: 'p' } });
    expect(current.reply).toMatchObject({ type: 'promise' });
    // The key's persisted epoch outlives the node's ring going back (a restart on an older stored view).
    ringVersion = 1;
    const older = await store.handle({ type: 'paxos-prepare', bucket: 'b', key: 'never-written', epoch: 4, ballot: { round: 3, proposer: 'p' } });
    expect(older.reply).toMatchObject({ type: 'prepare-rejected', epoch: 5 });
    await storage.close();
  });
});
