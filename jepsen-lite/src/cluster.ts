/**
 * A cluster of real ringkv node processes: started, killed with SIGKILL, restarted on the same
 * data folder (so a node keeps its id), paused with SIGSTOP and resumed with SIGCONT. A node of
 * several shards (`shards`) is a supervisor and its shard processes, all in one process group
 * (the node is started as a group leader): kill, pause and resume signal the whole group, so a
 * host's shards fail together, as they would when the host dies or stalls. On loopback
 * (the default) peer traffic of node i to node j goes through the link proxy (i -> j) via
 * `--peer-map`; with a `launcher` each node runs elsewhere (in its own network namespace, under
 * `ip netns exec`, which execs the node in place, so the child's pid is the node's own).
 *
 * For the membership nemesis the cluster also has spare slots: nodes that are not started with
 * the cluster but can join it later with a fresh data folder. Each slot has a role: `member`
 * (in the cluster, or joining it), `spare` (never started), `left` (decommissioned with
 * `ringkv leave`) or `removed` (removed with `ringkv remove`; its process may be brought back,
 * and then serves nothing). A node of several shards joins, leaves and is removed as a whole:
 * all its shards start together, `ringkv leave` of the node has every shard leave, and the
 * removal names every shard's id.
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
  readonly members: readonly { readonly id: string; readonly address: string; readonly status: string; readonly host?: string; readonly zone?: string }[];
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
  /** The node's id (its shard 0's), read from its /status once it first answered. */
  id: string | undefined;
  /** The addresses of the node's ring members: its shards, shard s at port + s (one for a node of one shard). */
  readonly memberAddresses: readonly string[];
  /** The ids of the node's shards (by the addresses above), read from /status. */
  readonly shardIds: Map<string, number>;
  /** Every pid the node has had, for cleanup by whoever ran the harness. */
  readonly pids: number[];
}

/** How to build the cluster. */
export interface ClusterOptions {
  readonly nodeCount: number;
  /** Spare slots after the first `nodeCount`, for nodes that join during the run (default 0). */
  readonly spareCount?: number;
  /** Shards per node (`ringkv start --shards`, default 1); shard s of a node is a ring member at its port + s. */
  readonly shards?: number;
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
  /** memberClient's clients, by member address. */
  private readonly memberClients = new Map<string, RingClient>();
  private readonly script = join(repositoryRoot(), 'bin', 'ringkv.js');

  constructor(private readonly options: ClusterOptions) {
    this.nodes = Array.from({ length: options.nodeCount + (options.spareCount ?? 0) }, (_, index) => {
      const port = options.nodePort(index);
      const host = options.nodeHost?.(index) ?? '127.0.0.1';
      return {
        index,
        name: `n${index + 1}`,
        port,
        address: `${host}:${port}`,
        memberAddresses: Array.from({ length: this.shards }, (_, shard) => `${host}:${port + shard}`),
        shardIds: new Map<string, number>(),
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

  /** Shards per node. */
  get shards(): number {
    return this.options.shards ?? 1;
  }

  /** A node id as reports name it: the slot's name and role (n5 removed) where the id is one of ours, and the shard (n2.s1) of a node of several. */
  nameOf(id: string): string {
    const node = this.nodes.find((slot) => slot.id === id || slot.shardIds.has(id));
    if (node === undefined) return id;
    const shard = node.shardIds.get(id);
    const name = this.shards > 1 && shard !== undefined ? `${node.name}.s${shard}` : node.name;
    return node.role === 'member' ? name : `${name} (${node.role})`;
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
      this.script,
      'start',
      '--shards',
      String(this.shards),
      '--host',
      this.options.nodeHost?.(node.index) ?? '127.0.0.1',
      '--port',
      String(node.port),
      '--data',
      node.dataDir,
      '--config',
      this.options.configFile,
      '--log-level',
      this.options.logLevel,
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
      // Its own process group (pgid = its pid): the node's shards are in it too, and signals to the group reach them all.
      detached: true,
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

  /**
   * Waits until the node answers /health at every member address (each shard serves HTTP at its
   * own, shard 0 at the node's shared port), or has exited, which throws; then learns its shards' ids.
   */
  async waitHealthy(node: ClusterNode, deadlineMs = 30_000): Promise<void> {
    await waitFor(`${node.name} (${node.memberAddresses.join(', ')}) to answer /health; see ${node.logPath}`, deadlineMs, async () => {
      const child = node.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${node.name} exited (code ${String(child?.exitCode)}, signal ${String(child?.signalCode)}); see ${node.logPath}`);
      }
      for (const address of node.memberAddresses) await this.admin.json('GET', '/health', address);
      return true;
    });
    if (node.shardIds.size < node.memberAddresses.length) {
      // Each shard's own /status names it; shard 0, behind the shared port, is named in the others' member lists.
      await waitFor(`${node.name}'s ${node.memberAddresses.length} shards to be known by id`, deadlineMs, async () => {
        for (const address of node.memberAddresses) {
          const status = (await this.admin.status(address)) as NodeStatusView;
          for (const member of [status.node, ...status.members]) {
            const shard = node.memberAddresses.indexOf(member.address);
            if (shard >= 0) node.shardIds.set(member.id, shard);
          }
        }
        return node.shardIds.size >= node.memberAddresses.length;
      });
    }
    node.id ??= [...node.shardIds].find(([, shard]) => shard === 0)?.[0];
  }

  /** Signals the node's process group: its supervisor and every shard (one process for a node of one shard). */
  private signalGroup(node: ClusterNode, signal: NodeJS.Signals): void {
    const pid = node.child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // The group is gone already.
    }
  }

  /** Waits until no process of the node's group is left (a killed supervisor's shards die with it, but not in the same instant). */
  private async groupGone(pid: number, deadlineMs = 30_000): Promise<void> {
    await waitFor(
      `process group ${pid} to be gone`,
      deadlineMs,
      async () => {
        try {
          process.kill(-pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      50,
    );
  }

  /** One node's /status (from whichever shard took the connection). */
  async status(node: ClusterNode): Promise<NodeStatusView> {
    return this.statusAt(node.address);
  }

  /** The /status of the member at `address` (a node's shard 0 is behind its shared port: see memberClient). */
  async statusAt(address: string): Promise<NodeStatusView> {
    const client = await this.memberClient(address);
    return (await client.status(address)) as NodeStatusView;
  }

  /**
   * A client whose one kept-alive connection reaches the ring member at `address`, for what must
   * be asked of one member (its hints, its own copy of a key). Shards 1.. of a node serve HTTP at
   * their own address; shard 0's is the node's port, shared by all its shards, where the kernel
   * gives each connection to one of them: the client asks /status on its connection and, while
   * another shard answers, opens a new one (at most 64 times). It checks again on every call.
   */
  async memberClient(address: string): Promise<RingClient> {
    for (let attempt = 1; attempt <= 64; attempt++) {
      let client = this.memberClients.get(address);
      if (client === undefined) {
        client = new RingClient({ nodes: [address], httpTimeoutMs: 3000, maxAttempts: 1, connectionsPerNode: 1 });
        this.memberClients.set(address, client);
      }
      const answered = ((await client.status(address)) as NodeStatusView).node.address;
      if (answered === address) return client;
      this.memberClients.delete(address);
      await client.close();
    }
    throw new Error(`64 connections to ${address} all reached another shard of its node`);
  }

  /** Waits until every member node sees all n × shards ring members up and exactly them in its ring. */
  async waitConverged(deadlineMs = 60_000): Promise<void> {
    const members = this.members;
    const count = members.length * this.shards;
    await waitFor(
      `every member (${members.map((node) => node.name).join(',')}) to see ${count} ring members up and in the ring`,
      deadlineMs,
      async () => {
        for (const node of members) {
          const status = await this.status(node);
          if (status.members.filter((member) => member.status === 'up').length !== count) return false;
          if (status.ring?.members.length !== count) return false;
        }
        return true;
      },
      250,
    );
  }

  /** kill -9 of the node's whole process group (every shard at once): nothing flushes or says goodbye; resolves once all are gone. */
  async kill(node: ClusterNode): Promise<void> {
    const child = node.child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      node.state = 'killed';
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.signalGroup(node, 'SIGKILL');
    await exited;
    if (child.pid !== undefined) await this.groupGone(child.pid);
    node.child = undefined;
    node.state = 'killed';
  }

  /** Restarts a killed node with its data folder, port, seeds (today's members) and links; resolves once it answers /health. */
  async restart(node: ClusterNode, deadlineMs = 60_000): Promise<void> {
    if (node.state !== 'killed' && node.state !== 'stopped') return;
    this.launch(
      node,
      this.memberAddresses.filter((address) => address !== node.address),
    );
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
   * `ringkv leave --node H:P`, through the real command: the node (every shard of it: the shard
   * the command reached has its supervisor tell the others) streams its partitions away, marks
   * itself left and exits on its own. Resolves once the command was accepted.
   */
  async leave(node: ClusterNode): Promise<void> {
    await this.ringkv(['leave', '--node', node.address]);
    node.role = 'left';
  }

  /**
   * Removes a node that is gone: kill -9 (every shard), wait until `via` judges each of its ring
   * members down, then `ringkv remove ID... --node via` with the ids of all its shards, as a host
   * is removed as a whole. Resolves once the removal was accepted.
   */
  async remove(node: ClusterNode, via: ClusterNode, deadlineMs = 60_000): Promise<void> {
    const ids = [...node.shardIds.keys()];
    if (ids.length < node.memberAddresses.length)
      throw new Error(`${node.name} has ${ids.length} known ids of ${node.memberAddresses.length}; it never answered /status`);
    await this.kill(node);
    node.role = 'removed';
    // Each of via's shards (the command reaches whichever takes the connection) must judge every shard of the node down, or it refuses.
    await waitFor(
      `every shard of ${via.name} to judge ${node.name} (${ids.join(', ')}) down`,
      deadlineMs,
      async () => {
        for (const address of via.memberAddresses) {
          const status = await this.statusAt(address);
          if (!ids.every((id) => status.members.some((member) => member.id === id && member.status === 'down'))) return false;
        }
        return true;
      },
      250,
    );
    await this.ringkv(['remove', ...ids, '--node', via.address]);
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
    this.signalGroup(node, 'SIGSTOP');
    node.state = 'paused';
  }

  /** SIGCONT. */
  resume(node: ClusterNode): void {
    if (node.state !== 'paused' || node.child === undefined) return;
    this.signalGroup(node, 'SIGCONT');
    node.state = 'running';
  }

  /** Stops every node: SIGCONT for paused ones, SIGTERM to drain, SIGKILL after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    await Promise.all(
      this.nodes.map(async (node) => {
        const child = node.child;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        if (node.state === 'paused') this.signalGroup(node, 'SIGCONT');
        // SIGTERM to the node (a supervisor forwards it to its shards and waits for them); SIGKILL to the whole group after the grace.
        child.kill('SIGTERM');
        const timer = setTimeout(() => this.signalGroup(node, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
        if (child.pid !== undefined) await this.groupGone(child.pid).catch(() => this.signalGroup(node, 'SIGKILL'));
        node.child = undefined;
        node.state = 'stopped';
      }),
    );
    await this.admin.close();
    await Promise.all([...this.memberClients.values()].map((client) => client.close()));
    this.memberClients.clear();
  }

  /** SIGKILLs every node's process group at once, synchronously (for the harness's own exit paths). */
  killAllNow(): void {
    for (const node of this.nodes) this.signalGroup(node, 'SIGKILL');
  }
}
