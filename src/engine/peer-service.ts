import type { PeerReply, PeerRequest } from '../core/wire/messages.js';
import { errorReplyDetails, peerErrorReply } from '../core/wire/error-reply.js';
import { assert } from '../util/assert.js';
import { KvError, type KvErrorCode, isKvError } from '../util/errors.js';
import type { Logger } from '../ports/logger.js';
import type { Transport } from '../ports/transport.js';

/** The type of a peer request. */
export type PeerRequestType = PeerRequest['type'];

/** The request of one type. */
export type PeerRequestOf<Type extends PeerRequestType> = Extract<PeerRequest, { readonly type: Type }>;

/** How a role serves one type of peer request. */
export type PeerRequestHandler<Type extends PeerRequestType> = (request: PeerRequestOf<Type>) => Promise<PeerReply>;

/**
 * Refusals a coordinating replica makes for a reason the client can act on: they keep their code
 * across the peer hop and reach the client as they are, instead of becoming "replica unreachable".
 */
export const clientRefusalCodes: ReadonlySet<string> = new Set([
  'KV_TOO_MANY_SIBLINGS',
  'KV_OBJECT_TOO_LARGE',
  'KV_PRECONDITION_FAILED',
  'KV_TYPE_MISMATCH',
  'KV_SET_TOO_LARGE',
  'KV_COUNTER_OVERFLOW',
  'KV_BAD_CONTEXT',
  'KV_CONSISTENT_BUCKET',
]);

/** How a handler is run. */
export interface PeerHandlerOptions {
  /** Served by a node that was removed from the cluster too (gossip is: it still hears the ring). */
  readonly servesWhenRemoved?: boolean;
  /**
   * The handler checks its request against a schema and the ring before it touches any state,
   * throwing KV_BAD_REQUEST: such a refusal is logged and answered as an error reply.
   */
  readonly refusesMalformed?: boolean;
}

/** What the peer service needs from its node. */
export interface PeerServiceOptions {
  readonly selfId: string;
  readonly transport: Transport;
  readonly logger: Logger;
  /** The most any peer call waits (limits.peerTimeoutMs). */
  readonly peerTimeoutMs: number;
  /** The address of a member, from the gossiped view. */
  readonly addressOf: (nodeId: string) => string | undefined;
  /** Why this node serves no data now (it was removed), or undefined while it serves. */
  readonly refusal: () => KvError | undefined;
}

interface Registration {
  readonly handle: (request: PeerRequest) => Promise<PeerReply>;
  readonly options: PeerHandlerOptions;
}

/**
 * This node's side of node-to-node traffic (riak_core's vnode and service dispatch): every role
 * registers the request types it serves, and a request from a peer goes to its role; `send` carries this node's requests to peers, short-circuiting its own.
 * A new feature adds its message types with `register`, without touching any other role.
 */
export class PeerService {
  private readonly handlers = new Map<PeerRequestType, Registration>();

  constructor(private readonly options: PeerServiceOptions) {}

  /** Registers the role that serves requests of `type`; each type has one. */
  register<Type extends PeerRequestType>(type: Type, handle: PeerRequestHandler<Type>, options: PeerHandlerOptions = {}): void {
    assert(!this.handlers.has(type), `peer request type ${type} has a handler already`);
    this.handlers.set(type, { handle: handle as (request: PeerRequest) => Promise<PeerReply>, options });
  }

  /** True when a role serves requests of `type`. */
  handles(type: PeerRequestType): boolean {
    return this.handlers.has(type);
  }

  /**
   * Serves a peer's request (already authenticated) with the role that registered its type. It
   * never rejects: a failure is mapped to its error reply here, the one place for every
   * transport, so the simulated network answers exactly what the framed transport answers. A
   * KvError is an answer (its code and message say what to do); anything else is a bug of this
   * node, logged here and answered without its message, which may hold internals.
   */
  async handle(request: PeerRequest): Promise<PeerReply> {
    try {
      return await this.serve(request);
    } catch (error) {
      return peerErrorReply(error, (unexpected) =>
        this.options.logger.error({ err: unexpected, peerRequest: request.type }, 'unexpected error while handling a peer request'),
      );
    }
  }

  /** The reply of the role that registered the request's type (or a refusal). */
  private async serve(request: PeerRequest): Promise<PeerReply> {
    const registration = this.handlers.get(request.type);
    if (registration === undefined) {
      throw new KvError('KV_BAD_REQUEST', `this node serves no peer request ${JSON.stringify(request.type)}; is the peer a newer ringkv?`);
    }
    const refusal = registration.options.servesWhenRemoved === true ? undefined : this.options.refusal();
    if (refusal !== undefined) throw refusal;
    if (registration.options.refusesMalformed !== true) return registration.handle(request);
    return this.refusingBadRequests(request, () => registration.handle(request));
  }

  /** Sends a request to a node, short-circuiting requests to this node. */
  async send(node: string, request: PeerRequest, timeoutMs?: number): Promise<PeerReply> {
    const reply = node === this.options.selfId ? await this.handle(request) : await this.request(node, request, timeoutMs);
    // This node's own answer is judged as a peer's is, so a request behaves the same whichever replica serves it. A refusal the client must see as it is (it says what to do) keeps its code; any other error reply means the peer could not serve.
    if (reply.type === 'error') {
      // A forwarded write's error is the answer of the node that ran the whole write: the client's answer.
      if (clientRefusalCodes.has(reply.code) || request.type === 'forward-put') {
        const details = errorReplyDetails(reply);
        throw new KvError(reply.code as KvErrorCode, reply.message, {
          ...(details === undefined ? {} : { details }),
          ...(reply.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: reply.retryAfterSeconds }),
        });
      }
      throw new KvError('KV_PEER_UNREACHABLE', `node ${node} answered ${reply.code}: ${reply.message}`);
    }
    return reply;
  }

  /** A peer's reply over the transport. */
  private async request(node: string, request: PeerRequest, timeoutMs: number | undefined): Promise<PeerReply> {
    const address = this.options.addressOf(node);
    if (address === undefined) throw new KvError('KV_PEER_UNREACHABLE', `no address known for node ${node}`);
    // A peer call of a client request never outlives what is left of that request's deadline.
    const peerTimeoutMs = Math.max(1, Math.min(this.options.peerTimeoutMs, timeoutMs ?? Number.POSITIVE_INFINITY));
    return this.options.transport.request(address, request, { timeoutMs: peerTimeoutMs });
  }

  /**
   * Runs a handoff or anti-entropy request, whose handler checks it against its schema and the
   * ring before it touches any state; one that fails the check is logged here (`handle` answers
   * its error reply), so a bad peer message never reaches state.
   */
  private async refusingBadRequests(request: PeerRequest, handle: () => Promise<PeerReply>): Promise<PeerReply> {
    try {
      return await handle();
    } catch (error) {
      if (!isKvError(error) || error.code !== 'KV_BAD_REQUEST') throw error;
      this.options.logger.warn({ request: request.type, error: error.message }, 'refused a malformed peer request');
      throw error;
    }
  }
}
