import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/ring-client.js';
import { type NodeProcess, killNode, nodeStatus, startNode, temporaryFolder, waitFor, waitHealthy } from './processes.js';

const run = promisify(execFile);
const cli = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

interface RingStatus {
  ring: { version: number; owners: string[]; members: string[]; next: string[] | null } | null;
  node: { id: string };
}

async function ringOf(node: NodeProcess): Promise<RingStatus> {
  return (await (await fetch(`http://${node.address}/status`)).json()) as RingStatus;
}

/** Writes new keys through the given nodes until stopped; remembers what was acknowledged and every failure. */
function steadyLoad(client: RingClient, concurrency: number, prefix: string): { acknowledged: Map<string, string>; failures: string[]; stop: () => Promise<void> } {
  const acknowledged = new Map<string, string>();
  const failures: string[] = [];
  let running = true;
  let sequence = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      const key = `${prefix}-${sequence++}`;
      try {
        await client.put('load', key, `value-${key}`, { w: 'quorum' });
        acknowledged.set(key, `value-${key}`);
      } catch (error) {
        failures.push(`${key}: ${(error as Error).message}`);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, () => worker());
  return {
    acknowledged,
    failures,
    stop: async () => {
      running = false;
      await Promise.all(workers);
    },
  };
}

async function unreadable(client: RingClient, acknowledged: Map<string, string>): Promise<string[]> {
  const missing: string[] = [];
  const entries = [...acknowledged];
  let index = 0;
  const reader = async (): Promise<void> => {
    while (index < entries.length) {
      const [key, value] = entries[index++] as [string, string];
      const read = await client.get('load', key, { r: 'all' });
      if (!read.found || read.siblings.length !== 1 || read.siblings[0]?.value.toString() !== value) missing.push(key);
    }
  };
  await Promise.all(Array.from({ length: 16 }, () => reader()));
  return missing;
}

/**
 * The membership-change scenarios on real processes: a 4th node joins a 3-node cluster under a
 * steady write load, then leaves again with `ringkv leave`, also under load.
 */
describe('join and leave on real processes, under load', () => {
  const folder = temporaryFolder('ringkv-membership-');
  const env = { RINGKV_CLUSTER_SECRET: 'membership-secret-0123456789ab' };
  const nodes: NodeProcess[] = [];
  const addresses = ['127.0.0.1:17941', '127.0.0.1:17942', '127.0.0.1:17943'];
  const client = new RingClient({ nodes: addresses, connectionsPerNode: 8 });

  beforeAll(async () => {
    nodes.push(startNode(17_941, join(folder.path, 'node1'), { env }));
    await waitHealthy(nodes[0]!);
    nodes.push(startNode(17_942, join(folder.path, 'node2'), { env, seeds: [addresses[0]!] }));
    nodes.push(startNode(17_943, join(folder.path, 'node3'), { env, seeds: [addresses[0]!] }));
    for (const node of nodes) {
      await waitFor(`${node.address} to see a settled ring of 3`, 30_000, async () => {
        const status = await ringOf(node);
        return status.ring?.members.length === 3 && status.ring.next === null;
      });
    }
  });

  afterAll(async () => {
    await client.close();
    for (const node of nodes) await killNode(node);
    folder.remove();
  });

  it('takes a 4th node in under load: nothing acknowledged is lost, no request fails, each node owns Q/4 within one, about a quarter moved', async () => {
    const load = steadyLoad(client, 8, 'join');
    await waitFor('some load before the join', 20_000, async () => load.acknowledged.size >= 300);
    const before = (await ringOf(nodes[0]!)).ring!;
    const joiner = startNode(17_944, join(folder.path, 'node4'), { env, seeds: [addresses[0]!] });
    nodes.push(joiner);
    await waitHealthy(joiner);
    await waitFor('a settled ring of 4 on every node', 120_000, async () => {
      for (const node of nodes) {
        const status = await ringOf(node);
        if (status.ring?.members.length !== 4 || status.ring.next !== null) return false;
      }
      return true;
    });
    const acknowledgedAtFlip = load.acknowledged.size;
    await waitFor('more load after the join', 20_000, async () => load.acknowledged.size >= acknowledgedAtFlip + 200);
    await load.stop();
    expect(load.failures.slice(0, 5), `${load.failures.length} requests failed during the join`).toEqual([]);

    const after = (await ringOf(joiner)).ring!;
    const share = after.owners.length / 4;
    for (const member of after.members) {
      const owned = after.owners.filter((owner) => owner === member).length;
      expect(Math.abs(owned - share), `${member} owns ${owned} of ${after.owners.length}`).toBeLessThanOrEqual(1);
    }
    const moved = after.owners.filter((owner, partition) => owner !== before.owners[partition]).length;
    expect(moved / after.owners.length).toBeGreaterThan(0.2);
    expect(moved / after.owners.length).toBeLessThan(0.3);
    const missing = await unreadable(new RingClient({ nodes: [joiner.address] }), load.acknowledged);
    expect(missing.slice(0, 10), `${missing.length} of ${load.acknowledged.size} acknowledged writes unreadable`).toEqual([]);
    const joinerStatus = await nodeStatus(joiner);
    expect(joinerStatus.members.find((member) => member.id === (joinerStatus as unknown as RingStatus).node.id)?.status).toBe('up');
  }, 240_000);

  it('lets the 4th node leave with `ringkv leave` under load: it exits, and everything acknowledged reads back with r=all', async () => {
    const leaver = nodes[3]!;
    const load = steadyLoad(client, 8, 'leave');
    await waitFor('some load before the leave', 20_000, async () => load.acknowledged.size >= 300);
    const leaveStartedAt = Date.now();
    const { stdout } = await run(process.execPath, [cli, 'leave', '--node', leaver.address]);
    expect(stdout).toContain('leaving');
    await waitFor('the leaving node to exit by itself', 120_000, async () => leaver.child === undefined || leaver.child.exitCode !== null);
    console.log(`leave: the node exited ${Date.now() - leaveStartedAt} ms after \`ringkv leave\`, with ${load.acknowledged.size} writes acknowledged so far`);
    await waitFor('a settled ring of 3 on the others', 60_000, async () => {
      for (const node of nodes.slice(0, 3)) {
        const status = await ringOf(node);
        if (status.ring?.members.length !== 3 || status.ring.next !== null) return false;
      }
      return true;
    });
    await load.stop();
    expect(load.failures.slice(0, 5), `${load.failures.length} requests failed during the leave`).toEqual([]);
    const missing = await unreadable(client, load.acknowledged);
    expect(missing.slice(0, 10), `${missing.length} of ${load.acknowledged.size} acknowledged writes unreadable`).toEqual([]);
    const earlier = await unreadable(client, new Map([['join-0', 'value-join-0']]));
    expect(earlier, 'a key written before the join and the leave').toEqual([]);
  }, 240_000);
});
