/**
 * How classic-level behaves under ringkv's access pattern (many small reads and writes in
 * flight at once), outside any HTTP: one write per call against writes coalesced per event-loop
 * turn into one batch, and one read per call against getMany per turn and getSync. It prints
 * throughput, process CPU, and the time the main thread spends inside each call before the call
 * returns its promise: the profiles of ringkv and of the ceiling show that time as the largest
 * self time (classic-level `_get`/`_put`).
 *
 *   UV_THREADPOOL_SIZE=4 node dist/bench/leveldb-probe.js [--operations N] [--concurrency C]
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Level } from 'level';
import { ceilingLevelOptions } from './ceiling-server.js';
import { temporaryFolder } from './processes.js';
import { textTable } from './report.js';

/** What one access pattern gave. */
export interface ProbeResult {
  readonly pattern: string;
  readonly opsPerSecond: number;
  /** Process CPU (all threads) per operation. */
  readonly cpuMicrosPerOperation: number;
  /** Time on the main thread inside the call, before it returned its promise. */
  readonly callMicrosPerOperation: number;
}

type Database = Level<string, Buffer>;

async function measure(
  pattern: string,
  operations: number,
  concurrency: number,
  operation: (index: number) => { call: () => Promise<unknown> },
): Promise<ProbeResult> {
  let next = 0;
  let callMs = 0;
  const cpuBefore = process.cpuUsage();
  const startMs = performance.now();
  const worker = async (): Promise<void> => {
    while (next < operations) {
      const index = next++;
      const { call } = operation(index);
      const beforeMs = performance.now();
      const promise = call();
      callMs += performance.now() - beforeMs;
      await promise;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const elapsedMs = performance.now() - startMs;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    pattern,
    opsPerSecond: Math.round((operations * 1000) / elapsedMs),
    cpuMicrosPerOperation: Math.round(((cpu.user + cpu.system) / operations) * 10) / 10,
    callMicrosPerOperation: Math.round(((callMs * 1000) / operations) * 10) / 10,
  };
}

/** Puts that arrive in one event-loop turn go to LevelDB as one batch. */
function batchingWriter(db: Database): (key: string, value: Buffer) => Promise<void> {
  let pending: { key: string; value: Buffer; resolve: () => void; reject: (error: Error) => void }[] = [];
  const flush = (): void => {
    const writes = pending;
    pending = [];
    db.batch(writes.map((write) => ({ type: 'put' as const, key: write.key, value: write.value }))).then(
      () => writes.forEach((write) => write.resolve()),
      (error: Error) => writes.forEach((write) => write.reject(error)),
    );
  };
  return (key, value) =>
    new Promise<void>((resolve, reject) => {
      pending.push({ key, value, resolve, reject });
      if (pending.length === 1) setImmediate(flush);
    });
}

/** Gets that arrive in one event-loop turn go to LevelDB as one getMany. */
function batchingReader(db: Database): (key: string) => Promise<Buffer | undefined> {
  let pending: { key: string; resolve: (value: Buffer | undefined) => void; reject: (error: Error) => void }[] = [];
  const flush = (): void => {
    const reads = pending;
    pending = [];
    db.getMany(reads.map((read) => read.key)).then(
      (values) => reads.forEach((read, index) => read.resolve(values[index])),
      (error: Error) => reads.forEach((read) => read.reject(error)),
    );
  };
  return (key) =>
    new Promise((resolve, reject) => {
      pending.push({ key, resolve, reject });
      if (pending.length === 1) setImmediate(flush);
    });
}

/** Runs every access pattern on a fresh database with ringkv's LevelDB settings. */
export async function runProbe(operations: number, concurrency: number, keyCount = 10_000): Promise<ProbeResult[]> {
  const folder = temporaryFolder('ringkv-leveldb-probe-');
  const db: Database = new Level<string, Buffer>(join(folder, 'db'), { ...ceilingLevelOptions, keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  const value = Buffer.alloc(160, 7);
  const key = (index: number): string => `key${String((index * 7919) % keyCount).padStart(10, '0')}`;
  const results: ProbeResult[] = [];
  try {
    const batchedPut = batchingWriter(db);
    const batchedGet = batchingReader(db);
    results.push(await measure('put, one call each', operations, concurrency, (index) => ({ call: () => db.put(key(index), value) })));
    results.push(await measure('put, batched per event-loop turn', operations, concurrency, (index) => ({ call: () => batchedPut(key(index), value) })));
    results.push(await measure('get, one call each', operations, concurrency, (index) => ({ call: () => db.get(key(index)) })));
    results.push(await measure('get, getMany per event-loop turn', operations, concurrency, (index) => ({ call: () => batchedGet(key(index)) })));
    results.push(await measure('get, getSync (no thread pool)', operations, concurrency, (index) => ({ call: async () => db.getSync(key(index)) })));
  } finally {
    await db.close();
    rmSync(folder, { recursive: true, force: true });
  }
  return results;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const flag = (name: string, fallback: number): number => {
    const index = process.argv.indexOf(name);
    return index >= 0 ? Number(process.argv[index + 1]) : fallback;
  };
  const operations = flag('--operations', 200_000);
  const concurrency = flag('--concurrency', 64);
  const results = await runProbe(operations, concurrency);
  console.log(
    `classic-level, ${operations.toLocaleString('en-US')} operations, ${concurrency} in flight, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}\n`,
  );
  console.log(
    textTable(
      ['pattern', 'ops/s', 'CPU us/op', 'main-thread us/call'],
      results.map((result) => [
        result.pattern,
        result.opsPerSecond.toLocaleString('en-US'),
        result.cpuMicrosPerOperation.toFixed(1),
        result.callMicrosPerOperation.toFixed(1),
      ]),
    ),
  );
}
