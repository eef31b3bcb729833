import { describe, expect, it } from 'vitest';
import type { BucketProperties } from '../../src/config/schema.js';
import { proposerIdentity, proposerNode } from '../../src/core/consensus/ballot.js';
import { AcceptorStore } from '../../src/engine/acceptor-store.js';
import { isKvError } from '../../src/util/errors.js';
import { MemoryStorage } from '../../src/sim/memory-storage.js';

/**
 * The epoch fence of a ring change (docs/CONSENSUS.md, "Ring changes", step 2) in the engine's
 * acceptor: a prepare or proposal from a ring older than this node's own is refused even for a
 * key the acceptor holds no state of (one no repair round fenced), and is taken from its ring on.
 * And the fence of departed proposers (docs/CONSENSUS.md, "Watches"): a prepare or proposal of a
 * proposer whose node the acceptor's view holds as left or removed is refused, applied "no"; a
 * commit (a decided state) is still taken.
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
      departed: () => false,
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

  it('refuses the prepares and proposals of a departed node, from the moment its view holds it so, and still takes its commits', async () => {
    const storage = new MemoryStorage();
    await storage.open();
    const departed = new Set<string>();
    const store = new AcceptorStore({
      space: storage.paxos,
      bucketProperties: () => ({ consistent: true }) as BucketProperties,
      ringVersion: () => 1,
      departed: (node) => departed.has(node),
      stored: () => undefined,
    });
    // A node id may hold colons: the proposer identity is read back from the right.
    const proposer = proposerIdentity('host:7001', 3, 'k2');
    expect(proposerNode(proposer)).toBe('host:7001');
    const outcome = async (request: Parameters<AcceptorStore['handle']>[0]): Promise<string> =>
      store.handle(request).then(
        (answer) => answer.reply?.type ?? 'nothing',
        (error: unknown) => (isKvError(error) ? `${error.code} ${String(error.details?.applied)}` : String(error)),
      );
    const proposal = { ballot: { round: 2, proposer }, state: { version: 1, value: null, writes: [] } };
    expect(await outcome({ type: 'paxos-prepare', bucket: 'b', key: 'k', epoch: 1, ballot: { round: 1, proposer } })).toBe('promise');
    departed.add('host:7001');
    expect(await outcome({ type: 'paxos-prepare', bucket: 'b', key: 'k', epoch: 1, ballot: { round: 2, proposer } })).toBe('KV_NOT_READY no');
    expect(await outcome({ type: 'paxos-propose', bucket: 'b', key: 'k', epoch: 1, proposal })).toBe('KV_NOT_READY no');
    expect(await outcome({ type: 'paxos-commit', bucket: 'b', key: 'k', proposal })).toBe('nothing');
    // Another node's proposer (here one whose id shares the departed one's prefix) is still served.
    const other = proposerIdentity('host:70011', 1, 'a');
    expect(await outcome({ type: 'paxos-prepare', bucket: 'b', key: 'k', epoch: 1, ballot: { round: 3, proposer: other } })).toBe('promise');
    await storage.close();
  });
});
