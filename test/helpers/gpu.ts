/**
 * Registering tests that need a CUDA GPU. Without one they are registered as skipped, with a
 * title that says so and why; with SIGLIP_REQUIRE_CUDA=1 (a GPU machine's CI) they fail
 * instead, so a broken driver or a missing CUDA build cannot pass as "skipped".
 */
import test, { type ExecutionContext } from 'ava';

import { backendInfo } from '../../lib/index';

/** The CUDA status the loader found (backendInfo().cuda). */
export const cuda = backendInfo().cuda;

/** SIGLIP_REQUIRE_CUDA=1: GPU tests must run. */
export const requireCuda = /^(1|true|yes|on)$/i.test(process.env['SIGLIP_REQUIRE_CUDA']?.trim() ?? '');

type Body = (t: ExecutionContext) => void | Promise<void>;

/**
 * A test that runs on a CUDA GPU; skipped (or, under SIGLIP_REQUIRE_CUDA=1, failed) without
 * one. GPU tests of a file run one after another (test.serial): the GPU is one shared device,
 * and tests that read cudaMemoryUsage() must not see another test's Promise allocating.
 */
export function gpuTest(title: string, body: Body): void {
  if (cuda.available) {
    test.serial(title, body);
  } else if (requireCuda) {
    test(title, (t) => {
      t.fail(`SIGLIP_REQUIRE_CUDA=1, but no CUDA GPU can be used: ${cuda.reason}`);
    });
  } else {
    test.skip(`${title} — skipped: no CUDA GPU (${cuda.reason})`, () => {});
  }
}

/** A test of the behaviour without a GPU; skipped where a GPU is present. */
export function noGpuTest(title: string, body: Body): void {
  if (cuda.available) {
    test.skip(`${title} — skipped: a CUDA GPU is present`, () => {});
  } else {
    test(title, body);
  }
}
