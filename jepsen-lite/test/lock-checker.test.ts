/**
 * Goal: the lock checker finds two holders at once and fencing tokens that do not grow in
 * acquisition order, on what the history proves (acknowledged acquires from their completion to
 * their release's invocation; unknown acquires from a read that saw their holder), and never
 * blames a history a correct lock could have produced: overlapping calls, unknown and failed
 * releases, refused acquires. A history with no acknowledged acquire or release tests nothing.
 */
import { describe, expect, it } from 'vitest';
import { type ReadResult, type RingClient, RingClientError, type WriteRequestOptions } from '../../src/client/ring-client.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { casRefusedError } from '../src/checkers/linearizable.js';
import { checkLock } from '../src/checkers/lock.js';
import { LockWorkload } from '../src/workloads/lock.js';
import { HistoryBuilder } from './history-builder.js';

const acquire = (
  history: HistoryBuilder,
  startMs: number,
  endMs: number,
  process: number,
  holder: number,
  outcome: 'ok' | 'fail' | 'info',
  token: number | null = null,
  key = 'lock0',
): HistoryBuilder =>
  history.op(
    startMs,
    endMs,
    { process, f: 'acquire', key, value: holder },
    outcome === 'ok'
      ? { type: 'ok', value: { holder, token } }
      : outcome === 'fail'
        ? { type: 'fail', error: 'precondition-failed' }
        : { type: 'info', error: 'timeout' },
  );
const release = (
  history: HistoryBuilder,
  startMs: number,
  endMs: number,
  process: number,
  holder: number,
  outcome: 'ok' | 'fail' | 'info',
  key = 'lock0',
): HistoryBuilder =>
  history.op(
    startMs,
    endMs,
    { process, f: 'release', key, value: holder },
    outcome === 'ok' ? { type: 'ok' } : outcome === 'fail' ? { type: 'fail', error: 'KV_INSUFFICIENT_REPLICAS (503)' } : { type: 'info', error: 'timeout' },
  );
const read = (
  history: HistoryBuilder,
  startMs: number,
  endMs: number,
  process: number,
  checking: number,
  holder: number | null,
  token: number | null,
  key = 'lock0',
): HistoryBuilder => history.op(startMs, endMs, { process, f: 'read', key, value: checking }, { type: 'ok', value: { holder, token } });

describe('the lock checker', () => {
  it('accepts holders one after another with growing tokens, and a refused acquire meanwhile', () => {
    const history = new HistoryBuilder();
    acquire(history, 0, 10, 0, 100, 'ok', 1);
    acquire(history, 5, 12, 1, 101, 'fail');
    release(history, 20, 30, 0, 100, 'ok');
    acquire(history, 25, 40, 1, 102, 'ok', 3);
    release(history, 50, 60, 1, 102, 'ok');
    expect(checkLock(history.operations)).toMatchObject({
      valid: true,
      acquired: 2,
      refused: 1,
      released: 2,
      overlaps: 0,
      tokenViolations: 0,
      tokenPairsChecked: 1,
    });
  });

  it('finds two holders at once: the second acquired before the first began to release', () => {
    const history = new HistoryBuilder();
    acquire(history, 0, 10, 0, 100, 'ok', 1);
    acquire(history, 12, 15, 1, 101, 'ok', 2);
    release(history, 20, 30, 0, 100, 'ok');
    release(history, 21, 31, 1, 101, 'ok');
    const result = checkLock(history.operations);
    expect(result).toMatchObject({ valid: false, overlaps: 1 });
    expect(result.overlapExamples[0]).toMatchObject({ first: { holder: 100 }, second: { holder: 101 } });
  });

  it('does not blame an acquire that completed while the previous release was under way', () => {
    const history = new HistoryBuilder();
    acquire(history, 0, 10, 0, 100, 'ok', 1);
    release(history, 20, 30, 0, 100, 'ok');
    acquire(history, 18, 25, 1, 101, 'ok', 3);
    release(history, 40, 41, 1, 101, 'ok');
    expect(checkLock(history.operations)).toMatchObject({ valid: true, overlaps: 0 });
  });

  it('counts a failed release as still held, and an unknown one as released no earlier than its invocation', () => {
    const failed = new HistoryBuilder();
    acquire(failed, 0, 10, 0, 100, 'ok', 1);
    release(failed, 20, 30, 0, 100, 'fail');
    acquire(failed, 35, 40, 1, 101, 'ok', 3);
    release(failed, 50, 60, 0, 100, 'ok');
    release(failed, 70, 80, 1, 101, 'ok');
    expect(checkLock(failed.operations)).toMatchObject({ valid: false, overlaps: 1 });

    const unknown = new HistoryBuilder();
    acquire(unknown, 0, 10, 0, 100, 'ok', 1);
    release(unknown, 20, 30, 0, 100, 'info');
    acquire(unknown, 35, 40, 11, 101, 'ok', 3);
    release(unknown, 50, 60, 11, 101, 'ok');
    expect(checkLock(unknown.operations)).toMatchObject({ valid: true, overlaps: 0 });
  });

  it('holds an unknown acquire to the read that saw its holder, and finds an overlap from there', () => {
    const history = new HistoryBuilder();
    acquire(history, 0, 10, 0, 100, 'info');
    read(history, 12, 14, 10, 100, 100, 1);
    acquire(history, 15, 20, 1, 101, 'ok', 2);
    release(history, 30, 31, 10, 100, 'ok');
    release(history, 32, 33, 1, 101, 'ok');
    expect(checkLock(history.operations)).toMatchObject({ valid: false, confirmedByRead: 1, overlaps: 1 });
    // Without that read, nothing proves the unknown acquire ever held the lock.
    const unseen = new HistoryBuilder();
    acquire(unseen, 0, 10, 0, 100, 'info');
    acquire(unseen, 15, 20, 1, 101, 'ok', 2);
    release(unseen, 32, 33, 1, 101, 'ok');
    expect(checkLock(unseen.operations)).toMatchObject({ valid: true, confirmedByRead: 0, overlaps: 0 });
  });

  it('finds a fencing token that went backwards, or repeated, between acquisitions in real-time order', () => {
    const backwards = new HistoryBuilder();
    acquire(backwards, 0, 10, 0, 100, 'ok', 5);
    release(backwards, 20, 30, 0, 100, 'ok');
    acquire(backwards, 40, 50, 1, 101, 'ok', 4);
    release(backwards, 60, 70, 1, 101, 'ok');
    expect(checkLock(backwards.operations)).toMatchObject({ valid: false, overlaps: 0, tokenViolations: 1 });

    const repeated = new HistoryBuilder();
    acquire(repeated, 0, 10, 0, 100, 'ok', 5);
    release(repeated, 20, 30, 0, 100, 'ok');
    acquire(repeated, 25, 50, 1, 101, 'ok', 5);
    release(repeated, 60, 70, 1, 101, 'ok');
    expect(checkLock(repeated.operations)).toMatchObject({ valid: false, overlaps: 0, tokenViolations: 1 });

    // Two acquires whose calls overlap may take effect in either order, but never with the same token.
    const concurrent = new HistoryBuilder();
    acquire(concurrent, 0, 10, 0, 100, 'ok', 5);
    acquire(concurrent, 5, 15, 1, 101, 'ok', 5);
    release(concurrent, 12, 13, 0, 100, 'ok');
    release(concurrent, 20, 21, 1, 101, 'ok');
    expect(checkLock(concurrent.operations)).toMatchObject({ valid: false, overlaps: 0, tokenPairsChecked: 0, tokenViolations: 1 });
  });

  it('judges each lock alone, and ignores tokens a plain bucket never sent', () => {
    const history = new HistoryBuilder();
    acquire(history, 0, 10, 0, 100, 'ok', null, 'a');
    acquire(history, 1, 11, 1, 101, 'ok', null, 'b');
    release(history, 20, 30, 0, 100, 'ok', 'a');
    release(history, 20, 30, 1, 101, 'ok', 'b');
    expect(checkLock(history.operations)).toMatchObject({ valid: true, locks: 2, tokenPairsChecked: 0 });
  });

  it('calls a history without an acknowledged acquire or release not tested', () => {
    const refusedOnly = new HistoryBuilder();
    acquire(refusedOnly, 0, 10, 0, 100, 'fail');
    expect(checkLock(refusedOnly.operations)).toMatchObject({ valid: false, nothingTested: 'nothing was tested: no acquire was acknowledged' });
    const neverReleased = new HistoryBuilder();
    acquire(neverReleased, 0, 10, 0, 100, 'ok', 1);
    expect(checkLock(neverReleased.operations)).toMatchObject({ valid: false, nothingTested: 'nothing was tested: no release was acknowledged' });
  });

  it('on a consistent bucket, calls a run that compared no two fencing tokens not tested', () => {
    const history = new HistoryBuilder();
    acquire(history, 0, 10, 0, 100, 'ok');
    release(history, 20, 30, 0, 100, 'ok');
    acquire(history, 40, 50, 1, 101, 'ok');
    release(history, 60, 70, 1, 101, 'ok');
    expect(checkLock(history.operations)).toMatchObject({ valid: true });
    expect(checkLock(history.operations, { fencingTokens: true })).toMatchObject({
      valid: false,
      nothingTested: expect.stringContaining('fencing token') as unknown,
    });
  });
});

describe('the lock workload', () => {
  /** A client whose put answers as `putAnswer` says, whose get returns `read`, and which records deletes. */
  function fakeClient(putAnswer: () => Promise<unknown>, read?: ReadResult): { client: RingClient; puts: unknown[]; deletes: WriteRequestOptions[] } {
    const puts: unknown[] = [];
    const deletes: WriteRequestOptions[] = [];
    const client = {
      put: async (_bucket: string, _key: string, _value: string, options: unknown) => {
        puts.push(options);
        return putAnswer();
      },
      get: async () => read,
      delete: async (_bucket: string, _key: string, options: WriteRequestOptions) => {
        deletes.push(options);
        return { context: '' };
      },
    } as unknown as RingClient;
    return { client, puts, deletes };
  }

  it("acquires with If-None-Match: *, records the holder and the fencing token, then releases with its write's context", async () => {
    const workload = new LockWorkload({ keyCount: 2, concurrency: 2, consistent: true });
    const random = new SeededRandom(1);
    const { client, puts, deletes } = fakeClient(async () => ({ context: 'write-context', version: 7 }));
    const first = workload.plan(0, random);
    expect(first).toMatchObject({ f: 'acquire', value: 0 });
    expect(await workload.perform(client, 'n1', first, 0)).toEqual({ type: 'ok', value: { holder: 0, token: 7 } });
    expect(puts[0]).toMatchObject({ ifNoneMatch: true });
    const second = workload.plan(0, random);
    expect(second).toMatchObject({ f: 'release', key: first.key, value: 0 });
    expect(await workload.perform(client, 'n1', second, 0)).toEqual({ type: 'ok' });
    expect(deletes[0]).toMatchObject({ ifMatch: 'write-context' });
    expect(workload.plan(0, random)).toMatchObject({ f: 'acquire', value: 2 });
  });

  it('after a refused acquire tries another; after an unknown one reads the lock and releases it when it shows its own holder id', async () => {
    const workload = new LockWorkload({ keyCount: 1, concurrency: 1, consistent: true });
    const random = new SeededRandom(2);
    const refused = fakeClient(async () => Promise.reject(new RingClientError('KV_PRECONDITION_FAILED: held', 412, 'KV_PRECONDITION_FAILED', 'failed')));
    expect(await workload.perform(refused.client, 'n1', workload.plan(0, random), 0)).toEqual({ type: 'fail', error: casRefusedError });
    expect(workload.plan(0, random)).toMatchObject({ f: 'acquire', value: 1 });

    const mine: ReadResult = {
      found: true,
      context: 'read-context',
      siblings: [{ value: Buffer.from('2'), contentType: 'application/json', lastModified: '' }],
    };
    const timedOut = fakeClient(async () => Promise.reject(new RingClientError('KV_TIMEOUT: unknown', 504, 'KV_TIMEOUT', 'unknown')), mine);
    expect(await workload.perform(timedOut.client, 'n1', workload.plan(0, random), 0)).toMatchObject({ type: 'info' });
    const check = workload.plan(0, random);
    expect(check).toMatchObject({ f: 'read', value: 2 });
    expect(await workload.perform(timedOut.client, 'n1', check, 0)).toEqual({ type: 'ok', value: { holder: 2, token: null } });
    const release = workload.plan(0, random);
    expect(release).toMatchObject({ f: 'release', value: 2 });
    await workload.perform(timedOut.client, 'n1', release, 0);
    expect(timedOut.deletes[0]).toMatchObject({ ifMatch: 'read-context' });
  });

  it('on a plain bucket releases with the context; after a refused release (412) no longer counts itself the holder', async () => {
    const plain = new LockWorkload({ keyCount: 1, concurrency: 1, consistent: false });
    const random = new SeededRandom(4);
    const { client, deletes } = fakeClient(async () => ({ context: 'write-context' }));
    await plain.perform(client, 'n1', plain.plan(0, random), 0);
    await plain.perform(client, 'n1', plain.plan(0, random), 0);
    expect(deletes[0]).toMatchObject({ context: 'write-context' });
    expect(deletes[0]?.ifMatch).toBeUndefined();

    const consistent = new LockWorkload({ keyCount: 1, concurrency: 1, consistent: true });
    const refusing = {
      put: async () => ({ context: '7', version: 7 }),
      delete: async () => Promise.reject(new RingClientError('KV_PRECONDITION_FAILED: version 9', 412, 'KV_PRECONDITION_FAILED', 'failed')),
    } as unknown as RingClient;
    await consistent.perform(refusing, 'n1', consistent.plan(0, random), 0);
    const release = consistent.plan(0, random);
    expect(await consistent.perform(refusing, 'n1', release, 0)).toEqual({ type: 'fail', error: casRefusedError });
    expect(consistent.plan(0, random)).toMatchObject({ f: 'acquire' });
  });
});
