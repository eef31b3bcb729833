import { type AddressInfo, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NodeProcess, call, freePorts, killNode, startCluster, startNode, temporaryFolder, waitFor } from './processes.js';

/**
 * Goal: three real node processes form a cluster and replicate over the framed peer protocol (the
 * only way nodes talk): a w=3 write on node 1 reads back with r=1 on node 3.
 */
describe('a 3-node cluster on the framed peer protocol', () => {
  const folder = temporaryFolder('ringkv-framed-');
  const nodes: NodeProcess[] = [];

  beforeAll(async () => {
    const env = { RINGKV_CLUSTER_SECRET: 'framed-integration-secret-0123456789', RINGKV_GOSSIP_INTERVAL_MS: '200' };
    // freePorts picks ports whose peer port (port + 1000) is free too.
    await startCluster(3, { folder: folder.path, nodes, env, until: 'members-up', deadlineMs: 45_000 });
  }, 180_000);

  afterAll(async () => {
    for (const node of nodes) await killNode(node, 'SIGTERM');
    folder.remove();
  });

  it('reads back on node 3 with r=1 what node 1 wrote with w=3', async () => {
    const put = await call(nodes[0]!, 'PUT', '/kv/demo/framed?w=3', { body: 'over frames', headers: { 'content-type': 'text/plain' } });
    expect(put.status, put.body.toString()).toBe(204);
    const get = await call(nodes[2]!, 'GET', '/kv/demo/framed?r=1');
    expect(get.status).toBe(200);
    expect(get.body.toString()).toBe('over frames');
  });
});

/**
 * Goal (issue 18 item 10): when a peer's peer port refuses the connection, a node tries no other
 * path to it, so no downgrade can put the cluster secret on the wire. The "peer" is a seed whose
 * peer port nothing listens on (refused) and whose HTTP port is a socket that records every byte
 * it is sent. The node keeps trying its seed (its debug log says so, every gossip round); the
 * recording socket must see no connection at all, and so certainly not the secret.
 */
describe('a node whose peer refuses its peer port', () => {
  const folder = temporaryFolder('ringkv-refused-');
  const secret = 'refused-peer-secret-0123456789abcdef';
  const received: Buffer[] = [];
  const sockets: Socket[] = [];
  let connections = 0;
  const recorder = createServer((socket) => {
    connections += 1;
    sockets.push(socket);
    socket.on('data', (chunk: Buffer) => received.push(Buffer.from(chunk)));
    socket.on('error', () => undefined);
  });
  let node: NodeProcess | undefined;

  afterAll(async () => {
    if (node !== undefined) await killNode(node, 'SIGTERM');
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => recorder.close(() => resolve()));
    folder.remove();
  });

  it('never reaches for the seed on another port, and never sends the secret', async () => {
    // freePorts picks ports whose peer port (port + 1000) is free: the seed's peer port refuses.
    const [seedPort, nodePort] = (await freePorts(2)) as [number, number];
    await new Promise<void>((resolve) => recorder.listen(seedPort, '127.0.0.1', resolve));
    const seed = `127.0.0.1:${(recorder.address() as AddressInfo).port}`;
    node = startNode(nodePort, join(folder.path, 'node'), {
      seeds: [seed],
      env: { RINGKV_CLUSTER_SECRET: secret, RINGKV_GOSSIP_INTERVAL_MS: '200' },
      extraArgs: ['--log-level', 'debug'],
    });
    const started = node;
    const attempts = (): number => started.output.split('\n').filter((line) => line.includes('could not reach a seed') && line.includes(seed)).length;
    await waitFor(
      () => `the node to try its seed ${seed} five times (saw ${attempts()}; output: ${started.output.slice(-500)})`,
      90_000,
      async () => attempts() >= 5,
    );
    const bytes = Buffer.concat(received);
    expect(bytes.includes(Buffer.from(secret)), `the seed's HTTP port was sent the secret: ${bytes.toString('latin1').slice(0, 300)}`).toBe(false);
    expect(connections, `the seed's HTTP port got ${connections} connections, carrying ${bytes.toString('latin1').slice(0, 300)}`).toBe(0);
    expect(started.output).toMatch(/refused: is a ringkv node running there/);
  });
});
