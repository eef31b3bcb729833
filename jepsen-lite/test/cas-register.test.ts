/**
 * Goal: the cas-register workload records what the server promised, so the linearizability
 * checker is sound on its histories: a cas is recorded as cas(from -> to) where `from` is what the
 * worker's own last read of the key returned and the PUT carried that read's context as If-Match
 * (If-None-Match: * when it found nothing); a 412 is a refused cas, a 503 on a consistent bucket
 * did nothing, a 504 is unknown; several siblings are recorded as a list the register model never
 * accepts. The cas-register checker also needs an acknowledged cas, and counts the final reads.
 */
import { describe, expect, it } from 'vitest';
import { type PutRequestOptions, type ReadResult, type RingClient, RingClientError } from '../../src/client/ring-client.js';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { checkRun } from '../src/checkers/check-run.js';
import { casRefusedError, checkCasRegister } from '../src/checkers/linearizable.js';
import { parseRunOptions } from '../src/cli-options.js';
import { CasRegisterWorkload, consistentWriteFailure, plainWriteFailure, registerReadOf } from '../src/workloads/cas-register.js';
import type { PlannedOperation } from '../src/workloads/workload.js';
import { HistoryBuilder } from './history-builder.js';

const sibling = (value: number): ReadResult['siblings'][number] => ({
  value: Buffer.from(JSON.stringify(value)),
  contentType: 'application/json',
  lastModified: '',
});

/** A client that answers reads from `reads` and records every put with its options. */
function fakeClient(reads: ReadResult[], putError?: unknown): { client: RingClient; puts: { key: string; value: string; options: PutRequestOptions }[] } {
  const puts: { key: string; value: string; options: PutRequestOptions }[] = [];
  const client = {
    // The last read given is answered again and again.
    get: async (): Promise<ReadResult> => (reads.length > 1 ? reads.shift() : reads[0]) as ReadResult,
    put: async (_bucket: string, key: string, value: string, options: PutRequestOptions) => {
      puts.push({ key, value, options });
      if (putError !== undefined) throw putError;
      return { context: 'write-context' };
    },
  } as unknown as RingClient;
  return { client, puts };
}

/** Plans operations for worker 0 until one with function `f` comes up; reads planned on the way are performed (writes make the worker forget its read). */
async function planUntil(workload: CasRegisterWorkload, random: SeededRandom, f: string, client?: RingClient): Promise<PlannedOperation> {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const operation = workload.plan(0, random);
    if (operation.f === f) return operation;
    if (operation.f === 'read' && client !== undefined) await workload.perform(client, 'n1', operation, 0);
  }
  throw new Error(`no ${f} planned in 1000 draws`);
}

describe('the cas-register workload', () => {
  it("sends a cas as If-Match with the context of the worker's last read of that key, recorded as [value read, fresh value]", async () => {
    const workload = new CasRegisterWorkload({ keyCount: 1, concurrency: 4, consistent: true });
    const random = new SeededRandom(7);
    const { client, puts } = fakeClient([{ found: true, context: 'read-context', siblings: [sibling(41)] }]);
    const read = await planUntil(workload, random, 'read');
    expect(await workload.perform(client, 'n1', read, 0)).toEqual({ type: 'ok', value: 41 });
    const cas = await planUntil(workload, random, 'cas', client);
    const [from, to] = cas.value as [number, number];
    expect(from).toBe(41);
    expect(await workload.perform(client, 'n1', cas, 0)).toEqual({ type: 'ok' });
    expect(puts).toEqual([{ key: 'cr0', value: JSON.stringify(to), options: expect.objectContaining({ ifMatch: 'read-context' }) as unknown }]);
    expect(puts[0]?.options.ifNoneMatch).toBeUndefined();
    // The read is used once: another cas needs another read first.
    for (let draw = 0; draw < 50; draw++) expect(workload.plan(0, random).f).not.toBe('cas');
  });

  it('sends a cas from a read that found nothing as If-None-Match: *, recorded as [null, fresh value]', async () => {
    const workload = new CasRegisterWorkload({ keyCount: 1, concurrency: 4, consistent: true });
    const random = new SeededRandom(3);
    const { client, puts } = fakeClient([{ found: false, context: undefined, siblings: [] }]);
    await workload.perform(client, 'n1', await planUntil(workload, random, 'read'), 0);
    const cas = await planUntil(workload, random, 'cas', client);
    expect((cas.value as unknown[])[0]).toBeNull();
    await workload.perform(client, 'n1', cas, 0);
    expect(puts[0]?.options).toMatchObject({ ifNoneMatch: true });
    expect(puts[0]?.options.ifMatch).toBeUndefined();
  });

  it('plans writes and cas values that are unique across workers', () => {
    const workload = new CasRegisterWorkload({ keyCount: 2, concurrency: 3, consistent: false });
    const values = new Set<number>();
    let writes = 0;
    for (let worker = 0; worker < 3; worker++) {
      const random = new SeededRandom(worker);
      for (let draw = 0; draw < 200; draw++) {
        const operation = workload.plan(worker, random);
        if (operation.f === 'write') {
          values.add(operation.value as number);
          writes += 1;
          // A plain bucket is read and written with one replica.
          expect(operation.w).toBe(1);
        }
      }
    }
    expect(values.size).toBe(writes);
  });

  it('records a read of several siblings as their values, which no register state matches', () => {
    expect(registerReadOf([])).toBeNull();
    expect(registerReadOf([sibling(3)])).toBe(3);
    expect(registerReadOf([sibling(9), sibling(3)])).toEqual([3, 9]);
    const history = new HistoryBuilder()
      .op(0, 1, { process: 0, f: 'write', key: 'k', value: 3 }, { type: 'ok' })
      .op(0, 1, { process: 1, f: 'write', key: 'k', value: 9 }, { type: 'ok' })
      .op(2, 3, { process: 0, f: 'read', key: 'k' }, { type: 'ok', value: [3, 9] })
      .op(4, 5, { process: 0, f: 'cas', key: 'k', value: [9, 11] }, { type: 'ok' });
    expect(checkCasRegister(history.operations)).toMatchObject({ valid: false, verdict: 'invalid' });
  });

  it("turns 412 into a refused cas, 503 on a consistent bucket into fail, 504 into info; on a plain bucket a 503 is the client's call", () => {
    const error = (status: number, code: string, outcome: 'failed' | 'unknown'): RingClientError => new RingClientError(code, status, code, outcome);
    expect(consistentWriteFailure(error(412, 'KV_PRECONDITION_FAILED', 'failed'))).toMatchObject({ type: 'fail', error: casRefusedError });
    expect(consistentWriteFailure(error(503, 'KV_INSUFFICIENT_REPLICAS', 'unknown'))).toMatchObject({ type: 'fail' });
    expect(consistentWriteFailure(error(504, 'KV_TIMEOUT', 'unknown'))).toMatchObject({ type: 'info' });
    expect(plainWriteFailure(error(412, 'KV_PRECONDITION_FAILED', 'failed'))).toMatchObject({ type: 'fail', error: casRefusedError });
    expect(plainWriteFailure(error(503, 'KV_INSUFFICIENT_REPLICAS', 'unknown'))).toMatchObject({ type: 'info' });
  });

  it('records a cas the server refused as a refused cas, for the checker to place', async () => {
    const workload = new CasRegisterWorkload({ keyCount: 1, concurrency: 1, consistent: true });
    const random = new SeededRandom(11);
    const refused = new RingClientError('KV_PRECONDITION_FAILED: the version moved', 412, 'KV_PRECONDITION_FAILED', 'failed');
    const { client } = fakeClient([{ found: true, context: 'c', siblings: [sibling(5)] }], refused);
    await workload.perform(client, 'n1', await planUntil(workload, random, 'read'), 0);
    expect(await workload.perform(client, 'n1', await planUntil(workload, random, 'cas', client), 0)).toEqual({ type: 'fail', error: casRefusedError });
  });
});

describe('the cas-register checker', () => {
  it('needs an acknowledged cas, and counts cas outcomes', () => {
    const history = new HistoryBuilder()
      .op(0, 1, { process: 0, f: 'write', key: 'k', value: 1 }, { type: 'ok' })
      .op(2, 3, { process: 0, f: 'read', key: 'k' }, { type: 'ok', value: 1 })
      .op(4, 5, { process: 0, f: 'cas', key: 'k', value: [7, 2] }, { type: 'fail', error: casRefusedError })
      .op(6, 7, { process: 1, f: 'cas', key: 'k', value: [1, 3] }, { type: 'info', error: 'timeout' });
    expect(checkCasRegister(history.operations)).toMatchObject({
      valid: false,
      verdict: 'valid',
      nothingTested: 'nothing was tested: no compare-and-set was acknowledged',
      casOk: 0,
      casRefused: 1,
      casUnknown: 1,
    });
    history.op(8, 9, { process: 2, f: 'cas', key: 'k', value: [3, 4] }, { type: 'ok' });
    expect(checkCasRegister(history.operations)).toMatchObject({ valid: true, verdict: 'valid', casOk: 1 });
  });

  it('holds the final reads after healing to the register too', () => {
    const history = new HistoryBuilder()
      .op(0, 1, { process: 0, f: 'write', key: 'k', value: 1 }, { type: 'ok' })
      .op(2, 3, { process: 0, f: 'read', key: 'k' }, { type: 'ok', value: 1 })
      .op(4, 5, { process: 0, f: 'cas', key: 'k', value: [1, 2] }, { type: 'ok' })
      .finalRead(10, 'k', 1);
    expect(checkCasRegister(history.operations)).toMatchObject({ valid: false, verdict: 'invalid' });
  });
});

describe('--bucket', () => {
  it('defaults to consistent for cas-register, plain for the rest, and refuses consistent elsewhere', () => {
    expect(parseRunOptions(['--workload', 'cas-register'])).toMatchObject({ bucketMode: 'consistent' });
    expect(parseRunOptions(['--workload', 'cas-register', '--bucket', 'plain'])).toMatchObject({ bucketMode: 'plain' });
    expect(parseRunOptions(['--workload', 'set'])).toMatchObject({ bucketMode: 'plain' });
    expect(() => parseRunOptions(['--workload', 'set', '--bucket', 'consistent'])).toThrow(/--bucket consistent is for the cas-register/);
  });
});

describe('a run of cas-register or lock', () => {
  it('is invalid when nothing was acknowledged, whatever the bucket', () => {
    for (const workload of ['cas-register', 'lock'] as const) {
      for (const bucketMode of ['consistent', 'plain'] as const) {
        const verdict = checkRun(workload, [], { replicas: 3, recoveryMs: 1000, bucketMode });
        expect(verdict.valid, `${workload} ${bucketMode}`).toBe(false);
        expect(verdict.workload.nothingTested, workload).toMatch(/^nothing was tested: no (write|acquire)/);
      }
    }
  });
});
