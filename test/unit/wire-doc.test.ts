import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { protocolVersions } from '../../src/core/wire/frames.js';
import { replyMessages, requestMessages, retiredTags } from '../../src/core/wire/message-table.js';

/**
 * Goal: docs/WIRE.md describes the message table the code has: a row for every request and
 * reply entry with its tag, the retired tags, and the protocol versions this build speaks.
 */
const doc = readFileSync(new URL('../../docs/WIRE.md', import.meta.url), 'utf8');

/** The text of the section under a heading, up to the next heading. */
function section(heading: string): string {
  const start = doc.indexOf(`### ${heading}\n`);
  expect(start, `docs/WIRE.md has no section "### ${heading}"`).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n#', start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

describe('docs/WIRE.md', () => {
  it.each([
    ['Requests', requestMessages],
    ['Replies', replyMessages],
  ] as const)('lists every entry of the %s table with its tag, and nothing else', (heading, table) => {
    const text = section(heading);
    const rows = [...text.matchAll(/^\| (\d+) \| `([a-z-]+)` \|/gm)].map(([, tag, name]) => `${tag} ${name}`).sort();
    expect(rows).toEqual(
      Object.values(table)
        .map((entry) => `${entry.tag} ${entry.name}`)
        .sort(),
    );
  });

  it('names the retired tags and the protocol versions this build speaks', () => {
    expect(doc).toContain(`Retired tags, never to be used again: requests ${retiredTags.request.join(', ')}; replies ${retiredTags.reply.join(', ')}`);
    expect(doc).toContain(`today \`{ min: ${protocolVersions.min}, max: ${protocolVersions.max} }\``);
  });
});
