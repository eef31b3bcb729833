import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type NodeProcess,
  call,
  describeMembership,
  killNode,
  nodeStatus,
  pollDeadlineMs,
  processTestTimeoutMs,
  restartNode,
  startCluster,
  temporaryFolder,
  waitFor,
  waitForMembersUp,
  waitHealthy,
} from './processes.js';

/** The tree figures of /status. */
interface TreeFigures {
  readonly loadedFromSnapshot: boolean;
  readonly rebuilding: boolean;
}

async function treeFigures(node: NodeProcess): Promise<TreeFigures> {
  return (await call(node, 'GET', '/status')).json<{ antiEntropy: { trees: TreeFigures } }>().antiEntropy.trees;
}

/** The value a node holds itself for a key (no coordination), or undefined. */
async function localValue(node: NodeProcess, key: string): Promise<string | undefined> {
  const answer = await call(node, 'GET', `/kv/saved/${key}?local=true`);
  return answer.status === 200 ? answer.body.toString('utf8') : undefined;
}

async function waitDown(observer: NodeProcess, gone: NodeProcess): Promise<void> {
  await waitFor(`${observer.address} to see ${gone.address} down`, pollDeadlineMs, async (see) => {
    const status = await nodeStatus(observer);
    see(describeMembership(status));
    return status.members.some((member) => member.address === gone.address && member.status === 'down');
  });
}

/**
 * Goal, on real processes: a node trusts the Merkle trees it saved only after a clean stop. Node 1
 * restarts cleanly (its trees load from disk), takes a key while both other replicas are down,
 * and is killed with SIGKILL right after; back up, it rebuilds its trees from the data instead
 * of trusting the saved ones (which lack the key), and anti-entropy brings the key to the two
 * replicas that missed it. With the saved trees trusted, all three trees would agree and the key
 * would never move.
 */
describe('saved Merkle trees on real processes', () => {
  const folder = temporaryFolder('ringkv-trees-');
  const env = { RINGKV_CLUSTER_SECRET: 'saved-trees-secret-0123456789', RINGKV_HINTED_HANDOFF: 'false', RINGKV_ANTI_ENTROPY_INTERVAL_MS: '1000' };
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    await startCluster(3, { folder: folder.path, nodes, env, until: 'settled' });
  }, processTestTimeoutMs);

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'repairs a key written just before kill -9 to the replicas that missed it, after a clean restart had loaded saved trees',
    async () => {
      const [node1, node2, node3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
      for (let index = 0; index < 50; index++) expect((await call(node1, 'PUT', `/kv/saved/base-${index}?w=all`, { body: 'base' })).status).toBeLessThan(300);
      await killNode(node1, 'SIGTERM');
      restartNode(node1, { env, seeds: [node2.address] });
      await waitHealthy(node1);
      expect(await treeFigures(node1)).toMatchObject({ loadedFromSnapshot: true, rebuilding: false });
      await waitForMembersUp(node1, 3, { settled: true });

      await killNode(node2);
      await killNode(node3);
      await waitDown(node1, node2);
      await waitDown(node1, node3);
      expect((await call(node1, 'PUT', '/kv/saved/late?w=1', { body: 'written just before the crash' })).status).toBeLessThan(300);
      await killNode(node1);

      restartNode(node1, { env, seeds: [node2.address] });
      restartNode(node2, { env, seeds: [node1.address] });
      restartNode(node3, { env, seeds: [node1.address] });
      await waitHealthy(node1);
      expect((await treeFigures(node1)).loadedFromSnapshot, 'trees saved before a kill -9 are not trusted').toBe(false);
      for (const node of [node2, node3]) {
        await waitFor(`${node.address} to get the key by anti-entropy`, pollDeadlineMs, async (see) => {
          const value = await localValue(node, 'late');
          see(value ?? 'absent');
          return value === 'written just before the crash';
        });
      }
    },
    processTestTimeoutMs,
  );
});
