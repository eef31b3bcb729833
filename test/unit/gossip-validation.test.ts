import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import type { ClusterView, MemberRecord } from '../../src/core/membership/membership.js';
import type { SwimRecord } from '../../src/core/membership/swim-messages.js';
import { compareRings, createRing, ringHash } from '../../src/core/ring/ring.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { Claimant } from '../../src/engine/claimant.js';
import { Gossiper, type GossiperOptions } from '../../src/engine/gossiper.js';
import type { Logger } from '../../src/ports/logger.js';
import type { Transport } from '../../src/ports/transport.js';

/**
 * Goal: peer input is not trusted. A cluster state fetched from a peer (ring and bucket
 * properties, fetched whole when SWIM's digests show a newer version) that fails its schema is
 * refused and logged before it touches the node's state, and valid parts of it are still taken;
 * a damaged persisted view starts the node with its valid parts; a removal reaches the removed
 * node, whatever its generation. And the engine answers SWIM's requests in their reply frames.
 */

const member = (id: string, overrides: Partial<SwimRecord> = {}): SwimRecord => ({
  id,
  address: `10.0.0.${id.slice(1)}:7000`,
  generation: 1,
  version: 1,
  state: 'alive',
  lifecycle: 'up',
  accuser: '',
  transfersDoneForRing: 0,
  ...overrides,
});

/** A transport whose cluster-state answer the test sets; every other request fails. */
class ScriptedTransport implements Transport {
  clusterState: unknown = null;
  readonly sent: PeerRequest[] = [];

  async request(_target: string, message: PeerRequest): Promise<PeerReply> {
    this.sent.push(message);
    if (message.type === 'cluster-state') return { type: 'cluster-state-reply', from: 'n2', state: this.clusterState };
    throw new Error('no network in this test');
  }

  async close(): Promise<void> {}
}

interface Harness {
  readonly gossiper: Gossiper;
  readonly transport: ScriptedTransport;
  readonly warnings: string[];
  readonly persisted: ClusterView[];
  readonly options: GossiperOptions;
}

function founder(overrides: Partial<GossiperOptions> = {}): Harness {
  const warnings: string[] = [];
  const persisted: ClusterView[] = [];
  const logger: Logger = {
    debug() {},
    info() {},
    warn(object, message) {
      warnings.push(`${message ?? ''} ${JSON.stringify(object)}`);
    },
    error(object, message) {
      warnings.push(`${message ?? ''} ${JSON.stringify(object)}`);
    },
  };
  const transport = new ScriptedTransport();
  const options: GossiperOptions = {
    self: { id: 'n1', address: '10.0.0.1:7000', generation: 1 },
    seeds: [],
    partitionCount: 8,
    bucketProperties: { '': { nVal: 3 } },
    intervalMs: 1000,
    fanout: 2,
    peerTimeoutMs: 500,
    initialView: undefined,
    transport,
    clock: new VirtualClock(1_700_000_000_000),
    random: new SeededRandom(1),
    logger,
    claimant: new Claimant({ selfId: 'n1', nVals: () => [3], logger }),
    persist: async (view) => {
      persisted.push(view);
    },
    ...overrides,
  };
  return { gossiper: new Gossiper(options), transport, warnings, persisted, options };
}

const settle = async (): Promise<void> => {
  for (let turn = 0; turn < 10; turn++) await Promise.resolve();
};

/** Makes n2 known to the gossiper, then shows it a digest of n2's with ring version `ringVersion`: the gossiper fetches n2's cluster state. */
async function offer(harness: Harness, state: unknown, ringVersion = 9, bucketPropertiesVersion = 0): Promise<void> {
  harness.transport.clusterState = state;
  await harness.gossiper.receive({ type: 'swim-gossip', from: 'n2', updates: [member('n2')] });
  await harness.gossiper.receive({
    type: 'swim-digest',
    sequence: 1,
    from: 'n2',
    afterId: '',
    throughId: '',
    ringVersion,
    ringHash: 1,
    bucketPropertiesVersion,
    entries: [],
  });
  await settle();
}

describe('gossiper: a malformed fetched cluster state is refused', () => {
  const malformedRings: [string, unknown][] = [
    ['owners shorter than partitionCount', { partitionCount: 8, owners: ['n1', 'n2'], version: 9, next: null }],
    ['a partitionCount that is not a power of two', { partitionCount: 6, owners: ['n1', 'n2', 'n1', 'n2', 'n1', 'n2'], version: 9, next: null }],
    ['a partitionCount other than the cluster’s', { ...createRing(16, ['n1', 'n2']), version: 9 }],
    ['an owner that is no node id', { ...createRing(8, ['n1', 'has space']), version: 9 }],
    ['a version that is not an integer', { ...createRing(8, ['n1', 'n2']), version: '9' }],
    ['a version of Infinity-like size', { ...createRing(8, ['n1', 'n2']), version: 1e300 }],
    ['a next of the wrong length', { ...createRing(8, ['n1', 'n2']), version: 9, next: ['n1'] }],
    ['a next that is not an array', { ...createRing(8, ['n1', 'n2']), version: 9, next: 'n1,n2' }],
    ['owners that are not strings', { partitionCount: 8, owners: [1, 2, 3, 4, 5, 6, 7, 8], version: 9, next: null }],
    ['no object at all', 'ring'],
  ];

  it.each(malformedRings)('refuses a ring with %s, keeps its own, and logs it', async (_what, ring) => {
    const harness = founder();
    const before = harness.gossiper.ring!;
    await offer(harness, { ring, bucketProperties: {}, bucketPropertiesVersion: 0 });
    expect(harness.transport.sent.some((request) => request.type === 'cluster-state')).toBe(true);
    // The founder keeps its own ring; at most, as claimant, it plans the member n2 into it.
    expect(harness.gossiper.ring?.partitionCount).toBe(8);
    expect(harness.gossiper.ring?.owners).toEqual(before.owners);
    expect(harness.gossiper.ring!.version).toBeLessThanOrEqual(before.version + 1);
    expect(harness.persisted.every((view) => view.ring !== null && view.ring.version <= before.version + 1 && view.ring.partitionCount === 8)).toBe(true);
    expect(harness.warnings.join('\n')).toMatch(/refused/);
  });

  it('refuses malformed bucket properties without throwing, and takes valid ones with a newer version', async () => {
    const harness = founder();
    const before = harness.gossiper.view;
    await offer(harness, { ring: null, bucketProperties: { '': { nVal: 'three' } }, bucketPropertiesVersion: 99 }, 0, 99);
    expect(harness.gossiper.view.bucketProperties).toEqual(before.bucketProperties);
    expect(harness.gossiper.view.bucketPropertiesVersion).toBe(before.bucketPropertiesVersion);
    await offer(harness, { ring: null, bucketProperties: { sessions: { conflictMode: 'lww', ttlSeconds: 3600 } }, bucketPropertiesVersion: 5 }, 0, 5);
    expect(harness.gossiper.view.bucketProperties).toEqual({ sessions: { conflictMode: 'lww', ttlSeconds: 3600 } });
    await offer(harness, { ring: null, bucketProperties: { sessions: { ttlSeconds: -1 } }, bucketPropertiesVersion: 6 }, 0, 6);
    expect(harness.gossiper.view.bucketPropertiesVersion).toBe(5);
  });

  it('takes a well-formed ring with a higher version, naming a member it has not heard of yet', async () => {
    const harness = founder();
    await offer(harness, { ring: { ...createRing(8, ['n1', 'n2', 'n3']), version: 9 }, bucketProperties: {}, bucketPropertiesVersion: 0 });
    // Taken, and then (n1 being the claimant) planned on from.
    expect(harness.gossiper.ring?.version).toBeGreaterThanOrEqual(9);
    expect(harness.warnings).toEqual([]);
  });

  it('settles two different rings of one version by compareRings, noticed by the ring hash', async () => {
    const harness = founder();
    await harness.gossiper.receive({ type: 'swim-gossip', from: 'n2', updates: [member('n2')] });
    const mine = harness.gossiper.ring!;
    const theirs = { ...createRing(8, ['n2']), version: mine.version };
    await offer(harness, { ring: theirs, bucketProperties: {}, bucketPropertiesVersion: 0 }, mine.version);
    expect(harness.transport.sent.some((request) => request.type === 'cluster-state')).toBe(true);
    // Every node settles on the ring compareRings ranks first (here the peer's), so both sides end with one ring.
    expect(compareRings(theirs, mine)).toBeGreaterThan(0);
    expect(ringHash(harness.gossiper.ring)).toBe(ringHash(theirs));
  });
});

describe('gossiper: a malformed persisted view', () => {
  it('starts with the valid parts of it and logs what it dropped', () => {
    const stored = {
      members: { n1: { id: 'n1', address: '10.0.0.1:7000', generation: 1, status: 'up' } satisfies MemberRecord, n2: { id: 'n2' } },
      ring: { partitionCount: 8, owners: ['n1'], version: 3, next: null },
      bucketProperties: {},
      bucketPropertiesVersion: 1,
    };
    const { gossiper, warnings } = founder({ seeds: ['10.0.0.2:7000'], initialView: stored });
    expect(gossiper.ring).toBeNull();
    expect(gossiper.view.members.n2).toBeUndefined();
    expect(gossiper.ownStatus).toBe('joining');
    expect(warnings.join('\n')).toMatch(/refused/);
  });
});

describe('gossiper: a removed node learns it was removed', () => {
  it('adopts its removal whatever its own generation, tells its node once, and says how to rejoin', async () => {
    let removedCalls = 0;
    const { gossiper, warnings } = founder({
      self: { id: 'n2', address: '10.0.0.2:7000', generation: 50 },
      seeds: ['10.0.0.1:7000'],
    });
    gossiper.onRemoved(() => {
      removedCalls += 1;
    });
    const removal = member('n2', { generation: 7, state: 'removed', lifecycle: 'removed', accuser: 'n1' });
    await gossiper.receive({ type: 'swim-gossip', from: 'n1', updates: [member('n1'), removal] });
    await gossiper.receive({ type: 'swim-gossip', from: 'n1', updates: [removal] });
    expect(gossiper.ownStatus).toBe('removed');
    expect(gossiper.view.members.n2?.generation).toBe(50);
    expect(removedCalls).toBe(1);
    expect(warnings.join('\n')).toMatch(/wipe its data directory/);
  });
});

describe('gossiper: SWIM requests are answered in their reply frames', () => {
  it('answers a ping with its ack, a digest with its reply, gossip with swim-done, and a ping meant for another id with swim-done', async () => {
    const { gossiper } = founder();
    expect(await gossiper.receive({ type: 'swim-ping', sequence: 4, from: 'n2', target: 'n1', updates: [member('n2')] })).toMatchObject({
      type: 'swim-ack',
      sequence: 4,
      from: 'n1',
    });
    expect(await gossiper.receive({ type: 'swim-ping', sequence: 5, from: 'n2', target: 'n9', updates: [] })).toEqual({ type: 'swim-done' });
    expect(
      await gossiper.receive({
        type: 'swim-digest',
        sequence: 6,
        from: 'n2',
        afterId: '',
        throughId: '',
        ringVersion: 0,
        ringHash: 0,
        bucketPropertiesVersion: 0,
        entries: [],
      }),
    ).toMatchObject({
      type: 'swim-digest-reply',
      sequence: 6,
    });
    expect(await gossiper.receive({ type: 'swim-gossip', from: 'n2', updates: [] })).toEqual({ type: 'swim-done' });
    expect(gossiper.bytesSent).toBeGreaterThan(0);
  });

  it('answers an indirect ping with a nack when the target does not answer in time', async () => {
    const { gossiper, options } = founder();
    await gossiper.receive({ type: 'swim-gossip', from: 'n2', updates: [member('n2'), member('n3')] });
    gossiper.start();
    const answer = gossiper.receive({ type: 'swim-ping-req', sequence: 8, from: 'n2', target: 'n3', updates: [] });
    await (options.clock as VirtualClock).advance(options.intervalMs);
    expect(await answer).toEqual({ type: 'swim-nack', sequence: 8, from: 'n1' });
    gossiper.stop();
  });
});

describe('gossiper: a leave survives a restart', () => {
  const storedWith = (status: MemberRecord['status']): ClusterView => ({
    members: {
      n1: { id: 'n1', address: '10.0.0.1:7000', generation: 1, status },
      n2: { id: 'n2', address: '10.0.0.2:7000', generation: 1, status: 'up' },
    },
    ring: createRing(8, ['n2']),
    bucketProperties: { '': { nVal: 3 } },
    bucketPropertiesVersion: 1,
  });

  it('persists the view when the node starts leaving, and goes on leaving when started again on it', async () => {
    const { gossiper, persisted } = founder();
    await gossiper.setOwnStatus('leaving');
    expect(persisted.at(-1)?.members.n1?.status).toBe('leaving');
    // Before: a restart forgot the leave and came back joining, so the claimant planned it back into the ring.
    expect(founder({ seeds: ['10.0.0.2:7000'], initialView: storedWith('leaving') }).gossiper.ownStatus).toBe('leaving');
  });

  it('persists a leave before it publishes it, and publishes none it could not persist', async () => {
    // A view write that waits until the test lets it finish, or fails.
    let finishWrite: (() => void) | undefined;
    let failWrite: ((error: Error) => void) | undefined;
    const written: ClusterView[] = [];
    const { gossiper } = founder({
      persist: (view) =>
        new Promise<void>((resolve, reject) => {
          finishWrite = () => {
            written.push(view);
            resolve();
          };
          failWrite = reject;
        }),
    });
    const before = gossiper.ownStatus;
    const leaving = gossiper.setOwnStatus('leaving');
    await Promise.resolve();
    // Before: the status was published at once and its write left to run unawaited, so a crash before it landed lost the leave others had heard of.
    expect(gossiper.ownStatus, 'published before its write landed').toBe(before);
    expect(gossiper.view.members.n1?.status).toBe(before);
    finishWrite?.();
    await leaving;
    expect(written.at(-1)?.members.n1?.status).toBe('leaving');
    expect(gossiper.ownStatus).toBe('leaving');

    const left = gossiper.setOwnStatus('left');
    await Promise.resolve();
    failWrite?.(new Error('disk full'));
    await expect(left).rejects.toThrow(/disk full/);
    expect(gossiper.ownStatus, 'a left status nobody could persist').toBe('leaving');
  });

  it('refuses to start a node that left under its old id, saying how to bring the machine back', async () => {
    const { gossiper, persisted } = founder();
    await gossiper.setOwnStatus('left');
    expect(persisted.at(-1)?.members.n1?.status).toBe('left');
    // Before: it started joining and rejoined the ring it had left.
    expect(() => founder({ seeds: ['10.0.0.2:7000'], initialView: storedWith('left') })).toThrow(
      /node n1 left the cluster .* wipe its data directory and start it again: it joins with a new id/,
    );
  });
});
