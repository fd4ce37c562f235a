/**
 * Tensors derived from weights by exact copies (slices, unstacks), kept between calls and
 * rebuilt when a weight changes: `Variable.assign` (a training or online-learning step, a
 * rollback) gives the variable a new data id, which the view compares against. For inference
 * only: a training forward must derive inside its gradient tape.
 */
import * as tf from '@tensorflow/tfjs';

interface View {
  /** The data id of the source when the view was built. */
  source: object;
  tensors: tf.Tensor[];
}

export class WeightViews {
  private readonly views = new Map<string, View>();

  /** The tensors `build` makes from `source` (kept; owned by this cache), rebuilt when `source` changed. */
  get(name: string, source: tf.Variable, build: (w: tf.Tensor) => tf.Tensor[]): tf.Tensor[] {
    const hit = this.views.get(name);
    if (hit !== undefined && hit.source === source.dataId && !hit.tensors.some((t) => t.isDisposed)) return hit.tensors;
    if (hit !== undefined) tf.dispose(hit.tensors);
    const tensors = tf.tidy(() => build(source)).map((t) => tf.keep(t));
    this.views.set(name, { source: source.dataId, tensors });
    return tensors;
  }

  /** Every view's tensors by name (`name:index`), as built so far. */
  entries(): [string, tf.Tensor][] {
    return [...this.views].flatMap(([name, v]) => v.tensors.map((t, i): [string, tf.Tensor] => [`${name}:${i}`, t]));
  }

  /** Frees every view. */
  dispose(): void {
    for (const v of this.views.values()) tf.dispose(v.tensors);
    this.views.clear();
  }
}
