import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type NodeProcess, call, freePorts, killNode, nodeStatus, startNode, temporaryFolder, waitFor, waitHealthy } from './processes.js';

/**
 * Goal: a cluster forms quickly and stays writable when a joiner dies during formation. Three
 * node processes are launched together (the first founds the ring, the others seed from it);
 * the third is killed 1.5 s after it has started (answers /health), while the founder's claimant
 * is folding it into the ring. The two live nodes
 * must then take `w=2` writes: the claimant drops the dead joiner from its plan instead of
 * waiting for it. The test waits for that condition with a deadline and asserts no timing; it
 * prints the time from launch to the first good write on each live node, for the record.
 */
describe('formation with a joiner that dies', () => {
  const folder = temporaryFolder('ringkv-formation-');
  const env = { RINGKV_CLUSTER_SECRET: 'formation-secret-0123456789abcdef' };
  const nodes: NodeProcess[] = [];

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  });

  it('three nodes launched together, the third killed 1.5 s after it starts: the live nodes take w=2 writes', async () => {
    const ports = await freePorts(3);
    const addresses = ports.map((port) => `127.0.0.1:${port}`);
    const launchedAt = Date.now();
    nodes.push(startNode(ports[0]!, join(folder.path, 'node1'), { env }));
    nodes.push(startNode(ports[1]!, join(folder.path, 'node2'), { env, seeds: [addresses[0]!] }));
    nodes.push(startNode(ports[2]!, join(folder.path, 'node3'), { env, seeds: [addresses[0]!] }));
    const [first, second, doomed] = nodes as [NodeProcess, NodeProcess, NodeProcess];
    let lastAnswer = '';
    const writeOnce = async (node: NodeProcess, key: string): Promise<boolean> => {
      try {
        const answer = await call(node, 'PUT', `/kv/formation/${key}?w=2`, { body: 'formed', headers: { 'content-type': 'text/plain' } });
        if (answer.status === 204) return true;
        lastAnswer = `${node.address}: ${answer.status} ${answer.body.toString('utf8').slice(0, 200)}`;
      } catch (error) {
        lastAnswer = `${node.address}: ${String(error)}`;
      }
      return false;
    };

    // From launch on, w=2 writes are tried on the two nodes that stay, to time formation itself.
    const firstGoodWriteMs = new Map<string, number>();
    let probing = true;
    const probe = (async () => {
      while (probing && firstGoodWriteMs.size < 2) {
        for (const node of [first, second]) {
          if (!firstGoodWriteMs.has(node.address) && (await writeOnce(node, `probe-${node.port}`))) firstGoodWriteMs.set(node.address, Date.now() - launchedAt);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();

    // The fault comes at a fixed moment after the third node's start: it is the scenario, not a wait for a state.
    await waitHealthy(doomed, 30_000);
    const startedAt = Date.now();
    await new Promise<void>((resolve, reject) => {
      setTimeout(() => {
        killNode(doomed).then(resolve, reject);
      }, 1500);
    });
    const killedAt = Date.now();

    const afterKillMs = new Map<string, number>();
    await waitFor(
      () => `a w=2 write to succeed on both live nodes after the kill (last answer: ${lastAnswer}; node1 output: ${first.output.slice(-800)})`,
      90_000,
      async () => {
        for (const node of [first, second]) {
          if (!afterKillMs.has(node.address) && (await writeOnce(node, `key-${node.port}`))) afterKillMs.set(node.address, Date.now() - launchedAt);
        }
        return afterKillMs.size === 2;
      },
    );
    probing = false;
    await probe;
    const figures = (map: Map<string, number>): string => [...map].map(([address, ms]) => `${address} ${ms} ms`).join(', ');
    console.log(
      `formation: launch to the first good w=2 write: ${figures(firstGoodWriteMs)}; the third node answered /health ${startedAt - launchedAt} ms after launch and was killed at ${killedAt - launchedAt} ms; first good w=2 write after the kill: ${figures(afterKillMs)}`,
    );

    // The ring may still be taking the second node in (when the dead one got into the ring first);
    // once both live nodes hold a settled ring with both of them, writes keep working on either.
    await waitFor('a settled ring holding both live nodes on both', 60_000, async () => {
      const statuses = await Promise.all([first, second].map(async (node) => nodeStatus(node)));
      const ids = statuses.map((status) => status.node.id);
      return statuses.every((status) => status.ring !== null && (status.ring.next ?? null) === null && ids.every((id) => status.ring!.members.includes(id)));
    });
    // Writes keep working on the live nodes, and what was written reads back from the other one.
    for (let index = 0; index < 20; index++) {
      const node = index % 2 === 0 ? first : second;
      expect((await call(node, 'PUT', `/kv/formation/more-${index}?w=2`, { body: `v${index}` })).status).toBe(204);
    }
    const read = await call(second, 'GET', `/kv/formation/key-${first.port}?r=2`);
    expect(read.status).toBe(200);
    expect(read.body.toString('utf8')).toBe('formed');
    const status = await nodeStatus(first);
    expect(status.ring?.members, 'the ring of the live nodes').toContain(status.node.id);
  }, 120_000);
});
