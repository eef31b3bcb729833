import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import type { DriverKind } from './request-driver.js';
import {
  type ServerProcess,
  type MemoryField,
  freePorts,
  isAlive,
  packageRoot,
  memoryBytes,
  processTree,
  startServer,
  stopServer,
  waitFor,
} from './processes.js';

/**
 * The systems the compare suite starts: the ceiling server, ringkv (one node or a local
 * cluster) and etcd. Each is real processes on loopback, started fresh in its own data folder,
 * and stopped after its runs.
 */

/** A started system: where to send load, how, and its processes. */
export interface RunningTarget {
  /** Short name for tables. */
  readonly name: string;
  /** What it is, in a sentence for the report. */
  readonly description: string;
  /** host:port of every node that takes client requests; load is spread over all of them. */
  readonly nodes: readonly string[];
  readonly driverKind: DriverKind;
  /** r and w sent with each request (ringkv only). */
  readonly quorum: { readonly r?: number; readonly w?: number };
  /** ringkv only: how its buckets resolve concurrent writes (siblings need the client to carry contexts). */
  readonly conflictMode?: 'siblings' | 'lww';
  readonly processes: readonly ServerProcess[];
}

/**
 * A memory figure (see MemoryField) of each process of a target, in bytes (null where /proc has
 * none): each server, followed by its own children, so a sharded ringkv node counts as its
 * supervisor and then each shard process (the shards hold the data; the supervisor alone would
 * hide them).
 */
export function targetMemoryBytes(target: RunningTarget, field: MemoryField): (number | null)[] {
  return target.processes.flatMap((server) => processTree(server.child.pid).map((pid) => memoryBytes(pid, field) ?? null));
}

/** Stops every process of a target. */
export async function stopTarget(target: RunningTarget): Promise<void> {
  await Promise.all(target.processes.map((server) => stopServer(server)));
}

const diedEarly = (servers: readonly ServerProcess[]) => (): string | undefined => {
  const dead = servers.find((server) => !isAlive(server));
  return dead === undefined ? undefined : `${dead.name} exited (code ${dead.child.exitCode}); its output:\n${dead.output.slice(-3000)}`;
};

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const response = await request(url, { headersTimeout: 2000, bodyTimeout: 2000 });
  const text = await response.body.text();
  return { status: response.statusCode, body: text.length > 0 ? (JSON.parse(text) as unknown) : null };
}

/** Starts the ceiling server (bare fastify + one LevelDB) as its own process. */
export async function startCeiling(dataRoot: string, nodeArgs: readonly string[] = [], givenPort?: number): Promise<RunningTarget> {
  const port = givenPort ?? ((await freePorts(1))[0] as number);
  const dataDir = join(dataRoot, 'ceiling');
  mkdirSync(dataDir, { recursive: true });
  const script = join(packageRoot(), 'dist', 'bench', 'ceiling-server.js');
  const server = startServer('ceiling', process.execPath, [...nodeArgs, script, '--port', String(port), '--data', dataDir]);
  const address = `127.0.0.1:${port}`;
  await waitFor(`the ceiling server on ${address}`, 20_000, async () => (await getJson(`http://${address}/health`)).status === 200, diedEarly([server]));
  return {
    name: 'ceiling',
    description: 'bare fastify + one LevelDB, no replication (baseline)',
    nodes: [address],
    driverKind: 'undici',
    quorum: {},
    processes: [server],
  };
}

/** How to start ringkv. */
export interface RingkvTargetOptions {
  readonly name: string;
  readonly nodeCount: number;
  readonly nVal: number;
  readonly r?: number;
  readonly w?: number;
  readonly dataRoot: string;
  /** Extra node flags before the script (for example --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** Extra config merged over config/default.json. */
  readonly config?: Record<string, unknown>;
  readonly driverKind?: DriverKind;
  /**
   * Every bucket's conflict mode. The bench defaults to lww: the ceiling and etcd overwrite, and
   * in siblings mode each blind overwrite is kept as a new sibling.
   */
  readonly conflictMode?: 'siblings' | 'lww';
  /** HTTP ports of the nodes, one each (a run told to stay in a port range); free ones when absent. */
  readonly ports?: readonly number[];
  /** Shards (processes, ring members) per node (default 1; more take the ports after each node's port and peer port). */
  readonly shards?: number;
}

interface StatusView {
  readonly members: readonly { readonly status: string }[];
  readonly ring: { readonly members: readonly string[] } | null;
}

/**
 * Starts ringkv nodes as `ringkv start` processes (node 1 bootstraps, the others seed from it),
 * all with one cluster secret, and waits until every node sees every member up in its ring.
 */
export async function startRingkv(options: RingkvTargetOptions): Promise<RunningTarget> {
  const root = packageRoot();
  const shards = options.shards ?? 1;
  const ports = options.ports ?? (await freePorts(options.nodeCount));
  if (ports.length !== options.nodeCount) throw new Error(`${options.name}: ${ports.length} ports given for ${options.nodeCount} nodes`);
  const addresses = ports.map((port) => `127.0.0.1:${port}`);
  mkdirSync(options.dataRoot, { recursive: true });
  const configFile = join(options.dataRoot, `${options.name}-config.json`);
  const conflictMode = options.conflictMode ?? 'lww';
  writeFileSync(configFile, JSON.stringify({ ...options.config, bucketDefaults: { nVal: options.nVal, conflictMode } }));
  const secret = randomBytes(24).toString('hex');
  const servers = addresses.map((address, index) => {
    const args = [
      ...(options.nodeArgs ?? []),
      join(root, 'bin', 'ringkv.js'),
      'start',
      '--shards',
      String(shards),
      '--host',
      '127.0.0.1',
      '--port',
      String(ports[index]),
      '--data',
      join(options.dataRoot, `${options.name}-node${index + 1}`),
      '--config',
      configFile,
      '--log-level',
      'warn',
    ];
    if (index > 0) args.push('--seeds', addresses[0] as string);
    return startServer(`${options.name} node ${index + 1} (${address})`, process.execPath, args, { env: { ...process.env, RINGKV_CLUSTER_SECRET: secret } });
  });
  const ready = async (address: string): Promise<boolean> => {
    const answer = await getJson(`http://${address}/status`);
    if (answer.status !== 200) return false;
    const status = answer.body as StatusView;
    const members = options.nodeCount * shards;
    return status.members.filter((member) => member.status === 'up').length === members && status.ring?.members.length === members;
  };
  await waitFor(
    `${options.nodeCount} ringkv node(s) to see each other up in the ring`,
    60_000,
    async () => (await Promise.all(addresses.map(ready))).every(Boolean),
    diedEarly(servers),
  );
  const quorum = { ...(options.r === undefined ? {} : { r: options.r }), ...(options.w === undefined ? {} : { w: options.w }) };
  const quorumText = options.r === undefined && options.w === undefined ? '' : `, r=${options.r ?? 'default'}, w=${options.w ?? 'default'}`;
  return {
    name: options.name,
    description: `ringkv, ${options.nodeCount} node${options.nodeCount === 1 ? '' : 's'}${shards === 1 ? '' : ` of ${shards} shards`}, n_val=${options.nVal}${quorumText}, ${conflictMode} buckets`,
    nodes: addresses,
    driverKind: options.driverKind ?? 'undici',
    quorum,
    conflictMode,
    processes: servers,
  };
}

/** True when an etcd binary is on PATH. */
export function etcdAvailable(): boolean {
  return spawnSync('etcd', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** What installing etcd said: installed (or already there), or why not. */
export interface EtcdSetup {
  readonly available: boolean;
  readonly note: string;
}

/** Runs bench/setup-etcd.sh when etcd is missing (Debian's etcd-server through apt-get). */
export function setupEtcd(): EtcdSetup {
  if (etcdAvailable()) return { available: true, note: 'etcd found on PATH' };
  const script = join(packageRoot(), 'bench', 'setup-etcd.sh');
  process.stderr.write('etcd is not installed; running bench/setup-etcd.sh (apt-get install etcd-server)...\n');
  const result = spawnSync('bash', [script], { encoding: 'utf8', timeout: 600_000 });
  const said = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-3).join(' / ');
  if (result.status === 0 && etcdAvailable()) return { available: true, note: said };
  return { available: false, note: `etcd could not be installed, so it is skipped: ${said || result.error?.message || `exit ${result.status}`}` };
}

/** The installed etcd's version line. */
export function etcdVersion(): string {
  const result = spawnSync('etcd', ['--version'], { encoding: 'utf8' });
  return (result.stdout ?? '').split('\n')[0]?.trim() ?? 'unknown';
}

/**
 * Starts an etcd cluster of `memberCount` members on loopback (distinct client and peer ports,
 * one data folder each), with etcd's defaults otherwise: every commit is fsynced to its WAL.
 */
export async function startEtcd(memberCount: number, dataRoot: string): Promise<RunningTarget> {
  const ports = await freePorts(memberCount * 2);
  const clientPorts = ports.slice(0, memberCount);
  const peerPorts = ports.slice(memberCount);
  const names = clientPorts.map((_, index) => `m${index + 1}`);
  const initialCluster = names.map((name, index) => `${name}=http://127.0.0.1:${peerPorts[index]}`).join(',');
  const servers = names.map((name, index) => {
    const dataDir = join(dataRoot, `etcd-${name}`);
    mkdirSync(dataDir, { recursive: true });
    const clientUrl = `http://127.0.0.1:${clientPorts[index]}`;
    const peerUrl = `http://127.0.0.1:${peerPorts[index]}`;
    return startServer(`etcd ${name} (${clientUrl})`, 'etcd', [
      '--name',
      name,
      '--data-dir',
      dataDir,
      '--listen-client-urls',
      clientUrl,
      '--advertise-client-urls',
      clientUrl,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-token',
      `ringkv-bench-${process.pid}`,
      '--initial-cluster-state',
      'new',
      '--logger',
      'zap',
      '--log-level',
      'warn',
    ]);
  });
  const addresses = clientPorts.map((port) => `127.0.0.1:${port}`);
  const healthy = async (address: string): Promise<boolean> => {
    const answer = await getJson(`http://${address}/health`);
    return answer.status === 200 && (answer.body as { health?: string }).health === 'true';
  };
  await waitFor(
    `${memberCount} etcd members to be healthy`,
    60_000,
    async () => (await Promise.all(addresses.map(healthy))).every(Boolean),
    diedEarly(servers),
  );
  return {
    name: `etcd-${memberCount}`,
    description: `etcd ${etcdVersion().replace(/^etcd Version:\s*/, '')}, ${memberCount} members, JSON gateway, fsync per commit (its default)`,
    nodes: addresses,
    driverKind: 'etcd',
    quorum: {},
    processes: servers,
  };
}
