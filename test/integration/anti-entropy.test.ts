import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/ring-client.js';
import {
  type NodeProcess,
  describeMembership,
  killNode,
  nodeStatus,
  pollDeadlineMs,
  processTestTimeoutMs,
  restartNode,
  startCluster,
  temporaryFolder,
  waitFor,
  waitForProgress,
  waitHealthy,
} from './processes.js';

/** Anti-entropy figures of /status that this test follows. */
interface AntiEntropyFigures {
  readonly exchanges: number;
  readonly keysRepaired: number;
  readonly bytesExchanged: number;
}

/** The parts of /status this test reads. */
interface StatusFigures {
  readonly partitionCount: number;
  readonly storage: { readonly keys: number };
  readonly antiEntropy: AntiEntropyFigures;
}

async function statusFigures(node: NodeProcess): Promise<StatusFigures> {
  return (await (await fetch(`http://${node.address}/status`)).json()) as StatusFigures;
}

/**
 * The anti-entropy issue's acceptance scenario on real processes: with hinted handoff off, a
 * node that was down while 10,000 keys were written gets every one of them back from Merkle
 * exchanges alone, with the default anti-entropy settings. The test fails only when anti-entropy
 * stops making progress (no key reaches node 3 and no key is repaired anywhere over several of
 * node 3's own anti-entropy rounds), never because the machine is slow: how long it took is printed.
 */
describe('anti-entropy on a 3-node cluster of real processes', () => {
  const folder = temporaryFolder('ringkv-ae-');
  const env = { RINGKV_CLUSTER_SECRET: 'anti-entropy-secret-0123456789', RINGKV_HINTED_HANDOFF: 'false' };
  const nodes: NodeProcess[] = [];
  let client: RingClient | undefined;

  beforeAll(async () => {
    await startCluster(3, { folder: folder.path, nodes, env, until: 'settled' });
    client = new RingClient({ nodes: [nodes[0]!.address, nodes[1]!.address], connectionsPerNode: 32 });
  }, processTestTimeoutMs);

  afterAll(async () => {
    await client?.close();
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'brings 10,000 keys written while node 3 was down back to node 3 by anti-entropy alone, however slow the machine',
    async () => {
      const [node1, , node3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
      const writes = client as RingClient;
      await killNode(node3);
      await waitFor('node 1 to see node 3 down', pollDeadlineMs, async (see) => {
        const status = await nodeStatus(node1);
        see(describeMembership(status));
        return status.members.some((member) => member.address === node3.address && member.status === 'down');
      });

      const keys = Array.from({ length: 10_000 }, (_, index) => `key-${index}`);
      let next = 0;
      const writer = async (): Promise<void> => {
        while (next < keys.length) {
          const key = keys[next++] as string;
          await writes.put('ae', key, `value-${key}`, { w: 2 });
        }
      };
      await Promise.all(Array.from({ length: 32 }, () => writer()));
      const hints = await Promise.all([node1, nodes[1]!].map(async (node) => (await nodeStatus(node)).hints.pending));
      expect(hints, 'hinted handoff is off: no hints were kept').toEqual([0, 0]);

      restartNode(node3, { seeds: [node1.address], env });
      await waitHealthy(node3);
      const restartedAt = Date.now();
      // One anti-entropy round of node 3 exchanges every partition it replicates with each of its two
      // peers (all of them: n_val is 3 on 3 nodes), so its own exchange count divided by that is its
      // round count. Five rounds in a row without any key repaired anywhere means anti-entropy is stuck.
      const caughtUp = await waitForProgress('node 3 to hold all 10,000 keys by anti-entropy', { stallRounds: 5, capMs: 15 * 60_000 }, async () => {
        const all = await Promise.all(nodes.map(async (node) => statusFigures(node)));
        const figures3 = all[2] as StatusFigures;
        const exchangesPerRound = Math.max(1, figures3.partitionCount * (nodes.length - 1));
        const keys3 = figures3.storage.keys;
        const repaired = all.map((figure) => figure.antiEntropy.keysRepaired);
        const rounds = Math.floor(figures3.antiEntropy.exchanges / exchangesPerRound);
        return {
          done: keys3 >= keys.length,
          progress: { keys3, repaired },
          rounds,
          seen: `node 3 holds ${keys3} keys after ${rounds} of its rounds (${figures3.antiEntropy.exchanges} exchanges); keys repaired per node ${repaired.join('/')}; node 3 output: ${node3.output.slice(-300)}`,
        };
      });
      const caughtUpMs = Date.now() - restartedAt;

      const local = new RingClient({ nodes: [node3.address], connectionsPerNode: 32 });
      try {
        const missing: string[] = [];
        let index = 0;
        const reader = async (): Promise<void> => {
          while (index < keys.length) {
            const key = keys[index++] as string;
            const read = await local.get('ae', key, { local: true });
            if (!read.found || read.siblings[0]?.value.toString() !== `value-${key}`) missing.push(key);
          }
        };
        await Promise.all(Array.from({ length: 32 }, () => reader()));
        expect(missing.slice(0, 10), `${missing.length} keys missing on node 3`).toEqual([]);
      } finally {
        await local.close();
      }
      const figures = await Promise.all(nodes.map(async (node) => (await statusFigures(node)).antiEntropy));
      const repaired = figures.reduce((sum, figure) => sum + figure.keysRepaired, 0);
      const bytes = figures.reduce((sum, figure) => sum + figure.bytesExchanged, 0);
      expect(repaired).toBeGreaterThanOrEqual(keys.length);
      console.log(
        `anti-entropy: node 3 caught up ${caughtUpMs} ms after restart, in ${caughtUp.rounds} of its rounds; ${repaired} keys repaired, ${bytes} bytes exchanged in all`,
      );
    },
    processTestTimeoutMs,
  );
});
