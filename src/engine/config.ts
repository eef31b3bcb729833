import { KvError } from '../util/errors.js';
import type { ConflictMode } from '../core/versioning/versioned-object.js';

/** A quorum as configured: a number of replicas or a symbolic level. */
export type QuorumSetting = number | 'one' | 'quorum' | 'all';

/** Per-bucket properties (Riak's n_val, r, w, allow_mult/last_write_wins). */
export interface BucketProperties {
  readonly nVal: number;
  readonly r: QuorumSetting;
  readonly w: QuorumSetting;
  readonly conflictMode: ConflictMode;
}

/** Everything a node is configured with. */
export interface NodeConfig {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly seeds: readonly string[];
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  readonly partitionCount: number;
  readonly bucketDefaults: BucketProperties;
  readonly buckets: Readonly<Record<string, Partial<BucketProperties>>>;
  readonly limits: {
    readonly maxValueBytes: number;
    readonly maxKeyBytes: number;
    readonly maxBucketBytes: number;
    readonly maxVectorEntries: number;
    readonly maxInFlightRequests: number;
    readonly requestTimeoutMs: number;
    readonly peerTimeoutMs: number;
  };
  readonly storage: {
    readonly writeBufferSizeBytes: number;
    readonly blockCacheSizeBytes: number;
    readonly maxFileSizeBytes: number;
    readonly compression: boolean;
  };
  readonly gossip: { readonly intervalMs: number; readonly fanout: number; readonly phiThreshold: number };
  readonly hintedHandoff: {
    readonly enabled: boolean;
    readonly windowMs: number;
    readonly batchSize: number;
    readonly intervalMs: number;
  };
  readonly antiEntropy: { readonly enabled: boolean; readonly intervalMs: number; readonly tombstoneGraceMs: number };
}

type Check = (value: unknown, field: string) => void;

function fail(field: string, expected: string, value: unknown): never {
  throw new KvError('KV_BAD_CONFIG', `config field '${field}' must be ${expected}, got ${JSON.stringify(value)}; fix it in the config file, the RINGKV_* variable or the flag`);
}

const integer =
  (min: number, max: number): Check =>
  (value, field) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(field, `an integer in ${min}..${max}`, value);
  };
const boolean: Check = (value, field) => {
  if (typeof value !== 'boolean') fail(field, 'true or false', value);
};
const nonEmptyString: Check = (value, field) => {
  if (typeof value !== 'string' || value.length === 0) fail(field, 'a non-empty string', value);
};
const oneOf =
  (...choices: string[]): Check =>
  (value, field) => {
    if (typeof value !== 'string' || !choices.includes(value)) fail(field, `one of ${choices.join(', ')}`, value);
  };
const quorum: Check = (value, field) => {
  if (typeof value === 'number') integer(1, 64)(value, field);
  else oneOf('one', 'quorum', 'all')(value, field);
};
const peerList: Check = (value, field) => {
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string' || !/^[^:\s]+:\d{1,5}$/.test(item))) fail(field, 'a list of host:port', value);
};

const schema: Record<string, Check> = {
  host: nonEmptyString,
  port: integer(1, 65_535),
  dataDir: nonEmptyString,
  seeds: peerList,
  logLevel: oneOf('trace', 'debug', 'info', 'warn', 'error', 'silent'),
  partitionCount: (value, field) => {
    integer(1, 65_536)(value, field);
    if (((value as number) & ((value as number) - 1)) !== 0) fail(field, 'a power of two', value);
  },
  'bucketDefaults.nVal': integer(1, 16),
  'bucketDefaults.r': quorum,
  'bucketDefaults.w': quorum,
  'bucketDefaults.conflictMode': oneOf('siblings', 'lww'),
  'limits.maxValueBytes': integer(1, 512 * 1024 * 1024),
  'limits.maxKeyBytes': integer(1, 60_000),
  'limits.maxBucketBytes': integer(1, 60_000),
  'limits.maxVectorEntries': integer(4, 10_000),
  'limits.maxInFlightRequests': integer(1, 1_000_000),
  'limits.requestTimeoutMs': integer(1, 600_000),
  'limits.peerTimeoutMs': integer(1, 600_000),
  'storage.writeBufferSizeBytes': integer(65_536, 2 ** 31),
  'storage.blockCacheSizeBytes': integer(0, 2 ** 34),
  'storage.maxFileSizeBytes': integer(65_536, 2 ** 31),
  'storage.compression': boolean,
  'gossip.intervalMs': integer(10, 600_000),
  'gossip.fanout': integer(1, 64),
  'gossip.phiThreshold': (value, field) => {
    if (typeof value !== 'number' || !(value > 0 && value < 100)) fail(field, 'a number in (0, 100)', value);
  },
  'hintedHandoff.enabled': boolean,
  'hintedHandoff.windowMs': integer(1000, 30 * 24 * 3_600_000),
  'hintedHandoff.batchSize': integer(1, 100_000),
  'hintedHandoff.intervalMs': integer(10, 3_600_000),
  'antiEntropy.enabled': boolean,
  'antiEntropy.intervalMs': integer(10, 86_400_000),
  'antiEntropy.tombstoneGraceMs': integer(0, 365 * 86_400_000),
};

function read(object: unknown, path: string): unknown {
  let current: unknown = object;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
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

/** Validates a merged config object; throws KV_BAD_CONFIG naming the first bad field. */
export function validateConfig(candidate: unknown): NodeConfig {
  if (candidate === null || typeof candidate !== 'object') fail('(root)', 'an object', candidate);
  for (const [field, check] of Object.entries(schema)) check(read(candidate, field), field);
  const config = { buckets: {}, ...(candidate as object) } as NodeConfig;
  for (const [bucket, properties] of Object.entries(config.buckets)) {
    for (const [name, value] of Object.entries(properties)) {
      const check = schema[`bucketDefaults.${name}`];
      if (check === undefined) fail(`buckets.${bucket}.${name}`, 'one of nVal, r, w, conflictMode', name);
      check(value, `buckets.${bucket}.${name}`);
    }
  }
  return config;
}

/** The properties of a bucket: its own settings over the defaults. */
export function bucketProperties(config: NodeConfig, bucket: string): BucketProperties {
  return { ...config.bucketDefaults, ...(config.buckets[bucket] ?? {}) };
}
