import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient } from '../../src/client/index.js';
import {
  type Answer,
  type MembershipView,
  type NodeProcess,
  call,
  freePorts,
  killNode,
  pollDeadlineMs,
  processTestTimeoutMs,
  startNode,
  temporaryFolder,
  waitForMembersUp,
  waitHealthy,
} from './processes.js';

/**
 * Goal: a real cluster started with client tokens (one node from a config file, one from
 * RINGKV_AUTH_TOKENS) refuses an unauthenticated PUT with 401 and serves it with the token;
 * a read-only token reads but cannot write (403); peer traffic is unaffected (a w=2 write
 * succeeds); /status and /metrics are protected only where configured; and no token appears
 * anywhere in the nodes' output, even at debug level and after refused requests.
 */
describe('a 2-node cluster with client authentication', () => {
  const folder = temporaryFolder('ringkv-auth-');
  const readWrite = 'integration-rw-token-6f1c2a9d0b';
  const readOnly = 'integration-ro-token-83e0d5c7aa';
  const wrong = 'integration-wrong-token-0000000';
  const nodes: NodeProcess[] = [];
  /** Generous: a node starting on a busy machine can take many seconds; the wait ends as soon as it is up. */
  const startDeadlineMs = pollDeadlineMs;
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const code = (answer: Answer): string => answer.json<{ error: { code: string } }>().error.code;

  beforeAll(async () => {
    const configFile = join(folder.path, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        auth: {
          enabled: true,
          tokens: [
            { token: readWrite, role: 'read-write', name: 'app' },
            { token: readOnly, role: 'read-only', name: 'reports' },
          ],
        },
        gossip: { intervalMs: 200 },
      }),
    );
    const env = { RINGKV_CLUSTER_SECRET: 'auth-test-secret-0123456789abcdef' };
    // Debug level: the most a node ever logs, so "never logged" is checked against all of it.
    const [port1, port2] = (await freePorts(2)) as [number, number];
    nodes.push(startNode(port1, join(folder.path, 'node1'), { env, extraArgs: ['--config', configFile, '--log-level', 'debug'] }));
    await waitHealthy(nodes[0]!, startDeadlineMs);
    const envTokens = {
      ...env,
      RINGKV_AUTH_TOKENS: `${readWrite}:read-write,${readOnly}:read-only`,
      RINGKV_AUTH_PROTECT: 'status,metrics',
      RINGKV_GOSSIP_INTERVAL_MS: '200',
    };
    nodes.push(startNode(port2, join(folder.path, 'node2'), { env: envTokens, seeds: [nodes[0]!.address], extraArgs: ['--log-level', 'debug'] }));
    await waitHealthy(nodes[1]!, startDeadlineMs);
    for (const node of nodes) {
      await waitForMembersUp(node, 2, { read: async () => (await call(node, 'GET', '/status', { headers: bearer(readOnly) })).json<MembershipView>() });
    }
  }, processTestTimeoutMs);

  afterAll(async () => {
    for (const node of nodes) await killNode(node, 'SIGTERM');
    folder.remove();
  }, processTestTimeoutMs);

  it('refuses an unauthenticated PUT with 401 KV_UNAUTHORIZED and serves it with the read-write token', async () => {
    for (const node of nodes) {
      const refused = await call(node, 'PUT', '/kv/secure/k', { body: 'v' });
      expect(refused.status).toBe(401);
      expect(code(refused)).toBe('KV_UNAUTHORIZED');
    }
    const written = await call(nodes[0]!, 'PUT', '/kv/secure/k?w=2', { body: 'v', headers: bearer(readWrite) });
    expect(written.status).toBe(204);
  });

  it('refuses a wrong token with 401 and a read-only token writing with 403 KV_FORBIDDEN; the read-only token reads', async () => {
    const wrongToken = await call(nodes[1]!, 'PUT', '/kv/secure/k', { body: 'x', headers: bearer(wrong) });
    expect(wrongToken.status).toBe(401);
    expect(code(wrongToken)).toBe('KV_UNAUTHORIZED');
    const readOnlyWrite = await call(nodes[1]!, 'PUT', '/kv/secure/k', { body: 'x', headers: bearer(readOnly) });
    expect(readOnlyWrite.status).toBe(403);
    expect(code(readOnlyWrite)).toBe('KV_FORBIDDEN');
    const read = await call(nodes[1]!, 'GET', '/kv/secure/k?r=2', { headers: bearer(readOnly) });
    expect(read.status).toBe(200);
    expect(read.body.toString()).toBe('v');
  });

  it('works through the client library with a token', async () => {
    const client = new RingClient({ nodes: nodes.map((node) => node.address), token: readWrite });
    try {
      const written = await client.put('secure', 'from-client', 'hello', { w: 2 });
      const read = await client.get('secure', 'from-client', { r: 2 });
      expect(read.siblings.map((sibling) => sibling.value.toString('utf8'))).toEqual(['hello']);
      // The write's own context supersedes the write it made: the next write replaces it, no sibling.
      await client.put('secure', 'from-client', 'hello again', { w: 2, context: written.context });
      const again = await client.get('secure', 'from-client', { r: 2 });
      expect(again.siblings.map((sibling) => sibling.value.toString('utf8'))).toEqual(['hello again']);
    } finally {
      await client.close();
    }
  });

  it('protects /status and /metrics only on the node configured to', async () => {
    expect((await call(nodes[0]!, 'GET', '/status')).status).toBe(200);
    expect((await call(nodes[0]!, 'GET', '/metrics')).status).toBe(200);
    for (const path of ['/status', '/metrics']) {
      const refused = await call(nodes[1]!, 'GET', path);
      expect(refused.status, path).toBe(401);
      expect(code(refused)).toBe('KV_UNAUTHORIZED');
      expect((await call(nodes[1]!, 'GET', path, { headers: bearer(readOnly) })).status, path).toBe(200);
    }
    expect((await call(nodes[1]!, 'GET', '/health')).status).toBe(200);
  });

  it('never logs a token, and says how access is set up', async () => {
    // Give the nodes a refused request of every kind to log about first.
    await call(nodes[0]!, 'POST', '/admin/compact', { headers: bearer(readOnly) });
    await call(nodes[0]!, 'GET', '/kv/secure/k', { headers: bearer(wrong) });
    for (const node of nodes) {
      expect(node.output).toMatch(/client authentication on/);
      for (const token of [readWrite, readOnly, wrong]) expect(node.output).not.toContain(token);
    }
  });
});
