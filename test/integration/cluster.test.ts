import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

/**
 * The cluster issue's acceptance scenario on three real node processes: membership by gossip,
 * quorums, failure detection, hinted handoff after kill -9, siblings, lww, and the peer secret.
 */
describe('a 3-node cluster of real processes', () => {
  const folder = temporaryFolder('ringkv-cluster-');
  const secret = 'integration-secret-0123456789abcdef';
  const configFile = join(folder.path, 'config.json');
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    writeFileSync(configFile, JSON.stringify({ buckets: { lwwbucket: { conflictMode: 'lww' } } }));
    const env = { RINGKV_CLUSTER_SECRET: secret };
    const extraArgs = ['--config', configFile];
    await startCluster(3, { folder: folder.path, nodes, env, extraArgs });
  }, processTestTimeoutMs);

  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'lists 3 members up on every node, with all 3 in the ring',
    async () => {
      for (const node of nodes) await waitForMembersUp(node, 3);
    },
    processTestTimeoutMs,
  );

  it(
    'reads with r=1 on node 3 what was written with w=3 on node 1',
    async () => {
      const put = await call(nodes[0]!, 'PUT', '/kv/demo/k1?w=3', { body: 'replicated', headers: { 'content-type': 'text/plain' } });
      expect(put.status).toBe(204);
      const get = await call(nodes[2]!, 'GET', '/kv/demo/k1?r=1');
      expect(get.status).toBe(200);
      expect(get.body.toString()).toBe('replicated');
      expect(get.headers['content-type']).toBe('text/plain');
    },
    processTestTimeoutMs,
  );

  it(
    'keeps two writes without context on two nodes as siblings, and one value in an lww bucket',
    async () => {
      expect((await call(nodes[0]!, 'PUT', '/kv/demo/both', { body: 'from-1' })).status).toBe(204);
      expect((await call(nodes[1]!, 'PUT', '/kv/demo/both', { body: 'from-2' })).status).toBe(204);
      const siblings = await call(nodes[2]!, 'GET', '/kv/demo/both?r=all');
      expect(siblings.status).toBe(300);
      const values = siblings
        .json<{ siblings: { value: string }[] }>()
        .siblings.map((sibling) => Buffer.from(sibling.value, 'base64').toString())
        .sort();
      expect(values).toEqual(['from-1', 'from-2']);

      expect((await call(nodes[0]!, 'PUT', '/kv/lwwbucket/both', { body: 'first' })).status).toBe(204);
      expect((await call(nodes[1]!, 'PUT', '/kv/lwwbucket/both', { body: 'second' })).status).toBe(204);
      const single = await call(nodes[2]!, 'GET', '/kv/lwwbucket/both?r=all');
      expect(single.status).toBe(200);
      expect(single.body.toString()).toBe('second');
    },
    processTestTimeoutMs,
  );

  it(
    'serves no peer traffic on its HTTP port, with or without a secret: peers talk only on the framed peer port',
    async () => {
      const body = Buffer.from([1, 0]);
      const headers = { 'content-type': 'application/octet-stream' };
      expect((await call(nodes[0]!, 'POST', '/internal/v1/peer', { body, headers })).status).toBe(404);
      expect((await call(nodes[0]!, 'POST', '/internal/v1/peer', { body, headers: { ...headers, 'x-ringkv-secret': 'wrong-secret' } })).status).toBe(404);
    },
    processTestTimeoutMs,
  );

  it(
    'detects a killed node, keeps writing with w=2, refuses pw=3, and hands the writes off when it returns',
    async () => {
      const [node1, node2, node3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
      await killNode(node2);
      await waitFor('node 1 to see node 2 down', pollDeadlineMs, async (see) => {
        const status = await nodeStatus(node1);
        see(describeMembership(status));
        return status.members.some((member) => member.address === node2.address && member.status === 'down');
      });

      const written: string[] = [];
      for (let index = 0; index < 20; index++) {
        const put = await call(node1, 'PUT', `/kv/handoff/key-${index}?w=2`, { body: `while-down-${index}` });
        expect(put.status).toBe(204);
        written.push(`key-${index}`);
      }
      const strict = await call(node1, 'PUT', '/kv/handoff/strict?pw=3', { body: 'needs all primaries' });
      expect(strict.status).toBe(503);
      expect(strict.json<{ error: { code: string } }>().error.code).toBe('KV_INSUFFICIENT_REPLICAS');

      // Restarted with only --port, --data and --seeds: id, generation and secret come from its data directory.
      restartNode(node2, { seeds: [node1.address], extraArgs: ['--config', configFile] });
      await waitHealthy(node2);
      await waitFor('the writes made while node 2 was down to read back from node 2 locally', pollDeadlineMs, async (see) => {
        const missing: string[] = [];
        for (const key of written) {
          const local = await call(node2, 'GET', `/kv/handoff/${key}?local=true`);
          if (local.status !== 200) missing.push(`${key}: ${local.status}`);
        }
        see(`${missing.length} of ${written.length} not on node 2 yet: ${missing.slice(0, 5).join(', ')}`);
        return missing.length === 0;
      });
      await waitFor('pending hints to drain to 0', pollDeadlineMs, async (see) => {
        const pending = await Promise.all([node1, node3].map(async (node) => (await nodeStatus(node)).hints.pending));
        see(`pending hints on nodes 1 and 3: ${pending.join(', ')}`);
        return pending.every((count) => count === 0);
      });
    },
    processTestTimeoutMs,
  );
});
