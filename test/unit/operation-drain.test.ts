import { describe, expect, it } from 'vitest';
import { OperationDrain } from '../../src/engine/operation-drain.js';
import { KvError, isKvError } from '../../src/util/errors.js';

/**
 * Goal (docs/CONSENSUS.md, "Watches"): a leaving node's drain refuses every operation started
 * after `close` and resolves only once every operation under way has settled, whether it
 * succeeded or failed, so nothing the node does is reported after it is marked left.
 */

const refusal = () => new KvError('KV_NOT_READY', 'closed', { details: { applied: 'no' } });

/** A promise and the functions that settle it. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((yes, no) => {
    resolve = yes;
    reject = no;
  });
  return { promise, resolve, reject };
}

describe('OperationDrain', () => {
  it('close waits for every operation under way, a failed one too, and refuses later ones', async () => {
    const drain = new OperationDrain(refusal);
    const first = deferred();
    const second = deferred();
    const running = [drain.run(async () => first.promise), drain.run(async () => second.promise).catch(() => 'failed')];
    let closed = false;
    const closing = drain.close().then(() => {
      closed = true;
    });
    const refused = await drain
      .run(async () => 'ran')
      .catch((error: unknown) => (isKvError(error) ? `${error.code} ${String(error.details?.applied)}` : 'other'));
    expect(refused).toBe('KV_NOT_READY no');
    first.resolve();
    await running[0];
    await Promise.resolve();
    expect(closed, 'one operation is still under way').toBe(false);
    second.reject(new Error('timed out'));
    await Promise.all([...running, closing]);
    expect(closed).toBe(true);
  });

  it('close with nothing under way resolves at once, and stays closed', async () => {
    const drain = new OperationDrain(refusal);
    expect(await drain.run(async () => 'ran')).toBe('ran');
    await drain.close();
    await expect(drain.run(async () => 'ran')).rejects.toThrow('closed');
  });
});
