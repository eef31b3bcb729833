import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeHasReusePort } from '../../src/cli/shards.js';
import {
  type NodeProcess,
  call,
  killNode,
  shardPorts,
  pollDeadlineMs,
  processTestTimeoutMs,
  restartNode,
  startNode,
  temporaryFolder,
  waitFor,
} from './processes.js';

/**
 * Goal: `ringkv start --shards 2` runs a node as two processes, each a ring member with its own
 * node id, data folder (DATA/shard-i) and peer port (peer port + i), both answering clients on the
 * node's one HTTP port (reusePort); a shard killed with kill -9 is restarted by the supervisor and
 * catches up while the other shard serves, and no acknowledged write is lost; the ids survive a
 * restart of the whole node; SIGTERM stops every shard.
 */

const bin = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

/** Runs a `ringkv` command to its end: exit code and output. */
async function ringkv(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return promisify(execFile)(process.execPath, [bin, ...args]).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
  );
}
const reason = `skipped: shards share the HTTP port through reusePort, which needs Node.js 22.12 or later (this is ${process.versions.node}); run with .ci/with-node 24`;
if (!nodeHasReusePort()) console.warn(`test/integration/shards.test.ts ${reason}`);

interface ShardStatus {
  node: { id: string; address: string };
  members: { id: string; address: string; status: string; host?: string }[];
  process: { pid: number; shardIndex: number; shardCount: number };
  shards: { host: string; members: { id: string; address: string; status: string }[] };
}

describe.skipIf(!nodeHasReusePort())('a node of two shards (one process each, one HTTP port)', () => {
  const folder = temporaryFolder('ringkv-shards-');
  let node: NodeProcess | undefined;
  afterAll(async () => {
    if (node !== undefined) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  /** Asks the node's HTTP port for /status until both shards have answered (the kernel picks one per connection), both seeing two members up. */
  async function bothShards(
    node: NodeProcess,
    what: string,
    accept: (shards: Map<number, ShardStatus>) => boolean = () => true,
  ): Promise<Map<number, ShardStatus>> {
    const seen = new Map<number, ShardStatus>();
    return waitFor(`${what} (output: ${node.output.slice(-800)})`, pollDeadlineMs, async (see) => {
      // A new connection each time (reset): the kernel picks a shard per connection, and a kept-alive one would always reach the same shard.
      const answer = await request(`http://${node.address}/status`, { reset: true, headersTimeout: 60_000, bodyTimeout: 60_000 });
      const status = (await answer.body.json()) as ShardStatus;
      seen.set(status.process.shardIndex, status);
      see(
        [...seen.values()]
          .map(
            (each) =>
              `shard ${each.process.shardIndex} pid ${each.process.pid} at ${each.node.address} sees ${each.members.map((member) => `${member.address} ${member.status}`).join(', ')}`,
          )
          .join('; '),
      );
      const settled = [...seen.values()].every((each) => each.members.filter((member) => member.status === 'up').length === 2);
      if (seen.size === 2 && settled && accept(seen)) return new Map(seen);
      // A later reading of a shard replaces an older one; keep polling.
      return undefined;
    });
  }

  it(
    'runs two ring members on one HTTP port, restarts a shard killed with kill -9, and loses no acknowledged write',
    async () => {
      const port = await shardPorts();
      node = startNode(port, folder.path, { extraArgs: ['--shards', '2'] });
      const before = await bothShards(node, 'both shards to answer on the one HTTP port and see two members up');
      const shard0 = before.get(0)!;
      const shard1 = before.get(1)!;
      expect(shard0.node.address).toBe(`127.0.0.1:${port}`);
      expect(shard1.node.address).toBe(`127.0.0.1:${port + 1}`);
      expect(shard0.node.id).not.toBe(shard1.node.id);
      expect(shard0.process.pid).not.toBe(shard1.process.pid);
      // Both shards carry the node's placement host, so placement treats them as one host.
      expect(new Set(shard0.members.map((member) => member.host))).toEqual(new Set([`127.0.0.1_${port}`]));
      expect(existsSync(join(folder.path, 'shard-0', 'leveldb')) && existsSync(join(folder.path, 'shard-1', 'leveldb'))).toBe(true);
      // /status and /metrics of either shard show the node's shards.
      for (const status of [shard0, shard1]) {
        expect(status.shards.host).toBe(`127.0.0.1_${port}`);
        expect(status.shards.members.map((member) => `${member.address} ${member.status}`)).toEqual([`127.0.0.1:${port} up`, `127.0.0.1:${port + 1} up`]);
      }
      expect((await call(node, 'GET', '/metrics')).body.toString('utf8')).toContain('ringkv_shards{status="up"} 2');

      // Writers at w=quorum (every replica of a two-member ring) and w=1 (the surviving shard
      // alone, so the restarted shard has something to catch up on) across the kill.
      const acknowledged = new Map<string, string>();
      let writing = true;
      const writer = async (id: number): Promise<void> => {
        for (let index = 0; writing; index++) {
          const key = `w${id}-${index}`;
          const value = `value-${id}-${index}`;
          const w = index % 2 === 0 ? 'quorum' : '1';
          try {
            const answer = await call(node!, 'PUT', `/kv/shards/${key}?w=${w}`, { body: value });
            if (answer.status === 204) acknowledged.set(key, value);
          } catch {
            // A connection cut by the kill: not acknowledged, so not counted.
          }
        }
      };
      const writers = [0, 1, 2, 3].map((id) => writer(id));
      await waitFor('100 acknowledged writes before the kill', pollDeadlineMs, async (see) => {
        see(`${acknowledged.size} acknowledged`);
        return acknowledged.size >= 100;
      });
      process.kill(shard1.process.pid, 'SIGKILL');
      const ackedAtKill = acknowledged.size;
      const after = await bothShards(
        node,
        'the supervisor to restart shard 1 (a new pid) and both shards to see two members up',
        (shards) => shards.get(1)!.process.pid !== shard1.process.pid,
      );
      await waitFor('100 more acknowledged writes after the restart', pollDeadlineMs, async (see) => {
        see(`${acknowledged.size - ackedAtKill} since the kill`);
        return acknowledged.size >= ackedAtKill + 200;
      });
      writing = false;
      await Promise.all(writers);
      expect(node.output).toContain('ringkv: shard 1 was killed by SIGKILL; restarting it');
      // The restarted shard is the same ring member: its id lives in its own LevelDB.
      expect(after.get(1)!.node.id).toBe(shard1.node.id);
      expect(after.get(0)!.process.pid).toBe(shard0.process.pid);

      // Catch-up (hints, anti-entropy): every acknowledged write is on every replica, read at r=all.
      await waitFor('every acknowledged write readable at r=all', pollDeadlineMs, async (see) => {
        const missing: string[] = [];
        for (const [key, value] of acknowledged) {
          const answer = await call(node!, 'GET', `/kv/shards/${key}?r=all`);
          if (answer.status !== 200 || answer.body.toString('utf8') !== value) missing.push(`${key}: ${answer.status}`);
        }
        see(`${missing.length} of ${acknowledged.size} not yet: ${missing.slice(0, 5).join(', ')}`);
        return missing.length === 0;
      });

      // Shard 1 also answers on its own member address (port + 1), where the dashboard's member
      // links and `ringkv backup` dial it: every connection there reaches shard 1, never shard 0.
      for (let attempt = 0; attempt < 4; attempt++) {
        const own = await request(`http://${shard1.node.address}/status`, { reset: true, headersTimeout: 60_000, bodyTimeout: 60_000 });
        expect((await own.body.json()) as ShardStatus).toMatchObject({ node: { id: shard1.node.id }, process: { shardIndex: 1 } });
      }
      const page = await request(`http://${shard1.node.address}/ui`, { reset: true, headersTimeout: 60_000, bodyTimeout: 60_000 });
      expect(page.statusCode).toBe(200);
      expect(await page.body.text()).toContain('<html');
      // A backup copies each partition from its owner first: shard 1's partitions from shard 1
      // itself, reached at its member address (the manifest names the node each came from).
      const backup = join(folder.path, 'backup');
      const backedUp = await ringkv(['backup', '--to', backup, '--node', node.address, '--rate', '0']);
      expect(backedUp.code, backedUp.stderr).toBe(0);
      const manifest = JSON.parse(readFileSync(join(backup, 'manifest.json'), 'utf8')) as { partitions: Record<string, { node: string; objects: number }> };
      const copiedFrom = new Set(Object.values(manifest.partitions).map((entry) => entry.node));
      expect(copiedFrom).toEqual(new Set([shard0.node.id, shard1.node.id]));
      expect(Object.values(manifest.partitions).reduce((sum, entry) => sum + entry.objects, 0)).toBeGreaterThanOrEqual(acknowledged.size);

      // SIGTERM stops both shards and the supervisor; the same flags bring back the same members.
      const supervisor = node.child!;
      const exited = new Promise<number | null>((resolve) => supervisor.once('exit', (code) => resolve(code)));
      supervisor.kill('SIGTERM');
      expect(await exited).toBe(0);
      await waitFor('both shard processes gone after SIGTERM', pollDeadlineMs, async (see) => {
        const alive = [shard0.process.pid, after.get(1)!.process.pid].filter((pid) => {
          try {
            process.kill(pid, 0);
            return true;
          } catch {
            return false;
          }
        });
        see(`alive: ${alive.join(', ')}`);
        return alive.length === 0;
      });
      restartNode(node, { extraArgs: ['--shards', '2'] });
      const again = await bothShards(node, 'both shards back after a restart of the node');
      expect([again.get(0)!.node.id, again.get(1)!.node.id]).toEqual([shard0.node.id, shard1.node.id]);

      // The node is the whole cluster, so it cannot leave: there is no other host to hand its data
      // to. `ringkv leave` is refused at once by the shard it reaches (through the shared port, and
      // shard 1 at its own address), before either shard is marked leaving, and the node serves on.
      for (const address of [node.address, shard1.node.address]) {
        const refused = await ringkv(['leave', '--node', address]);
        expect(refused.code, `ringkv leave --node ${address}: ${refused.stdout}`).toBe(1);
        expect(refused.stderr).toContain(`every live member of the cluster runs on host 127.0.0.1_${port} (this node's 2 shards)`);
      }
      const served = await call(node, 'PUT', '/kv/shards/after-refused-leave?w=all', { body: 'still-here' });
      expect(served.status).toBe(204);
      expect((await call(node, 'GET', '/kv/shards/after-refused-leave?r=all')).body.toString('utf8')).toBe('still-here');
      const stayed = await bothShards(node, 'both shards up, neither leaving, after the refused leave');
      expect([...stayed.values()].flatMap((status) => status.members.map((member) => member.status))).toEqual(['up', 'up', 'up', 'up']);
      expect(node.child!.exitCode).toBeNull();
      expect(node.output).not.toContain('every shard of the node leaves');
    },
    processTestTimeoutMs,
  );
});

/**
 * Goal: a node of several shards leaves and is removed as a whole, as a host does. `ringkv leave`
 * reaches one shard through the shared port; every shard then hands its partitions off and
 * leaves, none is restarted, and the supervisor exits 0. `ringkv remove` takes the ids of all the
 * shards of a node that is gone, and the ring is re-planned without any of them; the id of one
 * shard alone is refused while its host's other shard is still in the ring.
 */
describe.skipIf(!nodeHasReusePort())('a node of two shards leaving and removed as a whole', () => {
  const folder = temporaryFolder('ringkv-shards-leave-');
  const nodes: NodeProcess[] = [];
  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  interface MemberView {
    node: { id: string };
    members: { id: string; address: string; status: string; host?: string }[];
    ring: { members: string[] } | null;
  }
  const statusOf = async (node: NodeProcess): Promise<MemberView> => JSON.parse((await call(node, 'GET', '/status')).body.toString('utf8')) as MemberView;

  /** Waits until the one-shard node `anchor` sees exactly `count` ring members, all up, and answers its view. */
  async function ringOf(anchor: NodeProcess, count: number, what: string): Promise<MemberView> {
    return waitFor(what, pollDeadlineMs, async (see) => {
      const status = await statusOf(anchor);
      const up = status.members.filter((member) => member.status === 'up');
      see(status.members.map((member) => `${member.address} ${member.status}`).join(', ') + ` | ring ${status.ring?.members.length ?? 0}`);
      return status.ring?.members.length === count && up.length === count ? status : undefined;
    });
  }

  // One cluster: one secret; few partitions, so the handoffs are quick.
  const env = { RINGKV_CLUSTER_SECRET: 'shards-leave-secret-0123456789', RINGKV_PARTITION_COUNT: '16' };

  it(
    'leaves with every shard (the supervisor exits 0, restarting none), and is removed by the ids of all its shards',
    async () => {
      const anchor = startNode(await shardPorts(), join(folder.path, 'anchor'), { env });
      nodes.push(anchor);
      await ringOf(anchor, 1, 'the first node to be up in its own ring');

      const leaver = startNode(await shardPorts(), join(folder.path, 'leaver'), { seeds: [anchor.address], env, extraArgs: ['--shards', '2'] });
      nodes.push(leaver);
      await ringOf(anchor, 3, 'the two shards of the second node to join the ring');
      const written: string[] = [];
      for (let index = 0; index < 40; index++) {
        const answer = await call(anchor, 'PUT', `/kv/leave/k${index}?w=quorum`, { body: `v${index}` });
        if (answer.status === 204) written.push(`k${index}`);
      }
      expect(written.length).toBeGreaterThan(0);

      const supervisor = leaver.child!;
      const left = await ringkv(['leave', '--node', leaver.address]);
      expect(left.code, left.stderr).toBe(0);
      // Both shards hand off and leave: the supervisor exits on its own, with 0, and restarts neither.
      const exitCode = await waitFor(
        () => `the leaving node's supervisor to exit on its own (output: ${leaver.output.slice(-800)})`,
        pollDeadlineMs,
        async () => supervisor.exitCode ?? (supervisor.signalCode === null ? undefined : supervisor.signalCode),
      );
      expect(exitCode, leaver.output).toBe(0);
      expect(leaver.output).toContain('every shard of the node leaves');
      expect(leaver.output).toContain('every shard has left the cluster');
      expect(leaver.output).not.toContain('restarting it');
      const alone = await ringOf(anchor, 1, 'the ring to hold the first node alone after the leave');
      expect(alone.ring?.members).toEqual([alone.node.id]);
      for (const key of written) expect((await call(anchor, 'GET', `/kv/leave/${key}?r=1`)).status, key).toBe(200);

      const port = await shardPorts();
      const gone = startNode(port, join(folder.path, 'gone'), { seeds: [anchor.address], env, extraArgs: ['--shards', '2'] });
      nodes.push(gone);
      const joined = await ringOf(anchor, 3, 'the two shards of the third node to join the ring');
      const ids = joined.members.filter((member) => member.host === `127.0.0.1_${port}`).map((member) => member.id);
      expect(ids).toHaveLength(2);
      await killNode(gone);
      await waitFor('the first node to judge both shards of the killed node down', pollDeadlineMs, async (see) => {
        const status = await statusOf(anchor);
        see(status.members.map((member) => `${member.address} ${member.status}`).join(', '));
        return ids.every((id) => status.members.some((member) => member.id === id && member.status === 'down'));
      });
      // One shard's id alone is refused: its host's other shard would stay in the ring.
      const partial = await ringkv(['remove', ids[0]!, '--node', anchor.address]);
      expect(partial.code, partial.stdout).toBe(1);
      expect(partial.stderr).toContain(`also runs ${ids[1]!}, still in the ring`);
      expect(partial.stderr).toContain('--force');
      expect((await statusOf(anchor)).ring?.members).toEqual(expect.arrayContaining(ids));
      const removed = await ringkv(['remove', ...ids, '--node', anchor.address]);
      expect(removed.code, removed.stderr).toBe(0);
      for (const id of ids) expect(removed.stdout).toContain(`${id} is removed`);
      const after = await ringOf(anchor, 1, 'the ring to hold the first node alone after the removal');
      expect(after.members.filter((member) => ids.includes(member.id))).toEqual([]);
    },
    processTestTimeoutMs,
  );
});
