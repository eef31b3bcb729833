import { type ChildProcess, fork } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import type { NodeConfig } from '../config/schema.js';
import { KvError } from '../util/errors.js';
import { newClusterSecret } from '../util/ids.js';
import { packageRoot } from './load-config.js';

/**
 * `ringkv start --shards N`: the supervisor of a node's shards (docs/ARCHITECTURE.md#shards), for
 * every N, 1 too: it is the one way a node runs, so every shard gets the V8 heap bounds of
 * `shardExecArgv` (a Node process cannot change its own heap limits once started, and a
 * process that re-ran itself with them would be a second supervisor with fewer duties).
 * It forks one `ringkv start --shard-index i` process per shard, restarts a shard that dies
 * (with backoff, a bounded number of times), forwards SIGTERM/SIGINT to every shard and exits
 * when they have drained. It holds no data and serves nothing: the shards share the HTTP port
 * through `reusePort` and each listens on its own peer port. A node leaves as a whole: the
 * shard that `ringkv leave` reached asks the supervisor, which has every shard leave; a shard
 * that has left exits and is not restarted, and the supervisor exits once all have.
 */

/** The most shards a node runs; more processes than this on one host is a configuration mistake. */
export const maxShards = 64;

/** Restarts of one shard allowed within `restartWindowMs`; one more stops the node (a crash loop needs a person). */
export const maxRestartsPerWindow = 5;
const restartWindowMs = 5 * 60_000;
/** The first restart waits this long, each further one in the window twice as long, up to maxRestartDelayMs. */
const firstRestartDelayMs = 200;
const maxRestartDelayMs = 10_000;

/**
 * The young generation's semi-space of a shard, in MiB (V8's `--max-semi-space-size`). Node 24
 * sizes it by the host's memory (64 MiB on this 24 GiB machine), and a shard's RSS then peaked at
 * 350-369 MiB at 10,000 keys under 64 clients. 4 MiB kept it at 180-190 MiB but cost a third of
 * the PUTs at full speed: objects that outlive two scavenges of so small a space are promoted, and
 * the old generation fills with garbage that only a major GC takes back. 16 MiB measured within
 * 3% of V8's own sizing for PUT and 10% for GET at 186-204 MiB (bench/RESULTS.md, "The heap
 * bounds' price at full speed"). Each of a node's shards takes this room again.
 */
export const shardSemiSpaceMiB = 16;

/**
 * The old generation's bound of a shard, in MiB (V8's `--max-old-space-size`): 192 plus twice the
 * shard's bounded in-heap caches (the object cache and the watch log), 256 with the defaults,
 * four to five times the 50-60 MiB a shard's heap holds after a major GC at 150,000 keys. V8
 * sizes the bound by the host's memory otherwise (about 4 GiB here) and then lets the old
 * generation grow to about twice what it holds before a major GC, so garbage promoted under load
 * (and the Buffers it keeps) piled up to 130 MiB of heap between GCs; and V8 on Node 22 and 24
 * keeps the pages it freed resident until a memory-reducing GC, which a loaded shard never gets,
 * so a shard's RSS stays at its heap's peak. A tighter bound (192) made the shard spend its time
 * in major GCs at full speed (bench/RESULTS.md, "The heap bounds' price at full speed"). A shard
 * whose live heap truly outgrows it dies with V8's out-of-memory error and the supervisor
 * restarts it.
 */
export function shardOldSpaceMiB(config: NodeConfig): number {
  const cachedMiB = Math.ceil((config.storage.objectCacheBytes + config.watch.logBytes) / 2 ** 20);
  return 192 + 2 * cachedMiB;
}

/**
 * The Node flags a shard runs with: the supervisor's own, `--max-semi-space-size` and
 * `--max-old-space-size`, each unless the operator set it (on the command line or in
 * NODE_OPTIONS), whose choice wins.
 */
export function shardExecArgv(execArgv: readonly string[], nodeOptions: string | undefined, oldSpaceMiB: number): string[] {
  const given = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)];
  const named = (flag: string): boolean => given.some((each) => new RegExp(`^--${flag.replace(/-/g, '[-_]')}(=|$)`).test(each));
  return [
    ...execArgv,
    ...(named('max-semi-space-size') ? [] : [`--max-semi-space-size=${shardSemiSpaceMiB}`]),
    ...(named('max-old-space-size') ? [] : [`--max-old-space-size=${oldSpaceMiB}`]),
  ];
}

/** True when this Node's `server.listen` takes `reusePort` (Node ≥ 22.12 and ≥ 23.1). */
export function nodeHasReusePort(versions: { readonly node: string } = process.versions): boolean {
  const [major = 0, minor = 0] = versions.node.split('.').map(Number);
  return major >= 24 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

/**
 * The shard count of `ringkv start`: `--shards N` (1..64), else one per core. Several shards
 * share one HTTP port through `reusePort`, which this Node may lack: an explicit N > 1 is then
 * refused, and the default falls back to 1 shard (today's layout), as the README says.
 */
export function shardCount(flag: string | number | undefined, versions: { readonly node: string } = process.versions, cores = availableParallelism()): number {
  if (flag === undefined) return nodeHasReusePort(versions) ? Math.min(cores, maxShards) : 1;
  const text = String(flag).trim();
  const count = /^[0-9]{1,2}$/.test(text) ? Number(text) : Number.NaN;
  if (!(count >= 1 && count <= maxShards)) throw new KvError('KV_BAD_CONFIG', `--shards must be an integer from 1 to ${maxShards}, got '${text.slice(0, 40)}'`);
  if (count > 1 && !nodeHasReusePort(versions)) {
    throw new KvError(
      'KV_BAD_CONFIG',
      `--shards ${count} needs Node.js 22.12 or later (its shards share the HTTP port through reusePort); this is Node.js ${versions.node}: upgrade Node.js or start with --shards 1`,
    );
  }
  return count;
}

/**
 * The cluster secret every shard of the node uses: the configured one, else the one the node used
 * last, else a new one. The one in use is kept in `<dataDir>/cluster-secret` (mode 0600; each
 * shard keeps it in its own data as well), a configured one too: a node started with
 * RINGKV_CLUSTER_SECRET and restarted without it goes on with that secret, where it made a new
 * one before, which its peers did not share. Shards are peers of each other, so they must share
 * it; one process choosing it keeps them from each making their own.
 */
export function shardsClusterSecret(config: NodeConfig): string {
  const folder = resolve(config.dataDir);
  const file = join(folder, 'cluster-secret');
  const kept = existsSync(file) ? readFileSync(file, 'utf8').trim() : undefined;
  const secret = config.clusterSecret ?? kept ?? newClusterSecret();
  if (secret === kept) return secret;
  try {
    mkdirSync(folder, { recursive: true });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new KvError(
      'KV_BAD_CONFIG',
      `cannot create the data directory ${folder} (${String(code ?? (error as Error).message)}); choose another --data or make its parent writable`,
      { cause: error },
    );
  }
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/**
 * A data folder that holds a one-shard node (`<dataDir>/leveldb`) cannot become a sharded node
 * in place, nor a sharded one (`<dataDir>/shard-0`) a one-shard node: each shard is a ring member
 * with its own data, so the count is fixed per data folder. Answers what is wrong, or undefined.
 */
export function shardLayoutProblem(dataDir: string, count: number): string | undefined {
  const folder = resolve(dataDir);
  if (count > 1 && existsSync(join(folder, 'leveldb'))) {
    return `${folder} holds a one-shard node's data (leveldb/), so it cannot start with --shards ${count}; start it with --shards 1, or give the sharded node another --data (and move the data by joining it to the cluster and removing the old node)`;
  }
  if (count === 1 && existsSync(join(folder, 'shard-0'))) {
    return `${folder} holds a sharded node's data (shard-0/ ...), so it cannot start with --shards 1; start it with the --shards it had, or give the one-shard node another --data`;
  }
  return undefined;
}

/**
 * What a shard tells its supervisor: `shard-ready` once it listens; `shard-leaving` when a
 * `ringkv leave` reached it (the whole node leaves, so the supervisor has every shard leave);
 * `shard-left` once it has handed everything off and is about to exit (not to be restarted).
 */
export interface ShardMessage {
  readonly type: 'shard-ready' | 'shard-leaving' | 'shard-left';
  readonly index: number;
}

/** What the supervisor tells a shard: `leave`, because another shard of the node was asked to. */
export interface SupervisorMessage {
  readonly type: 'leave';
}

interface ShardSlot {
  readonly index: number;
  child: ChildProcess | undefined;
  ready: boolean;
  /** The shard has left the cluster: its exit is the end of it, not a crash. */
  left: boolean;
  /** Start times of this shard's restarts within the window. */
  restarts: number[];
  /** What the shard wrote to stderr before the node was first up (held back, so a failed start is one line). */
  heldErrors: string;
}

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal === null ? `exited with code ${code ?? '?'}` : `was killed by ${signal}`;
}

/**
 * Runs the shards until SIGTERM or SIGINT. `argv` is the `start` command line (without node and
 * the script); each shard gets it with `--shards N --shard-index i` appended. Resolves never:
 * the process exits 0 after a clean stop, 1 when a shard fails to start the first time or dies
 * more than maxRestartsPerWindow times in the window.
 */
export async function superviseShards(argv: readonly string[], count: number, config: NodeConfig): Promise<void> {
  const problem = shardLayoutProblem(config.dataDir, count);
  if (problem !== undefined) throw new KvError('KV_BAD_CONFIG', problem);
  // Shards are peers of each other, so they share one secret; a node's one shard has no such
  // peer and keeps the secret its data holds (a node restarted without the secret it was first
  // given finds it there), as a node did before shards.
  const env = count === 1 ? process.env : { ...process.env, RINGKV_CLUSTER_SECRET: shardsClusterSecret(config) };
  const script = join(packageRoot(), 'bin', 'ringkv.js');
  const slots: ShardSlot[] = Array.from({ length: count }, (_, index) => ({
    index,
    child: undefined,
    ready: false,
    left: false,
    restarts: [],
    heldErrors: '',
  }));
  let stopping = false;
  let allReadyOnce = false;
  /** Set once any shard was asked to leave: every shard then is (a shard restarted meanwhile is told again once it is ready: a restart does not keep a leave). */
  let leaving = false;

  const stopAll = async (exitCode: number): Promise<never> => {
    stopping = true;
    const exits = slots.flatMap((slot) => {
      const child = slot.child;
      if (child === undefined || child.exitCode !== null || child.signalCode !== null) return [];
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      child.kill('SIGTERM');
      return [exited];
    });
    await Promise.all(exits);
    process.exit(exitCode);
  };

  const launch = (slot: ShardSlot): void => {
    slot.ready = false;
    // Each shard logs to the node's stdout (its log lines name the shard). Its stderr (a failed
    // start's one line) is held until the node is first up, so a start that fails says it once.
    const child = fork(script, [...argv, '--shards', String(count), '--shard-index', String(slot.index)], {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      env,
      execArgv: shardExecArgv(process.execArgv, process.env.NODE_OPTIONS, shardOldSpaceMiB(config)),
    });
    slot.child = child;
    child.stderr?.on('data', (chunk: Buffer) => {
      if (allReadyOnce) process.stderr.write(chunk);
      else slot.heldErrors = (slot.heldErrors + chunk.toString('utf8')).slice(-10_000);
    });
    child.on('message', (message: unknown) => {
      const type = (message as Partial<ShardMessage> | null)?.type;
      if (type === 'shard-leaving') {
        if (leaving) return;
        leaving = true;
        console.error(`ringkv: shard ${slot.index} was asked to leave the cluster; every shard of the node leaves`);
        for (const each of slots) if (each !== slot && each.child?.connected === true) each.child.send({ type: 'leave' } satisfies SupervisorMessage);
        return;
      }
      if (type === 'shard-left') {
        slot.left = true;
        return;
      }
      if (type !== 'shard-ready') return;
      slot.ready = true;
      // A shard that was down when the node was asked to leave hears it now.
      if (leaving && !slot.left) child.send({ type: 'leave' } satisfies SupervisorMessage);
      if (allReadyOnce) {
        console.error(`ringkv: shard ${slot.index} is up again (pid ${child.pid})`);
      } else if (slots.every((each) => each.ready)) {
        allReadyOnce = true;
        for (const each of slots) process.stderr.write(each.heldErrors);
        console.error(`ringkv: ${count} shard${count === 1 ? '' : 's'} up (pid${count === 1 ? '' : 's'} ${slots.map((each) => each.child?.pid).join(', ')})`);
      }
    });
    // 'close', not 'exit': by then the shard's stderr is read to its end.
    child.once('close', (code, signal) => onExit(slot, child, code, signal));
  };

  const onExit = (slot: ShardSlot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void => {
    if (stopping || slot.child !== child) return;
    slot.child = undefined;
    if (!allReadyOnce) {
      // A node whose shards cannot all start is not the node asked for: stop the others and say why in one line, the shard's own.
      const said = slot.heldErrors
        .split('\n')
        .filter((line) => line.startsWith('ringkv: '))
        .at(-1);
      console.error(said ?? `ringkv: shard ${slot.index} ${exitText(code, signal)} before the node was up`);
      void stopAll(1);
      return;
    }
    if (slot.left) {
      // A shard that left the cluster is done (one killed after it left, too: restarted, it said
      // its data had left and exited); the node is done once every shard is.
      if (!slot.ready) console.error(`ringkv: shard ${slot.index} had left the cluster before it died (its data says so); it is not restarted`);
      if (slots.every((each) => each.left && each.child === undefined)) {
        console.error(`ringkv: every shard has left the cluster; the node exits`);
        process.exit(0);
      }
      return;
    }
    const now = Date.now();
    slot.restarts = slot.restarts.filter((at) => now - at < restartWindowMs);
    if (slot.restarts.length >= maxRestartsPerWindow) {
      console.error(
        `ringkv: shard ${slot.index} ${exitText(code, signal)}, its ${slot.restarts.length + 1}th exit within ${restartWindowMs / 60_000} minutes; stopping the node (see the shard's log above)`,
      );
      void stopAll(1);
      return;
    }
    const delayMs = Math.min(maxRestartDelayMs, firstRestartDelayMs * 2 ** slot.restarts.length);
    slot.restarts.push(now + delayMs);
    console.error(
      `ringkv: shard ${slot.index} ${exitText(code, signal)}; restarting it in ${delayMs} ms (restart ${slot.restarts.length} of at most ${maxRestartsPerWindow} in ${restartWindowMs / 60_000} minutes)`,
    );
    setTimeout(() => {
      if (!stopping) launch(slot);
    }, delayMs);
  };

  const onSignal = (): void => {
    if (!stopping) void stopAll(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  for (const slot of slots) launch(slot);
  await new Promise<never>(() => undefined);
}

/** What `ringkv remove` reads of a node's `/status`: the members with their placement host, and the ring's members. */
export interface RemovalView {
  readonly members: readonly { readonly id: string; readonly host: string }[];
  readonly ring: { readonly members: readonly string[] } | null;
}

/**
 * `ringkv remove` takes a host's shards together: a node's shards join and leave as one
 * (README, "Shards"), so removing some while others of the same host stay ring members leaves
 * half a node in the ring, mostly by a typo in a list of ids. Answers what is wrong (naming the
 * shards left out, and the command that names them all), or undefined; `--force` removes anyway.
 */
export function partialHostRemoval(view: RemovalView, nodeIds: readonly string[]): string | undefined {
  const named = new Set(nodeIds);
  const inRing = new Set(view.ring?.members ?? []);
  const hosts = new Set(view.members.filter((member) => named.has(member.id)).map((member) => member.host));
  const problems: string[] = [];
  const missing: string[] = [];
  for (const host of hosts) {
    const others = view.members.filter((member) => member.host === host && !named.has(member.id) && inRing.has(member.id)).map((member) => member.id);
    if (others.length === 0) continue;
    problems.push(`host ${host} also runs ${others.join(', ')}, still in the ring`);
    missing.push(...others);
  }
  if (problems.length === 0) return undefined;
  return `${problems.join('; ')}: the shards of a node leave the ring together, so remove them all (\`ringkv remove ${[...nodeIds, ...missing].join(' ')}\`), or pass --force to remove only ${nodeIds.join(', ')}`;
}
