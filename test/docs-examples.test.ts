// The documentation's examples run as tests, so they cannot drift from the code: the js/ts
// blocks of README.md and the `@example` sections of lib/**/*.ts (test/helpers/doc_examples.ts
// finds them).
//
// Each example runs in a scope of its own (a fresh async function; `await` works at its top
// level), with `require('siglip-kernels')` and `import … from 'siglip-kernels'` resolving to
// this repository's lib/. TypeScript is stripped with typescript's transpileModule.
//
// - REPL blocks (lines starting with `> `): the inputs run one after another in one scope, as
//   in the REPL; an input that is an expression has its value printed with util.inspect, as
//   the REPL does, and compared with the lines shown after it, when there are any. Numbers
//   match to 6 significant digits (the last bits of a float32 result depend on the SIMD kernel
//   set). An input whose comment starts with `// varies` runs but its output is not compared.
// - lib examples are fragments: they use the API's names unqualified (every export of lib/ is
//   in scope) and the usual variables (`image`, `text`, `x`, `y`, `grad`, `lr`, `logitScale`,
//   `n`, `d`, `imageEmbeddings`, `textEmbeddings`, `rawImage`, `rawText`), which `fixtures` below provides, small.
// - An example that needs a GPU or MPI (`// requires: cuda`, `// requires: mpi`, or implied:
//   see requirementsOf) is skipped, with the reason in its title, where that is unavailable.
//   MPI counts as available inside an MPI job (OMPI_COMM_WORLD_SIZE or PMI_SIZE set).
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { inspect } from 'node:util';
import { runInThisContext } from 'node:vm';
import * as ts from 'typescript';

import * as lib from '../lib/index';
import { type DocExample, extractMarkdownExamples, extractTsdocExamples, requirementsOf } from './helpers/doc_examples';

const repoRoot = path.resolve(__dirname, '..');

function readExamples(): DocExample[] {
  const examples = extractMarkdownExamples(readFileSync(path.join(repoRoot, 'README.md'), 'utf8'), 'README.md');
  const libDir = path.join(repoRoot, 'lib');
  // lib/ and its folders (lib/ring/): every module's examples.
  const files = readdirSync(libDir, { recursive: true }).map(String).filter((f) => f.endsWith('.ts'));
  for (const file of files.map((f) => f.split(path.sep).join('/')).sort()) {
    examples.push(...extractTsdocExamples(readFileSync(path.join(libDir, file), 'utf8'), `lib/${file}`));
  }
  return examples;
}

/** Why a requirement cannot be met here, or null when it can. */
function unavailable(requirement: string): string | null {
  switch (requirement) {
    case 'cuda': {
      const cuda = lib.backendInfo().cuda;
      return cuda.available ? null : `no CUDA: ${cuda.reason}`;
    }
    case 'mpi':
      return process.env.OMPI_COMM_WORLD_SIZE !== undefined || process.env.PMI_SIZE !== undefined ? null : 'not inside an MPI job';
    default:
      return `unknown requirement "${requirement}"`;
  }
}

const compilerOptions: ts.CompilerOptions = { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true };

function transpile(code: string): string {
  return ts.transpileModule(code, { compilerOptions, fileName: 'example.ts', reportDiagnostics: false }).outputText;
}

/** `require` for the examples: 'siglip-kernels' is this repository's lib/ ('siglip-kernels/tfjs' its lib/tfjs.ts). */
function exampleRequire(id: string): unknown {
  if (id === 'siglip-kernels') return lib;
  if (id === 'siglip-kernels/tfjs') return require('../lib/tfjs');
  return require(id);
}

/** A console whose output is kept (shown when the example fails) instead of printed. */
function capturingConsole(output: string[]): Console {
  const write = (...args: unknown[]): void => {
    output.push(args.map((a) => (typeof a === 'string' ? a : inspect(a))).join(' '));
  };
  return { ...console, log: write, info: write, warn: write, error: write, debug: write };
}

/** Small inputs under the names the lib examples use. */
function fixtures(cuda: boolean): Record<string, unknown> {
  const n = 4;
  const d = 3;
  const imageEmbeddings = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i));
  const textEmbeddings = Float32Array.from({ length: n * d }, (_, i) => Math.cos(i));
  const image = lib.normalizeRows(lib.matrix(imageEmbeddings, n, d)).normalized;
  const text = lib.normalizeRows(lib.matrix(textEmbeddings, n, d)).normalized;
  const rawImage = lib.matrix(imageEmbeddings, n, d);
  const rawText = lib.matrix(textEmbeddings, n, d);
  const base = { n, d, imageEmbeddings, textEmbeddings, rawImage, rawText, image, text, lr: 0.01, logitScale: Math.log(10) };
  if (!cuda) return { ...base, x: image, y: text, grad: lib.sigmoidLossWithGradSync(image, text).grad };
  const x = lib.DeviceMatrix.fromHost(image.data, n, d);
  const y = lib.DeviceMatrix.fromHost(text.data, n, d);
  return { ...base, x, y, grad: lib.sigmoidLossWithGradSync(x, y).grad };
}

type Compiled = (require: (id: string) => unknown, exports: object, module: object, console: Console, api: object, given: object, show: (index: number, value: unknown) => void) => Promise<void>;

function compile(body: string, filename: string, names: { api: string[]; given: string[] }): Compiled {
  const prelude = [
    names.api.length > 0 ? `const { ${names.api.join(', ')} } = __api;` : '',
    names.given.length > 0 ? `let { ${names.given.join(', ')} } = __given;` : '',
  ].join('\n');
  const source = `(async function (require, exports, module, console, __api, __given, __show) {\n${prelude}\n{\n${body}\n}\n})`;
  return runInThisContext(source, { filename }) as Compiled;
}

/**
 * Whether `actual` (util.inspect of a value) matches the output shown: the same text, or the
 * same text around numbers that agree to 6 significant digits.
 */
function matchesShown(actual: string, shown: string): boolean {
  if (actual === shown) return true;
  const number = /-?\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi;
  if (actual.replace(number, '#') !== shown.replace(number, '#')) return false;
  const a = actual.match(number) ?? [];
  const b = shown.match(number) ?? [];
  return a.every((text, i) => {
    const x = Number(text);
    const y = Number(b[i]);
    return Math.abs(x - y) <= 1e-6 * Math.max(Math.abs(x), Math.abs(y)) + 1e-12;
  });
}

async function runRepl(example: DocExample, output: string[]): Promise<Array<{ line: number; input: string; shown: string; actual: string }>> {
  const steps = example.repl!;
  const parts: string[] = [];
  for (const [index, step] of steps.entries()) {
    const file = ts.createSourceFile('input.ts', step.input, ts.ScriptTarget.ES2022, true);
    const only = file.statements.length === 1 ? file.statements[0] : undefined;
    if (only !== undefined && ts.isExpressionStatement(only)) parts.push(`__show(${index}, (${only.expression.getText(file)}));`);
    else parts.push(step.input);
  }
  const values = new Map<number, unknown>();
  const run = compile(transpile(parts.join('\n')), example.name, { api: [], given: [] });
  await run(exampleRequire, {}, {}, capturingConsole(output), {}, {}, (index, value) => values.set(index, value));
  const mismatches = [];
  for (const [index, step] of steps.entries()) {
    if (step.expected === '' || /\/\/\s*varies\b/i.test(step.input)) continue;
    const actual = values.has(index) ? inspect(values.get(index)) : 'undefined';
    if (!matchesShown(actual, step.expected)) mismatches.push({ line: step.line, input: step.input, shown: step.expected, actual });
  }
  return mismatches;
}

async function runSnippet(example: DocExample, output: string[], needsCuda: boolean): Promise<void> {
  const fromLib = example.file.startsWith('lib/');
  const given = fromLib ? fixtures(needsCuda) : {};
  const api = fromLib ? Object.keys(lib).filter((name) => /^[A-Za-z_$][\w$]*$/.test(name)) : [];
  const run = compile(transpile(example.code), example.name, { api, given: Object.keys(given) });
  await run(exampleRequire, {}, {}, capturingConsole(output), lib, given, () => {});
}

const examples = readExamples();

test('the documentation has examples to run', (t) => {
  const readme = examples.filter((e) => e.file === 'README.md');
  t.true(readme.length >= 1, 'README.md: no js/ts code block found');
  t.true(readme.some((e) => e.repl !== undefined && e.repl.length > 0), 'README.md: no REPL block found');
  t.true(examples.length - readme.length >= 5, `lib/: only ${examples.length - readme.length} @example sections found`);
  t.log(`${examples.length} examples: ${readme.length} in README.md, ${examples.length - readme.length} in lib/`);
});

for (const example of examples) {
  const needs = requirementsOf(example);
  const missing = needs.map(unavailable).filter((why): why is string => why !== null);
  if (missing.length > 0) {
    test.skip(`${example.name} (needs ${needs.join(', ')}; skipped: ${missing.join('; ')})`, () => {});
    continue;
  }
  test(example.name, async (t) => {
    const output: string[] = [];
    try {
      if (example.repl !== undefined) {
        const mismatches = await runRepl(example, output);
        for (const m of mismatches) t.log(`line ${m.line}: > ${m.input}\n  shown:  ${m.shown}\n  actual: ${m.actual}`);
        t.is(mismatches.length, 0, `${mismatches.length} REPL output(s) differ from what ${example.file} shows`);
      } else {
        await runSnippet(example, output, needs.includes('cuda'));
        t.pass();
      }
    } catch (error) {
      t.log(`code:\n${example.code}`);
      if (output.length > 0) t.log(`printed:\n${output.join('\n')}`);
      throw error;
    }
  });
}
