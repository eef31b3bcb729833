import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findCycles, importersFromOutside, layerViolations, readImportGraph } from '../support/import-graph.js';

/**
 * Goal: no two modules of src/ import each other, directly or round a loop (docs/ARCHITECTURE.md#layers: imports
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
    expect(findCycles(graph)).toEqual([
      ['a.ts', 'b.ts', 'c.ts', 'a.ts'],
      ['e.ts', 'e.ts'],
    ]);
    expect(
      findCycles(
        new Map([
          ['a.ts', ['b.ts']],
          ['b.ts', []],
        ]),
      ),
    ).toEqual([]);
  });

  it('src/ has none', () => {
    const graph = readImportGraph(fileURLToPath(new URL('../../src', import.meta.url)));
    // The graph is read at all: main.ts imports the engine.
    expect(graph.get('main.ts')).toContain('engine/ring-node.ts');
    const shown = findCycles(graph).map((cycle) => cycle.join(' -> '));
    expect(shown, 'import cycles among src modules: cut each one (move the shared part down a layer, or pass it in)').toEqual([]);
  });
});

/**
 * Goal: the layers of docs/ARCHITECTURE.md#layers hold in src/: the core is pure, so it imports only the core and
 * src/util; and the simulator (src/sim) is production's interfaces with a home of their own, so
 * nothing outside it in src/ imports it: main.ts and everything it wires never load virtual
 * time, the simulated network or seeded faults. (Tests, jepsen-lite and bench may: they are not
 * the product.)
 */
describe('layers', () => {
  it('names an import that breaks a rule and one into a closed folder', () => {
    const graph = new Map([
      ['core/a.ts', ['core/b.ts', 'util/c.ts', 'engine/d.ts']],
      ['core/b.ts', []],
      ['util/c.ts', []],
      ['engine/d.ts', ['sim/e.ts', 'core/b.ts']],
      ['sim/e.ts', ['engine/d.ts', 'sim/f.ts']],
      ['sim/f.ts', []],
    ]);
    expect(layerViolations(graph, [{ from: 'core', allowed: ['util'] }])).toEqual(['core/a.ts -> engine/d.ts (core imports only core, util)']);
    expect(importersFromOutside(graph, 'sim')).toEqual(['engine/d.ts -> sim/e.ts']);
  });

  it('src/ keeps them', () => {
    const graph = readImportGraph(fileURLToPath(new URL('../../src', import.meta.url)));
    // The graph is read at all: the simulator's cluster imports the engine.
    expect(graph.get('sim/sim-cluster.ts')).toContain('engine/ring-node.ts');
    expect(layerViolations(graph, [{ from: 'core', allowed: ['util'] }]), 'src/core is pure: take what you need as an argument instead').toEqual([]);
    expect(importersFromOutside(graph, 'sim'), 'production code must not import the simulator: take a port (src/ports) and let src/sim implement it').toEqual(
      [],
    );
  });
});
