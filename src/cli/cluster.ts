import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RingClient } from '../client/ring-client.js';
import { newClusterSecret } from '../util/ids.js';
import { loadConfig, packageRoot } from './load-config.js';
import { clientAccessForCluster } from './client-access.js';

/** The flags of `ringkv cluster`. */
export interface ClusterFlags {
  readonly nodes?: string | number;
  readonly basePort?: string | number;
  readonly data?: string;
  readonly config?: string;
  readonly host?: string;
}

interface MemberView {
  readonly status: string;
}

async function membersUp(client: RingClient, address: string): Promise<number> {
  try {
    const status = (await client.status(address)) as { members: MemberView[]; ring: { members: string[] } | null };
    return Math.min(status.members.filter((member) => member.status === 'up').length, status.ring?.members.length ?? 0);
  } catch {
    return 0;
  }
}

/**
 * `ringkv cluster`: starts N node processes on ports P..P+N-1 (peer ports P+offset..P+N-1+offset) with data in DIR/node1..nodeN
 * (node 1 bootstraps the ring, the others seed from it), waits until every node sees all N
 * members up in its ring, prints the addresses, and stops them all on Ctrl-C.
 */
export async function runLocalCluster(flags: ClusterFlags): Promise<void> {
  const count = Number(flags.nodes ?? 3);
  const basePort = Number(flags.basePort ?? 17201);
  const host = flags.host ?? '127.0.0.1';
  const dataRoot = resolve(flags.data ?? './data/local-cluster');
  if (!Number.isInteger(count) || count < 1 || count > 64) throw new Error(`--nodes must be an integer in 1..64, got ${flags.nodes}`);
  if (!Number.isInteger(basePort) || basePort < 1 || basePort + count - 1 > 65_535) throw new Error(`--base-port must leave room for ${count} ports, got ${flags.basePort}`);
  mkdirSync(dataRoot, { recursive: true });
  // The nodes' own config says whether they speak https and want a token; a bad one stops here, before any node starts.
  const config = loadConfig(flags.config === undefined ? {} : { config: flags.config }, process.env);
  // Node i listens on P+i and on its peer port P+i+offset: the two ranges must neither overlap nor pass 65535.
  if (config.peerPortOffset < count) throw new Error(`peerPortOffset ${config.peerPortOffset} is below --nodes ${count}: the peer ports (port + offset) would collide with the nodes' HTTP ports; raise peerPortOffset`);
  if (basePort + count - 1 + config.peerPortOffset > 65_535) throw new Error(`--base-port ${basePort} leaves no room for the peer ports up to ${basePort + count - 1 + config.peerPortOffset} (port + peerPortOffset ${config.peerPortOffset}); use a lower --base-port`);
  const scheme = config.tls.enabled ? 'https' : 'http';
  const secret = process.env.RINGKV_CLUSTER_SECRET ?? newClusterSecret();
  const addresses = Array.from({ length: count }, (_, index) => `${host}:${basePort + index}`);
  const script = join(packageRoot(), 'bin', 'ringkv.js');
  const children: ChildProcess[] = addresses.map((address, index) => {
    const logFile = join(dataRoot, `node${index + 1}.log`);
    const out = openSync(logFile, 'a');
    const args = [script, 'start', '--host', host, '--port', String(basePort + index), '--data', join(dataRoot, `node${index + 1}`)];
    if (index > 0) args.push('--seeds', addresses[0] as string);
    if (flags.config !== undefined) args.push('--config', flags.config);
    return spawn(process.execPath, args, { stdio: ['ignore', out, out], env: { ...process.env, RINGKV_CLUSTER_SECRET: secret } });
  });
  let exiting = false;
  const stopAll = (): void => {
    if (exiting) return;
    exiting = true;
    console.log('\nstopping the cluster...');
    let alive = children.length;
    for (const child of children) {
      child.once('exit', () => {
        alive -= 1;
        if (alive === 0) process.exit(0);
      });
      child.kill('SIGTERM');
    }
  };
  process.on('SIGINT', stopAll);
  process.on('SIGTERM', stopAll);
  children.forEach((child, index) =>
    child.on('exit', (code) => {
      if (!exiting) console.error(`node ${index + 1} (${addresses[index]}) exited with code ${code}; see ${join(dataRoot, `node${index + 1}.log`)}`);
    }),
  );

  const deadline = Date.now() + 60_000;
  let ready = false;
  const client = new RingClient({ nodes: addresses.map((address) => `${scheme}://${address}`), maxAttempts: 1, httpTimeoutMs: 2000, ...clientAccessForCluster(config, process.env) });
  while (!ready && Date.now() < deadline && !exiting) {
    const upCounts = await Promise.all(addresses.map((address) => membersUp(client, `${scheme}://${address}`)));
    ready = upCounts.every((up) => up === count);
    if (!ready) await new Promise((done) => setTimeout(done, 250));
  }
  await client.close();
  if (exiting) return;
  if (!ready) console.error(`warning: after 60 s not every node sees ${count} members up in its ring; see the logs in ${dataRoot}`);
  console.log(`ringkv cluster of ${count} nodes ${ready ? 'is up' : 'started'} (data in ${dataRoot}, logs in ${dataRoot}/nodeN.log):`);
  for (const address of addresses) console.log(`  ${scheme}://${address}   (dashboard: ${scheme}://${address}/ui)`);
  // The hint names the token's place, never a token.
  const curl = ['curl', ...(config.tls.enabled ? [`--cacert ${config.tls.caFile}`] : []), ...(config.auth.enabled ? ['-H "authorization: Bearer $RINGKV_TOKEN"'] : [])].join(' ');
  console.log(`try: ${curl} -X PUT --data-binary hello ${scheme}://${addresses[0]}/kv/demo/greeting && ${curl} ${scheme}://${addresses[count - 1]}/kv/demo/greeting`);
  console.log('press Ctrl-C to stop all nodes');
}
