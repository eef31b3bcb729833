import { type BucketProperties, maxNVal } from '../buckets.js';
import { maxTtlSeconds } from '../versioning/versioned-object.js';
import type { NodeLocation, Ring } from '../ring/ring.js';
import type { ClusterView, MemberLifecycle, MemberRecord } from './membership.js';

/** What a view from a peer (or from disk) is checked against. */
export interface ViewExpectations {
  /** The cluster's partition count; undefined before this node has a ring (a joiner takes the cluster's). */
  readonly partitionCount: number | undefined;
  /** Member ids this node already knows: a ring may name them as well as the message's own valid members. */
  readonly knownMemberIds: Iterable<string>;
  /** Now, to bound generations (Cassandra refuses a generation more than a year ahead of its clock). */
  readonly nowMs: number;
}

/** The parts of a view that passed, and a line for each part that did not. */
export interface ValidatedView {
  readonly view: ClusterView;
  readonly problems: readonly string[];
}

/** Bounds of a gossiped view; a message beyond them is refused rather than held in memory. */
export const viewLimits = {
  maxMembers: 1024,
  maxBuckets: 4096,
  maxIdLength: 128,
  maxAddressLength: 300,
  /** In UTF-8 bytes, as the wire counts them (state-codec.ts). */
  maxBucketNameLength: 1024,
  maxPartitionCount: 65_536,
  /** Heartbeats rise once a gossip round; 2^48 of them is millennia at any interval. */
  maxCounter: 2 ** 48,
  /** How far a generation (seconds since the epoch at start) may be ahead of this node's clock. */
  generationAheadSeconds: 365 * 86_400,
} as const;

const lifecycles: readonly MemberLifecycle[] = ['joining', 'up', 'leaving', 'left', 'removed'];
const idPattern = /^[A-Za-z0-9._-]+$/;

/** True for a string of a node id's shape: letters, digits, '.', '_' or '-', at most maxIdLength. */
export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= viewLimits.maxIdLength && idPattern.test(value);
}

/** Host and zone labels follow node ids' rule (src/config/schema.ts checks them at the edge the same way). */
function locationProblem(value: unknown): string | undefined {
  if (!isPlainObject(value)) return 'is not an object';
  const { host, zone, ...rest } = value;
  if (Object.keys(rest).length > 0) return `has unknown fields ${Object.keys(rest).slice(0, 3).join(', ')}`;
  for (const [field, label] of [
    ['host', host],
    ['zone', zone],
  ] as const) {
    if (label === undefined && field === 'zone') continue;
    if (typeof label !== 'string' || label.length === 0 || label.length > viewLimits.maxIdLength || !idPattern.test(label))
      return `${field} is not a label of letters, digits, '.', '_' or '-'`;
  }
  return undefined;
}

/** The location with only its own fields. */
function nodeLocation(value: Record<string, unknown>): NodeLocation {
  return value.zone === undefined ? { host: value.host as string } : { host: value.host as string, zone: value.zone as string };
}
const addressPattern = /^[^:\s]+:\d{1,5}$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isCounter(value: unknown, max: number = viewLimits.maxCounter): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 && value <= max;
}

/** Why a member record is malformed, or undefined when it is well-formed. */
function memberProblem(key: string, value: unknown, nowMs: number): string | undefined {
  if (!isPlainObject(value)) return 'not an object';
  const { id, address, generation, status, transfersDoneForRing, location } = value;
  if (typeof id !== 'string' || id.length === 0 || id.length > viewLimits.maxIdLength || !idPattern.test(id)) return 'id is not a node id';
  if (id !== key) return `id ${id} differs from its key`;
  if (typeof address !== 'string' || address.length > viewLimits.maxAddressLength || !addressPattern.test(address)) return 'address is not host:port';
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (port < 1 || port > 65_535) return 'address has no valid port';
  if (!isCounter(generation, Math.floor(nowMs / 1000) + viewLimits.generationAheadSeconds)) return 'generation is not an integer between 0 and a year from now';
  if (typeof status !== 'string' || !lifecycles.includes(status as MemberLifecycle)) return `status is not one of ${lifecycles.join(', ')}`;
  if (transfersDoneForRing !== undefined && !isCounter(transfersDoneForRing)) return 'transfersDoneForRing is not a non-negative integer';
  const placement = location === undefined ? undefined : locationProblem(location);
  if (placement !== undefined) return `location ${placement}`;
  return undefined;
}

/** The record with only the fields of MemberRecord, so nothing unchecked rides along. */
function memberRecord(value: Record<string, unknown>): MemberRecord {
  const record: MemberRecord = {
    id: value.id as string,
    address: value.address as string,
    generation: value.generation as number,
    status: value.status as MemberLifecycle,
  };
  return {
    ...record,
    ...(value.transfersDoneForRing === undefined ? {} : { transfersDoneForRing: value.transfersDoneForRing as number }),
    ...(value.location === undefined ? {} : { location: nodeLocation(value.location as Record<string, unknown>) }),
  };
}

function ownerListProblem(value: unknown, field: string, partitionCount: number, known: ReadonlySet<string>): string | undefined {
  if (!Array.isArray(value)) return `${field} is not an array`;
  if (value.length !== partitionCount) return `${field} has ${value.length} entries, not partitionCount ${partitionCount}`;
  const stranger = value.find((owner: unknown) => typeof owner !== 'string' || !known.has(owner));
  if (stranger !== undefined || value.some((owner: unknown) => typeof owner !== 'string'))
    return `${field} names ${JSON.stringify(stranger)}, which is no known member`;
  return undefined;
}

/** Why a ring is malformed, or undefined when it is well-formed. */
function ringProblem(value: unknown, expectations: ViewExpectations, known: ReadonlySet<string>): string | undefined {
  if (!isPlainObject(value)) return 'not an object';
  const { partitionCount, owners, version, next } = value;
  if (!isCounter(partitionCount, viewLimits.maxPartitionCount) || partitionCount === 0 || (partitionCount & (partitionCount - 1)) !== 0) {
    return 'partitionCount is not a power of two';
  }
  if (expectations.partitionCount !== undefined && partitionCount !== expectations.partitionCount) {
    return `partitionCount ${partitionCount} is not the cluster's ${expectations.partitionCount}`;
  }
  if (!isCounter(version) || version === 0) return 'version is not a positive integer';
  const ownersProblem = ownerListProblem(owners, 'owners', partitionCount, known);
  if (ownersProblem !== undefined) return ownersProblem;
  if (next !== null && next !== undefined) {
    const nextProblem = ownerListProblem(next, 'next', partitionCount, known);
    if (nextProblem !== undefined) return nextProblem;
  }
  return value.locations === undefined
    ? undefined
    : ringLocationsProblem(value.locations, [...(owners as string[]), ...((next as string[] | null | undefined) ?? [])]);
}

/** Why a ring's locations are malformed: each must be a valid location of a node the ring names. */
function ringLocationsProblem(value: unknown, named: readonly string[]): string | undefined {
  if (!isPlainObject(value)) return 'locations is not an object';
  const names = new Set(named);
  for (const [node, location] of Object.entries(value)) {
    if (!names.has(node)) return `locations names ${JSON.stringify(node.slice(0, 140))}, which the ring does not`;
    const problem = locationProblem(location);
    if (problem !== undefined) return `the location of ${node} ${problem}`;
  }
  return undefined;
}

/** A checked ring's locations, in node order, so every node holds (and compares) the same text. */
function ringLocations(value: Record<string, unknown>): Record<string, NodeLocation> {
  const locations = Object.create(null) as Record<string, NodeLocation>;
  for (const node of Object.keys(value).sort()) locations[node] = nodeLocation(value[node] as Record<string, unknown>);
  return locations;
}

const quorumWords = ['one', 'quorum', 'all'];

/**
 * The checked properties of one bucket, or a problem; unknown fields are left out. Every field
 * of BucketProperties needs its check here: one without is dropped from every gossiped and
 * persisted view, so the founder's setting silently reverts to the default elsewhere.
 */
function bucketEntry(value: unknown): Partial<BucketProperties> | string {
  if (!isPlainObject(value)) return 'not an object';
  const entry: Record<string, unknown> = {};
  if (value.nVal !== undefined) {
    if (!isCounter(value.nVal, maxNVal) || value.nVal === 0) return `nVal is not an integer in 1..${maxNVal}`;
    entry.nVal = value.nVal;
  }
  for (const field of ['r', 'w'] as const) {
    const setting = value[field];
    if (setting === undefined) continue;
    if (!(typeof setting === 'string' ? quorumWords.includes(setting) : isCounter(setting, 64) && setting > 0))
      return `${field} is not one, quorum, all or an integer in 1..64`;
    entry[field] = setting;
  }
  if (value.conflictMode !== undefined) {
    if (value.conflictMode !== 'siblings' && value.conflictMode !== 'lww') return 'conflictMode is not siblings or lww';
    entry.conflictMode = value.conflictMode;
  }
  if (value.ttlSeconds !== undefined) {
    if (!isCounter(value.ttlSeconds, maxTtlSeconds)) return `ttlSeconds is not an integer in 0..${maxTtlSeconds}`;
    entry.ttlSeconds = value.ttlSeconds;
  }
  if (value.consistent !== undefined) {
    if (typeof value.consistent !== 'boolean') return 'consistent is not true or false';
    entry.consistent = value.consistent;
  }
  return entry as Partial<BucketProperties>;
}

function bucketPropertiesOf(value: unknown, version: unknown): { properties: Record<string, Partial<BucketProperties>>; version: number } | string {
  if (version === undefined && value === undefined) return { properties: {}, version: 0 };
  if (!isCounter(version)) return 'bucketPropertiesVersion is not a non-negative integer';
  if (!isPlainObject(value)) return 'bucketProperties is not an object';
  const names = Object.keys(value);
  if (names.length > viewLimits.maxBuckets) return `bucketProperties has more than ${viewLimits.maxBuckets} buckets`;
  const properties: Record<string, Partial<BucketProperties>> = {};
  for (const name of names) {
    if (Buffer.byteLength(name) > viewLimits.maxBucketNameLength)
      return `bucketProperties has a bucket name over ${viewLimits.maxBucketNameLength} UTF-8 bytes`;
    const entry = bucketEntry(value[name]);
    if (typeof entry === 'string') return `bucketProperties[${JSON.stringify(name)}]: ${entry}`;
    properties[name] = entry;
  }
  return { properties, version };
}

/**
 * Checks a view that came from a peer or from disk against its schema, part by part: each
 * member record, the ring, the bucket properties. What fails is left out (a member record
 * dropped, the ring or the bucket properties taken as absent) and described in `problems`, so
 * one malformed part neither takes the node down nor spreads, and the rest still merges.
 * Peer input is never trusted (validate at the edge, then trust the data inside).
 */
export function validateView(remote: unknown, expectations: ViewExpectations): ValidatedView {
  const empty: ClusterView = { members: {}, ring: null, bucketProperties: {}, bucketPropertiesVersion: 0 };
  if (!isPlainObject(remote)) return { view: empty, problems: ['the state is not an object'] };
  const problems: string[] = [];
  const members: Record<string, MemberRecord> = {};
  if (remote.members !== undefined) {
    if (!isPlainObject(remote.members)) problems.push('members is not an object');
    else {
      const entries = Object.entries(remote.members);
      if (entries.length > viewLimits.maxMembers) problems.push(`members has ${entries.length} entries, more than ${viewLimits.maxMembers}`);
      else {
        for (const [key, value] of entries) {
          const problem = memberProblem(key, value, expectations.nowMs);
          if (problem === undefined) members[key] = memberRecord(value as Record<string, unknown>);
          else problems.push(`member ${JSON.stringify(key).slice(0, 140)}: ${problem}`);
        }
      }
    }
  }
  let ring: Ring | null = null;
  if (remote.ring !== null && remote.ring !== undefined) {
    const known = new Set([...expectations.knownMemberIds, ...Object.keys(members)]);
    const problem = ringProblem(remote.ring, expectations, known);
    if (problem === undefined) {
      const { partitionCount, owners, version, next, locations } = remote.ring as unknown as Ring;
      ring = { partitionCount, owners: [...owners], version, next: next === null || next === undefined ? null : [...next] };
      if (locations !== undefined) ring = { ...ring, locations: ringLocations(locations as unknown as Record<string, unknown>) };
    } else problems.push(`ring: ${problem}`);
  }
  const buckets = bucketPropertiesOf(remote.bucketProperties, remote.bucketPropertiesVersion);
  if (typeof buckets === 'string') problems.push(buckets);
  const { properties, version } = typeof buckets === 'string' ? { properties: {}, version: 0 } : buckets;
  return { view: { members, ring, bucketProperties: properties, bucketPropertiesVersion: version }, problems };
}
