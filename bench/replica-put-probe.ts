/**
 * The replica write path on LevelDB, outside any HTTP or peer traffic: `concurrency` writers
 * each doing Replica.coordinateWrite (read, merge, store with its bucket index entry) of uniform
 * keys, lww, 100-byte values, after a prefill. Prints ops/s and process CPU per write, for
 * comparing builds of the storage and replica code.
 *
 *   node dist/bench/replica-put-probe.js [--operations N] [--concurrency C] [--keys K] [--sync] [--cache-bytes B]
 *
 * --cache-bytes is the replica's object cache (storage.objectCacheBytes; default 0, off): with it
 * a write to a cached key skips its LevelDB read.
 */
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { LevelStorage } from '../src/adapters/level-storage.js';
import { emptyContext } from '../src/core/versioning/context.js';
import { Replica } from '../src/engine/replica.js';
import { SeededRandom } from '../src/sim/seeded-random.js';
import { temporaryFolder } from './processes.js';

const { values } = parseArgs({
  options: {
    operations: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '64' },
    keys: { type: 'string', default: '10000' },
    sync: { type: 'boolean', default: false },
    'cache-bytes': { type: 'string', default: '0' },
  },
});
const operations = Number(values.operations);
const concurrency = Number(values.concurrency);
const keys = Number(values.keys);

const folder = temporaryFolder('replica-put-probe');
const storage = new LevelStorage({
  location: join(folder, 'db'),
  writeBufferSizeBytes: 4 * 1_048_576,
  blockCacheSizeBytes: 8 * 1_048_576,
  maxFileSizeBytes: 2 * 1_048_576,
  compression: true,
});
await storage.open();
const cacheBytes = Number(values['cache-bytes']);
const replica = new Replica(storage, 'probe', new SeededRandom(1), undefined, undefined, cacheBytes);
// Counts the replica's reads of the data space: a write to a cached key makes none.
let dataReads = 0;
const readOfStorage = storage.data.get.bind(storage.data);
Object.assign(storage.data, {
  get: async (key: Uint8Array) => {
    dataReads += 1;
    return readOfStorage(key);
  },
});
const value = randomBytes(100);
const write = (index: number): Promise<unknown> =>
  replica.coordinateWrite(
    'bench',
    `key-${index % keys}`,
    { value, contentType: 'application/octet-stream', tombstone: false, context: emptyContext, nowMs: Date.now() },
    'lww',
    values.sync === true,
  );

async function run(count: number, pick: (index: number) => number): Promise<{ opsPerSecond: number; cpuMicros: number; readsPerWrite: number }> {
  let next = 0;
  const readsBefore = dataReads;
  const cpuBefore = process.cpuUsage();
  const startMs = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await write(pick(next++));
    }),
  );
  const elapsedMs = performance.now() - startMs;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    opsPerSecond: Math.round((count * 1000) / elapsedMs),
    cpuMicros: Math.round(((cpu.user + cpu.system) / count) * 10) / 10,
    readsPerWrite: (dataReads - readsBefore) / count,
  };
}

await run(keys, (index) => index);
const result = await run(operations, () => Math.floor(Math.random() * keys));
console.log(
  `replica put: ${result.opsPerSecond} ops/s, ${result.cpuMicros} µs CPU per write, ${Math.round(1e6 / result.cpuMicros)} writes per CPU-s, ${result.readsPerWrite.toFixed(2)} data reads per write (${operations} writes, ${concurrency} writers, ${keys} keys${values.sync === true ? ', sync' : ''}, object cache ${cacheBytes} bytes)`,
);
await storage.close();
rmSync(folder, { recursive: true, force: true });
