/**
 * Membership gossip at scale, simulated: SWIM (src/core/membership/swim.ts, bench/swim-scale.ts),
 * one JSON line per run with the figures issue 21 names. A round is 1 s (SWIM's probe interval);
 * bytes are those of the framed wire, requests and replies, per member per round. The whole-view
 * gossip SWIM replaced was modelled here beside it until it was removed; its figures (the
 * "before") are kept in bench/RESULTS.md.
 *
 *   npm run build && npm run sim:gossip-scale -- --nodes 10,100,1000 --json [--seed 4000]
 *
 * SWIM with 1,000 members takes about a minute of CPU and 0.7 GB; every simulated member holds
 * a table of every other, so 10,000 would need about 70 GB, more than one process can have here.
 */
import { parseArgs } from 'node:util';
import { measureSwim } from './swim-scale.js';

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10,100,1000' },
    seed: { type: 'string', default: '4000' },
    json: { type: 'boolean', default: false },
  },
});

const sizes = values.nodes.split(',').map(Number);
const seed = Number(values.seed);
for (const nodes of sizes) if (!Number.isInteger(nodes) || nodes < 3) throw new Error(`--nodes takes whole numbers of 3 or more, separated by commas; got '${values.nodes}'`);
if (!Number.isSafeInteger(seed)) throw new Error(`--seed takes a whole number; got '${values.seed}'`);

for (const nodes of sizes) {
  const startedMs = performance.now();
  const cpuBefore = process.cpuUsage();
  const figures = measureSwim(nodes, seed);
  const cpu = process.cpuUsage(cpuBefore);
  if (values.json) console.log(JSON.stringify(figures));
  else {
    const kib = (bytes: number): string => `${(bytes / 1024).toFixed(2)} KiB`;
    console.log(
      `swim N=${nodes}: converge ${figures.roundsToConverge} rounds, detection ${figures.detectionRounds} rounds, false downs ${figures.falseDownCount}, ` +
        `idle ${kib(figures.bytesPerNodePerRoundIdle)}/node/round, churn ${kib(figures.bytesPerNodePerRoundChurn)}/node/round, largest message ${kib(figures.maxMessageBytes)}`,
    );
  }
  console.error(`swim N=${nodes}: ${((performance.now() - startedMs) / 1000).toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU`);
}
