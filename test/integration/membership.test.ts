import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/ring-client.js';
import {
  type NodeProcess,
  describeExit,
  describeMembership,
  freePorts,
  killNode,
  nodeStatus,
  pollDeadlineMs,
  processTestTimeoutMs,
  restartNode,
  startCluster,
  startNode,
  temporaryFolder,
  waitFor,
  waitHealthy,
} from './processes.js';

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
function steadyLoad(
  client: RingClient,
  concurrency: number,
  prefix: string,
): { acknowledged: Map<string, string>; failures: string[]; stop: () => Promise<void> } {
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

/** Waits until the load has `count` acknowledged writes; fails naming how many it had and its first failures. */
async function waitForLoad(what: string, load: { acknowledged: Map<string, string>; failures: string[] }, count: number): Promise<void> {
  await waitFor(what, pollDeadlineMs, async (see) => {
    see(`${load.acknowledged.size} of ${count} acknowledged, ${load.failures.length} failed (${load.failures.slice(0, 3).join('; ')})`);
    return load.acknowledged.size >= count;
  });
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
  let ports: number[] = [];
  let seeds: string[] = [];
  let client: RingClient | undefined;
  const started = (): RingClient => {
    if (client === undefined) throw new Error('the cluster did not start: see beforeAll');
    return client;
  };

  /** Waits until every given node sees a settled ring of `count` members; fails naming each node's view. */
  const waitForSettledRings = async (what: string, members: NodeProcess[], count: number): Promise<void> => {
    await waitFor(what, pollDeadlineMs, async (see) => {
      const views = await Promise.all(members.map(async (node) => ({ node, status: await nodeStatus(node) })));
      see(views.map(({ node, status }) => `${node.address} sees ${describeMembership(status)}`).join('; '));
      return views.every(({ status }) => status.ring?.members.length === count && status.ring.next === null);
    });
  };

  beforeAll(async () => {
    // The 4th node's port is picked now too, so the 3 nodes cannot happen to take it meanwhile.
    ports = await freePorts(4);
    await startCluster(3, { folder: folder.path, nodes, ports: ports.slice(0, 3), env, until: 'settled' });
    seeds = [nodes[0]!.address];
    client = new RingClient({ nodes: nodes.map((node) => node.address), connectionsPerNode: 8 });
  }, processTestTimeoutMs);

  afterAll(async () => {
    await client?.close();
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'takes a 4th node in under load: nothing acknowledged is lost, no request fails, each node owns Q/4 within one, about a quarter moved',
    async () => {
      const load = steadyLoad(started(), 8, 'join');
      await waitForLoad('some load before the join', load, 300);
      const before = (await ringOf(nodes[0]!)).ring!;
      const joiner = startNode(ports[3]!, join(folder.path, 'node4'), { env, seeds });
      nodes.push(joiner);
      await waitHealthy(joiner);
      await waitForSettledRings('a settled ring of 4 on every node', nodes, 4);
      const acknowledgedAtFlip = load.acknowledged.size;
      await waitForLoad('more load after the join', load, acknowledgedAtFlip + 200);
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
    },
    processTestTimeoutMs,
  );

  it(
    'lets the 4th node leave with `ringkv leave` under load: it exits, and everything acknowledged reads back with r=all',
    async () => {
      const leaver = nodes[3]!;
      const load = steadyLoad(started(), 8, 'leave');
      await waitForLoad('some load before the leave', load, 300);
      const leaveStartedAt = Date.now();
      const { stdout } = await run(process.execPath, [cli, 'leave', '--node', leaver.address]);
      expect(stdout).toContain('leaving');
      await waitFor(
        () => `the leaving node to exit by itself (${describeExit(leaver)}output: ${leaver.output.slice(-500)})`,
        pollDeadlineMs,
        async (see) => {
          if (leaver.child === undefined || leaver.child.exitCode !== null) return true;
          see(describeMembership(await nodeStatus(leaver)));
          return false;
        },
      );
      console.log(`leave: the node exited ${Date.now() - leaveStartedAt} ms after \`ringkv leave\`, with ${load.acknowledged.size} writes acknowledged so far`);
      await waitForSettledRings('a settled ring of 3 on the others', nodes.slice(0, 3), 3);
      await load.stop();
      expect(load.failures.slice(0, 5), `${load.failures.length} requests failed during the leave`).toEqual([]);
      const missing = await unreadable(started(), load.acknowledged);
      expect(missing.slice(0, 10), `${missing.length} of ${load.acknowledged.size} acknowledged writes unreadable`).toEqual([]);
      const earlier = await unreadable(started(), new Map([['join-0', 'value-join-0']]));
      expect(earlier, 'a key written before the join and the leave').toEqual([]);

      // Started again on its data (as a service manager would), the node that left does not rejoin under its id (before: it came back joining and was planned back in).
      restartNode(leaver, { seeds, env });
      await waitFor(
        () => `the node that left to refuse to start (${describeExit(leaver)}output: ${leaver.output.slice(-500)})`,
        pollDeadlineMs,
        async () => leaver.child === undefined || leaver.child.exitCode !== null,
      );
      expect(leaver.child?.exitCode).toBe(1);
      expect(leaver.output).toMatch(/left the cluster \(`ringkv leave`\) and does not start again under its id; .* it joins with a new id/);
      expect((await ringOf(nodes[0]!)).ring?.members).toHaveLength(3);
    },
    processTestTimeoutMs,
  );
});
