import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type NodeProcess, call, describeExit, killNode, pollDeadlineMs, processTestTimeoutMs, startCluster, temporaryFolder, waitFor } from './processes.js';

/**
 * Goal: a shard killed (kill -9) after it persisted that it left the cluster, before it told its
 * supervisor so, is treated like a shard that exited after leaving: the supervisor does not keep
 * restarting it (each restart would refuse to start, KV_CONFLICT "wipe its data directory",
 * until maxRestartsPerWindow stopped the node with exit code 1), and the node exits 0 once every
 * shard has left.
 */

interface OwnStatus {
  readonly lifecycle: string;
  readonly process: { readonly pid: number };
}

describe('a shard killed after it left the cluster', () => {
  const folder = temporaryFolder('ringkv-left-crash-');
  const nodes: NodeProcess[] = [];
  afterAll(async () => {
    for (const node of nodes) await killNode(node);
    folder.remove();
  }, processTestTimeoutMs);

  it(
    'is not restarted, and its node exits 0',
    async () => {
      // A slower gossip period widens the window between "left" on disk and the shard's exit
      // (three periods, so the others hear it), in which the test kills the shard.
      const config = join(folder.path, 'config.json');
      writeFileSync(config, JSON.stringify({ gossip: { intervalMs: 2000 } }));
      const env = { RINGKV_CLUSTER_SECRET: 'left-crash-secret-0123456789abcdef' };
      const [, leaver] = await startCluster(2, { folder: folder.path, nodes, env, until: 'settled', extraArgs: ['--config', config] });
      const answer = await call(leaver!, 'POST', '/admin/leave');
      expect(answer.status, answer.body.toString('utf8')).toBe(202);

      // The shard's own /status says left once it persisted it: kill it then, before it exits by itself.
      const shardPid = await waitFor(
        () => `${leaver!.address} to report itself left (${describeExit(leaver!)}output: ${leaver!.output.slice(-800)})`,
        pollDeadlineMs,
        async (see) => {
          const status = (await call(leaver!, 'GET', '/status')).json<OwnStatus>();
          see(`lifecycle ${status.lifecycle}`);
          return status.lifecycle === 'left' ? status.process.pid : undefined;
        },
      );
      process.kill(shardPid, 'SIGKILL');

      const child = leaver!.child!;
      const exitCode = await waitFor(
        () => `the leaver's node to exit (${describeExit(leaver!)}output: ${leaver!.output.slice(-1500)})`,
        pollDeadlineMs,
        async () => child.exitCode ?? undefined,
      );
      // The kill reached the shard while it ran (it had not exited by itself first).
      expect(leaver!.output).toContain('was killed by SIGKILL');
      expect(exitCode, leaver!.output.slice(-1500)).toBe(0);
      expect(leaver!.output).not.toMatch(/restart 2 of/);
      expect(leaver!.output).toContain('shard 0 had left the cluster before it died');
    },
    processTestTimeoutMs,
  );
});
