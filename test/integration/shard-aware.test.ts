import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/ring-client.js';
import { nodeHasReusePort } from '../../src/cli/shards.js';
import { type NodeProcess, killNode, pollDeadlineMs, shardPorts, processTestTimeoutMs, startNode, temporaryFolder, waitFor } from './processes.js';

/**
 * Goal: a shard-aware RingClient sends every read and write of a key to the shard that owns it,
 * so no shard of a 2-shard node forwards one (the forwarded-write and off-replica-read counters
 * of both shards' /metrics stay where they were), while a shard-unaware client's requests, spread
 * by the kernel over the shared port, land on the wrong shard for about half the keys and are
 * counted there (README, "Shards").
 */

const reason = `skipped: shards share the HTTP port through reusePort, which needs Node.js 22.12 or later (this is ${process.versions.node}); run with .ci/with-node 24`;
if (!nodeHasReusePort()) console.warn(`test/integration/shard-aware.test.ts ${reason}`);

interface Counted {
  readonly forwardedWrites: number;
  readonly offReplicaReads: number;
}

/** One counter of a /metrics text. */
function metric(text: string, name: string): number {
  const line = text.split('\n').find((each) => each.startsWith(`${name} `));
  if (line === undefined) throw new Error(`/metrics has no ${name}: ${text.slice(0, 400)}`);
  return Number(line.slice(name.length + 1));
}

describe.skipIf(!nodeHasReusePort())('a shard-aware client on a node of two shards', () => {
  const folder = temporaryFolder('ringkv-shard-aware-');
  let node: NodeProcess | undefined;
  afterAll(async () => {
    if (node !== undefined) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  /** Both shards' counters, summed: shard 1 at its own port, shard 0 through the shared port (a new connection each try, until shard 0 takes one). */
  async function counted(port: number, shardIds: readonly string[]): Promise<Counted> {
    const readings = new Map<string, Counted>();
    return waitFor(`both shards' /metrics (have ${[...readings.keys()].join(', ')})`, pollDeadlineMs, async (see) => {
      for (const address of [`127.0.0.1:${port}`, `127.0.0.1:${port + 1}`]) {
        const answer = await request(`http://${address}/metrics`, { reset: true, headersTimeout: 60_000, bodyTimeout: 60_000 });
        const text = await answer.body.text();
        const member = answer.headers['x-ringkv-member'] as string;
        readings.set(member, {
          forwardedWrites: metric(text, 'ringkv_writes_forwarded_total'),
          offReplicaReads: metric(text, 'ringkv_reads_off_replica_total'),
        });
      }
      see(JSON.stringify(Object.fromEntries(readings)));
      if (!shardIds.every((id) => readings.has(id))) return undefined;
      const all = [...readings.values()];
      return {
        forwardedWrites: all.reduce((sum, each) => sum + each.forwardedWrites, 0),
        offReplicaReads: all.reduce((sum, each) => sum + each.offReplicaReads, 0),
      };
    });
  }

  it('sends each key to its owner: no shard forwards a request of the shard-aware client, and the shard-unaware client is counted', async () => {
    const port = await shardPorts();
    // n_val 1: each key has one replica, on one shard, so a request on the other shard must be forwarded.
    const config = join(folder.path, 'config.json');
    writeFileSync(config, JSON.stringify({ bucketDefaults: { nVal: 1 } }));
    node = startNode(port, join(folder.path, 'data'), { extraArgs: ['--shards', '2', '--config', config] });
    const started = node;
    // Shard 1's own port answers for it alone; shard 0 answers through the shared port (a new connection each try, until it takes one).
    // The ring is settled once both shards' own views name both as owners, with the same owner of every partition and no move
    // under way: the client reads its ring from the shared port, so either shard's view may be the one it routes by (CI once saw
    // 32 of 60 keys forwarded when only shard 1's view was waited for).
    const settled = new Map<string, string>();
    const shardIds = await waitFor(`a ring owned by both shards in both shards' views (output: ${started.output.slice(-800)})`, pollDeadlineMs, async (see) => {
      for (const address of [`127.0.0.1:${port + 1}`, `127.0.0.1:${port}`]) {
        const answer = await request(`http://${address}/status`, { reset: true, headersTimeout: 60_000, bodyTimeout: 60_000 });
        const status = (await answer.body.json()) as { members: { id: string; status: string }[]; ring: { owners: string[]; next: unknown } | null };
        const member = answer.headers['x-ringkv-member'] as string;
        const owners = new Set(status.ring?.owners ?? []);
        const up = status.members.filter((each) => each.status === 'up').map((each) => each.id);
        const view = `members ${status.members.map((each) => `${each.id} ${each.status}`).join(', ')}; owners ${[...owners].join(', ')}; moving ${status.ring?.next !== null}`;
        if (up.length === 2 && owners.size === 2 && status.ring?.next === null) settled.set(member, (status.ring?.owners ?? []).join(','));
        else settled.delete(member);
        see(`${member}: ${view}`);
      }
      const views = [...settled.values()];
      return settled.size === 2 && views[0] === views[1] ? [...settled.keys()] : undefined;
    });

    const keys = Array.from({ length: 60 }, (_, index) => `key-${index}`);
    const exercise = async (client: RingClient): Promise<void> => {
      try {
        for (const key of keys) await client.put('demo', key, `value of ${key}`);
        for (const key of keys) expect((await client.get('demo', key)).siblings[0]?.value.toString('utf8')).toBe(`value of ${key}`);
      } finally {
        await client.close();
      }
    };

    const before = await counted(port, shardIds);
    await exercise(new RingClient({ nodes: [`127.0.0.1:${port}`], shardAware: true, maxAttempts: 1 }));
    const afterAware = await counted(port, shardIds);
    expect(afterAware, 'a shard-aware client: no request forwarded').toEqual(before);

    await exercise(new RingClient({ nodes: [`127.0.0.1:${port}`], maxAttempts: 1 }));
    const afterUnaware = await counted(port, shardIds);
    // Whichever shard the kernel gave its connection, about half of 60 keys are the other shard's (all 60 on one shard: 2^-59).
    expect(afterUnaware.forwardedWrites - afterAware.forwardedWrites, 'a shard-unaware client: writes forwarded').toBeGreaterThan(0);
    expect(afterUnaware.offReplicaReads - afterAware.offReplicaReads, 'a shard-unaware client: reads taken off-replica').toBeGreaterThan(0);
  });
});
