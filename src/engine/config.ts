import { type Static, type TSchema, Kind, Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { BucketProperties } from '../core/buckets.js';
import { maxTtlSeconds } from '../core/versioning/versioned-object.js';
import { KvError } from '../util/errors.js';

export type { BucketProperties, QuorumSetting } from '../core/buckets.js';

/**
 * The one schema of a node's config (TypeBox, so it is plain JSON Schema). Everything about a
 * setting comes from here: its default, its validation, its RINGKV_* environment variable, and
 * its row in the README's table (`ringkv config table` prints it). Every object refuses keys it
 * does not know, so a typo stops the node with the nearest known key instead of being ignored.
 *
 * Annotations on a leaf, beside JSON Schema's own: `env` (the variable's name, when it is not
 * the name derived from the path; `false` for none), `secret` (masked by `ringkv config check`,
 * never shown in a message) and `expected` (how a message describes a valid value).
 */

/** The shortest client token accepted: shorter ones are guessable. */
export const minTokenLength = 16;

const hostPortPattern = '^[A-Za-z0-9._-]+:[0-9]{1,5}$';

const integer = (minimum: number, maximum: number, defaultValue: number, description: string, extra: Record<string, unknown> = {}) =>
  Type.Integer({ minimum, maximum, default: defaultValue, description, ...extra });
const boolean = (defaultValue: boolean, description: string, extra: Record<string, unknown> = {}) => Type.Boolean({ default: defaultValue, description, ...extra });
const oneOf = <const T extends readonly string[]>(choices: T, defaultValue: T[number], description: string, extra: Record<string, unknown> = {}) =>
  Type.Union(
    choices.map((choice) => Type.Literal(choice)),
    { default: defaultValue, description, expected: `one of ${choices.join(', ')}`, ...extra },
  ) as unknown as ReturnType<typeof Type.Union<ReturnType<typeof Type.Literal<T[number]>>[]>>;
const quorum = (defaultValue: 'one' | 'quorum' | 'all', description: string) =>
  Type.Union([Type.Integer({ minimum: 1, maximum: 64 }), Type.Literal('one'), Type.Literal('quorum'), Type.Literal('all')], {
    default: defaultValue,
    description,
    expected: 'an integer in 1..64 or one of one, quorum, all',
  });
const section = <T extends Record<string, TSchema>>(properties: T, description: string) =>
  Type.Object(properties, { additionalProperties: false, default: {}, description });

const conflictModes = ['siblings', 'lww'] as const;

/**
 * Bucket properties: the defaults have every field; one bucket's own have no defaults, so that
 * what a bucket leaves out falls back to `bucketDefaults` rather than to the schema's values.
 */
const bucketFields = (withDefaults: boolean) => {
  const strip = <T extends TSchema>(schema: T): T => {
    if (withDefaults) return schema;
    const { default: _unused, env: _env, ...rest } = schema as T & { env?: unknown };
    return rest as T;
  };
  return {
    nVal: strip(integer(1, 16, 3, 'replicas of each key (n_val)', { env: 'RINGKV_N_VAL' })),
    r: strip(quorum('quorum', 'replicas that must answer a read')),
    w: strip(quorum('quorum', 'replicas that must acknowledge a write')),
    conflictMode: strip(oneOf(conflictModes, 'siblings', '`siblings` keeps concurrent writes; `lww` keeps the newest', { env: 'RINGKV_CONFLICT_MODE' })),
    ttlSeconds: strip(integer(0, maxTtlSeconds, 0, 'seconds a write lives when it gives no `ttl` of its own (0: forever)')),
  };
};

const authToken = Type.Object(
  {
    token: Type.String({
      minLength: minTokenLength,
      pattern: '^[^\\s,]+$',
      secret: true,
      expected: `a string of at least ${minTokenLength} characters without spaces or commas`,
    }),
    role: Type.Union([Type.Literal('read-only'), Type.Literal('read-write')], { expected: 'one of read-only, read-write', description: 'what the token may do' }),
    name: Type.Optional(Type.String({ minLength: 1, description: "a label for the token's holder, safe to show" })),
  },
  { additionalProperties: false, expected: 'an object {"token": "...", "role": "read-only" | "read-write"}' },
);

/** The whole config: the root of the schema. */
export const nodeConfigSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'the address to listen on and be known by, unless `listen` / `advertise` say otherwise' }),
    listen: Type.Optional(
      Type.String({ minLength: 1, description: 'the address to bind, for example 0.0.0.0 in a container (default: `host`); Cassandra\'s listen_address' }),
    ),
    advertise: Type.Optional(
      Type.String({
        pattern: hostPortPattern,
        expected: 'a host:port (an IP address or a DNS name)',
        description: "the host:port peers and clients reach this node at, an IP or a DNS name (default: `host`:`port`); Cassandra's broadcast_address",
      }),
    ),
    port: integer(1, 65_535, 17_101, 'the port of the HTTP API (public and peer)'),
    dataDir: Type.String({ minLength: 1, default: './data/node', description: "the node's data directory", env: 'RINGKV_DATA_DIR' }),
    seeds: Type.Array(Type.String({ pattern: hostPortPattern, expected: 'a host:port' }), {
      default: [],
      expected: 'a list of host:port',
      description: 'host:port of running nodes to join through (DNS names are resolved again on every attempt); comma-separated in the environment',
    }),
    clusterSecret: Type.Optional(
      Type.String({ minLength: 16, secret: true, expected: 'a string of at least 16 characters', description: 'the shared secret of peer traffic; generated and persisted by a node when absent' }),
    ),
    peerDialOverrides: Type.Record(Type.String({ pattern: hostPortPattern }), Type.String({ pattern: hostPortPattern, expected: 'a host:port' }), {
      default: {},
      // A key that is not a host:port is refused rather than ignored.
      additionalProperties: false,
      expected: 'an object of host:port -> host:port',
      env: false,
      description: 'logical peer address -> address actually dialled (the chaos harness\'s per-link proxies; `--peer-map`)',
    }),
    peerTransport: oneOf(['http', 'framed'] as const, 'framed', "how node-to-node traffic travels: 'framed' (persistent framed connections with two lanes to the peer port) or 'http' (batched requests to the HTTP peer route, as nodes before the framed default spoke); the same on every node"),
    peerPortOffset: integer(1, 65_534, 1000, "with peerTransport 'framed', a node's peer port is its HTTP port plus this offset; one setting for the whole cluster, as peers derive it from the advertised address"),
    logLevel: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'silent'] as const, 'info', 'log level'),
    partitionCount: integer(1, 65_536, 256, 'Q, a power of two, fixed when the cluster is created', { expected: 'a power of two in 1..65536' }),
    bucketDefaults: section(bucketFields(true), 'the properties of a bucket that sets none of its own'),
    buckets: Type.Record(Type.String(), Type.Partial(Type.Object(bucketFields(false), { additionalProperties: false })), {
      default: {},
      env: false,
      description: 'per-bucket properties, for example `{"sessions": {"conflictMode": "lww", "nVal": 2}}`',
    }),
    limits: section(
      {
        maxValueBytes: integer(1, 512 * 1024 * 1024, 8_388_608, 'the largest value', { env: 'RINGKV_MAX_VALUE_BYTES' }),
        maxKeyBytes: integer(1, 60_000, 1024, 'the longest key (UTF-8 bytes)'),
        maxBucketBytes: integer(1, 60_000, 256, 'the longest bucket name (UTF-8 bytes)'),
        siblingsWarn: integer(1, 100_000, 25, 'a write that leaves a key with more siblings than this is logged and counted'),
        maxSiblings: integer(1, 100_000, 100, 'a write without a context to a key with this many siblings is refused (409 KV_TOO_MANY_SIBLINGS); at least siblingsWarn'),
        maxSetElements: integer(1, 1_000_000, 10_000, 'the most elements a set (/dt) may hold: an add past it is refused (413 KV_SET_TOO_LARGE)'),
        maxSetBytes: integer(1, 512 * 1024 * 1024, 1_048_576, "the most UTF-8 bytes a set's (/dt) elements may total: an add past it is refused (413 KV_SET_TOO_LARGE)"),
        maxInFlightRequests: integer(1, 1_000_000, 1024, 'requests served at once before load is shed'),
        requestTimeoutMs: integer(1, 600_000, 5000, "a coordinator's deadline when a request sets no timeout_ms", { env: 'RINGKV_REQUEST_TIMEOUT_MS' }),
        peerTimeoutMs: integer(1, 600_000, 3000, 'the deadline of one call to a peer', { env: 'RINGKV_PEER_TIMEOUT_MS' }),
        speculativeRetryMs: integer(0, 600_000, 200, 'a read asks the other replicas after this long without an answer (0: all at once)'),
      },
      'bounds on requests',
    ),
    storage: section(
      {
        writeBufferSizeBytes: integer(65_536, 2 ** 31, 4_194_304, 'LevelDB memtable size'),
        blockCacheSizeBytes: integer(0, 2 ** 34, 8_388_608, 'LevelDB block cache size'),
        maxFileSizeBytes: integer(65_536, 2 ** 31, 2_097_152, 'LevelDB SSTable size'),
        compression: boolean(true, 'LevelDB block compression'),
      },
      'LevelDB settings',
    ),
    gossip: section(
      {
        intervalMs: integer(10, 600_000, 1000, 'pause between gossip rounds', { env: 'RINGKV_GOSSIP_INTERVAL_MS' }),
        fanout: integer(1, 64, 2, 'peers per gossip round'),
        phiThreshold: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 100, default: 8, expected: 'a number in (0, 100)', description: 'phi above which a peer is down' }),
      },
      'membership gossip',
    ),
    hintedHandoff: section(
      {
        enabled: boolean(true, 'fallback nodes take writes for down replicas, with a hint', { env: 'RINGKV_HINTED_HANDOFF' }),
        windowMs: integer(1000, 30 * 24 * 3_600_000, 10_800_000, 'how long a hint is kept (3 h)', { env: 'RINGKV_HINT_WINDOW_MS' }),
        batchSize: integer(1, 100_000, 100, 'hints replayed per batch'),
        intervalMs: integer(10, 3_600_000, 1000, 'pause between hint replays'),
        maxHintsPerTarget: integer(1, 100_000_000, 100_000, 'hints kept for one down node; more are refused'),
        maxBytesPerTarget: integer(1, 2 ** 40, 268_435_456, 'bytes of hints kept for one down node; more are refused'),
      },
      'hinted handoff',
    ),
    antiEntropy: section(
      {
        enabled: boolean(true, 'Merkle-tree anti-entropy in the background', { env: 'RINGKV_ANTI_ENTROPY' }),
        intervalMs: integer(10, 86_400_000, 10_000, 'pause between two comparisons with a peer of the partitions that changed since they last agreed', { env: 'RINGKV_ANTI_ENTROPY_INTERVAL_MS' }),
        fullCompareIntervalMs: integer(10, 7 * 86_400_000, 600_000, 'pause between two comparisons with a peer of every partition the two share, changed or not (10 min; one summary message per peer)'),
        tombstoneGraceMs: integer(0, 365 * 86_400_000, 86_400_000, 'how long a tombstone outlives its delete (24 h); at least the hint window', {
          env: 'RINGKV_TOMBSTONE_GRACE_MS',
        }),
        reapedRetentionMs: integer(0, 10 * 365 * 86_400_000, 30 * 86_400_000, 'how long a replica remembers a reaped tombstone (30 d), so a node that missed the delete cannot bring the key back; at least the tombstone grace'),
        maxKeysPerSecond: integer(1, 10_000_000, 5000, 'keys repaired per second at most'),
      },
      'anti-entropy',
    ),
    auth: section(
      {
        enabled: boolean(false, 'client authentication on the public API', { env: 'RINGKV_AUTH' }),
        tokens: Type.Array(authToken, {
          default: [],
          secret: true,
          env: 'RINGKV_AUTH_TOKENS',
          description: 'client bearer tokens; `TOKEN:ROLE,...` in the environment, which also turns `auth.enabled` on',
        }),
        protectStatus: boolean(false, 'GET /status needs a token'),
        protectMetrics: boolean(false, 'GET /metrics needs a token'),
        protectUi: boolean(false, '/ui needs a token (also whenever /status or /metrics does)'),
      },
      'client authentication',
    ),
    tls: section(
      {
        enabled: boolean(false, 'https for the public and the peer API (one listener)', { env: 'RINGKV_TLS' }),
        certFile: Type.String({ default: '', expected: 'a path to a PEM file', description: "this node's certificate (PEM), for its advertised address" }),
        keyFile: Type.String({ default: '', expected: 'a path to a PEM file', description: "this node's key (PEM)" }),
        caFile: Type.String({ default: '', expected: 'a path to a PEM file', description: 'the CA that signed the nodes\' certificates (PEM)' }),
      },
      'TLS',
    ),
    handoff: section(
      {
        intervalMs: integer(10, 3_600_000, 1000, 'pause between partition handoff steps'),
        batchSize: integer(1, 10_000, 500, 'keys per streamed batch'),
        maxPageBytes: integer(65_536, 256 * 1024 * 1024, 4 * 1024 * 1024, 'about how many bytes of values one handoff or anti-entropy page carries (always at least one object)'),
        cleanupDelayMs: integer(0, 86_400_000, 10_000, 'how long a node keeps a partition it no longer replicates'),
      },
      'partition handoff',
    ),
  },
  { additionalProperties: false },
);

type DeepReadonly<T> = T extends readonly (infer Item)[] ? readonly DeepReadonly<Item>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

type SchemaConfig = DeepReadonly<Static<typeof nodeConfigSchema>>;

/** Everything a node is configured with: the schema's shape, with `listen` and `advertise` always resolved. */
export type NodeConfig = Omit<SchemaConfig, 'listen' | 'advertise' | 'bucketDefaults' | 'buckets'> & {
  /** The address the node binds (`listen`, else `host`). */
  readonly listen: string;
  /** The host:port peers and clients use to reach this node (`advertise`, else `host:port`). */
  readonly advertise: string;
  readonly bucketDefaults: BucketProperties;
  readonly buckets: Readonly<Record<string, Partial<BucketProperties>>>;
};

/** The `auth` section: bearer tokens, and which read-only endpoints need one. */
export type AuthConfig = NodeConfig['auth'];
/** One client bearer token. */
export type AuthToken = AuthConfig['tokens'][number];
/** What a client token may do: read keys, or also write them and use /admin. */
export type AuthRole = AuthToken['role'];
/** The `tls` section: PEM files of this node's certificate and key, and of the CA peers are verified against. */
export type TlsConfig = NodeConfig['tls'];

// ---------------------------------------------------------------------------------------------
// Walking the schema

interface Annotations {
  readonly env?: string | false;
  readonly secret?: boolean;
  readonly expected?: string;
  readonly description?: string;
  readonly default?: unknown;
}

type Schema = TSchema & Annotations & Record<string, unknown>;

const isObjectSchema = (schema: Schema): boolean => schema[Kind] === 'Object';
const isRecordSchema = (schema: Schema): boolean => schema[Kind] === 'Record';
const isArraySchema = (schema: Schema): boolean => schema[Kind] === 'Array';

function propertiesOf(schema: Schema): Record<string, Schema> {
  return (schema.properties ?? {}) as Record<string, Schema>;
}

function recordValueSchema(schema: Schema): Schema {
  const patterns = (schema.patternProperties ?? {}) as Record<string, Schema>;
  const [value] = Object.values(patterns);
  return (value ?? Type.Unknown()) as Schema;
}

/** One setting: a leaf of the schema (scalars, lists, and the records and lists of objects treated whole). */
export interface ConfigSetting {
  /** Dotted path, for example `limits.requestTimeoutMs`. */
  readonly path: string;
  readonly schema: Schema;
  /** The RINGKV_* variable that sets it, if any. */
  readonly env: string | undefined;
}

const snake = (name: string): string => name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();

function collectSettings(schema: Schema, path: string[], out: ConfigSetting[]): ConfigSetting[] {
  if (isObjectSchema(schema)) {
    for (const [name, child] of Object.entries(propertiesOf(schema))) collectSettings(child, [...path, name], out);
    return out;
  }
  const derived = `RINGKV_${path.map(snake).join('_')}`;
  const env = schema.env === false ? undefined : (schema.env ?? derived);
  out.push({ path: path.join('.'), schema, env });
  return out;
}

/** Every setting of the schema, in schema order. */
export const configSettings: readonly ConfigSetting[] = collectSettings(nodeConfigSchema as Schema, [], []);

/** The dotted paths of every key the schema knows, objects included. */
function knownPaths(schema: Schema, path: string[], out: string[]): string[] {
  if (path.length > 0) out.push(path.join('.'));
  if (isObjectSchema(schema)) for (const [name, child] of Object.entries(propertiesOf(schema))) knownPaths(child, [...path, name], out);
  return out;
}
const allKnownPaths = knownPaths(nodeConfigSchema as Schema, [], []);

// ---------------------------------------------------------------------------------------------
// Unknown keys, with the nearest known one

function editDistance(left: string, right: string): number {
  const a = left.toLowerCase();
  const b = right.toLowerCase();
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] as number) + 1, (current[j - 1] as number) + 1, (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/** The known key closest to `name`: first among its siblings, then anywhere in the schema (a setting put in the wrong section). */
function nearestKey(name: string, siblings: readonly string[], parentPath: string): string | undefined {
  const close = (candidate: string): boolean => editDistance(name, candidate) <= Math.max(2, Math.floor(candidate.length / 4));
  const rank = (candidates: readonly string[], key: (candidate: string) => string) =>
    candidates.filter((candidate) => close(key(candidate))).sort((a, b) => editDistance(name, key(a)) - editDistance(name, key(b)))[0];
  const sibling = rank(siblings, (candidate) => candidate);
  if (sibling !== undefined) return parentPath === '' ? sibling : `${parentPath}.${sibling}`;
  return rank(allKnownPaths, (candidate) => candidate.split('.').at(-1) as string);
}

const joinPath = (parent: string, name: string): string => (parent === '' ? name : `${parent}.${name}`);

/** The first key in `value` the schema does not know, with a suggestion, or undefined. */
function findUnknownKey(schema: Schema, value: unknown, path: string): { key: string; suggestion: string | undefined } | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  if (isArraySchema(schema) && Array.isArray(value)) {
    const items = schema.items as Schema;
    for (const [index, item] of value.entries()) {
      const found = findUnknownKey(items, item, `${path}[${index}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (Array.isArray(value)) return undefined;
  if (isRecordSchema(schema)) {
    const valueSchema = recordValueSchema(schema);
    for (const [name, item] of Object.entries(value)) {
      const found = findUnknownKey(valueSchema, item, joinPath(path, name));
      if (found !== undefined) return found;
    }
    return undefined;
  }
  const inner = schema[Kind] === 'Object' ? schema : undefined;
  if (inner === undefined) return undefined;
  const properties = propertiesOf(inner);
  const names = Object.keys(properties);
  for (const [name, item] of Object.entries(value)) {
    const child = properties[name];
    if (child === undefined) return { key: joinPath(path, name), suggestion: nearestKey(name, names, path.replace(/\[\d+\]/g, '')) };
    const found = findUnknownKey(child, item, joinPath(path, name));
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * Refuses a key the schema does not know, naming it, where it came from, and the nearest known
 * key: a misspelt setting would otherwise be silently ignored and its default used.
 */
export function checkKnownKeys(candidate: unknown, source: string): void {
  const found = findUnknownKey(nodeConfigSchema as Schema, candidate, '');
  if (found === undefined) return;
  const hint = found.suggestion === undefined ? `the settings are listed by \`ringkv config table\`` : `did you mean '${found.suggestion}'?`;
  throw new KvError('KV_BAD_CONFIG', `unknown config key '${found.key}' in ${source}; ${hint}`);
}

// ---------------------------------------------------------------------------------------------
// Validation

function fail(field: string, expected: string, value: unknown, secret = false): never {
  const shown = secret ? '(hidden)' : JSON.stringify(value);
  throw new KvError('KV_BAD_CONFIG', `config field '${field}' must be ${expected}, got ${shown}; fix it in the config file, the RINGKV_* variable or the flag`);
}

/** How a message describes a valid value of `schema`. */
function expectedText(schema: Schema): string {
  if (schema.expected !== undefined) return schema.expected;
  switch (schema[Kind]) {
    case 'Integer':
      return `an integer in ${String(schema.minimum)}..${String(schema.maximum)}`;
    case 'Number':
      return 'a number';
    case 'Boolean':
      return 'true or false';
    case 'String':
      return schema.minLength === undefined ? 'a string' : 'a non-empty string';
    case 'Array':
      return 'a list';
    case 'Object':
    case 'Record':
      return 'an object';
    default:
      return 'a valid value';
  }
}

/** `/auth/tokens/0/role` -> `auth.tokens[0].role`. */
function dottedPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : joinPath(path, part)), '');
}

/** Whether a path lies inside a secret setting (a token or the cluster secret), whose value a message must not show. */
function isSecretPath(path: string): boolean {
  const bare = path.replace(/\[\d+\]/g, '');
  return configSettings.some((setting) => setting.schema.secret === true && (bare === setting.path || bare.startsWith(`${setting.path}.`)));
}

/** The schema's defaults: every setting that has one. */
export function configDefaults(): unknown {
  return Value.Default(nodeConfigSchema, {});
}

/** Deep-merges plain objects; arrays and scalars of `override` replace those of `base`. */
export function mergeConfig(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (base === null || typeof base !== 'object' || Array.isArray(base) || override === null || typeof override !== 'object' || Array.isArray(override)) {
    return override;
  }
  const result: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [name, value] of Object.entries(override as Record<string, unknown>)) {
    result[name] = mergeConfig(result[name], value);
  }
  return result;
}

/** The checks that span fields, or that JSON Schema cannot say, after the schema has passed. */
function checkAcrossFields(config: SchemaConfig): void {
  const count = config.partitionCount;
  if ((count & (count - 1)) !== 0) fail('partitionCount', 'a power of two in 1..65536', count);
  const seen = new Set<string>();
  config.auth.tokens.forEach((entry, index) => {
    if (seen.has(entry.token)) fail(`auth.tokens[${index}].token`, 'different from every other token', undefined, true);
    seen.add(entry.token);
  });
  if (config.auth.enabled && config.auth.tokens.length === 0) fail('auth.tokens', 'at least one token when auth.enabled is true (or set RINGKV_AUTH_TOKENS)', []);
  if (config.tls.enabled) {
    for (const file of ['certFile', 'keyFile', 'caFile'] as const) {
      if (config.tls[file] === '') fail(`tls.${file}`, 'a path to a PEM file when tls.enabled is true', '');
    }
  }
  // Cassandra's rule: a tombstone must outlive every hint that could carry an older write back,
  // or a late hint would resurrect a deleted key once the tombstone is reaped.
  if (config.hintedHandoff.enabled && config.antiEntropy.tombstoneGraceMs < config.hintedHandoff.windowMs) {
    fail('antiEntropy.tombstoneGraceMs', `at least hintedHandoff.windowMs (${config.hintedHandoff.windowMs}) while hinted handoff is on`, config.antiEntropy.tombstoneGraceMs);
  }
  if (config.peerTransport === 'framed' && config.port + config.peerPortOffset > 65_535) {
    fail('peerPortOffset', `small enough that port + peerPortOffset (the peer port) is at most 65535 (port is ${config.port})`, config.peerPortOffset);
  }
  if (config.limits.maxSiblings < config.limits.siblingsWarn) {
    fail('limits.maxSiblings', `at least limits.siblingsWarn (${config.limits.siblingsWarn})`, config.limits.maxSiblings);
  }
  // The record of a reaped tombstone is what refuses a stale version after the reap, so it must
  // outlive the tombstone's own grace period (it is meant to outlive any node's absence).
  if (config.antiEntropy.reapedRetentionMs < config.antiEntropy.tombstoneGraceMs) {
    fail('antiEntropy.reapedRetentionMs', `at least antiEntropy.tombstoneGraceMs (${config.antiEntropy.tombstoneGraceMs})`, config.antiEntropy.reapedRetentionMs);
  }
  for (const address of [...config.seeds, ...(config.advertise === undefined ? [] : [config.advertise])]) {
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    if (port < 1 || port > 65_535) fail(config.seeds.includes(address) ? 'seeds' : 'advertise', 'host:port with a port in 1..65535', address);
  }
}

/** Wildcard bind addresses: a node may listen on one, but no peer can dial it. */
const wildcardAddresses = new Set(['0.0.0.0', '::', '[::]']);

/** `listen` and `advertise` from `host` and `port` when they are not set. */
function resolveAddresses(config: SchemaConfig): { listen: string; advertise: string } {
  const listen = config.listen ?? config.host;
  const advertise = config.advertise ?? `${config.host}:${config.port}`;
  const advertisedHost = advertise.slice(0, advertise.lastIndexOf(':'));
  if (wildcardAddresses.has(advertisedHost)) {
    fail('advertise', `a host:port that peers and clients can dial: ${advertisedHost} is a wildcard only for listen (set listen to it, and host or advertise to this node's own address)`, advertise);
  }
  return { listen, advertise };
}

/**
 * Validates a config object against the schema and fills in the defaults of what it leaves out;
 * throws KV_BAD_CONFIG naming the first unknown key or bad field (never showing a secret).
 */
export function validateConfig(candidate: unknown): NodeConfig {
  if (candidate === null || typeof candidate !== 'object' || Array.isArray(candidate)) fail('(root)', 'an object', candidate);
  checkKnownKeys(candidate, 'the config');
  const filled = Value.Default(nodeConfigSchema, structuredClone(candidate));
  const error = Value.Errors(nodeConfigSchema, filled).First();
  if (error !== undefined) {
    const field = dottedPath(error.path);
    const missing = error.value === undefined;
    fail(field === '' ? '(root)' : field, expectedText(error.schema as Schema), missing ? '(nothing)' : error.value, isSecretPath(field));
  }
  const config = filled as SchemaConfig;
  checkAcrossFields(config);
  return { ...config, ...resolveAddresses(config) } as NodeConfig;
}

/** The properties of a bucket: its own settings over the defaults. */
export function bucketProperties(config: NodeConfig, bucket: string): BucketProperties {
  return { ...config.bucketDefaults, ...(config.buckets[bucket] ?? {}) };
}

// ---------------------------------------------------------------------------------------------
// The environment

const listText = (text: string): string[] =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);

function environmentValue(setting: ConfigSetting, name: string, text: string): unknown {
  const kind = setting.schema[Kind];
  if (kind === 'Integer' || kind === 'Number') {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw new KvError('KV_BAD_CONFIG', `environment variable ${name} must be a number, got '${text}'`);
    return value;
  }
  if (kind === 'Boolean') {
    if (text === 'true' || text === '1') return true;
    if (text === 'false' || text === '0') return false;
    throw new KvError('KV_BAD_CONFIG', `environment variable ${name} must be true or false, got '${text}'`);
  }
  if (kind === 'Array') return listText(text);
  // A quorum is a number of replicas or a level name.
  if (kind === 'Union' && /^\d+$/.test(text)) return Number(text);
  return text;
}

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

/** Variables that set more than one field, beside the one variable per setting. */
export const compositeEnvironment: Readonly<Record<string, { readonly fields: string; readonly description: string }>> = {
  RINGKV_AUTH_PROTECT: { fields: 'auth.protect*', description: 'a comma-separated subset of `status,metrics,ui`' },
};

function nested(path: string, value: unknown): unknown {
  return path
    .split('.')
    .reverse()
    .reduce<unknown>((inner, part) => ({ [part]: inner }), value);
}

/**
 * The config the RINGKV_* variables of `environment` set: one variable per setting (named in
 * the schema, else RINGKV_ and the path in upper snake case), plus RINGKV_AUTH_PROTECT.
 */
export function configFromEnvironment(environment: Readonly<Record<string, string | undefined>>): unknown {
  let merged: unknown = {};
  // RINGKV_AUTH_TOKENS first: it turns auth on, and an explicit RINGKV_AUTH=false must still win.
  const ordered = [...configSettings].sort((left, right) => Number(right.path === 'auth.tokens') - Number(left.path === 'auth.tokens'));
  for (const setting of ordered) {
    if (setting.env === undefined) continue;
    const text = environment[setting.env];
    if (text === undefined) continue;
    if (setting.path === 'auth.tokens') {
      merged = mergeConfig(merged, { auth: { enabled: true, tokens: tokensText(setting.env, text) } });
    } else {
      merged = mergeConfig(merged, nested(setting.path, environmentValue(setting, setting.env, text)));
    }
  }
  const protect = environment.RINGKV_AUTH_PROTECT;
  if (protect !== undefined) merged = mergeConfig(merged, { auth: protectText('RINGKV_AUTH_PROTECT', protect) });
  return merged;
}

// ---------------------------------------------------------------------------------------------
// Showing the config

/** A copy of `config` with every secret replaced by `***` (what `ringkv config check` prints). */
export function maskSecrets(config: NodeConfig): unknown {
  const copy = structuredClone(config) as unknown as Record<string, unknown> & { auth: { tokens: Record<string, unknown>[] } };
  if (typeof copy.clusterSecret === 'string') copy.clusterSecret = '***';
  copy.auth.tokens = copy.auth.tokens.map((token) => ({ ...token, token: '***' }));
  return copy;
}

function defaultText(setting: ConfigSetting): string {
  if (setting.path === 'listen') return '`host`';
  if (setting.path === 'advertise') return '`host`:`port`';
  const value = setting.schema.default;
  if (value === undefined) return '';
  return `\`${JSON.stringify(value)}\``;
}

/** The README's table of settings: field, default, environment variable, meaning (generated from the schema). */
export function configTableMarkdown(): string {
  const rows = configSettings.map((setting) => {
    const expected = expectedText(setting.schema);
    const meaning = [setting.schema.description, expected === 'a valid value' ? undefined : expected].filter((part) => part !== undefined).join('; ');
    return `| \`${setting.path}\` | ${defaultText(setting)} | ${setting.env === undefined ? '' : `\`${setting.env}\``} | ${meaning} |`;
  });
  for (const [name, composite] of Object.entries(compositeEnvironment)) rows.push(`| \`${composite.fields}\` | | \`${name}\` | ${composite.description} |`);
  return ['| field | default | variable | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** The two peer transports a node can run. */
export type PeerTransportKind = NodeConfig['peerTransport'];
