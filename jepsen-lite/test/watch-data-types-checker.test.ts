/**
 * Goal: the checker of data type watches (the `watch` workload on a plain bucket) finds a watcher
 * that missed an applied counter update or received one dot twice, across its reconnections; it
 * excuses what a `compacted` for the update's node covers and updates invoked before the watcher
 * was ready, finds an acknowledged update lost or more dots than updates, and a history in which
 * the watchers received no update tests nothing.
 */
import { describe, expect, it } from 'vitest';
import type { RingClient, WatchEvent, WatchOptions } from '../../src/client/ring-client.js';
import { checkWatchDataTypes } from '../src/checkers/watch-data-types.js';
import { HistoryRecorder } from '../src/history.js';
import { type WatchRecord, WatchWorkload } from '../src/workloads/watch.js';
import { HistoryBuilder } from './history-builder.js';

const increment = (history: HistoryBuilder, startMs: number, process: number, key: string, outcome: 'ok' | 'fail' | 'info' = 'ok'): HistoryBuilder =>
  history.op(
    startMs,
    startMs + 5,
    { process, f: 'increment', key, value: 1 },
    outcome === 'ok' ? { type: 'ok' } : { type: outcome, error: outcome === 'fail' ? 'KV_INSUFFICIENT_REPLICAS (503)' : 'timeout' },
  );
const event = (history: HistoryBuilder, timeMs: number, watcher: number, record: WatchRecord): HistoryBuilder =>
  history.at(timeMs, { type: 'ok', process: `watch-${watcher}`, f: 'watch-event', ...(record.key === undefined ? {} : { key: record.key }), value: record });
const start = (history: HistoryBuilder, timeMs: number, watcher: number, target: { key?: string; prefix?: string }): HistoryBuilder =>
  history
    .at(timeMs, { type: 'ok', process: `watch-${watcher}`, f: 'watch-start', value: target })
    .at(timeMs + 1, { type: 'ok', process: `watch-${watcher}`, f: 'watch-event', value: { event: 'ready' } });
const update = (key: string, dot: string, value: number): WatchRecord => ({ event: 'update', key, value, dot });
const final = (history: HistoryBuilder, timeMs: number, key: string, total: number): HistoryBuilder =>
  history.finalRead(timeMs, key, { version: total, value: total });

/** Three increments of c0 (two on n1, one on n2), seen by a watcher of c0 and one of the prefix c; final value 3. */
function valid(): HistoryBuilder {
  const history = new HistoryBuilder();
  start(history, 0, 0, { key: 'c0' });
  start(history, 0, 1, { prefix: 'c' });
  increment(history, 10, 0, 'c0');
  increment(history, 20, 1, 'c0');
  increment(history, 30, 2, 'c0');
  for (const watcher of [0, 1]) {
    event(history, 16 + watcher, watcher, update('c0', 'n1.abc.1:1', 1));
    event(history, 26 + watcher, watcher, update('c0', 'n2.def.1:1', 2));
    event(history, 36 + watcher, watcher, update('c0', 'n1.abc.1:2', 3));
  }
  return history;
}

describe('the checker of data type watches', () => {
  it('accepts watchers that received every applied update once', () => {
    expect(checkWatchDataTypes(final(valid(), 50, 'c0', 3).build())).toMatchObject({
      valid: true,
      watchers: 2,
      events: 6,
      acknowledged: 3,
      applied: 3,
      required: 6,
      missed: 0,
      duplicates: 0,
    });
  });

  it('finds an update a watcher missed, and excuses it when the watcher was told compacted for its node', () => {
    const history = valid();
    increment(history, 40, 3, 'c0');
    event(history, 47, 1, update('c0', 'n2.def.1:2', 4));
    const missed = checkWatchDataTypes(final(history, 50, 'c0', 4).build());
    expect(missed).toMatchObject({ valid: false, missed: 1 });
    expect(missed.examples[0]).toContain('watch-0 c0: 3 distinct dots of 4 updates applied');
    expect(missed.examples[0]).toContain('n2.def.1:2');
    // A compacted for another node excuses nothing; one for n2 excuses the miss.
    const otherNode = new HistoryBuilder();
    otherNode.operations.push(...history.operations);
    event(otherNode, 48, 0, { event: 'compacted', nodes: ['n1'] });
    expect(checkWatchDataTypes(final(otherNode, 50, 'c0', 4).build())).toMatchObject({ valid: false, missed: 1 });
    event(history, 48, 0, { event: 'compacted', nodes: ['n2'] });
    expect(checkWatchDataTypes(final(history, 50, 'c0', 4).build())).toMatchObject({ valid: true, missed: 0, excused: 1 });
  });

  it('finds an applied update no watcher received, unless each was told compacted', () => {
    const history = valid();
    increment(history, 40, 3, 'c0');
    const missed = checkWatchDataTypes(final(history, 50, 'c0', 4).build());
    expect(missed).toMatchObject({ valid: false, missed: 2 });
    expect(missed.examples[0]).toContain('no watcher received them');
    event(history, 48, 0, { event: 'compacted', nodes: ['n3'] });
    event(history, 48, 1, { event: 'compacted', nodes: ['n3'] });
    expect(checkWatchDataTypes(final(history, 50, 'c0', 4).build())).toMatchObject({ valid: true, excused: 2 });
  });

  it('finds a gap in an actor’s dots that no watcher received, excused only by a compacted for its node', () => {
    // n1's dots 1 and 3 arrive, so n1:2 was an update too: a compacted for another node does not cover it.
    const history = valid();
    increment(history, 40, 3, 'c0');
    increment(history, 41, 4, 'c0', 'info');
    for (const watcher of [0, 1]) {
      event(history, 46 + watcher, watcher, update('c0', 'n1.abc.1:4', 4));
      event(history, 48, watcher, { event: 'compacted', nodes: ['n2'] });
    }
    const missed = checkWatchDataTypes(final(history, 50, 'c0', 5).build());
    expect(missed).toMatchObject({ valid: false, missed: 2, extraDots: 0 });
    expect(missed.examples[0]).toContain('n1.abc.1:3');
    for (const watcher of [0, 1]) event(history, 49, watcher, { event: 'compacted', nodes: ['n1'] });
    expect(checkWatchDataTypes(final(history, 50, 'c0', 5).build())).toMatchObject({ valid: true, excused: 2 });
    // Dots that skip counters are more updates than the counter holds.
    expect(checkWatchDataTypes(final(history, 50, 'c0', 4).build())).toMatchObject({ valid: false, extraDots: 1 });
  });

  it('finds a dot received twice (as after a resume that replayed it)', () => {
    const history = valid();
    event(history, 45, 0, update('c0', 'n2.def.1:1', 2));
    const twice = checkWatchDataTypes(final(history, 50, 'c0', 3).build());
    expect(twice).toMatchObject({ valid: false, duplicates: 1 });
    expect(twice.examples[0]).toContain('watch-0 c0: 1 dots received twice, e.g. n2.def.1:1');
  });

  it('finds an acknowledged update lost, and more distinct dots than updates applied', () => {
    expect(checkWatchDataTypes(final(valid(), 50, 'c0', 2).build())).toMatchObject({ valid: false, lostOrPhantom: 1, extraDots: 1 });
  });

  it('does not require updates invoked before the watcher was ready, and counts unknown ones that were applied', () => {
    const history = new HistoryBuilder();
    increment(history, 0, 0, 'c0');
    start(history, 10, 0, { key: 'c0' });
    increment(history, 20, 1, 'c0', 'info');
    increment(history, 30, 2, 'c0', 'fail');
    event(history, 27, 0, update('c0', 'n1.abc.1:2', 2));
    expect(checkWatchDataTypes(final(history, 50, 'c0', 2).build())).toMatchObject({ valid: true, required: 1, unknown: 1 });
  });

  it('calls a history whose watchers received no update untested (invalid)', () => {
    const history = new HistoryBuilder();
    start(history, 0, 0, { key: 'c0' });
    increment(history, 10, 0, 'c0');
    const result = checkWatchDataTypes(final(history, 50, 'c0', 1).build());
    expect(result.valid).toBe(false);
    expect(result.nothingTested).toContain('no update event');
  });
});

describe('the watch workload on a plain bucket', () => {
  it('watches the counters with dataTypes and records each update with its dot', async () => {
    const workload = new WatchWorkload({ keyCount: 1, concurrency: 1, seed: 1, dataTypes: true });
    const history = new HistoryRecorder();
    const asked: boolean[] = [];
    // A client whose watch answers ready and one update, then waits to be stopped.
    const client = {
      async *watch(_bucket: string, _target: unknown, options: WatchOptions): AsyncGenerator<WatchEvent, void, undefined> {
        asked.push(options.dataTypes === true);
        yield { type: 'ready', id: 'id-ready' };
        yield { type: 'update', id: 'id-1', bucket: 'b', key: 'c0', dataType: 'counter', value: 7, dot: { node: 'n1.abc.1', counter: 3 } };
        await new Promise<void>((resolve) => (options.signal?.aborted === true ? resolve() : options.signal?.addEventListener('abort', () => resolve())));
      },
    } as unknown as RingClient;
    expect(workload.finalKeys()).toEqual(['c0']);
    const watchers = workload.startWatchers(client, ['node'], history);
    await watchers.stop(new Map([['c0', 1]]), 10_000);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((dataTypes) => dataTypes)).toBe(true);
    const updates = history.operations.filter((operation) => operation.f === 'watch-event' && (operation.value as WatchRecord).event === 'update');
    expect(updates.map((operation) => operation.value)).toContainEqual({ event: 'update', key: 'c0', value: 7, dot: 'n1.abc.1:3' });
  });
});
