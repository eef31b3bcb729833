import type { FastifyInstance, FastifyRequest } from 'fastify';
import { leaseIdPattern, maxLeaseTtlSeconds, minLeaseTtlSeconds } from '../core/leases/lease-record.js';
import type { KvService } from '../engine/kv-service.js';
import { KvError } from '../util/errors.js';
import { leaseGetSchema, leaseGrantSchema, leaseKeepAliveSchema, leaseRevokeSchema } from './route-schemas.js';

/** What the /leases routes need. */
export interface LeaseRouteDependencies {
  readonly service: KvService;
}

interface LeaseRoute {
  Params: { readonly id: string };
}

/** The ttl of a POST /leases body, `{"ttl": seconds}` (the app reads every body as bytes). */
function ttlOf(body: unknown): number {
  const shape = `send {"ttl": N} with N whole seconds from ${minLeaseTtlSeconds} to ${maxLeaseTtlSeconds}`;
  let parsed: unknown;
  try {
    parsed = Buffer.isBuffer(body) && body.length > 0 ? (JSON.parse(body.toString('utf8')) as unknown) : undefined;
  } catch {
    throw new KvError('KV_BAD_REQUEST', `the body is not JSON; ${shape}`);
  }
  const ttl = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>).ttl : undefined;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < minLeaseTtlSeconds || ttl > maxLeaseTtlSeconds || Object.keys(parsed as object).length !== 1) {
    throw new KvError('KV_BAD_REQUEST', `a lease needs a ttl; ${shape}`);
  }
  return ttl;
}

/** A lease id from the path, checked before any round is spent on it. */
function checkLeaseId(id: string, where: string): void {
  if (!leaseIdPattern.test(id)) {
    throw new KvError('KV_BAD_REQUEST', `${where} ${JSON.stringify(id.slice(0, 40))} is not a lease id: use the 16 hex digits POST /leases answered`);
  }
}

/**
 * Registers /leases (README, "Leases and ephemeral keys"): grant, keep-alive, describe and revoke,
 * each a compare-and-set of the lease's record in its consistent bucket (src/engine/leases.ts).
 */
export function registerLeaseRoutes(app: FastifyInstance, dependencies: LeaseRouteDependencies): void {
  const { leases } = dependencies.service;
  app.post(
    '/leases',
    {
      schema: leaseGrantSchema,
      preValidation: async (request: FastifyRequest) => {
        request.body = { ttl: ttlOf(request.body) };
      },
    },
    async (request, reply) => {
      const grant = await leases.grant((request.body as { ttl: number }).ttl);
      return reply.code(201).send({ id: grant.id, ttl: grant.ttlSeconds });
    },
  );
  app.post<LeaseRoute>('/leases/:id/keepalive', { schema: leaseKeepAliveSchema }, async (request) => {
    checkLeaseId(request.params.id, 'the path names');
    const grant = await leases.keepAlive(request.params.id);
    return { id: grant.id, ttl: grant.ttlSeconds };
  });
  app.get<LeaseRoute>('/leases/:id', { schema: leaseGetSchema }, async (request) => {
    checkLeaseId(request.params.id, 'the path names');
    const lease = await leases.describe(request.params.id);
    return {
      id: lease.id,
      ttl: lease.ttlSeconds,
      keepAlives: lease.keepAlives,
      ...(lease.remainingSeconds === undefined ? {} : { remaining: lease.remainingSeconds }),
      keys: lease.keys,
    };
  });
  app.delete<LeaseRoute>('/leases/:id', { schema: leaseRevokeSchema }, async (request, reply) => {
    checkLeaseId(request.params.id, 'the path names');
    await leases.revoke(request.params.id);
    return reply.code(204).send();
  });
}
