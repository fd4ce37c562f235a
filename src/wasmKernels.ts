/**
 * Kernels the tfjs wasm backend lacks or runs slowly, registered when wasm is selected:
 *
 * - `UnsortedSegmentSum` (the gradient of `gather`, i.e. of every embedding lookup);
 * - `Conv2DBackpropFilter` (the gradient of a conv1d/conv2d filter), NHWC;
 * - `BatchMatMul` with a transposed operand: wasm's XNNPACK path is fast only for untransposed
 *   operands (~12x slower otherwise on this machine), and autodiff of `matMul` always asks for
 *   transposes, so the wrapper materialises the transpose (cheap, O(size)) and runs the fast path.
 *
 * The first two compute on the host from the wasm heap; they are only on gradient paths.
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs';

/** Minimal view of the wasm backend's public methods used here. */
interface WasmBackendLike {
  readSync(dataId: object): ArrayLike<number>;
  makeOutput(shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: Float32Array | Int32Array): TensorInfo;
  disposeData(dataId: object): boolean;
}

const WASM = 'wasm';
let registered = false;

function unsortedSegmentSum(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendLike;
  const { x, segmentIds } = args.inputs as { x: TensorInfo; segmentIds: TensorInfo };
  const numSegments = Number((args.attrs as { numSegments: number }).numSegments);
  const xs = backend.readSync(x.dataId);
  const ids = backend.readSync(segmentIds.dataId);
  // segmentIds covers the leading dims of x; the rest is one "row" summed per id.
  const idCount = segmentIds.shape.reduce((a, b) => a * b, 1);
  const inner = x.shape.slice(segmentIds.shape.length).reduce((a, b) => a * b, 1);
  const out = new Float32Array(numSegments * inner);
  for (let r = 0; r < idCount; r++) {
    const id = ids[r] as number;
    if (id < 0 || id >= numSegments) continue; // TF semantics: out-of-range ids are dropped
    const src = r * inner;
    const dst = id * inner;
    for (let k = 0; k < inner; k++) out[dst + k]! += xs[src + k] as number;
  }
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
  return backend.makeOutput(outShape, x.dtype === 'int32' ? 'float32' : x.dtype, undefined, out);
}

function conv2DBackpropFilter(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as unknown as WasmBackendLike;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  if (attrs.dataFormat === 'NCHW') {
    throw new Error('Conv2DBackpropFilter on wasm supports NHWC only');
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const xs = backend.readSync(x.dataId);
  const dys = backend.readSync(dy.dataId);
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, outChannels } = info;
  const { filterHeight, filterWidth, strideHeight, strideWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const dW = new Float32Array(filterHeight * filterWidth * inChannels * outChannels);
  for (let fh = 0; fh < filterHeight; fh++) {
    for (let fw = 0; fw < filterWidth; fw++) {
      for (let b = 0; b < batchSize; b++) {
        for (let oh = 0; oh < outHeight; oh++) {
          const ih = oh * strideHeight - padTop + fh;
          if (ih < 0 || ih >= inHeight) continue;
          for (let ow = 0; ow < outWidth; ow++) {
            const iw = ow * strideWidth - padLeft + fw;
            if (iw < 0 || iw >= inWidth) continue;
            const xBase = ((b * inHeight + ih) * inWidth + iw) * inChannels;
            const dyBase = ((b * outHeight + oh) * outWidth + ow) * outChannels;
            for (let ci = 0; ci < inChannels; ci++) {
              const xv = xs[xBase + ci] as number;
              if (xv === 0) continue;
              const wBase = ((fh * filterWidth + fw) * inChannels + ci) * outChannels;
              for (let co = 0; co < outChannels; co++) dW[wBase + co]! += xv * (dys[dyBase + co] as number);
            }
          }
        }
      }
    }
  }
  return backend.makeOutput([filterHeight, filterWidth, inChannels, outChannels], 'float32', undefined, dW);
}

/** Wrap wasm's BatchMatMul so that transposed operands are transposed explicitly first. */
function fastTransposedBatchMatMul(original: KernelConfig, transpose: KernelConfig): KernelConfig {
  const run: KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    if (!transposeA && !transposeB) return original.kernelFunc(args);
    const backend = args.backend as unknown as WasmBackendLike;
    const swapLast = (t: TensorInfo): TensorInfo => {
      const perm = t.shape.map((_, i) => i);
      const n = perm.length;
      [perm[n - 2], perm[n - 1]] = [perm[n - 1]!, perm[n - 2]!];
      return transpose.kernelFunc({ inputs: { x: t }, backend: args.backend, attrs: { perm } }) as TensorInfo;
    };
    const at = transposeA ? swapLast(a) : a;
    const bt = transposeB ? swapLast(b) : b;
    const out = original.kernelFunc({
      inputs: { a: at, b: bt },
      backend: args.backend,
      attrs: { ...args.attrs, transposeA: false, transposeB: false },
    }) as TensorInfo;
    if (at !== a) backend.disposeData(at.dataId);
    if (bt !== b) backend.disposeData(bt.dataId);
    return out;
  };
  return { ...original, kernelFunc: run };
}

/** Register the extra wasm kernels once. Safe to call repeatedly. */
export function registerWasmKernels(): void {
  if (registered) return;
  registered = true;
  const reg = (kernelName: string, kernelFunc: KernelFunc): void => {
    tf.registerKernel({ kernelName, backendName: WASM, kernelFunc });
  };
  if (!hasKernel('UnsortedSegmentSum')) reg('UnsortedSegmentSum', unsortedSegmentSum as KernelFunc);
  if (!hasKernel('Conv2DBackpropFilter')) reg('Conv2DBackpropFilter', conv2DBackpropFilter as KernelFunc);
  const matMul = tf.getKernel('BatchMatMul', WASM);
  const transpose = tf.getKernel('Transpose', WASM);
  if (matMul && transpose) {
    tf.unregisterKernel('BatchMatMul', WASM);
    tf.registerKernel(fastTransposedBatchMatMul(matMul, transpose));
  }
}

function hasKernel(name: string): boolean {
  return tf.getKernel(name, WASM) !== undefined;
}
