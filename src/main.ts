/**
 * The only place that reads process, env and signals and wires the real adapters: LevelDB
 * storage, the framed peer transport and server, the system clock and pino logs.
 */
import { mkdirSync } from 'node:fs';
import { type Server, createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { join, resolve } from 'node:path';
import { getHeapStatistics } from 'node:v8';
import { pino } from 'pino';
import { LevelStorage } from './adapters/level-storage.js';
import { systemClock } from './adapters/system-clock.js';
import { FramedPeerServer } from './adapters/framed-peer-server.js';
import { FramedTransport } from './adapters/framed-transport.js';
import { KvError } from './util/errors.js';
import { type ConfigFlags, loadConfig, packageRoot } from './cli/load-config.js';
import { type ShardMessage, type SupervisorMessage, shardLayoutProblem } from './cli/shards.js';
import { type ShardPosition, shardConfig, shardPeerPort } from './config/shards.js';
import type { NodeConfig } from './config/schema.js';
import type { NodeIdentity } from './engine/node-context.js';
import { RingNode } from './engine/ring-node.js';
import { buildApp } from './http/app.js';
import { noFaultPoints } from './ports/fault-points.js';
import type { Random } from './ports/random.js';
import type { Storage } from './ports/storage.js';
import { newClusterSecret, newNodeId } from './util/ids.js';
import { readSettingFile } from './util/setting-file.js';

/** The flags of `ringkv start`, as commander parsed them, with the shard count the command line settled. */
export interface StartFlags extends ConfigFlags {
  /** How many shards the node runs (1: one shard, with no shard folders). */
  readonly shards?: number;
  /** Which shard this process is (set by the shard supervisor, `src/cli/shards.ts`). */
  readonly shardIndex?: string;
}

export { loadConfig, packageRoot };

const identityKey = Buffer.from('identity');

/** Reads (or creates) the node's id and cluster secret, and raises its generation for this start. */
export async function loadIdentity(storage: Storage, config: NodeConfig): Promise<NodeIdentity> {
  const stored = await storage.meta.get(identityKey);
  const previous =
    stored === undefined ? undefined : (JSON.parse(Buffer.from(stored).toString('utf8')) as { nodeId: string; generation: number; clusterSecret: string });
  const identity: NodeIdentity = {
    nodeId: previous?.nodeId ?? newNodeId(),
    // Cassandra's generation: larger on every start, so peers know a restarted node's heartbeats are new.
    generation: Math.max((previous?.generation ?? 0) + 1, Math.floor(Date.now() / 1000)),
    clusterSecret: config.clusterSecret ?? previous?.clusterSecret ?? newClusterSecret(),
    // What peers and clients dial: the advertised address, never the (possibly wildcard) bind address.
    address: config.advertise,
  };
  await storage.meta.put(
    identityKey,
    Buffer.from(JSON.stringify({ nodeId: identity.nodeId, generation: identity.generation, clusterSecret: identity.clusterSecret }), 'utf8'),
    { sync: true },
  );
  return identity;
}

/** The PEM files of tls.*, read once at start; a missing or unreadable file stops the node naming its field. */
export function loadTlsFiles(config: NodeConfig): { key: Buffer; cert: Buffer; ca: Buffer } | undefined {
  if (!config.tls.enabled) return undefined;
  const readPem = (field: 'certFile' | 'keyFile' | 'caFile'): Buffer => readSettingFile(config.tls[field], `config field 'tls.${field}'`);
  return { cert: readPem('certFile'), key: readPem('keyFile'), ca: readPem('caFile') };
}

/**
 * This process for /status: its pid (and its supervisor's), its shard, where its memory goes (the
 * V8 heap, buffers outside it, and the rest: LevelDB's caches, code) and the V8 heap's limit, which
 * the supervisor's Node flags set (`shardExecArgv` in `src/cli/shards.ts`).
 */
function processFigures(shard: ShardPosition): () => Record<string, number> {
  return () => {
    const usage = process.memoryUsage();
    // The supervisor's pid lets `ringkv cluster` tell its own nodes from another cluster's on the same ports.
    return {
      pid: process.pid,
      supervisorPid: process.ppid,
      shardIndex: shard.index,
      shardCount: shard.count,
      rssBytes: usage.rss,
      heapUsedBytes: usage.heapUsed,
      heapTotalBytes: usage.heapTotal,
      externalBytes: usage.external,
      arrayBuffersBytes: usage.arrayBuffers,
      heapSizeLimitBytes: getHeapStatistics().heap_size_limit,
    };
  };
}

/** The framed peer server on the peer port (HTTP port + peerPortOffset + shard index) of the listen address, or a KV_BAD_CONFIG naming the port when it is taken. */
async function startPeerServer(
  config: NodeConfig,
  shard: ShardPosition,
  node: RingNode,
  secret: string,
  tls: ReturnType<typeof loadTlsFiles>,
  logger: pino.Logger,
): Promise<FramedPeerServer> {
  const server = new FramedPeerServer({
    handler: (request) => node.handlePeer(request),
    secret,
    ...(tls === undefined ? {} : { tls: { key: tls.key, cert: tls.cert } }),
    onError: (error, request) => logger.error({ err: error, peerRequest: request.type }, 'unexpected error while handling a peer request'),
  });
  const port = shardPeerPort(config, shard);
  try {
    await server.listen(config.listen, port);
  } catch (error) {
    const rule = shard.count === 1 ? '' : ` + shard ${shard.index}`;
    throw listenError(
      error,
      config.listen,
      `peer port ${port} (port ${config.port} + peerPortOffset ${config.peerPortOffset}${rule})`,
      'free it, choose another --port, or change peerPortOffset on every node',
    );
  }
  return server;
}

/**
 * Shard i >= 1 also serves HTTP on its own member port (the node's port + i): the shared port
 * reaches whichever shard the kernel picks, and a tool that must reach one member (`ringkv
 * backup`, the dashboard's member links, a local read of a replica) dials the member's address.
 * Shard 0's member port is the shared port itself. The same app answers on both.
 */
async function listenOnMemberPort(
  app: Awaited<ReturnType<typeof buildApp>>,
  config: NodeConfig,
  shard: ShardPosition,
  tls: ReturnType<typeof loadTlsFiles>,
): Promise<Server> {
  const port = config.port + shard.index;
  const handler = app.routing.bind(app);
  const server = tls === undefined ? createHttpServer(handler) : createHttpsServer({ key: tls.key, cert: tls.cert }, handler);
  // Malformed requests are answered as on the shared port (the app's clientError handler).
  for (const listener of app.server.listeners('clientError')) server.on('clientError', listener as (...args: unknown[]) => void);
  try {
    await new Promise<void>((done, fail) => {
      server.once('error', fail);
      server.listen(port, config.listen, () => {
        server.off('error', fail);
        done();
      });
    });
  } catch (error) {
    throw listenError(
      error,
      config.listen,
      `port ${port} (shard ${shard.index}'s own HTTP port: port ${config.port} + ${shard.index})`,
      'free it or choose another --port (a node of N shards takes ports P .. P+N-1)',
    );
  }
  return server;
}

/** Stops a server: no new connections, idle ones closed, in-flight requests finish. */
async function closeServer(server: Server): Promise<void> {
  const closed = new Promise<void>((done) => server.close(() => done()));
  server.closeIdleConnections();
  await closed;
}

/** A failed listen as one line: which address and port, what the system said in words, and what to do. */
export function listenError(error: unknown, host: string, what: string, remedy: string): KvError {
  const code = (error as { code?: unknown } | null)?.code;
  const reason =
    code === 'EADDRINUSE'
      ? `${what} on ${host} is taken by another process (another ringkv node?)`
      : code === 'EACCES'
        ? `${what} on ${host} needs privileges this process lacks (ports below 1024 do)`
        : code === 'EADDRNOTAVAIL'
          ? `${host} is not an address of this machine, so ${what} cannot be bound on it`
          : `cannot listen on ${what} on ${host}: ${error instanceof Error ? error.message : String(error)}`;
  return new KvError('KV_BAD_CONFIG', `${reason}; ${remedy}`, { cause: error });
}

/** The data directory, created if needed; one that cannot be created stops the node with one line naming it. */
function makeDataDir(dataDir: string): void {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new KvError(
      'KV_BAD_CONFIG',
      `cannot create the data directory ${dataDir} (${String(code ?? (error as Error).message)}); choose another --data or make its parent writable`,
      { cause: error },
    );
  }
}

const mathRandom: Random = {
  next: () => Math.random(),
  int: (bound) => Math.floor(Math.random() * bound),
};

/** `ringkv start --shard-index i`, forked by the supervisor: runs shard i of a node until SIGTERM or SIGINT, then drains and closes cleanly. */
export async function runNode(flags: StartFlags): Promise<void> {
  // A shard runs only under its supervisor (`superviseShards`), which gives it its heap bounds and restarts it.
  if (process.send === undefined || flags.shardIndex === undefined) {
    throw new KvError(
      'KV_BAD_CONFIG',
      '--shard-index is set by the shard supervisor of `ringkv start`; run `ringkv start` without it (with --shards N for N shards)',
    );
  }
  const shard: ShardPosition = { index: Number(flags.shardIndex), count: flags.shards ?? 1 };
  const nodeConfig = loadConfig(flags, process.env);
  const problem = shardLayoutProblem(nodeConfig.dataDir, shard.count);
  if (problem !== undefined) throw new KvError('KV_BAD_CONFIG', problem);
  // One shard is today's layout exactly: the node's own address, data folder and peer port.
  const config = shard.count === 1 ? nodeConfig : shardConfig(nodeConfig, shard);
  const logger = pino({ level: config.logLevel, base: { port: config.port, ...(shard.count === 1 ? {} : { shard: shard.index }) } });
  try {
    await startNode(config, shard, logger);
  } catch (error) {
    // A shard whose data says it left the cluster tells its supervisor so before it exits: one
    // that died after it left is then done, not crashed (a restart would only refuse again).
    if (error instanceof KvError && error.details?.lifecycle === 'left') await tellSupervisor({ type: 'shard-left', index: shard.index });
    if (error instanceof KvError) throw error;
    // A failure nobody foresaw: its stack goes to the log, and the terminal gets one line.
    logger.error({ err: error }, 'the node could not start');
    throw new KvError('KV_INTERNAL', `the node could not start: ${error instanceof Error ? error.message : String(error)} (the log above has the details)`, {
      cause: error,
    });
  }
}

/** Opens storage, starts the node and listens; each step that fails throws a KvError that says what to do. */
async function startNode(config: NodeConfig, shard: ShardPosition, logger: pino.Logger): Promise<void> {
  const dataDir = resolve(config.dataDir);
  makeDataDir(dataDir);
  const storage = new LevelStorage({ location: join(dataDir, 'leveldb'), ...config.storage });
  await storage.open();
  const identity = await loadIdentity(storage, config);
  const tls = loadTlsFiles(config);
  // Peers are verified against the cluster's CA (not the system store): only certificates it signed are peers.
  const transport = new FramedTransport({
    secret: identity.clusterSecret,
    peerDialOverrides: config.peerDialOverrides,
    peerPortOffset: config.peerPortOffset,
    ...(tls === undefined ? {} : { tls: { ca: tls.ca } }),
  });
  const node = await RingNode.open({
    identity,
    config,
    storage,
    transport,
    clock: systemClock,
    random: mathRandom,
    logger,
    faultPoints: noFaultPoints,
    processFigures: processFigures(shard),
    leavesWithHost: shard.count > 1,
  });
  await node.start();
  const peerServer = await startPeerServer(config, shard, node, identity.clusterSecret, tls, logger);
  const app = await buildApp({ service: node, config, logger: false, ...(tls === undefined ? {} : { https: { key: tls.key, cert: tls.cert } }) });
  try {
    // The shards of a node share its HTTP port: the kernel spreads connections over them (SO_REUSEPORT).
    await app.listen({ host: config.listen, port: config.port, ...(shard.count === 1 ? {} : { reusePort: true }) });
  } catch (error) {
    throw listenError(error, config.listen, `port ${config.port}`, 'stop what holds it or choose another --port');
  }
  const ownServer = shard.index === 0 ? undefined : await listenOnMemberPort(app, config, shard, tls);
  logger.info(
    { nodeId: identity.nodeId, generation: identity.generation, address: identity.address, listen: `${config.listen}:${config.port}`, dataDir },
    'ringkv node started',
  );
  // Says how access is set up without a single token character in the log.
  const roles = config.auth.tokens.map((token) => token.role);
  logger.info(
    {
      tls: config.tls.enabled,
      peerPort: shardPeerPort(config, shard),
      clientAuth: config.auth.enabled,
      ...(config.auth.enabled
        ? { readWriteTokens: roles.filter((role) => role === 'read-write').length, readOnlyTokens: roles.filter((role) => role === 'read-only').length }
        : {}),
    },
    `serving ${config.tls.enabled ? 'https' : 'http'} with client authentication ${config.auth.enabled ? 'on' : 'off'}`,
  );

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining in-flight requests and closing');
    await app.close();
    if (ownServer !== undefined) await closeServer(ownServer);
    await peerServer.close();
    await node.stop();
    await transport.close();
    await storage.close();
    logger.info({}, 'stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // A node leaves as a whole (README, "Shards"): the shard `ringkv leave` reached checks that
  // every shard of the host can leave (src/engine/lifecycle.ts), then tells the supervisor, which
  // has every other shard leave; those never refuse. Each shard that has left says so before it
  // exits, so the supervisor does not restart it, and exits itself once all have.
  node.onLeaving = () => void tellSupervisor({ type: 'shard-leaving', index: shard.index });
  node.onLeft = () => void tellSupervisor({ type: 'shard-left', index: shard.index }).then(() => shutdown('left the cluster'));
  process.on('message', (message: Partial<SupervisorMessage> | null) => {
    if (message?.type !== 'leave') return;
    logger.info({}, 'leaving the cluster with the other shards of this node');
    node.joinHostLeave().catch((error: unknown) => logger.error({ err: error }, 'could not record the leave; run `ringkv leave` on the node again'));
  });
  // A shard lives as long as its supervisor: when the supervisor is gone (even by kill -9), the IPC channel closes.
  process.on('disconnect', () => void shutdown('the shard supervisor is gone'));
  // SIGINT from a terminal reaches the whole process group; the supervisor forwards SIGTERM, which drains.
  void tellSupervisor({ type: 'shard-ready', index: shard.index });
}

/** Sends the shard supervisor a message; resolves once it is sent (or at once when the supervisor is gone). */
function tellSupervisor(message: ShardMessage): Promise<void> {
  return new Promise((sent) => {
    if (process.connected && process.send !== undefined) process.send(message, undefined, {}, () => sent());
    else sent();
  });
}
