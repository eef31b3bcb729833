import { KvError } from '../../util/errors.js';
import { viewLimits } from '../membership/view-validation.js';
import { ByteReader, ByteWriter } from './bytes.js';

/**
 * The binary encoding of the cluster state and control payloads, the fields of the
 * cluster-state-reply and control entries of the message table (message-table.ts).
 *
 * The cluster state is the ring and the bucket properties in a fixed layout (fetched whole only
 * when SWIM's digests show a newer version); the ring's owners are indexes into a table
 * of the ids it names, so a 256-partition ring costs about 256 bytes instead of ~3 KiB of JSON.
 * Control payloads (small, JSON-shaped questions and answers such as `handoff-held`) are a
 * compact self-describing value, like MessagePack or CBOR.
 *
 * Both encoders answer undefined for a value outside their layout (a malformed state only a test
 * or a faulty peer builds, a payload that is no JSON value); the message table then refuses to
 * send it (KV_INTERNAL), so nothing is silently dropped.
 * Decoding bounds every count, length and number while it reads (viewWireLimits), before any of
 * it is kept; the meaning (node id patterns, generations, known owners) is still checked by the
 * receiver (src/core/membership/view-validation.ts).
 */

/** Bounds of the binary cluster state, at decode time; the encoder keeps inside them (or answers undefined). */
export const viewWireLimits = {
  maxIdBytes: viewLimits.maxIdLength,
  maxAddressBytes: viewLimits.maxAddressLength,
  maxBuckets: viewLimits.maxBuckets,
  maxBucketNameBytes: viewLimits.maxBucketNameLength,
  maxPartitionCount: viewLimits.maxPartitionCount,
  maxCounter: viewLimits.maxCounter,
  /** Distinct ids a ring may name (members of the view and others the receiver knows). */
  maxRingNames: viewLimits.maxMembers,
  /** nVal, r, w and ttlSeconds of a bucket (the receiver checks the tighter rules of each). */
  maxBucketSetting: 2 ** 32,
} as const;

/** Bounds of a control payload at decode time. */
export const controlWireLimits = {
  /** Nesting of arrays and objects. */
  maxDepth: 16,
  /** Elements of one array or entries of one object (a handoff-held asks about up to 65,536 partitions). */
  maxItems: 65_536,
  /** Bytes of one string or object key. */
  maxStringBytes: 65_536,
} as const;

function malformed(what: string): KvError {
  return new KvError('KV_BAD_REQUEST', `a peer's gossip or control message carries ${what}; run neighbouring ringkv versions on every node`);
}

/** Thrown while encoding when a value does not fit the layout; never leaves this module. */
class DoesNotFit extends Error {}

function fits(condition: boolean): void {
  if (!condition) throw new DoesNotFit();
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === null;
}

function isCounter(value: unknown, max: number): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

/** True when `value` has only the listed fields (undefined ones count as absent, as in JSON). */
function onlyFields(value: Record<string, unknown>, allowed: readonly string[]): boolean {
  for (const field of Object.keys(value)) if (value[field] !== undefined && !allowed.includes(field)) return false;
  return true;
}

function writeBoundedString(writer: ByteWriter, text: unknown, maxBytes: number, minBytes = 0): void {
  fits(typeof text === 'string');
  const bytes = Buffer.from(text as string, 'utf8');
  fits(bytes.length >= minBytes && bytes.length <= maxBytes);
  writer.bytes(bytes);
}

function readBoundedString(reader: ByteReader, field: string, maxBytes: number, minBytes = 0): string {
  const bytes = reader.bytes();
  if (bytes.length < minBytes || bytes.length > maxBytes) throw malformed(`a ${field} of ${bytes.length} bytes, outside ${minBytes}..${maxBytes}`);
  return bytes.toString('utf8');
}

function readBounded(reader: ByteReader, field: string, min: number, max: number): number {
  const value = reader.varint();
  if (value < min || value > max) throw malformed(`${field} ${value} outside ${min}..${max}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Cluster state: the ring and the bucket properties (members travel as SWIM records, not here).
//
//   [u8 ring: 0 none, 1 owners, 2 owners and next, 3 and 4 as 1 and 2 with locations]
//     [partition count][version][name count]{[name]}[owner index]*partitionCount([next index]*partitionCount)
//     (kinds 3 and 4: [location count]{[name index][host][zone, empty when none]})
//   [bucket properties version][bucket count]{[name][u8 fields][nVal][r][w][u8 conflict mode][ttlSeconds]}
// ---------------------------------------------------------------------------------------------

/** Ring kinds that carry a location table after the owners (kind - 2 says owners or owners and next). */
const ringKindWithLocations = 2;

/** Bucket property fields by their bit in the fields byte. Append-only. */
const bucketFieldBits = { nVal: 1, r: 2, w: 4, conflictMode: 8, ttlSeconds: 16 } as const;
const bucketFieldNames = Object.keys(bucketFieldBits) as (keyof typeof bucketFieldBits)[];
const allBucketFieldBits = Object.values(bucketFieldBits).reduce((all, bit) => all | bit, 0);
/** A quorum setting: 0 one, 1 quorum, 2 all, 3 + n the number n. */
const quorumWords = ['one', 'quorum', 'all'] as const;
const conflictModes = ['siblings', 'lww'] as const;

function isOwnerList(value: unknown, partitionCount: number): value is string[] {
  return Array.isArray(value) && value.length === partitionCount && value.every((owner) => typeof owner === 'string');
}

function writeRing(writer: ByteWriter, ring: unknown): void {
  if (ring === null) {
    writer.u8(0);
    return;
  }
  fits(isPlainObject(ring));
  const { partitionCount, owners, version, next, locations, ...rest } = ring as Record<string, unknown>;
  fits(onlyFields(rest, []) && isCounter(partitionCount, viewWireLimits.maxPartitionCount) && (partitionCount as number) > 0);
  const count = partitionCount as number;
  fits(isCounter(version, viewWireLimits.maxCounter) && isOwnerList(owners, count) && (next === null || next === undefined || isOwnerList(next, count)));
  const names = [...new Set([...(owners as string[]), ...((next as string[] | null | undefined) ?? [])])];
  fits(names.length <= viewWireLimits.maxRingNames);
  const index = new Map(names.map((name, position) => [name, position]));
  fits(locations === undefined || isPlainObject(locations));
  writer.u8((next === null || next === undefined ? 1 : 2) + (locations === undefined ? 0 : ringKindWithLocations));
  writer.varint(count).varint(version as number).varint(names.length);
  for (const name of names) writeBoundedString(writer, name, viewWireLimits.maxIdBytes);
  for (const owner of owners as string[]) writer.varint(index.get(owner) as number);
  if (next !== null && next !== undefined) for (const owner of next as string[]) writer.varint(index.get(owner) as number);
  if (locations !== undefined) writeRingLocations(writer, locations as Record<string, unknown>, index);
}

/** A ring's location table: only nodes the ring names, each a host and an optional zone (empty on the wire). */
function writeRingLocations(writer: ByteWriter, locations: Record<string, unknown>, index: ReadonlyMap<string, number>): void {
  const entries = Object.entries(locations);
  fits(entries.length <= index.size);
  writer.varint(entries.length);
  for (const [node, value] of entries) {
    fits(index.has(node) && isPlainObject(value) && onlyFields(value, ['host', 'zone']) && value.zone !== '');
    const location = value as Record<string, unknown>;
    writer.varint(index.get(node) as number);
    writeBoundedString(writer, location.host, viewWireLimits.maxIdBytes, 1);
    writeBoundedString(writer, location.zone ?? '', viewWireLimits.maxIdBytes, location.zone === undefined ? 0 : 1);
  }
}

function readRingLocations(reader: ByteReader, names: readonly string[]): Record<string, unknown> {
  const count = readBounded(reader, 'count of ring locations', 0, names.length);
  // No prototype: a node named __proto__ is a plain key, as JSON.parse makes it.
  const locations = Object.create(null) as Record<string, unknown>;
  for (let entry = 0; entry < count; entry++) {
    const node = names[readBounded(reader, 'ring location index', 0, names.length - 1)] as string;
    if (Object.hasOwn(locations, node)) throw malformed(`the location of ${node} twice`);
    const host = readBoundedString(reader, 'placement host', viewWireLimits.maxIdBytes, 1);
    const zone = readBoundedString(reader, 'zone', viewWireLimits.maxIdBytes);
    locations[node] = zone === '' ? { host } : { host, zone };
  }
  return locations;
}

function readOwners(reader: ByteReader, names: readonly string[], count: number): string[] {
  const owners: string[] = new Array<string>(count);
  for (let partition = 0; partition < count; partition++) owners[partition] = names[readBounded(reader, 'ring owner index', 0, names.length - 1)] as string;
  return owners;
}

function readRing(reader: ByteReader): Record<string, unknown> | null {
  const kind = reader.u8();
  if (kind === 0) return null;
  if (kind > 2 + ringKindWithLocations) throw malformed(`ring kind ${kind}`);
  const withNext = kind === 2 || kind === 2 + ringKindWithLocations;
  const partitionCount = readBounded(reader, 'partition count', 1, viewWireLimits.maxPartitionCount);
  const version = readBounded(reader, 'ring version', 0, viewWireLimits.maxCounter);
  const nameCount = readBounded(reader, 'count of ring names', 1, Math.min(viewWireLimits.maxRingNames, partitionCount * 2));
  const names: string[] = [];
  for (let position = 0; position < nameCount; position++) names.push(readBoundedString(reader, 'ring owner', viewWireLimits.maxIdBytes));
  const owners = readOwners(reader, names, partitionCount);
  const ring: Record<string, unknown> = { partitionCount, owners, version, next: withNext ? readOwners(reader, names, partitionCount) : null };
  if (kind > ringKindWithLocations) ring.locations = readRingLocations(reader, names);
  return ring;
}

function writeQuorum(writer: ByteWriter, setting: unknown): void {
  const word = quorumWords.indexOf(setting as (typeof quorumWords)[number]);
  if (word >= 0) writer.varint(word);
  else {
    fits(isCounter(setting, viewWireLimits.maxBucketSetting));
    writer.varint(quorumWords.length + (setting as number));
  }
}

function readQuorum(reader: ByteReader, field: string): string | number {
  const code = readBounded(reader, field, 0, quorumWords.length + viewWireLimits.maxBucketSetting);
  return code < quorumWords.length ? (quorumWords[code] as string) : code - quorumWords.length;
}

function writeBucket(writer: ByteWriter, name: string, entry: unknown): void {
  fits(isPlainObject(entry));
  const properties = entry as Record<string, unknown>;
  fits(onlyFields(properties, bucketFieldNames));
  writeBoundedString(writer, name, viewWireLimits.maxBucketNameBytes);
  let fields = 0;
  for (const field of bucketFieldNames) if (properties[field] !== undefined) fields |= bucketFieldBits[field];
  writer.u8(fields);
  if (properties.nVal !== undefined) {
    fits(isCounter(properties.nVal, viewWireLimits.maxBucketSetting));
    writer.varint(properties.nVal as number);
  }
  if (properties.r !== undefined) writeQuorum(writer, properties.r);
  if (properties.w !== undefined) writeQuorum(writer, properties.w);
  if (properties.conflictMode !== undefined) {
    const mode = conflictModes.indexOf(properties.conflictMode as (typeof conflictModes)[number]);
    fits(mode >= 0);
    writer.u8(mode);
  }
  if (properties.ttlSeconds !== undefined) {
    fits(isCounter(properties.ttlSeconds, viewWireLimits.maxBucketSetting));
    writer.varint(properties.ttlSeconds as number);
  }
}

function readBucket(reader: ByteReader): [string, Record<string, unknown>] {
  const name = readBoundedString(reader, 'bucket name', viewWireLimits.maxBucketNameBytes);
  const fields = reader.u8();
  if ((fields & ~allBucketFieldBits) !== 0) throw malformed(`bucket property fields ${fields}, some of which this node does not know`);
  const entry: Record<string, unknown> = {};
  if ((fields & bucketFieldBits.nVal) !== 0) entry.nVal = readBounded(reader, 'nVal', 0, viewWireLimits.maxBucketSetting);
  if ((fields & bucketFieldBits.r) !== 0) entry.r = readQuorum(reader, 'r');
  if ((fields & bucketFieldBits.w) !== 0) entry.w = readQuorum(reader, 'w');
  if ((fields & bucketFieldBits.conflictMode) !== 0) {
    const mode = conflictModes[reader.u8()];
    if (mode === undefined) throw malformed('an unknown conflict mode');
    entry.conflictMode = mode;
  }
  if ((fields & bucketFieldBits.ttlSeconds) !== 0) entry.ttlSeconds = readBounded(reader, 'ttlSeconds', 0, viewWireLimits.maxBucketSetting);
  return [name, entry];
}

/** The binary form of a cluster state (ring and bucket properties), or undefined when `state` does not fit the layout exactly (it is then not sent). */
export function encodeClusterState(state: unknown): Buffer | undefined {
  try {
    fits(isPlainObject(state));
    const view = state as Record<string, unknown>;
    fits(onlyFields(view, ['ring', 'bucketProperties', 'bucketPropertiesVersion']) && isPlainObject(view.bucketProperties));
    const writer = new ByteWriter();
    fits(view.ring !== undefined);
    writeRing(writer, view.ring);
    fits(isCounter(view.bucketPropertiesVersion, viewWireLimits.maxCounter));
    writer.varint(view.bucketPropertiesVersion as number);
    const buckets = Object.entries(view.bucketProperties as Record<string, unknown>);
    fits(buckets.length <= viewWireLimits.maxBuckets);
    writer.varint(buckets.length);
    for (const [name, entry] of buckets) writeBucket(writer, name, entry);
    return writer.finish();
  } catch (error) {
    if (error instanceof DoesNotFit) return undefined;
    throw error;
  }
}

/**
 * Reads a binary cluster state; throws KV_BAD_REQUEST on anything malformed or over a bound. The
 * result has the state's shape and bounded sizes; the receiver still validates its meaning.
 */
export function decodeClusterState(bytes: Uint8Array): unknown {
  const reader = new ByteReader(bytes);
  const ring = readRing(reader);
  const bucketPropertiesVersion = readBounded(reader, 'bucket properties version', 0, viewWireLimits.maxCounter);
  const bucketCount = readBounded(reader, 'bucket count', 0, viewWireLimits.maxBuckets);
  // No prototypes: a bucket named __proto__ is a plain key, as JSON.parse makes it.
  const bucketProperties = Object.create(null) as Record<string, unknown>;
  for (let index = 0; index < bucketCount; index++) {
    const [name, entry] = readBucket(reader);
    if (Object.hasOwn(bucketProperties, name)) throw malformed(`bucket ${JSON.stringify(name.slice(0, 64))} twice`);
    bucketProperties[name] = entry;
  }
  if (!reader.done()) throw malformed('trailing bytes after a cluster state');
  return { ring, bucketProperties, bucketPropertiesVersion };
}

// ---------------------------------------------------------------------------------------------
// Control payloads: a self-describing value.
//
//   [u8 kind] then: 0 null, 1 false, 2 true, 3 [varint n] (n >= 0), 4 [varint n] (-n, n > 0),
//   5 [f64] (any other finite number), 6 [string], 7 [count]{value}, 8 [count]{[key][value]}
// ---------------------------------------------------------------------------------------------

const valueKinds = { null: 0, false: 1, true: 2, natural: 3, negative: 4, float: 5, string: 6, array: 7, object: 8 } as const;

function writeValue(writer: ByteWriter, value: unknown, depth: number): void {
  if (value === null || value === undefined) {
    // undefined where JSON keeps a place (an array element) becomes null, as in JSON; -0 becomes 0 below, as in JSON.
    writer.u8(valueKinds.null);
  } else if (typeof value === 'boolean') {
    writer.u8(value ? valueKinds.true : valueKinds.false);
  } else if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value >= 0) writer.u8(valueKinds.natural).varint(value);
    else if (Number.isSafeInteger(value) && value < 0) writer.u8(valueKinds.negative).varint(-value);
    else {
      // JSON has no NaN or infinities: such a payload is no JSON value and does not fit.
      fits(Number.isFinite(value));
      writer.u8(valueKinds.float).f64(value);
    }
  } else if (typeof value === 'string') {
    writer.u8(valueKinds.string);
    writeBoundedString(writer, value, controlWireLimits.maxStringBytes);
  } else if (Array.isArray(value)) {
    fits(depth < controlWireLimits.maxDepth && value.length <= controlWireLimits.maxItems);
    writer.u8(valueKinds.array).varint(value.length);
    for (const element of value) writeValue(writer, element, depth + 1);
  } else {
    fits(isPlainObject(value) && depth < controlWireLimits.maxDepth);
    const entries = Object.entries(value as Record<string, unknown>).filter(([, field]) => field !== undefined);
    fits(entries.length <= controlWireLimits.maxItems);
    writer.u8(valueKinds.object).varint(entries.length);
    for (const [key, field] of entries) {
      writeBoundedString(writer, key, controlWireLimits.maxStringBytes);
      writeValue(writer, field, depth + 1);
    }
  }
}

function readValue(reader: ByteReader, depth: number): unknown {
  const kind = reader.u8();
  switch (kind) {
    case valueKinds.null:
      return null;
    case valueKinds.false:
      return false;
    case valueKinds.true:
      return true;
    case valueKinds.natural:
      return reader.varint();
    case valueKinds.negative:
      return -readBounded(reader, 'a negative number', 1, Number.MAX_SAFE_INTEGER);
    case valueKinds.float: {
      const value = reader.f64();
      if (!Number.isFinite(value)) throw malformed('a number that is not finite');
      return value;
    }
    case valueKinds.string:
      return readBoundedString(reader, 'string', controlWireLimits.maxStringBytes);
    case valueKinds.array: {
      if (depth >= controlWireLimits.maxDepth) throw malformed(`values nested deeper than ${controlWireLimits.maxDepth}`);
      const count = readBounded(reader, 'a count of array elements', 0, controlWireLimits.maxItems);
      const array: unknown[] = [];
      for (let index = 0; index < count; index++) array.push(readValue(reader, depth + 1));
      return array;
    }
    case valueKinds.object: {
      if (depth >= controlWireLimits.maxDepth) throw malformed(`values nested deeper than ${controlWireLimits.maxDepth}`);
      const count = readBounded(reader, 'a count of object fields', 0, controlWireLimits.maxItems);
      // No prototype: a key such as __proto__ is a plain field, never a prototype change.
      const object = Object.create(null) as Record<string, unknown>;
      for (let index = 0; index < count; index++) {
        const key = readBoundedString(reader, 'object key', controlWireLimits.maxStringBytes);
        if (Object.hasOwn(object, key)) throw malformed(`the field ${JSON.stringify(key.slice(0, 64))} twice`);
        object[key] = readValue(reader, depth + 1);
      }
      return object;
    }
    default:
      throw malformed(`value kind ${kind}, which this node does not know`);
  }
}

/** The binary form of a control payload, or undefined when it is no JSON value within the bounds (it is then not sent). */
export function encodeControlPayload(payload: unknown): Buffer | undefined {
  try {
    const writer = new ByteWriter();
    writeValue(writer, payload, 0);
    return writer.finish();
  } catch (error) {
    if (error instanceof DoesNotFit) return undefined;
    throw error;
  }
}

/** Reads a binary control payload; throws KV_BAD_REQUEST on anything malformed or over a bound. */
export function decodeControlPayload(bytes: Uint8Array): unknown {
  const reader = new ByteReader(bytes);
  const value = readValue(reader, 0);
  if (!reader.done()) throw malformed('trailing bytes after a control payload');
  return value;
}
