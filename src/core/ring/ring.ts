import { assert } from '../../util/assert.js';

/**
 * The ring: Q fixed, equal-sized partitions (Dynamo's partitioning strategy 3, Riak's ring),
 * each owned by one node; a node's partitions are its virtual nodes. Data only ever moves as
 * whole partitions, so handoff and Merkle trees work per partition.
 */
export interface Ring {
  readonly partitionCount: number;
  /** owners[p] is the node id that owns partition p. */
  readonly owners: readonly string[];
  /** Raised by every claim; the higher version wins when two rings meet in gossip. */
  readonly version: number;
  /**
   * The planned owners while a membership change is under way (Riak's pending ring), else null.
   * Reads use `owners`; writes also go to the nodes `next` adds; the claimant makes `next`
   * the owners once every node that receives partitions has streamed them in.
   */
  readonly next: readonly string[] | null;
}

/**
 * How many consecutive partitions a claim tries to keep free of repeated owners, so that the
 * preference lists of neighbouring partitions land on distinct nodes (Riak's target_n_val).
 */
export const claimSpacing = 3;

/** A new ring of `members` (sorted), dealt round-robin: perfectly balanced and spaced. */
export function createRing(partitionCount: number, members: readonly string[]): Ring {
  assert(members.length > 0, 'a ring needs at least one member');
  assert(partitionCount > 0 && (partitionCount & (partitionCount - 1)) === 0, 'partitionCount must be a power of two');
  const sorted = [...new Set(members)].sort();
  const owners = Array.from({ length: partitionCount }, (_, partition) => sorted[partition % sorted.length] as string);
  return { partitionCount, owners, version: 1, next: null };
}

/** The distinct owners of a ring, sorted. */
export function ringMembers(ring: Ring): string[] {
  return [...new Set(ring.owners)].sort();
}

/** The distinct owners the ring is moving to (its owners when no change is under way), sorted. */
export function plannedMembers(ring: Ring): string[] {
  return [...new Set(ring.next ?? ring.owners)].sort();
}

/** The owners a ring is moving to, as a ring of their own. */
export function plannedRing(ring: Ring): Ring {
  return ring.next === null ? ring : { partitionCount: ring.partitionCount, owners: ring.next, version: ring.version, next: null };
}

/** The partitions a node owns, ascending. */
export function partitionsOwnedBy(ring: Ring, node: string): number[] {
  const owned: number[] = [];
  ring.owners.forEach((owner, partition) => {
    if (owner === node) owned.push(partition);
  });
  return owned;
}

/** Up to `limit` distinct owners walking clockwise from `partition`, in the order met. */
function clockwiseOwners(ring: Ring, partition: number, limit: number): string[] {
  const seen: string[] = [];
  for (let step = 0; step < ring.partitionCount && seen.length < limit; step++) {
    const owner = ring.owners[(partition + step) % ring.partitionCount] as string;
    if (!seen.includes(owner)) seen.push(owner);
  }
  return seen;
}

/**
 * Dynamo's preference list: the owner of the key's partition and the owners of the following
 * partitions, clockwise, skipping nodes already chosen, until nVal distinct nodes (or every
 * member, in a ring smaller than nVal).
 */
export function preferenceList(ring: Ring, partition: number, nVal: number): string[] {
  return clockwiseOwners(ring, partition, nVal);
}

/**
 * Sloppy-quorum fallbacks: the next distinct nodes after the preference list, clockwise, that
 * are up, at most `count` of them. Empty when the ring has no node outside the preference list.
 */
export function fallbacks(ring: Ring, partition: number, nVal: number, isUp: (node: string) => boolean, count: number): string[] {
  return clockwiseOwners(ring, partition, Number.POSITIVE_INFINITY)
    .slice(nVal)
    .filter((node) => isUp(node))
    .slice(0, count);
}

/** Orders rings: the higher version wins; equal versions are ordered by content so every node picks the same one. */
export function compareRings(left: Ring, right: Ring): number {
  if (left.version !== right.version) return left.version - right.version;
  const leftText = `${left.owners.join(',')}>${left.next?.join(',') ?? ''}`;
  const rightText = `${right.owners.join(',')}>${right.next?.join(',') ?? ''}`;
  return leftText === rightText ? 0 : leftText < rightText ? -1 : 1;
}

/** How many partitions within `claimSpacing - 1` steps of `partition` (either side) `node` owns. */
function crowded(owners: readonly (string | null)[], partition: number, node: string): number {
  const count = owners.length;
  let neighbours = 0;
  for (let step = 1; step < claimSpacing && step < count; step++) {
    if (owners[(partition + step) % count] === node) neighbours += 1;
    if (owners[(partition - step + count) % count] === node) neighbours += 1;
  }
  return neighbours;
}

/**
 * The target number of partitions of each wanted node: floor(Q/S) or one more. The extra ones go
 * to the nodes that own the most now, so the fewest partitions move.
 */
function claimTargets(ring: Ring, wanted: readonly string[]): Map<string, number> {
  const counts = new Map(wanted.map((node) => [node, 0]));
  for (const owner of ring.owners) if (counts.has(owner)) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  const base = Math.floor(ring.partitionCount / wanted.length);
  let extra = ring.partitionCount % wanted.length;
  const order = [...wanted].sort((left, right) => (counts.get(right) ?? 0) - (counts.get(left) ?? 0) || (left < right ? -1 : 1));
  const targets = new Map<string, number>();
  for (const node of order) {
    targets.set(node, base + (extra > 0 ? 1 : 0));
    if (extra > 0) extra -= 1;
  }
  return targets;
}

/**
 * A claim for a new member set that moves as few partitions as possible and leaves every node
 * within one partition of Q/S: partitions of departed nodes, and the surplus of nodes above
 * their target, go to nodes below theirs. Among the choices it keeps owners spaced apart so
 * preference lists stay distinct. Deterministic, so any node computing it gets the same ring.
 * Returns `ring` itself when nothing changes.
 */
export function claim(ring: Ring, wanted: readonly string[]): Ring {
  const members = [...new Set(wanted)].sort();
  assert(members.length > 0, 'a claim needs at least one member');
  const targets = claimTargets(ring, members);
  // Partitions of departed nodes are free (null); they have to move whatever happens.
  const owners: (string | null)[] = ring.owners.map((owner) => (targets.has(owner) ? owner : null));
  const counts = new Map(members.map((node) => [node, 0]));
  for (const owner of owners) if (owner !== null) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  const deficit = (node: string): number => (targets.get(node) ?? 0) - (counts.get(node) ?? 0);

  // Each step gives the neediest node one partition, either a free one or one from a node above
  // its target; every step is a move that has to happen, so the total moved is the minimum.
  for (;;) {
    const receiver = members.reduce<string | undefined>((best, node) => (deficit(node) > 0 && (best === undefined || deficit(node) > deficit(best)) ? node : best), undefined);
    if (receiver === undefined) break;
    let chosen = -1;
    let chosenScore = Number.POSITIVE_INFINITY;
    owners.forEach((owner, partition) => {
      if (owner !== null && deficit(owner) >= 0) return;
      // Least crowding for the receiver first; then free partitions; then the donor's most crowded.
      const score = crowded(owners, partition, receiver) * 4 * claimSpacing + (owner === null ? 0 : 2 * claimSpacing - crowded(owners, partition, owner));
      if (score < chosenScore) {
        chosen = partition;
        chosenScore = score;
      }
    });
    assert(chosen >= 0, 'claim found no partition to give');
    const donor = owners[chosen];
    if (donor !== null && donor !== undefined) counts.set(donor, (counts.get(donor) ?? 0) - 1);
    owners[chosen] = receiver;
    counts.set(receiver, (counts.get(receiver) ?? 0) + 1);
  }

  assert(owners.every((owner) => owner !== null), 'claim left a partition without an owner');
  const next = owners as string[];
  if (next.every((owner, partition) => owner === ring.owners[partition])) return ring;
  return { partitionCount: ring.partitionCount, owners: next, version: ring.version + 1, next: null };
}

/**
 * Starts a membership change: the claim for `wanted`, computed from the current owners, becomes
 * the ring's `next`. Returns `ring` itself when the planned owners would not change.
 */
export function planClaim(ring: Ring, wanted: readonly string[]): Ring {
  const current: Ring = { ...ring, next: null };
  const claimed = claim(current, wanted);
  const target = claimed === current ? ring.owners : claimed.owners;
  const planned = ring.next ?? ring.owners;
  if (target.every((owner, partition) => owner === planned[partition])) return ring;
  const unchanged = target.every((owner, partition) => owner === ring.owners[partition]);
  return { partitionCount: ring.partitionCount, owners: ring.owners, version: ring.version + 1, next: unchanged ? null : target };
}

/** Ends a membership change: the planned owners become the owners. */
export function completeClaim(ring: Ring): Ring {
  if (ring.next === null) return ring;
  return { partitionCount: ring.partitionCount, owners: ring.next, version: ring.version + 1, next: null };
}

/** One partition a node must stream in before a membership change can complete. */
export interface IncomingTransfer {
  readonly partition: number;
  /**
   * The smallest n_val whose replicas of the partition the node joins: it takes the keys of the
   * buckets with this n_val and every larger one.
   */
  readonly nVal: number;
  /**
   * Replicas of the partition under `nVal` now, the ones giving it up first (they are the natural
   * source). Each holds every key the node takes, since a preference list of a smaller n_val is a
   * prefix of a larger one's.
   */
  readonly sources: readonly string[];
}

/**
 * The partitions `node` will replicate keys of under the planned owners that it does not
 * replicate now, each with where to stream them from. Replica sets are compared for each n_val
 * in `nVals` (every bucket's), not only the largest: a node already among the largest n_val's
 * replicas may be new among a smaller one's, and its keys then live only on that smaller list.
 */
export function incomingTransfers(ring: Ring, node: string, nVals: readonly number[]): IncomingTransfer[] {
  if (ring.next === null) return [];
  const planned = plannedRing(ring);
  const ascending = [...new Set(nVals)].sort((left, right) => left - right);
  const transfers: IncomingTransfer[] = [];
  for (let partition = 0; partition < ring.partitionCount; partition++) {
    // Being a replica later only grows with n_val and being one now only shrinks, so the n_vals
    // the node is new to run from the first one found up to a larger one: its sources hold them all.
    for (const nVal of ascending) {
      const now = preferenceList(ring, partition, nVal);
      const later = preferenceList(planned, partition, nVal);
      if (!later.includes(node) || now.includes(node)) continue;
      const leaving = now.filter((member) => !later.includes(member));
      const staying = now.filter((member) => later.includes(member));
      transfers.push({ partition, nVal, sources: [...leaving, ...staying] });
      break;
    }
  }
  return transfers;
}

/** Nodes that receive at least one partition in the change under way (replica sets compared for each of `nVals`). */
export function receivingNodes(ring: Ring, nVals: readonly number[]): string[] {
  if (ring.next === null) return [];
  return plannedMembers(ring).filter((node) => incomingTransfers(ring, node, nVals).length > 0);
}

/** The nodes a write to `partition` must also reach while a change is under way: planned replicas that are not replicas yet. */
export function pendingReplicas(ring: Ring, partition: number, nVal: number): string[] {
  if (ring.next === null) return [];
  const now = preferenceList(ring, partition, nVal);
  return preferenceList(plannedRing(ring), partition, nVal).filter((node) => !now.includes(node));
}
