import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NodeProcess, call, freePorts, killNode, nodeStatus, startCluster, startNode, temporaryFolder, waitFor, waitHealthy } from './processes.js';

/**
 * Goal: three real node processes with `peerTransport: framed` form a cluster and replicate
 * over the framed peer protocol alone: a w=3 write on node 1 reads back with r=1 on node 3, and
 * no node's HTTP peer route has answered a single request (so gossip and replication did not
 * fall back to HTTP).
 */

/** The value of ringkv_requests_total for peer requests on the HTTP route (0 when there was none). */
function httpPeerRequests(metrics: string): number {
  return metrics
    .split('\n')
    .filter((line) => line.startsWith('ringkv_requests_total{') && line.includes('operation="peer"'))
    .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
}

describe('a 3-node cluster on the framed peer transport', () => {
  const folder = temporaryFolder('ringkv-framed-');
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    const env = { RINGKV_CLUSTER_SECRET: 'framed-integration-secret-0123456789', RINGKV_PEER_TRANSPORT: 'framed', RINGKV_GOSSIP_INTERVAL_MS: '200' };
    // freePorts picks ports whose peer port (port + 1000) is free too.
    await startCluster(3, { folder: folder.path, nodes, env, until: 'members-up', deadlineMs: 45_000 });
  }, 180_000);

  afterAll(async () => {
    for (const node of nodes) await killNode(node, 'SIGTERM');
    folder.remove();
  });

  it('reads back on node 3 with r=1 what node 1 wrote with w=3, without one HTTP peer request', async () => {
    const put = await call(nodes[0]!, 'PUT', '/kv/demo/framed?w=3', { body: 'over frames', headers: { 'content-type': 'text/plain' } });
    expect(put.status, put.body.toString()).toBe(204);
    const get = await call(nodes[2]!, 'GET', '/kv/demo/framed?r=1');
    expect(get.status).toBe(200);
    expect(get.body.toString()).toBe('over frames');
    for (const node of nodes) expect(httpPeerRequests((await call(node, 'GET', '/metrics')).body.toString())).toBe(0);
  });
});

/**
 * Goal: a node on the HTTP peer transport (as every node was before framed became the default)
 * and nodes on the default framed transport form one cluster and replicate both ways: the
 * framed nodes reach the HTTP node over its HTTP peer route once its peer port refuses (and log
 * that they do), and the HTTP node reaches them over theirs, which stays up.
 */
describe('a cluster of one node on http and two on framed', () => {
  const folder = temporaryFolder('ringkv-mixed-');
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    const env = { RINGKV_CLUSTER_SECRET: 'mixed-integration-secret-0123456789', RINGKV_GOSSIP_INTERVAL_MS: '200' };
    const ports = await freePorts(3);
    nodes.push(startNode(ports[0]!, join(folder.path, 'node1'), { env: { ...env, RINGKV_PEER_TRANSPORT: 'http' } }));
    await waitHealthy(nodes[0]!, 45_000);
    nodes.push(startNode(ports[1]!, join(folder.path, 'node2'), { env, seeds: [nodes[0]!.address] }));
    nodes.push(startNode(ports[2]!, join(folder.path, 'node3'), { env, seeds: [nodes[0]!.address] }));
    for (const node of nodes) await waitHealthy(node, 45_000);
    for (const node of nodes) {
      await waitFor(() => `${node.address} to see 3 members up (output: ${node.output.slice(-500)})`, 90_000, async () => {
        const status = await nodeStatus(node);
        return status.members.filter((member) => member.status === 'up').length === 3 && status.ring?.members.length === 3;
      });
    }
  }, 240_000);

  afterAll(async () => {
    for (const node of nodes) await killNode(node, 'SIGTERM');
    folder.remove();
  });

  it('replicates a w=3 write from a framed node to the http node and back', async () => {
    const put = await call(nodes[1]!, 'PUT', '/kv/demo/mixed?w=3', { body: 'across transports', headers: { 'content-type': 'text/plain' } });
    expect(put.status, put.body.toString()).toBe(204);
    const get = await call(nodes[0]!, 'GET', '/kv/demo/mixed?r=3');
    expect(get.status, get.body.toString()).toBe(200);
    expect(get.body.toString()).toBe('across transports');
    const back = await call(nodes[0]!, 'PUT', '/kv/demo/back?w=3', { body: 'from http', headers: { 'content-type': 'text/plain' } });
    expect(back.status, back.body.toString()).toBe(204);
    expect((await call(nodes[2]!, 'GET', '/kv/demo/back?r=3')).body.toString()).toBe('from http');
    expect(nodes[1]!.output).toMatch(/reaching it over the HTTP peer route/);
  });
});
