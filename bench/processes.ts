import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The server processes a bench run starts. Every one is registered here so that a normal end,
 * an error, Ctrl-C or SIGTERM all stop them: a benchmark that leaves a cluster running would
 * skew the next one and hold its ports.
 */

/** A server process started by the bench. */
export interface ServerProcess {
  readonly name: string;
  readonly child: ChildProcess;
  /** The last 20,000 characters of its stdout and stderr, for error messages. */
  output: string;
}

const running = new Set<ServerProcess>();
/** Data folders to remove when the run is interrupted (a normal end removes its own). */
const temporaryFolders = new Set<string>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // 'exit' handlers must be synchronous: a SIGKILL is all that can still be sent from there.
  process.on('exit', () => {
    for (const server of running) signalGroup(server.child.pid, 'SIGKILL');
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping ${running.size} server process(es)...\n`);
      void stopAll().finally(() => {
        for (const folder of temporaryFolders) rmSync(folder, { recursive: true, force: true });
        process.exit(130);
      });
    });
  }
}

/** A new folder under the system's temporary folder, removed on Ctrl-C too. */
export function temporaryFolder(prefix: string): string {
  installHandlers();
  const folder = mkdtempSync(join(tmpdir(), prefix));
  temporaryFolders.add(folder);
  return folder;
}

/** Removes a temporary folder now, or keeps it (and says where) when asked to. */
export function removeTemporaryFolder(folder: string, keep: boolean): void {
  temporaryFolders.delete(folder);
  if (keep) process.stderr.write(`data kept in ${folder}\n`);
  else rmSync(folder, { recursive: true, force: true });
}

/**
 * Sends `signal` to the process group that `pid` leads: a server and every process it started, as
 * a crash (kill -9) or a stall (SIGSTOP) of the machine would reach them. A ringkv node is a
 * supervisor and its shards: a signal to the supervisor alone does not reach them, and a shard
 * whose supervisor is gone shuts down cleanly, which is no crash. A group already gone is no error.
 */
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ESRCH') throw error;
  }
}

/** Starts a server process, leader of its own process group (see signalGroup), and registers it for cleanup. */
export function startServer(name: string, command: string, args: readonly string[], options: SpawnOptions = {}): ServerProcess {
  installHandlers();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...options });
  const server: ServerProcess = { name, child, output: '' };
  const keep = (chunk: Buffer): void => {
    server.output = (server.output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.on('error', (error) => keep(Buffer.from(`spawn error: ${error.message}\n`)));
  running.add(server);
  child.once('exit', () => running.delete(server));
  return server;
}

/** True while the process has not exited. */
export function isAlive(server: ServerProcess): boolean {
  return server.child.exitCode === null && server.child.signalCode === null;
}

/** SIGTERM (a clean close: ringkv and etcd flush and close their stores), then SIGKILL after `graceMs`. */
export async function stopServer(server: ServerProcess, graceMs = 10_000): Promise<void> {
  if (!isAlive(server)) {
    running.delete(server);
    return;
  }
  const exited = new Promise<void>((resolve) => server.child.once('exit', () => resolve()));
  server.child.kill('SIGTERM');
  const timer = setTimeout(() => signalGroup(server.child.pid, 'SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
  running.delete(server);
}

/** Stops every registered server. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((server) => stopServer(server)));
}

/**
 * A memory figure of /proc/PID/status: VmHWM is the peak resident set size, VmRSS the current one,
 * RssAnon the current anonymous part of it: the heap and buffers the process owns, without the
 * file-backed pages VmRSS also counts (the node executable's text, about 48 MiB shared by every
 * node process, and LevelDB's memory-mapped table files, which are the kernel's page cache and
 * given back under pressure).
 */
export type MemoryField = 'VmHWM' | 'VmRSS' | 'RssAnon';

/** A memory figure of a live process in bytes (/proc gives kB); undefined off Linux or once it exited. */
export function memoryBytes(pid: number | undefined, field: MemoryField): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * A live process and its descendants, parent before children (a sharded ringkv node: its
 * supervisor, then its shard processes), read from /proc's `children` files; [pid] where /proc
 * has none, [] for no pid.
 */
export function processTree(pid: number | undefined): number[] {
  if (pid === undefined) return [];
  const tree = [pid];
  // Bounded: a node has at most 64 shards, and nothing a bench starts nests deeper than two levels.
  for (let next = 0; next < tree.length && tree.length <= 256; next++) {
    const parent = tree[next] as number;
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').trim();
        if (children !== '') tree.push(...children.split(/\s+/).map(Number));
      } catch {
        // The task ended meanwhile.
      }
    }
  }
  return tree;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** The distance of a ringkv node's peer port from its HTTP port (the config's default peerPortOffset). */
export const peerPortOffset = 1000;

/** True when `port` can be bound on 127.0.0.1 right now. */
export async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * `count` distinct free ports, each with its peer port (port + peerPortOffset, where a ringkv
 * node on the framed peer transport listens too) free as well, and no port of the set equal to
 * another's peer port, so any of them can be given to a node.
 */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  const taken = new Set<number>();
  for (let attempt = 0; ports.length < count; attempt++) {
    if (attempt > 100 * count) throw new Error(`found only ${ports.length} of ${count} free ports whose port + ${peerPortOffset} is free too`);
    const port = await freePort();
    const peerPort = port + peerPortOffset;
    if (peerPort > 65_535 || taken.has(port) || taken.has(peerPort) || !(await portFree(peerPort))) continue;
    ports.push(port);
    taken.add(port).add(peerPort);
  }
  return ports;
}

/** Polls `condition` every 200 ms until it holds or `deadlineMs` passes, then throws naming `what`. */
export async function waitFor(what: string, deadlineMs: number, condition: () => Promise<boolean>, failFast?: () => string | undefined): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    const failure = failFast?.();
    if (failure !== undefined) throw new Error(`${what}: ${failure}`);
    try {
      if (await condition()) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
}

/** The ringkv package folder (holds package.json and bin/), found upwards from this file in bench/ or dist/bench/. */
export function packageRoot(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'package.json')) || !existsSync(join(folder, 'bin', 'ringkv.js'))) {
    const parent = dirname(folder);
    if (parent === folder) throw new Error('cannot find the ringkv package folder above the bench code');
    folder = parent;
  }
  return folder;
}
