import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { freePorts } from '../../test/integration/processes.js';
import { LinkNetwork, LinkProxy } from '../src/proxy.js';
import { delay, waitFor } from '../src/wait.js';

/**
 * A link proxy must forward bytes both ways, and a cut link must behave like packets dropped by
 * iptables: connections are accepted (never refused) but silent until the link heals, and then
 * the held bytes arrive, as TCP retransmissions would.
 */

interface Echo {
  readonly server: Server;
  readonly port: number;
  /** Bytes the server received, over all connections. */
  received: string;
}

async function startEcho(): Promise<Echo> {
  const echo = { received: '' } as { server: Server; port: number; received: string };
  echo.server = createServer((socket) => {
    socket.on('data', (chunk) => {
      echo.received += chunk.toString();
      socket.write(chunk);
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => echo.server.listen(0, '127.0.0.1', () => resolve()));
  echo.port = (echo.server.address() as AddressInfo).port;
  return echo;
}

function open(port: number): Promise<{ socket: Socket; text: () => string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect({ host: '127.0.0.1', port }, () => resolve({ socket, text: () => text }));
    socket.on('data', (chunk) => {
      text += chunk.toString();
    });
    socket.once('error', reject);
  });
}

describe('a link proxy', () => {
  let echo: Echo | undefined;
  let proxy: LinkProxy | undefined;
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await proxy?.stop();
    await new Promise<void>((resolve) => (echo === undefined ? resolve() : echo.server.close(() => resolve())));
  });

  it('forwards, holds every byte while cut without refusing connections, and delivers them on heal', async () => {
    echo = await startEcho();
    proxy = new LinkProxy(0, 1, 0, echo.port);
    await proxy.start();

    const before = await open(proxy.port);
    sockets.push(before.socket);
    before.socket.write('hello');
    await waitFor('the echo through the healthy link', 60_000, async () => before.text() === 'hello');

    proxy.sever();
    before.socket.write('during');
    const fresh = await open(proxy.port); // accepted, not refused, though the link is cut
    sockets.push(fresh.socket);
    fresh.socket.write('new');
    // A short observation window: nothing may cross a cut link in either direction.
    await delay(300);
    expect(echo.received).toBe('hello');
    expect(before.text()).toBe('hello');
    expect(fresh.text()).toBe('');

    proxy.heal();
    await waitFor('the held bytes after healing', 60_000, async () => before.text() === 'helloduring' && fresh.text() === 'new');
    expect(echo.received).toContain('during');
    expect(echo.received).toContain('new');
  });

  it('keeps a bounded number of connections while cut, and frees closed ones once the link heals', async () => {
    echo = await startEcho();
    proxy = new LinkProxy(0, 1, 0, echo.port, 2);
    await proxy.start();
    proxy.sever();
    for (let index = 0; index < 3; index++) sockets.push((await open(proxy.port)).socket);
    await waitFor('the proxy to hold its maximum of 2 connections', 60_000, async () => proxy?.connectionCount === 2);
    // A paused socket cannot see the other side close, as a black hole cannot: the close arrives on heal.
    for (const socket of sockets) socket.destroy();
    proxy.heal();
    await waitFor('the proxy to drop the closed connections', 60_000, async () => proxy?.connectionCount === 0);
  });
});

describe('the links of a cluster', () => {
  const echoes: Echo[] = [];
  let network: LinkNetwork | undefined;
  const sockets: Socket[] = [];

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await network?.stop();
    for (const echo of echoes.splice(0)) await new Promise<void>((resolve) => echo.server.close(() => resolve()));
  });

  it('gives every link a proxy to the peer port, points --peer-map at it, and cuts it, leaving the HTTP port to clients', async () => {
    // Two "nodes": an HTTP port and a peer port each, played by echo servers.
    for (let index = 0; index < 4; index++) echoes.push(await startEcho());
    const [http0, http1, peer0, peer1] = echoes as [Echo, Echo, Echo, Echo];
    const proxyPorts = await freePorts(2);
    const httpPorts = [http0.port, http1.port];
    const peerPortsOf = [peer0.port, peer1.port];
    network = new LinkNetwork(
      2,
      1,
      (node) => httpPorts[node] as number,
      (node) => peerPortsOf[node] as number,
      (from) => proxyPorts[from] as number,
    );
    await network.start();
    // Node 0 dials node 1 (known by its HTTP address) at the proxy of link 0 -> 1, exactly.
    expect(network.peerMap(0)).toBe(`127.0.0.1:${http1.port}=127.0.0.1:${proxyPorts[0]}`);

    const viaPeer = await open(proxyPorts[0] as number);
    sockets.push(viaPeer.socket);
    viaPeer.socket.write('frame');
    await waitFor('the bytes through the healthy link', 60_000, async () => viaPeer.text() === 'frame');
    expect(peer1.received).toBe('frame');
    expect(http1.received).toBe('');

    network.partition([[0, 1]]);
    expect(network.cutLinks().sort()).toEqual(['0>1', '1>0']);
    viaPeer.socket.write('-cut');
    // A short observation window: nothing may cross a cut link.
    await delay(300);
    expect(peer1.received).toBe('frame');

    network.healAll();
    expect(network.cutLinks()).toEqual([]);
    await waitFor('the held bytes after healing', 60_000, async () => viaPeer.text() === 'frame-cut');
    const link = network.counters().find((counter) => counter.from === 0 && counter.to === 1);
    expect(link).toMatchObject({ cuts: 1, bytesDuringCuts: 0 });
    expect(link?.bytesBeforeCuts).toBeGreaterThan(0);
  });

  it('gives a node of two shards a link to each shard of every other node, and a partition cuts them all', async () => {
    // Two nodes of two shards: each shard's peer port is an echo server; member ports are only names here.
    for (let index = 0; index < 4; index++) echoes.push(await startEcho());
    const peerOf = (node: number, shard: number): Echo => echoes[node * 2 + shard] as Echo;
    const proxyPorts = await freePorts(4);
    const memberPort = (node: number, shard: number): number => 40_000 + node * 2 + shard;
    network = new LinkNetwork(
      2,
      2,
      memberPort,
      (node, shard) => peerOf(node, shard).port,
      (from, _to, shard) => proxyPorts[from * 2 + shard] as number,
    );
    await network.start();
    expect(network.peerMap(0)).toBe(`127.0.0.1:${memberPort(1, 0)}=127.0.0.1:${proxyPorts[0]},127.0.0.1:${memberPort(1, 1)}=127.0.0.1:${proxyPorts[1]}`);
    expect(network.peerMap(1)).toBe(`127.0.0.1:${memberPort(0, 0)}=127.0.0.1:${proxyPorts[2]},127.0.0.1:${memberPort(0, 1)}=127.0.0.1:${proxyPorts[3]}`);

    // Node 0 reaches node 1's shard 1 through its own proxy.
    const toShard1 = await open(proxyPorts[1] as number);
    sockets.push(toShard1.socket);
    toShard1.socket.write('one');
    await waitFor('the bytes to shard 1 of node 1', 60_000, async () => toShard1.text() === 'one');
    expect(peerOf(1, 1).received).toBe('one');
    expect(peerOf(1, 0).received).toBe('');

    network.partition([[0, 1]]);
    expect(
      network
        .counters()
        .filter((link) => link.cuts > 0)
        .map((link) => `${link.from}>${link.to}.${link.toShard}`)
        .sort(),
    ).toEqual(['0>1.0', '0>1.1', '1>0.0', '1>0.1']);
    expect(network.cutLinks().sort()).toEqual(['0>1', '1>0']);
    toShard1.socket.write('-cut');
    // A short observation window: nothing may cross a cut link.
    await delay(300);
    expect(peerOf(1, 1).received).toBe('one');
    network.healAll();
    await waitFor('the held bytes after healing', 60_000, async () => toShard1.text() === 'one-cut');
  });
});
