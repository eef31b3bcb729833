/**
 * The only place that reads process, env and signals and wires the real adapters: LevelDB
 * storage, the undici transport, the system clock and pino logs.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { LevelStorage } from './adapters/level-storage.js';
import { systemClock } from './adapters/system-clock.js';
import { UndiciTransport } from './adapters/undici-transport.js';
import { FramedPeerServer } from './adapters/framed-peer-server.js';
import { FramedTransport } from './adapters/framed-transport.js';
import { defaultMaxFrameBytes } from './core/wire/frames.js';
import type { Transport } from './ports/transport.js';
import { type NodeConfig, mergeConfig, validateConfig } from './engine/config.js';
import { type NodeIdentity, RingNode } from './engine/ring-node.js';
import { buildApp } from './http/app.js';
import type { Random } from './ports/random.js';
import type { Storage } from './ports/storage.js';
import { KvError } from './util/errors.js';
import { newClusterSecret, newNodeId } from './util/ids.js';
import { readSettingFile } from './util/setting-file.js';

/** The flags of `ringkv start`, as commander parsed them. */
export interface StartFlags {
  readonly port?: string | number;
  readonly host?: string;
  readonly data?: string;
  readonly seeds?: string;
  readonly config?: string;
  readonly logLevel?: string;
  readonly peerMap?: string;
}

/** The folder that holds package.json and config/ (two levels above this file, in src/ or dist/src/). */
export function packageRoot(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'package.json')) || !existsSync(join(folder, 'config', 'default.json'))) {
    const parent = dirname(folder);
    if (parent === folder) throw new KvError('KV_BAD_CONFIG', 'cannot find config/default.json above the ringkv code; reinstall ringkv');
    folder = parent;
  }
  return folder;
}

const booleanText = (name: string, text: string): boolean => {
  if (text === 'true' || text === '1') return true;
  if (text === 'false' || text === '0') return false;
  throw new KvError('KV_BAD_CONFIG', `environment variable ${name} must be true or false, got '${text}'`);
};
const numberText = (name: string, text: string): number => {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new KvError('KV_BAD_CONFIG', `environment variable ${name} must be a number, got '${text}'`);
  return value;
};
const listText = (text: string): string[] => text.split(',').map((item) => item.trim()).filter((item) => item.length > 0);

/** RINGKV_AUTH_TOKENS: `TOKEN:ROLE,...`; a malformed entry is reported by position, never by its text (it holds a token). */
function tokensText(name: string, text: string): { token: string; role: string }[] {
  return listText(text).map((entry, index) => {
    const colon = entry.lastIndexOf(':');
    if (colon <= 0) throw new KvError('KV_BAD_CONFIG', `entry ${index + 1} of environment variable ${name} must be TOKEN:ROLE with ROLE read-only or read-write`);
    return { token: entry.slice(0, colon), role: entry.slice(colon + 1) };
  });
}

/** RINGKV_AUTH_PROTECT: which of status, metrics and ui need a token, for example `status,metrics,ui`. */
function protectText(name: string, text: string): Record<string, boolean> {
  const chosen = listText(text);
  const known = ['status', 'metrics', 'ui'];
  const unknown = chosen.filter((item) => !known.includes(item));
  if (unknown.length > 0) throw new KvError('KV_BAD_CONFIG', `environment variable ${name} lists ${unknown.join(', ')}; use a comma-separated subset of ${known.join(', ')}`);
  return { protectStatus: chosen.includes('status'), protectMetrics: chosen.includes('metrics'), protectUi: chosen.includes('ui') };
}

/** RINGKV_* environment variables and the config field each sets (documented in the README). */
const environmentFields: Record<string, (name: string, text: string) => unknown> = {
  RINGKV_HOST: (_n, text) => ({ host: text }),
  RINGKV_PORT: (name, text) => ({ port: numberText(name, text) }),
  RINGKV_DATA_DIR: (_n, text) => ({ dataDir: text }),
  RINGKV_SEEDS: (_n, text) => ({ seeds: listText(text) }),
  RINGKV_LOG_LEVEL: (_n, text) => ({ logLevel: text }),
  RINGKV_CLUSTER_SECRET: (_n, text) => ({ clusterSecret: text }),
  RINGKV_PARTITION_COUNT: (name, text) => ({ partitionCount: numberText(name, text) }),
  RINGKV_N_VAL: (name, text) => ({ bucketDefaults: { nVal: numberText(name, text) } }),
  RINGKV_CONFLICT_MODE: (_n, text) => ({ bucketDefaults: { conflictMode: text } }),
  RINGKV_MAX_VALUE_BYTES: (name, text) => ({ limits: { maxValueBytes: numberText(name, text) } }),
  RINGKV_REQUEST_TIMEOUT_MS: (name, text) => ({ limits: { requestTimeoutMs: numberText(name, text) } }),
  RINGKV_PEER_TIMEOUT_MS: (name, text) => ({ limits: { peerTimeoutMs: numberText(name, text) } }),
  RINGKV_GOSSIP_INTERVAL_MS: (name, text) => ({ gossip: { intervalMs: numberText(name, text) } }),
  RINGKV_HINTED_HANDOFF: (name, text) => ({ hintedHandoff: { enabled: booleanText(name, text) } }),
  RINGKV_HINT_WINDOW_MS: (name, text) => ({ hintedHandoff: { windowMs: numberText(name, text) } }),
  RINGKV_ANTI_ENTROPY: (name, text) => ({ antiEntropy: { enabled: booleanText(name, text) } }),
  RINGKV_ANTI_ENTROPY_INTERVAL_MS: (name, text) => ({ antiEntropy: { intervalMs: numberText(name, text) } }),
  RINGKV_TOMBSTONE_GRACE_MS: (name, text) => ({ antiEntropy: { tombstoneGraceMs: numberText(name, text) } }),
  RINGKV_AUTH_TOKENS: (name, text) => ({ auth: { enabled: true, tokens: tokensText(name, text) } }),
  // After RINGKV_AUTH_TOKENS, so an explicit RINGKV_AUTH=false still turns authentication off.
  RINGKV_AUTH: (name, text) => ({ auth: { enabled: booleanText(name, text) } }),
  RINGKV_AUTH_PROTECT: (name, text) => ({ auth: protectText(name, text) }),
  RINGKV_TLS: (name, text) => ({ tls: { enabled: booleanText(name, text) } }),
  RINGKV_TLS_CERT_FILE: (_n, text) => ({ tls: { certFile: text } }),
  RINGKV_TLS_KEY_FILE: (_n, text) => ({ tls: { keyFile: text } }),
  RINGKV_TLS_CA_FILE: (_n, text) => ({ tls: { caFile: text } }),
  RINGKV_PEER_TRANSPORT: (_n, text) => ({ peerTransport: text }),
  RINGKV_PEER_PORT_OFFSET: (name, text) => ({ peerPortOffset: numberText(name, text) }),
};

function parsePeerMap(text: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of listText(text)) {
    const [from, to] = pair.split('=');
    if (from === undefined || to === undefined) throw new KvError('KV_BAD_CONFIG', `--peer-map entries are ADDRESS=DIAL_ADDRESS, got '${pair}'`);
    map[from] = to;
  }
  return map;
}

/** Builds the config: config/default.json, then --config FILE, then RINGKV_* variables, then flags; validated. */
export function loadConfig(flags: StartFlags, environment: NodeJS.ProcessEnv): NodeConfig {
  let merged: unknown = JSON.parse(readFileSync(join(packageRoot(), 'config', 'default.json'), 'utf8'));
  const file = flags.config ?? environment.RINGKV_CONFIG;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new KvError('KV_BAD_CONFIG', `cannot read config file ${file}: ${(error as Error).message}`);
    }
    try {
      merged = mergeConfig(merged, JSON.parse(text));
    } catch (error) {
      throw new KvError('KV_BAD_CONFIG', `config file ${file} is not valid JSON: ${(error as Error).message}`);
    }
  }
  for (const [name, toConfig] of Object.entries(environmentFields)) {
    const text = environment[name];
    if (text !== undefined) merged = mergeConfig(merged, toConfig(name, text));
  }
  const fromFlags: Record<string, unknown> = {};
  if (flags.port !== undefined) fromFlags.port = Number(flags.port);
  if (flags.host !== undefined) fromFlags.host = flags.host;
  if (flags.data !== undefined) fromFlags.dataDir = flags.data;
  if (flags.seeds !== undefined) fromFlags.seeds = listText(flags.seeds);
  if (flags.logLevel !== undefined) fromFlags.logLevel = flags.logLevel;
  if (flags.peerMap !== undefined) fromFlags.peerDialOverrides = parsePeerMap(flags.peerMap);
  return validateConfig(mergeConfig(merged, fromFlags));
}

const identityKey = Buffer.from('identity');

/** Reads (or creates) the node's id and cluster secret, and raises its generation for this start. */
export async function loadIdentity(storage: Storage, config: NodeConfig): Promise<NodeIdentity> {
  const stored = await storage.meta.get(identityKey);
  const previous = stored === undefined ? undefined : (JSON.parse(Buffer.from(stored).toString('utf8')) as { nodeId: string; generation: number; clusterSecret: string });
  const identity: NodeIdentity = {
    nodeId: previous?.nodeId ?? newNodeId(),
    // Cassandra's generation: larger on every start, so peers know a restarted node's heartbeats are new.
    generation: Math.max((previous?.generation ?? 0) + 1, Math.floor(Date.now() / 1000)),
    clusterSecret: config.clusterSecret ?? previous?.clusterSecret ?? newClusterSecret(),
    address: `${config.host}:${config.port}`,
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

/** Where this process's memory goes, for /status: the V8 heap, buffers outside it, and the rest (LevelDB's caches, code). */
function processFigures(): Record<string, number> {
  const usage = process.memoryUsage();
  return { rssBytes: usage.rss, heapUsedBytes: usage.heapUsed, heapTotalBytes: usage.heapTotal, externalBytes: usage.external, arrayBuffersBytes: usage.arrayBuffers };
}

/**
 * The largest peer frame: 64 MiB, and never less than two full-size values plus 1 MiB, so a
 * replica-put of a largest value with one sibling always fits (the HTTP peer route's rule,
 * for one message instead of a batch).
 */
function peerFrameCapBytes(config: NodeConfig): number {
  return Math.max(defaultMaxFrameBytes, 2 * config.limits.maxValueBytes + 1024 * 1024);
}

/** The framed peer server on the peer port (HTTP port + peerPortOffset), or a KV_BAD_CONFIG naming the port when it is taken. */
async function startPeerServer(config: NodeConfig, node: RingNode, secret: string, tls: ReturnType<typeof loadTlsFiles>, logger: pino.Logger): Promise<FramedPeerServer> {
  const server = new FramedPeerServer({
    handler: (request) => node.handlePeer(request),
    secret,
    maxFrameBytes: peerFrameCapBytes(config),
    ...(tls === undefined ? {} : { tls: { key: tls.key, cert: tls.cert } }),
    onError: (error, request) => logger.error({ err: error, peerRequest: request.type }, 'unexpected error while handling a peer request'),
  });
  const port = config.port + config.peerPortOffset;
  try {
    await server.listen(config.host, port);
  } catch (error) {
    throw new KvError('KV_BAD_CONFIG', `cannot listen on peer port ${port} (port ${config.port} + peerPortOffset ${config.peerPortOffset}): ${(error as Error).message}; free it or change peerPortOffset on every node`);
  }
  return server;
}

const mathRandom: Random = {
  next: () => Math.random(),
  int: (bound) => Math.floor(Math.random() * bound),
};

/** `ringkv start`: runs one node in the foreground until SIGTERM or SIGINT, then drains and closes cleanly. */
export async function runNode(flags: StartFlags): Promise<void> {
  const config = loadConfig(flags, process.env);
  const logger = pino({ level: config.logLevel, base: { port: config.port } });
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const storage = new LevelStorage({ location: join(dataDir, 'leveldb'), ...config.storage });
  await storage.open();
  const identity = await loadIdentity(storage, config);
  const tls = loadTlsFiles(config);
  // Peers are verified against the cluster's CA (not the system store): only certificates it signed are peers.
  const peerTls = tls === undefined ? {} : { protocol: 'https' as const, connect: { ca: tls.ca } };
  const transport: Transport =
    config.peerTransport === 'framed'
      ? new FramedTransport({
          secret: identity.clusterSecret,
          peerDialOverrides: config.peerDialOverrides,
          peerPortOffset: config.peerPortOffset,
          maxFrameBytes: peerFrameCapBytes(config),
          ...(tls === undefined ? {} : { tls: { ca: tls.ca } }),
        })
      : new UndiciTransport({ secret: identity.clusterSecret, peerDialOverrides: config.peerDialOverrides, ...peerTls });
  const node = new RingNode({ identity, config, storage, transport, clock: systemClock, random: mathRandom, logger, processFigures });
  await node.start();
  const app = await buildApp({ service: node, config, logger: false, ...(tls === undefined ? {} : { https: { key: tls.key, cert: tls.cert } }) });
  await app.listen({ host: config.host, port: config.port });
  // The HTTP peer route stays up in framed mode too, so a node still on 'http' can reach this one during a switch-over.
  const peerServer = config.peerTransport === 'framed' ? await startPeerServer(config, node, identity.clusterSecret, tls, logger) : undefined;
  logger.info({ nodeId: identity.nodeId, generation: identity.generation, address: identity.address, dataDir }, 'ringkv node started');
  // Says how access is set up without a single token character in the log.
  const roles = config.auth.tokens.map((token) => token.role);
  logger.info(
    {
      tls: config.tls.enabled,
      peerTransport: config.peerTransport,
      ...(peerServer === undefined ? {} : { peerPort: config.port + config.peerPortOffset }),
      clientAuth: config.auth.enabled,
      ...(config.auth.enabled ? { readWriteTokens: roles.filter((role) => role === 'read-write').length, readOnlyTokens: roles.filter((role) => role === 'read-only').length } : {}),
    },
    `serving ${config.tls.enabled ? 'https' : 'http'} with client authentication ${config.auth.enabled ? 'on' : 'off'}`,
  );

  let stopping = false;
  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining in-flight requests and closing');
    await app.close();
    await peerServer?.close();
    await node.stop();
    await transport.close();
    await storage.close();
    logger.info({}, 'stopped');
    process.exit(0);
  };
  // `ringkv leave`: once the node has handed off everything and marked itself left, it exits.
  node.onLeft = () => void shutdown('left the cluster');
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}
