import type { BucketProperties } from '../buckets.js';
/**
 * The randomness gossip needs, declared here so the core imports nothing of the ports
 * (src/ports/random.ts's Random has this shape, and is what the engine hands in).
 */
export interface RandomSource {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, bound). */
  int(bound: number): number;
}
import { type NodeLocation, type Ring, compareRings } from '../ring/ring.js';

/**
 * A member's lifecycle. `joining` until the ring gives it partitions, `up` while it owns some,
 * `leaving` while it hands its partitions off, `left` once it has, `removed` when another node
 * removed it for good. `down` is not a status here: it is each observer's own judgement from
 * the failure detector, never gossiped (as in Cassandra).
 */
export type MemberLifecycle = 'joining' | 'up' | 'leaving' | 'left' | 'removed';

/** One row of the membership table (Cassandra's endpoint state: generation and heartbeat version). */
export interface MemberRecord {
  readonly id: string;
  readonly address: string;
  /** Larger on every restart, so peers tell a restarted node's heartbeats from stale ones. */
  readonly generation: number;
  /** Raised by the member itself every gossip round. */
  readonly heartbeat: number;
  readonly status: MemberLifecycle;
  /** The ring version whose incoming partitions this member has all streamed in (handoff). */
  readonly transfersDoneForRing?: number;
  /**
   * Where the member runs (`--placement-host`, `--zone`); absent for a host of its own in no zone.
   * The claimant copies it into the ring when the member joins (src/core/ring/ring.ts, locations).
   */
  readonly location?: NodeLocation;
}

/** What nodes gossip: the membership table, the ring, and cluster-wide bucket properties. */
export interface ClusterView {
  readonly members: Readonly<Record<string, MemberRecord>>;
  readonly ring: Ring | null;
  readonly bucketProperties: Readonly<Record<string, Partial<BucketProperties>>>;
  readonly bucketPropertiesVersion: number;
}

const lifecycleRank: Record<MemberLifecycle, number> = { joining: 0, up: 1, leaving: 2, left: 3, removed: 4 };

/**
 * The newer of two records of one member: a removed record first, then higher generation, then
 * higher heartbeat, then later lifecycle, then (for records equal in all of these, which only a
 * faulty peer makes) their content, so the merge stays commutative.
 *
 * `removed` is sticky: a removed id never comes back to up or joining, whatever generation or
 * heartbeat a later record of it carries (a removed node that restarts raises its generation,
 * and must not push itself, and the data it still holds, back into the cluster). Riak likewise
 * never lets a removed node id rejoin; the node has to start over with a new id.
 */
export function newerRecord(left: MemberRecord, right: MemberRecord): MemberRecord {
  const leftRemoved = left.status === 'removed';
  if (leftRemoved !== (right.status === 'removed')) return leftRemoved ? left : right;
  if (left.generation !== right.generation) return left.generation > right.generation ? left : right;
  if (left.heartbeat !== right.heartbeat) return left.heartbeat > right.heartbeat ? left : right;
  if (lifecycleRank[right.status] !== lifecycleRank[left.status]) return lifecycleRank[right.status] > lifecycleRank[left.status] ? right : left;
  return JSON.stringify(right) > JSON.stringify(left) ? right : left;
}

/**
 * Merges two views (commutative, associative and idempotent, so gossip converges in any order):
 * each member's newer record, the winning ring, the newer bucket properties.
 */
export function mergeViews(local: ClusterView, remote: ClusterView): ClusterView {
  const members: Record<string, MemberRecord> = { ...local.members };
  for (const [id, record] of Object.entries(remote.members ?? {})) {
    const mine = members[id];
    members[id] = mine === undefined ? record : newerRecord(mine, record);
  }
  let ring = local.ring;
  if (remote.ring !== null && remote.ring !== undefined && (ring === null || compareRings(remote.ring, ring) > 0)) ring = remote.ring;
  const remoteNewer = (remote.bucketPropertiesVersion ?? 0) > local.bucketPropertiesVersion;
  return {
    members,
    ring,
    bucketProperties: remoteNewer ? remote.bucketProperties : local.bucketProperties,
    bucketPropertiesVersion: remoteNewer ? remote.bucketPropertiesVersion : local.bucketPropertiesVersion,
  };
}

/** The view with `selfId`'s heartbeat raised by one. */
export function beat(view: ClusterView, selfId: string): ClusterView {
  const self = view.members[selfId];
  if (self === undefined) return view;
  return { ...view, members: { ...view.members, [selfId]: { ...self, heartbeat: self.heartbeat + 1 } } };
}

/** The view with one member's record replaced by a later lifecycle (its heartbeat raised so the change wins in gossip). */
export function withLifecycle(view: ClusterView, memberId: string, status: MemberLifecycle): ClusterView {
  const record = view.members[memberId];
  if (record === undefined) return view;
  return { ...view, members: { ...view.members, [memberId]: { ...record, status, heartbeat: record.heartbeat + 1 } } };
}

/**
 * Who to gossip with this round: `fanout` random other members, plus sometimes a seed (always
 * when no member is known yet), so that separated groups of nodes find each other again.
 */
export function gossipTargets(view: ClusterView, selfId: string, fanout: number, random: RandomSource, seeds: readonly string[]): string[] {
  const selfAddress = view.members[selfId]?.address;
  const candidates = Object.values(view.members)
    .filter((member) => member.id !== selfId && member.status !== 'left' && member.status !== 'removed')
    .map((member) => member.address)
    .sort();
  const chosen: string[] = [];
  const pool = [...candidates];
  while (chosen.length < fanout && pool.length > 0) {
    const [address] = pool.splice(random.int(pool.length), 1);
    chosen.push(address as string);
  }
  const otherSeeds = seeds.filter((seed) => seed !== selfAddress && !chosen.includes(seed));
  if (otherSeeds.length > 0 && (candidates.length === 0 || random.next() < 1 / (candidates.length + 1))) {
    chosen.push(otherSeeds[random.int(otherSeeds.length)] as string);
  }
  return chosen;
}
