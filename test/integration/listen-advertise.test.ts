import { afterAll, describe, expect, it } from 'vitest';
import { call, freePorts, killNode, nodeStatus, startNode, temporaryFolder, waitFor, waitHealthy, type NodeProcess } from './processes.js';

/**
 * Goal: a node binds one address and is known by another. Two nodes listen on 127.0.0.1 but
 * advertise a DNS name (`localhost`), and the second joins through a seed given by that name:
 * the members know each other by the advertised names, and a write on one reads on the other.
 * (test/multi-host runs the same across separate hosts bound to 0.0.0.0, as root.)
 */

const folder = temporaryFolder('ringkv-advertise-');
const nodes: NodeProcess[] = [];
const secret = 'advertise-test-secret-0123456789';

afterAll(async () => {
  await Promise.all(nodes.map((node) => killNode(node, 'SIGTERM')));
  folder.remove();
});

describe('listen and advertise', () => {
  it('runs a cluster whose nodes are known by their advertised DNS names', async () => {
    const ports = await freePorts(2);
    for (const [index, port] of ports.entries()) {
      const extraArgs = ['--listen', '127.0.0.1', '--advertise', `localhost:${port}`];
      nodes.push(
        startNode(port, `${folder.path}/node${index + 1}`, {
          env: { RINGKV_CLUSTER_SECRET: secret },
          extraArgs,
          seeds: index === 0 ? [] : [`localhost:${ports[0]}`],
        }),
      );
    }
    for (const node of nodes) await waitHealthy(node);
    const advertised = ports.map((port) => `localhost:${port}`).sort();
    await waitFor(
      () => `both nodes to list both advertised names, up, in one ring (output: ${nodes.map((node) => node.output.slice(-300)).join('\n')})`,
      300_000,
      async (see) => {
        for (const node of nodes) {
          const status = await nodeStatus(node);
          see({
            node: node.address,
            members: status.members.map((member) => `${member.address} ${member.status}`),
            ring: status.ring?.members,
            next: status.ring?.next ?? null,
          });
          const up = status.members
            .filter((member) => member.status === 'up')
            .map((member) => member.address)
            .sort();
          if (JSON.stringify(up) !== JSON.stringify(advertised) || status.ring?.members.length !== 2 || (status.ring.next ?? null) !== null) return false;
        }
        return true;
      },
    );
    expect((await nodeStatus(nodes[1]!)).members.map((member) => member.address)).not.toContain(`127.0.0.1:${ports[0]}`);
    const put = await call(nodes[1]!, 'PUT', '/kv/advertise/k?w=all', { body: 'over the advertised names' });
    expect(put.status).toBe(204);
    const read = await call(nodes[0]!, 'GET', '/kv/advertise/k?r=all');
    expect(read.status).toBe(200);
    expect(read.body.toString()).toBe('over the advertised names');
  });
});
