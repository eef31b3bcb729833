/**
 * The ttl workload: workers write fresh keys with short ttls (2 to 6 s), each once, and read keys
 * back as they age, before, around and after their expiry, at one, quorum or all; writes go at
 * one, quorum or all too. The checker (src/checkers/ttl.ts) judges that no read returns a value
 * past its expiry (with the clock allowance the history gives) and that an acknowledged value
 * is not lost before it expires.
 */
import type { RingClient, StoredValue } from '../../../src/client/ring-client.js';
import type { Random } from '../../../src/ports/random.js';
import { clockChangeLagMs } from '../checkers/ttl.js';
import { type Completion, type PlannedOperation, type Workload, quorumOf, readFailure, siblingIntegers, writeFailure } from './workload.js';

/** Settings of the ttl workload. */
export interface TtlWorkloadOptions {
  readonly concurrency: number;
  /** Replicas per key, to turn consistency levels into r and w. */
  readonly replicas: number;
  /** Keys written at most over the run, so the final reads stay bounded. */
  readonly maxKeys?: number;
  /** The shortest and longest ttl a write gets, in whole seconds. */
  readonly ttlRangeSeconds?: { readonly min: number; readonly max: number };
  /** Share of operations that write a fresh key. */
  readonly writeFraction?: number;
  /** The workload's clock, to know how old a key is when choosing one to read (default performance.now). */
  readonly nowMs?: () => number;
}

interface WrittenKey {
  readonly key: string;
  readonly plannedMs: number;
}

/** The ttl workload. */
export class TtlWorkload implements Workload {
  readonly name = 'ttl';
  readonly bucket = 'jepsen-ttl';
  private readonly written: WrittenKey[] = [];
  private readonly writesByWorker = new Map<number, number>();
  private readonly maxKeys: number;
  private readonly ttlRange: { readonly min: number; readonly max: number };
  private readonly writeFraction: number;
  private readonly nowMs: () => number;

  constructor(private readonly options: TtlWorkloadOptions) {
    this.maxKeys = options.maxKeys ?? 5000;
    this.ttlRange = options.ttlRangeSeconds ?? { min: 2, max: 6 };
    this.writeFraction = options.writeFraction ?? 0.25;
    this.nowMs = options.nowMs ?? (() => performance.now());
  }

  /**
   * The final reads come once every value has certainly expired: a write stamped at the latest
   * at healing (a request held by a paused node is taken when it resumes), by a clock at most
   * `maxClockAheadMs` ahead that libfaketime may still show for clockChangeLagMs, plus the
   * longest ttl and a second. Then every final read must find nothing, whatever the clocks did.
   */
  finalReadDelayMs(maxClockAheadMs: number): number {
    return this.ttlRange.max * 1000 + maxClockAheadMs + clockChangeLagMs + 1000;
  }

  private level(random: Random, quorumShare: number): { quorum: number; level: 'one' | 'quorum' | 'all' } {
    const draw = random.next();
    const rest = (1 - quorumShare) / 2;
    const level = draw < quorumShare ? 'quorum' : draw < quorumShare + rest ? 'one' : 'all';
    return { level, quorum: quorumOf(level, this.options.replicas) };
  }

  /** A key among those planned in the last `withinMs`, or undefined when there is none. */
  private recentKey(random: Random, withinMs: number): string | undefined {
    const since = this.nowMs() - withinMs;
    // `written` is in planning order: find the first recent one by binary search.
    let low = 0;
    let high = this.written.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if ((this.written[middle] as WrittenKey).plannedMs < since) low = middle + 1;
      else high = middle;
    }
    if (low >= this.written.length) return undefined;
    return (this.written[low + random.int(this.written.length - low)] as WrittenKey).key;
  }

  /** A write of a fresh key with a random ttl, or a read of a recent key: half of them among the youngest (likely live), half among those up to the longest ttl + 8 s old. */
  plan(worker: number, random: Random): PlannedOperation {
    const writeDraw = random.next();
    const young = random.next() < 0.5;
    const pick = this.recentKey(random, young ? 1500 : this.ttlRange.max * 1000 + 8000);
    if (pick !== undefined && (writeDraw >= this.writeFraction || this.written.length >= this.maxKeys)) {
      const { quorum, level } = this.level(random, 0.5);
      return { f: 'read', key: pick, r: quorum, ...(random.next() < 0.5 ? { consistency: level } : {}) };
    }
    if (this.written.length >= this.maxKeys) return { f: 'read', key: (this.written[random.int(this.written.length)] as WrittenKey).key };
    const count = this.writesByWorker.get(worker) ?? 0;
    this.writesByWorker.set(worker, count + 1);
    const key = `t${worker}-${count}`;
    this.written.push({ key, plannedMs: this.nowMs() });
    const ttlSeconds = this.ttlRange.min + random.int(this.ttlRange.max - this.ttlRange.min + 1);
    return { f: 'write', key, value: { element: worker + count * this.options.concurrency, ttlSeconds }, w: this.level(random, 0.7).quorum };
  }

  async perform(client: RingClient, node: string, operation: PlannedOperation): Promise<Completion> {
    if (operation.f === 'read') {
      try {
        const read = await client.get(this.bucket, operation.key, {
          node,
          ...(operation.consistency !== undefined ? { consistency: operation.consistency } : operation.r === undefined ? {} : { r: operation.r }),
        });
        return { type: 'ok', value: siblingIntegers(read.siblings) };
      } catch (error) {
        return readFailure(error);
      }
    }
    const value = operation.value as { element: number; ttlSeconds: number };
    try {
      await client.put(this.bucket, operation.key, JSON.stringify(value.element), {
        node,
        contentType: 'application/json',
        ttlSeconds: value.ttlSeconds,
        ...(operation.w === undefined ? {} : { w: operation.w }),
      });
      return { type: 'ok' };
    } catch (error) {
      return writeFailure(error);
    }
  }

  finalKeys(): string[] {
    return this.written.map((entry) => entry.key).sort();
  }

  decode(siblings: readonly StoredValue[]): unknown {
    return siblingIntegers(siblings);
  }
}
