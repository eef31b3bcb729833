import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/**
 * The import graph of a source tree and its cycles, for the import-cycle check of `npm test`.
 * It reads each file with the TypeScript compiler's pre-processor (no type checking, so it is
 * quick), keeps only relative imports that resolve to a file of the tree, and counts type-only
 * imports too: a cycle through types is still two modules that cannot be understood apart, and
 * the layers of docs/ARCHITECTURE.md#layers point one way.
 */

/** Module name (path relative to the root, with '/') to the modules it imports. */
export type ImportGraph = ReadonlyMap<string, readonly string[]>;

function sourceFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The file a relative specifier names: the '.js' of an ESM import is the '.ts' source. */
function resolveSpecifier(from: string, specifier: string, files: ReadonlySet<string>): string | undefined {
  if (!specifier.startsWith('.')) return undefined;
  const base = resolve(dirname(from), specifier);
  const candidates = [base.replace(/\.js$/, '.ts'), `${base}.ts`, join(base, 'index.ts')];
  return candidates.find((candidate) => files.has(candidate));
}

/** Reads every .ts file under `root` into an import graph. */
export function readImportGraph(root: string): ImportGraph {
  const files = sourceFiles(root);
  const known = new Set(files);
  const name = (path: string): string => relative(root, path).split('\\').join('/');
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = importedFiles.map((entry) => resolveSpecifier(file, entry.fileName, known)).filter((target) => target !== undefined);
    graph.set(name(file), [...new Set(targets.map(name))].sort());
  }
  return graph;
}

/**
 * The cycles of a graph: each strongly connected component of more than one module (or a module
 * that imports itself), as one cycle through it, so a failure names a path to cut. Tarjan's
 * algorithm, iterative so a deep tree cannot overflow the stack.
 */
export function findCycles(graph: ImportGraph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const start of [...graph.keys()].sort()) {
    if (index.has(start)) continue;
    const work: { node: string; next: number }[] = [{ node: start, next: 0 }];
    index.set(start, counter);
    low.set(start, counter);
    counter += 1;
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const edges = graph.get(frame.node) ?? [];
      if (frame.next < edges.length) {
        const target = edges[frame.next]!;
        frame.next += 1;
        if (!index.has(target)) {
          index.set(target, counter);
          low.set(target, counter);
          counter += 1;
          stack.push(target);
          onStack.add(target);
          work.push({ node: target, next: 0 });
        } else if (onStack.has(target)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(target)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfImport = (graph.get(frame.node) ?? []).includes(frame.node);
        if (component.length > 1 || selfImport) components.push(component.sort());
      }
    }
  }
  return components.map((component) => cycleThrough(graph, component));
}

/** One closed path through a strongly connected component, from its first module back to it. */
function cycleThrough(graph: ImportGraph, component: readonly string[]): string[] {
  const inside = new Set(component);
  const start = component[0]!;
  // Breadth-first from start's imports back to start: the shortest cycle through it.
  const previous = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift()!;
    for (const target of graph.get(node) ?? []) {
      if (!inside.has(target) || previous.has(target)) continue;
      previous.set(target, node);
      if (target === start) queue.length = 0;
      else queue.push(target);
    }
  }
  const between: string[] = [];
  for (let node = previous.get(start)!; node !== start; node = previous.get(node)!) between.push(node);
  return [start, ...between.reverse(), start];
}

/** A layering rule: modules under `from` may import only modules under one of `allowed` (folders relative to the root, with '/'). */
export interface LayerRule {
  readonly from: string;
  readonly allowed: readonly string[];
}

/** True when `module` lies under `folder` ('' is the whole tree). */
function isUnder(module: string, folder: string): boolean {
  return folder === '' || module.startsWith(`${folder}/`);
}

/**
 * The imports that break a rule, as 'importer -> imported (rule)'. A module may always import a
 * module of its own `from` folder; a folder named in no rule's `from` is checked by no rule.
 */
export function layerViolations(graph: ImportGraph, rules: readonly LayerRule[]): string[] {
  const violations: string[] = [];
  for (const [module, targets] of graph) {
    for (const rule of rules) {
      if (!isUnder(module, rule.from)) continue;
      for (const target of targets) {
        if (isUnder(target, rule.from) || rule.allowed.some((folder) => isUnder(target, folder))) continue;
        violations.push(`${module} -> ${target} (${rule.from} imports only ${[rule.from, ...rule.allowed].join(', ')})`);
      }
    }
  }
  return violations.sort();
}

/**
 * The modules outside `folder` that import a module inside it: a folder only its own modules may
 * use (src/sim: production never loads the simulator).
 */
export function importersFromOutside(graph: ImportGraph, folder: string): string[] {
  return [...graph]
    .filter(([module]) => !isUnder(module, folder))
    .flatMap(([module, targets]) => targets.filter((target) => isUnder(target, folder)).map((target) => `${module} -> ${target}`))
    .sort();
}
