/**
 * Assembles one loss call: validates image, text and options together (shapes that must
 * agree) and resolves the defaults, so that messages name the caller's own arguments; then
 * runs it on the CPU addon or the CUDA exports and wraps device gradients.
 *
 * @internal
 * @packageDocumentation
 */
import { cudaAddon } from './cuda';
import { DeviceMatrix, liveNative, wrapGradient } from './device_matrix';
import { loadAddon } from './loader';
import { type BFloat16Matrix, checkHostMatrix, type Matrix } from './matrix';
import type {
  NativeCudaAddon,
  NativeCudaInput,
  NativeCudaLossOptions,
  NativeDeviceMatrix,
  NativeHostMatrix,
  NativeLossOptions,
  NativeLossResult,
} from './native';
import { type DeviceInputs, type InputShape, resolveLossOptions } from './options';
import { Description, invalidType, invalidValue } from './validate';

type Kind = 'sigmoid' | 'softmax';

/** One prepared loss call: for the CPU addon, or for the CUDA exports. */
export type LossCall =
  | { target: 'cpu'; image: NativeHostMatrix; text: NativeHostMatrix; options: NativeLossOptions }
  | { target: 'cuda'; addon: NativeCudaAddon; image: NativeCudaInput; text: NativeCudaInput; options: NativeCudaLossOptions };

/** A loss result whose gradients are Float32Arrays or DeviceMatrix objects. */
export type LossOutput = NativeLossResult<Float32Array | DeviceMatrix>;

/**
 * Whether image and text are DeviceMatrix objects: both (true) or neither (false); one of
 * each is a TypeError naming the host one. Every call taking a pair of inputs uses it.
 */
export function bothOnDevice(image: unknown, text: unknown): boolean {
  const imageOnDevice = image instanceof DeviceMatrix;
  if (imageOnDevice === text instanceof DeviceMatrix) return imageOnDevice;
  const [argument, value, other] = imageOnDevice ? ['text', text, 'image'] : ['image', image, 'text'];
  throw invalidType(argument, `a DeviceMatrix, as ${other} is one (both inputs live on the GPU or neither)`, value);
}

/** text has image's dtype (a pair of DeviceMatrix inputs). */
export function checkSameDtype(image: DeviceMatrix, text: DeviceMatrix): void {
  if (text.dtype !== image.dtype) {
    const received = new Description(`one of dtype ${text.dtype}`);
    throw invalidType('text', `a DeviceMatrix of dtype ${image.dtype} (as image)`, received);
  }
}

function deviceInputs(image: DeviceMatrix, text: DeviceMatrix): DeviceInputs {
  checkSameDtype(image, text);
  if (text.device !== image.device) {
    throw invalidValue('text', `a DeviceMatrix on ${image.device} (as image)`, new Description(`one on ${text.device}`));
  }
  return { ordinal: Number(image.device.slice('cuda:'.length)), dtype: image.dtype };
}

export function prepareLossCall(kind: Kind, image: unknown, text: unknown, options: unknown): LossCall {
  const onDevice = bothOnDevice(image, text);
  let x: InputShape;
  let y: InputShape;
  let inputs: DeviceInputs | undefined;
  let nativeImage: NativeDeviceMatrix | undefined;
  let nativeText: NativeDeviceMatrix | undefined;
  if (onDevice && image instanceof DeviceMatrix && text instanceof DeviceMatrix) {
    nativeImage = liveNative(image, 'image');
    nativeText = liveNative(text, 'text');
    x = { rows: image.rows, cols: image.cols };
    y = { rows: text.rows, cols: text.cols };
    inputs = deviceInputs(image, text);
  } else {
    x = checkHostMatrix('image', image);
    y = checkHostMatrix('text', text);
  }
  if (x.cols !== y.cols) {
    throw invalidValue(
      'text.cols',
      `${x.cols} (image.cols: image and text embeddings must have the same width D)`,
      y.cols,
    );
  }
  const resolved = resolveLossOptions(kind, options, inputs);
  if (resolved.options.imageIds === undefined && resolved.options.textIds === undefined && x.rows !== y.rows) {
    throw invalidValue(
      'text.rows',
      `${x.rows} (image.rows: without imageIds/textIds, row i of image pairs with row i of text)`,
      new Description(`${y.rows}`),
    );
  }
  // NaN/Infinity in the data are found by the core's validateLossRequest (csrc/core/validate.cpp),
  // or on the GPU for CUDA calls, whose message names image or text and gives the index, row
  // and column. Scanning here too would put an O(N·D) pass on the JavaScript thread of every
  // Promise call.
  // bfloat16 bits on the host: the CPU's precision 'bf16' only, for both inputs.
  const bits = (v: InputShape) => (v as { data?: unknown }).data instanceof Uint16Array;
  if (bits(x) || bits(y)) {
    const [argument, value] = bits(x)
      ? ['image.data', (x as BFloat16Matrix).data]
      : ['text.data', (y as BFloat16Matrix).data];
    if (resolved.target !== 'cpu' || resolved.options.precision !== 'bf16') {
      const expected =
        resolved.target === 'cpu'
          ? "a Float32Array (a Uint16Array of bfloat16 bits needs precision 'bf16')"
          : "a Float32Array (on CUDA, bfloat16 inputs are DeviceMatrix objects of dtype 'bfloat16')";
      throw invalidType(argument, expected, value);
    }
    if (bits(x) !== bits(y)) {
      const other = bits(x) ? 'text.data' : 'image.data';
      const floats = bits(x) ? (y as Matrix).data : (x as Matrix).data;
      throw invalidType(other, `a Uint16Array of bfloat16 bits (as ${argument})`, floats);
    }
  }
  if (resolved.target === 'cpu') {
    return {
      target: 'cpu',
      image: x as Matrix | BFloat16Matrix,
      text: y as Matrix | BFloat16Matrix,
      options: resolved.options,
    };
  }
  return {
    target: 'cuda',
    addon: cudaAddon(`options.device is 'cuda:${resolved.options.device}'`, '', 'options.device'),
    image: nativeImage ?? (x as Matrix),
    text: nativeText ?? (y as Matrix),
    options: resolved.options,
  };
}

function wrapGradients(result: NativeLossResult<Float32Array | NativeDeviceMatrix>): LossOutput {
  const g = result.grad;
  if (g === undefined) return { loss: result.loss };
  const grad: NonNullable<LossOutput['grad']> = { image: wrapGradient(g.image), text: wrapGradient(g.text), logitScale: g.logitScale };
  if (g.logitBias !== undefined) grad.logitBias = g.logitBias;
  return { loss: result.loss, grad };
}

/**
 * One loss call, from the caller's arguments to its result: prepared (checked, defaults
 * filled in), then run on the JavaScript thread (`sync`) or off it, on libuv's pool (a
 * Promise; the CUDA call synchronises there). Every public loss function is this.
 */
export function runLoss(kind: Kind, image: unknown, text: unknown, options: unknown, wantGrad: boolean, sync: true): LossOutput;
export function runLoss(kind: Kind, image: unknown, text: unknown, options: unknown, wantGrad: boolean, sync: false): Promise<LossOutput>;
export function runLoss(
  kind: Kind,
  image: unknown,
  text: unknown,
  options: unknown,
  wantGrad: boolean,
  sync: boolean,
): LossOutput | Promise<LossOutput> {
  const call = prepareLossCall(kind, image, text, options);
  const addon = call.target === 'cpu' ? loadAddon().addon : call.addon;
  const name = `${call.target === 'cpu' ? kind : `cuda${kind === 'sigmoid' ? 'Sigmoid' : 'Softmax'}`}Loss${sync ? '' : 'Async'}`;
  type Result = NativeLossResult<Float32Array | NativeDeviceMatrix>;
  const run = (addon as unknown as Record<string, (...args: unknown[]) => Result | Promise<Result>>)[name]!;
  const result = run.call(addon, call.image, call.text, call.options, wantGrad);
  return sync ? wrapGradients(result as Result) : (result as Promise<Result>).then(wrapGradients);
}
