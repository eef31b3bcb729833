import { describe, expect, it } from 'vitest';
import { emptyContext, readContext } from '../../src/core/versioning/context.js';
import { Replica } from '../../src/engine/replica.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { RecordingStorage } from '../../src/sim/recording-storage.js';

/** The bucket index entries of bucket `b` as `key:live|dead`. */
async function entries(replica: Replica): Promise<string[]> {
  const scan = await replica.bucketIndex.scan('b', { budget: 100 });
  return scan.entries.map((entry) => `${entry.key}:${entry.live ? 'live' : 'dead'}`);
}

describe("a replica write keeps its key's bucket index entry", () => {
  it('writes the entry with the data when liveness may change, and only the data for a live over a live version', async () => {
    const storage = new RecordingStorage();
    await storage.open();
    const replica = new Replica(storage, 'n1', new SeededRandom(1));
    let nowMs = 1_000;
    const write = async (tombstone: boolean): Promise<void> => {
      const current = await replica.read('b', 'k');
      const context = current === undefined ? emptyContext : readContext(current.clock);
      await replica.coordinateWrite(
        'b',
        'k',
        { value: Buffer.from(tombstone ? '' : 'v'), contentType: 'text/plain', tombstone, context, nowMs: (nowMs += 1) },
        'lww',
        false,
      );
    };

    await write(false);
    expect(await entries(replica)).toEqual(['k:live']);
    const before = storage.writes;
    await write(false);
    // A live version over a live one: its entry already says live, so only the data is written.
    expect(storage.writes - before).toBe(1);
    expect(await entries(replica)).toEqual(['k:live']);

    await write(true);
    expect(await entries(replica)).toEqual(['k:dead']);
    await write(true);
    expect(await entries(replica)).toEqual(['k:dead']);
    await write(false);
    expect(await entries(replica)).toEqual(['k:live']);

    // A merged version from elsewhere follows the same rule.
    const stored = await replica.read('b', 'k');
    const merged = await replica.merge('b', 'k', { ...stored!, clock: { ...stored!.clock, other: 1 } }, 'siblings', false);
    expect(merged.changed).toBe(true);
    expect(await entries(replica)).toEqual(['k:live']);
    await storage.close();
  });
});
