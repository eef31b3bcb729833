import { describe, expect, it } from 'vitest';
import { replicaGroups } from '../../src/core/consensus/replica-groups.js';
import type { ClusterView, MemberRecord } from '../../src/core/membership/membership.js';
import { type Ring, createRing, planClaim, receivingNodes } from '../../src/core/ring/ring.js';
import { Claimant } from '../../src/engine/claimant.js';
import { silentLogger } from '../../src/ports/logger.js';

/**
 * Step 4 of a ring change for consistent buckets (docs/CONSENSUS.md, "Ring changes"): the
 * claimant completes a planned change only once every receiver streamed its partitions in AND,
 * when a bucket is consistent, a majority of each moving partition's old group reported the
 * version done (a node reports only after repairing the moving consistent keys it holds).
 */

const nodes = ['n1', 'n2', 'n3', 'n4'];
const ring: Ring = planClaim(createRing(16, nodes), [...nodes, 'n5', 'n6']);

function view(done: readonly string[], consistent: boolean): ClusterView {
  const members: Record<string, MemberRecord> = {};
  for (const id of [...nodes, 'n5', 'n6']) {
    members[id] = {
      id,
      address: `${id}:1`,
      generation: 1,
      status: nodes.includes(id) ? 'up' : 'joining',
      ...(done.includes(id) ? { transfersDoneForRing: ring.version } : {}),
    };
  }
  return { members, ring, bucketProperties: consistent ? { locks: { consistent: true } } : {}, bucketPropertiesVersion: 1 };
}

const claimant = new Claimant({ selfId: 'n1', nVals: () => [3], logger: silentLogger });
const step = (done: readonly string[], consistent: boolean): Ring | null => claimant.nextRing(view(done, consistent), () => true);

describe('claimant: a ring change with consistent buckets completes only after the old groups reported', () => {
  const receivers = receivingNodes(ring, [3]);
  const moving = Array.from({ length: ring.partitionCount }, (_unused, partition) => replicaGroups(ring, partition, 3)).filter((groups) => groups.length === 2);

  it('the plan moves some partitions to the joiners (the case under test exists)', () => {
    expect(ring.next).not.toBeNull();
    expect(receivers.length).toBeGreaterThan(0);
    expect(moving.length).toBeGreaterThan(0);
  });

  it('receivers done but no old-group member reported: a plain cluster completes, a consistent one waits', () => {
    const onlyReceivers = receivers.filter((id) => !nodes.includes(id));
    expect(step(onlyReceivers, false)?.next).toBeNull();
    expect(step(onlyReceivers, true)).toBe(ring);
  });

  it('completes once a majority of every moving old group reported, not before', () => {
    // Every member reports except n2: each old group of three still has a majority unless n2 is needed twice.
    const allButOne = [...nodes, 'n5', 'n6'].filter((id) => id !== 'n2');
    const completed = step(allButOne, true);
    expect(completed?.next).toBeNull();
    expect(completed?.version).toBe(ring.version + 1);
    // Without n2 and n3: some moving old group holding both has only one of three reported.
    const holdsBoth = moving.some(([old]) => old!.includes('n2') && old!.includes('n3'));
    const withoutTwo = [...nodes, 'n5', 'n6'].filter((id) => id !== 'n2' && id !== 'n3');
    expect(holdsBoth, 'some moving partition has n2 and n3 in its old group').toBe(true);
    expect(step(withoutTwo, true)).toBe(ring);
  });
});
