import type { Clock, TimerHandle } from '../ports/clock.js';
import type { FaultPoints } from '../ports/fault-points.js';
import type { BatchOperation, KeyRange, KeySpace, SpaceBatchOperation, Storage, WriteOptions } from '../ports/storage.js';
import type { Transport } from '../ports/transport.js';
import { KvError } from '../util/errors.js';

/**
 * The ports a node's roles see, with the seeded fault points of src/ports/fault-points.ts at
 * their named places (FoundationDB's BUGGIFY). With production's `noFaultPoints` each wrapper
 * only forwards: no fault point fires, so no write, message or timer is held up.
 */

/** Runs `work` now, or after `delayMs` of the node's clock when a fault holds it up. */
function after<T>(clock: Clock, delayMs: number, work: () => Promise<T>): Promise<T> {
  return delayMs === 0 ? work() : clock.sleep(delayMs).then(work);
}

/** A key space whose writes pass the `storage-write` fault point (a slow disk); reads are as they are. */
function slowWritesOf(space: KeySpace, faults: FaultPoints, clock: Clock): KeySpace {
  const slow = <T>(write: () => Promise<T>): Promise<T> => after(clock, faults.delayMs('storage-write'), write);
  return {
    get: (key) => space.get(key),
    getMany: (keys) => space.getMany(keys),
    entries: (range?: KeyRange) => space.entries(range),
    put: (key: Uint8Array, value: Uint8Array, options?: WriteOptions) => slow(() => space.put(key, value, options)),
    del: (key: Uint8Array, options?: WriteOptions) => slow(() => space.del(key, options)),
    batch: (operations: readonly BatchOperation[], options?: WriteOptions) => slow(() => space.batch(operations, options)),
    clearRange: (range: KeyRange) => slow(() => space.clearRange(range)),
  };
}

/** The node's storage, every write of it through the `storage-write` fault point. */
export function storageWithFaults(storage: Storage, faults: FaultPoints, clock: Clock): Storage {
  return {
    data: slowWritesOf(storage.data, faults, clock),
    hints: slowWritesOf(storage.hints, faults, clock),
    meta: slowWritesOf(storage.meta, faults, clock),
    paxos: slowWritesOf(storage.paxos, faults, clock),
    write: (operations: readonly SpaceBatchOperation[], options?: WriteOptions) =>
      after(clock, faults.delayMs('storage-write'), () => storage.write(operations, options)),
    open: () => storage.open(),
    close: () => storage.close(),
    stats: () => storage.stats(),
    compactRange: (start?: Uint8Array, end?: Uint8Array) => storage.compactRange(start, end),
  };
}

/**
 * The node's transport, every request through `peer-request-drop` (the request is lost) and
 * `peer-request-delay` (it leaves late). Either way the sender gives up at its timeout, as over
 * a real network, while a late request may still reach the peer and take effect after that.
 */
export function transportWithFaults(transport: Transport, faults: FaultPoints, clock: Clock): Transport {
  return {
    request: (target, message, options) => {
      const dropped = faults.fires('peer-request-drop');
      const delayMs = dropped ? 0 : faults.delayMs('peer-request-delay');
      if (!dropped && delayMs === 0) return transport.request(target, message, options);
      return new Promise((resolve, reject) => {
        const timeout = clock.setTimer(options.timeoutMs, () =>
          reject(new KvError('KV_TIMEOUT', `peer ${target} did not answer within ${options.timeoutMs} ms`)),
        );
        if (dropped) return;
        clock
          .sleep(delayMs)
          .then(() => transport.request(target, message, options))
          .then(
            (reply) => {
              timeout.cancel();
              resolve(reply);
            },
            (error: unknown) => {
              timeout.cancel();
              reject(error as Error);
            },
          );
      });
    },
    close: () => transport.close(),
  };
}

/** The node's clock, every timer and sleep through the `timer` fault point (it fires late, as on a starved event loop). */
export function clockWithFaults(clock: Clock, faults: FaultPoints): Clock {
  return {
    nowMs: () => clock.nowMs(),
    setTimer: (delayMs: number, callback: () => void): TimerHandle => clock.setTimer(delayMs + faults.delayMs('timer'), callback),
    sleep: (delayMs: number) => clock.sleep(delayMs + faults.delayMs('timer')),
  };
}
