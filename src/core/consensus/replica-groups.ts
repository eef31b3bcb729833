import { resolveQuorum } from '../quorum/quorum.js';
import { type Ring, plannedRing, preferenceList } from '../ring/ring.js';
import type { BrokenVariant } from './broken-variants.js';

/**
 * Which acceptors a consistent key's Paxos round must win, in and out of ring changes. Outside
 * a change there is one group, the key's primaries. While the ring moves to a planned one whose
 * preference list for the key differs, there are two groups, the current primaries and the
 * planned ones, and a round needs a majority of EACH (the joint consensus of Raft's membership
 * changes, and what CEP-14 calls counting pending replicas in the electorate): every joint
 * quorum meets every quorum of the old group and every quorum of the new one, so no key is ever
 * served by two disjoint quorums. Never fallbacks or hints: a sloppy quorum has no intersection.
 */

/** The groups a round on the key in `partition` must win a majority of each of: one, or two during a ring change. */
export function replicaGroups(ring: Ring, partition: number, nVal: number): string[][] {
  const current = preferenceList(ring, partition, nVal);
  if (ring.next === null) return [current];
  const planned = preferenceList(plannedRing(ring), partition, nVal);
  const same = planned.length === current.length && planned.every((node) => current.includes(node));
  return same ? [current] : [current, planned];
}

/** Every acceptor of the groups, each once, in the order met: where a round sends its messages. */
export function acceptorsOf(groups: readonly (readonly string[])[]): string[] {
  return [...new Set(groups.flat())];
}

/** How many of a group of `size` make a quorum: a strict majority, the one quorum rule (resolveQuorum). */
export function groupQuorum(size: number, broken?: BrokenVariant): number {
  // The broken variant counts half, which for three acceptors lets two single-node "quorums" miss each other.
  return broken === 'half-quorum' ? Math.max(1, Math.floor(size / 2)) : resolveQuorum('quorum', size);
}

/** True when `answered` holds a quorum of every group. */
export function jointQuorumMet(groups: readonly (readonly string[])[], answered: ReadonlySet<string>, broken?: BrokenVariant): boolean {
  return groups.every((group) => group.filter((node) => answered.has(node)).length >= groupQuorum(group.length, broken));
}

/** True when `refused` leaves some group unable to reach its quorum however the others answer. */
export function jointQuorumImpossible(groups: readonly (readonly string[])[], refused: ReadonlySet<string>, broken?: BrokenVariant): boolean {
  return groups.some((group) => group.filter((node) => !refused.has(node)).length < groupQuorum(group.length, broken));
}
