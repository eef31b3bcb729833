import { afterEach, describe, expect, it } from 'vitest';
import type { ConsistentCommand } from '../../src/engine/kv-service.js';
import { Leases } from '../../src/engine/leases.js';
import { SimCluster } from '../../src/sim/sim-cluster.js';
import { silentLogger } from '../../src/ports/logger.js';

/**
 * What a leased PUT costs (README, "Leases and ephemeral keys"), counted in Paxos rounds on a
 * quiet three-node simulated cluster: each round a coordinator runs sends one paxos-prepare to
 * each of the key's two other replicas (its own acceptor is asked without the network), so the
 * rounds are the prepares delivered over two. A plain consistent PUT is one round; a leased PUT
 * of a new key is four: read the lease record, attach (a compare-and-set), write the key, and
 * confirm by a compare-and-set on the version the attach wrote (Leases.put), with no second read
 * of the record unless that version has moved on. Rewriting a key already attached skips the
 * attach's write: three. The CPU of each kind is printed as a ratio, for the README's figure.
 * The confirmation on the attach's version is safe: a keep-alive between the write and the
 * confirmation moves the record on, and the confirmation reads it and confirms on the new
 * version; a revoke there, or between the attach and the write, ends the lease, and the PUT
 * answers KV_LEASE_NOT_FOUND with its key deleted, never left naming the ended lease.
 * Seeds replay with SIM_SEED.
 */

const bucket = 'locks';
const config = { buckets: { [bucket]: { consistent: true } } };
const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [2701, 2702];
const writes = 20;

const clusters: SimCluster[] = [];
afterEach(async () => {
  for (const cluster of clusters.splice(0)) await cluster.stop();
});

const valueOf = (text: string) => ({ contentType: 'text/plain', value: Buffer.from(text) });

/** Runs `operation` `writes` times; the Paxos rounds per run (prepares delivered over two) and the process CPU it took. */
async function measure(cluster: SimCluster, operation: (index: number) => Promise<unknown>): Promise<{ rounds: number; cpuMs: number }> {
  const trace = cluster.startTrace();
  const cpu = process.cpuUsage();
  for (let index = 0; index < writes; index++) await cluster.drive(operation(index));
  const used = process.cpuUsage(cpu);
  const prepares = trace.filter((line) => line.includes('deliver paxos-prepare ')).length;
  return { rounds: prepares / 2 / writes, cpuMs: (used.user + used.system) / 1000 / writes };
}

describe('simulation: the Paxos rounds of a leased PUT', () => {
  it.each(seeds)('seed %i: a plain consistent PUT is one round, a leased PUT of a new key four, a leased rewrite three', async (seed) => {
    const cluster = await SimCluster.start(seed, 3, config);
    clusters.push(cluster);
    // The sweepers (lease expiry and the orphan check of leased keys) stop: the rounds counted are the PUTs' alone.
    for (const member of cluster.members) member.node.leases.stop();
    const node = cluster.members[0]!.node;
    const { id } = await cluster.drive(node.leases.grant(600));
    const plain = await measure(cluster, async (index) =>
      node.consistent(bucket, `plain-${index}`, { kind: 'write', value: valueOf('v'), condition: { kind: 'none' } }),
    );
    const leased = await measure(cluster, async (index) => node.leases.put(bucket, `leased-${index}`, valueOf('v'), { kind: 'none' }, id));
    const rewrite = await measure(cluster, async (index) => node.leases.put(bucket, `leased-${index}`, valueOf('w'), { kind: 'none' }, id));
    console.log(
      `seed ${seed}: rounds per PUT: plain ${plain.rounds}, leased ${leased.rounds}, leased rewrite ${rewrite.rounds}; CPU per PUT: plain ${plain.cpuMs.toFixed(2)} ms, leased ${leased.cpuMs.toFixed(2)} ms (${(leased.cpuMs / plain.cpuMs).toFixed(1)}x), rewrite ${rewrite.cpuMs.toFixed(2)} ms (${(rewrite.cpuMs / plain.cpuMs).toFixed(1)}x)`,
    );
    expect(plain.rounds, `seed ${seed}: a plain consistent PUT`).toBe(1);
    expect(leased.rounds, `seed ${seed}: a leased PUT of a new key`).toBe(4);
    expect(rewrite.rounds, `seed ${seed}: a leased PUT of a key already attached`).toBe(3);
    expect((await cluster.drive(node.leases.describe(id))).keys).toHaveLength(writes);
  });

  /** A leased PUT through Leases whose consistent operations run `between` once, after the key's write (or just before it). */
  async function putWith(cluster: SimCluster, id: string, key: string, when: 'before-write' | 'after-write', between: () => Promise<unknown>) {
    const node = cluster.members[1]!.node;
    let done = false;
    const consistent = async (name: string, target: string, command: ConsistentCommand, timeoutMs?: number) => {
      const isKeyWrite = name === bucket && target === key && command.kind === 'write';
      if (isKeyWrite && !done && when === 'before-write') {
        done = true;
        await between();
      }
      const outcome = await node.consistent(name, target, command, timeoutMs);
      if (isKeyWrite && !done && when === 'after-write') {
        done = true;
        await between();
      }
      return outcome;
    };
    const leases = new Leases({
      consistent,
      clock: cluster.clock,
      random: cluster.random.fork(),
      logger: silentLogger,
      scan: async () => ({ leases: [], wrapped: true }),
      leasedKeys: async () => ({ keys: [], wrapped: true }),
    });
    const outcome = cluster.drive(
      leases.put(bucket, key, valueOf('held'), { kind: 'none' }, id).then(
        (result) => ({ ok: true as const, version: result.version }),
        (error: unknown) => ({ ok: false as const, code: (error as { code?: string }).code }),
      ),
    );
    const result = await outcome;
    expect(done, 'the injected step ran').toBe(true);
    return result;
  }

  it.each(seeds)(
    'seed %i: a keep-alive between the write and the confirmation: the confirmation reads the record and confirms; a revoke there or before the write: 404 and the key deleted',
    async (seed) => {
      const cluster = await SimCluster.start(seed, 3, config);
      clusters.push(cluster);
      const node = cluster.members[0]!.node;
      const read = async (key: string) => cluster.drive(node.consistent(bucket, key, { kind: 'read' }));

      const kept = (await cluster.drive(node.leases.grant(600))).id;
      expect(await putWith(cluster, kept, 'kept', 'after-write', async () => node.leases.keepAlive(kept))).toEqual({ ok: true, version: 1 });
      expect((await cluster.drive(node.leases.describe(kept))).keys).toEqual([{ bucket, key: 'kept' }]);
      expect((await read('kept')).value?.lease).toBe(kept);

      for (const when of ['after-write', 'before-write'] as const) {
        const key = `revoked-${when}`;
        const { id } = await cluster.drive(node.leases.grant(600));
        expect(await putWith(cluster, id, key, when, async () => node.leases.revoke(id)), `seed ${seed}: revoked ${when}`).toEqual({
          ok: false,
          code: 'KV_LEASE_NOT_FOUND',
        });
        expect((await read(key)).value, `seed ${seed}: revoked ${when}: no key left naming the ended lease`).toBeNull();
      }
    },
  );
});
