import { afterEach, describe, expect, it } from 'vitest';
import { dataTypeKey, dataTypeValue } from '../../src/core/datatypes/data-type.js';
import { partitionOf } from '../../src/core/keys.js';
import { preferenceList } from '../../src/core/ring/ring.js';
import { type CausalContext, decodeContext } from '../../src/core/versioning/context.js';
import type { WatchFilter } from '../../src/core/watch/watch-cursor.js';
import type { WatchItem, WatchStream } from '../../src/engine/watches.js';
import { SimCluster, type SimMember } from '../../src/sim/sim-cluster.js';

/**
 * Goals of watches (README, "Watches"), on simulated clusters: a watch on any node reports every
 * write of the keys it follows once, from the replica that made it, including a node that holds
 * no replica of the key; a watcher that disconnects and resumes with its last event id (on any
 * node) gets the writes made meanwhile and none twice; a resume past what the logs still hold
 * answers `compacted`; a watcher that does not read is cut off with `overflow`, and resumed from
 * its last id misses nothing. Seeds replay with SIM_SEED.
 */

const seeds = process.env.SIM_SEED !== undefined ? [Number(process.env.SIM_SEED)] : [1, 2];

let cluster: SimCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** A watch's items as they arrive, and its last id. */
interface Collected {
  readonly items: WatchItem[];
  lastId(): string | undefined;
  writes(): string[];
  done: Promise<void>;
}

function collect(stream: WatchStream): Collected {
  const items: WatchItem[] = [];
  const done = (async () => {
    for await (const item of stream) items.push(item);
  })();
  return {
    items,
    lastId: () => {
      for (let index = items.length - 1; index >= 0; index--) {
        const item = items[index]!;
        if (item.kind !== 'overflow') return item.id;
      }
      return undefined;
    },
    writes: () =>
      items.flatMap((item) =>
        item.kind === 'write'
          ? [
              `${item.key}=${item.object.siblings.find((sibling) => sibling.dot.node === item.dot.node && sibling.dot.counter === item.dot.counter)?.value.toString() ?? '?'}`,
            ]
          : [],
      ),
    done,
  };
}

/** A key of `bucket` (n_val 2) whose replicas do not include `outsider`. */
function keyNotOn(sim: SimCluster, outsider: string, bucket: string): { key: string; replicas: string[] } {
  const ring = sim.members[0]!.node.gossiper.ring!;
  for (let index = 0; ; index++) {
    const key = `key-${index}`;
    const replicas = preferenceList(ring, partitionOf(bucket, key, ring.partitionCount), 2);
    if (!replicas.includes(outsider)) return { key, replicas };
  }
}

function memberOf(sim: SimCluster, nodeId: string): SimMember {
  return sim.members.find((member) => member.nodeId === nodeId)!;
}

/** Writes `values` to the key in turn through the given members, each write chained to the context of the one before. */
async function writeChain(sim: SimCluster, through: readonly SimMember[], bucket: string, key: string, values: readonly string[]): Promise<void> {
  let seen: CausalContext | undefined;
  for (const [index, value] of values.entries()) {
    const member = through[index % through.length]!;
    const outcome = await sim.drive(
      member.node.put({ bucket, key, value: Buffer.from(value), contentType: 'text/plain', context: seen, options: { w: 'all' } }),
    );
    seen = outcome.context;
  }
}

const config = { buckets: { watched: { nVal: 2 } } };

describe('simulation: watches', () => {
  it.each(seeds)('seed %i: a watch on a node that holds no replica of the key sees every write the replicas coordinate, each once', async (seed) => {
    cluster = await SimCluster.start(seed, 3, config);
    const sim = cluster;
    const outsider = sim.members[0]!;
    const { key, replicas } = keyNotOn(sim, outsider.nodeId, 'watched');
    const [first, second] = replicas.map((id) => memberOf(sim, id)) as [SimMember, SimMember];
    const stream = outsider.node.watch({ bucket: 'watched', kind: 'key', name: key });
    const watch = collect(stream);
    await sim.runUntil(() => watch.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
    const values = Array.from({ length: 8 }, (_, index) => `v${index}`);
    // Alternating coordinators: writes sent to the second replica are coordinated there.
    await writeChain(sim, [second, first], 'watched', key, values);
    // A write to another key of the bucket is not followed.
    await sim.drive(
      first.node.put({ bucket: 'watched', key: `${key}-other`, value: Buffer.from('x'), contentType: 'text/plain', context: undefined, options: {} }),
    );
    await sim.runUntil(() => watch.writes().length >= values.length, 10_000, `every write arrives (saw ${watch.writes().join(',')})`);
    await sim.clock.advance(3000);
    expect(watch.writes().sort()).toEqual(values.map((value) => `${key}=${value}`).sort());
    const dots = watch.items.flatMap((item) => (item.kind === 'write' ? [item.dot.node] : []));
    expect(new Set(dots).size, 'writes were coordinated by both replicas').toBe(2);
    expect(watch.items.some((item) => item.kind === 'compacted')).toBe(false);
    stream.close();
    await sim.drive(watch.done);
    expect(outsider.node.watches.count).toBe(0);
  });

  it.each(seeds)(
    'seed %i: a watcher that disconnects and resumes with its last id on another node gets the writes made meanwhile, none twice',
    async (seed) => {
      cluster = await SimCluster.start(seed, 3, config);
      const sim = cluster;
      const [a, b, c] = sim.members as [SimMember, SimMember, SimMember];
      const filter: WatchFilter = { bucket: 'watched', kind: 'prefix', name: 'p-' };
      const firstStream = a.node.watch(filter);
      const first = collect(firstStream);
      await sim.runUntil(() => first.items.some((item) => item.kind === 'ready'), 10_000, 'the first watch is ready');
      const before = Array.from({ length: 6 }, (_, index) => `p-${index % 3}`);
      for (const [index, key] of before.entries()) {
        await sim.drive(
          sim.members[index % 3]!.node.put({
            bucket: 'watched',
            key,
            value: Buffer.from(`before-${index}`),
            contentType: 'text/plain',
            context: undefined,
            options: {},
          }),
        );
      }
      await sim.runUntil(() => first.writes().length >= before.length, 10_000, `the writes before the disconnect arrive (saw ${first.writes().join(',')})`);
      firstStream.close();
      await sim.drive(first.done);
      const lastId = first.lastId();
      expect(lastId).toBeDefined();
      const during = ['p-0', 'p-1', 'p-2', 'p-3'];
      for (const [index, key] of during.entries()) {
        await sim.drive(
          sim.members[(index + 1) % 3]!.node.put({
            bucket: 'watched',
            key,
            value: Buffer.from(`during-${index}`),
            contentType: 'text/plain',
            context: undefined,
            options: {},
          }),
        );
      }
      const secondStream = b.node.watch(filter, lastId);
      const second = collect(secondStream);
      await sim.runUntil(() => second.writes().length >= during.length, 10_000, `the writes made while disconnected arrive (saw ${second.writes().join(',')})`);
      await sim.drive(c.node.put({ bucket: 'watched', key: 'p-9', value: Buffer.from('after'), contentType: 'text/plain', context: undefined, options: {} }));
      await sim.runUntil(() => second.writes().length >= during.length + 1, 10_000, 'a write after the resume arrives');
      await sim.clock.advance(3000);
      const all = [...first.writes(), ...second.writes()];
      expect(all.sort()).toEqual(
        [...before.map((key, index) => `${key}=before-${index}`), ...during.map((key, index) => `${key}=during-${index}`), 'p-9=after'].sort(),
      );
      expect(second.items.some((item) => item.kind === 'compacted')).toBe(false);
      secondStream.close();
      await sim.drive(second.done);
    },
  );

  it.each(seeds)('seed %i: a resume past what the logs still hold answers compacted, and the writes after it follow', async (seed) => {
    cluster = await SimCluster.start(seed, 3, { ...config, watch: { logEvents: 3 } });
    const sim = cluster;
    const [a, b] = sim.members as [SimMember, SimMember];
    const filter: WatchFilter = { bucket: 'watched', kind: 'key', name: 'k' };
    const firstStream = a.node.watch(filter);
    const first = collect(firstStream);
    await sim.runUntil(() => first.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
    firstStream.close();
    await sim.drive(first.done);
    // More writes than one log keeps, all coordinated by b while nobody watches.
    await writeChain(sim, [b], 'watched', 'k', ['1', '2', '3', '4', '5', '6']);
    const secondStream = a.node.watch(filter, first.lastId());
    const second = collect(secondStream);
    await sim.runUntil(
      () => second.items.some((item) => item.kind === 'compacted'),
      10_000,
      `compacted is answered (saw ${second.items.map((item) => item.kind).join(',')})`,
    );
    const compacted = second.items.find((item) => item.kind === 'compacted');
    expect(compacted?.kind === 'compacted' ? compacted.nodes : []).toEqual([b.nodeId]);
    expect(second.writes(), 'no write the log still held is passed off as the whole story').toEqual([]);
    await writeChain(sim, [b], 'watched', 'k', ['7']);
    await sim.runUntil(() => second.writes().length === 1, 10_000, 'the write after compacted arrives');
    expect(second.writes()).toEqual(['k=7']);
    secondStream.close();
    await sim.drive(second.done);
  });

  it.each(seeds)('seed %i: a watcher that does not read is cut off with overflow, and resumed from its last id misses nothing', async (seed) => {
    cluster = await SimCluster.start(seed, 3, { ...config, watch: { maxQueuedEvents: 3 } });
    const sim = cluster;
    const [a, b] = sim.members as [SimMember, SimMember];
    const filter: WatchFilter = { bucket: 'watched', kind: 'key', name: 'k' };
    const stream = a.node.watch(filter);
    const iterator = stream[Symbol.asyncIterator]();
    // Reads only the ready item, then nothing while the writes come.
    let readyId: string | undefined;
    for (;;) {
      const next = await sim.drive(iterator.next());
      if (next.done === true) throw new Error('the watch ended before it was ready');
      if (next.value.kind === 'ready') {
        readyId = next.value.id;
        break;
      }
    }
    const values = ['1', '2', '3', '4', '5', '6'];
    await writeChain(sim, [b, a], 'watched', 'k', values);
    await sim.clock.advance(3000);
    const rest: WatchItem[] = [];
    for (let next = await sim.drive(iterator.next()); next.done !== true; next = await sim.drive(iterator.next())) rest.push(next.value);
    expect(rest.map((item) => item.kind)).toEqual(['overflow']);
    expect(a.node.watches.count, 'the cut-off watcher no longer counts').toBe(0);
    const resumedStream = a.node.watch(filter, readyId);
    const resumed = collect(resumedStream);
    await sim.runUntil(() => resumed.writes().length >= values.length, 10_000, `the resumed watch gets every write (saw ${resumed.writes().join(',')})`);
    // Writes coordinated by different replicas arrive in no set order (README, "Watches").
    expect(resumed.writes().sort()).toEqual(values.map((value) => `k=${value}`));
    resumedStream.close();
    await sim.drive(resumed.done);
  });

  it.each(seeds)(
    'seed %i: a data type update is one event from the replica that applied it, with its dot and the state it left; plain watches never see it',
    async (seed) => {
      cluster = await SimCluster.start(seed, 3, config);
      const sim = cluster;
      const [a, b, c] = sim.members as [SimMember, SimMember, SimMember];
      const counter = collect(a.node.watch({ bucket: 'watched', kind: 'key', name: dataTypeKey('visits') }));
      const dataTypes = collect(b.node.watch({ bucket: 'watched', kind: 'prefix', name: dataTypeKey('') }));
      const plain = collect(c.node.watch({ bucket: 'watched', kind: 'prefix', name: '' }));
      const watches = [counter, dataTypes, plain];
      await sim.runUntil(() => watches.every((watch) => watch.items.some((item) => item.kind === 'ready')), 10_000, 'the watches are ready');
      const increments = [5, -2, 7, 1];
      for (const [index, increment] of increments.entries())
        await sim.drive(sim.members[index % 3]!.node.dataTypes.update('watched', 'visits', { type: 'counter', increment }, { w: 'all' }));
      await sim.drive(b.node.dataTypes.update('watched', 'members', { type: 'set', add: ['ann', 'bob'], remove: [] }, { w: 'all' }));
      const members = await sim.drive(c.node.dataTypes.read('watched', 'members', { r: 'all' }));
      const context = members?.type === 'set' ? decodeContext(members.context) : undefined;
      // A remove alone adds no element, and is an update of its own all the same.
      await sim.drive(c.node.dataTypes.update('watched', 'members', { type: 'set', add: [], remove: ['ann'], context }, { w: 'all' }));
      await sim.drive(
        a.node.put({ bucket: 'watched', key: 'visits', value: Buffer.from('plain'), contentType: 'text/plain', context: undefined, options: {} }),
      );
      const updates = (watch: Collected) => watch.items.flatMap((item) => (item.kind === 'write' && item.key.startsWith('\u0000') ? [item] : []));
      await sim.runUntil(
        () => updates(counter).length >= increments.length && updates(dataTypes).length >= increments.length + 2 && plain.writes().length >= 1,
        10_000,
        `every update arrives (saw ${updates(counter).length} on the key, ${updates(dataTypes).length} on the prefix, ${plain.writes().join(',')} plain)`,
      );
      await sim.clock.advance(3000);
      // Each update once, under its own dot, which the state it left holds.
      const dots = updates(counter).map((item) => `${item.dot.node}:${item.dot.counter}`);
      expect(new Set(dots).size, `seed ${seed}: each update has a dot of its own (${dots.join(' ')})`).toBe(increments.length);
      for (const item of updates(counter)) expect(item.object.clock[item.dot.node], `seed ${seed}: the state holds its dot`).toBe(item.dot.counter);
      expect(updates(counter).every((item) => item.key === dataTypeKey('visits'))).toBe(true);
      // With w all every update applied on a copy that held the ones before it, so the largest value is the sum.
      const values = updates(counter).map((item) => dataTypeValue(item.object));
      expect(values, `seed ${seed}`).toContainEqual({ type: 'counter', value: 11 });
      expect(
        updates(dataTypes)
          .map((item) => item.key)
          .sort(),
      ).toEqual([...increments.map(() => dataTypeKey('visits')), dataTypeKey('members'), dataTypeKey('members')].sort());
      const setUpdates = updates(dataTypes).filter((item) => item.key === dataTypeKey('members'));
      expect(new Set(setUpdates.map((item) => `${item.dot.node}:${item.dot.counter}`)).size, `seed ${seed}: the remove has a dot of its own`).toBe(2);
      expect(setUpdates.map((item) => dataTypeValue(item.object)?.value)).toContainEqual(['bob']);
      // The plain namespace's watch (a whole-bucket prefix) sees the plain key of the same name, never a data type.
      expect(plain.writes(), `seed ${seed}`).toEqual(['visits=plain']);
      expect(
        counter.writes().every((write) => write.startsWith(dataTypeKey('visits'))),
        'the key watch follows the data type alone',
      ).toBe(true);
      for (const watch of watches) expect(watch.items.some((item) => item.kind === 'compacted')).toBe(false);
    },
  );

  it('a node that stops ends the watches it serves, and its log answers no more polls', async () => {
    cluster = await SimCluster.start(3, 3, config);
    const sim = cluster;
    const [a, b] = sim.members as [SimMember, SimMember];
    const watch = collect(a.node.watch({ bucket: 'watched', kind: 'prefix', name: '' }));
    await sim.runUntil(() => watch.items.some((item) => item.kind === 'ready'), 10_000, 'the watch is ready');
    await sim.stopCleanly(a);
    await sim.drive(watch.done);
    expect(a.node.watches.count).toBe(0);
    await expect(
      a.node.watchLog.poll({
        type: 'watch-poll',
        filter: { bucket: 'watched', kind: 'key', name: 'k' },
        cursor: { epoch: a.node.watchLog.epoch, seq: 0 },
        waitMs: 1000,
        maxWrites: 10,
      }),
    ).rejects.toMatchObject({ code: 'KV_NOT_READY' });
    expect(b.node.watches.count).toBe(0);
  });

  it('refuses a watch past watch.maxWatchers with KV_OVERLOADED, and a malformed id with KV_BAD_REQUEST', async () => {
    cluster = await SimCluster.start(1, 3, { ...config, watch: { maxWatchers: 1 } });
    const [a] = cluster.members as [SimMember];
    const filter: WatchFilter = { bucket: 'watched', kind: 'key', name: 'k' };
    const stream = a.node.watch(filter);
    expect(() => a.node.watch(filter)).toThrow(expect.objectContaining({ code: 'KV_OVERLOADED' }));
    stream.close();
    expect(() => a.node.watch(filter, 'not!an!id')).toThrow(expect.objectContaining({ code: 'KV_BAD_REQUEST' }));
    a.node.watch(filter).close();
  });
});
