import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { newClusterSecret } from '../util/ids.js';
import { packageRoot } from '../main.js';

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

async function membersUp(address: string): Promise<number> {
  try {
    const response = await request(`http://${address}/status`, { headersTimeout: 2000, bodyTimeout: 2000 });
    if (response.statusCode !== 200) {
      await response.body.dump();
      return 0;
    }
    const status = (await response.body.json()) as { members: MemberView[]; ring: { members: string[] } | null };
    return Math.min(status.members.filter((member) => member.status === 'up').length, status.ring?.members.length ?? 0);
  } catch {
    return 0;
  }
}

/**
 * `ringkv cluster`: starts N node processes on ports P..P+N-1 with data in DIR/node1..nodeN
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
  while (!ready && Date.now() < deadline && !exiting) {
    const upCounts = await Promise.all(addresses.map((address) => membersUp(address)));
    ready = upCounts.every((up) => up === count);
    if (!ready) await new Promise((done) => setTimeout(done, 250));
  }
  if (exiting) return;
  if (!ready) console.error(`warning: after 60 s not every node sees ${count} members up in its ring; see the logs in ${dataRoot}`);
  console.log(`ringkv cluster of ${count} nodes ${ready ? 'is up' : 'started'} (data in ${dataRoot}, logs in ${dataRoot}/nodeN.log):`);
  for (const address of addresses) console.log(`  http://${address}`);
  console.log(`try: curl -X PUT --data-binary hello http://${addresses[0]}/kv/demo/greeting && curl http://${addresses[count - 1]}/kv/demo/greeting`);
  console.log('press Ctrl-C to stop all nodes');
}
