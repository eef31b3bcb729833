import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  nodeHasReusePort,
  partialHostRemoval,
  shardCount,
  shardExecArgv,
  shardLayoutProblem,
  shardOldSpaceMiB,
  shardSemiSpaceMiB,
  shardsClusterSecret,
} from '../../src/cli/shards.js';
import { defaultShardHost, shardConfig, shardPeerPort } from '../../src/config/shards.js';
import { loadConfig } from '../../src/cli/load-config.js';
import { temporaryFolder } from '../integration/processes.js';

/**
 * Goal: the rules that place a node's shards are fixed functions of the node's config (so every
 * restart finds the same data folder, member address and peer port), and the shard count is
 * checked at the edge: one per core by default where Node has reusePort, a clear refusal of N > 1
 * where it has not, and a data folder of one layout never started in the other.
 */

describe('shardConfig', () => {
  const node = loadConfig({ port: 17301, data: '/srv/ringkv/', seeds: '10.0.0.2:17301' }, {});

  it('gives shard i its own folder, the member address port + i and the peer port + i, on the shared HTTP port', () => {
    const shard = shardConfig(node, { index: 1, count: 2 });
    expect(shard.dataDir).toBe('/srv/ringkv/shard-1');
    expect(shard.advertise).toBe('127.0.0.1:17302');
    expect(shard.port).toBe(17301);
    expect(shardPeerPort(node, { index: 1, count: 2 })).toBe(18302);
    // Peers derive the peer port from the member address by the usual rule: it is the one shard 1 listens on.
    expect(Number(shard.advertise.split(':')[1]) + node.peerPortOffset).toBe(shardPeerPort(node, { index: 1, count: 2 }));
  });

  it('labels every shard with the node address as placement host, and seeds shards 1.. from shard 0', () => {
    const shards = [0, 1, 2].map((index) => shardConfig(node, { index, count: 3 }));
    expect(shards.map((shard) => shard.placement.host)).toEqual(['127.0.0.1_17301', '127.0.0.1_17301', '127.0.0.1_17301']);
    expect(shards[0]!.seeds).toEqual(['10.0.0.2:17301']);
    expect(shards[2]!.seeds).toEqual(['10.0.0.2:17301', '127.0.0.1:17301']);
    expect(shardConfig(loadConfig({ placementHost: 'rack-7-box-3' }, {}), { index: 1, count: 2 }).placement.host).toBe('rack-7-box-3');
    expect(defaultShardHost('[::1]:17301')).toBe('___1__17301');
  });
});

describe('shardsClusterSecret', () => {
  it('keeps the secret a node ran with, the configured one too, so a restart without it does not make a new one', () => {
    const folder = temporaryFolder('shards-secret');
    const data = join(folder.path, 'node');
    const configured = 'c'.repeat(32);
    expect(shardsClusterSecret(loadConfig({ data }, { RINGKV_CLUSTER_SECRET: configured }))).toBe(configured);
    // Restarted without RINGKV_CLUSTER_SECRET: the secret its shards and its peers know.
    expect(shardsClusterSecret(loadConfig({ data }, {}))).toBe(configured);
    // A secret configured later wins, and is the one kept from then on.
    const rotated = 'd'.repeat(32);
    expect(shardsClusterSecret(loadConfig({ data }, { RINGKV_CLUSTER_SECRET: rotated }))).toBe(rotated);
    expect(shardsClusterSecret(loadConfig({ data }, {}))).toBe(rotated);
    // A node never given one makes one on its first start and keeps it.
    const fresh = join(folder.path, 'fresh');
    const made = shardsClusterSecret(loadConfig({ data: fresh }, {}));
    expect(made).toMatch(/\S{16,}/);
    expect(shardsClusterSecret(loadConfig({ data: fresh }, {}))).toBe(made);
    folder.remove();
  });
});

describe('shardCount', () => {
  it('defaults to one shard per core where Node has reusePort, else to one', () => {
    expect(shardCount(undefined, { node: '24.3.0' }, 8)).toBe(8);
    expect(shardCount(undefined, { node: '22.12.0' }, 2)).toBe(2);
    expect(shardCount(undefined, { node: '20.19.0' }, 8)).toBe(1);
    expect(nodeHasReusePort({ node: '22.11.0' })).toBe(false);
    expect(nodeHasReusePort({ node: '23.1.0' })).toBe(true);
  });

  it('refuses more than one shard on a Node without reusePort, and counts outside 1..64', () => {
    expect(() => shardCount('2', { node: '20.19.0' })).toThrow(
      /--shards 2 needs Node.js 22.12 or later .*this is Node.js 20.19.0: upgrade Node.js or start with --shards 1/,
    );
    expect(shardCount('1', { node: '20.19.0' })).toBe(1);
    expect(() => shardCount('0', { node: '24.0.0' })).toThrow("--shards must be an integer from 1 to 64, got '0'");
    expect(() => shardCount('two', { node: '24.0.0' })).toThrow("--shards must be an integer from 1 to 64, got 'two'");
  });
});

describe('shardLayoutProblem', () => {
  it('refuses to start a data folder in the other layout', () => {
    const folder = temporaryFolder('ringkv-shard-layout-');
    try {
      expect(shardLayoutProblem(folder.path, 2)).toBeUndefined();
      mkdirSync(join(folder.path, 'leveldb'));
      expect(shardLayoutProblem(folder.path, 2)).toMatch(/holds a one-shard node's data .* start it with --shards 1/);
      expect(shardLayoutProblem(folder.path, 1)).toBeUndefined();
      mkdirSync(join(folder.path, 'shard-0'));
      expect(shardLayoutProblem(folder.path, 1)).toMatch(/holds a sharded node's data/);
    } finally {
      folder.remove();
    }
  });
});

describe('shardExecArgv', () => {
  it("gives each shard a small young generation and a bounded old one unless the operator's flags or NODE_OPTIONS name them", () => {
    const semi = `--max-semi-space-size=${shardSemiSpaceMiB}`;
    expect(shardExecArgv([], undefined, 192)).toEqual([semi, '--max-old-space-size=192']);
    expect(shardExecArgv(['--cpu-prof'], '--enable-source-maps', 192)).toEqual(['--cpu-prof', semi, '--max-old-space-size=192']);
    expect(shardExecArgv(['--max-semi-space-size=16'], undefined, 192)).toEqual(['--max-semi-space-size=16', '--max-old-space-size=192']);
    expect(shardExecArgv([], '--max_semi_space_size=32 --trace-gc', 192)).toEqual(['--max-old-space-size=192']);
    expect(shardExecArgv(['--max-old-space-size=4096'], undefined, 192)).toEqual(['--max-old-space-size=4096', semi]);
    expect(shardExecArgv([], '--max_old_space_size=512', 192)).toEqual([semi]);
  });

  it('bounds the old generation by the bounded caches it holds: 256 MiB with the defaults, more when they are raised', () => {
    expect(shardOldSpaceMiB(loadConfig({}, {}))).toBe(256);
    const raised = loadConfig({}, { RINGKV_OBJECT_CACHE_BYTES: String(256 * 2 ** 20) });
    expect(shardOldSpaceMiB(raised)).toBe(192 + 2 * (256 + 16));
  });
});

describe('partialHostRemoval', () => {
  const view = {
    members: [
      { id: 'a0', host: 'box-a' },
      { id: 'a1', host: 'box-a' },
      { id: 'b0', host: 'box-b' },
      { id: 'b1', host: 'box-b' },
      { id: 'c', host: 'c' },
    ],
    ring: { members: ['a0', 'a1', 'b0', 'c'] },
  };

  it('refuses to remove some shards of a host while others of it are still in the ring, naming them and the whole command', () => {
    expect(partialHostRemoval(view, ['a0'])).toBe(
      'host box-a also runs a1, still in the ring: the shards of a node leave the ring together, so remove them all (`ringkv remove a0 a1`), or pass --force to remove only a0',
    );
  });

  it('takes every shard of a host, a one-shard node, and a host whose other shards already left the ring', () => {
    expect(partialHostRemoval(view, ['a1', 'a0'])).toBeUndefined();
    expect(partialHostRemoval(view, ['c'])).toBeUndefined();
    // b1 is listed but no longer in the ring (it left): b0 is the last of its host.
    expect(partialHostRemoval(view, ['b0'])).toBeUndefined();
    expect(partialHostRemoval({ members: view.members, ring: null }, ['a0'])).toBeUndefined();
  });
});
