/**
 * Finds and loads the native addon (siglip_kernels.node), once, and remembers which file was
 * loaded and why, for {@link backendInfo}. Every failed attempt is collected into one error
 * that says what to do about it.
 *
 * Works from lib/ (run through tsx) and from dist/ (compiled): both sit one level below the
 * package root, where node-gyp-build looks in build/Release, build/Debug and prebuilds/.
 *
 * Two binaries may exist: the CPU build (node-gyp, build/Release or a prebuild) and the CUDA
 * build (cmake-js, build-cuda/Release; scripts/install.js makes it where nvcc is found). The
 * CUDA build contains the whole CPU backend too, so only one binary is ever used:
 * - the CUDA build, when it exists, loads and a GPU answers (cudaAvailable()); it then runs
 *   the CPU work as well;
 * - otherwise the CPU build, so that CPU results never depend on whether a CUDA build
 *   happens to exist; `device: 'cuda'` then throws ERR_SIGLIP_NO_CUDA with the reason;
 * - the CUDA build without a GPU only when the CPU build cannot be loaded (it is the same
 *   CPU code, compiled by CMake instead of node-gyp).
 * `SIGLIP_FORCE_CPU=1` skips the CUDA build without loading it.
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

/** Where the CUDA build is, relative to the package root. */
export const CUDA_BUILD_DIR = 'build-cuda/Release';

/** Whether CUDA can be used, and why not. */
export interface CudaStatus {
  /** True when the loaded addon is the CUDA build and at least one GPU answered. */
  available: boolean;
  /** GPUs the CUDA runtime reports (0 when not available). */
  deviceCount: number;
  /** Why CUDA is not available ('' when it is). */
  reason: string;
}

/** The loaded addon, its absolute path, why that file was chosen, and the CUDA status. */
export interface LoadedAddon {
  addon: NativeAddon;
  path: string;
  reason: string;
  cuda: CudaStatus;
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

/** True when SIGLIP_FORCE_CPU asks to skip the CUDA build (1, true, yes, on). */
export function forceCpu(): boolean {
  return /^(1|true|yes|on)$/i.test(process.env['SIGLIP_FORCE_CPU']?.trim() ?? '');
}

interface CudaProbe {
  /** The CUDA build with a GPU: use it for everything. */
  use?: LoadedAddon;
  /** The CUDA build loaded but no GPU answered: the fallback if the CPU build fails. */
  fallback?: { addon: NativeAddon; path: string };
  /** Why the CUDA build is not used (when `use` is unset). */
  note: string;
}

function probeCudaBuild(): CudaProbe {
  if (forceCpu()) {
    return { note: `SIGLIP_FORCE_CPU=${process.env['SIGLIP_FORCE_CPU']} is set, so the CUDA build was not tried` };
  }
  const relative = `${CUDA_BUILD_DIR}/${ADDON_FILE}`;
  const file = path.join(packageRoot, CUDA_BUILD_DIR, ADDON_FILE);
  if (!fs.existsSync(file)) {
    return { note: `no CUDA build (${relative} is missing; npm install builds it where nvcc is found)` };
  }
  let addon: NativeAddon;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require(file) as NativeAddon;
  } catch (error) {
    return { note: `the CUDA build ${relative} failed to load: ${firstLine(error)}` };
  }
  if (typeof addon?.sigmoidLoss !== 'function' || typeof addon.cudaAvailable !== 'function') {
    return { note: `${relative} loaded, but it is not a CUDA build of siglip-kernels (no cudaAvailable export)` };
  }
  let status: { available: boolean; deviceCount: number; reason: string };
  try {
    status = addon.cudaAvailable();
  } catch (error) {
    status = { available: false, deviceCount: 0, reason: firstLine(error) };
  }
  if (status.available) {
    const gpus = `${status.deviceCount} GPU${status.deviceCount === 1 ? '' : 's'}`;
    return {
      use: {
        addon,
        path: file,
        reason: `the CUDA build (${relative}, compiled by cmake-js): ${gpus} answered; it runs the CPU backend too`,
        cuda: { available: true, deviceCount: status.deviceCount, reason: '' },
      },
      note: '',
    };
  }
  return { fallback: { addon, path: file }, note: `the CUDA build loaded but no GPU answered: ${status.reason}` };
}

/**
 * Loads the addon on first call and returns it (with its path, the reason it was chosen and
 * the CUDA status).
 *
 * @throws Error with code `ERR_SIGLIP_ADDON_LOAD`, listing every file tried and why it failed.
 */
export function loadAddon(): LoadedAddon {
  if (loaded !== undefined) return loaded;
  const probe = probeCudaBuild();
  if (probe.use !== undefined) {
    loaded = probe.use;
    return loaded;
  }
  const noCuda: CudaStatus = { available: false, deviceCount: 0, reason: probe.note };
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
      return { addon, path: file, reason: `${probe.note}; using the CPU build: ${reason}`, cuda: noCuda };
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

  if (loaded === undefined && probe.fallback !== undefined) {
    loaded = {
      addon: probe.fallback.addon,
      path: probe.fallback.path,
      reason: `${probe.note}; the CPU build failed to load (${causes.join('; ')}), so the CUDA build runs the CPU work`,
      cuda: noCuda,
    };
  }
  if (loaded === undefined) {
    causes.push(probe.note);
    throw errorWithCode(buildFailureMessage(causes), 'ERR_SIGLIP_ADDON_LOAD');
  }
  return loaded;
}
