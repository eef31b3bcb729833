/**
 * Goal: the watch checker finds a watcher that missed an acknowledged write made while it
 * watched, saw one twice or out of order, or reported a value nobody acknowledged for that
 * version; it excuses what a `compacted` covers and writes made before the watcher was ready,
 * and a history in which the watchers saw no write tests nothing.
 */
import { describe, expect, it } from 'vitest';
import { checkWatch } from '../src/checkers/watch.js';
import type { RingClient, WatchEvent } from '../../src/client/ring-client.js';
import { HistoryRecorder } from '../src/history.js';
import { type WatchRecord, WatchWorkload } from '../src/workloads/watch.js';
import { HistoryBuilder } from './history-builder.js';

const write = (
  history: HistoryBuilder,
  startMs: number,
  process: number,
  key: string,
  value: number,
  version: number | null,
  outcome: 'ok' | 'fail' | 'info' = 'ok',
): HistoryBuilder =>
  history.op(
    startMs,
    startMs + 5,
    { process, f: 'write', key, value },
    outcome === 'ok' ? { type: 'ok', value: { value, version } } : { type: outcome, error: outcome === 'fail' ? 'KV_INSUFFICIENT_REPLICAS (503)' : 'timeout' },
  );
const event = (history: HistoryBuilder, timeMs: number, watcher: number, record: WatchRecord): HistoryBuilder =>
  history.at(timeMs, { type: 'ok', process: `watch-${watcher}`, f: 'watch-event', ...(record.key === undefined ? {} : { key: record.key }), value: record });
const start = (history: HistoryBuilder, timeMs: number, watcher: number, target: { key?: string; prefix?: string }): HistoryBuilder =>
  history
    .at(timeMs, { type: 'ok', process: `watch-${watcher}`, f: 'watch-start', value: target })
    .at(timeMs + 1, { type: 'ok', process: `watch-${watcher}`, f: 'watch-event', value: { event: 'ready' } });
const put = (key: string, version: number, value: number): WatchRecord => ({ event: 'put', key, version, value });

/** Two writes of k, a watcher on k and one on the prefix, each seeing both; final version 2. */
function valid(): HistoryBuilder {
  const history = new HistoryBuilder();
  start(history, 0, 0, { key: 'k' });
  start(history, 0, 1, { prefix: 'k' });
  write(history, 10, 0, 'k', 100, 1);
  write(history, 20, 1, 'k', 101, 2);
  event(history, 16, 0, put('k', 1, 100));
  event(history, 17, 1, put('k', 1, 100));
  event(history, 26, 0, put('k', 2, 101));
  event(history, 27, 1, put('k', 2, 101));
  return history.finalRead(40, 'k', { version: 2, value: 101 });
}

describe('the watch checker', () => {
  it('accepts watchers that saw every acknowledged write once, in order, with its value', () => {
    expect(checkWatch(valid().build())).toMatchObject({ valid: true, watchers: 2, events: 4, acknowledged: 2, required: 4, missed: 0 });
  });

  it('finds a missed acknowledged write, and one a compacted for the key (or a node) excuses', () => {
    const history = valid();
    write(history, 30, 0, 'k', 102, 3);
    event(history, 37, 1, put('k', 3, 102));
    const missed = checkWatch(history.finalRead(41, 'k', { version: 3, value: 102 }).build());
    expect(missed).toMatchObject({ valid: false, missed: 1 });
    expect(missed.examples[0]).toContain('watch-0 k: acknowledged version 3');
    const byNode = new HistoryBuilder();
    byNode.operations.push(...history.operations);
    event(history, 38, 0, { event: 'compacted', nodes: [], key: 'k', missing: { from: 3, to: 3 } });
    expect(checkWatch(history.build())).toMatchObject({ valid: true, missed: 0, excused: 1 });
    // A node's lost log excuses the newest version, not one the watcher later went past.
    event(byNode, 38, 0, { event: 'compacted', nodes: ['n1'] });
    expect(checkWatch(byNode.build())).toMatchObject({ valid: true, missed: 0, excused: 1 });
    write(byNode, 50, 0, 'k', 103, 4);
    event(byNode, 56, 0, put('k', 4, 103));
    event(byNode, 57, 1, put('k', 4, 103));
    expect(checkWatch(byNode.finalRead(60, 'k', { version: 4, value: 103 }).build())).toMatchObject({ valid: false, missed: 1 });
  });

  it('finds a version reported twice, or after a newer one', () => {
    const history = valid();
    event(history, 30, 0, put('k', 2, 101));
    expect(checkWatch(history.build())).toMatchObject({ valid: false, duplicatesOrReordered: 1 });
  });

  it('finds a value other than the acknowledged one, and the value of a write that did not happen', () => {
    const wrong = valid();
    event(wrong, 30, 1, put('k', 3, 100));
    expect(checkWatch(wrong.build())).toMatchObject({ valid: false, wrongValues: 1 });
    const failed = valid();
    write(failed, 30, 0, 'k', 102, null, 'fail');
    event(failed, 36, 1, put('k', 3, 102));
    expect(checkWatch(failed.build())).toMatchObject({ valid: false, wrongValues: 1 });
  });

  it('does not require a write made before the watcher was ready, and finds a watcher short of the final read', () => {
    const history = new HistoryBuilder();
    write(history, 0, 0, 'k', 100, 1);
    start(history, 10, 0, { key: 'k' });
    write(history, 20, 0, 'k', 101, 2);
    event(history, 26, 0, put('k', 2, 101));
    expect(checkWatch(history.finalRead(40, 'k', { version: 2, value: 101 }).build())).toMatchObject({ valid: true, required: 1 });
    expect(checkWatch(history.finalRead(41, 'k', { version: 3, value: 102 }).build())).toMatchObject({ valid: false, shortAtEnd: 1 });
  });

  it('calls a history whose watchers saw no write untested (invalid)', () => {
    const history = new HistoryBuilder();
    start(history, 0, 0, { key: 'k' });
    write(history, 10, 0, 'k', 100, 1);
    const result = checkWatch(history.build());
    expect(result.valid).toBe(false);
    expect(result.nothingTested).toContain('no write event');
  });
});

describe('the watch workload records a watcher ready at its ready event', () => {
  it('a write that arrives before the ready event (from the nodes that answered first) does not stand in for it', async () => {
    const workload = new WatchWorkload({ keyCount: 1, concurrency: 1, seed: 1, dataTypes: false });
    const history = new HistoryRecorder();
    let served = 0;
    // A client whose every watch yields a put before its ready, then a put after it, then waits to be stopped.
    const client = {
      async *watch(_bucket: string, _target: unknown, options: { signal?: AbortSignal }): AsyncGenerator<WatchEvent, void, undefined> {
        served += 1;
        const put = (version: number): WatchEvent => ({
          type: 'put',
          id: `id-${served}-${version}`,
          bucket: 'b',
          key: 'key0',
          value: Buffer.from(String(version)),
          contentType: 'application/json',
          context: String(version),
          version,
        });
        yield put(served * 2 - 1);
        yield { type: 'ready', id: `id-${served}-ready` };
        yield put(served * 2);
        await new Promise<void>((resolve) => (options.signal?.aborted === true ? resolve() : options.signal?.addEventListener('abort', () => resolve())));
      },
    } as unknown as RingClient;
    const watchers = workload.startWatchers(client, ['node'], history);
    await new Promise((resolve) => setTimeout(resolve, 50));
    await watchers.stop(new Map(), 0);
    const events = history.operations.filter((operation) => operation.process === 'watch-0' && operation.f === 'watch-event');
    expect(events.map((operation) => (operation.value as WatchRecord).event)).toEqual(['put', 'ready', 'put']);
  });
});
