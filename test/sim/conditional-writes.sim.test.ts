import { afterEach, describe, expect, it } from 'vitest';
import { decodeContext, readContext } from '../../src/core/versioning/context.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import type { Precondition } from '../../src/core/versioning/preconditions.js';
import type { PutCommand } from '../../src/engine/kv-service.js';
import { isKvError } from '../../src/util/errors.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goals of conditional writes, on a simulated 3-node cluster, as the README documents them:
 * If-None-Match writes only where no live value exists and If-Match only where the current
 * version is the one its context names, else KV_PRECONDITION_FAILED with the current context;
 * the check sees writes other replicas hold (it reads r replicas first), and two conditional
 * writes racing on the two sides of a partition can both succeed and become siblings.
 */

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function attempt(
  sim: SimCluster,
  member: SimMember,
  value: string,
  precondition: Precondition,
  extra: Partial<PutCommand> = {},
): Promise<{ code: string; context?: string }> {
  try {
    await sim.drive(
      member.node.put({
        bucket: 'cas',
        key: 'k',
        value: Buffer.from(value),
        contentType: 'text/plain',
        context: undefined,
        options: {},
        precondition,
        ...extra,
      }),
    );
    return { code: 'ok' };
  } catch (error) {
    if (!isKvError(error)) throw error;
    const context = error.details?.context;
    return { code: error.code, ...(typeof context === 'string' ? { context } : {}) };
  }
}

const values = async (sim: SimCluster, member: SimMember): Promise<string[]> => {
  const read = await sim.drive(member.node.get('cas', 'k', { r: 'all' }));
  return read === undefined
    ? []
    : liveSiblings(read)
        .map((sibling) => Buffer.from(sibling.value).toString())
        .sort();
};

describe('conditional writes', () => {
  it.each([1, 2, 3])('seed %i: If-None-Match creates once, then refuses with the current context, whichever node is asked', async (seed) => {
    cluster = await SimCluster.start(seed, 3);
    const [first, second, third] = cluster.members as [SimMember, SimMember, SimMember];
    expect((await attempt(cluster, first, 'created', { kind: 'absent' })).code).toBe('ok');
    const refused = await attempt(cluster, second, 'again', { kind: 'absent' });
    expect(refused.code).toBe('KV_PRECONDITION_FAILED');
    expect(refused.context, 'the refusal carries the current context').toBeDefined();
    expect(await values(cluster, third)).toEqual(['created']);
    // The context of the refusal names the current version: If-Match with it succeeds.
    expect((await attempt(cluster, third, 'replaced', { kind: 'matches', vector: decodeContext(refused.context!).vector })).code).toBe('ok');
    expect(await values(cluster, first)).toEqual(['replaced']);
  });

  it.each([1, 2, 3])('seed %i: If-Match refuses a stale context and succeeds with the current one', async (seed) => {
    cluster = await SimCluster.start(seed, 3);
    const sim = cluster;
    const [first, second] = sim.members as [SimMember, SimMember];
    await sim.drive(
      first.node.put({ bucket: 'cas', key: 'k', value: Buffer.from('v1'), contentType: 'text/plain', context: undefined, options: { w: 'all' } }),
    );
    const stale = (await sim.drive(second.node.get('cas', 'k', { r: 'all' })))!;
    await sim.drive(
      first.node.put({
        bucket: 'cas',
        key: 'k',
        value: Buffer.from('v2'),
        contentType: 'text/plain',
        context: readContext(stale.clock),
        options: { w: 'all' },
      }),
    );
    expect((await attempt(sim, second, 'from stale', { kind: 'matches', vector: stale.clock })).code).toBe('KV_PRECONDITION_FAILED');
    const current = (await sim.drive(second.node.get('cas', 'k', { r: 'all' })))!;
    expect((await attempt(sim, second, 'v3', { kind: 'matches', vector: current.clock })).code).toBe('ok');
    expect(await values(sim, first)).toEqual(['v3']);
  });

  it.each([1, 2, 3])('seed %i: a TTL lease taken with If-None-Match can be taken again once it has expired, and If-Match on it then fails', async (seed) => {
    cluster = await SimCluster.start(seed, 3);
    const sim = cluster;
    const [first, second, third] = sim.members as [SimMember, SimMember, SimMember];
    expect((await attempt(sim, first, 'holder-1', { kind: 'absent' }, { ttlSeconds: 5 })).code).toBe('ok');
    const held = (await sim.drive(third.node.get('cas', 'k', { r: 'all' })))!;
    expect((await attempt(sim, second, 'holder-2', { kind: 'absent' }, { ttlSeconds: 5 })).code, 'the lease is held before it expires').toBe(
      'KV_PRECONDITION_FAILED',
    );
    // Past the expiry by more than any two nodes' clocks differ (each is off by up to 2 s).
    await sim.clock.advance(5000 + 4000 + 500);
    expect((await attempt(sim, third, 'stale holder', { kind: 'matches', vector: held.clock })).code, 'If-Match on an expired value').toBe(
      'KV_PRECONDITION_FAILED',
    );
    expect((await attempt(sim, second, 'holder-2', { kind: 'absent' }, { ttlSeconds: 5 })).code, 'If-None-Match once the lease expired').toBe('ok');
    expect(await values(sim, first)).toEqual(['holder-2']);
  });

  it.each([1, 2, 3])('seed %i: two If-None-Match writes on the two sides of a partition both succeed and become siblings (documented)', async (seed) => {
    cluster = await SimCluster.start(seed, 3, { buckets: { cas: { r: 1, w: 1 } }, antiEntropy: { enabled: true, intervalMs: 200 } });
    const sim = cluster;
    const [first, second, third] = sim.members as [SimMember, SimMember, SimMember];
    sim.network.partition([[first.address], [second.address, third.address]]);
    const left = await attempt(sim, first, 'left', { kind: 'absent' });
    const right = await attempt(sim, second, 'right', { kind: 'absent' });
    expect([left.code, right.code]).toEqual(['ok', 'ok']);
    sim.network.heal();
    await sim.runUntil(async () => (await values(sim, third)).length === 2, 60_000, 'the two writes meet after the heal');
    expect(await values(sim, third)).toEqual(['left', 'right']);
  });
});

describe('the deadline of a conditional write', () => {
  it.each([1, 2, 3])('seed %i: its read, its write and the read of a refusal all fit in one timeout_ms', async (seed) => {
    cluster = await SimCluster.start(seed, 3);
    const sim = cluster;
    const [first] = sim.members as [SimMember];
    // Every message takes 150 ms each way: a quorum read is one 300 ms round trip, and the write
    // that follows it needs at least one more, so the two together cannot fit in 500 ms.
    Object.assign(sim.network.faults, { minDelayMs: 150, maxDelayMs: 150 });
    const timeoutMs = 500;
    for (const precondition of [{ kind: 'absent' }, { kind: 'matches', vector: {} }] as const) {
      const startedAtMs = sim.clock.nowMs();
      const outcome = await attempt(sim, first, 'slow', precondition, { options: { timeoutMs } });
      const tookMs = sim.clock.nowMs() - startedAtMs;
      expect(['ok', 'KV_TIMEOUT', 'KV_PRECONDITION_FAILED'], `outcome ${outcome.code}`).toContain(outcome.code);
      // The request's one deadline (plus the peer calls' 5 ms grace and one 10 ms step of the driver).
      expect(tookMs, `${precondition.kind}: answered ${outcome.code} after ${tookMs} ms of virtual time`).toBeLessThanOrEqual(timeoutMs + 20);
    }
  });
});
