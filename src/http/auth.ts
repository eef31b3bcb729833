import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthConfig, AuthRole, AuthToken } from '../config/schema.js';
import { KvError } from '../util/errors.js';

/**
 * Access control of the HTTP app. Client requests carry a bearer token from `auth.tokens`
 * (read-only or read-write). Nodes never talk to each other over HTTP (the framed peer port
 * does that, src/adapters/framed-peer-server.ts), so the cluster secret is never asked for or
 * accepted here. Tokens are compared in constant time and never appear in a log line or an
 * error message.
 */

/** What a request needs: nothing, any token, or a read-write token. */
export type RequiredAccess = 'open' | 'read' | 'write';

/** The realm of the WWW-Authenticate challenge (RFC 6750 for bearer, RFC 7617 for basic). */
const realm = 'ringkv';

function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`);
}

/** Whether the dashboard needs a token: when asked, and whenever the figures it shows (from /status and /metrics) do. */
export function dashboardProtected(auth: AuthConfig): boolean {
  return auth.protectUi || auth.protectStatus || auth.protectMetrics;
}

/**
 * The access a request needs. Anything not listed (routes added later included) needs a token:
 * GET and HEAD any token, other methods a read-write one, so a new route is never open by mistake.
 */
export function requiredAccess(method: string, path: string, auth: AuthConfig): RequiredAccess {
  const reading = method === 'GET' || method === 'HEAD';
  if (!auth.enabled) return 'open';
  if (path === '/health') return 'open';
  if (path === '/status') return auth.protectStatus ? 'read' : 'open';
  if (path === '/metrics') return auth.protectMetrics ? 'read' : 'open';
  if (isUnder(path, '/ui')) return dashboardProtected(auth) ? 'read' : 'open';
  if (isUnder(path, '/admin')) return 'write';
  return reading ? 'read' : 'write';
}

/** The token a request presents: `Authorization: Bearer TOKEN`, or basic auth with the token as password (for browsers). */
export function presentedToken(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const [scheme, credentials] = authorization.trim().split(/\s+/, 2);
  if (credentials === undefined || scheme === undefined) return undefined;
  if (scheme.toLowerCase() === 'bearer') return credentials;
  if (scheme.toLowerCase() === 'basic') {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    return colon < 0 ? undefined : decoded.slice(colon + 1);
  }
  return undefined;
}

/** The configured tokens, kept as SHA-256 digests so every comparison takes the same time whatever the input. */
export class TokenRegistry {
  private readonly entries: { readonly digest: Buffer; readonly role: AuthRole; readonly name: string }[];

  constructor(tokens: readonly AuthToken[]) {
    this.entries = tokens.map((token, index) => ({ digest: digestOf(token.token), role: token.role, name: token.name ?? `token #${index + 1}` }));
  }

  /** The role and label of a presented token, or undefined; compares against every token, never stopping early. */
  lookup(presented: string): { role: AuthRole; name: string } | undefined {
    const digest = digestOf(presented);
    let match: { role: AuthRole; name: string } | undefined;
    for (const entry of this.entries) {
      if (timingSafeEqual(digest, entry.digest) && match === undefined) match = { role: entry.role, name: entry.name };
    }
    return match;
  }
}

function digestOf(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The dashboard's challenge is basic auth, so a browser shows its own login prompt; elsewhere it is bearer. */
function challenge(reply: FastifyReply, path: string): void {
  reply.header('www-authenticate', isUnder(path, '/ui') ? `Basic realm="${realm} dashboard", charset="UTF-8"` : `Bearer realm="${realm}"`);
}

function checkClient(request: FastifyRequest, reply: FastifyReply, route: string, needed: 'read' | 'write', tokens: TokenRegistry): void {
  const rawPath = request.url.split('?', 1)[0] ?? '';
  // The path as sent, shortened: a message must not carry a megabyte of URL.
  const path = rawPath.length > 200 ? `${rawPath.slice(0, 200)}...` : rawPath;
  const presented = presentedToken(request.headers.authorization);
  if (presented === undefined) {
    challenge(reply, route);
    throw new KvError('KV_UNAUTHORIZED', `${request.method} ${path} needs a client token: send 'Authorization: Bearer <token>' with a token from auth.tokens`);
  }
  const holder = tokens.lookup(presented);
  if (holder === undefined) {
    challenge(reply, route);
    throw new KvError('KV_UNAUTHORIZED', 'the token is not one of auth.tokens on this node; check the token (it is not shown here) and the node config');
  }
  if (needed === 'write' && holder.role !== 'read-write') {
    throw new KvError('KV_FORBIDDEN', `${holder.name} is read-only; ${request.method} ${path} needs a read-write token`);
  }
}

/**
 * Adds the access check as the first thing every request goes through (before its body is read
 * or its parameters are validated), so an unauthenticated caller learns nothing but 401.
 */
export function registerAuth(app: FastifyInstance, dependencies: { readonly config: { readonly auth: AuthConfig } }): void {
  const { auth } = dependencies.config;
  const tokens = new TokenRegistry(auth.enabled ? auth.tokens : []);
  app.addHook('onRequest', async (request, reply) => {
    // Classify by the route that matched, not the raw URL, so no spelling of a path (percent-encoding,
    // a query) reaches a route under another route's rule; an unmatched URL falls to the default rule.
    const route = request.routeOptions.url ?? request.url.split('?', 1)[0] ?? '';
    const needed = requiredAccess(request.method, route, auth);
    if (needed === 'open') return;
    checkClient(request, reply, route, needed, tokens);
  });
}
