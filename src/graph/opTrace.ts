/**
 * Records the straight-line program one eager computation runs on tfjs-node: every kernel
 * reaches native TensorFlow through `binding.executeOp(op, attrs, inputIds, numOutputs)`, so
 * wrapping that one function (and the upload of host values just before it) during a callback
 * yields the ops, their attributes, and how native tensor ids flow between them. The callback
 * still runs eagerly: its results are real, the trace is a by-product.
 */
import type * as tf from '@tensorflow/tfjs';
import type { NativeBinding, NativeKernelBackend, OpAttr, TensorMeta } from './nativeBackend.js';

/** One executed kernel. */
export interface TracedOp {
  op: string;
  attrs: OpAttr[];
  inputs: number[];
  outputs: TensorMeta[];
}

/** Host values of a tensor uploaded inside the trace (a constant of the program). */
export interface HostTensor {
  shape: number[];
  dtype: number;
  values: ArrayLike<number>;
}

/** A native tensor the traced ops read but did not make. */
export interface ExternalInput {
  /** The tfjs data id it belongs to (to tell weights and state from constants). */
  dataId: object;
  shape: number[];
  dtype: number;
  /** Set when its values were uploaded from the host inside the trace. */
  host?: HostTensor;
}

/** The recorded program. */
export interface OpTrace {
  ops: TracedOp[];
  /** tfjs data ids written from host values inside the trace (constants the program made). */
  written: WeakSet<object>;
  /** How many times the callback read a native tensor back to the host (0 for a compilable program). */
  hostReads: number;
  /** Native ids made by the traced ops. */
  produced: Set<number>;
  /** Native ids read but not made, in first-use order. */
  external: Map<number, ExternalInput>;
}

/** Records what one callback runs (one trace at a time; not re-entrant). */
export class OpTracer {
  constructor(private readonly backend: NativeKernelBackend) {}

  /**
   * Runs `fn` eagerly while recording its kernels. A program that read values back to the
   * host (`hostReads` > 0) cannot run as one graph; the result is real either way.
   */
  trace<T>(fn: () => T): { result: T; trace: OpTrace } {
    const backend = this.backend;
    const original = backend.binding;
    const originalIds = Object.hasOwn(backend, 'getInputTensorIds') ? backend.getInputTensorIds : undefined;
    const trace: OpTrace = { ops: [], written: new WeakSet(), hostReads: 0, produced: new Set(), external: new Map() };
    const originalWrite = Object.hasOwn(backend, 'write') ? backend.write : undefined;
    const protoIds = Object.getPrototypeOf(backend) as NativeKernelBackend;
    backend.getInputTensorIds = (tensors: readonly tf.TensorInfo[]): number[] => {
      const before = tensors.map((t) => {
        const info = backend.tensorMap.get(t.dataId);
        return info?.values == null ? undefined : { shape: [...info.shape], dtype: info.dtype, values: Array.from(info.values) };
      });
      const ids = protoIds.getInputTensorIds.call(backend, tensors);
      ids.forEach((id, i) => {
        if (trace.produced.has(id) || trace.external.has(id)) return;
        const t = tensors[i]!;
        const host = before[i];
        trace.external.set(id, { dataId: t.dataId, shape: [...t.shape], dtype: backend.tensorMap.get(t.dataId)?.dtype ?? -1, ...(host ? { host } : {}) });
      });
      return ids;
    };
    backend.write = (values: ArrayLike<number>, shape: number[], dtype: tf.DataType): object => {
      const dataId = protoIds.write.call(backend, values, shape, dtype);
      trace.written.add(dataId);
      return dataId;
    };
    // An empty target: the binding's own properties are read-only, which a proxy of it must echo.
    const target = original;
    backend.binding = new Proxy(Object.create(null) as NativeBinding, {
      get(_empty, key: keyof NativeBinding) {
        if (key === 'executeOp') {
          return (op: string, attrs: OpAttr[], inputs: number[], n: number): TensorMeta[] => {
            const outputs = target.executeOp(op, attrs, inputs, n);
            trace.ops.push({ op, attrs, inputs: [...inputs], outputs });
            for (const o of outputs) trace.produced.add(o.id);
            return outputs;
          };
        }
        if (key === 'tensorDataSync') {
          return (id: number): ArrayLike<number> => {
            trace.hostReads++;
            return target.tensorDataSync(id);
          };
        }
        const v = target[key];
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    let result: T;
    try {
      result = fn();
    } finally {
      backend.binding = original;
      if (originalIds === undefined) delete (backend as Partial<NativeKernelBackend>).getInputTensorIds;
      else backend.getInputTensorIds = originalIds;
      if (originalWrite === undefined) delete (backend as Partial<NativeKernelBackend>).write;
      else backend.write = originalWrite;
    }
    return { result, trace };
  }
}
