import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { readImportGraph } from '../support/import-graph.js';

/**
 * Goal: the docs say what the tree is. Every file path and code name written in backquotes in
 * README.md and docs/*.md exists (a renamed file, function or setting fails here, naming the
 * doc and line); the layer table of docs/ARCHITECTURE.md is exactly what src/ imports; and code
 * comments cite docs/ARCHITECTURE.md (sections that exist, house rules it numbers), not a
 * document outside the repository.
 */

const root = fileURLToPath(new URL('../..', import.meta.url));
const architecturePath = 'docs/ARCHITECTURE.md';

/** Folders .gitignore names (build output, data, stores): not part of the tree the docs describe. */
function ignoredFolders(): Set<string> {
  const lines = readFileSync(join(root, '.gitignore'), 'utf8').split('\n');
  const folders = lines.filter((line) => line.endsWith('/')).map((line) => line.slice(0, -1));
  return new Set(['.git', ...folders]);
}

const ignored = ignoredFolders();

/** Every file of the tree, relative to the root with '/'. */
function treeFiles(): string[] {
  const walk = (folder: string): string[] =>
    readdirSync(join(root, folder)).flatMap((name) => {
      const path = folder === '' ? name : `${folder}/${name}`;
      if (ignored.has(path) || ignored.has(name)) return [];
      return statSync(join(root, path)).isDirectory() ? walk(path) : [path];
    });
  return walk('');
}

const files = treeFiles();
const folders = new Set(
  files.flatMap((file) =>
    file
      .split('/')
      .slice(0, -1)
      .map((_, index, parts) => parts.slice(0, index + 1).join('/')),
  ),
);
// This file is left out: the names it makes up to see the checks fail must not count as code.
const thisFile = relative(root, fileURLToPath(import.meta.url))
  .split('\\')
  .join('/');
const codeFiles = files.filter((file) => /\.(ts|js|mjs)$/.test(file) && !file.endsWith('.d.ts') && file !== thisFile);
const code = new Map(codeFiles.map((file) => [file, readFileSync(join(root, file), 'utf8')]));
const docs = ['README.md', ...files.filter((file) => /^docs\/[^/]+\.md$/.test(file))];
const defaultConfig = JSON.parse(readFileSync(join(root, 'config/default.json'), 'utf8')) as Record<string, unknown>;

/** Every identifier written anywhere in code or in the JSON files of the tree (config, package.json). */
const jsonTexts = files.filter((file) => file.endsWith('.json')).map((file) => readFileSync(join(root, file), 'utf8'));
const identifiers = new Set([...code.values(), ...jsonTexts].flatMap((text) => text.match(/[A-Za-z_$][\w$]*/g) ?? []));

/** Exported declarations: name to the files that export it. */
const exportedIn = new Map<string, string[]>();
for (const [file, text] of code) {
  const declared = [
    ...text.matchAll(
      /^export\s+(?:declare\s+)?(?:default\s+)?(?:abstract\s+)?(?:async\s+)?(?:class|interface|type|function\*?|const|let|enum)\s+([A-Za-z_$][\w$]*)/gm,
    ),
  ].map((match) => match[1]!);
  const listed = [...text.matchAll(/^export\s+(?:type\s+)?\{([^}]*)\}/gm)].flatMap((match) =>
    match[1]!.split(',').map((entry) =>
      entry
        .trim()
        .split(/\s+as\s+/)
        .pop()!,
    ),
  );
  for (const name of [...declared, ...listed]) exportedIn.set(name, [...(exportedIn.get(name) ?? []), file]);
}

/** True when `text` declares `member` as a method, property or accessor. */
function declaresMember(text: string, member: string): boolean {
  return new RegExp(
    `^\\s*(?:(?:public|private|protected|static|async|override|readonly|get|set)\\s+)*\\*?\\s*${member}\\??\\s*(?:<[^>]*>)?\\s*[(:=]`,
    'm',
  ).test(text);
}

/** Names declared as a function or a method anywhere in code. */
function declaresCallable(name: string): boolean {
  return [...code.values()].some((text) => new RegExp(`function\\s*\\*?\\s*${name}\\b`).test(text) || declaresMember(text, name));
}

/** The value at a dotted path of the default config, or undefined. */
function configAt(path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>(
      (value, key) => (typeof value === 'object' && value !== null && Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined),
      defaultConfig,
    );
}

/** The paths `{a,b}` in a path stands for, each one. */
function expandBraces(path: string): string[] {
  const braces = /\{([^{}]*)\}/.exec(path);
  if (braces === null) return [path];
  return braces[1]!.split(',').flatMap((choice) => expandBraces(path.slice(0, braces.index) + choice + path.slice(braces.index + braces[0].length)));
}

/** A path with `*` (one folder level) or `**` (any), as a test of one file. */
function globPattern(path: string): RegExp {
  const source = path
    .replace(/[.+^$()|[\]\\{}]/g, '\\$&')
    .replace(/\*\*\//g, '\u0000')
    .replace(/\*\*/g, '\u0001')
    .replace(/\*/g, '[^/]*')
    .replace(/\u0000/g, '(.*/)?')
    .replace(/\u0001/g, '.*');
  return new RegExp(`^${source}$`);
}

/** What is wrong with a path of the tree (with `{a,b}` and `*`), or undefined when it exists. */
function pathProblem(path: string): string | undefined {
  for (const each of expandBraces(path)) {
    if (each.includes('*')) {
      if (!files.some((file) => globPattern(each).test(file))) return `no file matches ${each}`;
    } else if (!files.includes(each) && !folders.has(each)) return `no file or folder ${each}`;
  }
  return undefined;
}

const topLevel = new Set(files.map((file) => file.split('/')[0]!));

/**
 * What is wrong with one backquoted span, or undefined when it names something that exists or
 * does not look like code (a command, a header, a JSON body, a value).
 */
function spanProblem(span: string): string | undefined {
  const first = span.split(/\s+/)[0]!.replace(/^\.\//, '');
  // A path into the tree: its first folder is one of the repository's own.
  if (first.includes('/') && topLevel.has(first.split('/')[0]!)) {
    const path = first.replace(/[#:].*$/, '').replace(/\/$/, '');
    // A place the code writes to at run time (.gitignore names it), or a path with a placeholder.
    if ([...ignored].some((folder) => `${path}/`.startsWith(`${folder}/`)) || path.includes('<')) return undefined;
    return pathProblem(path);
  }
  // A source file or document by its name alone (a .json name is as often a file the code writes).
  if (/^[\w.-]+\.(ts|js|mjs|md)$/.test(span)) {
    return files.some((file) => basename(file) === span) ? undefined : `no file named ${span}`;
  }
  // Error codes, wherever they stand in the span.
  const codes = span.match(/\bKV_[A-Z0-9_]*[A-Z0-9]\b/g) ?? [];
  const unknownCode = codes.find((errorCode) => !identifiers.has(errorCode));
  if (unknownCode !== undefined) return `no error code ${unknownCode} in the code`;
  if (codes.length > 0) return undefined;
  // A setting: a dotted path whose first part is a section of config/default.json. Some sections
  // share their name with a part of /status or of the client's options: every part of such a
  // path is a name in code.
  const setting = /^([a-z]\w*)(\.[A-Za-z]\w*)+$/.exec(span);
  if (setting !== null && Object.hasOwn(defaultConfig, setting[1]!)) {
    if (configAt(span) !== undefined || span.split('.').every((part) => identifiers.has(part))) return undefined;
    return `no setting ${span} in config/default.json, nor a name ${span.split('.').find((part) => !identifiers.has(part))} in code`;
  }
  // Type.member or Type.member(...): an exported type with that member.
  const member = /^([A-Z][A-Za-z0-9]*)\.([A-Za-z_$][\w$]*)(\(.*\))?$/.exec(span);
  if (member !== null) {
    const owners = exportedIn.get(member[1]!) ?? [];
    if (owners.length === 0) return `nothing exports ${member[1]}`;
    return owners.some((file) => declaresMember(code.get(file)!, member[2]!)) ? undefined : `${member[1]} (${owners.join(', ')}) declares no ${member[2]}`;
  }
  // A type or class name.
  if (/^[A-Z][a-z][A-Za-z0-9]*$/.test(span)) return exportedIn.has(span) ? undefined : `nothing exports ${span}`;
  // A call of a camelCase name: a function or method of that name (a plain word such as
  // `inject()` is as often a library's).
  const call = /^([a-z][a-z0-9]*[A-Z][\w$]*)\(.*\)$/.exec(span);
  if (call !== null) return declaresCallable(call[1]!) ? undefined : `no function or method ${call[1]}`;
  // A camelCase name (a function, a field, a setting): written somewhere in code or the JSON files.
  if (/^[a-z][a-z0-9]*[A-Z][\w$]*$/.test(span)) return identifiers.has(span) ? undefined : `no name ${span} in code or the JSON files`;
  return undefined;
}

/** The backquoted spans of a markdown text outside fenced blocks, with their line numbers. */
function spansOf(text: string): { span: string; line: number }[] {
  const lines = text.split('\n');
  let fenced = false;
  return lines.flatMap((line, index) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return [];
    }
    if (fenced) return [];
    return [...line.matchAll(/`([^`]+)`/g)].map((match) => ({ span: match[1]!, line: index + 1 }));
  });
}

/** GitHub's anchor of a heading. */
function anchorOf(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

/** The anchors of a markdown text's headings. */
function anchorsOf(text: string): Set<string> {
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((match) => anchorOf(match[1]!.trim())));
}

/** The lines of a markdown section, from its `## ` heading to the next. */
function section(text: string, heading: string): string {
  const start = text.indexOf(`\n## ${heading}\n`);
  expect(start, `${architecturePath} has a section "## ${heading}"`).toBeGreaterThanOrEqual(0);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end === -1 ? undefined : end);
}

describe('docs: backquoted paths and names', () => {
  it('tells a name that exists from one that does not', () => {
    expect(spanProblem('src/engine/ring-node.ts')).toBeUndefined();
    expect(spanProblem('src/engine/no-such-role.ts')).toBe('no file or folder src/engine/no-such-role.ts');
    expect(spanProblem('test/sim/*-scale.sim.test.ts')).toBeUndefined();
    expect(spanProblem('test/sim/*-nothing.sim.test.ts')).toBe('no file matches test/sim/*-nothing.sim.test.ts');
    expect(spanProblem('jepsen-lite/test/**/*.test.ts')).toBeUndefined();
    expect(spanProblem('src/config/{schema,validate}.ts')).toBeUndefined();
    expect(spanProblem('src/config/{schema,validation}.ts')).toBe('no file or folder src/config/validation.ts');
    expect(spanProblem('ring-node.ts')).toBeUndefined();
    expect(spanProblem('ring-nodes.ts')).toBe('no file named ring-nodes.ts');
    expect(spanProblem('409 KV_TOO_MANY_SIBLINGS')).toBeUndefined();
    expect(spanProblem('KV_TOO_MANY_SIBLING')).toBe('no error code KV_TOO_MANY_SIBLING in the code');
    expect(spanProblem('limits.maxSiblings')).toBeUndefined();
    expect(spanProblem('limits.maxSibling')).toBe('no setting limits.maxSibling in config/default.json, nor a name maxSibling in code');
    expect(spanProblem('.ci/node/<major>/')).toBeUndefined();
    expect(spanProblem('PeerService.handle')).toBeUndefined();
    expect(spanProblem('PeerService.handles()')).toBeUndefined();
    expect(spanProblem('PeerService.answer')).toMatch(/^PeerService \(src\/engine\/peer-service.ts\) declares no answer$/);
    expect(spanProblem('SimCluster')).toBeUndefined();
    expect(spanProblem('SimClusters')).toBe('nothing exports SimClusters');
    expect(spanProblem('planWrite')).toBeUndefined();
    expect(spanProblem('planWrites')).toBe('no name planWrites in code or the JSON files');
    expect(spanProblem('RingClient.list(bucket)')).toBeUndefined();
    expect(spanProblem('planRead()')).toBeUndefined();
    expect(spanProblem('planReading()')).toBe('no function or method planReading');
    // Not code: commands, headers, values, URLs.
    for (const span of ['npm test', 'x-ringkv-context', '"quorum"', '/kv/demo/a%2Fb', 'w=quorum', 'GET /status'])
      expect(spanProblem(span), span).toBeUndefined();
  });

  it.each(docs)('%s names only what exists', (doc) => {
    const problems = spansOf(readFileSync(join(root, doc), 'utf8')).flatMap(({ span, line }) => {
      const problem = spanProblem(span);
      return problem === undefined ? [] : [`${doc}:${line}: \`${span}\`: ${problem}`];
    });
    expect(problems, 'rename the doc to what the code says now (or drop the mention)').toEqual([]);
  });
});

/** A layer's imports: the other layers of src/ (src/main.ts as 'main.ts'), node: built-ins and packages. */
interface LayerImports {
  readonly imports: string[];
  readonly builtins: string[];
  readonly packages: string[];
}

/** The layer of a module of src/ ('core/ring/ring.ts' is 'core'; 'main.ts' is its own). */
function layerOf(module: string): string {
  return module.split('/')[0]!;
}

/** The package a bare specifier loads ('@scope/name/sub' is '@scope/name'). */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

/** What each layer of src/ imports, read from the code. */
function realLayers(): Record<string, LayerImports> {
  const layers: Record<string, { imports: Set<string>; builtins: Set<string>; packages: Set<string> }> = {};
  const entry = (layer: string) => (layers[layer] ??= { imports: new Set(), builtins: new Set(), packages: new Set() });
  for (const [module, targets] of readImportGraph(join(root, 'src'))) {
    const layer = entry(layerOf(module));
    for (const target of targets) if (layerOf(target) !== layerOf(module)) layer.imports.add(layerOf(target));
  }
  for (const file of codeFiles.filter((path) => path.startsWith('src/') && path.endsWith('.ts'))) {
    const layer = entry(layerOf(relative('src', file).split('\\').join('/')));
    for (const { fileName } of ts.preProcessFile(code.get(file)!, true, true).importedFiles) {
      if (fileName.startsWith('.')) continue;
      if (fileName.startsWith('node:')) layer.builtins.add(fileName);
      else layer.packages.add(packageOf(fileName));
    }
  }
  return Object.fromEntries(
    Object.entries(layers).map(([name, layer]) => [
      name,
      {
        imports: [...layer.imports].sort(),
        builtins: [...layer.builtins].sort(),
        packages: [...layer.packages].sort(),
      },
    ]),
  );
}

/** The layer table of docs/ARCHITECTURE.md: its header names the columns, each cell lists backquoted names or '—'. */
function documentedLayers(text: string): Record<string, LayerImports> {
  const rows = section(text, 'Layers')
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) =>
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  const [header, , ...body] = rows;
  expect(header, `${architecturePath} has a layer table in "## Layers"`).toBeDefined();
  const column = (name: string): number => {
    const index = header!.indexOf(name);
    expect(index, `the layer table has a column "${name}"`).toBeGreaterThanOrEqual(0);
    return index;
  };
  const [layer, imports, builtins, packages] = [column('layer'), column('imports from src/'), column('node: built-ins'), column('packages')];
  const names = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((match) => match[1]!).sort();
  return Object.fromEntries(
    body.map((cells) => [
      names(cells[layer]!)[0]!.replace(/^src\//, ''),
      {
        imports: names(cells[imports]!),
        builtins: names(cells[builtins]!),
        packages: names(cells[packages]!),
      },
    ]),
  );
}

describe('docs: the layer table', () => {
  it('reads a table by its column names', () => {
    const table = [
      '## Layers',
      '',
      '| packages | layer | node: built-ins | imports from src/ |',
      '| - | - | - | - |',
      '| `undici` | `src/client` | — | — |',
      '| — | `src/core` | `node:crypto` | `util` |',
      '',
      '## Next',
    ].join('\n');
    expect(documentedLayers(`\n${table}`)).toEqual({
      client: { imports: [], builtins: [], packages: ['undici'] },
      core: { imports: ['util'], builtins: ['node:crypto'], packages: [] },
    });
  });

  it('is what src/ imports', () => {
    const real = realLayers();
    // The code is read at all: the engine imports the core.
    expect(real.engine?.imports).toContain('core');
    expect(
      documentedLayers(readFileSync(join(root, architecturePath), 'utf8')),
      `the layer table of ${architecturePath} (+ lines) must list what each layer of src/ imports (- lines): update the row`,
    ).toEqual(real);
  });
});

describe('docs: citations', () => {
  const architecture = readFileSync(join(root, architecturePath), 'utf8');
  const anchors = anchorsOf(architecture);
  const houseRules = section(architecture, 'House rules').match(/^\d+\. /gm)?.length ?? 0;

  it('code cites docs/ARCHITECTURE.md: sections that exist, house rules it numbers, no document outside the repository', () => {
    expect(houseRules, 'the house rules are a numbered list').toBeGreaterThan(5);
    const problems: string[] = [];
    for (const [file, text] of code) {
      const lineOf = (index: number): number => text.slice(0, index).split('\n').length;
      for (const match of text.matchAll(/DESIGN\.md|DESIGN (?:house )?rule/g))
        problems.push(`${file}:${lineOf(match.index)}: cites ${match[0]}, outside the repository: cite the section of ${architecturePath} instead`);
      for (const match of text.matchAll(/house rule (\d+)/gi)) {
        const number = Number(match[1]);
        if (number < 1 || number > houseRules)
          problems.push(`${file}:${lineOf(match.index)}: house rule ${number}, but ${architecturePath} numbers ${houseRules}`);
        if (!text.slice(match.index, match.index + 200).includes(`${architecturePath}#house-rules`))
          problems.push(`${file}:${lineOf(match.index)}: house rule ${number} without its link, ${architecturePath}#house-rules`);
      }
    }
    for (const [file, text] of [...code, ...docs.map((doc) => [doc, readFileSync(join(root, doc), 'utf8')] as const)]) {
      for (const match of text.matchAll(/ARCHITECTURE\.md#([\w-]+)/g))
        if (!anchors.has(match[1]!)) problems.push(`${file}: cites ${match[0]}, a section ${architecturePath} does not have`);
    }
    for (const doc of docs) {
      const text = readFileSync(join(root, doc), 'utf8');
      for (const match of text.matchAll(/\]\(#([\w-]+)\)/g))
        if (!anchorsOf(text).has(match[1]!)) problems.push(`${doc}: links #${match[1]}, a heading it does not have`);
    }
    expect(problems).toEqual([]);
  });
});
