import type { Socket } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameWriter } from '../../src/adapters/frame-writer.js';
import { FrameDecoder, encodeFrameHeader, frameTypes, writeFrameHeader } from '../../src/core/wire/frames.js';

/**
 * Goal: the frame writer's gathering (headers written into a per-turn buffer that is handed to
 * the socket when it fills up or the turn ends, large payloads written as they are) keeps every
 * frame's bytes and their order, whatever mix of sizes and turns it is given.
 */

/** A socket that only records what is written to it. */
function recordingSocket(): { socket: Socket; written: Buffer[] } {
  const written: Buffer[] = [];
  const socket = {
    destroyed: false,
    writableNeedDrain: false,
    on: () => socket,
    write: (chunk: Buffer) => {
      written.push(Buffer.from(chunk));
      return true;
    },
  };
  return { socket: socket as unknown as Socket, written };
}

describe('the frame writer', () => {
  it('writes the same header bytes into a buffer as encodeFrameHeader makes', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffff_ffff }),
        fc.double({ min: -10, max: 2 ** 33, noNaN: true }),
        fc.nat({ max: 1 << 26 }),
        (requestId, deadlineMs, payloadBytes) => {
          const target = Buffer.alloc(20, 0xaa);
          writeFrameHeader(target, 3, frameTypes.request, requestId, deadlineMs, payloadBytes);
          expect(target.subarray(3, 16)).toEqual(encodeFrameHeader(frameTypes.request, requestId, deadlineMs, payloadBytes));
          expect(target[2]).toBe(0xaa);
          expect(target[16]).toBe(0xaa);
        },
      ),
    );
  });

  it('gathers the frames of several callbacks of one loop turn into one socket write', async () => {
    // The replies to a burst of reads are written from separate callbacks of one poll phase; two
    // callbacks of one check phase stand for them here. A flush after each callback (a
    // process.nextTick) wrote them one by one.
    const { socket, written } = recordingSocket();
    const writer = new FrameWriter(socket, () => undefined);
    await new Promise<void>((resolve) => {
      setImmediate(() => writer.write(frameTypes.reply, 1, 1000, Buffer.from('first')));
      setImmediate(() => writer.write(frameTypes.reply, 2, 1000, Buffer.from('second')));
      setImmediate(() => setImmediate(resolve));
    });
    expect(written, 'socket writes for two frames of one turn').toHaveLength(1);
    expect(new FrameDecoder().push(Buffer.concat(written)).map((frame) => frame.requestId)).toEqual([1, 2]);
  });

  it('keeps every frame and its order over chunk boundaries, large payloads and turns', async () => {
    const sizes = fc.array(fc.array(fc.oneof(fc.nat({ max: 300 }), fc.nat({ max: 70_000 })), { minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 3 });
    await fc.assert(
      fc.asyncProperty(sizes, async (turns) => {
        const { socket, written } = recordingSocket();
        const writer = new FrameWriter(socket, () => undefined);
        let id = 0;
        const expected: { requestId: number; payload: Buffer }[] = [];
        for (const turn of turns) {
          for (const size of turn) {
            id += 1;
            const payload = Buffer.alloc(size, id % 251);
            expected.push({ requestId: id, payload });
            writer.write(frameTypes.request, id, 1000, payload);
          }
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        const frames = new FrameDecoder().push(Buffer.concat(written));
        expect(frames.map((frame) => frame.requestId)).toEqual(expected.map((frame) => frame.requestId));
        // Byte comparison with Buffer.compare: a deep equality of 70 KB buffers is slow.
        expect(frames.every((frame, index) => Buffer.compare(frame.payload, expected[index]!.payload) === 0)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });
});
