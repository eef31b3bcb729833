import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/ring-client.js';
import { type NodeProcess, call, freePorts, killNode, nodeStatus, startNode, temporaryFolder, waitFor, waitForMembersUp, waitHealthy } from './processes.js';

/**
 * Goals, on real node processes and through the HTTP API as the README shows it:
 * - a context a write reply hands out, chained into the next write, never deletes a concurrent
 *   sibling its writer never saw (the correctness issue's curl scenario, on one node and on three
 *   with w=all and r=all), and the same through the client library's WriteResult.context;
 * - no client request can crash a node: with one node of three down, hundreds of requests with
 *   timeouts from 1 to 80 ms leave both live nodes up and writable.
 */

const siblingValues = (answer: { status: number; body: Buffer; json<T>(): T }): string[] => {
  if (answer.status === 200) return [answer.body.toString('utf8')];
  return answer
    .json<{ siblings: { value: string }[] }>()
    .siblings.map((sibling) => Buffer.from(sibling.value, 'base64').toString('utf8'))
    .sort();
};

/** PUT blue, PUT red (both blind), PUT red2 with the context of red's 204; answers what a read then shows. */
async function colourScenario(writeTo: NodeProcess, readFrom: NodeProcess, key: string, query: string, readQuery: string): Promise<string[]> {
  expect((await call(writeTo, 'PUT', `/kv/colours/${key}${query}`, { body: 'blue' })).status).toBe(204);
  const red = await call(writeTo, 'PUT', `/kv/colours/${key}${query}`, { body: 'red' });
  expect(red.status).toBe(204);
  const context = red.headers['x-ringkv-context'];
  expect(typeof context).toBe('string');
  const red2 = await call(writeTo, 'PUT', `/kv/colours/${key}${query}`, { body: 'red2', headers: { 'x-ringkv-context': String(context) } });
  expect(red2.status).toBe(204);
  return siblingValues(await call(readFrom, 'GET', `/kv/colours/${key}${readQuery}`));
}

describe('write reply contexts on one node', () => {
  const folder = temporaryFolder('ringkv-ctx1-');
  let node: NodeProcess;

  beforeAll(async () => {
    node = startNode((await freePorts(1))[0]!, join(folder.path, 'solo'));
    await waitHealthy(node);
  });

  afterAll(async () => {
    await killNode(node);
    folder.remove();
  });

  it('keeps blue beside red2 when red2 was written with the context of red', async () => {
    expect(await colourScenario(node, node, 'one', '', '')).toEqual(['blue', 'red2']);
  });
});

describe('a 3-node cluster: write reply contexts, and requests with tiny timeouts while a node is down', () => {
  const folder = temporaryFolder('ringkv-ctx3-');
  const env = { RINGKV_CLUSTER_SECRET: 'write-safety-secret-0123456789' };
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    const [port1, port2, port3] = (await freePorts(3)) as [number, number, number];
    nodes.push(startNode(port1, join(folder.path, 'node1'), { env }));
    await waitHealthy(nodes[0]!);
    const seeds = [nodes[0]!.address];
    nodes.push(startNode(port2, join(folder.path, 'node2'), { env, seeds }));
    nodes.push(startNode(port3, join(folder.path, 'node3'), { env, seeds }));
    for (const node of nodes) await waitForMembersUp(node, 3, { settled: true });
  });

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  });

  it('keeps blue beside red2 with w=all writes and an r=all read on another node', async () => {
    expect(await colourScenario(nodes[0]!, nodes[2]!, 'three', '?w=all', '?r=all')).toEqual(['blue', 'red2']);
  });

  it('keeps a concurrent sibling when the client library chains WriteResult.context', async () => {
    const client = new RingClient({ nodes: [nodes[1]!.address] });
    try {
      await client.put('colours', 'client', 'blue', { w: 'all' });
      const red = await client.put('colours', 'client', 'red', { w: 'all' });
      await client.put('colours', 'client', 'red2', { w: 'all', context: red.context });
      const read = await client.get('colours', 'client', { r: 'all' });
      expect(read.siblings.map((sibling) => sibling.value.toString('utf8')).sort()).toEqual(['blue', 'red2']);
    } finally {
      await client.close();
    }
  });

  it('stays up and writable through hundreds of requests with timeout_ms from 1 to 80 while a node is down', async () => {
    const [node1, node2, node3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
    await killNode(node3);
    await waitFor('node 1 and node 2 to see node 3 down', 120_000, async () => {
      const views = await Promise.all([node1, node2].map(async (node) => nodeStatus(node)));
      return views.every((view) => view.members.some((member) => member.address === node3.address && member.status === 'down'));
    });
    const statuses = new Map<number, number>();
    for (let round = 0; round < 4; round++) {
      await Promise.all(
        Array.from({ length: 80 }, async (_, index) => {
          const node = index % 2 === 0 ? node1 : node2;
          const timeout = index + 1;
          const method = (['PUT', 'GET', 'DELETE'] as const)[(index + round) % 3]!;
          const answer = await call(node, method, `/kv/tiny/k${index % 7}?timeout_ms=${timeout}`, method === 'PUT' ? { body: `v${round}-${index}` } : {});
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
        }),
      );
    }
    // Every answer is a proper HTTP answer (success, not found, siblings, 503 or 504), never a dropped connection.
    for (const status of statuses.keys()) expect([200, 204, 300, 404, 503, 504]).toContain(status);
    for (const node of [node1, node2]) {
      expect(node.child?.exitCode ?? null, `${node.address} exited: ${node.output.slice(-2000)}`).toBeNull();
      expect((await call(node, 'GET', '/health')).status).toBe(200);
      expect((await call(node, 'PUT', '/kv/tiny/after?w=2', { body: 'still writable' })).status).toBe(204);
    }
  });
});
