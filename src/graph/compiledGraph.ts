/**
 * A graph built by {@link GraphDefBuilder}, loaded into a native TensorFlow session: one
 * `runSavedModel` call runs the whole program (TensorFlow's executor and optimiser instead of one
 * eager dispatch per op).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { GraphCompileError } from '../errors.js';
import type { BuiltGraph } from './graphDef.js';
import type { NativeKernelBackend } from './nativeBackend.js';

export class CompiledGraph {
  private id: number | undefined;
  private readonly feedNames: string;
  private readonly fetchNames: string;
  readonly numFeeds: number;
  readonly numFetches: number;

  private constructor(
    private readonly backend: NativeKernelBackend,
    id: number,
    built: BuiltGraph,
  ) {
    this.id = id;
    this.feedNames = built.feedNames.join(',');
    this.fetchNames = built.fetchNames.join(',');
    this.numFeeds = built.feedNames.length;
    this.numFetches = built.fetchNames.length;
  }

  /** Loads a built graph (through a temporary SavedModel directory, removed at once). */
  static load(backend: NativeKernelBackend, built: BuiltGraph): CompiledGraph {
    const dir = mkdtempSync(join(tmpdir(), 'infiniformer-graph-'));
    try {
      writeFileSync(join(dir, 'saved_model.pb'), built.savedModel);
      const id = backend.binding.loadSavedModel(dir, 'serve');
      return new CompiledGraph(backend, id, built);
    } catch (error) {
      throw new GraphCompileError(`TensorFlow refused the compiled graph: ${String(error)}`, { cause: error });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** Runs the graph on `feeds` (in feed order); returns new tensors in fetch order (caller owns). */
  run(feeds: readonly tf.Tensor[]): tf.Tensor[] {
    return this.runIds(this.backend.getInputTensorIds(feeds));
  }

  /** Like {@link run}, with the feeds given as native tensor ids. */
  runIds(ids: readonly number[]): tf.Tensor[] {
    if (this.id === undefined) throw new GraphCompileError('the compiled graph was disposed');
    if (ids.length !== this.numFeeds) throw new GraphCompileError(`expected ${this.numFeeds} feeds, got ${ids.length}`);
    const metas = this.backend.binding.runSavedModel(this.id, [...ids], this.feedNames, this.fetchNames);
    return metas.map((m) => this.backend.createOutputTensor(m));
  }

  /** Frees the session. */
  dispose(): void {
    if (this.id === undefined) return;
    this.backend.binding.deleteSavedModel(this.id);
    this.id = undefined;
  }
}
