/**
 * Typed access to the internals of tfjs-node's kernel backend that graph compilation needs:
 * the N-API binding every kernel goes through (`executeOp`), the map from tfjs data ids to
 * native tensor handles, and the SavedModel entry points. Nothing here is tfjs public API, so
 * {@link nativeBackend} checks each member before use and returns undefined when any is missing
 * (another backend, another tfjs-node version): callers then stay eager.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs';

/** One op attribute as tfjs-node passes it to the binding (`type` is a TF_ATTR_* code). */
export interface OpAttr {
  name: string;
  type: number;
  value: unknown;
}

/** A native tensor handle's id, shape and TF_DataType code. */
export interface TensorMeta {
  id: number;
  shape: number[];
  dtype: number;
}

/** The N-API binding (the members used here). */
export interface NativeBinding {
  executeOp(name: string, attrs: OpAttr[], inputIds: number[], numOutputs: number): TensorMeta[];
  tensorDataSync(id: number): ArrayLike<number>;
  createTensor(shape: number[], dtype: number, values: ArrayLike<number>): number;
  deleteTensor(id: number): void;
  loadSavedModel(dir: string, tags: string): number;
  deleteSavedModel(id: number): void;
  runSavedModel(id: number, inputIds: number[], inputNames: string, outputNames: string): TensorMeta[];
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_FLOAT: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
  TF_ATTR_SHAPE: number;
  TF_FLOAT: number;
  TF_INT32: number;
  TF_BOOL: number;
}

/** What the backend keeps per tfjs data id: a native handle id, or host values not yet uploaded. */
export interface TensorData {
  id: number;
  shape: number[];
  dtype: number;
  values: ArrayLike<number> | null;
}

/** tfjs-node's kernel backend (the members used here). */
export interface NativeKernelBackend {
  binding: NativeBinding;
  tensorMap: { get(dataId: object): TensorData | undefined; has(dataId: object): boolean };
  getInputTensorIds(tensors: readonly tf.TensorInfo[]): number[];
  write(values: ArrayLike<number>, shape: number[], dtype: tf.DataType): object;
  createOutputTensor(meta: TensorMeta): tf.Tensor;
}

/** The active tfjs-node backend's internals, or undefined on another backend or an unexpected build. */
export function nativeBackend(): NativeKernelBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const b = tf.backend() as unknown as Partial<NativeKernelBackend>;
  const binding = b.binding as Partial<NativeBinding> | undefined;
  const fns = ['executeOp', 'tensorDataSync', 'createTensor', 'deleteTensor', 'loadSavedModel', 'deleteSavedModel', 'runSavedModel'] as const;
  if (binding === undefined || fns.some((f) => typeof binding[f] !== 'function')) return undefined;
  if (typeof b.getInputTensorIds !== 'function' || typeof b.createOutputTensor !== 'function' || b.tensorMap === undefined) return undefined;
  return b as NativeKernelBackend;
}

/** A generated protobuf message (only building and serialising are used). */
export interface ProtoMessage {
  serializeBinary(): Uint8Array;
}
export interface TensorShapeDimMsg extends ProtoMessage {
  setSize(n: number): void;
}
export interface TensorShapeMsg extends ProtoMessage {
  addDim(d: TensorShapeDimMsg): void;
}
export interface TensorMsg extends ProtoMessage {
  setDtype(t: number): void;
  setTensorShape(s: TensorShapeMsg): void;
  setTensorContent(bytes: Uint8Array): void;
}
export interface ListValueMsg extends ProtoMessage {
  addS(v: Uint8Array): void;
  addI(v: number): void;
  addF(v: number): void;
  addB(v: boolean): void;
  addType(v: number): void;
  addShape(v: TensorShapeMsg): void;
}
export interface AttrValueMsg extends ProtoMessage {
  setS(v: Uint8Array): void;
  setI(v: number): void;
  setF(v: number): void;
  setB(v: boolean): void;
  setType(v: number): void;
  setShape(v: TensorShapeMsg): void;
  setTensor(v: TensorMsg): void;
  setList(v: ListValueMsg): void;
}
export interface NodeDefMsg extends ProtoMessage {
  setName(v: string): void;
  setOp(v: string): void;
  addInput(v: string): void;
  getAttrMap(): { set(key: string, value: AttrValueMsg): void };
}
export interface VersionDefMsg extends ProtoMessage {
  setProducer(v: number): void;
  setMinConsumer(v: number): void;
}
export interface GraphDefMsg extends ProtoMessage {
  addNode(n: NodeDefMsg): void;
  setVersions(v: VersionDefMsg): void;
}
export interface MetaInfoDefMsg extends ProtoMessage {
  addTags(v: string): void;
}
export interface MetaGraphDefMsg extends ProtoMessage {
  setMetaInfoDef(v: MetaInfoDefMsg): void;
  setGraphDef(v: GraphDefMsg): void;
}
export interface SavedModelMsg extends ProtoMessage {
  setSavedModelSchemaVersion(v: number): void;
  addMetaGraphs(v: MetaGraphDefMsg): void;
}

/** The constructors used from tfjs-node's generated TensorFlow protobuf module. */
export interface TfProtos {
  AttrValue: (new () => AttrValueMsg) & { ListValue: new () => ListValueMsg };
  NodeDef: new () => NodeDefMsg;
  GraphDef: new () => GraphDefMsg;
  VersionDef: new () => VersionDefMsg;
  Tensor: new () => TensorMsg;
  TensorShape: (new () => TensorShapeMsg) & { Dim: new () => TensorShapeDimMsg };
  MetaGraphDef: (new () => MetaGraphDefMsg) & { MetaInfoDef: new () => MetaInfoDefMsg };
  SavedModel: new () => SavedModelMsg;
}

let protos: TfProtos | undefined;

/** tfjs-node's protobuf module (GraphDef, NodeDef, AttrValue, SavedModel, ...). */
export function tfProtos(): TfProtos {
  if (protos === undefined) {
    const require = createRequire(import.meta.url);
    protos = require('@tensorflow/tfjs-node/dist/proto/api_pb.js') as TfProtos;
  }
  return protos;
}
