import { describe, expect, it } from 'vitest';
import { type BrokenVariant } from '../../src/core/consensus/broken-variants.js';
import { acceptorsOf, jointQuorumImpossible, jointQuorumMet, replicaGroups } from '../../src/core/consensus/replica-groups.js';
import { completeClaim, createRing, planClaim, preferenceList } from '../../src/core/ring/ring.js';

/**
 * Goals of the ring-change rule for consistent keys (docs/CONSENSUS.md): outside a change a
 * round needs a majority of the key's primaries; during one, a majority of the current AND of
 * the planned primaries, so that every quorum a round can win meets every quorum of the old
 * group and every quorum of the new one: no key is ever served by two disjoint quorums.
 */

/** Every subset of `nodes`. */
function subsets(nodes: readonly string[]): Set<string>[] {
  return Array.from({ length: 2 ** nodes.length }, (_, mask) => new Set(nodes.filter((_, index) => (mask & (1 << index)) !== 0)));
}

const intersects = (left: ReadonlySet<string>, right: ReadonlySet<string>): boolean => [...left].some((node) => right.has(node));

/** Whether every quorum of `first` meets every quorum of `second` (both exhaustively enumerated). */
function quorumsAlwaysMeet(first: string[][], second: string[][], broken?: BrokenVariant): boolean {
  const everyone = acceptorsOf([...first, ...second]);
  const quorums = (groups: string[][]): Set<string>[] => subsets(everyone).filter((subset) => jointQuorumMet(groups, subset, broken));
  const firstQuorums = quorums(first);
  return quorums(second).every((quorum) => firstQuorums.every((other) => intersects(quorum, other)));
}

describe('replica groups', () => {
  it('outside a ring change a key has one group, its primaries', () => {
    const ring = createRing(8, ['n1', 'n2', 'n3', 'n4']);
    expect(replicaGroups(ring, 5, 3)).toEqual([preferenceList(ring, 5, 3)]);
  });

  it('during a join, a partition whose primaries change has the current and the planned group; one whose primaries stay has one', () => {
    const ring = planClaim(createRing(8, ['n1', 'n2', 'n3', 'n4']), ['n1', 'n2', 'n3', 'n4', 'n5']);
    expect(ring.next).not.toBeNull();
    const planned = completeClaim(ring);
    const groupsPerPartition = Array.from({ length: 8 }, (_, partition) => replicaGroups(ring, partition, 3));
    const moving = groupsPerPartition.filter((groups) => groups.length === 2);
    expect(moving.length, 'the join moves some preference lists').toBeGreaterThan(0);
    groupsPerPartition.forEach((groups, partition) => {
      expect(groups[0]).toEqual(preferenceList(ring, partition, 3));
      if (groups.length === 2) expect(groups[1]).toEqual(preferenceList(planned, partition, 3));
      else expect(new Set(preferenceList(planned, partition, 3))).toEqual(new Set(groups[0]));
    });
  });

  it('a joint quorum needs a majority of each group, and is impossible once a group has lost its majority', () => {
    const groups = [
      ['a', 'b', 'c'],
      ['b', 'c', 'd'],
    ];
    expect(jointQuorumMet(groups, new Set(['b', 'c']))).toBe(true);
    expect(jointQuorumMet(groups, new Set(['a', 'b']))).toBe(false);
    expect(jointQuorumMet(groups, new Set(['a', 'b', 'd']))).toBe(true);
    expect(jointQuorumImpossible(groups, new Set(['c', 'd']))).toBe(true);
    expect(jointQuorumImpossible(groups, new Set(['a', 'd']))).toBe(false);
  });

  it('every joint quorum meets every quorum of the old group, of the new group and of the joint configuration (exhaustive over small groups)', () => {
    const cases: { old: string[]; next: string[] }[] = [
      { old: ['a', 'b', 'c'], next: ['b', 'c', 'd'] },
      { old: ['a', 'b', 'c'], next: ['c', 'd', 'e'] },
      { old: ['a', 'b', 'c'], next: ['d', 'e', 'f'] },
      { old: ['a', 'b', 'c', 'd', 'e'], next: ['c', 'd', 'e', 'f', 'g'] },
      { old: ['a', 'b'], next: ['b', 'c', 'd'] },
    ];
    for (const { old, next } of cases) {
      const joint = [old, next];
      expect(quorumsAlwaysMeet(joint, [old]), `${old} -> ${next}: joint vs old`).toBe(true);
      expect(quorumsAlwaysMeet(joint, [next]), `${old} -> ${next}: joint vs new`).toBe(true);
      expect(quorumsAlwaysMeet(joint, joint), `${old} -> ${next}: joint vs joint`).toBe(true);
      // Without the joint rule the old and the new group alone can pick disjoint quorums.
      expect(quorumsAlwaysMeet([old], [next]), `${old} -> ${next}: old alone vs new alone`).toBe(false);
    }
  });

  it('the check sees the broken half-quorum rule: its quorums of three can miss each other', () => {
    expect(quorumsAlwaysMeet([['a', 'b', 'c']], [['a', 'b', 'c']], 'half-quorum')).toBe(false);
    expect(quorumsAlwaysMeet([['a', 'b', 'c']], [['a', 'b', 'c']])).toBe(true);
  });
});
