/**
 * The package's limits. They are defined once, in csrc/core/limits.h; the addon exports them
 * (`limits`) and {@link limits} reads them at first use, so the checks of lib/ take their
 * bounds from the native core. The public constants below name three of them for users; a
 * test (test/limits.test.ts) holds them equal to the addon's values.
 *
 * @internal
 * @packageDocumentation
 */
import { loadAddon } from './loader';
import type { NativeLimits } from './native';
import { errorWithCode } from './validate';

let cached: NativeLimits | undefined;

/** csrc/core/limits.h, as the addon exports it (loaded on first use). */
export function limits(): NativeLimits {
  if (cached !== undefined) return cached;
  const { addon, path } = loadAddon();
  if (typeof addon.limits !== 'object' || addon.limits === null) {
    // A binary built from older sources than this lib/ (e.g. a build folder not rebuilt).
    throw errorWithCode(
      `The siglip-kernels binary ${path} is older than its TypeScript layer (it has no limits export): rebuild it ` +
        '(npx siglip-kernels build, or npm rebuild siglip-kernels)',
      'ERR_SIGLIP_INTERNAL',
    );
  }
  cached = addon.limits;
  return cached;
}

/** The most threads a call may ask for (csrc/core/limits.h, `kMaxThreads`). */
export const MAX_THREADS = 1024;
/** The most ranks a ring may have (csrc/core/limits.h, `kMaxRingRanks`). */
export const MAX_RING_RANKS = 4096;
/** The default `timeoutMs` of a ring: how long any rank waits for another, 60 000 ms (csrc/core/limits.h). */
export const DEFAULT_RING_TIMEOUT_MS = 60_000;
