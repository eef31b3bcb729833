import type { FastifyInstance } from 'fastify';
import type { KvService } from '../engine/kv-service.js';
import { leaveSchema, removeSchema, repairProgressSchema, repairStartSchema } from './route-schemas.js';

/**
 * Cluster operations on any node: anti-entropy on demand (`ringkv repair`), decommissioning this
 * node (`ringkv leave`) and removing a node that is gone for good (`ringkv remove`). Each starts
 * background work and answers at once; progress shows in /status (and GET /admin/repair).
 */
export function registerClusterAdminRoutes(app: FastifyInstance, service: KvService): void {
  app.post('/admin/repair', { schema: repairStartSchema }, async (_request, reply) => {
    reply.code(202);
    return service.repair();
  });
  app.get('/admin/repair', { schema: repairProgressSchema }, async () => service.repairProgress());
  app.post('/admin/leave', { schema: leaveSchema }, async (_request, reply) => {
    reply.code(202);
    return service.leave();
  });
  app.post<{ Params: { nodeId: string } }>('/admin/remove/:nodeId', { schema: removeSchema }, async (request, reply) => {
    // removeSchema's pattern has already refused anything that is not a node id (400 KV_BAD_PARAMETER).
    reply.code(202);
    return service.removeMember(request.params.nodeId);
  });
}
