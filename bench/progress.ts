import { performance } from 'node:perf_hooks';

/**
 * The progress line of a run, on stderr so stdout keeps only the results. On a terminal it is a
 * bar redrawn in place four times a second; elsewhere (CI, a log file) one line every 5 s, so a
 * log shows the run is alive without filling up.
 */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private startMs = 0;
  private okCount = 0;
  private errorCount = 0;
  private done = 0;
  private lastOk = 0;
  private lastMs = 0;
  private rateOpsPerSecond = 0;
  private readonly interactive = process.stderr.isTTY === true;

  /**
   * `total` switches the bar from time (warm-up + duration) to a count of items (the prefill).
   */
  constructor(
    private readonly label: string,
    private readonly warmupSeconds: number,
    private readonly durationSeconds: number,
    private readonly enabled: boolean,
    private readonly total?: number,
  ) {}

  /** Starts redrawing. */
  start(): void {
    if (!this.enabled) return;
    this.startMs = performance.now();
    this.lastMs = this.startMs;
    this.timer = setInterval(() => this.draw(false), this.interactive ? 250 : 5000);
    this.timer.unref();
  }

  /** Counts one finished operation (and, for a count bar, how many items are done). */
  count(ok: boolean, done?: number): void {
    if (ok) this.okCount++;
    else this.errorCount++;
    if (done !== undefined) this.done = done;
  }

  /** Stops and clears the line. */
  stop(): void {
    if (this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.draw(true);
  }

  private draw(final: boolean): void {
    const nowMs = performance.now();
    const elapsedSeconds = (nowMs - this.startMs) / 1000;
    if (nowMs - this.lastMs >= 1000 || final) {
      this.rateOpsPerSecond = ((this.okCount - this.lastOk) * 1000) / Math.max(1, nowMs - this.lastMs);
      this.lastOk = this.okCount;
      this.lastMs = nowMs;
    }
    const width = 30;
    let fraction: number;
    let where: string;
    if (this.total !== undefined) {
      fraction = this.done / Math.max(1, this.total);
      where = `${this.done.toLocaleString('en-US')}/${this.total.toLocaleString('en-US')} keys`;
    } else {
      const totalSeconds = this.warmupSeconds + this.durationSeconds;
      fraction = elapsedSeconds / Math.max(0.001, totalSeconds);
      where = `${elapsedSeconds < this.warmupSeconds ? 'warm-up' : 'measure'} ${elapsedSeconds.toFixed(0)}/${totalSeconds}s`;
    }
    const filled = Math.max(0, Math.min(width, Math.round(fraction * width)));
    const line = `${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${where} ${Math.round(this.rateOpsPerSecond).toLocaleString('en-US')} ops/s errors ${this.errorCount}`;
    if (this.interactive) process.stderr.write(final ? `\r\x1b[2K` : `\r\x1b[2K${line}`);
    else if (!final) process.stderr.write(`${line}\n`);
  }
}
