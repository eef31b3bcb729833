import { describe, expect, it } from 'vitest';
import type { ClusterView, MemberRecord } from '../../src/core/membership/membership.js';
import { type Ring, createRing, planClaim, plannedMembers } from '../../src/core/ring/ring.js';
import { Claimant } from '../../src/engine/claimant.js';
import { silentLogger } from '../../src/ports/logger.js';

/**
 * A cluster of more members than partitions (many shards, a small partitionCount): the claim
 * gives some wanted member no partition, so the planned members are fewer than the wanted ones.
 * The claimant still completes the change once the receivers reported, rather than re-planning
 * it for ever (which held every later change, a leave included, behind it).
 */

const owners = ['n1', 'n2'];
const wanted = ['n1', 'n2', 'n3', 'n4', 'n5'];
const ring: Ring = planClaim(createRing(4, owners), wanted);

function view(done: boolean): ClusterView {
  const members: Record<string, MemberRecord> = {};
  for (const id of wanted) {
    members[id] = {
      id,
      address: `${id}:1`,
      generation: 1,
      status: owners.includes(id) ? 'up' : 'joining',
      ...(done ? { transfersDoneForRing: ring.version } : {}),
    };
  }
  return { members, ring, bucketProperties: {}, bucketPropertiesVersion: 1 };
}

describe('claimant: a change that leaves a wanted member without a partition', () => {
  const claimant = new Claimant({ selfId: 'n1', nVals: () => [3], logger: silentLogger });

  it('plans four of the five wanted members (the case under test exists)', () => {
    expect(ring.next).not.toBeNull();
    expect(plannedMembers(ring)).toHaveLength(4);
  });

  it('waits for the receivers, then completes the change', () => {
    expect(claimant.nextRing(view(false), () => true)).toBe(ring);
    const completed = claimant.nextRing(view(true), () => true);
    expect(completed?.next).toBeNull();
    expect(completed?.owners).toEqual(ring.next);
    // And the completed ring is left as it is: nothing to re-plan.
    expect(claimant.nextRing({ ...view(true), ring: completed }, () => true)).toBe(completed);
  });
});
