/**
 * The CUDA side of the loader's answer: whether a GPU can be used, the CUDA exports of the
 * addon, and the resolution of `'cuda'` / `'cuda:N'` to a device ordinal. A request for a
 * GPU that cannot be served always throws (ERR_SIGLIP_NO_CUDA, with the loader's reason),
 * never silently runs on the CPU.
 *
 * @internal
 * @packageDocumentation
 */
import { loadAddon } from './loader';
import type { NativeCudaAddon } from './native';
import { errorWithCode, invalidType, invalidValue, type SiglipError } from './validate';

/** `code` of the error thrown when a CUDA device is asked for but none can be used. */
export const ERR_SIGLIP_NO_CUDA = 'ERR_SIGLIP_NO_CUDA';

/** A CUDA device: `'cuda'` (the default GPU, ordinal 0) or `'cuda:N'` (GPU number N). */
export type CudaDevice = 'cuda' | `cuda:${number}`;

/** `'cuda'` or `'cuda:N'`. */
export function isCudaDeviceName(value: string): value is CudaDevice {
  return /^cuda(:\d+)?$/.test(value);
}

/**
 * The CUDA exports of the loaded addon. `subject` starts the error message ("options.device
 * is 'cuda'", "cudaMemoryUsage() needs a GPU"), `advice` ends it.
 *
 * @throws Error with code ERR_SIGLIP_NO_CUDA (with `argument`, when given) when no GPU can be used.
 */
export function cudaAddon(subject: string, advice: string, argument?: string): NativeCudaAddon {
  const { addon, cuda } = loadAddon();
  if (!cuda.available || typeof addon.cudaSigmoidLoss !== 'function') {
    const text = `${subject}, but no CUDA GPU can be used: ${cuda.reason}. ${advice}`;
    throw errorWithCode(text, ERR_SIGLIP_NO_CUDA, argument) as Error & SiglipError;
  }
  return addon as NativeCudaAddon;
}

/**
 * The ordinal `value` ('cuda' or 'cuda:N') names; `'cuda'` means `defaultOrdinal`.
 *
 * @throws Error with code ERR_SIGLIP_NO_CUDA when no GPU can be used, RangeError (naming
 *   `argument`) when N is not the ordinal of a GPU of this machine.
 */
export function resolveCudaOrdinal(argument: string, value: CudaDevice, defaultOrdinal = 0, advice = "Use device 'cpu' (the default)."): number {
  cudaAddon(`${argument} is '${value}'`, advice, argument);
  const { deviceCount } = loadAddon().cuda;
  const ordinal = value === 'cuda' ? defaultOrdinal : Number(value.slice('cuda:'.length));
  if (!Number.isSafeInteger(ordinal) || ordinal >= deviceCount) {
    const gpus = `${deviceCount} GPU${deviceCount === 1 ? '' : 's'}`;
    const expected = `'cuda' or 'cuda:N' with N from 0 to ${deviceCount - 1} (this machine has ${gpus})`;
    throw invalidValue(argument, expected, value);
  }
  return ordinal;
}

/**
 * A device option that must name a GPU (`'cuda'` or `'cuda:N'`; `expected` describes it in
 * messages), resolved to its ordinal and the CUDA exports.
 *
 * @throws TypeError / RangeError naming `argument`, then what {@link resolveCudaOrdinal} throws.
 */
export function checkCudaDevice(argument: string, value: unknown, expected: string, advice: string): { ordinal: number; addon: NativeCudaAddon } {
  if (typeof value !== 'string') throw invalidType(argument, expected, value);
  if (!isCudaDeviceName(value)) throw invalidValue(argument, expected, value);
  const ordinal = resolveCudaOrdinal(argument, value, 0, advice);
  return { ordinal, addon: cudaAddon(`${argument} is '${value}'`, advice, argument) };
}
