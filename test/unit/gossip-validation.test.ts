import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';
import type { ClusterView, MemberRecord } from '../../src/core/membership/membership.js';
import { createRing } from '../../src/core/ring/ring.js';
import { Claimant } from '../../src/engine/claimant.js';
import { Gossiper } from '../../src/engine/gossiper.js';
import type { Logger } from '../../src/ports/logger.js';
import type { Transport } from '../../src/ports/transport.js';

/**
 * Goal: peer input is not trusted. Gossip state that fails its schema (member records with
 * missing or out-of-range fields, rings of the wrong shape or naming unknown nodes) is refused
 * and logged before it touches the view; valid parts of the same message are still taken.
 */

const member = (id: string, overrides: Partial<MemberRecord> = {}): MemberRecord => ({
  id,
  address: `10.0.0.${id.slice(1)}:7000`,
  generation: 1,
  heartbeat: 5,
  status: 'up',
  ...overrides,
});

const unreachable: Transport = {
  request: async () => {
    throw new Error('no network in this test');
  },
  close: async () => undefined,
};

function founder(): { gossiper: Gossiper; warnings: string[]; persisted: ClusterView[] } {
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
  const gossiper = new Gossiper({
    self: member('n1', { heartbeat: 0, status: 'joining' }),
    seeds: [],
    partitionCount: 8,
    bucketProperties: { '': { nVal: 3 } },
    intervalMs: 1000,
    fanout: 2,
    phiThreshold: 8,
    peerTimeoutMs: 500,
    initialView: undefined,
    transport: unreachable,
    clock: new VirtualClock(1_700_000_000_000),
    random: new SeededRandom(1),
    logger,
    claimant: new Claimant({ selfId: 'n1', nVals: () => [3], logger }),
    persist: async (view) => {
      persisted.push(view);
    },
  });
  return { gossiper, warnings, persisted };
}

/** A well-formed peer state: n1 and n2, with a ring of version `version` over them. */
function peerState(version: number): ClusterView {
  return {
    members: { n1: member('n1'), n2: member('n2') },
    ring: { ...createRing(8, ['n1', 'n2']), version },
    bucketProperties: {},
    bucketPropertiesVersion: 0,
  };
}

describe('gossiper: malformed peer state is refused', () => {
  const malformedRings: [string, unknown][] = [
    ['owners shorter than partitionCount', { partitionCount: 8, owners: ['n1', 'n2'], version: 9, next: null }],
    ['a partitionCount that is not a power of two', { partitionCount: 6, owners: ['n1', 'n2', 'n1', 'n2', 'n1', 'n2'], version: 9, next: null }],
    ['a partitionCount other than the cluster’s', { ...createRing(16, ['n1', 'n2']), version: 9 }],
    ['an owner that is no known member', { ...createRing(8, ['n1', 'ghost']), version: 9 }],
    ['a version that is not an integer', { ...createRing(8, ['n1', 'n2']), version: '9' }],
    ['a version of Infinity-like size', { ...createRing(8, ['n1', 'n2']), version: 1e300 }],
    ['a next of the wrong length', { ...createRing(8, ['n1', 'n2']), version: 9, next: ['n1'] }],
    ['a next that is not an array', { ...createRing(8, ['n1', 'n2']), version: 9, next: 'n1,n2' }],
    ['owners that are not strings', { partitionCount: 8, owners: [1, 2, 3, 4, 5, 6, 7, 8], version: 9, next: null }],
    ['no object at all', 'ring'],
  ];

  it.each(malformedRings)('refuses a ring with %s, keeps its own, and logs it', (_what, ring) => {
    const { gossiper, warnings, persisted } = founder();
    const before = gossiper.ring!;
    gossiper.receive({ ...peerState(2), ring });
    // The founder keeps its own ring; at most, as claimant, it plans the valid joiner n2 into it.
    expect(gossiper.ring?.partitionCount).toBe(8);
    expect(gossiper.ring?.owners).toEqual(before.owners);
    expect(gossiper.ring!.version).toBeLessThanOrEqual(before.version + 1);
    expect(persisted.every((view) => view.ring !== null && view.ring.version <= before.version + 1 && view.ring.partitionCount === 8)).toBe(true);
    expect(warnings.join('\n')).toMatch(/refused/);
    // The valid member records of the same message are still taken.
    expect(gossiper.view.members.n2?.status).toBe('up');
  });

  const malformedMembers: [string, unknown][] = [
    ['no generation', { id: 'n3', address: '10.0.0.3:7000', heartbeat: 5, status: 'up' }],
    ['a negative generation', member('n3', { generation: -1 })],
    ['a generation far in the future', member('n3', { generation: 9e15 })],
    ['a heartbeat that is not a number', { ...member('n3'), heartbeat: '7' }],
    ['an unknown status', { ...member('n3'), status: 'boss' }],
    ['an address that is not host:port', member('n3', { address: 'somewhere' })],
    ['an id other than its key', member('n4')],
    ['an id that is not a string', { ...member('n3'), id: 3 }],
    ['a transfersDoneForRing that is not an integer', { ...member('n3'), transfersDoneForRing: 1.5 }],
  ];

  it.each(malformedMembers)('refuses a member record with %s', (_what, record) => {
    const { gossiper, warnings } = founder();
    gossiper.receive({ ...peerState(0), ring: null, members: { n2: member('n2'), n3: record } });
    expect(gossiper.view.members.n3).toBeUndefined();
    expect(gossiper.view.members.n2?.status).toBe('up');
    expect(warnings.join('\n')).toMatch(/refused/);
  });

  it('does not let a record without a generation replace a known member', () => {
    const { gossiper } = founder();
    gossiper.receive(peerState(0));
    const known = gossiper.view.members.n2;
    gossiper.receive({ ...peerState(0), ring: null, members: { n2: { id: 'n2', address: '10.9.9.9:1', heartbeat: 999, status: 'leaving' } } });
    expect(gossiper.view.members.n2).toEqual(known);
  });

  it('refuses state that is not an object, and malformed bucket properties, without throwing', () => {
    const { gossiper } = founder();
    const before = gossiper.view;
    const ringBefore = JSON.stringify(gossiper.ring);
    for (const junk of [null, 7, 'gossip', [], { members: 'everyone' }, { members: [], ring: 5 }]) expect(() => gossiper.receive(junk)).not.toThrow();
    expect(JSON.stringify(gossiper.ring)).toBe(ringBefore);
    const quiet = { members: { n1: member('n1') }, ring: null };
    gossiper.receive({ ...quiet, bucketProperties: { '': { nVal: 'three' } }, bucketPropertiesVersion: 99 });
    gossiper.receive({ ...quiet, bucketProperties: { '': { nVal: 3 } }, bucketPropertiesVersion: 1e300 });
    expect(gossiper.view.bucketProperties).toEqual(before.bucketProperties);
    expect(gossiper.view.bucketPropertiesVersion).toBe(before.bucketPropertiesVersion);
    expect(JSON.stringify(gossiper.ring)).toBe(ringBefore);
  });

  it("takes a bucket's default ttlSeconds with its other properties, and refuses one out of range", () => {
    const { gossiper } = founder();
    const quiet = { members: { n1: member('n1') }, ring: null };
    gossiper.receive({ ...quiet, bucketProperties: { sessions: { conflictMode: 'lww', ttlSeconds: 3600 } }, bucketPropertiesVersion: 5 });
    expect(gossiper.view.bucketProperties).toEqual({ sessions: { conflictMode: 'lww', ttlSeconds: 3600 } });
    gossiper.receive({ ...quiet, bucketProperties: { sessions: { ttlSeconds: -1 } }, bucketPropertiesVersion: 6 });
    expect(gossiper.view.bucketPropertiesVersion).toBe(5);
  });

  it('still takes a well-formed ring with a higher version', () => {
    const { gossiper } = founder();
    gossiper.receive(peerState(5));
    expect(gossiper.ring?.version).toBe(5);
  });
});

describe('gossiper: a malformed persisted view', () => {
  it('starts with the valid parts of it and logs what it dropped', () => {
    const { gossiper: reference } = founder();
    const warnings: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn: (object, message) => warnings.push(`${message ?? ''} ${JSON.stringify(object)}`), error: (object, message) => warnings.push(`${message ?? ''} ${JSON.stringify(object)}`) };
    const stored = { members: { n1: member('n1'), n2: { id: 'n2' } }, ring: { partitionCount: 8, owners: ['n1'], version: 3, next: null }, bucketProperties: {}, bucketPropertiesVersion: 1 };
    const gossiper = new Gossiper({ ...reference['options'], seeds: ['10.0.0.2:7000'], initialView: stored as unknown as ClusterView, logger });
    expect(gossiper.ring).toBeNull();
    expect(gossiper.view.members.n2).toBeUndefined();
    expect(gossiper.ownStatus).toBe('joining');
    expect(warnings.join('\n')).toMatch(/refused/);
  });
});

describe('gossiper: a removed node learns it was removed', () => {
  it('adopts its removal whatever its own generation, tells its node once, and says how to rejoin', () => {
    const { gossiper: reference } = founder();
    const errors: string[] = [];
    const logger: Logger = { debug() {}, info() {}, warn() {}, error: (_object, message) => errors.push(message ?? '') };
    let removedCalls = 0;
    const gossiper = new Gossiper({
      ...reference['options'],
      self: member('n2', { generation: 50, heartbeat: 0, status: 'joining' }),
      seeds: ['10.0.0.1:7000'],
      logger,
    });
    gossiper.onRemoved(() => {
      removedCalls += 1;
    });
    const removal: ClusterView = { ...peerState(3), members: { n1: member('n1'), n2: member('n2', { generation: 7, status: 'removed' }) }, ring: { ...createRing(8, ['n1']), version: 3 } };
    gossiper.receive(removal);
    gossiper.receive(removal);
    expect(gossiper.ownStatus).toBe('removed');
    expect(gossiper.view.members.n2?.generation).toBe(50);
    expect(removedCalls).toBe(1);
    expect(errors.join('\n')).toMatch(/wipe its data directory/);
  });
});
