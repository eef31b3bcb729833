import { describe, expect, it } from 'vitest';
import type { SwimRecord } from '../../src/core/membership/swim-messages.js';
import type { PeerReply, PeerRequest } from '../../src/core/wire/messages.js';
import { fenceDeparture } from '../../src/engine/departure-fence.js';
import type { Clock } from '../../src/ports/clock.js';

/**
 * Goal (docs/CONSENSUS.md, "Watches"): before a watch reads a removed node's log the last time,
 * the node's removal record is pushed to every other member, and those that did not answer are
 * asked again until each has (or has departed too); only then is the removed node itself told,
 * so it refuses that read rather than answer it while a decision may still reach its log. A node
 * that left drained first: nothing is pushed for it.
 */

const removedRecord: SwimRecord = {
  id: 'x',
  address: 'x:1',
  generation: 1,
  version: 7,
  state: 'removed',
  lifecycle: 'up',
  accuser: 'a',
  transfersDoneForRing: 0,
};

/** A clock whose sleeps end at once, counting them. */
function instantClock(): Clock & { sleeps: number } {
  const clock = {
    sleeps: 0,
    nowMs: () => 0,
    setTimer: () => ({ cancel: () => undefined }),
    sleep: async () => {
      clock.sleeps += 1;
    },
  };
  return clock;
}

describe('fenceDeparture', () => {
  it('tells every other member, asking again one that did not answer, and then the removed node', async () => {
    const sent: string[] = [];
    let failuresLeft = 2;
    let members = ['self', 'a', 'b', 'c'];
    const clock = instantClock();
    await fenceDeparture(
      {
        selfId: 'self',
        clock,
        send: async (node: string, request: PeerRequest): Promise<PeerReply> => {
          sent.push(`${node}:${request.type === 'swim-records' ? request.records.map((record) => `${record.id}=${record.state}`).join(',') : request.type}`);
          if (node === 'b' && failuresLeft-- > 0) throw new Error('unreachable');
          // c departs meanwhile: it is not waited for.
          if (node === 'c') {
            members = members.filter((member) => member !== 'c');
            return { type: 'error', code: 'KV_NOT_READY', message: 'removed' };
          }
          return { type: 'swim-done' };
        },
        recordOf: (node) => (node === 'x' ? removedRecord : undefined),
        members: () => members,
        settings: () => ({ peerTimeoutMs: 100, retryMs: 10 }),
      },
      'x',
      () => false,
    );
    expect(sent).toEqual(['a:x=removed', 'b:x=removed', 'c:x=removed', 'b:x=removed', 'b:x=removed', 'x:x=removed']);
    expect(clock.sleeps).toBe(2);
  });

  it('pushes nothing for a node that left, and stops asking once the watch stops', async () => {
    const sent: string[] = [];
    const dependencies = (record: SwimRecord) => ({
      selfId: 'self',
      clock: instantClock(),
      send: async (node: string): Promise<PeerReply> => {
        sent.push(node);
        throw new Error('unreachable');
      },
      recordOf: () => record,
      members: () => ['self', 'a'],
      settings: () => ({ peerTimeoutMs: 100, retryMs: 10 }),
    });
    await fenceDeparture(dependencies({ ...removedRecord, state: 'left', lifecycle: 'left' }), 'x', () => false);
    expect(sent).toEqual([]);
    let stopped = false;
    await fenceDeparture(
      {
        ...dependencies(removedRecord),
        send: async (node: string): Promise<PeerReply> => {
          sent.push(node);
          stopped = true;
          throw new Error('unreachable');
        },
      },
      'x',
      () => stopped,
    );
    expect(sent).toEqual(['a']);
  });
});
