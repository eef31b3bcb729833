import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { decodeRequestBatch, encodeReplyBatch, peerProtocolVersions } from '../core/wire/codec.js';
import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import type { NodeConfig } from '../config/schema.js';
import type { KvService } from '../engine/kv-service.js';
import { KvError } from '../util/errors.js';
import type { HttpMetrics } from './metrics.js';
import type { PeerSecret } from './peer-auth.js';
import { internalError } from './errors.js';
import { peerSchema } from './route-schemas.js';

/** The one node-to-node endpoint: a binary batch of requests in, a batch of replies out. */
export const peerRoutePath = '/internal/v1/peer';

/** The header carrying the cluster secret on peer traffic. */
export const secretHeader = 'x-ringkv-secret';

const mebibyte = 1024 * 1024;

/**
 * The largest peer batch accepted. A batch coalesces up to a few hundred replica messages, and
 * one replica-put can carry several siblings of up to limits.maxValueBytes each, so the limit is
 * generous: 256 MiB, and never less than two full-size values plus 1 MiB of framing, so a
 * replica-put of a largest value with one sibling always fits whatever limits.maxValueBytes is.
 * Only authenticated peers get this far (the secret is checked before the body is read), so the
 * memory risk is bounded by what real peers send. Peers must keep a batch below it: a bigger one
 * is refused 413 KV_VALUE_TOO_LARGE as a whole.
 */
export function peerBodyLimitBytes(config: NodeConfig): number {
  return Math.max(256 * mebibyte, 2 * config.limits.maxValueBytes + mebibyte);
}

/** Refuses unauthenticated peer traffic before a byte of the body is read or decoded. */
function checkSecret(request: FastifyRequest, peerSecret: PeerSecret): void {
  const presented = request.headers[secretHeader];
  if (typeof presented !== 'string' || presented === '') {
    throw new KvError('KV_UNAUTHORIZED', `peer requests need the cluster secret in ${secretHeader}; this route is for ringkv nodes, not clients`);
  }
  if (!peerSecret.matches(presented)) {
    throw new KvError('KV_FORBIDDEN', `the ${secretHeader} header does not match this cluster's secret; check RINGKV_CLUSTER_SECRET on both nodes`);
  }
}

/** One request's reply; a failure becomes an error reply so the rest of the batch still gets answered. */
async function answer(request: PeerRequest, service: KvService, log: FastifyRequest['log']): Promise<PeerReply> {
  try {
    return await service.handlePeer(request);
  } catch (error) {
    if (error instanceof KvError) return { type: 'error', code: error.code, message: error.message };
    log.error({ err: error, peerRequest: request.type }, 'unexpected error while handling a peer request');
    const internal = internalError();
    return { type: 'error', code: internal.code, message: internal.message };
  }
}

/** Registers POST /internal/v1/peer. */
export function registerPeerRoute(app: FastifyInstance, dependencies: { service: KvService; config: NodeConfig; metrics: HttpMetrics; peerSecret: PeerSecret }): void {
  const { service, config, metrics, peerSecret } = dependencies;
  const options = {
    bodyLimit: peerBodyLimitBytes(config),
    schema: peerSchema,
    onRequest: async (request: FastifyRequest) => checkSecret(request, peerSecret),
    onResponse: async (_request: FastifyRequest, reply: FastifyReply) => metrics.observe('peer', reply.statusCode, reply.elapsedTime / 1000),
  };
  app.post(peerRoutePath, options, async (request, reply) => {
    const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    // Throws KV_BAD_REQUEST on a malformed batch, before anything is handled.
    const requests = decodeRequestBatch(body);
    const replies = await Promise.all(requests.map((peerRequest) => answer(peerRequest, service, request.log)));
    // Version 1 forms: a caller of this route may be a node from before the binary gossip and control forms.
    return reply.code(200).type('application/octet-stream').send(encodeReplyBatch(replies, peerProtocolVersions.jsonState));
  });
}
