import { Command, InvalidArgumentError, Option } from 'commander';
import { packageVersion } from '../util/package-version.js';
import { incrementFlag, limitFlag, partitionFlag, quorumFlag, rateFlag, timeoutFlag, ttlFlag } from './flags.js';
import type { RingClient } from '../client/ring-client.js';
import type { ConfigFlags } from './load-config.js';

/**
 * The `ringkv` command. `start` and `cluster` run nodes; the others are clients of a running
 * node (`--node H:P`, default 127.0.0.1:17201, the first node of `npm start`).
 *
 * Only commander is imported up front: every subcommand imports what it needs (the client and
 * undici, fastify, LevelDB, the config schema) when it runs, so `ringkv --help` and a mistyped
 * command answer at once instead of after loading the whole node.
 */

const defaultNode = process.env.RINGKV_NODE ?? '127.0.0.1:17201';

async function withClient<T>(node: string, work: (client: RingClient) => Promise<T>): Promise<T> {
  const [{ RingClient: Client }, { clientAccessFromEnvironment }] = await Promise.all([import('../client/ring-client.js'), import('./client-access.js')]);
  const client = new Client({ nodes: [node], maxAttempts: 1, ...clientAccessFromEnvironment(process.env) });
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

const program = new Command();
program
  .name('ringkv')
  .description('A leaderless, Dynamo/Cassandra-style key-value database')
  .version(packageVersion(), '-V, --version', "print ringkv's version")
  .showHelpAfterError();

program
  .command('start')
  .description('run one node in the foreground')
  .option('--port <port>', 'HTTP port')
  .option('--host <host>', 'address to listen on and be known by (both, unless --listen / --advertise say otherwise)')
  .option('--listen <address>', 'address to bind, for example 0.0.0.0 (default: --host)')
  .option('--advertise <host:port>', 'address peers and clients reach this node at, an IP or a DNS name (default: host:port)')
  .option('--data <dir>', 'data directory')
  .option('--seeds <list>', 'host:port of running nodes, comma-separated')
  .option('--config <file>', 'JSON config file')
  .option('--log-level <level>', 'trace|debug|info|warn|error|silent')
  .option('--peer-map <list>', 'ADDRESS=DIAL_ADDRESS pairs: dial a peer through another address (chaos harness)')
  .option('--placement-host <label>', "the machine this node runs on: a key's replicas go to different hosts (default: the node's own id)")
  .option('--zone <label>', "the zone (rack, availability zone) of this node: a key's replicas go to different zones when zones are labelled")
  .option(
    '--shards <n>',
    'processes (ring members) this node runs, sharing its HTTP port; shard i keeps its data in DATA/shard-i and listens for peers on the peer port + i (default: one per core; 1: one shard, no shard folders)',
  )
  .addOption(new Option('--shard-index <i>', 'set by the shard supervisor: run shard i of --shards').hideHelp())
  .action(async (flags: ConfigFlags & { shards?: string; shardIndex?: string }) => {
    const [{ shardCount, superviseShards }, { loadConfig }] = await Promise.all([import('./shards.js'), import('./load-config.js')]);
    const count = shardCount(flags.shards);
    // Every node runs its shards under the supervisor, a node of one shard too: it forks each
    // shard with the V8 heap bounds a shard needs (`shardExecArgv`), restarts one that dies and
    // makes a leave the whole node's. It checks the config once, so a bad value is one line.
    if (flags.shardIndex === undefined) return superviseShards(process.argv.slice(2), count, loadConfig(flags, process.env));
    const { runNode } = await import('../main.js');
    await runNode({ ...flags, shards: count });
  });

program
  .command('cluster')
  .description('run a local cluster of N node processes in the foreground')
  .option('--nodes <n>', 'number of nodes', '3')
  .option('--base-port <port>', 'port of node 1; node i gets base+i-1', '17201')
  .option('--data <dir>', 'data folder; node i keeps its data in DIR/node<i>', './data/local-cluster')
  .option('--host <host>', 'address to listen on', '127.0.0.1')
  .option('--config <file>', 'JSON config file for every node')
  .action(async (flags) => {
    const { runLocalCluster } = await import('./cluster.js');
    await runLocalCluster(flags);
  });

const configCommand = program.command('config').description('check a config file, or list every setting');

configCommand
  .command('check <file>')
  .description('validate FILE (over the defaults and the RINGKV_* environment) and print the effective config, secrets masked')
  .action(async (file: string) => {
    const [{ loadConfig }, { maskSecrets }] = await Promise.all([import('./load-config.js'), import('../config/docs.js')]);
    const config = loadConfig({ config: file }, process.env);
    console.log(JSON.stringify(maskSecrets(config), null, 2));
    console.error(`${file}: ok`);
  });

configCommand
  .command('table')
  .description("print every setting with its default and RINGKV_* variable (the README's table)")
  .action(async () => {
    const { configTableMarkdown } = await import('../config/docs.js');
    console.log(configTableMarkdown());
  });

program
  .command('get <bucket> <key>')
  .description('read a key (siblings are printed one per line, base64)')
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--r <n>', 'replicas that must answer', quorumFlag('--r'))
  .option('--pr <n>', 'primaries that must answer', quorumFlag('--pr'))
  .option('--consistency <level>', 'one|quorum|all')
  .option('--timeout-ms <ms>', 'coordinator timeout', timeoutFlag)
  .option('--local', "this node's own copy only")
  .action(async (bucket: string, key: string, flags) => {
    await withClient(flags.node, async (client) => {
      const result = await client.get(bucket, key, {
        r: flags.r,
        pr: flags.pr,
        consistency: flags.consistency,
        timeoutMs: flags.timeoutMs,
        local: flags.local,
      });
      if (!result.found) {
        console.error(`not found${result.context === undefined ? '' : ` (context ${result.context})`}`);
        process.exitCode = 1;
        return;
      }
      if (result.siblings.length === 1) process.stdout.write(result.siblings[0]!.value);
      else for (const sibling of result.siblings) console.log(`${sibling.contentType}\t${sibling.value.toString('base64')}`);
      console.error(`\ncontext: ${result.context}`);
    });
  });

program
  .command('put <bucket> <key> <value>')
  .description('write a value')
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--w <n>', 'replicas that must acknowledge', quorumFlag('--w'))
  .option('--pw <n>', 'primaries that must acknowledge', quorumFlag('--pw'))
  .option('--dw <n>', 'replicas that must fsync', quorumFlag('--dw'))
  .option('--consistency <level>', 'one|quorum|all')
  .option('--context <context>', 'the context of the read this write follows')
  .option('--content-type <type>', 'content type', 'text/plain')
  .option('--timeout-ms <ms>', 'coordinator timeout', timeoutFlag)
  .option('--if-none-match', 'write only where no live value exists')
  .option('--if-match <context>', 'write only where the current version is the one this read context names')
  .option('--ttl <seconds>', "seconds until the value expires (default: the bucket's ttlSeconds)", ttlFlag)
  .action(async (bucket: string, key: string, value: string, flags) => {
    await withClient(flags.node, async (client) => {
      const result = await client.put(bucket, key, value, {
        ...(flags.ifNoneMatch === true ? { ifNoneMatch: true } : {}),
        ...(flags.ifMatch === undefined ? {} : { ifMatch: flags.ifMatch as string }),
        ttlSeconds: flags.ttl,
        w: flags.w,
        pw: flags.pw,
        dw: flags.dw,
        consistency: flags.consistency,
        context: flags.context,
        contentType: flags.contentType,
        timeoutMs: flags.timeoutMs,
      });
      console.log(`ok, context: ${result.context}`);
    });
  });

program
  .command('delete <bucket> <key>')
  .description('delete a key (reads it first for the context unless --context is given)')
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--w <n>', 'replicas that must acknowledge', quorumFlag('--w'))
  .option('--pw <n>', 'primaries that must acknowledge', quorumFlag('--pw'))
  .option('--dw <n>', 'replicas that must fsync', quorumFlag('--dw'))
  .option('--consistency <level>', 'one|quorum|all')
  .option('--context <context>', 'the context of the read this delete follows')
  .option('--timeout-ms <ms>', 'coordinator timeout (of the read for the context and of the delete, each)', timeoutFlag)
  .action(async (bucket: string, key: string, flags) => {
    await withClient(flags.node, async (client) => {
      const context = flags.context ?? (await client.get(bucket, key, { timeoutMs: flags.timeoutMs })).context;
      await client.delete(bucket, key, { w: flags.w, pw: flags.pw, dw: flags.dw, consistency: flags.consistency, context, timeoutMs: flags.timeoutMs });
      console.log('deleted');
    });
  });

program
  .command('list <bucket>')
  .description("print a bucket's live keys, one per line, in byte order (fetched a page at a time)")
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--prefix <prefix>', 'only keys that start with this')
  .option('--after <key>', 'start after this key (a cursor)')
  .option('--limit <n>', 'keys per page, 1..10000', limitFlag, 1000)
  .option('--timeout-ms <ms>', 'coordinator timeout', timeoutFlag)
  .action(async (bucket: string, flags) => {
    await withClient(flags.node, async (client) => {
      for await (const key of client.list(bucket, { limit: flags.limit, prefix: flags.prefix, after: flags.after, timeoutMs: flags.timeoutMs }))
        console.log(key);
    });
  });

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

program
  .command('counter <bucket> <key>')
  .description('print a counter (/dt); with --incr, add to it first (negative to decrement)')
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--incr <n>', 'add this integer to the counter', incrementFlag)
  .option('--w <n>', 'replicas that must acknowledge the increment', quorumFlag('--w'))
  .option('--r <n>', 'replicas that must answer the read', quorumFlag('--r'))
  .option('--timeout-ms <ms>', 'coordinator timeout', timeoutFlag)
  .action(async (bucket: string, key: string, flags) => {
    await withClient(flags.node, async (client) => {
      if (flags.incr !== undefined) await client.dt.increment(bucket, key, flags.incr as number, { w: flags.w, timeoutMs: flags.timeoutMs });
      const value = await client.dt.counter(bucket, key, { r: flags.r, timeoutMs: flags.timeoutMs });
      if (value === undefined) {
        console.error('not found');
        process.exitCode = 1;
        return;
      }
      console.log(String(value));
    });
  });

program
  .command('set <bucket> <key>')
  .description('print a set (/dt), one element per line; with --add / --remove, update it first (a remove reads the set for its context)')
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--add <element>', 'add this element (repeatable)', collect, [])
  .option('--remove <element>', 'remove this element as a read now sees it (repeatable)', collect, [])
  .option('--w <n>', 'replicas that must acknowledge the update', quorumFlag('--w'))
  .option('--r <n>', 'replicas that must answer the read', quorumFlag('--r'))
  .option('--timeout-ms <ms>', 'coordinator timeout', timeoutFlag)
  .action(async (bucket: string, key: string, flags) => {
    await withClient(flags.node, async (client) => {
      const add = flags.add as string[];
      const remove = flags.remove as string[];
      if (add.length > 0 || remove.length > 0) {
        const context = remove.length === 0 ? undefined : (await client.dt.set(bucket, key, { r: flags.r, timeoutMs: flags.timeoutMs }))?.context;
        await client.dt.updateSet(
          bucket,
          key,
          { add, remove, ...(context === undefined ? {} : { context }) },
          { w: flags.w, r: flags.r, timeoutMs: flags.timeoutMs },
        );
      }
      const read = await client.dt.set(bucket, key, { r: flags.r, timeoutMs: flags.timeoutMs });
      if (read === undefined) {
        console.error('not found');
        process.exitCode = 1;
        return;
      }
      for (const element of read.value) console.log(element);
    });
  });

program
  .command('status')
  .description("a node's view of the cluster: members, partitions, keys, hints")
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--json', 'print the raw JSON')
  .action(async (flags) => {
    await withClient(flags.node, async (client) => {
      const status = await client.status();
      if (flags.json) console.log(JSON.stringify(status, null, 2));
      else (await import('./tables.js')).printStatus(status);
    });
  });

program
  .command('ring')
  .description('the partition map: which node owns each partition')
  .option('--node <address>', 'node to ask', defaultNode)
  .action(async (flags) => {
    await withClient(flags.node, async (client) => (await import('./tables.js')).printRing(await client.status()));
  });

program
  .command('compact')
  .description("compact a node's LevelDB now")
  .option('--node <address>', 'node to ask', defaultNode)
  .option('--partition <n>', "compact only this partition's key range", partitionFlag)
  .action(async (flags) => {
    await withClient(flags.node, async (client) => {
      const started = Date.now();
      await client.json('POST', flags.partition === undefined ? '/admin/compact' : `/admin/compact?partition=${encodeURIComponent(flags.partition)}`);
      console.log(`compacted in ${Date.now() - started} ms`);
    });
  });

program
  .command('repair')
  .description('run an anti-entropy exchange of every partition on a node now, showing progress')
  .option('--node <address>', 'node to run it on', defaultNode)
  .action(async (flags) => {
    await withClient(flags.node, async (client) => {
      await client.json('POST', '/admin/repair');
      await followRepair(client);
    });
  });

program
  .command('leave')
  .description(
    'decommission a node (every shard of a sharded node, or none: refused with KV_CONFLICT when no live member runs on another host, or no shard owns a partition): its partitions stream to their new owners, then it leaves the ring and exits',
  )
  .option('--node <address>', 'node that leaves', defaultNode)
  .action(async (flags) => {
    await withClient(flags.node, async (client) => {
      await client.json('POST', '/admin/leave');
      console.log(`${flags.node} is leaving: it hands off its partitions, then exits; follow with \`ringkv status\` on another node`);
    });
  });

program
  .command('remove <nodeId...>')
  .description(
    'remove ring members that are gone for good (a sharded node: the ids of all its shards, which `ringkv status` lists under its host); their partitions are rebuilt from the remaining replicas',
  )
  .option('--node <address>', 'any live node of the cluster', defaultNode)
  .option('--force', 'remove the named members even while other shards of their host are still in the ring')
  .action(async (nodeIds: string[], flags) => {
    await withClient(flags.node, async (client) => {
      if (flags.force !== true) {
        const [{ partialHostRemoval }, { KvError }] = await Promise.all([import('./shards.js'), import('../util/errors.js')]);
        const problem = partialHostRemoval((await client.json('GET', '/status')) as import('./shards.js').RemovalView, nodeIds);
        if (problem !== undefined) throw new KvError('KV_CONFLICT', problem);
      }
      // One at a time, each said as it is done: a refusal (a member still up) stops the command and names what was removed before it.
      for (const nodeId of nodeIds) {
        await client.json('POST', `/admin/remove/${encodeURIComponent(nodeId)}`);
        console.log(`${nodeId} is removed; the ring is being re-planned without it (see \`ringkv status\`)`);
      }
    });
  });

async function clientAccess(): Promise<import('./client-access.js').ClientAccess> {
  return (await import('./client-access.js')).clientAccessFromEnvironment(process.env);
}

const backupCommand = program
  .command('backup')
  .description('copy every partition of a live cluster into DIR (one replica each, siblings and tombstones as stored); re-run to resume')
  .option('--to <dir>', 'the backup directory (created; an unfinished backup in it is resumed)')
  .option('--node <address>', 'any node of the cluster', defaultNode)
  .option('--rate <megabytes>', 'at most this many MB per second, so the cluster keeps serving (0: unthrottled)', rateFlag, 2)
  .action(async (flags) => {
    if (flags.to === undefined) throw new InvalidArgumentError('ringkv backup needs --to DIR (or `ringkv backup verify DIR`)');
    const { runBackup } = await import('./backup.js');
    await runBackup({ node: flags.node, to: flags.to, rateMegabytesPerSecond: flags.rate, access: await clientAccess() });
  });

backupCommand
  .command('verify <dir>')
  .description('check a backup: manifest, every file against its checksum, every record decodes; a bad file is named')
  .action(async (directory: string) => {
    const { runVerify } = await import('./backup.js');
    await runVerify(directory);
  });

program
  .command('restore')
  .description('verify a backup, then merge every version in it into a cluster by the clocks (never over a newer write); re-run to resume')
  .requiredOption('--from <dir>', 'the backup directory')
  .option('--node <address>', 'any node of the target cluster', defaultNode)
  .option('--w <level>', 'replicas that must acknowledge each version: one|quorum|all', 'quorum')
  .option('--rate <megabytes>', 'at most this many MB of backup per second (0: unthrottled)', rateFlag, 2)
  .action(async (flags) => {
    if (!['one', 'quorum', 'all'].includes(flags.w as string)) throw new InvalidArgumentError('--w must be one, quorum or all');
    const { runRestore } = await import('./backup.js');
    await runRestore({ node: flags.node, from: flags.from, w: flags.w, rateMegabytesPerSecond: flags.rate, access: await clientAccess() });
  });

interface RepairProgressShape {
  running: boolean;
  partitionsDone: number;
  partitionsTotal: number;
  keysRepaired: number;
}

/** Polls the repair progress until it ends, drawing a bar on a terminal and plain lines elsewhere. */
async function followRepair(client: RingClient): Promise<void> {
  const started = Date.now();
  let lastLine = '';
  for (;;) {
    const progress = (await client.json('GET', '/admin/repair')) as RepairProgressShape;
    const total = Math.max(progress.partitionsTotal, 1);
    const fraction = Math.min(1, progress.partitionsDone / total);
    const line = `${progress.partitionsDone}/${progress.partitionsTotal} partitions, ${progress.keysRepaired} keys repaired`;
    if (process.stdout.isTTY) {
      const width = 30;
      const filled = Math.round(fraction * width);
      process.stdout.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${line}   `);
    } else if (line !== lastLine) {
      console.log(line);
    }
    lastLine = line;
    if (!progress.running) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  if (process.stdout.isTTY) process.stdout.write('\n');
  console.log(`repair finished in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  // KvError and RingClientError carry a KV_* code and a message that says what to do: show just that.
  const code: unknown = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  if (error instanceof Error && typeof code === 'string' && code.startsWith('KV_')) {
    console.error(`ringkv: ${error.message}`);
  } else {
    console.error(`ringkv: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  }
  process.exit(1);
}
