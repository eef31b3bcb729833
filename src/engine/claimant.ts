import { type NodeLocation, type Ring, completeClaim, planClaim, plannedMembers, receivingNodes, ringMembers } from '../core/ring/ring.js';
import type { ClusterView } from '../core/membership/membership.js';
import { groupQuorum, replicaGroups } from '../core/consensus/replica-groups.js';
import type { Logger } from '../ports/logger.js';
import type { BrokenClaimant } from './broken-claimant.js';

/** Each ring's members, sorted, computed once per ring. */
const membersOfRing = new WeakMap<Ring, readonly string[]>();

function sortedMembers(ring: Ring): readonly string[] {
  let members = membersOfRing.get(ring);
  if (members === undefined) {
    members = ringMembers(ring);
    membersOfRing.set(ring, members);
  }
  return members;
}

/** What the claimant needs from its node. */
export interface ClaimantOptions {
  readonly selfId: string;
  /** Every bucket n_val, ascending (replica sets of a ring change are compared for each). */
  readonly nVals: () => readonly number[];
  readonly logger: Logger;
  /** A deliberately broken claimant, for the simulation tests only (src/engine/broken-claimant.ts). */
  readonly broken?: BrokenClaimant;
}

/**
 * Riak's claimant: the live ring member with the lowest id plans membership changes and
 * completes them. A change is planned as the ring's `next` (minimal-movement claim); it
 * becomes the ring only when every node receiving partitions reports them streamed in. A
 * member set that changes again mid-way is planned anew from the current owners. Any node
 * could compute the same plan, and conflicting rings are settled by compareRings.
 *
 * It reads the gossiped view and answers the ring it wants; the gossiper adopts that ring and
 * spreads it (riak_core keeps the claimant apart from gossip in the same way).
 */
export class Claimant {
  constructor(private readonly options: ClaimantOptions) {}

  /**
   * True when this node is the claimant of `ring`: the lowest-id ring member that `isUp` holds.
   * Cheap (the ring's members are sorted once per ring, and the walk stops at the first live
   * one), so a node can ask it on every change without building the view.
   */
  isClaimant(ring: Ring | null, isUp: (nodeId: string) => boolean): boolean {
    if (ring === null) return false;
    for (const id of sortedMembers(ring)) if (isUp(id)) return id === this.options.selfId;
    return false;
  }

  /**
   * The ring after this node's claimant step over `view`: a planned change, a completed one, or
   * `view.ring` itself when there is nothing to do (or this node is not the claimant).
   */
  nextRing(view: ClusterView, isUp: (nodeId: string) => boolean): Ring | null {
    const ring = view.ring;
    if (ring === null) return ring;
    const status = view.members[this.options.selfId]?.status ?? 'joining';
    if (status === 'removed' || status === 'left') return ring;
    if (!this.isClaimant(ring, isUp)) return ring;
    const current = sortedMembers(ring);
    // A current owner that is down stays in the ring (it will be back, or be removed with
    // `ringkv remove`), but a change does not wait for its transfers (below). A joiner that is
    // down is left out of the plan: waiting for it to stream its partitions in would hold the
    // change (and, while the ring is smaller than n_val, every write) until it returns. It is
    // planned in again once it is up.
    const wanted = Object.values(view.members)
      .filter(
        (member) =>
          (member.status === 'joining' || member.status === 'up') &&
          (current.includes(member.id) || isUp(member.id) || this.options.broken === 'plan-down-receivers'),
      )
      .map((member) => member.id)
      .sort();
    if (wanted.length === 0) return ring;
    const planned = plannedMembers(ring);
    // A joiner's location comes from its member record; members the ring names keep the ring's.
    const locations = Object.create(null) as Record<string, NodeLocation>;
    for (const member of Object.values(view.members)) if (member.location !== undefined) locations[member.id] = member.location;
    const replan = (): Ring =>
      planClaim(this.options.broken === 'replan-from-planned' && ring.next !== null ? { ...ring, owners: ring.next, next: null } : ring, wanted, locations);
    // The change under way is the one wanted when it plans the wanted members, or when planning
    // them anew gives the same owners: a cluster of more members than partitions leaves some
    // wanted member without a partition, and re-planning it for ever would never complete the change.
    const planningWanted = ring.next !== null && wanted.length === planned.length && wanted.every((id, index) => id === planned[index]);
    const replanned = ring.next === null || planningWanted ? undefined : replan();
    let next = ring;
    if (ring.next !== null && (planningWanted || replanned === ring)) {
      const receivers = receivingNodes(ring, this.options.nVals());
      // A receiver that is down (a current owner: a joiner that is down is not planned) does not
      // hold the change: waiting would stall it, and every change queued behind it, until the
      // node returns or is removed. Completing is safe for its data: a node giving a partition up
      // keeps each key until every replica of the new ring has stored it (handoff's clean-up
      // waits for the down one), and the down node catches up from them when it is back.
      const reported = (id: string): boolean => view.members[id]?.transfersDoneForRing === ring.version;
      const waitingFor = receivers.filter((id) => isUp(id));
      if (this.options.broken === 'complete-before-transfers' || (waitingFor.every(reported) && this.consistentKeysRepaired(view, ring, reported)))
        next = completeClaim(ring);
    } else {
      next = replanned ?? replan();
    }
    if (next !== ring) {
      this.options.logger.info(
        { members: wanted, version: next.version, moving: next.next !== null },
        next.next === null ? 'claimant completed the ring change' : 'claimant planned a ring change',
      );
    }
    return next;
  }

  /**
   * Step 4 of a ring change for consistent buckets (docs/CONSENSUS.md, "Ring changes"): the
   * planned ring may become the ring only once every consistent key that moves was repaired onto
   * its new group. A node reports a ring version done only after repairing every moving key it
   * holds acceptor state of (src/engine/handoff.ts), and a key decided before the change sits on
   * a majority of its old group; so the change waits until, for every partition whose group the
   * plan changes, a majority of the old group has reported. A node that is down and counted in
   * that majority holds the change until it is back or removed (a removal plans anew). Without a
   * consistent bucket there is nothing to wait for.
   */
  private consistentKeysRepaired(view: ClusterView, ring: Ring, reported: (id: string) => boolean): boolean {
    const shared = view.bucketProperties;
    const defaultConsistent = shared['']?.consistent === true;
    const anyConsistent = defaultConsistent || Object.values(shared).some((properties) => properties.consistent === true);
    if (!anyConsistent) return true;
    for (const nVal of this.options.nVals()) {
      for (let partition = 0; partition < ring.partitionCount; partition++) {
        const groups = replicaGroups(ring, partition, nVal);
        if (groups.length === 1) continue;
        const old = groups[0] ?? [];
        if (old.filter(reported).length < groupQuorum(old.length)) return false;
      }
    }
    return true;
  }
}
