/**
 * Types of the raw binding (csrc/addon/addon.cpp). Internal: the public API in index.ts wraps
 * it, validating first so that users see messages naming their own arguments.
 *
 * @internal
 * @packageDocumentation
 */

/** What the addon takes for image and text. */
export interface NativeMatrix {
  data: Float32Array;
  rows: number;
  cols: number;
}

/** Fully resolved options: the addon has no defaults. */
export interface NativeLossOptions {
  logitScale: number;
  /** Sigmoid only; must be absent for softmax. */
  logitBias?: number;
  imageIds?: Int32Array;
  textIds?: Int32Array;
  method: 'fused' | 'naive';
  threads: number;
}

export interface NativeLossResult {
  loss: number;
  grad?: { image: Float32Array; text: Float32Array; logitScale: number; logitBias?: number };
}

export interface NativeBackendInfo {
  simd: string;
  simdReason: string;
  hardwareThreads: number;
  tileRows: number;
  tileCols: number;
}

export interface NativeAddon {
  sigmoidLoss(image: NativeMatrix, text: NativeMatrix, options: NativeLossOptions, wantGrad: boolean): NativeLossResult;
  softmaxLoss(image: NativeMatrix, text: NativeMatrix, options: NativeLossOptions, wantGrad: boolean): NativeLossResult;
  sigmoidLossAsync(
    image: NativeMatrix,
    text: NativeMatrix,
    options: NativeLossOptions,
    wantGrad: boolean,
  ): Promise<NativeLossResult>;
  softmaxLossAsync(
    image: NativeMatrix,
    text: NativeMatrix,
    options: NativeLossOptions,
    wantGrad: boolean,
  ): Promise<NativeLossResult>;
  backendInfo(): NativeBackendInfo;
  gemmABt(a: Float32Array, b: Float32Array, m: number, n: number, k: number, threads: number): Float32Array;
}
