// The "tfjs autodiff" benchmark method: the sigmoid loss written in TensorFlow.js ops on its
// CPU backend, with its gradients from tfjs's autodiff (tf.valueAndGrads): what a tfjs user
// computes without siglip-kernels/tfjs. @tensorflow/tfjs is loaded only when this method is
// asked for (a dynamic import), so the rest of the benchmark, and the compiled bench that
// `npx siglip-kernels bench` runs, never need it.
import type * as tfType from '@tensorflow/tfjs';

type Tf = typeof tfType;

export interface TfjsCallOutcome {
  loss: number;
  outputBytes: number;
}

/** @tensorflow/tfjs on its CPU backend; a clear message where it is not installed. */
export async function loadTfjs(): Promise<Tf> {
  let loaded: Tf & { default?: Tf };
  try {
    loaded = (await import('@tensorflow/tfjs')) as Tf & { default?: Tf };
  } catch (error) {
    throw new Error(`the tfjs-autodiff method needs @tensorflow/tfjs (npm install @tensorflow/tfjs): ${error instanceof Error ? error.message : String(error)}`);
  }
  // Through import() a CommonJS bundle may come as the namespace's default export only.
  const tf = typeof loaded.customGrad === 'function' ? loaded : loaded.default!;
  await tf.setBackend('cpu');
  await tf.ready();
  return tf;
}

/**
 * The call the case times: the loss (fwd) or the loss and all four gradients (fwd+bwd) of
 * SPEC.md's sigmoid loss in tfjs ops, (1/N) Σ softplus(−z · (exp(s)·X·Yᵀ + b)), at the default
 * s = ln 10, b = −10. The inputs wrap the benchmark's arrays (the CPU backend copies nothing);
 * every tensor a call makes is disposed before it returns.
 */
export function tfjsSigmoidCall(tf: Tf, image: Float32Array, text: Float32Array, n: number, m: number, d: number, withGrad: boolean): () => TfjsCallOutcome {
  const x = tf.tensor2d(image, [n, d]);
  const y = tf.tensor2d(text, [m, d]);
  const s = tf.scalar(Math.log(10));
  const b = tf.scalar(-10);
  // z: +1 for the positive pairs (the diagonal), −1 elsewhere; written in place, with no
  // temporary N×M tensors whose freed memory the measured call could reuse unseen.
  const signs = new Float32Array(n * m).fill(-1);
  for (let i = 0; i < Math.min(n, m); i++) signs[i * m + i] = 1;
  const z = tf.tensor2d(signs, [n, m]);
  const loss = (xx: tfType.Tensor, yy: tfType.Tensor, ss: tfType.Tensor, bb: tfType.Tensor): tfType.Scalar => {
    const logits = tf.add(tf.mul(tf.exp(ss), tf.matMul(xx as tfType.Tensor2D, yy as tfType.Tensor2D, false, true)), bb);
    return tf.div(tf.sum(tf.softplus(tf.neg(tf.mul(z, logits)))), n) as tfType.Scalar;
  };
  if (!withGrad) {
    return () => {
      const value = tf.tidy(() => loss(x, y, s, b));
      const result = { loss: value.dataSync()[0]!, outputBytes: 0 };
      value.dispose();
      return result;
    };
  }
  return () => {
    const { value, grads } = tf.valueAndGrads(loss)([x, y, s, b]);
    const result = { loss: value.dataSync()[0]!, outputBytes: 4 * (grads[0]!.size + grads[1]!.size) };
    tf.dispose([value, ...grads]);
    return result;
  };
}
