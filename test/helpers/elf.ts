// What a shared object needs from the system: the symbol versions it imports (objdump -T)
// and its NEEDED libraries (readelf -d). For the prebuilt binaries' glibc floor tests.
import { execFileSync } from 'node:child_process';

export interface ElfNeeds {
  /** Highest GLIBC_x.y imported, e.g. '2.30'. */
  maxGlibc: string;
  /** Every versioned import: GLIBC_2.2.5, GLIBCXX_3.4.29, … */
  versions: string[];
  /** The NEEDED shared libraries. */
  needed: string[];
}

/** Compares dotted versions: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const x = a.split('.').map(Number);
  const y = b.split('.').map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function elfNeeds(file: string): ElfNeeds {
  const symbols = execFileSync('objdump', ['-T', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  // Undefined (imported) symbols only: "*UND*" lines, whose version is in parentheses or bare.
  const versions = new Set<string>();
  for (const line of symbols.split('\n')) {
    if (!line.includes('*UND*')) continue;
    const match = /\b((?:GLIBC|GLIBCXX|CXXABI|GCC)_[0-9][0-9.]*)/.exec(line);
    if (match) versions.add(match[1]!);
  }
  const glibc = [...versions].filter((v) => v.startsWith('GLIBC_')).map((v) => v.slice('GLIBC_'.length));
  const maxGlibc = glibc.sort(compareVersions).pop() ?? '0';
  const dynamic = execFileSync('readelf', ['-d', file], { encoding: 'utf8' });
  const needed = [...dynamic.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]!);
  return { maxGlibc, versions: [...versions].sort(), needed };
}

/** Why a binary breaks the floor (empty when it does not): too new a glibc, or a dynamic libstdc++/libgcc. */
export function floorViolations(file: string, floor: string): string[] {
  const needs = elfNeeds(file);
  const problems: string[] = [];
  if (compareVersions(needs.maxGlibc, floor) > 0) problems.push(`needs GLIBC_${needs.maxGlibc}, above the ${floor} floor`);
  const cxx = needs.versions.filter((v) => !v.startsWith('GLIBC_'));
  if (cxx.length > 0) problems.push(`imports ${cxx.join(', ')} (libstdc++/libgcc not linked statically)`);
  const dynamicRuntime = needs.needed.filter((lib) => /^lib(stdc\+\+|gcc_s)\.so/.test(lib));
  if (dynamicRuntime.length > 0) problems.push(`needs ${dynamicRuntime.join(', ')}`);
  return problems;
}
