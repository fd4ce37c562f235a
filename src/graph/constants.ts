/**
 * Kept tensors whose values never change once made (caches derived from a config: rotary
 * tables, causal masks, ridge operators, basis read-outs at fixed positions). A compiled graph
 * may bake such a tensor in as a constant; any other tensor made before a trace must be fed.
 */
import type * as tf from '@tensorflow/tfjs';

const constants = new WeakSet<object>();

/** Marks `t` as never changing (returns it). */
export function markGraphConstant<T extends tf.Tensor>(t: T): T {
  constants.add(t.dataId);
  return t;
}

/** Whether the tensor with this data id was marked by {@link markGraphConstant}. */
export function isGraphConstant(dataId: object): boolean {
  return constants.has(dataId);
}
