/**
 * Membership gossip at scale, simulated: SWIM (src/core/membership/swim.ts, bench/swim-scale.ts)
 * and a model of the whole-view gossip it replaced (bench/legacy-gossip-model.ts, the "before"),
 * one JSON line per run with the figures issue 21 names. A round is 1 s (SWIM's probe interval,
 * the old gossiper's interval); bytes are those of the framed wire, requests and replies, per
 * member per round.
 *
 *   npm run build && npm run sim:gossip-scale -- --nodes 10,100,1000,10000 --json [--protocol swim,legacy] [--seed 4000]
 *
 * Every simulated SWIM member holds a table of every other (10^8 entries at 10,000 members, about
 * 9 GB resident) and a member-round costs about 0.8 ms of CPU at 1,000 members, so 10,000 take
 * ten minutes of CPU or more; the npm script raises Node's heap limit to 16 GiB for it. The
 * legacy model needs megabytes at any N. A SWIM run longer than 10 s prints a progress line on
 * stderr every 10 s (phase, simulated time, events run, resident memory, wall time).
 */
import { parseArgs } from 'node:util';
import { measureLegacy } from './legacy-gossip-model.js';
import { type GossipScaleFigures, type SwimRunProgress, measureSwim } from './swim-scale.js';

/**
 * A SWIM run prints where it is (phase, simulated time, events run, resident memory, wall time) on
 * stderr at most this often, checked every simulated round; in the detection phase it prints
 * every simulated round, with how many members hold the killed member dead, suspect and up.
 */
const progressEveryMs = 10_000;

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '10,100,1000' },
    protocol: { type: 'string', default: 'swim,legacy' },
    seed: { type: 'string', default: '4000' },
    json: { type: 'boolean', default: false },
  },
});

const sizes = values.nodes.split(',').map(Number);
const protocols = values.protocol.split(',');
const seed = Number(values.seed);
for (const nodes of sizes)
  if (!Number.isInteger(nodes) || nodes < 3) throw new Error(`--nodes takes whole numbers of 3 or more, separated by commas; got '${values.nodes}'`);
for (const protocol of protocols)
  if (protocol !== 'swim' && protocol !== 'legacy') throw new Error(`--protocol takes swim, legacy or both ('swim,legacy'); got '${values.protocol}'`);
if (!Number.isSafeInteger(seed)) throw new Error(`--seed takes a whole number; got '${values.seed}'`);

for (const nodes of sizes) {
  for (const protocol of protocols) {
    const startedMs = performance.now();
    const cpuBefore = process.cpuUsage();
    let lastLineMs = startedMs;
    let lastDetectionRound = -1;
    const progress = (where: SwimRunProgress): void => {
      const nowMs = performance.now();
      const round = Math.floor(where.simulatedMs / 1000);
      const victim = where.victim;
      const newRound = victim !== undefined && round !== lastDetectionRound;
      if (!newRound && nowMs - lastLineMs < progressEveryMs) return;
      lastLineMs = nowMs;
      if (victim !== undefined) lastDetectionRound = round;
      const held = victim === undefined ? '' : `, ${victim.id} held dead by ${victim.dead}, suspect by ${victim.suspect}, up by ${victim.up}`;
      console.error(
        `${protocol} N=${nodes}: ${where.phase}, ${(where.simulatedMs / 1000).toFixed(1)} s simulated, ${where.events} events, ` +
          `${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB resident, ${((nowMs - startedMs) / 1000).toFixed(0)} s wall${held}`,
      );
    };
    const figures: GossipScaleFigures = protocol === 'swim' ? measureSwim(nodes, seed, progress) : measureLegacy(nodes, seed);
    const cpu = process.cpuUsage(cpuBefore);
    if (values.json) console.log(JSON.stringify(figures));
    else {
      const kib = (bytes: number): string => `${(bytes / 1024).toFixed(2)} KiB`;
      console.log(
        `${protocol} N=${nodes}: converge ${figures.roundsToConverge} rounds, detection ${figures.detectionRounds} rounds, false downs ${figures.falseDownCount}, ` +
          `idle ${kib(figures.bytesPerNodePerRoundIdle)}/node/round, churn ${kib(figures.bytesPerNodePerRoundChurn)}/node/round, largest message ${kib(figures.maxMessageBytes)}`,
      );
    }
    console.error(
      `${protocol} N=${nodes}: ${((performance.now() - startedMs) / 1000).toFixed(1)} s wall, ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s CPU, ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB resident`,
    );
  }
}
