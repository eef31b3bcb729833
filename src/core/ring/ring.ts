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
  /**
   * Where the nodes the ring names run (set with `--placement-host` / `--zone`), so that a key's
   * replicas go to different hosts and zones. A node without an entry is a host of its own in no
   * zone, as every node was before locations existed. The claimant takes a node's location from
   * its member record when the node enters the ring; it stays fixed while the node is a member.
   */
  readonly locations?: Readonly<Record<string, NodeLocation>>;
}

/**
 * Where a node runs: the host (machine) whose loss takes all of its nodes at once, and the zone
 * (rack, availability zone) when the operator labels one: Cassandra's rack, Riak's location.
 */
export interface NodeLocation {
  readonly host: string;
  /** Absent when unlabelled; unlabelled nodes count as one zone, as Riak's `undefined` location. */
  readonly zone?: string;
}

/** Where `node` runs by the ring: its own host, in no zone, when the ring has no entry for it. */
export function locationOf(ring: Ring, node: string): NodeLocation {
  return ring.locations?.[node] ?? { host: node };
}

/**
 * Where a member runs: the ring's word for members it names (now or planned), else the member's
 * own record (a joiner's), else a host of its own. /status shows it; a shard's leave takes the
 * members on its host with it (src/engine/lifecycle.ts).
 */
export function memberLocation(ring: Ring | null, member: { readonly id: string; readonly location?: NodeLocation }): NodeLocation {
  if (ring !== null && plannedMembers(ring).includes(member.id)) return locationOf(ring, member.id);
  return member.location ?? { host: member.id };
}

/**
 * How many consecutive partitions a claim tries to keep free of repeated owners, so that the
 * preference lists of neighbouring partitions land on distinct nodes (Riak's target_n_val).
 */
export const claimSpacing = 3;

/** A new ring of `members` (sorted), dealt round-robin: perfectly balanced and spaced; `locations` says where they run. */
export function createRing(partitionCount: number, members: readonly string[], locations: Readonly<Record<string, NodeLocation>> = {}): Ring {
  assert(members.length > 0, 'a ring needs at least one member');
  assert(partitionCount > 0 && (partitionCount & (partitionCount - 1)) === 0, 'partitionCount must be a power of two');
  const sorted = [...new Set(members)].sort();
  const owners = Array.from({ length: partitionCount }, (_, partition) => sorted[partition % sorted.length] as string);
  const ring: Ring = { partitionCount, owners, version: 1, next: null };
  return withLocations(ring, { ...ring, owners: [] }, locations);
}

/**
 * The ring `next`, derived from `previous`, with the locations of the nodes it names (owners and
 * planned owners) and no others: a node `previous` already named keeps its location (fixed while
 * it is a member: a change would move replicas without streaming them), a node new to it takes
 * its entry of `locations`. An entry that only says what a missing one would (own host, no zone)
 * is left out.
 */
function withLocations(next: Ring, previous: Ring, locations: Readonly<Record<string, NodeLocation>>): Ring {
  const before = new Set([...previous.owners, ...(previous.next ?? [])]);
  const named = [...new Set([...next.owners, ...(next.next ?? [])])].sort();
  const kept = Object.create(null) as Record<string, NodeLocation>;
  for (const node of named) {
    const location = before.has(node) ? previous.locations?.[node] : locations[node];
    if (location === undefined || (location.host === node && location.zone === undefined)) continue;
    kept[node] = location.zone === undefined ? { host: location.host } : { host: location.host, zone: location.zone };
  }
  const { locations: _old, ...rest } = next;
  return Object.keys(kept).length === 0 ? rest : { ...rest, locations: kept };
}

/** The distinct owners of a ring, sorted. */
export function ringMembers(ring: Ring): string[] {
  return [...new Set(ring.owners)].sort();
}

/** The distinct owners the ring is moving to (its owners when no change is under way), sorted. */
export function plannedMembers(ring: Ring): string[] {
  return [...new Set(ring.next ?? ring.owners)].sort();
}

/** Planned rings already built, so the placement walks cached for them are found again. */
const plannedRings = new WeakMap<Ring, Ring>();

/** The owners a ring is moving to, as a ring of their own (with the same locations). */
export function plannedRing(ring: Ring): Ring {
  if (ring.next === null) return ring;
  let planned = plannedRings.get(ring);
  if (planned === undefined) {
    planned = {
      partitionCount: ring.partitionCount,
      owners: ring.next,
      version: ring.version,
      next: null,
      ...(ring.locations === undefined ? {} : { locations: ring.locations }),
    };
    plannedRings.set(ring, planned);
  }
  return planned;
}

/** The partitions a node owns, ascending. */
export function partitionsOwnedBy(ring: Ring, node: string): number[] {
  const owned: number[] = [];
  ring.owners.forEach((owner, partition) => {
    if (owner === node) owned.push(partition);
  });
  return owned;
}

/** How many distinct owners each ring has, counted once per ring (rings are never changed in place). */
const ownerCounts = new WeakMap<Ring, number>();

/**
 * Every distinct owner walking clockwise from `partition`, in the order met. The walk stops once
 * it has met every owner: a full lap for every partition would cost partitionCount² steps per
 * ring version (164 s of event loop at 65,536 partitions), where this costs about
 * members·ln(members) steps per partition.
 */
function clockwiseOwners(ring: Ring, partition: number): string[] {
  let owners = ownerCounts.get(ring);
  if (owners === undefined) {
    owners = new Set(ring.owners).size;
    ownerCounts.set(ring, owners);
  }
  const seen = new Set<string>();
  for (let step = 0; step < ring.partitionCount && seen.size < owners; step++) seen.add(ring.owners[(partition + step) % ring.partitionCount] as string);
  return [...seen];
}

/**
 * Every member in the order a partition's replicas are taken from them: Cassandra's
 * NetworkTopologyStrategy walk. Walking clockwise from the partition, a node is taken first only
 * when its zone and its host are both new to the list; then, when that ran out, a node on a new
 * host; then the rest, in the order met. So N replicas are on N zones when that many are
 * labelled, else on N hosts when that many exist, and share a host only in a ring with fewer
 * hosts than N (placementWarnings reports it). Each pass is greedy over the whole walk, so the
 * first nVal of this order, a preference list, is a prefix of the list of any larger n_val.
 */
function computePlacementOrder(ring: Ring, partition: number): string[] {
  const walk = clockwiseOwners(ring, partition);
  const order: string[] = [];
  const taken = new Set<string>();
  const hosts = new Set<string>();
  const zones = new Set<string>();
  const take = (node: string): void => {
    const location = locationOf(ring, node);
    order.push(node);
    taken.add(node);
    hosts.add(location.host);
    zones.add(location.zone ?? '');
  };
  for (const node of walk) {
    const location = locationOf(ring, node);
    if (!hosts.has(location.host) && !zones.has(location.zone ?? '')) take(node);
  }
  for (const node of walk) if (!taken.has(node) && !hosts.has(locationOf(ring, node).host)) take(node);
  for (const node of walk) if (!taken.has(node)) take(node);
  return order;
}

/** Placement orders already walked, per ring (rings are never changed in place) and partition. */
const placementOrders = new WeakMap<Ring, (readonly string[] | undefined)[]>();

/** The placement order of `partition` (see computePlacementOrder), walked once per ring and partition. */
function placementOrder(ring: Ring, partition: number): readonly string[] {
  let orders = placementOrders.get(ring);
  if (orders === undefined) {
    orders = new Array<readonly string[] | undefined>(ring.partitionCount);
    placementOrders.set(ring, orders);
  }
  let order = orders[partition];
  if (order === undefined) {
    order = computePlacementOrder(ring, partition);
    orders[partition] = order;
  }
  return order;
}

/**
 * Dynamo's preference list, placed by location: the first nVal nodes of the partition's
 * placement order, that is the owner of the key's partition and the owners met clockwise after
 * it, skipping nodes already chosen and nodes on a host or zone already chosen while others
 * remain (every member, in a ring smaller than nVal). Everything that asks where a key's replicas
 * are (coordinators, hints, handoff, anti-entropy, listing, backup) asks this function.
 */
export function preferenceList(ring: Ring, partition: number, nVal: number): string[] {
  return placementOrder(ring, partition).slice(0, nVal);
}

/**
 * Sloppy-quorum fallbacks: the nodes after the preference list in the placement order (so on
 * other hosts first) that are up, at most `count` of them. Empty when the ring has no node
 * outside the preference list.
 */
export function fallbacks(ring: Ring, partition: number, nVal: number, isUp: (node: string) => boolean, count: number): string[] {
  return placementOrder(ring, partition)
    .slice(nVal)
    .filter((node) => isUp(node))
    .slice(0, count);
}

/**
 * What /status warns about placement: a ring with fewer hosts than `nVal` (some keys then keep
 * two replicas on one host), or, when zones are labelled, fewer zones than `nVal`. Empty when
 * every preference list can be on distinct hosts and zones.
 */
export function placementWarnings(ring: Ring, nVal: number): string[] {
  const members = plannedMembers(ring);
  const hosts = new Set(members.map((node) => locationOf(ring, node).host));
  const zones = new Set(members.map((node) => locationOf(ring, node).zone ?? ''));
  const labelled = members.some((node) => locationOf(ring, node).zone !== undefined);
  const warnings: string[] = [];
  if (hosts.size < nVal) {
    warnings.push(
      `the ring's ${members.length} nodes run on ${hosts.size} host(s), fewer than n_val ${nVal}: some keys keep more than one replica on one host, and losing that host can lose their quorum; add nodes on other hosts (--placement-host) or lower the buckets' n_val`,
    );
  }
  if (labelled && zones.size < nVal) {
    warnings.push(
      `the ring's nodes are in ${zones.size} zone(s), fewer than n_val ${nVal}: some keys keep more than one replica in one zone; add nodes in other zones (--zone) or lower the buckets' n_val`,
    );
  }
  return warnings;
}

/** Orders rings: the higher version wins; equal versions are ordered by content so every node picks the same one. */
export function compareRings(left: Ring, right: Ring): number {
  if (left.version !== right.version) return left.version - right.version;
  const leftText = `${left.owners.join(',')}>${left.next?.join(',') ?? ''}@${locationsText(left)}`;
  const rightText = `${right.owners.join(',')}>${right.next?.join(',') ?? ''}@${locationsText(right)}`;
  return leftText === rightText ? 0 : leftText < rightText ? -1 : 1;
}

/**
 * A 32-bit FNV-1a hash of what compareRings compares beyond the version (owners, next, locations):
 * SWIM's digests carry it beside the ring version, so two rings of one version that differ (two
 * claimants on either side of a partition) are noticed and settled by compareRings.
 */
export function ringHash(ring: Ring | null): number {
  if (ring === null) return 0;
  const text = `${ring.owners.join(',')}>${ring.next?.join(',') ?? ''}@${locationsText(ring)}`;
  let hash = 0x811c9dc5;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/** A ring's locations as text in node order, whatever order its entries came in. */
function locationsText(ring: Ring): string {
  const entries = Object.entries(ring.locations ?? {}).sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0));
  return entries.map(([node, location]) => `${node}=${location.host}/${location.zone ?? ''}`).join(',');
}

/**
 * How many partitions within `claimSpacing - 1` steps of `partition` (either side) are owned by a
 * node on `node`'s host (itself included): Riak's location-aware claim, which keeps a host's
 * nodes apart on the ring so the placement walk rarely has to skip far, and the replicas of a
 * host's nodes spread evenly.
 */
function crowded(owners: readonly (string | null)[], partition: number, node: string, hostOf: (node: string) => string): number {
  const count = owners.length;
  const host = hostOf(node);
  let neighbours = 0;
  for (let step = 1; step < claimSpacing && step < count; step++) {
    const after = owners[(partition + step) % count];
    const before = owners[(partition - step + count) % count];
    if (after !== null && after !== undefined && hostOf(after) === host) neighbours += 1;
    if (before !== null && before !== undefined && hostOf(before) === host) neighbours += 1;
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
 * preference lists stay distinct, counting nodes of one host as one (their locations are the
 * ring's, else `locations` for nodes new to it). Deterministic, so any node computing it gets the
 * same ring. Returns `ring` itself when nothing changes.
 */
export function claim(ring: Ring, wanted: readonly string[], locations: Readonly<Record<string, NodeLocation>> = {}): Ring {
  const members = [...new Set(wanted)].sort();
  assert(members.length > 0, 'a claim needs at least one member');
  const named = new Set([...ring.owners, ...(ring.next ?? [])]);
  const hostOf = (node: string): string => (named.has(node) ? ring.locations?.[node] : locations[node])?.host ?? node;
  const targets = claimTargets(ring, members);
  // Partitions of departed nodes are free (null); they have to move whatever happens.
  const owners: (string | null)[] = ring.owners.map((owner) => (targets.has(owner) ? owner : null));
  const counts = new Map(members.map((node) => [node, 0]));
  for (const owner of owners) if (owner !== null) counts.set(owner, (counts.get(owner) ?? 0) + 1);
  const deficit = (node: string): number => (targets.get(node) ?? 0) - (counts.get(node) ?? 0);

  // Each step gives the neediest node one partition, either a free one or one from a node above
  // its target; every step is a move that has to happen, so the total moved is the minimum.
  for (;;) {
    const receiver = members.reduce<string | undefined>(
      (best, node) => (deficit(node) > 0 && (best === undefined || deficit(node) > deficit(best)) ? node : best),
      undefined,
    );
    if (receiver === undefined) break;
    let chosen = -1;
    let chosenScore = Number.POSITIVE_INFINITY;
    owners.forEach((owner, partition) => {
      if (owner !== null && deficit(owner) >= 0) return;
      // Least crowding for the receiver first; then free partitions; then the donor's most crowded.
      const score =
        crowded(owners, partition, receiver, hostOf) * 4 * claimSpacing + (owner === null ? 0 : 2 * claimSpacing - crowded(owners, partition, owner, hostOf));
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

  assert(
    owners.every((owner) => owner !== null),
    'claim left a partition without an owner',
  );
  const next = owners as string[];
  if (next.every((owner, partition) => owner === ring.owners[partition])) return ring;
  return withLocations({ ...ring, owners: next, version: ring.version + 1, next: null }, ring, locations);
}

/**
 * Starts a membership change: the claim for `wanted`, computed from the current owners, becomes
 * the ring's `next`, and the ring learns where the nodes new to it run (`locations`, from their
 * member records). Returns `ring` itself when the planned owners would not change.
 */
export function planClaim(ring: Ring, wanted: readonly string[], locations: Readonly<Record<string, NodeLocation>> = {}): Ring {
  const current: Ring = { ...ring, next: null };
  // Planned owners dropped from `current` are judged by the locations the ring already gave them.
  const claimed = claim(current, wanted, { ...locations, ...ring.locations });
  const target = claimed === current ? ring.owners : claimed.owners;
  const planned = ring.next ?? ring.owners;
  if (target.every((owner, partition) => owner === planned[partition])) return ring;
  const unchanged = target.every((owner, partition) => owner === ring.owners[partition]);
  return withLocations({ ...ring, version: ring.version + 1, next: unchanged ? null : target }, ring, locations);
}

/** Ends a membership change: the planned owners become the owners (and the locations of nodes that left are dropped). */
export function completeClaim(ring: Ring): Ring {
  if (ring.next === null) return ring;
  return withLocations({ ...ring, owners: ring.next, version: ring.version + 1, next: null }, ring, {});
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
