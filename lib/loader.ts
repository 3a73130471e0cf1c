/**
 * Finds and loads the native addon (siglip_kernels.node), once, and remembers which file was
 * loaded and why, for {@link backendInfo}. Every failed attempt is collected into one error
 * that says what to do about it.
 *
 * Works from lib/ (run through tsx) and from dist/ (compiled): both sit one level below the
 * package root.
 *
 * Where it looks, in order (the first place that yields a loadable binary wins):
 * 1. `SIGLIP_KERNELS_BINARY=<file>`: that file and nothing else (an error if it fails).
 * 2. A local build in the package root (a clone's `npm install`, or `npx siglip-kernels build`
 *    in an installed package): the CPU build (node-gyp, build/Release; or cmake-js,
 *    build-cmake/) and the CUDA build (cmake-js, build-cuda/Release).
 * 3. The prebuilt platform packages, installed by npm as optionalDependencies for this
 *    os/cpu/libc: `@siglip-kernels/<platform>` (CPU) and `@siglip-kernels/<platform>-cuda`.
 *
 * Within 2 and 3 there may be a CPU and a CUDA binary. The CUDA one contains the whole CPU
 * backend too, so only one is ever used:
 * - the CUDA binary, when it exists, loads and a GPU answers (cudaAvailable()); it then runs
 *   the CPU work as well;
 * - otherwise the CPU binary, so that CPU results never depend on whether a CUDA binary
 *   happens to exist; `device: 'cuda'` then throws ERR_SIGLIP_NO_CUDA with the reason;
 * - the CUDA binary without a GPU only when the CPU binary cannot be loaded (it is the same
 *   CPU code, compiled by CMake instead of node-gyp).
 * `SIGLIP_FORCE_CPU=1` skips the CUDA binaries without loading them.
 *
 * The platform packages' names are also listed in scripts/release/platforms.js (the release
 * scripts); test/install.test.ts checks that the two lists agree.
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

/** Local CPU builds, in the order they are tried. */
const LOCAL_BUILDS: ReadonlyArray<readonly [string, string]> = [
  ['build/Release', 'compiled locally by node-gyp (build/Release)'],
  ['build/Debug', 'compiled locally by node-gyp, debug build (build/Debug)'],
  ['build-cmake/Release', 'compiled locally by cmake-js (build-cmake/Release)'],
  ['build-cmake', 'compiled locally by cmake-js (build-cmake)'],
];

/** Where the CUDA build is, relative to the package root. */
export const CUDA_BUILD_DIR = 'build-cuda/Release';

/** The npm scope of the platform packages. */
export const PLATFORM_SCOPE = '@siglip-kernels';

/** Platforms with prebuilt packages: `<os>-<cpu>[-<libc>]`, and whether a CUDA package exists too. */
export const PREBUILT_PLATFORMS: Readonly<Record<string, { cuda: boolean }>> = {
  'linux-x64-gnu': { cuda: true },
  'linux-arm64-gnu': { cuda: false },
};

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

let loaded: LoadedAddon | undefined;

function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.trim().split('\n')[0] ?? text;
}

/** `linux-x64-gnu`, `linux-arm64-musl`, `darwin-arm64`, `win32-x64`: the platform packages' naming. */
export function platformKey(): string {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const header = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header;
  return `linux-${process.arch}-${header?.glibcVersionRuntime ? 'gnu' : 'musl'}`;
}

/** The platform packages for this machine (none where nothing is prebuilt). */
export function platformPackages(key = platformKey()): { cpu: string | null; cuda: string | null } {
  const entry = PREBUILT_PLATFORMS[key];
  if (entry === undefined) return { cpu: null, cuda: null };
  return { cpu: `${PLATFORM_SCOPE}/${key}`, cuda: entry.cuda ? `${PLATFORM_SCOPE}/${key}-cuda` : null };
}

/** The binary of an installed platform package, with its version; null when it is not installed. */
function findPackage(name: string): { file: string; version: string } | null {
  let manifest: string;
  try {
    manifest = require.resolve(`${name}/package.json`, { paths: [packageRoot] });
  } catch {
    return null;
  }
  let version = '?';
  try {
    version = String((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version?: unknown }).version ?? '?');
  } catch {
    // the version is for the report only
  }
  return { file: path.join(path.dirname(manifest), ADDON_FILE), version };
}

function buildFailureMessage(causes: string[]): string {
  const key = platformKey();
  const { cpu } = platformPackages(key);
  const prebuilt =
    cpu === null
      ? `There is no prebuilt package for ${key} (prebuilt: ${Object.keys(PREBUILT_PLATFORMS).join(', ')}), so the addon must be built from source.`
      : `The prebuilt package for ${key} is ${cpu}, an optionalDependency of siglip-kernels: it is missing when ` +
        'optional dependencies were omitted (--omit=optional, --no-optional) or the lockfile was made on another platform; ' +
        `\`npm install ${cpu}\` adds it. Or build from source:`;
  return [
    `siglip-kernels could not load its native addon (${ADDON_FILE}) for ${key}, ` +
      `Node.js ${process.version} (Node-API ${process.versions.napi ?? 'unknown'}; the addon needs 8 or later).`,
    `Package root: ${packageRoot}`,
    'Causes:',
    ...causes.map((cause) => `  - ${cause}`),
    prebuilt,
    '  npx siglip-kernels build          (the CPU addon: node-gyp, Python 3 and a C++17 compiler)',
    '  npx siglip-kernels build --cuda   (also the CUDA addon: CMake, nvcc and cmake-js, `npm install -D cmake-js`)',
    'A local build is used before any prebuilt package; SIGLIP_KERNELS_BINARY=<file> names a binary explicitly.',
  ].join('\n');
}

/** True when SIGLIP_FORCE_CPU asks to skip the CUDA build (1, true, yes, on). */
export function forceCpu(): boolean {
  return /^(1|true|yes|on)$/i.test(process.env['SIGLIP_FORCE_CPU']?.trim() ?? '');
}

/** A binary that may be tried: its absolute path and how to name it in reports. */
interface Candidate {
  file: string;
  /** e.g. 'the CUDA build (build-cuda/Release/siglip_kernels.node, compiled by cmake-js)'. */
  label: string;
}

interface CudaProbe {
  /** The CUDA binary with a GPU: use it for everything. */
  use?: LoadedAddon;
  /** The CUDA binary loaded but no GPU answered: the fallback if the CPU binary fails. */
  fallback?: { addon: NativeAddon; path: string };
  /** Why the CUDA binary is not used (when `use` is unset). */
  note: string;
}

function requireAddon(file: string): NativeAddon {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as NativeAddon;
}

function cudaStatusOf(addon: NativeAddon): CudaStatus {
  try {
    if (typeof addon.cudaAvailable !== 'function') return { available: false, deviceCount: 0, reason: 'not a CUDA build' };
    return addon.cudaAvailable();
  } catch (error) {
    return { available: false, deviceCount: 0, reason: firstLine(error) };
  }
}

/**
 * Tries a CUDA binary. `name` is how reasons call it ('the CUDA build', 'the CUDA package …');
 * `missing` is the note when its file does not exist (null: nothing to say).
 */
function probeCuda(candidate: Candidate | null, name: string, missing: string): CudaProbe {
  if (forceCpu()) {
    return { note: `SIGLIP_FORCE_CPU=${process.env['SIGLIP_FORCE_CPU']} is set, so the ${name.replace(/^the /, '')} was not tried` };
  }
  if (candidate === null || !fs.existsSync(candidate.file)) return { note: missing };
  const shown = path.relative(packageRoot, candidate.file).split(path.sep).join('/');
  let addon: NativeAddon;
  try {
    addon = requireAddon(candidate.file);
  } catch (error) {
    return { note: `${name} ${shown} failed to load: ${firstLine(error)}` };
  }
  if (typeof addon?.sigmoidLoss !== 'function' || typeof addon.cudaAvailable !== 'function') {
    return { note: `${shown} loaded, but it is not a CUDA build of siglip-kernels (no cudaAvailable export)` };
  }
  const status = cudaStatusOf(addon);
  if (status.available) {
    const gpus = `${status.deviceCount} GPU${status.deviceCount === 1 ? '' : 's'}`;
    return {
      use: {
        addon,
        path: candidate.file,
        reason: `${candidate.label}: ${gpus} answered; it runs the CPU backend too`,
        cuda: { available: true, deviceCount: status.deviceCount, reason: '' },
      },
      note: '',
    };
  }
  return { fallback: { addon, path: candidate.file }, note: `${name} loaded but no GPU answered: ${status.reason}` };
}

/**
 * One place to look (the local builds, or the platform packages): the CUDA binary with a GPU,
 * else the first CPU binary that loads, else the CUDA binary without a GPU. Failures go to
 * `causes`; undefined when nothing here loads.
 */
function chooseBinary(probe: CudaProbe, cpus: Candidate[], fallbackName: string, causes: string[]): LoadedAddon | undefined {
  if (probe.use !== undefined) return probe.use;
  const noCuda: CudaStatus = { available: false, deviceCount: 0, reason: probe.note };
  const failed: string[] = [];
  for (const cpu of cpus) {
    if (!fs.existsSync(cpu.file)) continue;
    try {
      const addon = requireAddon(cpu.file);
      if (typeof addon?.sigmoidLoss !== 'function') {
        failed.push(`${cpu.file}: loaded, but it is not the siglip-kernels addon (no sigmoidLoss export)`);
        continue;
      }
      const after = failed.length > 0 ? ', after the binaries above failed to load' : '';
      causes.push(...failed);
      return { addon, path: cpu.file, reason: `${probe.note}; using the CPU build: ${cpu.label}${after}`, cuda: noCuda };
    } catch (error) {
      const reason = firstLine(error);
      failed.push(reason.startsWith(cpu.file) ? reason : `${cpu.file}: ${reason}`);
    }
  }
  causes.push(...failed);
  if (probe.fallback !== undefined) {
    const why = failed.length > 0 ? `the CPU build failed to load (${failed.join('; ')})` : 'there is no CPU build';
    return {
      addon: probe.fallback.addon,
      path: probe.fallback.path,
      reason: `${probe.note}; ${why}, so ${fallbackName} runs the CPU work`,
      cuda: noCuda,
    };
  }
  return undefined;
}

/** `SIGLIP_KERNELS_BINARY=<file>`: that binary, or an error naming it. */
function loadExplicit(value: string): LoadedAddon {
  const file = path.resolve(value);
  const fail = (why: string): never => {
    throw errorWithCode(
      `SIGLIP_KERNELS_BINARY=${value} names the binary to load, but ${why}. Unset it to use a local build or the prebuilt package.`,
      'ERR_SIGLIP_ADDON_LOAD',
    );
  };
  if (!fs.existsSync(file)) fail(`${file} does not exist`);
  let addon: NativeAddon | undefined;
  try {
    addon = requireAddon(file);
  } catch (error) {
    fail(`it failed to load: ${firstLine(error)}`);
  }
  if (typeof addon?.sigmoidLoss !== 'function') return fail('it is not the siglip-kernels addon (no sigmoidLoss export)');
  const reason = `SIGLIP_KERNELS_BINARY=${value}`;
  if (typeof addon.cudaAvailable !== 'function') {
    return { addon, path: file, reason, cuda: { available: false, deviceCount: 0, reason: `${reason} is a CPU build` } };
  }
  if (forceCpu()) {
    return { addon, path: file, reason, cuda: { available: false, deviceCount: 0, reason: `SIGLIP_FORCE_CPU=${process.env['SIGLIP_FORCE_CPU']} is set` } };
  }
  const status = cudaStatusOf(addon);
  return {
    addon,
    path: file,
    reason: `${reason} (a CUDA build${status.available ? '' : ' with no GPU answering: it runs the CPU work'})`,
    cuda: { available: status.available, deviceCount: status.available ? status.deviceCount : 0, reason: status.available ? '' : `no GPU answered: ${status.reason}` },
  };
}

/**
 * Loads the addon on first call and returns it (with its path, the reason it was chosen and
 * the CUDA status).
 *
 * @throws Error with code `ERR_SIGLIP_ADDON_LOAD`, listing every file tried and why it failed.
 */
export function loadAddon(): LoadedAddon {
  if (loaded !== undefined) return loaded;
  const explicit = process.env['SIGLIP_KERNELS_BINARY']?.trim();
  if (explicit) {
    loaded = loadExplicit(explicit);
    return loaded;
  }
  const causes: string[] = [];

  // 2. Local builds.
  const localCuda = { file: path.join(packageRoot, CUDA_BUILD_DIR, ADDON_FILE), label: `the CUDA build (${CUDA_BUILD_DIR}/${ADDON_FILE}, compiled by cmake-js)` };
  const localProbe = probeCuda(localCuda, 'the CUDA build', `no CUDA build (${CUDA_BUILD_DIR}/${ADDON_FILE} is missing; npm install builds it where nvcc is found)`);
  const localCpus = LOCAL_BUILDS.map(([dir, label]) => ({ file: path.join(packageRoot, dir, ADDON_FILE), label }));
  loaded = chooseBinary(localProbe, localCpus, 'the CUDA build', causes);
  if (loaded !== undefined) return loaded;
  const noLocal = `no local build in ${packageRoot} (${LOCAL_BUILDS.map(([dir]) => dir).join(', ')}, ${CUDA_BUILD_DIR}${causes.length > 0 ? ': those present failed to load' : ''})`;

  // 3. The platform packages.
  const key = platformKey();
  const names = platformPackages(key);
  if (names.cpu === null) {
    causes.push(noLocal, `no prebuilt package exists for ${key}`);
    throw errorWithCode(buildFailureMessage(causes), 'ERR_SIGLIP_ADDON_LOAD');
  }
  const cudaPackage = names.cuda === null ? null : findPackage(names.cuda);
  const cudaProbe =
    names.cuda === null
      ? { note: `no CUDA package exists for ${key}` }
      : probeCuda(
          cudaPackage && { file: cudaPackage.file, label: `the prebuilt CUDA package ${names.cuda}@${cudaPackage.version}` },
          `the CUDA package ${names.cuda}`,
          cudaPackage === null ? `the CUDA package ${names.cuda} is not installed` : `the CUDA package ${names.cuda} has no ${ADDON_FILE}`,
        );
  const cpuPackage = findPackage(names.cpu);
  const cpus = cpuPackage === null ? [] : [{ file: cpuPackage.file, label: `the prebuilt package ${names.cpu}@${cpuPackage.version} (${noLocal})` }];
  loaded = chooseBinary(cudaProbe, cpus, `the CUDA package`, causes);
  if (loaded !== undefined) {
    if (cpus.length === 0 || !loaded.path.startsWith(path.dirname(cpus[0]!.file))) loaded.reason += ` (${noLocal})`;
    return loaded;
  }
  causes.push(noLocal);
  if (cpuPackage === null) causes.push(`the prebuilt package ${names.cpu} is not installed`);
  else if (!fs.existsSync(cpuPackage.file)) causes.push(`the prebuilt package ${names.cpu} has no ${ADDON_FILE}`);
  if (cudaProbe.note !== '') causes.push(cudaProbe.note);
  throw errorWithCode(buildFailureMessage(causes), 'ERR_SIGLIP_ADDON_LOAD');
}
