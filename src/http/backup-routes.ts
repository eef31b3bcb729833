import { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { BackupRecordReader } from '../engine/backup-format.js';
import type { NodeConfig } from '../config/schema.js';
import type { BackupAdmin, KvService } from '../engine/kv-service.js';
import { KvError } from '../util/errors.js';
import { maxTimeoutMs } from '../core/client-limits.js';
import { errorResponses, integerParameter } from './route-schemas.js';

/**
 * The node's side of `ringkv backup` and `ringkv restore` (README, "Backup and restore"): a
 * description of the cluster for the manifest, one partition's stored records as a stream, and a
 * batch of records to merge into their keys' replicas. They are admin routes, so with
 * `auth.enabled` they need a read-write token (src/http/auth.ts), as a backup reads every value.
 */

const mebibyte = 1024 * 1024;

const describeSchema = {
  tags: ['admin'],
  summary: 'what a backup records of the cluster: partition count, ring, members, bucket properties',
  response: {
    200: Type.Object({}, { additionalProperties: true, description: 'src/engine/backup-format.ts BackupDescription' }),
    ...errorResponses(['KV_NOT_READY']),
  },
};

const partitionSchema = {
  tags: ['admin'],
  summary: "stream one partition's stored objects and reaped-tombstone records from this node, in the backup file format",
  params: Type.Object({ partition: Type.String({ pattern: '^[0-9]{1,5}$', description: 'a partition number, 0..partitionCount-1' }) }),
  querystring: Type.Object(
    {
      ring_version: Type.Optional(
        Type.String({ pattern: '^[0-9]{1,15}$', description: 'an integer of up to 15 digits: refuse (409) unless the ring still has this version' }),
      ),
      node: Type.Optional(
        Type.String({
          pattern: '^[A-Za-z0-9._-]{1,128}$',
          description:
            "a member id (up to 128 letters, digits, '.', '_', '-'): refuse (404 KV_UNKNOWN_NODE) unless this is that member (a sharded node's shared port reaches any of its shards)",
        }),
      ),
    },
    { additionalProperties: false },
  ),
  response: {
    200: Type.String({ description: 'the partition file (application/octet-stream)' }),
    ...errorResponses(['KV_BAD_PARAMETER', 'KV_CONFLICT', 'KV_NOT_READY', 'KV_STORAGE', 'KV_UNKNOWN_NODE']),
  },
};

const restoreSchema = {
  tags: ['admin'],
  summary:
    "merge backup records into their keys' current replicas, like any replica write, and consistent keys by a Paxos write (never overwriting a newer version)",
  querystring: Type.Object(
    {
      w: Type.Optional(
        Type.Union([Type.Literal('one'), Type.Literal('quorum'), Type.Literal('all')], {
          description: 'one, quorum or all: replicas that must acknowledge each merge (default quorum)',
        }),
      ),
      timeout_ms: Type.Optional(integerParameter(1, maxTimeoutMs, " (milliseconds): each merge's deadline, default limits.requestTimeoutMs")),
    },
    { additionalProperties: false },
  ),
  response: {
    200: Type.Object(
      {},
      {
        additionalProperties: true,
        description: 'records, merged, kept (consistent keys), unleased (leased keys restored deleted), failed, and the first failures',
      },
    ),
    ...errorResponses(['KV_BACKUP_INVALID', 'KV_BAD_PARAMETER', 'KV_VALUE_TOO_LARGE', 'KV_NOT_READY']),
  },
};

/** The largest restore batch a node takes: the CLI sends about 1 MiB; one large object may go alone. */
export function restoreBodyLimitBytes(config: NodeConfig): number {
  return Math.max(16 * mebibyte, 4 * config.limits.maxValueBytes);
}

function backupOf(service: KvService): BackupAdmin {
  if (service.backup === undefined) throw new KvError('KV_NOT_READY', 'this node serves no backups (it has no storage of its own)');
  return service.backup;
}

/** GET /admin/backup, GET /admin/backup/partitions/{partition}, POST /admin/restore. */
export function registerBackupRoutes(app: FastifyInstance, dependencies: { readonly service: KvService; readonly config: NodeConfig }): void {
  const { service, config } = dependencies;
  app.get('/admin/backup', { schema: describeSchema }, async () => backupOf(service).describe());

  app.get<{ Params: { partition: string }; Querystring: { ring_version?: string; node?: string } }>(
    '/admin/backup/partitions/:partition',
    { schema: partitionSchema },
    async (request, reply) => {
      const backup = backupOf(service);
      const partition = Number(request.params.partition);
      const ringVersion = request.query.ring_version === undefined ? undefined : Number(request.query.ring_version);
      // Checked before the first byte, so a refusal is an error answer and not a cut-off file.
      backup.checkPartition(partition, ringVersion, request.query.node);
      const partitionCount = backup.describe().partitionCount;
      // A stream: the reply reads the partition as the client takes it, so memory stays bounded and a
      // slow (throttled) reader slows the scan instead of filling the node's memory.
      return reply.type('application/octet-stream').send(Readable.from(backup.partitionFile(partition, partitionCount), { objectMode: false }));
    },
  );

  app.post<{ Querystring: { w?: 'one' | 'quorum' | 'all'; timeout_ms?: string } }>(
    '/admin/restore',
    { schema: restoreSchema, bodyLimit: restoreBodyLimitBytes(config) },
    async (request) => {
      const backup = backupOf(service);
      const body = request.body;
      if (!Buffer.isBuffer(body))
        throw new KvError('KV_BACKUP_INVALID', 'a restore batch is a body of backup records (application/octet-stream); send it with `ringkv restore`');
      const timeoutMs = request.query.timeout_ms === undefined ? undefined : Number(request.query.timeout_ms);
      const reader = new BackupRecordReader('the restore batch', 'records');
      const records = reader.push(body);
      reader.finish();
      return backup.restore(records, { w: request.query.w ?? 'quorum', ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    },
  );
}
