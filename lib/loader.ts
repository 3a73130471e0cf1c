/**
 * Finds and loads the native addon (siglip_kernels.node), once, and remembers which file was
 * loaded and why, for {@link backendInfo}. Every failed attempt is collected into one error
 * that says what to do about it.
 *
 * Works from lib/ (run through tsx) and from dist/ (compiled): both sit one level below the
 * package root, where node-gyp-build looks in build/Release, build/Debug and prebuilds/.
 *
 * @internal
 * @packageDocumentation
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { NativeAddon } from './native';
import { errorWithCode } from './validate';

/** The package root (the folder holding package.json and binding.gyp). */
export const packageRoot = path.resolve(__dirname, '..');

/** The addon's file name (binding.gyp's target_name). */
const ADDON_FILE = 'siglip_kernels.node';

/** Local builds tried after node-gyp-build's choice, if that one is missing or fails to load. */
const LOCAL_BUILDS: ReadonlyArray<readonly [string, string]> = [
  ['build/Release', 'compiled locally by node-gyp (build/Release)'],
  ['build/Debug', 'compiled locally by node-gyp, debug build (build/Debug)'],
  ['build-cmake/Release', 'compiled locally by cmake-js (build-cmake/Release)'],
  ['build-cmake', 'compiled locally by cmake-js (build-cmake)'],
];

/** The loaded addon, its absolute path, and why that file was chosen. */
export interface LoadedAddon {
  addon: NativeAddon;
  path: string;
  reason: string;
}

interface NodeGypBuild {
  resolve(dir: string): string;
}

let loaded: LoadedAddon | undefined;

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.trim().split('\n')[0] ?? text;
}

function reasonFor(file: string): string {
  const relative = path.relative(packageRoot, file).split(path.sep).join('/');
  if (relative.startsWith('prebuilds/')) {
    return `prebuilt binary ${relative}, shipped with the package for ${process.platform}-${process.arch}`;
  }
  for (const [dir, reason] of LOCAL_BUILDS) {
    if (relative === `${dir}/${ADDON_FILE}`) return `${reason}, found first by node-gyp-build`;
  }
  if (process.env['SIGLIP_KERNELS_PREBUILD']) {
    return `from SIGLIP_KERNELS_PREBUILD=${process.env['SIGLIP_KERNELS_PREBUILD']} (node-gyp-build)`;
  }
  return `found by node-gyp-build at ${file}`;
}

function buildFailureMessage(causes: string[]): string {
  return [
    `siglip-kernels could not load its native addon (${ADDON_FILE}) for ${process.platform}-${process.arch}, ` +
      `Node.js ${process.version} (Node-API ${process.versions.napi ?? 'unknown'}; the addon needs 8 or later).`,
    `Package root: ${packageRoot}`,
    'Causes:',
    ...causes.map((cause) => `  - ${cause}`),
    'To fix it, build the addon for this machine: run `npm rebuild siglip-kernels` in your project.',
    "Install scripts of dependencies may not have run: npm 12 blocks them unless the package is allowed " +
      '(`npm approve-scripts siglip-kernels` records that in package.json "allowScripts"), and ' +
      '--ignore-scripts (and pnpm 10 by default) skip them too. Building needs Python 3 and a C++17 compiler (node-gyp); ' +
      'published versions also ship prebuilt binaries (prebuilds/).',
  ].join('\n');
}

/**
 * Loads the addon on first call and returns it (with its path and the reason it was chosen).
 *
 * @throws Error with code `ERR_SIGLIP_ADDON_LOAD`, listing every file tried and why it failed.
 */
export function loadAddon(): LoadedAddon {
  if (loaded !== undefined) return loaded;
  const causes: string[] = [];
  const tried = new Set<string>();

  const attempt = (file: string, reason: string): LoadedAddon | undefined => {
    tried.add(file);
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(file) as NativeAddon;
      if (typeof addon?.sigmoidLoss !== 'function') {
        causes.push(`${file}: loaded, but it is not the siglip-kernels addon (no sigmoidLoss export)`);
        return undefined;
      }
      return { addon, path: file, reason };
    } catch (error) {
      const reason = firstLine(error);
      causes.push(reason.startsWith(file) ? reason : `${file}: ${reason}`);
      return undefined;
    }
  };

  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
    const file = nodeGypBuild.resolve(packageRoot);
    loaded = attempt(file, reasonFor(file));
  } catch (error) {
    causes.push(`node-gyp-build: ${firstLine(error)}`);
  }

  for (const [dir, reason] of LOCAL_BUILDS) {
    if (loaded !== undefined) break;
    const file = path.join(packageRoot, dir, ADDON_FILE);
    if (tried.has(file) || !fs.existsSync(file)) continue;
    loaded = attempt(file, `${reason}, after the binaries above failed to load`);
  }

  if (loaded === undefined) throw errorWithCode(buildFailureMessage(causes), 'ERR_SIGLIP_ADDON_LOAD');
  return loaded;
}
