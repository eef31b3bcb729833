/**
 * Real ringkv node processes on 127.0.0.1 for integration tests. They need the build
 * (`npm test` runs tsc first). Tests wait for conditions with deadlines, never for fixed times.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { freePorts } from '../../bench/processes.js';

const script = join(import.meta.dirname, '..', '..', 'bin', 'ringkv.js');

/**
 * The deadline of a poll on real processes: generous, because a poll's deadline only has to
 * catch a hung process; it is never a claim about speed (a loaded CI machine is many times slower).
 */
export const pollDeadlineMs = 5 * 60_000;

/** The vitest timeout of a test or hook on real processes: finite, so a hung test still ends, and far above any honest run. */
export const processTestTimeoutMs = 20 * 60_000;

/** A running (or stopped) node process. */
export interface NodeProcess {
  readonly port: number;
  readonly address: string;
  readonly dataDir: string;
  child: ChildProcess | undefined;
  output: string;
}

// Free ports are found by binding port 0 and closing again (bench's runs need the same): another
// process could take one before the node binds it, but that is far rarer than two suites sharing a fixed port.
import { freePort, portFree, signalGroup } from '../../bench/processes.js';
export { freePort, freePorts, portFree } from '../../bench/processes.js';

/** A port p for a node of two shards: p + 1 (shard 1's member address) and both peer ports (p + 1000, p + 1001) free as well. */
export async function shardPorts(): Promise<number> {
  const peerPortOffset = 1000;
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await freePort();
    const others = [port + 1, port + peerPortOffset, port + peerPortOffset + 1];
    if (port + peerPortOffset + 1 <= 65_535 && (await Promise.all(others.map(portFree))).every(Boolean)) return port;
  }
  throw new Error('found no port p with p + 1, p + 1000 and p + 1001 free in 50 attempts');
}

/** A temporary folder, removed by the returned function. */
export function temporaryFolder(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/** Starts `ringkv start` as a child process. */
export function startNode(port: number, dataDir: string, options: { seeds?: string[]; env?: Record<string, string>; extraArgs?: string[] } = {}): NodeProcess {
  const node: NodeProcess = { port, address: `127.0.0.1:${port}`, dataDir, child: undefined, output: '' };
  launch(node, options);
  return node;
}

function launch(node: NodeProcess, options: { seeds?: string[]; env?: Record<string, string>; extraArgs?: string[] }): void {
  // One shard unless the test asks for more (a later --shards in extraArgs wins): the ports of a test are picked for one process each.
  const args = [script, 'start', '--shards', '1', '--host', '127.0.0.1', '--port', String(node.port), '--data', node.dataDir, '--log-level', 'warn'];
  if (options.seeds !== undefined && options.seeds.length > 0) args.push('--seeds', options.seeds.join(','));
  args.push(...(options.extraArgs ?? []));
  // Its own process group: a node is its supervisor and its shards, and signalNode reaches them all.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env }, detached: true });
  const keep = (chunk: Buffer): void => {
    node.output = (node.output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  node.child = child;
}

/** Restarts a stopped node on the same port and data directory. */
export function restartNode(node: NodeProcess, options: { seeds?: string[]; env?: Record<string, string>; extraArgs?: string[] } = {}): void {
  launch(node, options);
}

/**
 * Sends `signal` to the node's process group: its supervisor and every shard, as a crash (kill -9)
 * or a stall (SIGSTOP) of the machine would reach them. A signal to the supervisor alone would not
 * reach the shards, and a shard whose supervisor is gone shuts down cleanly, which is no crash.
 */
export function signalNode(node: NodeProcess, signal: NodeJS.Signals): void {
  signalGroup(node.child?.pid, signal);
}

/**
 * kill -9 (or another `signal`) to the node's every process, and waits until its supervisor is
 * gone. SIGTERM, a clean stop, goes to the supervisor alone, which has its shards drain and waits for them.
 */
export async function killNode(node: NodeProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  const child = node.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (signal === 'SIGTERM') child.kill(signal);
  else signalNode(node, signal);
  await exited;
  node.child = undefined;
}

/**
 * Polls `condition` until it holds or `deadlineMs` passes, then throws naming `what` (a function is
 * asked then, so it can show the latest node output), the last thing the condition reported through
 * `see`, and the last error it threw. The deadline only catches a hung process: keep it generous.
 */
export async function waitFor<T>(
  what: string | (() => string),
  deadlineMs: number,
  condition: (see: (observation: unknown) => void) => Promise<T | undefined | false>,
): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let lastError: unknown;
  let seen: unknown;
  let hasSeen = false;
  const see = (observation: unknown): void => {
    seen = observation;
    hasSeen = true;
  };
  while (Date.now() < deadline) {
    try {
      const value = await condition(see);
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const described = typeof what === 'function' ? what() : what;
  const sawText = hasSeen ? `; last saw ${typeof seen === 'string' ? seen : JSON.stringify(seen)}` : '';
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${described}${sawText}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
}

/** One look at a long-running process, for `waitForProgress`. */
export interface ProgressReading {
  /** True when the awaited state is reached. */
  readonly done: boolean;
  /** Figures that change whenever useful work is done (compared as JSON between readings). */
  readonly progress: unknown;
  /** A counter of the rounds of work the system attempted (done or not): the clock that a stall is measured with. */
  readonly rounds: number;
  /** What this reading saw, for the failure message. */
  readonly seen: string;
}

/** Settings of `waitForProgress`. */
export interface ProgressOptions {
  /** Fail when `rounds` advanced by this many while `progress` stayed the same. */
  readonly stallRounds: number;
  /** Last resort for a system that neither progresses nor counts rounds (a hung process): fail after this long. */
  readonly capMs: number;
  readonly pollMs?: number;
}

/**
 * Waits until `read` says done, failing only when no progress was made over `stallRounds` of the
 * system's own rounds (or, as a last resort, after `capMs`). A slow machine makes rounds slower
 * and progress slower alike, so, unlike a fixed deadline, this cannot fail for slowness alone.
 * Readings that throw (a node restarting) count as no change; the failure names the last reading
 * and error. Answers the last reading.
 */
export async function waitForProgress(what: string, options: ProgressOptions, read: () => Promise<ProgressReading>): Promise<ProgressReading> {
  const startedAt = Date.now();
  let last: ProgressReading | undefined;
  let lastProgress: string | undefined;
  let roundsAtLastProgress = 0;
  let lastError: unknown;
  const failure = (why: string): Error =>
    new Error(`${what}: ${why}; last saw ${last === undefined ? 'nothing' : last.seen}${lastError === undefined ? '' : ` (last error: ${String(lastError)})`}`);
  for (;;) {
    let reading: ProgressReading | undefined;
    try {
      reading = await read();
      last = reading;
    } catch (error) {
      lastError = error;
    }
    if (reading?.done === true) return reading;
    if (reading !== undefined) {
      const progress = JSON.stringify(reading.progress);
      if (progress !== lastProgress) {
        lastProgress = progress;
        roundsAtLastProgress = reading.rounds;
      } else if (reading.rounds - roundsAtLastProgress >= options.stallRounds) {
        throw failure(`no progress over ${reading.rounds - roundsAtLastProgress} rounds (${progress} since round ${roundsAtLastProgress})`);
      }
    }
    if (Date.now() - startedAt > options.capMs) throw failure(`gave up after the last-resort cap of ${options.capMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 500));
  }
}

/** An HTTP answer, body as bytes. */
export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer;
  json<T = unknown>(): T;
}

/**
 * One HTTP request to a node. Its timeouts (60 s) only end a request to a hung node; a node
 * answers or refuses far sooner on any machine, with its own request timeouts.
 */
export async function call(
  node: NodeProcess | string,
  method: 'GET' | 'PUT' | 'DELETE' | 'POST',
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const address = typeof node === 'string' ? node : node.address;
  const response = await request(`http://${address}${path}`, {
    method,
    headers: options.headers,
    body: options.body,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, body, json: <T>() => JSON.parse(body.toString('utf8')) as T };
}

/** Waits until the node answers /health. */
export async function waitHealthy(node: NodeProcess, deadlineMs = pollDeadlineMs): Promise<void> {
  await waitFor(
    () => `${node.address} to answer /health (${describeExit(node)}output: ${node.output.slice(-500)})`,
    deadlineMs,
    async (see) => {
      const status = (await call(node, 'GET', '/health')).status;
      see(`status ${status}`);
      return status === 200;
    },
  );
}

/** How a node's process ended, if it did, for failure messages. */
export function describeExit(node: NodeProcess): string {
  const child = node.child;
  if (child === undefined) return 'not running; ';
  if (child.exitCode !== null) return `exited with code ${child.exitCode}; `;
  if (child.signalCode !== null) return `killed by ${child.signalCode}; `;
  return '';
}

/** The JSON of /status. */
export async function nodeStatus(node: NodeProcess): Promise<{
  node: { id: string };
  members: { id: string; address: string; status: string }[];
  hints: { pending: number };
  ring: { members: string[]; next?: string[] | null } | null;
}> {
  return (await call(node, 'GET', '/status')).json();
}

/** The membership parts of /status that ring waits look at. */
export interface MembershipView {
  readonly members: readonly { readonly address?: string; readonly status: string }[];
  readonly ring: { readonly members: readonly string[]; readonly next?: readonly string[] | null } | null;
}

/** A one-line account of a node's view of the cluster, for failure messages. */
export function describeMembership(view: MembershipView): string {
  const members = view.members.map((member) => `${member.address ?? '?'} ${member.status}`).join(', ');
  const ring =
    view.ring === null
      ? 'no ring'
      : `a ring of ${view.ring.members.length}${view.ring.next === null || view.ring.next === undefined ? ' (settled)' : ` moving to ${view.ring.next.length} owners`}`;
  return `members [${members}], ${ring}`;
}

/**
 * Waits until `node` sees `count` members up and `count` members in its ring (and, with `settled`,
 * no ring change under way); fails naming what it last saw. `read` replaces plain-http /status
 * (for TLS or authenticated nodes).
 */
export async function waitForMembersUp(
  node: NodeProcess,
  count: number,
  options: { settled?: boolean; read?: () => Promise<MembershipView>; deadlineMs?: number } = {},
): Promise<void> {
  const read = options.read ?? (async () => nodeStatus(node));
  await waitFor(
    () =>
      `${node.address} to see ${count} members up in ${options.settled === true ? 'a settled' : 'the'} ring (${describeExit(node)}output: ${node.output.slice(-500)})`,
    options.deadlineMs ?? pollDeadlineMs,
    async (see) => {
      const view = await read();
      see(describeMembership(view));
      const up = view.members.filter((member) => member.status === 'up').length;
      return up === count && view.ring?.members.length === count && (options.settled !== true || view.ring.next === null || view.ring.next === undefined);
    },
  );
}

/** How startCluster starts its nodes, and how long it waits for them. */
export interface ClusterOptions {
  /** Where the nodes' data directories go: node1, node2, ... under it. */
  readonly folder: string;
  /** The list the caller stops in its afterAll: each node goes in as soon as it is started, so a failed start still stops it. */
  readonly nodes: NodeProcess[];
  /** The HTTP ports, when the caller picked them (default: n free ports). */
  readonly ports?: readonly number[];
  readonly env?: Record<string, string>;
  readonly extraArgs?: string[];
  /**
   * What to wait for on every node before answering: it answers /health ('healthy', the
   * default), it sees n members up in its ring ('members-up'), or that and no ring change under
   * way ('settled').
   */
  readonly until?: 'healthy' | 'members-up' | 'settled';
  /** The deadline of each wait (default pollDeadlineMs). */
  readonly deadlineMs?: number;
}

/**
 * Starts an n-node cluster of real processes: node 1 founds it (and answers /health before the
 * others start), the others join with node 1 as their seed. Answers the nodes in order.
 */
export async function startCluster(count: number, options: ClusterOptions): Promise<NodeProcess[]> {
  const ports = options.ports ?? (await freePorts(count));
  const { env, extraArgs, nodes } = options;
  const deadlineMs = options.deadlineMs ?? pollDeadlineMs;
  const started: NodeProcess[] = [];
  const start = (index: number, seeds: string[]): NodeProcess => {
    const node = startNode(ports[index]!, join(options.folder, `node${index + 1}`), {
      seeds,
      ...(env === undefined ? {} : { env }),
      ...(extraArgs === undefined ? {} : { extraArgs }),
    });
    nodes.push(node);
    started.push(node);
    return node;
  };
  const founder = start(0, []);
  await waitHealthy(founder, deadlineMs);
  for (let index = 1; index < count; index++) start(index, [founder.address]);
  for (const node of started) {
    if (options.until === 'members-up' || options.until === 'settled')
      await waitForMembersUp(node, count, { settled: options.until === 'settled', deadlineMs });
    else await waitHealthy(node, deadlineMs);
  }
  return started;
}
