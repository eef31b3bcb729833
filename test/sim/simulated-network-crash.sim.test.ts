import { describe, expect, it } from 'vitest';
import { SeededRandom } from '../../src/sim/seeded-random.js';
import { SimulatedNetwork } from '../../src/sim/simulated-transport.js';
import { VirtualClock } from '../../src/sim/virtual-clock.js';

/**
 * Goal: an unclean crash in simulation behaves as a dead process does on a real network: what
 * the crashed node had sent is never answered to it, and it sends nothing new. (The transport
 * port's shared contract is test/contract/transport.contract.test.ts.)
 */
describe('simulated transport: a crashed sender hears nothing', () => {
  it('after kill(), a request under way never settles, not even by its timeout, and new requests never leave', async () => {
    const scheduler = new VirtualClock(1_700_000_000_000, { random: new SeededRandom(3) });
    const network = new SimulatedNetwork(scheduler, new SeededRandom(4));
    const received: string[] = [];
    network.register('10.0.0.2:7000', async (message) => {
      received.push(message.type === 'replica-get' ? message.key : message.type);
      await scheduler.sleep(50);
      return { type: 'replica-get-reply', object: null };
    });
    const sender = network.transportFor('10.0.0.1:7000');
    let outcome = 'pending';
    sender.request('10.0.0.2:7000', { type: 'replica-get', bucket: 'b', key: 'before' }, { timeoutMs: 1000 }).then(
      () => (outcome = 'answered'),
      () => (outcome = 'rejected'),
    );
    await scheduler.advance(10);
    expect(received).toEqual(['before']);
    sender.kill();
    let later = 'pending';
    sender.request('10.0.0.2:7000', { type: 'replica-get', bucket: 'b', key: 'after' }, { timeoutMs: 1000 }).then(
      () => (later = 'answered'),
      () => (later = 'rejected'),
    );
    await scheduler.advance(5000);
    expect([outcome, later]).toEqual(['pending', 'pending']);
    expect(received).toEqual(['before']);
  });
});
