/**
 * The cost of one replica message round trip on the framed peer transport (persistent
 * connections to FramedPeerServer). Both ends run in this one process, against a handler that
 * answers at once, over loopback, so the figures are the whole round trip's cost (encode, send,
 * decode, answer, and back) on one thread, free of any storage work: µs per round trip when
 * requests go one at a time, ops/s when many are in flight, and round trips per CPU-second of
 * this process. Compare builds by running this on each in turns, on the same machine.
 *
 *   npm run build && node dist/bench/peer-round-trip.js [--sequential 20000] [--concurrent 20000]
 *     [--concurrency 64] [--value-bytes 100] [--rounds 2]
 *
 * Results go to stdout as a markdown table and to bench/results/peer-round-trip-<time>.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FramedPeerServer } from '../src/adapters/framed-peer-server.js';
import { FramedTransport } from '../src/adapters/framed-transport.js';
import type { PeerReply, PeerRequest } from '../src/core/wire/messages.js';
import type { PeerHandler, Transport } from '../src/ports/transport.js';

const secret = 'peer-round-trip-bench-secret-0123';

interface ProbeOptions {
  readonly sequential: number;
  readonly concurrent: number;
  readonly concurrency: number;
  readonly valueBytes: number;
  readonly rounds: number;
}

/** One transport's figures for one way of loading it. */
interface Figures {
  readonly transport: string;
  readonly mode: 'sequential' | 'concurrent';
  readonly round: number;
  readonly requests: number;
  readonly opsPerSecond: number;
  readonly microsPerRoundTrip: number;
  readonly p50Micros: number;
  readonly p99Micros: number;
  readonly opsPerCpuSecond: number;
}

/** A running peer and the transport that talks to it. */
interface Subject {
  readonly name: string;
  readonly address: string;
  readonly transport: Transport;
  stop(): Promise<void>;
}

function parseOptions(argv: readonly string[]): ProbeOptions {
  const value = (flag: string, fallback: number): number => {
    const index = argv.indexOf(flag);
    if (index === -1) return fallback;
    const parsed = Number(argv[index + 1]);
    if (!Number.isInteger(parsed) || parsed < 1) throw new Error(`${flag} takes a positive integer, got '${argv[index + 1]}'`);
    return parsed;
  };
  return {
    sequential: value('--sequential', 20_000),
    concurrent: value('--concurrent', 20_000),
    concurrency: value('--concurrency', 64),
    valueBytes: value('--value-bytes', 100),
    rounds: value('--rounds', 2),
  };
}

/** What a replica answers to a replica-put, at once: the probe measures the transport, not storage. */
const answerAtOnce: PeerHandler = async (request) =>
  request.type === 'replica-put'
    ? { type: 'replica-put-reply', durable: request.sync }
    : { type: 'error', code: 'KV_BAD_REQUEST', message: `unexpected ${request.type}` };

async function framedSubject(): Promise<Subject> {
  const server = new FramedPeerServer({ handler: answerAtOnce, secret });
  const { port } = await server.listen('127.0.0.1', 0);
  const transport = new FramedTransport({ secret, peerPortOffset: 0 });
  return {
    name: 'framed',
    address: `127.0.0.1:${port}`,
    transport,
    stop: async () => {
      await transport.close();
      await server.close();
    },
  };
}

function replicaPut(index: number, value: Buffer): PeerRequest {
  return {
    type: 'replica-put',
    bucket: 'bench',
    key: `key-${index}`,
    object: {
      clock: { 'node-a': index + 1 },
      siblings: [
        { dot: { node: 'node-a', counter: index + 1 }, value, contentType: 'application/octet-stream', lastModifiedMs: 1_700_000_000_000, tombstone: false },
      ],
    },
    mode: 'siblings',
    sync: false,
  };
}

async function oneRoundTrip(subject: Subject, index: number, value: Buffer): Promise<void> {
  const reply: PeerReply = await subject.transport.request(subject.address, replicaPut(index, value), { timeoutMs: 10_000 });
  if (reply.type !== 'replica-put-reply') throw new Error(`${subject.name} answered ${JSON.stringify(reply)}`);
}

function percentile(sorted: readonly number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))] ?? 0;
}

/** `requests` round trips, `concurrency` at a time, each timed. */
async function load(subject: Subject, mode: Figures['mode'], round: number, requests: number, concurrency: number, value: Buffer): Promise<Figures> {
  const latenciesMicros: number[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < requests) {
      const index = next++;
      const started = process.hrtime.bigint();
      await oneRoundTrip(subject, index, value);
      latenciesMicros.push(Number(process.hrtime.bigint() - started) / 1000);
    }
  };
  const cpuBefore = process.cpuUsage();
  const startedAt = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  const elapsedSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  latenciesMicros.sort((left, right) => left - right);
  return {
    transport: subject.name,
    mode,
    round,
    requests,
    opsPerSecond: requests / elapsedSeconds,
    microsPerRoundTrip: (elapsedSeconds * 1e6) / requests,
    p50Micros: percentile(latenciesMicros, 0.5),
    p99Micros: percentile(latenciesMicros, 0.99),
    opsPerCpuSecond: requests / cpuSeconds,
  };
}

const number = (value: number, digits = 0): string => value.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

function table(figures: readonly Figures[]): string {
  const lines = [
    '| transport | mode | round | requests | ops/s | µs per round trip | p50 µs | p99 µs | round trips per CPU-s |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of figures) {
    lines.push(
      `| ${row.transport} | ${row.mode} | ${row.round} | ${number(row.requests)} | ${number(row.opsPerSecond)} | ${number(row.microsPerRoundTrip, 1)} | ${number(row.p50Micros, 1)} | ${number(row.p99Micros, 1)} | ${number(row.opsPerCpuSecond)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const value = Buffer.alloc(options.valueBytes, 120);
  const subjects = [await framedSubject()];
  const figures: Figures[] = [];
  try {
    // A warm-up: connections open, the JIT settles.
    for (const subject of subjects) await load(subject, 'sequential', 0, 2_000, 8, value);
    for (let round = 1; round <= options.rounds; round++) {
      for (const subject of subjects) {
        figures.push(await load(subject, 'sequential', round, options.sequential, 1, value));
        figures.push(await load(subject, 'concurrent', round, options.concurrent, options.concurrency, value));
      }
    }
  } finally {
    for (const subject of subjects) await subject.stop();
  }
  figures.sort((left, right) => left.mode.localeCompare(right.mode) || left.round - right.round || left.transport.localeCompare(right.transport));
  console.log(
    `replica-put round trips of a ${options.valueBytes}-byte value over loopback, both ends in one process (Node ${process.version}); concurrent = ${options.concurrency} in flight\n`,
  );
  console.log(table(figures));
  const folder = join(process.cwd(), 'bench', 'results');
  mkdirSync(folder, { recursive: true });
  const file = join(folder, `peer-round-trip-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ options, node: process.version, figures }, null, 2)}\n`);
  console.log(`\nwritten to ${file}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
