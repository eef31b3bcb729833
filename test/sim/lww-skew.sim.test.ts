import { afterEach, describe, expect, it } from 'vitest';
import { type CausalContext, objectContext } from '../../src/core/versioning/context.js';
import { type VersionedObject, liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { type SimMember, SimCluster } from '../../src/sim/sim-cluster.js';

/**
 * Goal of last-write-wins under clock skew, in simulation (issue 18, item 7): a write (or a
 * delete) made with a read's context supersedes what that read returned, even when its node's
 * clock is behind the clock that stamped the version it read, and even when its own copy never
 * held that version (a hybrid logical clock: the new version is stamped after what it supersedes).
 */

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [701, 702, 703];
const bucket = 'sessions';
const key = 'k';

/** The context a client holds after reading `object` (what GET's x-ringkv-context carries). */
const contextOfRead = (object: VersionedObject): CausalContext => objectContext(object);

/** Makes `member` refuse replica writes (it misses them) while `missing` is true. */
function refuseReplicaWrites(sim: SimCluster, member: SimMember, missing: () => boolean): void {
  sim.network.register(member.address, async (request) =>
    missing() && request.type === 'replica-put'
      ? { type: 'error', code: 'KV_UNAVAILABLE', message: 'test: this replica misses the write' }
      : member.node.handlePeer(request),
  );
}

describe('lww orders a write after the version its context names, whatever the clocks', () => {
  it.each(seeds)('seed %i: a write and a delete from a node whose clock is behind supersede what they read', async (seed) => {
    cluster = await SimCluster.start(
      seed,
      3,
      { buckets: { [bucket]: { conflictMode: 'lww' } }, antiEntropy: { enabled: false }, hintedHandoff: { enabled: false } },
      { clockSkewMs: 2000 },
    );
    const sim = cluster;
    const byOffset = [...sim.members].sort((left, right) => left.clockError.offsetMs - right.clockError.offsetMs);
    const behind = byOffset[0]!;
    const ahead = byOffset[byOffset.length - 1]!;
    const skewMs = ahead.clockError.offsetMs - behind.clockError.offsetMs;
    expect(skewMs, 'the seed gives the two nodes clocks far enough apart to matter').toBeGreaterThan(500);
    let missing = true;
    refuseReplicaWrites(sim, behind, () => missing);
    // The node whose clock is ahead writes X; the node behind misses it, and misses the read repair too.
    await sim.drive(ahead.node.put({ bucket, key, value: Buffer.from('X'), contentType: 'text/plain', context: undefined, options: { w: 2 } }));
    const read = await sim.drive(ahead.node.get(bucket, key, { r: 'all' }));
    expect(liveSiblings(read!).map((sibling) => Buffer.from(sibling.value).toString())).toEqual(['X']);
    missing = false;
    await sim.drive(behind.node.put({ bucket, key, value: Buffer.from('Y'), contentType: 'text/plain', context: contextOfRead(read!), options: { w: 'all' } }));
    for (const member of sim.members) {
      const after = await sim.drive(member.node.get(bucket, key, { r: 'all' }));
      expect(
        liveSiblings(after!).map((sibling) => Buffer.from(sibling.value).toString()),
        `a read through ${member.nodeId} after Y was written with X's context (skew ${skewMs} ms)`,
      ).toEqual(['Y']);
    }
    // The same for a delete: the node behind deletes with a read's context of a value the node ahead wrote.
    missing = true;
    await sim.drive(ahead.node.put({ bucket, key, value: Buffer.from('Z'), contentType: 'text/plain', context: contextOfRead(read!), options: { w: 2 } }));
    const second = await sim.drive(ahead.node.get(bucket, key, { r: 'all' }));
    missing = false;
    await sim.drive(behind.node.delete({ bucket, key, context: contextOfRead(second!), options: { w: 'all' } }));
    for (const member of sim.members) {
      const after = await sim.drive(member.node.get(bucket, key, { r: 'all' }));
      expect(
        after === undefined ? [] : liveSiblings(after).map((sibling) => Buffer.from(sibling.value).toString()),
        `a read through ${member.nodeId} after the delete with Z's context`,
      ).toEqual([]);
    }
  });
});
