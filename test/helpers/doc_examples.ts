/**
 * Finds the code examples of the documentation, so test/docs-examples.test.ts can run them:
 *
 * - README.md: every fenced block whose language is js, javascript, ts, typescript or mjs.
 *   A block whose lines start with `> ` is a REPL session: each `> ` line is an input, the
 *   lines after it (up to the next input) are what the REPL prints for it.
 * - lib/*.ts: every `@example` section of a `/** … *\/` comment; its fenced code blocks, or, when
 *   it has none, its text (TSDoc's `@example` without a fence is code too).
 *
 * A line `// requires: cuda` (or `mpi`, or a comma-separated list) anywhere in an example marks
 * what it needs; see `requirementsOf` for the requirements implied without a marker.
 */

/** One example, and where it came from. */
export interface DocExample {
  /** e.g. "README.md:42" or "lib/index.ts:130 (sigmoidLossSync)". */
  name: string;
  file: string;
  /** 1-based line of the example's first code line in `file`. */
  line: number;
  /** 'ts' or 'js'. */
  lang: 'ts' | 'js';
  code: string;
  /** Present for a REPL session: inputs and the output printed after each (may be empty). */
  repl?: ReplStep[];
  /** The documented declaration the example belongs to (lib examples only). */
  owner?: string;
}

/** One `> ` line of a REPL session and what the REPL printed after it. */
export interface ReplStep {
  input: string;
  /** The printed lines, joined with '\n'; '' when the block shows no output for it. */
  expected: string;
  /** 1-based line in the file. */
  line: number;
}

const LANGUAGES: Record<string, 'ts' | 'js'> = { js: 'js', javascript: 'js', mjs: 'js', cjs: 'js', ts: 'ts', typescript: 'ts' };

interface Fence {
  lang: string;
  lines: string[];
  /** 1-based line of the first code line, counted in the lines given. */
  firstLine: number;
}

function fencesIn(lines: readonly string[]): Fence[] {
  const fences: Fence[] = [];
  let open: Fence | null = null;
  let marker = '';
  for (const [index, raw] of lines.entries()) {
    const text = raw.trimStart();
    if (open === null) {
      const m = /^(`{3,}|~{3,})\s*([\w+-]*)/.exec(text);
      if (m) {
        marker = m[1]!;
        open = { lang: (m[2] ?? '').toLowerCase(), lines: [], firstLine: index + 2 };
      }
    } else if (text.startsWith(marker) && text.slice(marker.length).trim() === '') {
      fences.push(open);
      open = null;
    } else {
      open.lines.push(raw);
    }
  }
  return fences;
}

/** Removes the indentation common to all non-empty lines. */
function dedent(lines: readonly string[]): string[] {
  const indents = lines.filter((l) => l.trim() !== '').map((l) => /^\s*/.exec(l)![0].length);
  const cut = indents.length === 0 ? 0 : Math.min(...indents);
  return lines.map((l) => l.slice(cut));
}

function parseRepl(lines: readonly string[], firstLine: number): ReplStep[] | undefined {
  const first = lines.find((l) => l.trim() !== '');
  if (first === undefined || !first.startsWith('> ')) return undefined;
  const steps: ReplStep[] = [];
  for (const [index, l] of lines.entries()) {
    if (l.startsWith('> ')) steps.push({ input: l.slice(2), expected: '', line: firstLine + index });
    else if (l.startsWith('... ') && steps.length > 0) steps[steps.length - 1]!.input += `\n${l.slice(4)}`;
    else if (steps.length > 0 && l.trim() !== '') {
      const step = steps[steps.length - 1]!;
      step.expected = step.expected === '' ? l : `${step.expected}\n${l}`;
    }
  }
  return steps;
}

/** The js/ts fenced blocks of a Markdown file. */
export function extractMarkdownExamples(markdown: string, file: string): DocExample[] {
  const examples: DocExample[] = [];
  for (const fence of fencesIn(markdown.split('\n'))) {
    const lang = LANGUAGES[fence.lang];
    if (lang === undefined) continue;
    const lines = dedent(fence.lines);
    const repl = parseRepl(lines, fence.firstLine);
    const example: DocExample = { name: `${file}:${fence.firstLine}`, file, line: fence.firstLine, lang, code: lines.join('\n') };
    if (repl !== undefined) example.repl = repl;
    examples.push(example);
  }
  return examples;
}

/** The `@example` sections of the doc comments of a TypeScript source file. */
export function extractTsdocExamples(source: string, file: string): DocExample[] {
  const examples: DocExample[] = [];
  const comment = /\/\*\*([\s\S]*?)\*\//g;
  for (let match = comment.exec(source); match !== null; match = comment.exec(source)) {
    const startLine = source.slice(0, match.index).split('\n').length; // line of "/**"
    // Strip the leading " * " of each comment line, keeping the code's own indentation.
    const lines = match[1]!.split('\n').map((l) => l.replace(/^\s*\* ?/, '').replace(/^\s*$/, ''));
    const after = source.slice(comment.lastIndex, comment.lastIndex + 300);
    const owner = /^\s*(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:async\s+)?(?:static\s+)?(?:abstract\s+)?(?:readonly\s+)?(?:function\*?|class|interface|type|const|let|enum|get|set)?\s*([A-Za-z_$][\w$]*)/.exec(after)?.[1];
    for (let i = 0; i < lines.length; i++) {
      if (!/^@example\b/.test(lines[i]!.trim())) continue;
      let end = i + 1;
      let inFence = false;
      for (; end < lines.length; end++) {
        const t = lines[end]!.trim();
        if (/^(`{3,}|~{3,})/.test(t)) inFence = !inFence;
        if (!inFence && /^@\w+/.test(t)) break;
      }
      const section = lines.slice(i + 1, end);
      const fences = fencesIn(section);
      const blocks: Fence[] = fences.length > 0 ? fences : [{ lang: 'ts', lines: section, firstLine: 1 }];
      for (const block of blocks) {
        const lang = block.lang === '' ? 'ts' : LANGUAGES[block.lang];
        const code = dedent(block.lines).join('\n').trim();
        if (lang === undefined || code === '') continue;
        // line in file: the comment's first line + the section's offset + the block's offset
        const line = startLine + (i + 1) + (block.firstLine - 1);
        const example: DocExample = { name: `${file}:${line}${owner ? ` (${owner})` : ''}`, file, line, lang, code };
        if (owner !== undefined) example.owner = owner;
        examples.push(example);
      }
      i = end - 1;
    }
  }
  return examples;
}

/**
 * What an example needs beyond the CPU build: the `// requires: …` marker's list, plus, without
 * one, 'cuda' for examples of the GPU API (lib/device_matrix.ts and lib/cuda.ts, or code that
 * names DeviceMatrix, a 'cuda' device or the CUDA memory counters) and 'mpi' for code that
 * names mpirun or an MPI transport. Examples of another module's API are easy to write without
 * the marker; these defaults keep them from failing on machines without a GPU.
 */
export function requirementsOf(example: DocExample): string[] {
  const needs = new Set<string>();
  for (const m of example.code.matchAll(/\/\/[ \t]*requires:[ \t]*([\w ,\t-]+)/gi)) {
    for (const r of m[1]!.split(/[\s,]+/)) if (r !== '') needs.add(r.toLowerCase());
  }
  if (/lib\/(device_matrix|cuda)\.ts$/.test(example.file) || /\bDeviceMatrix\b|['"]cuda(:\d+)?['"]|\bcudaMemoryUsage\b|\bresetCudaPeakMemory\b/.test(example.code)) needs.add('cuda');
  if (/\bmpirun\b|['"]mpi['"]/.test(example.code)) needs.add('mpi');
  return [...needs];
}
