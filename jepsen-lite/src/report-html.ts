/**
 * report.html: Jepsen's latency and rate plots for one run, as a single self-contained file
 * (inline SVG and CSS, no script, no CDN), so it opens from disk in any browser. Each client
 * operation gets a latency scatter (invocation time against latency, log scale, coloured by
 * outcome) and a rate plot (completions per second by outcome); nemesis intervals are shaded
 * on both, as in Jepsen's plots.
 */
import { type Interval, type Operation, faultIntervals, pairOperations } from './history.js';

/** What the report shows besides the history. */
export interface ReportInput {
  readonly title: string;
  readonly history: readonly Operation[];
  /** results.json as written. */
  readonly results: { readonly valid: boolean } & Record<string, unknown>;
  /** The run's settings, shown as a table. */
  readonly settings: Readonly<Record<string, unknown>>;
}

const outcomeColours: Readonly<Record<string, string>> = { ok: '#1f77b4', fail: '#d62728', info: '#ff7f0e' };
const width = 960;
const height = 240;
const margin = { left: 60, right: 16, top: 22, bottom: 34 };

function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function faultColour(label: string): string {
  if (label.startsWith('partition')) return '#f2b8b5';
  if (label.startsWith('kill')) return '#c9b8ef';
  if (label.startsWith('pause')) return '#b9e3bd';
  return '#dddddd';
}

interface Frame {
  readonly x: (seconds: number) => number;
  readonly plotWidth: number;
  readonly plotHeight: number;
}

function frame(durationS: number): Frame {
  const plotWidth = width - margin.left - margin.right;
  const plotHeight = height - margin.top - margin.bottom;
  return { x: (seconds) => margin.left + (seconds / Math.max(durationS, 1e-9)) * plotWidth, plotWidth, plotHeight };
}

function niceStep(span: number, targetTicks: number): number {
  const raw = span / Math.max(1, targetTicks);
  const power = 10 ** Math.floor(Math.log10(raw));
  const scaled = raw / power;
  return (scaled <= 1 ? 1 : scaled <= 2 ? 2 : scaled <= 5 ? 5 : 10) * power;
}

function shading(intervals: readonly Interval[], durationS: number, view: Frame): string {
  return intervals
    .map((interval) => {
      const left = view.x(interval.startMs / 1000);
      const right = view.x(Math.min(interval.endMs / 1000, durationS));
      const colour = faultColour(interval.label);
      return (
        `<rect x="${left.toFixed(1)}" y="${margin.top}" width="${Math.max(1, right - left).toFixed(1)}" height="${view.plotHeight}" fill="${colour}" fill-opacity="0.55"><title>${escapeHtml(interval.label)}</title></rect>` +
        `<text x="${(left + 2).toFixed(1)}" y="${margin.top - 6}" font-size="10" fill="#555">${escapeHtml(interval.label)}</text>`
      );
    })
    .join('');
}

function timeAxis(durationS: number, view: Frame): string {
  const step = niceStep(durationS, 10);
  const parts: string[] = [];
  for (let seconds = 0; seconds <= durationS + 1e-9; seconds += step) {
    const x = view.x(seconds).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${margin.top + view.plotHeight}" y2="${margin.top + view.plotHeight + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x}" y="${margin.top + view.plotHeight + 16}" font-size="10" text-anchor="middle">${Number(seconds.toFixed(3))}</text>`);
  }
  parts.push(`<text x="${margin.left + view.plotWidth / 2}" y="${height - 4}" font-size="11" text-anchor="middle">time (s)</text>`);
  return parts.join('');
}

function chart(title: string, body: string): string {
  return `<figure><figcaption>${escapeHtml(title)}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${body}</svg></figure>`;
}

interface Point {
  readonly seconds: number;
  readonly latencyMs: number;
  readonly outcome: string;
}

function latencyChart(f: string, points: readonly Point[], intervals: readonly Interval[], durationS: number): string {
  const view = frame(durationS);
  const latencies = points.map((point) => Math.max(point.latencyMs, 0.1));
  const lowPower = Math.floor(Math.log10(Math.min(...latencies, 1)));
  const highPower = Math.max(lowPower + 1, Math.ceil(Math.log10(Math.max(...latencies, 10))));
  const y = (latencyMs: number): number =>
    margin.top + view.plotHeight - ((Math.log10(Math.max(latencyMs, 0.1)) - lowPower) / (highPower - lowPower)) * view.plotHeight;
  const parts: string[] = [shading(intervals, durationS, view)];
  for (let power = lowPower; power <= highPower; power++) {
    const tickY = y(10 ** power).toFixed(1);
    parts.push(`<line x1="${margin.left}" x2="${margin.left + view.plotWidth}" y1="${tickY}" y2="${tickY}" stroke="#e4e4e4"/>`);
    parts.push(
      `<text x="${margin.left - 6}" y="${tickY}" font-size="10" text-anchor="end" dominant-baseline="middle">${10 ** power >= 1 ? 10 ** power : (10 ** power).toFixed(1)}</text>`,
    );
  }
  // Draw ok first so the rarer fail and info points stay visible on top.
  const order = ['ok', 'fail', 'info'];
  for (const outcome of order) {
    const circles = points
      .filter((point) => point.outcome === outcome)
      .map((point) => `<circle cx="${view.x(point.seconds).toFixed(1)}" cy="${y(point.latencyMs).toFixed(1)}" r="1.8"/>`)
      .join('');
    parts.push(`<g fill="${outcomeColours[outcome]}" fill-opacity="0.7">${circles}</g>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${view.plotWidth}" height="${view.plotHeight}" fill="none" stroke="#333"/>`);
  parts.push(timeAxis(durationS, view));
  parts.push(
    `<text x="14" y="${margin.top + view.plotHeight / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 14 ${margin.top + view.plotHeight / 2})">latency (ms, log)</text>`,
  );
  return chart(`${f}: latency of each operation by invocation time`, parts.join(''));
}

function rateChart(f: string, points: readonly Point[], intervals: readonly Interval[], durationS: number): string {
  const view = frame(durationS);
  const bucketS = Math.max(1, niceStep(durationS, 120));
  const buckets = Math.max(1, Math.ceil(durationS / bucketS));
  const series = new Map<string, number[]>(['ok', 'fail', 'info'].map((outcome) => [outcome, new Array<number>(buckets).fill(0)]));
  for (const point of points) {
    const list = series.get(point.outcome);
    if (list === undefined) continue;
    const bucket = Math.min(buckets - 1, Math.floor(point.seconds / bucketS));
    list[bucket] = (list[bucket] ?? 0) + 1 / bucketS;
  }
  const highest = Math.max(1, ...[...series.values()].flat());
  const step = niceStep(highest, 5);
  const top = Math.ceil(highest / step) * step;
  const y = (rate: number): number => margin.top + view.plotHeight - (rate / top) * view.plotHeight;
  const parts: string[] = [shading(intervals, durationS, view)];
  for (let rate = 0; rate <= top + 1e-9; rate += step) {
    const tickY = y(rate).toFixed(1);
    parts.push(`<line x1="${margin.left}" x2="${margin.left + view.plotWidth}" y1="${tickY}" y2="${tickY}" stroke="#e4e4e4"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${tickY}" font-size="10" text-anchor="end" dominant-baseline="middle">${Number(rate.toFixed(2))}</text>`);
  }
  for (const [outcome, list] of series) {
    if (list.every((rate) => rate === 0)) continue;
    const coordinates = list.map((rate, bucket) => `${view.x((bucket + 0.5) * bucketS).toFixed(1)},${y(rate).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${coordinates}" fill="none" stroke="${outcomeColours[outcome]}" stroke-width="1.6"/>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${view.plotWidth}" height="${view.plotHeight}" fill="none" stroke="#333"/>`);
  parts.push(timeAxis(durationS, view));
  parts.push(
    `<text x="14" y="${margin.top + view.plotHeight / 2}" font-size="11" text-anchor="middle" transform="rotate(-90 14 ${margin.top + view.plotHeight / 2})">ops/s</text>`,
  );
  return chart(`${f}: completions per second by outcome (${bucketS} s buckets)`, parts.join(''));
}

function table(rows: readonly (readonly unknown[])[], header?: readonly string[]): string {
  const cell = (value: unknown): string => escapeHtml(typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));
  const head = header === undefined ? '' : `<tr>${header.map((name) => `<th>${escapeHtml(name)}</th>`).join('')}</tr>`;
  return `<table>${head}${rows.map((row) => `<tr>${row.map((value) => `<td>${cell(value)}</td>`).join('')}</tr>`).join('')}</table>`;
}

/** Renders the report. */
export function renderReport(input: ReportInput): string {
  const intervals = faultIntervals(input.history);
  const pointsByF = new Map<string, Point[]>();
  let lastMs = 0;
  for (const { invoke, completion } of pairOperations(input.history)) {
    if (typeof invoke.process !== 'number' || completion === undefined || completion.type === 'invoke') continue;
    const list = pointsByF.get(invoke.f) ?? [];
    list.push({ seconds: invoke.timeMs / 1000, latencyMs: completion.timeMs - invoke.timeMs, outcome: completion.type });
    pointsByF.set(invoke.f, list);
    lastMs = Math.max(lastMs, completion.timeMs);
  }
  const durationS = Math.max(1, lastMs / 1000);
  const charts = [...pointsByF.keys()]
    .sort()
    .map((f) => latencyChart(f, pointsByF.get(f) ?? [], intervals, durationS) + rateChart(f, pointsByF.get(f) ?? [], intervals, durationS))
    .join('');
  const { checkers, ...headline } = input.results as { checkers?: unknown } & Record<string, unknown>;
  const nemesisRows = input.history
    .filter((operation) => operation.process === 'nemesis' && operation.type !== 'invoke')
    .map((operation) => [`${(operation.timeMs / 1000).toFixed(2)} s`, operation.f, operation.value ?? '', operation.error ?? '']);
  const legend = ['ok', 'fail', 'info']
    .map((outcome) => `<span class="swatch" style="background:${outcomeColours[outcome]}"></span>${outcome}`)
    .concat(['partition', 'kill', 'pause'].map((kind) => `<span class="swatch" style="background:${faultColour(kind)}"></span>${kind}`))
    .join(' ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} h2{font-size:16px;margin-top:28px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;color:#fff;font-weight:bold}
.valid{background:#2e7d32}.invalid{background:#c62828}
table{border-collapse:collapse;font-size:12px;margin:6px 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top;max-width:640px;overflow-wrap:anywhere}
figure{margin:12px 0} figcaption{font-size:13px;font-weight:600}
.swatch{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
pre{font-size:11px;background:#f6f6f6;padding:8px;overflow:auto;max-height:420px}
</style></head><body>
<h1>${escapeHtml(input.title)}</h1>
<p><span class="verdict ${input.results.valid ? 'valid' : 'invalid'}">${input.results.valid ? 'valid' : 'INVALID'}</span></p>
<h2>Results</h2>
${table(Object.entries(headline))}
<h2>Settings</h2>
${table(Object.entries(input.settings))}
<h2>Latency and rate</h2>
<p>Legend: ${legend}</p>
${charts || '<p>No client operations completed.</p>'}
<h2>Nemesis</h2>
${nemesisRows.length === 0 ? '<p>No faults.</p>' : table(nemesisRows, ['time', 'event', 'fault', 'error'])}
<h2>Checkers</h2>
<pre>${escapeHtml(JSON.stringify(checkers ?? {}, null, 2))}</pre>
</body></html>
`;
}
