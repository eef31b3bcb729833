/**
 * One node's whole /kv request path in one process, without sockets: a one-node ringkv (n_val 1,
 * lww, LevelDB, its production engine and fastify app) driven through fastify's `inject` by
 * `concurrency` callers, each sending its next request when its last one answered. Prints the
 * process CPU per PUT and per GET (µs), so two builds can be compared on what ringkv's own code
 * costs per request: the load generator, the kernel's socket work and the closed loop's batching,
 * which swing a networked bench run by 10% or more on a shared machine, are not in it.
 *
 *   node dist/bench/request-probe.js [--operations N] [--concurrency C] [--keys K] [--rounds R]
 *
 * Each round runs N PUTs then N GETs of uniform keys (100-byte values) after a prefill of the
 * key space; the CPU of a round's requests is the main thread's (ringkv's code, fastify, V8's GC)
 * and the whole process's (`process.cpuUsage()`, which adds LevelDB's threads) around them.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { LevelStorage } from '../src/adapters/level-storage.js';
import { FramedTransport } from '../src/adapters/framed-transport.js';
import { systemClock } from '../src/adapters/system-clock.js';
import { noFaultPoints } from '../src/ports/fault-points.js';
import type { Random } from '../src/ports/random.js';
import { RingNode } from '../src/engine/ring-node.js';
import { buildApp } from '../src/http/app.js';
import { loadConfig, loadIdentity } from '../src/main.js';
import { temporaryFolder } from './processes.js';

const { values } = parseArgs({
  options: {
    operations: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '64' },
    keys: { type: 'string', default: '10000' },
    rounds: { type: 'string', default: '1' },
  },
});
const operations = Number(values.operations);
const concurrency = Number(values.concurrency);
const keys = Number(values.keys);
const rounds = Number(values.rounds);

const folder = temporaryFolder('request-probe');
const mathRandom: Random = { next: () => Math.random(), int: (bound) => Math.floor(Math.random() * bound) };
const config = loadConfig({ port: 24_490, host: '127.0.0.1', data: folder }, {});
const probeConfig = { ...config, bucketDefaults: { ...config.bucketDefaults, nVal: 1, conflictMode: 'lww' as const } };
const storage = new LevelStorage({ location: join(folder, 'leveldb'), ...probeConfig.storage });
await storage.open();
const identity = await loadIdentity(storage, probeConfig);
const transport = new FramedTransport({ secret: identity.clusterSecret, peerDialOverrides: {}, peerPortOffset: probeConfig.peerPortOffset });
const silent = { level: 'silent', debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const node = await RingNode.open({
  identity,
  config: probeConfig,
  storage,
  transport,
  clock: systemClock,
  random: mathRandom,
  logger: silent as never,
  faultPoints: noFaultPoints,
});
await node.start();
const app = await buildApp({ service: node, config: probeConfig, logger: false });
await app.ready();

// The node bootstraps its one-member ring on start; wait until it serves.
for (let attempt = 0; ; attempt++) {
  const answer = await app.inject({ method: 'PUT', url: '/kv/bench/ready', payload: 'x' });
  if (answer.statusCode === 204) break;
  if (attempt > 200) throw new Error(`the probe's node did not take a write: ${answer.statusCode} ${answer.body}`);
  await new Promise((resolve) => setTimeout(resolve, 50));
}

const value = randomBytes(100);
let next = 0;
async function run(count: number, send: (key: string) => Promise<number>, expected: number): Promise<void> {
  let failures = 0;
  let issued = 0;
  const caller = async (): Promise<void> => {
    while (issued < count) {
      issued += 1;
      const status = await send(`key-${Math.floor(Math.random() * keys)}`);
      if (status !== expected) failures += 1;
      next += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  if (failures > 0) throw new Error(`${failures} of ${count} requests did not answer ${expected}`);
}
const put = async (key: string): Promise<number> =>
  (await app.inject({ method: 'PUT', url: `/kv/bench/${key}`, payload: value, headers: { 'content-type': 'application/octet-stream' } })).statusCode;
const get = async (key: string): Promise<number> => (await app.inject({ method: 'GET', url: `/kv/bench/${key}` })).statusCode;

// Prefill: every key written once, so each GET finds its key.
for (let index = 0; index < keys; index += concurrency) {
  await Promise.all(Array.from({ length: Math.min(concurrency, keys - index) }, async (_, offset) => put(`key-${index + offset}`)));
}

const microseconds = (usage: NodeJS.CpuUsage): number => usage.user + usage.system;
/**
 * The main thread's CPU in µs (utime + stime of /proc/self/task/PID/stat, in clock ticks of 10 ms):
 * where ringkv's JavaScript runs, without LevelDB's background compaction, whose timing swings
 * the whole process's figure from round to round.
 */
function mainThreadMicroseconds(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}
for (let round = 1; round <= rounds; round++) {
  const figures: string[] = [];
  for (const [name, send, expected] of [
    ['put', put, 204],
    ['get', get, 200],
  ] as const) {
    const before = process.cpuUsage();
    const mainBefore = mainThreadMicroseconds();
    await run(operations, send, expected);
    const processPerOp = microseconds(process.cpuUsage(before)) / operations;
    const mainPerOp = (mainThreadMicroseconds() - mainBefore) / operations;
    figures.push(`${name} ${mainPerOp.toFixed(1)} µs main thread (${processPerOp.toFixed(1)} process) per op`);
  }
  process.stdout.write(`round ${round}: ${figures.join(', ')} (${operations} each, ${concurrency} callers, ${keys} keys)\n`);
}

await app.close();
await node.stop();
await transport.close();
await storage.close();
rmSync(folder, { recursive: true, force: true });
