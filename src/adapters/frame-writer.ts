import type { Socket } from 'node:net';
import { type FrameType, encodeFrameHeader, frameHeaderBytes, writeFrameHeader } from '../core/wire/frames.js';

/** Payloads from this size on are written as they are; smaller ones are copied into the turn's one buffer. */
const copyBelowBytes = 64 * 1024;

/** Bytes gathered in one turn after which the writer counts as full, as a socket over its high-water mark does. */
const maxGatheredBytes = 1024 * 1024;

/** Bounds of the buffer a turn's frames are gathered in: it starts at twice what the last turn wrote. */
const minChunkBytes = 256;
const maxChunkBytes = 64 * 1024;

/**
 * Writes frames to a socket. The small frames of one event-loop turn are gathered into one
 * buffer and leave in one socket write when the turn's I/O callbacks are done (`setImmediate`,
 * the loop's check phase): a burst of 64 small requests or replies costs one write call and one
 * system call instead of 128 of each (each write call has a fixed cost well above copying a
 * hundred bytes). A turn is every callback of one poll phase, not one callback: the replies to a
 * burst of reads finish in separate LevelDB callbacks, and a flush on `process.nextTick` after
 * each of them wrote them one by one (bench/RESULTS.md, "Peer frames gathered per loop turn").
 * Headers are written straight into that buffer, so a small frame costs no allocation of its
 * own. Large payloads are not copied: the gathered frames go first, then the large one, in order.
 */
export class FrameWriter {
  /** The buffer this turn's frames are gathered in, and how much of it is used. */
  private chunk: Buffer | undefined;
  private chunkUsed = 0;
  /** Bytes gathered since the last flush (including chunks already handed to the socket because they filled up). */
  private gatheredBytes = 0;
  private nextChunkBytes = minChunkBytes;
  private flushScheduled = false;

  /** `onWritable` is called whenever the writer stops being full: after a flush the socket took, and on the socket's 'drain'. */
  constructor(
    private readonly socket: Socket,
    private readonly onWritable: () => void,
  ) {
    socket.on('drain', () => onWritable());
  }

  /**
   * True while the socket's buffer is over its high-water mark or a turn has gathered much: the
   * sender should stop until `onWritable` is called.
   */
  get full(): boolean {
    return this.socket.writableNeedDrain || this.gatheredBytes >= maxGatheredBytes;
  }

  /** Queues one frame, in order after every frame queued before it. */
  write(type: FrameType, requestId: number, deadlineMs: number, payload: Uint8Array): void {
    if (this.socket.destroyed) return;
    if (payload.byteLength >= copyBelowBytes) {
      // The sender is mid-write: telling it the writer is free now would re-enter it.
      this.flushGathered();
      this.socket.write(encodeFrameHeader(type, requestId, deadlineMs, payload.byteLength));
      this.socket.write(payload);
      return;
    }
    const frameBytes = frameHeaderBytes + payload.byteLength;
    if (this.chunk === undefined || this.chunkUsed + frameBytes > this.chunk.length) {
      // A full chunk goes to the socket now (frames stay in order); the next one is larger.
      if (this.chunk !== undefined && this.chunkUsed > 0) {
        this.socket.write(this.chunk.subarray(0, this.chunkUsed));
        this.nextChunkBytes = Math.min(maxChunkBytes, this.chunk.length * 2);
      }
      this.chunk = Buffer.allocUnsafe(Math.max(frameBytes, this.nextChunkBytes));
      this.chunkUsed = 0;
    }
    writeFrameHeader(this.chunk, this.chunkUsed, type, requestId, deadlineMs, payload.byteLength);
    this.chunk.set(payload, this.chunkUsed + frameHeaderBytes);
    this.chunkUsed += frameBytes;
    this.gatheredBytes += frameBytes;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Writes what this turn gathered (also before a large payload, and before the socket is ended). */
  flush(): void {
    // Past the high-water mark, 'drain' says when to go on; below it, the sender may go on now.
    if (this.flushGathered()) this.onWritable();
  }

  /** Writes the gathered frames; true when the socket took them without going over its high-water mark. */
  private flushGathered(): boolean {
    this.flushScheduled = false;
    if (this.gatheredBytes === 0) return false;
    const chunk = this.chunk as Buffer;
    const used = this.chunkUsed;
    // The socket keeps the chunk until it is sent, so the next turn starts a new one, sized by this turn.
    this.nextChunkBytes = Math.min(maxChunkBytes, Math.max(minChunkBytes, 2 * this.gatheredBytes));
    this.chunk = undefined;
    this.chunkUsed = 0;
    this.gatheredBytes = 0;
    if (this.socket.destroyed) return false;
    return used === 0 ? !this.socket.writableNeedDrain : this.socket.write(chunk.subarray(0, used));
  }
}
