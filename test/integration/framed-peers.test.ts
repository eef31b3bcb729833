import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NodeProcess, call, killNode, startCluster, temporaryFolder } from './processes.js';

/**
 * Goal: three real node processes with `peerTransport: framed` form a cluster and replicate
 * over the framed peer protocol alone: a w=3 write on node 1 reads back with r=1 on node 3, and
 * no node's HTTP peer route has answered a single request (so gossip and replication did not
 * fall back to HTTP).
 */

const peerPortOffset = 1000;

/** True when the port can be bound on 127.0.0.1 right now. */
async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A port the kernel says is free, whose peer port (port + offset) is free too. */
async function freePortPair(taken: readonly number[]): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    if (port + peerPortOffset > 65_535 || taken.includes(port) || taken.includes(port + peerPortOffset)) continue;
    if (await portFree(port + peerPortOffset)) return port;
  }
  throw new Error('found no free port whose port + 1000 is free too');
}

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
    const ports: number[] = [];
    for (let index = 0; index < 3; index++) ports.push(await freePortPair(ports.flatMap((port) => [port, port + peerPortOffset])));
    await startCluster(3, { folder: folder.path, nodes, ports, env, until: 'members-up', deadlineMs: 45_000 });
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
