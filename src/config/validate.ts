import { Kind } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { BucketProperties } from '../core/buckets.js';
import { KvError } from '../util/errors.js';
import { quorumWithinNVal } from '../core/quorum/quorum.js';
import { defaultMaxFrameBytes } from '../core/wire/frames.js';
import { viewLimits } from '../core/membership/view-validation.js';
import {
  type NodeConfig,
  type Schema,
  type SchemaConfig,
  allKnownPaths,
  configSettings,
  isArraySchema,
  isRecordSchema,
  nodeConfigSchema,
  propertiesOf,
  recordValueSchema,
} from './schema.js';

/**
 * Checking a config against the schema (src/config/schema.ts): unknown keys with the nearest
 * known one, each field's value, the checks that span fields, and merging the sources.
 */

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
export function expectedText(schema: Schema): string {
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
  if (config.auth.enabled && config.auth.tokens.length === 0)
    fail('auth.tokens', 'at least one token when auth.enabled is true (or set RINGKV_AUTH_TOKENS)', []);
  if (config.tls.enabled) {
    for (const file of ['certFile', 'keyFile', 'caFile'] as const) {
      if (config.tls[file] === '') fail(`tls.${file}`, 'a path to a PEM file when tls.enabled is true', '');
    }
  }
  // Cassandra's rule: a tombstone must outlive every hint that could carry an older write back,
  // or a late hint would resurrect a deleted key once the tombstone is reaped.
  if (config.hintedHandoff.enabled && config.antiEntropy.tombstoneGraceMs < config.hintedHandoff.windowMs) {
    fail(
      'antiEntropy.tombstoneGraceMs',
      `at least hintedHandoff.windowMs (${config.hintedHandoff.windowMs}) while hinted handoff is on`,
      config.antiEntropy.tombstoneGraceMs,
    );
  }
  if (config.port + config.peerPortOffset > 65_535) {
    fail('peerPortOffset', `small enough that port + peerPortOffset (the peer port) is at most 65535 (port is ${config.port})`, config.peerPortOffset);
  }
  // Every object must fit a peer frame, or it could be stored on one replica and never reach the
  // others: a coordinate-put carries a value and the read it is checked against, a page of
  // handoff or anti-entropy carries maxPageBytes and one more object, each with an envelope.
  const { maxValueBytes, maxObjectBytes } = config.limits;
  if (maxObjectBytes < 2 * maxValueBytes + objectMetadataAllowanceBytes) {
    fail(
      'limits.maxObjectBytes',
      `at least 2 × limits.maxValueBytes + ${objectMetadataAllowanceBytes} (${2 * maxValueBytes + objectMetadataAllowanceBytes}), so two concurrent writes of the largest value can stand as siblings`,
      maxObjectBytes,
    );
  }
  if (maxObjectBytes + maxValueBytes + peerEnvelopeAllowanceBytes > defaultMaxFrameBytes) {
    fail(
      'limits.maxObjectBytes',
      `at most ${defaultMaxFrameBytes - maxValueBytes - peerEnvelopeAllowanceBytes} (the peer frame cap ${defaultMaxFrameBytes} − limits.maxValueBytes ${maxValueBytes} − ${peerEnvelopeAllowanceBytes} for the message), so a write and its object fit one peer frame; lower limits.maxValueBytes or limits.maxObjectBytes`,
      maxObjectBytes,
    );
  }
  if (config.handoff.maxPageBytes + maxObjectBytes + peerEnvelopeAllowanceBytes > defaultMaxFrameBytes) {
    fail(
      'handoff.maxPageBytes',
      `at most ${defaultMaxFrameBytes - maxObjectBytes - peerEnvelopeAllowanceBytes} (the peer frame cap ${defaultMaxFrameBytes} − limits.maxObjectBytes ${maxObjectBytes} − ${peerEnvelopeAllowanceBytes}), so a page and the one object that may end it fit one peer frame`,
      config.handoff.maxPageBytes,
    );
  }
  if (config.limits.maxSiblings < config.limits.siblingsWarn) {
    fail('limits.maxSiblings', `at least limits.siblingsWarn (${config.limits.siblingsWarn})`, config.limits.maxSiblings);
  }
  // The record of a reaped tombstone is what refuses a stale version after the reap, so it must
  // outlive the tombstone's own grace period (it is meant to outlive any node's absence).
  if (config.antiEntropy.reapedRetentionMs < config.antiEntropy.tombstoneGraceMs) {
    fail(
      'antiEntropy.reapedRetentionMs',
      `at least antiEntropy.tombstoneGraceMs (${config.antiEntropy.tombstoneGraceMs})`,
      config.antiEntropy.reapedRetentionMs,
    );
  }
  // Bucket properties travel in every gossip message: more buckets, or a longer name, than the
  // view's wire bounds would make every gossip exchange fail and the cluster never form.
  const bucketNames = Object.keys(config.buckets);
  if (bucketNames.length > viewLimits.maxBuckets)
    fail('buckets', `at most ${viewLimits.maxBuckets} buckets with properties of their own`, `${bucketNames.length} buckets`);
  for (const name of bucketNames) {
    if (Buffer.byteLength(name) > viewLimits.maxBucketNameLength)
      fail('buckets', `bucket names of at most ${viewLimits.maxBucketNameLength} UTF-8 bytes`, `a name of ${Buffer.byteLength(name)} bytes`);
  }
  // A number of replicas above the bucket's own n_val could never be met: every request that
  // leaves r or w to the bucket would fail, so the config is refused at start (the same check as
  // an explicit ?r= or ?w= on a request, quorumWithinNVal).
  const withProperties: [string, BucketProperties][] = [
    ['bucketDefaults', config.bucketDefaults],
    ...bucketNames.map((name): [string, BucketProperties] => [`buckets.${name}`, { ...config.bucketDefaults, ...config.buckets[name] }]),
  ];
  for (const [field, properties] of withProperties) {
    for (const quorum of ['r', 'w'] as const) {
      const setting = properties[quorum];
      if (!quorumWithinNVal(setting, properties.nVal))
        fail(`${field}.${quorum}`, `one, quorum, all or an integer from 1 to the bucket's nVal (${properties.nVal})`, setting);
    }
  }
  for (const address of [...config.seeds, ...(config.advertise === undefined ? [] : [config.advertise])]) {
    const port = Number(address.slice(address.lastIndexOf(':') + 1));
    if (port < 1 || port > 65_535) fail(config.seeds.includes(address) ? 'seeds' : 'advertise', 'host:port with a port in 1..65535', address);
  }
}

/** What a sibling carries beside its value (content type, dot, timestamps), allowed for when two values must fit an object. */
const objectMetadataAllowanceBytes = 65_536;

/** What a peer message carries beside its objects and values (type, bucket, key, context, hint target). */
const peerEnvelopeAllowanceBytes = 1024 * 1024;

/** Wildcard bind addresses: a node may listen on one, but no peer can dial it. */
const wildcardAddresses = new Set(['0.0.0.0', '::', '[::]']);

/** `listen` and `advertise` from `host` and `port` when they are not set. */
function resolveAddresses(config: SchemaConfig): { listen: string; advertise: string } {
  const listen = config.listen ?? config.host;
  const advertise = config.advertise ?? `${config.host}:${config.port}`;
  const advertisedHost = advertise.slice(0, advertise.lastIndexOf(':'));
  if (wildcardAddresses.has(advertisedHost)) {
    fail(
      'advertise',
      `a host:port that peers and clients can dial: ${advertisedHost} is a wildcard only for listen (set listen to it, and host or advertise to this node's own address)`,
      advertise,
    );
  }
  return { listen, advertise };
}

/**
 * Checks every field of `candidate` on its own (known key, type, range) and fills in the
 * defaults, without the checks that span fields: one source of config (a file) may rely on
 * another (a variable with the tokens) for those, but never for a field's own value.
 */
export function checkFieldValues(candidate: unknown): SchemaConfig {
  if (candidate === null || typeof candidate !== 'object' || Array.isArray(candidate)) fail('(root)', 'an object', candidate);
  checkKnownKeys(candidate, 'the config');
  const filled = Value.Default(nodeConfigSchema, structuredClone(candidate));
  const error = Value.Errors(nodeConfigSchema, filled).First();
  if (error !== undefined) {
    const field = dottedPath(error.path);
    const missing = error.value === undefined;
    fail(field === '' ? '(root)' : field, expectedText(error.schema as Schema), missing ? '(nothing)' : error.value, isSecretPath(field));
  }
  return filled as SchemaConfig;
}

/**
 * Validates a config object against the schema and fills in the defaults of what it leaves out;
 * throws KV_BAD_CONFIG naming the first unknown key or bad field (never showing a secret).
 */
export function validateConfig(candidate: unknown): NodeConfig {
  const config = checkFieldValues(candidate);
  checkAcrossFields(config);
  return { ...config, ...resolveAddresses(config) } as NodeConfig;
}

/** The properties of a bucket: its own settings over the defaults. */
export function bucketProperties(config: NodeConfig, bucket: string): BucketProperties {
  return { ...config.bucketDefaults, ...(config.buckets[bucket] ?? {}) };
}
