import type { Socket } from 'node:net';
import { type FrameType, encodeFrameHeader } from '../core/wire/frames.js';

/** Payloads from this size on are written as they are; smaller ones are copied into the turn's one buffer. */
const copyBelowBytes = 64 * 1024;

/** Bytes gathered in one turn after which the writer counts as full, as a socket over its high-water mark does. */
const maxGatheredBytes = 1024 * 1024;

/**
 * Writes frames to a socket. The small frames of one event-loop turn are gathered into one
 * buffer and leave in one socket write on the next tick: a burst of 64 small requests or
 * replies costs one write call and one system call instead of 128 of each (each write call has
 * a fixed cost well above copying a hundred bytes). Large payloads are not copied: the gathered
 * frames go first, then the large one, in order.
 */
export class FrameWriter {
  private gathered: Buffer[] = [];
  private gatheredBytes = 0;
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
    const header = encodeFrameHeader(type, requestId, deadlineMs, payload.byteLength);
    if (payload.byteLength >= copyBelowBytes) {
      // The sender is mid-write: telling it the writer is free now would re-enter it.
      this.flushGathered();
      this.socket.write(header);
      this.socket.write(payload);
      return;
    }
    this.gathered.push(header, payload as Buffer);
    this.gatheredBytes += header.byteLength + payload.byteLength;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
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
    const chunk = this.gathered.length === 1 ? (this.gathered[0] as Buffer) : Buffer.concat(this.gathered, this.gatheredBytes);
    this.gathered = [];
    this.gatheredBytes = 0;
    if (this.socket.destroyed) return false;
    return this.socket.write(chunk);
  }
}
