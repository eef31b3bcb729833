import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findCycles, readImportGraph } from '../support/import-graph.js';

/**
 * Goal: no two modules of src/ import each other, directly or round a loop (DESIGN.md: imports
 * point one way, down the layers, and one role per engine module). A cycle makes module load
 * order matter and the roles impossible to read apart; this check names every cycle it finds.
 */
describe('import cycles', () => {
  it('finds a cycle, a self-import and the shortest loop through a component', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts', 'd.ts']],
      ['c.ts', ['a.ts']],
      ['d.ts', []],
      ['e.ts', ['e.ts']],
    ]);
    expect(findCycles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts', 'a.ts'], ['e.ts', 'e.ts']]);
    expect(findCycles(new Map([['a.ts', ['b.ts']], ['b.ts', []]]))).toEqual([]);
  });

  it('src/ has none', () => {
    const graph = readImportGraph(fileURLToPath(new URL('../../src', import.meta.url)));
    // The graph is read at all: main.ts imports the engine.
    expect(graph.get('main.ts')).toContain('engine/ring-node.ts');
    const shown = findCycles(graph).map((cycle) => cycle.join(' -> '));
    expect(shown, 'import cycles among src modules: cut each one (move the shared part down a layer, or pass it in)').toEqual([]);
  });
});
