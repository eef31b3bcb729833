import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { claim, compareRings, createRing, fallbacks, partitionsOwnedBy, preferenceList, ringMembers, type Ring } from '../../src/core/ring/ring.js';

const nodeIds = (count: number): string[] => Array.from({ length: count }, (_, index) => `node${String(index).padStart(2, '0')}`);

function countsOf(ring: Ring): Map<string, number> {
  const counts = new Map<string, number>();
  for (const owner of ring.owners) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  return counts;
}

function moved(before: Ring, after: Ring): number {
  return before.owners.filter((owner, partition) => owner !== after.owners[partition]).length;
}

describe('ring: creation and preference lists', () => {
  it('deals partitions round-robin so every node owns Q/S', () => {
    const ring = createRing(256, nodeIds(4));
    expect([...countsOf(ring).values()]).toEqual([64, 64, 64, 64]);
    expect(ringMembers(ring)).toEqual(nodeIds(4));
    expect(partitionsOwnedBy(ring, 'node01').slice(0, 3)).toEqual([1, 5, 9]);
  });

  it('gives preference lists of N distinct nodes walking clockwise from the key partition', () => {
    const ring = createRing(16, nodeIds(5));
    expect(preferenceList(ring, 0, 3)).toEqual(['node00', 'node01', 'node02']);
    expect(preferenceList(ring, 14, 3)).toEqual(['node04', 'node00', 'node01']);
  });

  it('gives every member when the ring is smaller than N', () => {
    expect(preferenceList(createRing(8, ['a', 'b']), 3, 3)).toEqual(['b', 'a']);
    expect(preferenceList(createRing(8, ['a']), 3, 3)).toEqual(['a']);
  });

  it('picks fallbacks after the preference list, only live ones, at most as many as asked', () => {
    const ring = createRing(16, nodeIds(6));
    expect(fallbacks(ring, 0, 3, () => true, 2)).toEqual(['node03', 'node04']);
    expect(fallbacks(ring, 0, 3, (node) => node !== 'node03', 2)).toEqual(['node04', 'node05']);
    expect(fallbacks(createRing(16, nodeIds(3)), 0, 3, () => true, 1)).toEqual([]);
  });

  it('orders rings by version, then by content, so all nodes pick the same winner', () => {
    const older = createRing(8, ['a', 'b']);
    const newer = claim(older, ['a', 'b', 'c']);
    expect(compareRings(newer, older)).toBeGreaterThan(0);
    expect(compareRings(older, newer)).toBeLessThan(0);
    const twin = { ...newer, owners: [...newer.owners].reverse() };
    expect(Math.sign(compareRings(newer, twin))).toBe(-Math.sign(compareRings(twin, newer)));
    expect(compareRings(newer, { ...newer })).toBe(0);
  });
});

describe('ring: claim', () => {
  it('returns the same ring when the member set is unchanged', () => {
    const ring = createRing(64, nodeIds(3));
    expect(claim(ring, nodeIds(3))).toBe(ring);
  });

  it('moves about 1/(S+1) of the partitions to a joining node, and takes none between old nodes', () => {
    const before = createRing(256, nodeIds(3));
    const after = claim(before, nodeIds(4));
    expect(after.version).toBe(before.version + 1);
    expect(countsOf(after).get('node03')).toBe(64);
    expect(moved(before, after)).toBe(64);
    after.owners.forEach((owner, partition) => {
      if (owner !== before.owners[partition]) expect(owner).toBe('node03');
    });
  });

  it('hands only the departed node partitions out when a node leaves', () => {
    const before = createRing(256, nodeIds(4));
    const after = claim(before, nodeIds(3));
    expect(countsOf(after).has('node03')).toBe(false);
    expect(moved(before, after)).toBe(64);
  });

  it('keeps every node within one partition of Q/S and moves the fewest partitions, for any change of members', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(8, 16, 64, 256),
        fc.uniqueArray(fc.integer({ min: 0, max: 15 }), { minLength: 1, maxLength: 10 }),
        fc.uniqueArray(fc.integer({ min: 0, max: 15 }), { minLength: 1, maxLength: 10 }),
        (partitionCount, firstIds, secondIds) => {
          const first = firstIds.map((id) => `n${id}`);
          const second = secondIds.map((id) => `n${id}`);
          const before = createRing(partitionCount, first);
          const after = claim(before, second);
          const counts = countsOf(after);
          const members = ringMembers(after);
          // Every wanted node owns something when there are enough partitions, and nobody else does.
          expect(members).toEqual([...new Set(second)].sort().filter((node) => (counts.get(node) ?? 0) > 0));
          const low = Math.floor(partitionCount / second.length);
          for (const node of second) {
            const owned = counts.get(node) ?? 0;
            expect(owned).toBeGreaterThanOrEqual(low);
            expect(owned).toBeLessThanOrEqual(low + 1);
          }
          // The lower bound on movement: partitions of departed nodes plus each staying node's surplus.
          const beforeCounts = countsOf(before);
          let necessary = 0;
          for (const [node, owned] of beforeCounts) necessary += second.includes(node) ? Math.max(0, owned - (counts.get(node) ?? 0)) : owned;
          expect(moved(before, after)).toBe(necessary);
          // Deterministic: any node computing the claim gets the same ring.
          expect(claim(before, [...second].reverse()).owners).toEqual(after.owners);
        },
      ),
    );
  });

  it('keeps neighbouring partitions on distinct nodes after joins, so preference lists stay spread', () => {
    let ring = createRing(256, nodeIds(3));
    for (let size = 4; size <= 8; size++) ring = claim(ring, nodeIds(size));
    let sameAsNext = 0;
    ring.owners.forEach((owner, partition) => {
      if (owner === ring.owners[(partition + 1) % ring.partitionCount]) sameAsNext += 1;
    });
    expect(sameAsNext).toBeLessThan(8);
    for (let partition = 0; partition < ring.partitionCount; partition++) expect(new Set(preferenceList(ring, partition, 3)).size).toBe(3);
  });
});
