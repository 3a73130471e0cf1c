/**
 * Assembles one loss call: validates image, text and options together (shapes that must
 * agree) and resolves the defaults, so that messages name the caller's own arguments.
 *
 * @internal
 * @packageDocumentation
 */
import { checkMatrix } from './matrix';
import type { NativeLossOptions, NativeMatrix } from './native';
import { resolveLossOptions } from './options';
import { Description, invalidValue } from './validate';

export interface LossCall {
  image: NativeMatrix;
  text: NativeMatrix;
  options: NativeLossOptions;
}

export function prepareLossCall(kind: 'sigmoid' | 'softmax', image: unknown, text: unknown, options: unknown): LossCall {
  const x = checkMatrix('image', image);
  const y = checkMatrix('text', text);
  if (x.cols !== y.cols) {
    throw invalidValue(
      'text.cols',
      `${x.cols} (image.cols: image and text embeddings must have the same width D)`,
      y.cols,
    );
  }
  const resolved = resolveLossOptions(kind, options, x, y);
  if (resolved.imageIds === undefined && x.rows !== y.rows) {
    throw invalidValue(
      'text.rows',
      `${x.rows} (image.rows: without imageIds/textIds, row i of image pairs with row i of text)`,
      new Description(`${y.rows}`),
    );
  }
  // NaN/Infinity in the data are found by the core's validateLossRequest (csrc/core/validate.cpp),
  // whose message names image or text and gives the index, row and column. Scanning here too
  // would put an O(N·D) pass on the JavaScript thread of every Promise call.
  return { image: x, text: y, options: resolved };
}
