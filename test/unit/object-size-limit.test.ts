import { describe, expect, it } from 'vitest';
import { emptyContext, readContext } from '../../src/core/versioning/context.js';
import { encodeObject } from '../../src/core/versioning/object-codec.js';
import { liveSiblings } from '../../src/core/versioning/versioned-object.js';
import { dataTypeKey } from '../../src/core/datatypes/data-type.js';
import { Replica } from '../../src/engine/replica.js';
import { MemoryStorage } from '../../src/sim/memory-storage.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { isKvError } from '../../src/util/errors.js';

/**
 * limits.maxObjectBytes on the coordinating replica (issue 18, item 8): a coordinated write or
 * data type update that would leave a larger object is refused before anything is stored; a
 * write that does not grow the object is taken; merges from other replicas are never refused.
 */

const maxObjectBytes = 10_000;

async function openReplica(nodeId = 'n1'): Promise<Replica> {
  const storage = new MemoryStorage();
  await storage.open();
  return new Replica(storage, nodeId, new SeededRandom(1), { siblingsWarn: 1000, maxSiblings: 1000, maxObjectBytes });
}

const blind = (value: string, nowMs: number) => ({ value: Buffer.from(value), contentType: 'text/plain', tombstone: false, context: emptyContext, nowMs });

async function outcome(write: Promise<unknown>): Promise<string> {
  return write.then(
    () => 'ok',
    (error: unknown) => (isKvError(error) ? `${error.status} ${error.code}` : String(error)),
  );
}

describe('limits.maxObjectBytes on the coordinating replica', () => {
  it('refuses a blind write that would pass it, storing nothing, and takes the write that resolves the siblings', async () => {
    const replica = await openReplica();
    const value = 'x'.repeat(4_000);
    expect(await outcome(replica.coordinateWrite('b', 'k', blind(value, 1), 'siblings', false))).toBe('ok');
    expect(await outcome(replica.coordinateWrite('b', 'k', blind(value, 2), 'siblings', false))).toBe('ok');
    const before = encodeObject((await replica.read('b', 'k'))!);
    const refused = await replica.coordinateWrite('b', 'k', blind(value, 3), 'siblings', false).catch((error: unknown) => error);
    expect(isKvError(refused) && refused.code).toBe('KV_OBJECT_TOO_LARGE');
    expect(isKvError(refused) && refused.status).toBe(413);
    expect((refused as Error).message).toMatch(/over limits\.maxObjectBytes \(10000\); nothing was stored\. Resolve its siblings/);
    // Nothing of the refused write was stored.
    expect(encodeObject((await replica.read('b', 'k'))!)).toEqual(before);
    // The read's context supersedes both siblings: the object shrinks, the write is taken.
    const read = (await replica.read('b', 'k'))!;
    await replica.coordinateWrite('b', 'k', { ...blind('merged', 4), context: readContext(read.clock) }, 'siblings', false);
    expect(liveSiblings((await replica.read('b', 'k'))!).map((sibling) => Buffer.from(sibling.value).toString())).toEqual(['merged']);
  });

  it('takes a write that leaves an object already past the limit no larger (it can only be resolved)', async () => {
    // Two other replicas each coordinated a sibling under the limit; merged here they pass it.
    const [left, right, here] = [await openReplica('n2'), await openReplica('n3'), await openReplica('n1')];
    const value = 'y'.repeat(6_000);
    const { object: a } = await left.coordinateWrite('b', 'k', blind(value, 1), 'siblings', false);
    const { object: b } = await right.coordinateWrite('b', 'k', blind(value, 2), 'siblings', false);
    await here.merge('b', 'k', a, 'siblings', false);
    // A merge from another replica is never refused, even past the limit: a replica that refused it would stay behind.
    const merged = await here.merge('b', 'k', b, 'siblings', false);
    expect(merged.changed).toBe(true);
    expect(encodeObject(merged.object).byteLength).toBeGreaterThan(maxObjectBytes);
    // A blind write would grow it further: refused. A write with the read's context that replaces
    // both siblings with one value leaves it smaller, though still past the limit: taken.
    expect(await outcome(here.coordinateWrite('b', 'k', blind('z', 3), 'siblings', false))).toBe('413 KV_OBJECT_TOO_LARGE');
    const read = (await here.read('b', 'k'))!;
    expect(await outcome(here.coordinateWrite('b', 'k', { ...blind('w'.repeat(10_500), 4), context: readContext(read.clock) }, 'siblings', false))).toBe('ok');
    const resolved = (await here.read('b', 'k'))!;
    expect(liveSiblings(resolved)).toHaveLength(1);
    expect(encodeObject(resolved).byteLength).toBeGreaterThan(maxObjectBytes);
  });

  it('refuses a set update that would pass it, with a message about the set', async () => {
    const replica = await openReplica();
    const key = dataTypeKey('tags');
    const limits = { maxSetElements: 100_000, maxSetBytes: 1_000_000 };
    const elements = (from: number) => Array.from({ length: 200 }, (_, index) => `element-${from + index}`);
    expect(await outcome(replica.updateDataType('b', key, { type: 'set', add: elements(0), remove: [] }, false, null, 0, limits))).toBe('ok');
    const refused = await replica
      .updateDataType('b', key, { type: 'set', add: elements(1_000), remove: [] }, false, null, 0, limits)
      .catch((error: unknown) => error);
    expect(isKvError(refused) && refused.code).toBe('KV_OBJECT_TOO_LARGE');
    expect((refused as Error).message).toMatch(/this update would leave .* over limits\.maxObjectBytes .* Remove elements, or spread them over several keys/);
  });
});
