import { KvError } from '../../util/errors.js';
import { viewLimits } from '../membership/view-validation.js';
import { ByteReader, ByteWriter } from './bytes.js';
import { utf8Text } from './fields.js';

/**
 * The binary encoding of the cluster state, the field of the cluster-state-reply entry of the
 * message table (message-table.ts).
 *
 * The cluster state is the ring and the bucket properties in a fixed layout (fetched whole only
 * when SWIM's digests show a newer version); the ring's owners are indexes into a table
 * of the ids it names, so a 256-partition ring costs about 256 bytes instead of ~3 KiB of JSON.
 *
 * The encoder answers undefined for a state outside its layout (a malformed state only a test or
 * a faulty peer builds); the message table then refuses to send it (KV_INTERNAL).
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

function malformed(what: string): KvError {
  return new KvError('KV_BAD_REQUEST', `a peer's gossip message carries ${what}; run neighbouring ringkv versions on every node`);
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
  return utf8Text(bytes, field, malformed);
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
//   [bucket properties version][bucket count]{[name][u8 fields][nVal][r][w][u8 conflict mode][ttlSeconds][consistent: 0 or 1]}
// ---------------------------------------------------------------------------------------------

/** Ring kinds that carry a location table after the owners (kind - 2 says owners or owners and next). */
const ringKindWithLocations = 2;

/** Bucket property fields by their bit in the fields byte. Append-only. */
const bucketFieldBits = { nVal: 1, r: 2, w: 4, conflictMode: 8, ttlSeconds: 16, consistent: 32 } as const;
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
  writer
    .varint(count)
    .varint(version as number)
    .varint(names.length);
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
  if (properties.consistent !== undefined) {
    fits(typeof properties.consistent === 'boolean');
    writer.varint(properties.consistent ? 1 : 0);
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
  if ((fields & bucketFieldBits.consistent) !== 0) entry.consistent = readBounded(reader, 'consistent', 0, 1) === 1;
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
