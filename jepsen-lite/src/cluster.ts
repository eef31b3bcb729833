/**
 * A cluster of real ringkv node processes: started, killed with SIGKILL, restarted on the same
 * data folder (so a node keeps its id), paused with SIGSTOP and resumed with SIGCONT. On loopback
 * (the default) peer traffic of node i to node j goes through the link proxy (i -> j) via
 * `--peer-map`; with a `launcher` each node runs elsewhere (in its own network namespace, under
 * `ip netns exec`, which execs the node in place, so the child's pid is the node's own).
 *
 * For the membership nemesis the cluster also has spare slots: nodes that are not started with
 * the cluster but can join it later with a fresh data folder. Each slot has a role: `member`
 * (in the cluster, or joining it), `spare` (never started), `left` (decommissioned with
 * `ringkv leave`) or `removed` (removed with `ringkv remove`; its process may be brought back,
 * and then serves nothing).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RingClient } from '../../src/client/ring-client.js';
import { waitFor } from './wait.js';

/** What the harness needs of a node's GET /status. */
export interface NodeStatusView {
  readonly node: { readonly id: string; readonly address: string };
  readonly members: readonly { readonly id: string; readonly address: string; readonly status: string }[];
  readonly ring: { readonly owners: readonly string[]; readonly members: readonly string[] } | null;
  readonly partitionCount: number;
  readonly hints: { readonly pending: number; readonly byTarget?: Readonly<Record<string, number>> };
}

/** One node process and how it is doing. */
export interface ClusterNode {
  /** 0-based position in the cluster. */
  readonly index: number;
  /** n1, n2, ... as reports name it. */
  readonly name: string;
  readonly port: number;
  /** host:port, as clients and gossip know the node. */
  readonly address: string;
  readonly dataDir: string;
  readonly logPath: string;
  child: ChildProcess | undefined;
  state: 'stopped' | 'running' | 'killed' | 'paused';
  /** Whether the slot is part of the cluster; see the module comment. */
  role: 'member' | 'spare' | 'left' | 'removed';
  /** The node's id, read from its /status once it first answered. */
  id: string | undefined;
  /** Every pid the node has had, for cleanup by whoever ran the harness. */
  readonly pids: number[];
}

/** How to build the cluster. */
export interface ClusterOptions {
  readonly nodeCount: number;
  /** Spare slots after the first `nodeCount`, for nodes that join during the run (default 0). */
  readonly spareCount?: number;
  readonly nodePort: (node: number) => number;
  /** The address node i listens on and is known by (default 127.0.0.1). */
  readonly nodeHost?: (node: number) => string;
  /** The `--peer-map` of each node (its links' proxies); none when absent. */
  readonly peerMap?: (node: number) => string;
  /**
   * Runs node i elsewhere: the command line that runs `argv` (node and its arguments) with
   * `environment` added for the node alone. The node must be exec'd in place (same pid), so that
   * kill -9 and SIGSTOP of the child reach the node itself.
   */
  readonly launcher?: (node: number, argv: readonly string[], environment: Readonly<Record<string, string>>) => [string, string[]];
  /** Parent of the nodes' data folders. */
  readonly dataRoot: string;
  /** Folder for node logs (n1.log ...). */
  readonly logRoot: string;
  readonly configFile: string;
  readonly clusterSecret: string;
  readonly logLevel: string;
  /**
   * For the clock nemesis: libfaketime's library and a folder for one offset file per node. Each
   * node then runs with LD_PRELOAD of the library and reads its wall-clock offset from its file
   * (re-read at most once a second), which setClockOffset rewrites while the node runs.
   */
  readonly faketime?: { readonly library: string; readonly folder: string };
}

/** How long libfaketime keeps an offset before it reads the file again, in seconds. */
export const faketimeCacheSeconds = 1;

/** The environment that loads libfaketime into a node with its offset file. */
export function faketimeEnvironment(library: string, offsetFile: string): Record<string, string> {
  return {
    LD_PRELOAD: library,
    FAKETIME_TIMESTAMP_FILE: offsetFile,
    FAKETIME_CACHE_DURATION: String(faketimeCacheSeconds),
    // Only the wall clock is wrong: timers and the event loop run on the monotonic clock, as a
    // host whose NTP steps the time still keeps its monotonic clock.
    FAKETIME_DONT_FAKE_MONOTONIC: '1',
  };
}

/** The offset file's text: libfaketime's relative format, `+Ns` or `-Ns`. */
export function faketimeOffsetText(offsetMs: number): string {
  const seconds = Math.round(offsetMs / 1000);
  return `${seconds < 0 ? '-' : '+'}${Math.abs(seconds)}s\n`;
}

/** The repository root: the folder above this file that holds package.json and bin/ringkv.js. */
export function repositoryRoot(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'package.json')) || !existsSync(join(folder, 'bin', 'ringkv.js'))) {
    const parent = dirname(folder);
    if (parent === folder) throw new Error('cannot find the ringkv repository (package.json and bin/ringkv.js) above jepsen-lite');
    folder = parent;
  }
  return folder;
}

/** The cluster. */
export class Cluster {
  /** The nodes, in index order. */
  readonly nodes: ClusterNode[];
  private readonly admin: RingClient;
  private readonly script = join(repositoryRoot(), 'bin', 'ringkv.js');

  constructor(private readonly options: ClusterOptions) {
    this.nodes = Array.from({ length: options.nodeCount + (options.spareCount ?? 0) }, (_, index) => {
      const port = options.nodePort(index);
      return {
        index,
        name: `n${index + 1}`,
        port,
        address: `${options.nodeHost?.(index) ?? '127.0.0.1'}:${port}`,
        dataDir: join(options.dataRoot, `n${index + 1}`),
        logPath: join(options.logRoot, `n${index + 1}.log`),
        child: undefined,
        state: 'stopped' as const,
        role: index < options.nodeCount ? ('member' as const) : ('spare' as const),
        id: undefined,
        pids: [],
      };
    });
    this.admin = new RingClient({ nodes: this.nodes.map((node) => node.address), httpTimeoutMs: 3000, maxAttempts: 1, connectionsPerNode: 2 });
  }

  /** Every slot's address, spares included (the link proxies and peer maps cover them all). */
  get addresses(): string[] {
    return this.nodes.map((node) => node.address);
  }

  /** A node id as reports name it: the slot's name and role (n5 removed) where the id is one of ours. */
  nameOf(id: string): string {
    const node = this.nodes.find((slot) => slot.id === id);
    return node === undefined ? id : node.role === 'member' ? node.name : `${node.name} (${node.role})`;
  }

  /** The slots that are members of the cluster now (up, down, joining or leaving). */
  get members(): ClusterNode[] {
    return this.nodes.filter((node) => node.role === 'member');
  }

  /** The addresses of today's members: seeds for a node that starts, and the nodes of the final reads. */
  get memberAddresses(): string[] {
    return this.members.map((node) => node.address);
  }

  /**
   * Starts the cluster: n1 founds it (no seeds on its first start), the others join with every
   * node as a seed so that no single node is needed to rejoin later; resolves when every node sees
   * every member up and in the ring.
   */
  async start(deadlineMs = 120_000): Promise<void> {
    const [founder, ...joiners] = this.members as [ClusterNode, ...ClusterNode[]];
    this.launch(founder, []);
    await this.waitHealthy(founder, deadlineMs);
    for (const node of joiners) this.launch(node, this.memberAddresses);
    for (const node of joiners) await this.waitHealthy(node, deadlineMs);
    await this.waitConverged(deadlineMs);
  }

  private launch(node: ClusterNode, seeds: readonly string[]): void {
    mkdirSync(node.dataDir, { recursive: true });
    const args = [
      this.script, 'start',
      '--shards', '1',
      '--host', this.options.nodeHost?.(node.index) ?? '127.0.0.1',
      '--port', String(node.port),
      '--data', node.dataDir,
      '--config', this.options.configFile,
      '--log-level', this.options.logLevel,
    ];
    const peerMap = this.options.peerMap?.(node.index);
    if (peerMap !== undefined && peerMap.length > 0) args.push('--peer-map', peerMap);
    if (seeds.length > 0) args.push('--seeds', seeds.join(','));
    // The log file descriptor goes to the child directly: nothing to pump, and it outlives us.
    const log = openSync(node.logPath, 'a');
    const faketime = this.options.faketime;
    let clock: Record<string, string> = {};
    if (faketime !== undefined) {
      mkdirSync(faketime.folder, { recursive: true });
      const offsetFile = this.offsetFile(node);
      if (!existsSync(offsetFile)) writeFileSync(offsetFile, faketimeOffsetText(0));
      clock = faketimeEnvironment(faketime.library, offsetFile);
    }
    const launcher = this.options.launcher;
    const [command, commandArgs] = launcher === undefined ? [process.execPath, args] : launcher(node.index, [process.execPath, ...args], clock);
    const child = spawn(command, commandArgs, {
      stdio: ['ignore', log, log],
      env: { ...process.env, RINGKV_CLUSTER_SECRET: this.options.clusterSecret, ...(launcher === undefined ? clock : {}) },
    });
    closeSync(log);
    child.on('error', () => undefined);
    // A node that exits on its own (one that has left the cluster does) is no longer running.
    child.once('exit', () => {
      if (node.child === child && (node.state === 'running' || node.state === 'paused')) node.state = 'stopped';
    });
    node.child = child;
    node.state = 'running';
    if (child.pid !== undefined) node.pids.push(child.pid);
  }

  private offsetFile(node: ClusterNode): string {
    return join((this.options.faketime as { folder: string }).folder, `${node.name}.faketime`);
  }

  /**
   * Sets the node's wall clock `offsetMs` away from true time (0: true time), through its
   * libfaketime offset file; the running process sees it within a second. The offset outlives a
   * restart, as a bad clock outlives a process. A no-op without the clock nemesis.
   */
  setClockOffset(node: ClusterNode, offsetMs: number): void {
    if (this.options.faketime === undefined) return;
    mkdirSync(this.options.faketime.folder, { recursive: true });
    // Written whole and renamed, so libfaketime never reads a half-written offset.
    const file = this.offsetFile(node);
    writeFileSync(`${file}.new`, faketimeOffsetText(offsetMs));
    renameSync(`${file}.new`, file);
  }

  /** Waits until the node answers /health (or has exited, which throws). */
  async waitHealthy(node: ClusterNode, deadlineMs = 30_000): Promise<void> {
    await waitFor(`${node.name} (${node.address}) to answer /health; see ${node.logPath}`, deadlineMs, async () => {
      const child = node.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${node.name} exited (code ${String(child?.exitCode)}, signal ${String(child?.signalCode)}); see ${node.logPath}`);
      }
      await this.admin.json('GET', '/health', node.address);
      return true;
    });
    node.id ??= (await this.status(node)).node.id;
  }

  /** One node's /status. */
  async status(node: ClusterNode): Promise<NodeStatusView> {
    return (await this.admin.status(node.address)) as NodeStatusView;
  }

  /** Waits until every member sees all n members up and exactly the n members in its ring. */
  async waitConverged(deadlineMs = 60_000): Promise<void> {
    const members = this.members;
    const count = members.length;
    await waitFor(`every member (${members.map((node) => node.name).join(',')}) to see ${count} members up and in the ring`, deadlineMs, async () => {
      for (const node of members) {
        const status = await this.status(node);
        if (status.members.filter((member) => member.status === 'up').length !== count) return false;
        if (status.ring?.members.length !== count) return false;
      }
      return true;
    }, 250);
  }

  /** kill -9: the process dies without a chance to flush or say goodbye; resolves once it is gone. */
  async kill(node: ClusterNode): Promise<void> {
    const child = node.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      node.state = 'killed';
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
    node.child = undefined;
    node.state = 'killed';
  }

  /** Restarts a killed node with its data folder, port, seeds (today's members) and links; resolves once it answers /health. */
  async restart(node: ClusterNode, deadlineMs = 60_000): Promise<void> {
    if (node.state !== 'killed' && node.state !== 'stopped') return;
    this.launch(node, this.memberAddresses.filter((address) => address !== node.address));
    await this.waitHealthy(node, deadlineMs);
  }

  /** Starts a spare slot as a fresh node (empty data folder) that joins through today's members; resolves once it answers /health. */
  async join(node: ClusterNode, deadlineMs = 60_000): Promise<void> {
    if (node.role !== 'spare') throw new Error(`${node.name} is not a spare slot (it is ${node.role})`);
    const seeds = this.memberAddresses;
    node.role = 'member';
    this.launch(node, seeds);
    await this.waitHealthy(node, deadlineMs);
  }

  /**
   * `ringkv leave --node H:P`, through the real command: the node streams its partitions away,
   * marks itself left and exits on its own. Resolves once the command was accepted.
   */
  async leave(node: ClusterNode): Promise<void> {
    await this.ringkv(['leave', '--node', node.address]);
    node.role = 'left';
  }

  /**
   * Removes a node that is gone: kill -9, wait until `via` judges it down, then
   * `ringkv remove NODE_ID --node via`. Resolves once the removal was accepted.
   */
  async remove(node: ClusterNode, via: ClusterNode, deadlineMs = 60_000): Promise<void> {
    const id = node.id;
    if (id === undefined) throw new Error(`${node.name} has no known id; it never answered /status`);
    await this.kill(node);
    node.role = 'removed';
    await waitFor(`${via.name} to judge ${node.name} (${id}) down`, deadlineMs, async () => {
      const status = await this.status(via);
      return status.members.some((member) => member.id === id && member.status === 'down');
    }, 250);
    await this.ringkv(['remove', id, '--node', via.address]);
  }

  /**
   * Starts a removed node's process again on its old data folder. ringkv's promise: it learns it
   * was removed and serves nothing (every data request answers 503). Resolves once it answers /health.
   */
  async bringBack(node: ClusterNode, deadlineMs = 60_000): Promise<void> {
    if (node.role !== 'removed') throw new Error(`${node.name} was not removed (it is ${node.role})`);
    if (node.state !== 'killed' && node.state !== 'stopped') return;
    this.launch(node, this.memberAddresses);
    await this.waitHealthy(node, deadlineMs);
  }

  /** Runs the `ringkv` command with the cluster secret; throws with its output if it fails. */
  private async ringkv(args: readonly string[], deadlineMs = 30_000): Promise<string> {
    const child = spawn(process.execPath, [this.script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RINGKV_CLUSTER_SECRET: this.options.clusterSecret },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
    const code = await new Promise<number | null>((resolve) => {
      child.once('error', () => resolve(null));
      child.once('close', (exitCode) => resolve(exitCode));
    });
    clearTimeout(timer);
    if (code !== 0) throw new Error(`ringkv ${args.join(' ')} failed (exit ${String(code)}): ${output.trim().slice(0, 500)}`);
    return output;
  }

  /** SIGSTOP: the process freezes with its sockets open, as a long GC pause or a stalled VM would. */
  pause(node: ClusterNode): void {
    if (node.state !== 'running' || node.child === undefined) return;
    node.child.kill('SIGSTOP');
    node.state = 'paused';
  }

  /** SIGCONT. */
  resume(node: ClusterNode): void {
    if (node.state !== 'paused' || node.child === undefined) return;
    node.child.kill('SIGCONT');
    node.state = 'running';
  }

  /** Stops every node: SIGCONT for paused ones, SIGTERM to drain, SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        const child = node.child;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        if (node.state === 'paused') child.kill('SIGCONT');
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
        node.child = undefined;
        node.state = 'stopped';
      }),
    );
    await this.admin.close();
  }

  /** SIGKILLs every node at once, synchronously (for the harness's own exit paths). */
  killAllNow(): void {
    for (const node of this.nodes) {
      const child = node.child;
      if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }
}
