import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import {
  FrameDecoder,
  FrameTooLargeError,
  chooseVersion,
  decodeChallenge,
  decodeHello,
  encodeChallenge,
  encodeFrame,
  encodeHello,
  frameTypes,
  handshakeProof,
  proofMatches,
} from '../../src/core/wire/frames.js';

/**
 * Goal: the frame layout reads back what was written however a socket cuts the stream, refuses
 * a frame over the cap from its header alone, agrees the highest common version, and its
 * handshake proofs verify only with the same secret and the same transcript.
 */
describe('peer frames', () => {
  it('reads frames back in order however the byte stream is cut', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ requestId: fc.nat({ max: 0xffff_ffff }), deadlineMs: fc.nat({ max: 0xffff_ffff }), payload: fc.uint8Array({ maxLength: 300 }) }), {
          maxLength: 20,
        }),
        fc.array(fc.nat({ max: 400 }), { maxLength: 30 }),
        (frames, cuts) => {
          const stream = Buffer.concat(frames.map((frame) => encodeFrame(frameTypes.request, frame.requestId, frame.deadlineMs, frame.payload)));
          const decoder = new FrameDecoder(1024);
          const decoded = [];
          let offset = 0;
          for (const cut of [...cuts, stream.length]) {
            const end = Math.min(stream.length, offset + cut);
            decoded.push(...decoder.push(stream.subarray(offset, end)));
            offset = end;
          }
          expect(decoder.bufferedBytes).toBe(0);
          expect(decoded.map((frame) => ({ requestId: frame.requestId, deadlineMs: frame.deadlineMs, payload: new Uint8Array(frame.payload) }))).toEqual(
            frames.map((frame) => ({ ...frame, payload: new Uint8Array(frame.payload) })),
          );
          expect(decoded.every((frame) => frame.type === frameTypes.request)).toBe(true);
        },
      ),
    );
  });

  it('joins a large frame that arrives in many chunks once, not once per chunk', () => {
    const stream = encodeFrame(frameTypes.reply, 9, 0, Buffer.alloc(1024 * 1024, 3));
    const decoder = new FrameDecoder();
    const concat = vi.spyOn(Buffer, 'concat');
    try {
      const frames = [];
      for (let offset = 0; offset < stream.length; offset += 1024) frames.push(...decoder.push(stream.subarray(offset, offset + 1024)));
      expect(frames.map((frame) => frame.payload.length)).toEqual([1024 * 1024]);
      // Copying the whole buffered frame on every chunk would be quadratic: 1,025 copies of up to 1 MiB here.
      expect(concat.mock.calls.length).toBeLessThanOrEqual(2);
    } finally {
      concat.mockRestore();
    }
  });

  it('refuses a frame over the cap as soon as its header arrives, naming its request id', () => {
    const decoder = new FrameDecoder(100);
    const header = encodeFrame(frameTypes.request, 42, 1000, Buffer.alloc(200)).subarray(0, 13);
    expect(() => decoder.push(header)).toThrow(FrameTooLargeError);
    try {
      new FrameDecoder(100).push(header);
    } catch (error) {
      expect(error).toMatchObject({ code: 'KV_VALUE_TOO_LARGE', requestId: 42, frameType: frameTypes.request });
    }
  });

  it('refuses a length field shorter than the header itself', () => {
    const bogus = Buffer.alloc(13);
    bogus.writeUInt32BE(3, 0);
    expect(() => new FrameDecoder().push(bogus)).toThrow(/fewer than its own header/);
  });

  it('chooses the highest version both ends speak, or none', () => {
    expect(chooseVersion({ min: 1, max: 3 }, { min: 2, max: 5 })).toBe(3);
    expect(chooseVersion({ min: 1, max: 1 }, { min: 1, max: 1 })).toBe(1);
    expect(chooseVersion({ min: 1, max: 1 }, { min: 2, max: 3 })).toBeUndefined();
  });

  it('round-trips hello and challenge, and refuses a hello without the magic', () => {
    const clientNonce = Buffer.alloc(32, 7);
    expect(decodeHello(encodeHello({ versions: { min: 1, max: 4 }, clientNonce }))).toEqual({ versions: { min: 1, max: 4 }, clientNonce });
    const challenge = { chosenVersion: 2, serverNonce: Buffer.alloc(32, 1), serverProof: Buffer.alloc(32, 2) };
    expect(decodeChallenge(encodeChallenge(challenge))).toEqual(challenge);
    expect(() => decodeHello(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\nxxxxxxxxxxxxx'))).toThrow(/not a ringkv peer hello/);
  });

  it('verifies a proof only with the same secret, role and transcript', () => {
    const transcript = { clientNonce: Buffer.alloc(32, 1), serverNonce: Buffer.alloc(32, 2), offered: { min: 1, max: 2 }, chosenVersion: 2 };
    const proof = handshakeProof('secret-one-0123456789', 'server', transcript);
    expect(proofMatches('secret-one-0123456789', 'server', transcript, proof)).toBe(true);
    expect(proofMatches('secret-two-0123456789', 'server', transcript, proof)).toBe(false);
    // A server's proof replayed as a client's does not verify.
    expect(proofMatches('secret-one-0123456789', 'client', transcript, proof)).toBe(false);
    // A downgraded version or a replayed nonce changes the transcript.
    expect(proofMatches('secret-one-0123456789', 'server', { ...transcript, chosenVersion: 1 }, proof)).toBe(false);
    expect(proofMatches('secret-one-0123456789', 'server', { ...transcript, serverNonce: Buffer.alloc(32, 3) }, proof)).toBe(false);
    expect(proofMatches('secret-one-0123456789', 'server', transcript, proof.subarray(0, 16))).toBe(false);
  });
});
