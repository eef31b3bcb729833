/**
 * The backup file format (README, "Backup and restore"): one file per partition, written by the
 * node that streams the partition (GET /admin/backup/partitions/{partition}) and read back by
 * `ringkv backup verify` and `ringkv restore`. Every object travels exactly as the replica stored
 * it (its encoded bytes: siblings, clock, dots, tombstones, expiry, data type state), so a backup
 * can never lose a sibling or turn a delete into nothing.
 *
 * Layout, all integers big-endian:
 *
 *   header  'RKVB' | formatVersion u8 | 0 u8 | 0 u16 | partition u32 | partitionCount u32   (16 bytes)
 *   record  kind u8 | keyLength u32 | valueLength u32 | key | value                          (repeated)
 *   end     kind 0  | 0 u32        | 8 u32            | recordCount u64                       (last)
 *
 * Record kinds: 1 a stored object (key: the storage key, value: the stored object bytes); 2 a
 * reaped-tombstone record (key: the storage key, value: reapedAtMs f64 then the tombstone's bytes);
 * 3 a consistent key's decided state, read by a Paxos round when the partition was streamed (key:
 * the storage key, value: version u64, then u8 0 for a deleted key or 1 and the register's bytes,
 * src/core/consensus/consistent-value.ts). Format 2 added kind 3; a reader refuses format 1, whose
 * backups silently lack the consistent buckets' keys and the leases.
 * The end record makes a cut-off stream detectable on its own; the manifest's SHA-256 of each
 * file catches any other change.
 */
import { KvError } from '../util/errors.js';
import type { BucketProperties } from '../config/schema.js';
import type { NodeLocation } from '../core/ring/ring.js';

/** The version of the backup format this ringkv writes and reads (also in the manifest). */
export const backupFormatVersion = 2;

const magic = Buffer.from('RKVB', 'latin1');
/** Bytes of the file header. */
export const headerBytes = 16;
/** Bytes of a record's fixed part (kind, key length, value length). */
const recordHeaderBytes = 9;
/** The largest storage key a record may carry: a bucket and key of at most 64 KiB each, and the position. */
const maxKeyBytes = 6 + 2 * 65_536;
/** The largest value a record may carry; anything larger is a corrupt length, not an object. */
export const maxRecordValueBytes = 1024 * 1024 * 1024;

/** What a record holds. */
export type BackupRecordKind = BackupRecord['kind'];

/**
 * One record of a backup, under its storage key (ring position, bucket, key: src/core/keys.ts): a
 * stored object, a reaped-tombstone record (its tombstone's bytes and when it was reaped), or a
 * consistent key's decided state (its version and register bytes, null when deleted).
 */
export type BackupRecord =
  | { readonly kind: 'object'; readonly dataKey: Buffer; readonly objectBytes: Buffer }
  | { readonly kind: 'reaped'; readonly dataKey: Buffer; readonly objectBytes: Buffer; readonly reapedAtMs: number }
  | { readonly kind: 'consistent'; readonly dataKey: Buffer; readonly version: number; readonly value: Buffer | null };

/** The header of a partition file. */
export interface BackupFileHeader {
  readonly formatVersion: number;
  readonly partition: number;
  readonly partitionCount: number;
}

const kindCodes: Record<BackupRecordKind, number> = { object: 1, reaped: 2, consistent: 3 };
const endKindCode = 0;

/** The header of a partition file. */
export function encodeHeader(partition: number, partitionCount: number): Buffer {
  const bytes = Buffer.alloc(headerBytes);
  magic.copy(bytes, 0);
  bytes.writeUInt8(backupFormatVersion, 4);
  bytes.writeUInt32BE(partition, 8);
  bytes.writeUInt32BE(partitionCount, 12);
  return bytes;
}

/** One record, framed. */
export function encodeRecord(record: BackupRecord): Buffer {
  const value = recordValue(record);
  const head = Buffer.alloc(recordHeaderBytes);
  head.writeUInt8(kindCodes[record.kind], 0);
  head.writeUInt32BE(record.dataKey.length, 1);
  head.writeUInt32BE(value.length, 5);
  return Buffer.concat([head, record.dataKey, value]);
}

/** The end record, carrying how many records came before it. */
export function encodeEnd(recordCount: number): Buffer {
  const bytes = Buffer.alloc(recordHeaderBytes + 8);
  bytes.writeUInt8(endKindCode, 0);
  bytes.writeUInt32BE(0, 1);
  bytes.writeUInt32BE(8, 5);
  bytes.writeBigUInt64BE(BigInt(recordCount), recordHeaderBytes);
  return bytes;
}

function recordValue(record: BackupRecord): Buffer {
  switch (record.kind) {
    case 'object':
      return record.objectBytes;
    case 'reaped':
      return Buffer.concat([doubleBytes(record.reapedAtMs), record.objectBytes]);
    case 'consistent': {
      const head = Buffer.alloc(9);
      head.writeBigUInt64BE(BigInt(record.version), 0);
      head.writeUInt8(record.value === null ? 0 : 1, 8);
      return record.value === null ? head : Buffer.concat([head, record.value]);
    }
  }
}

function doubleBytes(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeDoubleBE(value, 0);
  return bytes;
}

/**
 * The refusal of a backup of another format version, naming where it came from. Format 1 lacks the
 * consistent buckets' keys and the leases: it is refused rather than restored without them.
 */
export function unreadableFormat(source: string, formatVersion: number): KvError {
  const which =
    formatVersion === 1
      ? "backup format version 1, written by a ringkv that did not back up consistent buckets' keys or leases"
      : `backup format version ${formatVersion}`;
  return new KvError(
    'KV_BACKUP_INVALID',
    `${source}: ${which}; this ringkv reads version ${backupFormatVersion} only: restore it with the ringkv that took it, or take a new backup into a new directory`,
    { details: { file: source, formatVersion } },
  );
}

/** A refusal of a backup's bytes, naming where they came from. */
export function invalidBackup(source: string, problem: string): KvError {
  return new KvError(
    'KV_BACKUP_INVALID',
    `${source}: ${problem}; this backup file cannot be trusted: take the backup again (or resume it with the same --to), nothing was restored from it`,
    {
      details: { file: source },
    },
  );
}

/**
 * Reads framed records from chunks as they arrive, holding at most one record and one chunk in
 * memory. `source` names the file or stream in every refusal.
 */
export class BackupRecordReader {
  private pending: Buffer = Buffer.alloc(0);
  private headerSeen: boolean;
  private ended = false;
  private records = 0;
  /** The file header, once read. */
  header: BackupFileHeader | undefined;

  constructor(
    private readonly source: string,
    /** Whether the stream starts with a file header and ends with an end record (a file), or is bare records (a restore batch). */
    private readonly framing: 'file' | 'records',
  ) {
    this.headerSeen = framing === 'records';
  }

  /** Records counted so far. */
  get recordCount(): number {
    return this.records;
  }

  /** Feeds a chunk; answers the records it completed. */
  push(chunk: Uint8Array): BackupRecord[] {
    this.pending = this.pending.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.pending, chunk]);
    const out: BackupRecord[] = [];
    let offset = 0;
    if (!this.headerSeen) {
      if (this.pending.length < headerBytes) return out;
      this.header = this.readHeader(this.pending.subarray(0, headerBytes));
      this.headerSeen = true;
      offset = headerBytes;
    }
    while (this.pending.length - offset >= recordHeaderBytes) {
      if (this.ended) throw invalidBackup(this.source, `bytes follow the end record at offset ${offset}`);
      const kindCode = this.pending.readUInt8(offset);
      const keyLength = this.pending.readUInt32BE(offset + 1);
      const valueLength = this.pending.readUInt32BE(offset + 5);
      if (kindCode !== endKindCode && kindCode !== kindCodes.object && kindCode !== kindCodes.reaped && kindCode !== kindCodes.consistent)
        throw invalidBackup(this.source, `record ${this.records + 1} has unknown kind ${kindCode}`);
      if (keyLength > maxKeyBytes || valueLength > maxRecordValueBytes)
        throw invalidBackup(this.source, `record ${this.records + 1} claims ${keyLength} key bytes and ${valueLength} value bytes, beyond any stored object`);
      const total = recordHeaderBytes + keyLength + valueLength;
      if (this.pending.length - offset < total) break;
      const key = this.pending.subarray(offset + recordHeaderBytes, offset + recordHeaderBytes + keyLength);
      const value = this.pending.subarray(offset + recordHeaderBytes + keyLength, offset + total);
      offset += total;
      if (kindCode === endKindCode) {
        if (this.framing !== 'file' || keyLength !== 0 || valueLength !== 8) throw invalidBackup(this.source, 'a malformed end record');
        const counted = Number(value.readBigUInt64BE(0));
        if (counted !== this.records) throw invalidBackup(this.source, `the end record counts ${counted} records but ${this.records} came before it`);
        this.ended = true;
        continue;
      }
      if (keyLength < 6) throw invalidBackup(this.source, `record ${this.records + 1} has a storage key of ${keyLength} bytes, shorter than any`);
      this.records += 1;
      // Copies, so a record never pins the chunk it came in.
      if (kindCode === kindCodes.reaped) {
        if (valueLength < 8) throw invalidBackup(this.source, `reaped record ${this.records} is too short`);
        out.push({ kind: 'reaped', dataKey: Buffer.from(key), reapedAtMs: value.readDoubleBE(0), objectBytes: Buffer.from(value.subarray(8)) });
      } else if (kindCode === kindCodes.consistent) {
        out.push(this.consistentRecord(key, value));
      } else {
        out.push({ kind: 'object', dataKey: Buffer.from(key), objectBytes: Buffer.from(value) });
      }
    }
    this.pending = this.pending.subarray(offset);
    return out;
  }

  /** Checks that the stream ended where it may: after the end record of a file, or between records of a batch. */
  finish(): void {
    if (!this.headerSeen) throw invalidBackup(this.source, `the file is truncated: ${this.pending.length} bytes, shorter than the ${headerBytes}-byte header`);
    if (this.pending.length > 0)
      throw invalidBackup(this.source, `the file is truncated: ${this.pending.length} bytes of an incomplete record after record ${this.records}`);
    if (this.framing === 'file' && !this.ended) throw invalidBackup(this.source, `the file is truncated: no end record after record ${this.records}`);
  }

  private consistentRecord(key: Buffer, value: Buffer): BackupRecord {
    const flag = value.length >= 9 ? value.readUInt8(8) : -1;
    const version = value.length >= 9 ? value.readBigUInt64BE(0) : 0n;
    if (flag < 0 || flag > 1 || (flag === 0 && value.length !== 9) || version < 1n || version > BigInt(Number.MAX_SAFE_INTEGER))
      throw invalidBackup(this.source, `consistent record ${this.records} is malformed (a version from 1 and a presence flag of 0 or 1 come first)`);
    return { kind: 'consistent', dataKey: Buffer.from(key), version: Number(version), value: flag === 0 ? null : Buffer.from(value.subarray(9)) };
  }

  private readHeader(bytes: Buffer): BackupFileHeader {
    if (!bytes.subarray(0, 4).equals(magic)) throw invalidBackup(this.source, 'not a ringkv backup file (no RKVB header)');
    const formatVersion = bytes.readUInt8(4);
    if (formatVersion !== backupFormatVersion) throw unreadableFormat(this.source, formatVersion);
    return { formatVersion, partition: bytes.readUInt32BE(8), partitionCount: bytes.readUInt32BE(12) };
  }
}

/** What GET /admin/backup answers: the facts a backup's manifest keeps, and what a restore checks. */
export interface BackupDescription {
  readonly formatVersion: number;
  readonly nodeId: string;
  readonly partitionCount: number;
  /** `locations` (absent when no node is labelled) places replicas as the ring does, so the backup asks a partition's replicas. */
  readonly ring: {
    readonly version: number;
    readonly owners: readonly string[];
    readonly changing: boolean;
    readonly locations?: Readonly<Record<string, NodeLocation>>;
  };
  readonly members: readonly { readonly id: string; readonly address: string; readonly status: string }[];
  /** The properties in force: '' holds the defaults, other entries the buckets that have their own. */
  readonly bucketProperties: Readonly<Record<string, BucketProperties>>;
  /** How long replicas remember a reaped tombstone: an older backup restored here could bring back a key deleted and forgotten since. */
  readonly reapedRetentionMs: number;
  /** This node's clock, so a restore can judge the backup's age by the cluster's time. */
  readonly nowMs: number;
}

/** What a restore batch achieved. */
export interface RestoreOutcome {
  readonly records: number;
  /** Versions merged: objects and reaped tombstones by their clocks, consistent keys written at their backed-up version. */
  readonly merged: number;
  /** Consistent keys left as they were: the target already had their backed-up version or a newer one. */
  readonly kept: number;
  /** Leased keys restored as deleted: their lease is not live in the target (ended, or its record holds no such key). */
  readonly unleased: number;
  readonly failed: number;
  /** The first few failures, each naming its key and why. */
  readonly failures: readonly { readonly bucket: string; readonly key: string; readonly code: string; readonly message: string }[];
}
