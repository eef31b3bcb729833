import { type Static, type TSchema, Kind, Type } from '@sinclair/typebox';
import { type BucketProperties, maxNVal } from '../core/buckets.js';
import { maxTtlSeconds } from '../core/versioning/versioned-object.js';

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
/** A host or zone label: the characters of a node id (src/core/membership/view-validation.ts checks gossiped ones the same way), or empty for the default. */
const placementLabelPattern = '^[A-Za-z0-9._-]*$';

const integer = (minimum: number, maximum: number, defaultValue: number, description: string, extra: Record<string, unknown> = {}) =>
  Type.Integer({ minimum, maximum, default: defaultValue, description, ...extra });
const boolean = (defaultValue: boolean, description: string, extra: Record<string, unknown> = {}) =>
  Type.Boolean({ default: defaultValue, description, ...extra });
const oneOf = <const T extends readonly string[]>(choices: T, defaultValue: T[number], description: string, extra: Record<string, unknown> = {}) =>
  Type.Union(
    choices.map((choice) => Type.Literal(choice)),
    { default: defaultValue, description, expected: `one of ${choices.join(', ')}`, ...extra },
  ) as unknown as ReturnType<typeof Type.Union<ReturnType<typeof Type.Literal<T[number]>>[]>>;
const quorum = (defaultValue: 'one' | 'quorum' | 'all', description: string) =>
  Type.Union([Type.Integer({ minimum: 1, maximum: maxNVal }), Type.Literal('one'), Type.Literal('quorum'), Type.Literal('all')], {
    default: defaultValue,
    description,
    expected: `an integer in 1..${maxNVal} (at most the bucket's nVal) or one of one, quorum, all`,
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
    nVal: strip(integer(1, maxNVal, 3, 'replicas of each key (n_val)', { env: 'RINGKV_N_VAL' })),
    r: strip(quorum('quorum', 'replicas that must answer a read')),
    w: strip(quorum('quorum', 'replicas that must acknowledge a write')),
    conflictMode: strip(oneOf(conflictModes, 'siblings', '`siblings` keeps concurrent writes; `lww` keeps the newest', { env: 'RINGKV_CONFLICT_MODE' })),
    ttlSeconds: strip(integer(0, maxTtlSeconds, 0, 'seconds a write lives when it gives no `ttl` of its own (0: forever)')),
    consistent: strip(
      boolean(
        false,
        'every GET, PUT and DELETE on the bucket is linearizable per key (a Paxos round on its primaries; docs/CONSENSUS.md); fixed when the cluster is founded',
      ),
    ),
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
    role: Type.Union([Type.Literal('read-only'), Type.Literal('read-write')], {
      expected: 'one of read-only, read-write',
      description: 'what the token may do',
    }),
    name: Type.Optional(Type.String({ minLength: 1, description: "a label for the token's holder, safe to show" })),
  },
  { additionalProperties: false, expected: 'an object {"token": "...", "role": "read-only" | "read-write"}' },
);

/** The whole config: the root of the schema. */
export const nodeConfigSchema = Type.Object(
  {
    host: Type.String({
      minLength: 1,
      default: '127.0.0.1',
      description: 'the address to listen on and be known by, unless `listen` / `advertise` say otherwise',
    }),
    listen: Type.Optional(
      Type.String({ minLength: 1, description: "the address to bind, for example 0.0.0.0 in a container (default: `host`); Cassandra's listen_address" }),
    ),
    advertise: Type.Optional(
      Type.String({
        pattern: hostPortPattern,
        expected: 'a host:port (an IP address or a DNS name)',
        description: "the host:port peers and clients reach this node at, an IP or a DNS name (default: `host`:`port`); Cassandra's broadcast_address",
      }),
    ),
    port: integer(1, 65_535, 17_101, 'the port of the HTTP API (clients and tools; peers talk on port + peerPortOffset)'),
    dataDir: Type.String({ minLength: 1, default: './data/node', description: "the node's data directory", env: 'RINGKV_DATA_DIR' }),
    seeds: Type.Array(Type.String({ pattern: hostPortPattern, expected: 'a host:port' }), {
      default: [],
      expected: 'a list of host:port',
      description: 'host:port of running nodes to join through (DNS names are resolved again on every attempt); comma-separated in the environment',
    }),
    clusterSecret: Type.Optional(
      Type.String({
        minLength: 16,
        secret: true,
        expected: 'a string of at least 16 characters',
        description: 'the shared secret of peer traffic; generated and persisted by a node when absent',
      }),
    ),
    peerDialOverrides: Type.Record(Type.String({ pattern: hostPortPattern }), Type.String({ pattern: hostPortPattern, expected: 'a host:port' }), {
      default: {},
      // A key that is not a host:port is refused rather than ignored.
      additionalProperties: false,
      expected: 'an object of host:port -> host:port',
      env: false,
      description: "logical peer address -> address actually dialled (the chaos harness's per-link proxies; `--peer-map`)",
    }),
    peerPortOffset: integer(
      1,
      65_534,
      1000,
      "a node's peer port (where nodes talk to each other, over persistent framed connections) is its HTTP port plus this offset; one setting for the whole cluster, as peers derive it from the advertised address",
    ),
    placement: section(
      {
        host: Type.String({
          pattern: placementLabelPattern,
          maxLength: 128,
          default: '',
          expected: "a label of letters, digits, '.', '_' or '-' (empty: this node's id)",
          description:
            "the machine this node runs on: no two replicas of a key go to nodes with the same host while there are n_val hosts (`--placement-host`; empty: the node's own id, a host of its own); fixed while the node is a member",
        }),
        zone: Type.String({
          pattern: placementLabelPattern,
          maxLength: 128,
          default: '',
          expected: "a label of letters, digits, '.', '_' or '-' (empty: no zone)",
          description:
            "the zone (rack, availability zone) of this node's host: when zones are labelled, a key's replicas go to n_val different zones while there are that many (`--zone`; Cassandra's rack, Riak's location); fixed while the node is a member",
        }),
      },
      "where this node runs, so a key's replicas go to different hosts and zones",
    ),
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
        maxValueBytes: integer(1, 32 * 1024 * 1024, 8_388_608, 'the largest value (413 KV_VALUE_TOO_LARGE past it); at most (maxObjectBytes − 65536) / 2', {
          env: 'RINGKV_MAX_VALUE_BYTES',
        }),
        maxObjectBytes: integer(
          1,
          64 * 1024 * 1024,
          25_165_824,
          "the largest object (a key's siblings, or its counter or set, with their metadata) a write may leave: a write past it is refused before anything is stored (413 KV_OBJECT_TOO_LARGE), so every object fits a peer frame (64 MiB) and can be replicated; at least 2 × maxValueBytes + 65536",
          { env: 'RINGKV_MAX_OBJECT_BYTES' },
        ),
        maxKeyBytes: integer(1, 60_000, 1024, 'the longest key (UTF-8 bytes)'),
        maxBucketBytes: integer(1, 60_000, 256, 'the longest bucket name (UTF-8 bytes)'),
        siblingsWarn: integer(1, 100_000, 25, 'a write that leaves a key with more siblings than this is logged and counted'),
        maxSiblings: integer(
          1,
          100_000,
          100,
          'a write without a context to a key with this many siblings is refused (409 KV_TOO_MANY_SIBLINGS); at least siblingsWarn',
        ),
        maxSetElements: integer(1, 1_000_000, 10_000, 'the most elements a set (/dt) may hold: an add past it is refused (413 KV_SET_TOO_LARGE)'),
        maxSetBytes: integer(
          1,
          512 * 1024 * 1024,
          1_048_576,
          "the most UTF-8 bytes a set's (/dt) elements may total: an add past it is refused (413 KV_SET_TOO_LARGE)",
        ),
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
        objectCacheBytes: integer(
          0,
          2 ** 31,
          16_777_216,
          "the replica's cache of the latest stored object of recently written and read keys: a hit spares a replica write its LevelDB read before the write, and a replica read its LevelDB read (0: off)",
          { env: 'RINGKV_OBJECT_CACHE_BYTES' },
        ),
      },
      'LevelDB settings',
    ),
    gossip: section(
      {
        intervalMs: integer(10, 600_000, 1000, 'SWIM protocol period: one probe per period (probe timeout 1/2, news every 1/5)', {
          env: 'RINGKV_GOSSIP_INTERVAL_MS',
        }),
        fanout: integer(1, 64, 2, 'members each SWIM news message goes to'),
      },
      'membership (SWIM)',
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
        intervalMs: integer(10, 86_400_000, 10_000, 'pause between two comparisons with a peer of the partitions that changed since they last agreed', {
          env: 'RINGKV_ANTI_ENTROPY_INTERVAL_MS',
        }),
        fullCompareIntervalMs: integer(
          10,
          7 * 86_400_000,
          600_000,
          'pause between two comparisons with a peer of every partition the two share, changed or not (10 min; one summary message per peer)',
        ),
        tombstoneGraceMs: integer(0, 365 * 86_400_000, 86_400_000, 'how long a tombstone outlives its delete (24 h); at least the hint window', {
          env: 'RINGKV_TOMBSTONE_GRACE_MS',
        }),
        reapedRetentionMs: integer(
          0,
          10 * 365 * 86_400_000,
          30 * 86_400_000,
          'how long a replica remembers a reaped tombstone (30 d), so a node that missed the delete cannot bring the key back; at least the tombstone grace',
        ),
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
        caFile: Type.String({ default: '', expected: 'a path to a PEM file', description: "the CA that signed the nodes' certificates (PEM)" }),
      },
      'TLS',
    ),
    handoff: section(
      {
        intervalMs: integer(10, 3_600_000, 1000, 'pause between partition handoff steps'),
        batchSize: integer(1, 10_000, 500, 'keys per streamed batch'),
        maxPageBytes: integer(
          65_536,
          256 * 1024 * 1024,
          4 * 1024 * 1024,
          'about how many bytes of values one handoff or anti-entropy page carries (always at least one object)',
        ),
        cleanupDelayMs: integer(0, 86_400_000, 10_000, 'how long a node keeps a partition it no longer replicates'),
      },
      'partition handoff',
    ),
    watch: section(
      {
        maxWatchers: integer(1, 100_000, 64, 'watches (GET /watch) this node serves at once; one more is refused with 503 KV_OVERLOADED'),
        maxQueuedEvents: integer(1, 1_000_000, 1000, 'events queued for one watcher that reads too slowly; one more cuts it off with an `overflow` event'),
        logEvents: integer(1, 10_000_000, 10_000, 'recent writes this node keeps for watchers to resume from; older ones answer `compacted`'),
        logBytes: integer(65_536, 2 ** 31, 16 * 1024 * 1024, 'about how many bytes of objects the log of recent writes holds; older ones answer `compacted`'),
        pollWaitMs: integer(
          10,
          60_000,
          1000,
          'how long a poll for new writes waits on a peer before it answers empty (at most half of limits.peerTimeoutMs is used)',
        ),
      },
      'watches (Server-Sent Events of writes)',
    ),
  },
  { additionalProperties: false },
);

type DeepReadonly<T> = T extends readonly (infer Item)[]
  ? readonly DeepReadonly<Item>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** A config as the schema checked it: every field valid on its own, defaults filled in, addresses not yet resolved. */
export type SchemaConfig = DeepReadonly<Static<typeof nodeConfigSchema>>;

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

/** ringkv's annotations on a schema leaf. */
export interface Annotations {
  readonly env?: string | false;
  readonly secret?: boolean;
  readonly expected?: string;
  readonly description?: string;
  readonly default?: unknown;
}

/** A schema node with ringkv's annotations (env, secret, expected). */
export type Schema = TSchema & Annotations & Record<string, unknown>;

/** True for an object node of the schema. */
export const isObjectSchema = (schema: Schema): boolean => schema[Kind] === 'Object';
/** True for a record node of the schema. */
export const isRecordSchema = (schema: Schema): boolean => schema[Kind] === 'Record';
/** True for an array node of the schema. */
export const isArraySchema = (schema: Schema): boolean => schema[Kind] === 'Array';

/** The properties of an object node. */
export function propertiesOf(schema: Schema): Record<string, Schema> {
  return (schema.properties ?? {}) as Record<string, Schema>;
}

/** The schema of a record node's values. */
export function recordValueSchema(schema: Schema): Schema {
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
/** The dotted path of every key the schema knows. */
export const allKnownPaths = knownPaths(nodeConfigSchema as Schema, [], []);
