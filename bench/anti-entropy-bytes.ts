/**
 * How many bytes a Merkle anti-entropy sweep exchanges, as a function of the keys stored and the
 * keys that differ. Two replicas of a 256-partition ring hold the same keys, plus some keys only
 * one of them has; one full sweep runs and the bytes of every exchange message are counted.
 *
 *   npm run build && node dist/bench/anti-entropy-bytes.js [--stored 1,1000000] [--differing 1,1000]
 *
 * Results go to stdout as a table and to bench/results/anti-entropy-bytes-<time>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MemoryStorage } from '../src/sim/memory-storage.js';
import { systemClock } from '../src/adapters/system-clock.js';
import { encodeDataKey } from '../src/core/keys.js';
import { createRing } from '../src/core/ring/ring.js';
import { encodeObject } from '../src/core/versioning/object-codec.js';
import type { VersionedObject } from '../src/core/versioning/versioned-object.js';
import type { PeerReply, PeerRequest } from '../src/core/wire/messages.js';
import { AntiEntropy, type AntiEntropyRequest } from '../src/engine/anti-entropy.js';
import { Replica } from '../src/engine/replica.js';
import { SeededRandom } from '../src/sim/seeded-random.js';
import { silentLogger } from '../src/ports/logger.js';

const ring = createRing(256, ['replica-a', 'replica-b']);
const properties = { nVal: 2, r: 'quorum', w: 'quorum', conflictMode: 'siblings' } as const;

interface SweepFigures {
  readonly stored: number;
  readonly differing: number;
  readonly bytesExchanged: number;
  readonly keysRepaired: number;
  readonly sweepMs: number;
}

function objectFor(index: number): VersionedObject {
  return {
    clock: { 'replica-a.1': index + 1 },
    siblings: [
      {
        dot: { node: 'replica-a.1', counter: index + 1 },
        value: Buffer.alloc(100, 120),
        contentType: 'application/octet-stream',
        lastModifiedMs: 1_700_000_000_000,
        tombstone: false,
      },
    ],
  };
}

/** One replica: memory storage, its replica and its anti-entropy, talking to the other directly. */
async function replica(name: string, peer: () => AntiEntropy): Promise<{ storage: MemoryStorage; antiEntropy: AntiEntropy }> {
  const storage = new MemoryStorage();
  await storage.open();
  const local = new Replica(storage, name, new SeededRandom(1));
  const send = async (_node: string, request: PeerRequest): Promise<PeerReply> => {
    if (request.type.startsWith('ae-')) return peer().handleMessage(request as AntiEntropyRequest);
    throw new Error(`unexpected ${request.type}`);
  };
  const antiEntropy = new AntiEntropy({
    selfId: name,
    data: storage.data,
    meta: storage.meta,
    replica: local,
    clock: systemClock,
    logger: silentLogger,
    settings: {
      enabled: false,
      intervalMs: 3_600_000,
      fullCompareIntervalMs: 3_600_000,
      tombstoneGraceMs: 86_400_000,
      reapedRetentionMs: 30 * 86_400_000,
      maxKeysPerSecond: 10_000_000,
      peerTimeoutMs: 10_000,
      maxPageBytes: 4 * 1024 * 1024,
    },
    ring: () => ring,
    isUp: () => true,
    send,
    bucketProperties: () => properties,
    nVals: () => [2],
  });
  local.onChange((dataKey, before, after, object) => antiEntropy.track(dataKey, before, after, object));
  return { storage, antiEntropy };
}

/** Writes keys straight into storage in large batches (then the trees are built from a scan, as on start). */
async function preload(storage: MemoryStorage, prefix: string, count: number): Promise<void> {
  for (let start = 0; start < count; start += 10_000) {
    const operations = [];
    for (let index = start; index < Math.min(count, start + 10_000); index++) {
      operations.push({ type: 'put' as const, key: encodeDataKey('bench', `${prefix}-${index}`), value: encodeObject(objectFor(index)) });
    }
    await storage.data.batch(operations);
  }
}

async function measure(stored: number, differing: number): Promise<SweepFigures> {
  let second: AntiEntropy | undefined;
  const first = await replica('replica-a', () => second as AntiEntropy);
  const other = await replica('replica-b', () => first.antiEntropy);
  second = other.antiEntropy;
  await preload(first.storage, 'same', stored);
  await preload(other.storage, 'same', stored);
  await preload(first.storage, 'only-a', differing);
  await first.antiEntropy.build(ring.partitionCount);
  await other.antiEntropy.build(ring.partitionCount);
  await first.antiEntropy.treesReady();
  await other.antiEntropy.treesReady();
  const started = performance.now();
  await first.antiEntropy.sweep();
  const sweepMs = performance.now() - started;
  const figures = first.antiEntropy.status();
  const repaired = other.antiEntropy.status().keysRepaired;
  if (repaired !== differing) throw new Error(`expected ${differing} keys repaired, got ${repaired}`);
  await first.storage.close();
  await other.storage.close();
  return { stored, differing, bytesExchanged: figures.bytesExchanged, keysRepaired: repaired, sweepMs };
}

function listOption(name: string, fallback: number[]): number[] {
  const index = process.argv.indexOf(name);
  if (index < 0) return fallback;
  return (process.argv[index + 1] ?? '')
    .split(',')
    .map(Number)
    .filter((value) => Number.isInteger(value) && value >= 0);
}

const storedCounts = listOption('--stored', [1, 1_000_000]);
const differingCounts = listOption('--differing', [1, 1000]);
const rows: SweepFigures[] = [];
for (const stored of storedCounts) {
  for (const differing of differingCounts) {
    process.stdout.write(`measuring ${stored} keys stored, ${differing} differing...\n`);
    rows.push(await measure(stored, differing));
  }
}
console.log('\nanti-entropy: one full sweep of 256 partitions between two replicas (100-byte values)\n');
console.log('keys stored  keys differing  bytes exchanged  bytes per differing key  sweep ms');
for (const row of rows) {
  console.log(
    `${String(row.stored).padStart(11)}  ${String(row.differing).padStart(14)}  ${String(row.bytesExchanged).padStart(15)}  ${String(Math.round(row.bytesExchanged / Math.max(1, row.differing))).padStart(23)}  ${row.sweepMs.toFixed(0).padStart(8)}`,
  );
}
const folder = join(process.cwd(), 'bench', 'results');
mkdirSync(folder, { recursive: true });
const file = join(folder, `anti-entropy-bytes-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify({ partitions: ring.partitionCount, valueBytes: 100, rows }, null, 2));
console.log(`\nwritten to ${file}`);
