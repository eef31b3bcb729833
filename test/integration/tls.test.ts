import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingClient, RingClientError, type RingClientTlsOptions } from '../../src/client/index.js';
import { ensureDebianPackage } from '../support/debian-packages.js';
import { makeTestCertificates } from '../support/test-certificates.js';
import {
  type MembershipView,
  type NodeProcess,
  describeExit,
  freePorts,
  killNode,
  pollDeadlineMs,
  processTestTimeoutMs,
  startNode,
  temporaryFolder,
  waitFor,
  waitForMembersUp,
} from './processes.js';

/**
 * Goal: a cluster configured with TLS serves its public API over https only, and its nodes talk
 * to each other over https verified against the cluster's CA: a w=3 write succeeds only if every
 * peer call went through. The CA and certificates are throwaway ones made with openssl here.
 */

const secret = 'tls-test-secret-0123456789abcdef';
/** Generous: a node starting on a busy machine can take many seconds; the wait ends as soon as it is up. */
const startDeadlineMs = pollDeadlineMs;

const skipReason = ensureDebianPackage('/usr/bin/openssl', 'openssl');
if (skipReason !== undefined) console.warn(`skipping the TLS cluster test: ${skipReason}`);

describe.skipIf(skipReason !== undefined)('a 3-node cluster over TLS', () => {
  const folder = temporaryFolder('ringkv-tls-');
  const nodes: NodeProcess[] = [];
  const clients: RingClient[] = [];
  let ca: Buffer;
  /** Three cluster nodes and the misconfigured one, picked together so they are distinct. */
  let ports: number[] = [];

  /** A client of https nodes; without a CA it trusts only the system's certificate store. */
  const client = (addresses: string[], tls: RingClientTlsOptions): RingClient => {
    const created = new RingClient({ nodes: addresses, tls, maxAttempts: 1, httpTimeoutMs: 60_000 });
    clients.push(created);
    return created;
  };

  beforeAll(async () => {
    ports = await freePorts(4);
    const files = makeTestCertificates(folder.path);
    ca = readFileSync(files.caFile);
    const configFile = join(folder.path, 'config.json');
    writeFileSync(configFile, JSON.stringify({ tls: { enabled: true, ...files }, gossip: { intervalMs: 200 } }));
    const env = { RINGKV_CLUSTER_SECRET: secret };
    const extraArgs = ['--config', configFile];
    nodes.push(startNode(ports[0]!, join(folder.path, 'node1'), { env, extraArgs }));
    const seeds = [nodes[0]!.address];
    nodes.push(startNode(ports[1]!, join(folder.path, 'node2'), { env, extraArgs, seeds }));
    nodes.push(startNode(ports[2]!, join(folder.path, 'node3'), { env, extraArgs, seeds }));
    for (const node of nodes) {
      const probe = client([node.address], { ca });
      await waitFor(
        () => `${node.address} to answer /health over https (${describeExit(node)}output: ${node.output.slice(-500)})`,
        startDeadlineMs,
        async () => (await probe.json('GET', '/health')) !== null,
      );
    }
  }, processTestTimeoutMs);

  afterAll(async () => {
    await Promise.all(clients.map((each) => each.close()));
    for (const node of nodes) await killNode(node, 'SIGTERM');
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'forms the ring over https: every node sees 3 members up',
    async () => {
      for (const node of nodes) {
        const viewer = client([node.address], { ca });
        await waitForMembersUp(node, 3, { read: async () => (await viewer.status()) as MembershipView });
      }
    },
    processTestTimeoutMs,
  );

  it('writes with w=3 over https (so every peer call went over TLS) and reads it from another node', async () => {
    const writer = client([nodes[0]!.address], { ca });
    await writer.put('secure', 'k', 'over tls', { w: 3, contentType: 'text/plain' });
    const reader = client([`https://${nodes[2]!.address}`], { ca });
    const read = await reader.get('secure', 'k', { r: 3 });
    expect(read.siblings.map((sibling) => sibling.value.toString())).toEqual(['over tls']);
  });

  it('refuses plain http on the same port', async () => {
    const outcome = await request(`http://${nodes[0]!.address}/health`, { headersTimeout: 5_000, bodyTimeout: 5_000 }).then(
      async (response) => {
        await response.body.dump();
        return response.statusCode;
      },
      (error: unknown) => (error as Error).message,
    );
    expect(outcome).not.toBe(200);
  });

  it('refuses to talk to the nodes without the CA: their certificate is not trusted by default', async () => {
    const untrusting = client([nodes[1]!.address], {});
    const error = await untrusting.get('secure', 'k').catch((failure: unknown) => failure);
    expect(error).toBeInstanceOf(RingClientError);
    expect((error as RingClientError).code).toBe('KV_CONNECTION');
    expect((error as RingClientError).outcome).toBe('failed');
  });

  it('stops a node whose TLS files cannot be read, naming the config field', async () => {
    const brokenConfig = join(folder.path, 'broken.json');
    writeFileSync(
      brokenConfig,
      JSON.stringify({
        tls: { enabled: true, certFile: join(folder.path, 'missing.pem'), keyFile: join(folder.path, 'node.key'), caFile: join(folder.path, 'ca.pem') },
      }),
    );
    const broken = startNode(ports[3]!, join(folder.path, 'broken'), { env: { RINGKV_CLUSTER_SECRET: secret }, extraArgs: ['--config', brokenConfig] });
    nodes.push(broken);
    await waitFor(
      () => `the misconfigured node to exit (${describeExit(broken)}output: ${broken.output.slice(-500)})`,
      startDeadlineMs,
      async () => broken.child?.exitCode !== null && broken.child?.exitCode !== undefined,
    );
    expect(broken.child?.exitCode).not.toBe(0);
    expect(broken.output).toMatch(/tls\.certFile/);
  });
});
