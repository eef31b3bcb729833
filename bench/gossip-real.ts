import { loadavg } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import {
  type ServerProcess,
  isAlive,
  packageRoot,
  portFree,
  removeTemporaryFolder,
  signalGroup,
  startServer,
  stopAll,
  stopServer,
  temporaryFolder,
} from './processes.js';

/**
 * Membership on real processes (issue 21): the figures `npm run sim:gossip-scale -- --json`
 * gives in simulation, measured on ringkv nodes on loopback from their own counters
 * (`ringkv_gossip_bytes_sent_total`, `ringkv_gossip_rounds_total` on /metrics) and /status.
 *
 *   npm run build && npm run bench:gossip-real                 # 24 nodes, one JSON line
 *   npm run bench:gossip-real -- --mode formation --runs 3     # 3 nodes, a joiner killed 1.5 s after it starts
 *
 * gossip mode: 23 nodes form a cluster (node 1 founds it, the others seed from it); then
 *  - idle: every node's bytes and rounds over `--idle-seconds` of a settled cluster;
 *  - roundsToConverge: the 24th node starts; seconds (in 1 s protocol periods) until every
 *    other node lists it as a member (polled on /status, so the figure includes the poll's lag);
 *  - detectionRounds: node 24 is killed with SIGKILL; periods until every other node shows it down;
 *  - churn: nodes 21-24 are each killed and restarted in turn (a restart is a new generation,
 *    news that spreads to all), bytes and rounds of nodes 1-20 over that window. This is lighter
 *    churn than the simulation's, where every member publishes a change every round;
 *  - falseDownCount: 'member judged down' log lines of any node naming one of nodes 1-20, which
 *    were never stopped.
 * formation mode: three nodes launched together, the third killed 1.5 s after it answers
 * /health (or, with --kill-from launch, 1.5 s after it was launched, while it may still be
 * joining); ms from launch to the first w=2 write acknowledged by a live node.
 *
 * Ports: HTTP 21000-21023 (gossip) and 21030-21032 (formation), peerPortOffset 500 so the peer
 * ports are 21500-21532; the run refuses to start when one is taken. Every node it starts is
 * stopped at the end, on an error, and on Ctrl-C/SIGTERM (bench/processes.ts).
 */

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'gossip' },
    nodes: { type: 'string', default: '24' },
    'idle-seconds': { type: 'string', default: '20' },
    runs: { type: 'string', default: '3' },
    'kill-from': { type: 'string', default: 'health' },
    'keep-data': { type: 'boolean', default: false },
  },
});

const peerPortOffset = 500;
const intervalMs = 1000;
const script = join(packageRoot(), 'bin', 'ringkv.js');
const folder = temporaryFolder('ringkv-gossip-real-');
const configFile = join(folder, 'config.json');
writeFileSync(configFile, JSON.stringify({ peerPortOffset }));

interface RealNode {
  readonly index: number;
  readonly port: number;
  readonly address: string;
  readonly dataDir: string;
  server: ServerProcess | undefined;
  id: string;
}

/** Every 'member judged down' line any node logged: who logged it and about whom. */
const downJudgements: { by: number; member: string }[] = [];

function launch(node: RealNode, seeds: readonly string[]): void {
  const args = [
    script,
    'start',
    '--shards',
    '1',
    '--host',
    '127.0.0.1',
    '--port',
    String(node.port),
    '--data',
    node.dataDir,
    '--config',
    configFile,
    '--log-level',
    'warn',
  ];
  if (seeds.length > 0) args.push('--seeds', seeds.join(','));
  const server = startServer(`ringkv ${node.port}`, process.execPath, args, {
    env: { ...process.env, RINGKV_CLUSTER_SECRET: 'gossip-real-secret-0123456789abcd' },
  });
  let partial = '';
  server.child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('member judged down')) continue;
      const member = (JSON.parse(line) as { member?: string }).member;
      if (member !== undefined) downJudgements.push({ by: node.index, member });
    }
  });
  node.server = server;
}

async function getText(node: RealNode, path: string): Promise<string> {
  const response = await request(`http://${node.address}${path}`, {
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`${node.address}${path}: ${response.statusCode} ${text.slice(0, 200)}`);
  return text;
}

interface StatusView {
  node: { id: string };
  members: { id: string; status: string }[];
  ring: { members: string[]; next?: string[] | null } | null;
}

async function status(node: RealNode): Promise<StatusView> {
  return JSON.parse(await getText(node, '/status')) as StatusView;
}

/** Polls every 250 ms until `condition` holds; throws naming `what` and the last thing seen after `deadlineMs`. */
async function until(what: string, deadlineMs: number, condition: () => Promise<string | true>, nodes: readonly RealNode[]): Promise<number> {
  const started = performance.now();
  let seen = '';
  while (performance.now() - started < deadlineMs) {
    for (const node of nodes) {
      if (node.server !== undefined && !isAlive(node.server))
        throw new Error(`${node.address} exited while waiting for ${what}: ${node.server.output.slice(-1500)}`);
    }
    try {
      const result = await condition();
      if (result === true) return performance.now() - started;
      seen = result;
    } catch (error) {
      seen = String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}; last saw ${seen}`);
}

/** Every given node sees `count` members up in a settled ring of `count`. */
async function settled(nodes: readonly RealNode[], count: number): Promise<string | true> {
  const views = await Promise.all(nodes.map(async (node) => status(node)));
  const behind = views.filter(
    (view) =>
      view.members.filter((member) => member.status === 'up').length !== count || view.ring?.members.length !== count || (view.ring.next ?? null) !== null,
  );
  return behind.length === 0 ? true : `${behind.length} of ${nodes.length} nodes not yet settled with ${count} up`;
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, 'm').exec(text);
  if (match === null) throw new Error(`/metrics has no ${name}`);
  return Number(match[1]);
}

async function counters(nodes: readonly RealNode[]): Promise<{ bytes: number; rounds: number }> {
  const texts = await Promise.all(nodes.map(async (node) => getText(node, '/metrics')));
  return {
    bytes: texts.reduce((sum, text) => sum + metric(text, 'ringkv_gossip_bytes_sent_total'), 0),
    rounds: texts.reduce((sum, text) => sum + metric(text, 'ringkv_gossip_rounds_total'), 0),
  };
}

async function checkPorts(ports: readonly number[]): Promise<void> {
  for (const port of ports) {
    for (const candidate of [port, port + peerPortOffset]) {
      if (!(await portFree(candidate)))
        throw new Error(`port ${candidate} is taken; this bench uses HTTP ports ${ports[0]}-${ports.at(-1)} and peer ports ${peerPortOffset} above them`);
    }
  }
}

function makeNodes(basePort: number, count: number): RealNode[] {
  return Array.from({ length: count }, (_, index) => ({
    index: index + 1,
    port: basePort + index,
    address: `127.0.0.1:${basePort + index}`,
    dataDir: join(folder, `node${index + 1}`),
    server: undefined,
    id: '',
  }));
}

async function stop(node: RealNode, signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  const server = node.server;
  if (server === undefined) return;
  if (signal === 'SIGKILL') {
    const exited = new Promise<void>((resolve) => server.child.once('exit', () => resolve()));
    if (isAlive(server)) signalGroup(server.child.pid, 'SIGKILL');
    await exited;
  } else await stopServer(server);
  node.server = undefined;
}

const minutes = 60_000;

async function gossipRun(count: number, idleSeconds: number): Promise<void> {
  if (!Number.isInteger(count) || count < 8 || count > 24) throw new Error(`--nodes takes a whole number from 8 to 24 (the port range holds 24); got ${count}`);
  const nodes = makeNodes(21_000, count);
  await checkPorts(nodes.map((node) => node.port));
  const [founder] = nodes as [RealNode];
  const last = nodes.at(-1) as RealNode;
  const formers = nodes.slice(0, -1);
  launch(founder, []);
  await until('the founder to answer /health', 2 * minutes, async () => (await getText(founder, '/health')) !== '' || 'no answer', [founder]);
  for (const node of formers.slice(1)) launch(node, [founder.address]);
  const formMs = await until(`${formers.length} nodes to settle`, 10 * minutes, async () => settled(formers, formers.length), formers);
  for (const node of formers) node.id = (await status(node)).node.id;
  process.stderr.write(`${formers.length} nodes settled ${(formMs / 1000).toFixed(1)} s after the last start\n`);

  // Idle.
  let before = await counters(formers);
  await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
  let after = await counters(formers);
  const bytesPerNodePerRoundIdle = (after.bytes - before.bytes) / (after.rounds - before.rounds);
  const idleRounds = after.rounds - before.rounds;

  // A join: periods until every other node lists the newcomer.
  launch(last, [founder.address]);
  await until('the last node to answer /health', 2 * minutes, async () => (await getText(last, '/health')) !== '' || 'no answer', [last]);
  last.id = (await status(last)).node.id;
  const joinMs = await until(
    `every node to list ${last.id}`,
    5 * minutes,
    async () => {
      const views = await Promise.all(formers.map(async (node) => status(node)));
      const missing = views.filter((view) => !view.members.some((member) => member.id === last.id && member.status !== 'down')).length;
      return missing === 0 || `${missing} nodes do not list it`;
    },
    nodes,
  );
  await until(`${count} nodes to settle`, 10 * minutes, async () => settled(nodes, count), nodes);

  // Detection: the last node dies; periods until every other node shows it down.
  await stop(last, 'SIGKILL');
  const detectionMs = await until(
    `every node to show ${last.id} down`,
    5 * minutes,
    async () => {
      const views = await Promise.all(formers.map(async (node) => status(node)));
      const up = views.filter((view) => view.members.some((member) => member.id === last.id && member.status !== 'down')).length;
      return up === 0 || `${up} nodes still show it up`;
    },
    formers,
  );
  launch(last, [founder.address]);
  await until(`${count} nodes to settle again`, 10 * minutes, async () => settled(nodes, count), nodes);

  // Churn: the last four nodes are killed and restarted in turn; bytes of the others meanwhile.
  const steady = nodes.slice(0, -4);
  const churners = nodes.slice(-4);
  before = await counters(steady);
  const churnStarted = performance.now();
  for (const node of churners) {
    await stop(node, 'SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    launch(node, [founder.address]);
    await new Promise((resolve) => setTimeout(resolve, 3000));
  }
  after = await counters(steady);
  const churnSeconds = (performance.now() - churnStarted) / 1000;
  const bytesPerNodePerRoundChurn = (after.bytes - before.bytes) / (after.rounds - before.rounds);
  await until(`${count} nodes to settle after the churn`, 10 * minutes, async () => settled(nodes, count), nodes);

  const steadyIds = new Set(steady.map((node) => node.id));
  const falseDowns = downJudgements.filter((judgement) => steadyIds.has(judgement.member));
  for (const judgement of falseDowns) process.stderr.write(`false down: node ${judgement.by} judged ${judgement.member} down\n`);
  const [one, five, fifteen] = loadavg();
  process.stderr.write(
    `idle: ${idleRounds} node-rounds; churn: ${churnSeconds.toFixed(1)} s, ${after.rounds - before.rounds} node-rounds of ${steady.length} nodes; ` +
      `load average ${one!.toFixed(2)} ${five!.toFixed(2)} ${fifteen!.toFixed(2)}\n`,
  );
  console.log(
    JSON.stringify({
      protocol: 'swim',
      source: 'real-processes',
      nodes: count,
      roundsToConverge: Math.round((joinMs / intervalMs) * 10) / 10,
      detectionRounds: Math.round((detectionMs / intervalMs) * 10) / 10,
      falseDownCount: falseDowns.length,
      bytesPerNodePerRoundIdle: Math.round(bytesPerNodePerRoundIdle),
      bytesPerNodePerRoundChurn: Math.round(bytesPerNodePerRoundChurn),
    }),
  );
}

async function writeOnce(node: RealNode, key: string): Promise<boolean> {
  try {
    const response = await request(`http://${node.address}/kv/formation/${key}?w=2`, {
      method: 'PUT',
      body: 'formed',
      headers: { 'content-type': 'text/plain' },
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    await response.body.dump();
    return response.statusCode === 204;
  } catch {
    return false;
  }
}

async function formationRun(run: number): Promise<void> {
  const nodes = makeNodes(21_030, 3).map((node) => ({
    ...node,
    dataDir: join(folder, `formation${run}-node${node.index}`),
  }));
  await checkPorts(nodes.map((node) => node.port));
  const [first, second, doomed] = nodes as [RealNode, RealNode, RealNode];
  const launchedAt = performance.now();
  launch(first, []);
  launch(second, [first.address]);
  launch(doomed, [first.address]);
  let firstWriteMs: number | undefined;
  let writing = true;
  const writer = (async () => {
    for (let attempt = 0; writing && firstWriteMs === undefined; attempt++) {
      const node = attempt % 2 === 0 ? first : second;
      if (await writeOnce(node, `key-${attempt}`)) firstWriteMs = performance.now() - launchedAt;
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    await until('the founder to answer /health', 2 * minutes, async () => (await getText(first, '/health')) !== '' || 'no answer', [first]);
    const founderHealthyMs = performance.now() - launchedAt;
    // --kill-from health: 1.5 s after the third node answers /health; launch: 1.5 s after it was launched (mid-join, as issue 21 words it).
    let healthyMs: number | undefined;
    if (values['kill-from'] === 'launch') {
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 1500 - (performance.now() - launchedAt))));
    } else {
      await until('the third node to answer /health', 2 * minutes, async () => (await getText(doomed, '/health')) !== '' || 'no answer', [doomed]);
      healthyMs = performance.now() - launchedAt;
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
    await stop(doomed, 'SIGKILL');
    const killedMs = performance.now() - launchedAt;
    await until('a w=2 write acknowledged by a live node', 2 * minutes, async () => firstWriteMs !== undefined || 'none yet', [first, second]);
    const [one] = loadavg();
    console.log(
      JSON.stringify({
        mode: 'formation',
        run,
        firstWriteMs: Math.round(firstWriteMs as number),
        founderHealthyMs: Math.round(founderHealthyMs),
        ...(healthyMs === undefined ? {} : { thirdHealthyMs: Math.round(healthyMs) }),
        thirdKilledMs: Math.round(killedMs),
        loadAverage1m: Math.round(one! * 100) / 100,
      }),
    );
  } finally {
    writing = false;
    await writer;
    for (const node of nodes) await stop(node, 'SIGTERM');
  }
}

if (values['kill-from'] !== 'health' && values['kill-from'] !== 'launch') throw new Error(`--kill-from takes health or launch, not '${values['kill-from']}'`);
try {
  if (values.mode === 'gossip') await gossipRun(Number(values.nodes), Number(values['idle-seconds']));
  else if (values.mode === 'formation') {
    const runs = Number(values.runs);
    if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs takes a whole number of 1 or more; got '${values.runs}'`);
    for (let run = 1; run <= runs; run++) await formationRun(run);
  } else throw new Error(`--mode takes 'gossip' or 'formation'; got '${values.mode}'`);
} finally {
  await stopAll();
  removeTemporaryFolder(folder, values['keep-data']);
}
