/**
 * Turns a recorded op program ({@link OpTrace}) into a TensorFlow SavedModel (`saved_model.pb`
 * bytes): one NodeDef per traced op with the attributes tfjs-node gave it, a Placeholder per fed
 * input, a Const per baked-in value. The SavedModel has no variables (weights are fed), so
 * TensorFlow's loader restores nothing and runs the graph in a plain session.
 */
import { GraphCompileError } from '../errors.js';
import { tfProtos } from './nativeBackend.js';
import type { AttrValueMsg, GraphDefMsg, NativeBinding, NodeDefMsg, OpAttr, TensorMsg, TensorShapeMsg, TfProtos } from './nativeBackend.js';
import type { HostTensor, OpTrace } from './opTrace.js';

/** What to build from a trace. */
export interface GraphSpec {
  trace: OpTrace;
  /** External native ids fed at run time (placeholders), in feed order. */
  feeds: readonly number[];
  /** Feeds whose placeholder gets no static shape (their shape varies between runs). */
  anyShape?: ReadonlySet<number>;
  /** External native ids baked in as constants. */
  constants: ReadonlyMap<number, HostTensor>;
  /** Native ids to fetch (op outputs, feeds or constants), in order. */
  fetches: readonly number[];
  /** Mark every op for XLA's just-in-time compiler (see {@link GraphDefBuilder.markForXla}). */
  xla?: boolean;
}

/** A serialised SavedModel and the tensor names to feed and fetch. */
export interface BuiltGraph {
  savedModel: Uint8Array;
  feedNames: string[];
  fetchNames: string[];
  numNodes: number;
}

/** TF_ATTR_* codes of the binding (they equal the C API's TF_AttrType). */
type AttrCodes = Pick<NativeBinding, 'TF_ATTR_STRING' | 'TF_ATTR_INT' | 'TF_ATTR_FLOAT' | 'TF_ATTR_BOOL' | 'TF_ATTR_TYPE' | 'TF_ATTR_SHAPE'>;

/** The TF_DataType codes a Const can hold here (they equal tensorflow.DataType). */
const DT_FLOAT = 1;
const DT_INT32 = 3;
const DT_BOOL = 10;

export class GraphDefBuilder {
  private readonly pb: TfProtos = tfProtos();
  private readonly encoder = new TextEncoder();

  constructor(private readonly codes: AttrCodes) {}

  build(spec: GraphSpec): BuiltGraph {
    const pb = this.pb;
    const graph = new pb.GraphDef();
    const names = new Map<number, string>();
    spec.feeds.forEach((id, k) => {
      const ext = spec.trace.external.get(id);
      if (ext === undefined) throw new GraphCompileError(`feed ${k} (native tensor ${id}) is not an input of the traced program`);
      const node = this.node(`feed_${k}`, 'Placeholder', []);
      this.setAttr(node, 'dtype', (a) => a.setType(ext.dtype));
      if (spec.anyShape?.has(id) !== true) this.setAttr(node, 'shape', (a) => a.setShape(this.shape(ext.shape)));
      graph.addNode(node);
      names.set(id, `feed_${k}`);
    });
    let k = 0;
    for (const [id, value] of spec.constants) {
      const node = this.node(`const_${k}`, 'Const', []);
      this.setAttr(node, 'dtype', (a) => a.setType(value.dtype));
      this.setAttr(node, 'value', (a) => a.setTensor(this.tensor(value)));
      graph.addNode(node);
      names.set(id, `const_${k++}`);
    }
    spec.trace.ops.forEach((op, i) => {
      const inputs = op.inputs.map((id) => {
        const name = names.get(id);
        if (name === undefined) throw new GraphCompileError(`op ${i} (${op.op}) reads native tensor ${id}, which is neither fed, constant nor made earlier`);
        return name;
      });
      const node = this.node(`op_${i}`, op.op, inputs);
      for (const attr of op.attrs) this.setAttr(node, attr.name, (a) => this.attrValue(a, attr, op.op));
      if (spec.xla === true) this.markForXla(node);
      graph.addNode(node);
      op.outputs.forEach((o, j) => names.set(o.id, j === 0 ? `op_${i}` : `op_${i}:${j}`));
    });
    const versions = new pb.VersionDef();
    // Any recent producer: TensorFlow only rejects producers below its minimum.
    versions.setProducer(1200);
    graph.setVersions(versions);
    const fetchNames = spec.fetches.map((id) => {
      const name = names.get(id);
      if (name === undefined) throw new GraphCompileError(`fetch of native tensor ${id}, which the program does not hold`);
      return name.includes(':') ? name : `${name}:0`;
    });
    return { savedModel: this.wrap(graph), feedNames: spec.feeds.map((_, f) => `feed_${f}:0`), fetchNames, numNodes: spec.feeds.length + spec.constants.size + spec.trace.ops.length };
  }

  private wrap(graph: GraphDefMsg): Uint8Array {
    const pb = this.pb;
    const info = new pb.MetaGraphDef.MetaInfoDef();
    info.addTags('serve');
    const meta = new pb.MetaGraphDef();
    meta.setMetaInfoDef(info);
    meta.setGraphDef(graph);
    const saved = new pb.SavedModel();
    saved.setSavedModelSchemaVersion(1);
    saved.addMetaGraphs(meta);
    return saved.serializeBinary();
  }

  /**
   * Marks a node for XLA (`_XlaCompile`, one `_XlaScope` for the whole graph): TensorFlow's
   * session then compiles the marked ops it supports into fused CPU code at the first run per
   * input shape, without the process-wide `TF_XLA_FLAGS` auto-clustering.
   */
  private markForXla(node: NodeDefMsg): void {
    this.setAttr(node, '_XlaCompile', (a) => a.setB(true));
    this.setAttr(node, '_XlaScope', (a) => a.setS(this.encoder.encode('infiniformer')));
  }

  private node(name: string, op: string, inputs: readonly string[]): NodeDefMsg {
    const node = new this.pb.NodeDef();
    node.setName(name);
    node.setOp(op);
    for (const input of inputs) node.addInput(input);
    return node;
  }

  private setAttr(node: NodeDefMsg, name: string, fill: (a: AttrValueMsg) => void): void {
    const a = new this.pb.AttrValue();
    fill(a);
    node.getAttrMap().set(name, a);
  }

  private attrValue(a: AttrValueMsg, attr: OpAttr, op: string): void {
    const c = this.codes;
    const v = attr.value;
    if (Array.isArray(v)) {
      const list = new this.pb.AttrValue.ListValue();
      for (const x of v as unknown[]) {
        if (attr.type === c.TF_ATTR_INT) list.addI(Number(x));
        else if (attr.type === c.TF_ATTR_FLOAT) list.addF(Number(x));
        else if (attr.type === c.TF_ATTR_BOOL) list.addB(Boolean(x));
        else if (attr.type === c.TF_ATTR_TYPE) list.addType(Number(x));
        else if (attr.type === c.TF_ATTR_STRING) list.addS(this.encoder.encode(String(x)));
        else throw new GraphCompileError(`${op}: list attribute ${attr.name} of type code ${attr.type} is not supported`);
      }
      // A shape attribute is a list of dimensions, not a list of values.
      if (attr.type === c.TF_ATTR_SHAPE) a.setShape(this.shape(v as number[]));
      else a.setList(list);
      return;
    }
    if (attr.type === c.TF_ATTR_INT) a.setI(Number(v));
    else if (attr.type === c.TF_ATTR_FLOAT) a.setF(Number(v));
    else if (attr.type === c.TF_ATTR_BOOL) a.setB(Boolean(v));
    else if (attr.type === c.TF_ATTR_TYPE) a.setType(Number(v));
    else if (attr.type === c.TF_ATTR_STRING) a.setS(this.encoder.encode(String(v)));
    else throw new GraphCompileError(`${op}: attribute ${attr.name} of type code ${attr.type} is not supported`);
  }

  private shape(dims: readonly number[]): TensorShapeMsg {
    const s = new this.pb.TensorShape();
    for (const n of dims) {
      const d = new this.pb.TensorShape.Dim();
      d.setSize(n);
      s.addDim(d);
    }
    return s;
  }

  private tensor(value: HostTensor): TensorMsg {
    const t = new this.pb.Tensor();
    t.setDtype(value.dtype);
    t.setTensorShape(this.shape(value.shape));
    let bytes: Uint8Array;
    if (value.dtype === DT_FLOAT) bytes = new Uint8Array(Float32Array.from(value.values).buffer);
    else if (value.dtype === DT_INT32) bytes = new Uint8Array(Int32Array.from(value.values).buffer);
    else if (value.dtype === DT_BOOL) bytes = Uint8Array.from(value.values, (x) => (x ? 1 : 0));
    else throw new GraphCompileError(`a constant of dtype code ${value.dtype} is not supported`);
    t.setTensorContent(bytes);
    return t;
  }
}
