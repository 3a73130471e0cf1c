// siglip-kernels/tfjs on TensorFlow.js's WASM backend (tensors live in the WebAssembly heap:
// the adapter reads copies of the inputs and its gradients are copied in). The same checks as
// the CPU backend's (test/helpers/tfjs_suite.ts), in a process of their own (ava runs each
// file in its own worker), so the backend switch touches no other test.
import test from 'ava';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

import { registerTfjsSuite } from './helpers/tfjs_suite';

test.before(async () => {
  await tf.setBackend('wasm');
  await tf.ready();
});

registerTfjsSuite(test, tf, 'wasm', 6);
