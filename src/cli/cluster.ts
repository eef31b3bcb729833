import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RingClient } from '../client/ring-client.js';
import { KvError } from '../util/errors.js';
import { newClusterSecret } from '../util/ids.js';
import { loadConfig, packageRoot, portNumber } from './load-config.js';
import { clientAccessForCluster } from './client-access.js';

/** The flags of `ringkv cluster`. */
export interface ClusterFlags {
  readonly nodes?: string | number;
  readonly basePort?: string | number;
  readonly data?: string;
  readonly config?: string;
  readonly host?: string;
}

interface StatusView {
  readonly members: readonly { readonly status: string }[];
  readonly ring: { readonly members: readonly string[] } | null;
  readonly process?: { readonly supervisorPid?: number };
}

/** How long the nodes have to come up before the command gives up on them. */
const readyDeadlineMs = 60_000;

/**
 * How many members the node at `address` sees up in its ring, or 0 when it cannot say. An
 * answer from a shard whose supervisor is not `child` counts as 0: ports another cluster holds
 * answer with that cluster's nodes, and those must never pass for ours.
 */
async function membersUp(client: RingClient, address: string, child: ChildProcess): Promise<number> {
  try {
    const status = (await client.status(address)) as StatusView;
    if (status.process?.supervisorPid !== child.pid) return 0;
    return Math.min(status.members.filter((member) => member.status === 'up').length, status.ring?.members.length ?? 0);
  } catch {
    return 0;
  }
}

/** How a child process ended, in words: its exit code, or the signal that killed it. */
export function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal === null ? `exited with code ${code ?? '(none)'}` : `was killed by ${signal}`;
}

/** The last line a node wrote to its log since `fromByte` (its own run's part of the file), or '' if none. */
function lastLogLine(logFile: string, fromByte: number): string {
  try {
    const lines = readFileSync(logFile)
      .subarray(fromByte)
      .toString('utf8')
      .split('\n')
      .filter((line) => line.trim() !== '');
    const last = lines.at(-1) ?? '';
    // The CLI's own one-line error, or a pino record's message.
    if (last.startsWith('{')) {
      const record = JSON.parse(last) as { msg?: unknown };
      return typeof record.msg === 'string' ? record.msg : last;
    }
    return last.replace(/^ringkv: /, '');
  } catch {
    return '';
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function checkedFlags(flags: ClusterFlags): { count: number; basePort: number } {
  const nodesText = String(flags.nodes ?? 3);
  const count = /^[0-9]{1,2}$/.test(nodesText) ? Number(nodesText) : Number.NaN;
  if (!(count >= 1 && count <= 64)) throw new KvError('KV_BAD_CONFIG', `--nodes must be an integer from 1 to 64, got '${nodesText.slice(0, 40)}'`);
  const basePort = portNumber('--base-port', String(flags.basePort ?? 17201));
  if (basePort + count - 1 > 65_535)
    throw new KvError(
      'KV_BAD_CONFIG',
      `--base-port ${basePort} leaves no room for ${count} ports (the last would be ${basePort + count - 1}); use a lower --base-port`,
    );
  return { count, basePort };
}

/**
 * `ringkv cluster`: starts N node processes on ports P..P+N-1 (peer ports P+offset..P+N-1+offset) with data in DIR/node1..nodeN
 * (node 1 bootstraps the ring, the others seed from it), waits until every node, answering as
 * the process this command started, sees all N members up in its ring, prints the addresses,
 * and stops them all on Ctrl-C. A node that exits before that stops the others, and the command
 * exits 1 with the node's own last words (a taken port, a bad config).
 */
export async function runLocalCluster(flags: ClusterFlags): Promise<void> {
  const { count, basePort } = checkedFlags(flags);
  const host = flags.host ?? '127.0.0.1';
  const dataRoot = resolve(flags.data ?? './data/local-cluster');
  mkdirSync(dataRoot, { recursive: true });
  // The nodes' own config says whether they speak https and want a token; a bad one stops here, before any node starts.
  const config = loadConfig(flags.config === undefined ? {} : { config: flags.config }, process.env);
  // Node i listens on P+i and on its peer port P+i+offset: the two ranges must neither overlap nor pass 65535.
  if (config.peerPortOffset < count)
    throw new KvError(
      'KV_BAD_CONFIG',
      `peerPortOffset ${config.peerPortOffset} is below --nodes ${count}: the peer ports (port + offset) would collide with the nodes' HTTP ports; raise peerPortOffset`,
    );
  if (basePort + count - 1 + config.peerPortOffset > 65_535)
    throw new KvError(
      'KV_BAD_CONFIG',
      `--base-port ${basePort} leaves no room for the peer ports up to ${basePort + count - 1 + config.peerPortOffset} (port + peerPortOffset ${config.peerPortOffset}); use a lower --base-port`,
    );
  const scheme = config.tls.enabled ? 'https' : 'http';
  const secret = process.env.RINGKV_CLUSTER_SECRET ?? newClusterSecret();
  const addresses = Array.from({ length: count }, (_, index) => `${host}:${basePort + index}`);
  const logFiles = addresses.map((_, index) => join(dataRoot, `node${index + 1}.log`));
  // Each node appends to its log: what it writes in this run starts here.
  const logStarts = logFiles.map(sizeOf);
  const script = join(packageRoot(), 'bin', 'ringkv.js');
  const children: ChildProcess[] = addresses.map((address, index) => {
    const out = openSync(logFiles[index] as string, 'a');
    // One shard per node: the nodes of a local cluster sit on adjacent ports (a second shard would take port + 1).
    const args = [script, 'start', '--shards', '1', '--host', host, '--port', String(basePort + index), '--data', join(dataRoot, `node${index + 1}`)];
    if (index > 0) args.push('--seeds', addresses[0] as string);
    if (flags.config !== undefined) args.push('--config', flags.config);
    return spawn(process.execPath, args, { stdio: ['ignore', out, out], env: { ...process.env, RINGKV_CLUSTER_SECRET: secret } });
  });
  const exits: (string | undefined)[] = children.map(() => undefined);
  const exited = children.map(
    (child, index) =>
      new Promise<void>((done) =>
        child.once('exit', (code, signal) => {
          exits[index] = exitText(code, signal);
          done();
        }),
      ),
  );
  let exiting = false;
  const stopAll = async (): Promise<void> => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.all(exited);
  };
  const onSignal = (): void => {
    if (exiting) return;
    exiting = true;
    console.log('\nstopping the cluster...');
    stopAll().then(
      () => process.exit(0),
      (error: unknown) => {
        console.error(`ringkv: stopping the nodes failed: ${String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const deadline = Date.now() + readyDeadlineMs;
  let ready = false;
  const client = new RingClient({
    nodes: addresses.map((address) => `${scheme}://${address}`),
    maxAttempts: 1,
    httpTimeoutMs: 2000,
    ...clientAccessForCluster(config, process.env),
  });
  while (!ready && Date.now() < deadline && !exiting && exits.every((exit) => exit === undefined)) {
    const upCounts = await Promise.all(addresses.map((address, index) => membersUp(client, `${scheme}://${address}`, children[index] as ChildProcess)));
    ready = upCounts.every((up) => up === count);
    if (!ready) await new Promise((done) => setTimeout(done, 250));
  }
  await client.close();
  if (exiting) return;
  const failed = exits.flatMap((exit, index) => (exit === undefined ? [] : [index]));
  if (failed.length > 0) {
    // A cluster with a node missing is not the cluster that was asked for: stop the rest and say why.
    await stopAll();
    for (const index of failed) {
      const said = lastLogLine(logFiles[index] as string, logStarts[index] as number);
      console.error(`ringkv: node ${index + 1} (${addresses[index]}) ${exits[index]}${said === '' ? '' : `: ${said}`} (log: ${logFiles[index]})`);
    }
    console.error(`ringkv: the cluster did not start; the nodes it started are stopped`);
    process.exit(1);
  }
  // Slow is not failed: on a loaded machine the nodes may still converge, so they keep running.
  if (!ready) console.error(`warning: after ${readyDeadlineMs / 1000} s not every node sees ${count} members up in its ring; see the logs in ${dataRoot}`);
  children.forEach((child, index) =>
    child.once('exit', (code, signal) => {
      if (!exiting) console.error(`node ${index + 1} (${addresses[index]}) ${exitText(code, signal)}; see ${logFiles[index]}`);
    }),
  );
  console.log(`ringkv cluster of ${count} nodes ${ready ? 'is up' : 'started'} (data in ${dataRoot}, logs in ${dataRoot}/nodeN.log):`);
  for (const address of addresses) console.log(`  ${scheme}://${address}   (dashboard: ${scheme}://${address}/ui)`);
  // The hint names the token's place, never a token.
  const curl = [
    'curl',
    ...(config.tls.enabled ? [`--cacert ${config.tls.caFile}`] : []),
    ...(config.auth.enabled ? ['-H "authorization: Bearer $RINGKV_TOKEN"'] : []),
  ].join(' ');
  console.log(
    `try: ${curl} -X PUT --data-binary hello ${scheme}://${addresses[0]}/kv/demo/greeting && ${curl} ${scheme}://${addresses[count - 1]}/kv/demo/greeting`,
  );
  console.log('press Ctrl-C to stop all nodes');
}
