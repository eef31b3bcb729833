import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { beat, type ClusterView, gossipTargets, type MemberRecord, mergeViews, withLifecycle } from '../../src/core/membership/membership.js';
import { createDetector, heartbeat, phi } from '../../src/core/membership/phi-accrual.js';
import { claim, createRing } from '../../src/core/ring/ring.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';

const record = (id: string, generation: number, heartbeatVersion: number, status: MemberRecord['status'] = 'up'): MemberRecord => ({
  id,
  address: `127.0.0.1:${7000 + Number(id.slice(1))}`,
  generation,
  heartbeat: heartbeatVersion,
  status,
});

const view = (members: MemberRecord[], ringVersion = 0): ClusterView => ({
  members: Object.fromEntries(members.map((member) => [member.id, member])),
  ring: ringVersion === 0 ? null : { ...createRing(8, members.map((member) => member.id)), version: ringVersion },
  bucketProperties: {},
  bucketPropertiesVersion: 0,
});

describe('membership: merging gossiped views', () => {
  it('keeps the newer record of each member: generation first, then heartbeat', () => {
    const local = view([record('n1', 5, 100), record('n2', 3, 7)]);
    const remote = view([record('n1', 6, 1), record('n2', 3, 9), record('n3', 1, 1)]);
    const merged = mergeViews(local, remote);
    expect(merged.members.n1?.generation).toBe(6);
    expect(merged.members.n2?.heartbeat).toBe(9);
    expect(merged.members.n3).toBeDefined();
  });

  it('takes the ring with the higher version', () => {
    const local = view([record('n1', 1, 1)], 2);
    const remote = view([record('n1', 1, 1), record('n2', 1, 1)], 3);
    expect(mergeViews(local, remote).ring?.version).toBe(3);
    expect(mergeViews(remote, local).ring?.version).toBe(3);
  });

  it('lets a lifecycle change made by another node win over the same heartbeat', () => {
    const base = view([record('n1', 1, 4), record('n2', 1, 4)]);
    const removed = withLifecycle(base, 'n2', 'removed');
    expect(mergeViews(base, removed).members.n2?.status).toBe('removed');
  });

  it('is commutative, associative and idempotent, so gossip converges in any order', () => {
    const arbitraryView = fc
      .array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 5 }), fc.constantFrom('joining', 'up', 'leaving')), {
        maxLength: 5,
      })
      .chain((rows) =>
        fc.integer({ min: 0, max: 3 }).map((ringVersion) => {
          const members = rows.map(([id, generation, heartbeatVersion, status]) => record(`n${id}`, generation, heartbeatVersion, status as MemberRecord['status']));
          const unique = [...new Map(members.map((member) => [member.id, member])).values()];
          const base = view(unique.length === 0 ? [record('n9', 1, 1)] : unique, 0);
          const ring = ringVersion === 0 ? null : { ...claim(createRing(8, ['n1']), ['n1', `n${ringVersion + 1}`]), version: ringVersion };
          return { ...base, ring };
        }),
      );
    fc.assert(
      fc.property(arbitraryView, arbitraryView, arbitraryView, (a, b, c) => {
        expect(mergeViews(a, b)).toEqual(mergeViews(b, a));
        expect(mergeViews(mergeViews(a, b), c)).toEqual(mergeViews(a, mergeViews(b, c)));
        expect(mergeViews(a, a)).toEqual(a);
      }),
    );
  });

  it('keeps a removed member removed whatever generation or heartbeat a later record of it carries', () => {
    const removed = view([record('n1', 1, 4), record('n2', 3, 9, 'removed')]);
    for (const comeback of [record('n2', 4, 0, 'joining'), record('n2', 3, 10, 'up'), record('n2', 99, 99, 'up'), record('n2', 3, 9, 'leaving')]) {
      const restarted = view([record('n1', 1, 4), comeback]);
      expect(mergeViews(removed, restarted).members.n2?.status, `${JSON.stringify(comeback)} merged into the removed record`).toBe('removed');
      expect(mergeViews(restarted, removed).members.n2?.status, `the removed record merged into ${JSON.stringify(comeback)}`).toBe('removed');
    }
  });

  it('is commutative, associative and idempotent with removed members too, and a removed member never comes back', () => {
    const arbitraryView = fc
      .array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 5 }), fc.constantFrom('joining', 'up', 'leaving', 'left', 'removed')), {
        maxLength: 5,
      })
      .map((rows) => {
        const members = rows.map(([id, generation, heartbeatVersion, status]) => record(`n${id}`, generation, heartbeatVersion, status as MemberRecord['status']));
        return view([...new Map(members.map((member) => [member.id, member])).values()]);
      });
    fc.assert(
      fc.property(arbitraryView, arbitraryView, arbitraryView, (a, b, c) => {
        expect(mergeViews(a, b)).toEqual(mergeViews(b, a));
        expect(mergeViews(mergeViews(a, b), c)).toEqual(mergeViews(a, mergeViews(b, c)));
        expect(mergeViews(a, a)).toEqual(a);
        const merged = mergeViews(a, b);
        for (const side of [a, b]) {
          for (const [id, member] of Object.entries(side.members)) if (member.status === 'removed') expect(merged.members[id]?.status).toBe('removed');
        }
      }),
    );
  });

  it('raises only its own heartbeat on a beat', () => {
    const before = view([record('n1', 1, 4), record('n2', 1, 4)]);
    const after = beat(before, 'n1');
    expect(after.members.n1?.heartbeat).toBe(5);
    expect(after.members.n2?.heartbeat).toBe(4);
  });
});

describe('membership: choosing gossip partners', () => {
  it('picks distinct other members, never itself, and a seed when it knows nobody', () => {
    const random = new SeededRandom(7);
    const current = view([record('n1', 1, 1), record('n2', 1, 1), record('n3', 1, 1), record('n4', 1, 1)]);
    for (let round = 0; round < 50; round++) {
      const targets = gossipTargets(current, 'n1', 2, random, []);
      expect(new Set(targets).size).toBe(targets.length);
      expect(targets).not.toContain(current.members.n1?.address);
      expect(targets.length).toBe(2);
    }
    expect(gossipTargets(view([record('n1', 1, 1)]), 'n1', 2, random, ['10.0.0.9:7000'])).toEqual(['10.0.0.9:7000']);
  });
});

describe('phi accrual failure detection', () => {
  const options = { windowSize: 100, minStdDeviationMs: 500, acceptableHeartbeatPauseMs: 3000, firstHeartbeatEstimateMs: 1000 };

  it('stays low while heartbeats arrive on time and rises while they stop', () => {
    let state = createDetector(options);
    for (let second = 0; second <= 20; second++) state = heartbeat(state, second * 1000);
    expect(phi(state, 20_500)).toBeLessThan(1);
    const later = [22_000, 25_000, 28_000, 32_000].map((time) => phi(state, time));
    for (let index = 1; index < later.length; index++) expect(later[index]!).toBeGreaterThan(later[index - 1]!);
  });

  it('passes the default threshold of 8 within 10 s of silence at a 1 s gossip interval', () => {
    let state = createDetector(options);
    for (let second = 0; second <= 30; second++) state = heartbeat(state, second * 1000);
    expect(phi(state, 30_000 + 3_000)).toBeLessThan(8);
    expect(phi(state, 30_000 + 10_000)).toBeGreaterThan(8);
  });

  it('is zero before the first heartbeat and finite long after the last', () => {
    const fresh = createDetector(options);
    expect(phi(fresh, 1_000_000)).toBe(0);
    const once = heartbeat(heartbeat(fresh, 0), 1000);
    expect(Number.isFinite(phi(once, 10_000_000))).toBe(true);
  });
});
