import { describe, expect, it } from 'vitest';
import { renderReport } from '../src/report-html.js';
import { HistoryBuilder } from './history-builder.js';

/** report.html must stand alone (no script or stylesheet from elsewhere) and show points, rates and fault shading. */
describe('the HTML report', () => {
  it('draws latency points coloured by outcome, rate lines and the nemesis interval, all inline', () => {
    const history = new HistoryBuilder();
    history.fault(1000, 3000, { kind: 'partition', grudge: 'halves' });
    history.op(0, 12, { process: 0, f: 'add', key: 's0', value: 0 }, { type: 'ok' });
    history.op(1500, 2500, { process: 1, f: 'add', key: 's0', value: 1 }, { type: 'info' });
    history.op(2000, 2004, { process: 2, f: 'add', key: 's0', value: 2 }, { type: 'fail' });
    history.op(3500, 3510, { process: 3, f: 'read', key: 's0' }, { type: 'ok' });
    const html = renderReport({
      title: 'test <run>',
      history: history.build(),
      results: { valid: false, lost: 1, checkers: { set: { valid: false } } },
      settings: { seed: 1 },
    });
    expect(html).toContain('<svg');
    expect(html).toContain('test &lt;run&gt;');
    expect(html).toContain('INVALID');
    expect(html).toContain('partition halves');
    expect(html).toContain('fill="#d62728"');
    expect(html).toContain('fill="#ff7f0e"');
    expect(html).toContain('<polyline');
    expect(html).toMatch(/add: latency/);
    expect(html).toMatch(/read: latency/);
    expect(html).not.toMatch(/<script[^>]*src=|<link[^>]*href=|https?:\/\/(?!www\.w3\.org)/);
  });
});
