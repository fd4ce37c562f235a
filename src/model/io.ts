/**
 * Model directories: `config.json` (format name and version, the model config, the tokenizer,
 * the weights manifest with its CRC-32) and `weights.bin` (float32 little-endian, tensors in
 * manifest order). Anything missing, truncated, corrupt or of another version is a
 * {@link ModelFileError} that says what and where.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { InfiniformerError, ModelFileError } from '../errors.js';
import { tokenizerFromJSON } from '../tokenize/byteTokenizer.js';
import { crc32 } from './checksum.js';
import { validateConfig } from './config.js';
import { InfiniFormer } from './model.js';
import { paramSpecs, wrapParams } from './params.js';

export const MODEL_FORMAT = 'infiniformer-model';
export const MODEL_FORMAT_VERSION = 1;
const CONFIG_FILE = 'config.json';
const WEIGHTS_FILE = 'weights.bin';

/** One tensor's entry in the weights manifest. */
export interface WeightEntry {
  name: string;
  shape: number[];
  /** Byte offset in weights.bin. */
  offset: number;
}

/** Contents of config.json. */
export interface ModelFileJSON {
  format: string;
  formatVersion: number;
  config: unknown;
  tokenizer: unknown;
  weights: { file: string; dtype: 'float32'; byteLength: number; crc32: number; tensors: WeightEntry[] };
}

/** Encodes variables (in the given order) as little-endian float32 bytes plus a manifest. */
export function encodeWeights(named: Iterable<[string, tf.Tensor]>): { bytes: Uint8Array; tensors: WeightEntry[] } {
  const entries: { name: string; data: Float32Array; shape: number[] }[] = [];
  for (const [name, t] of named) entries.push({ name, data: t.dataSync() as Float32Array, shape: [...t.shape] });
  const total = entries.reduce((n, e) => n + 4 * e.data.length, 0);
  const bytes = new Uint8Array(total);
  const view = new DataView(bytes.buffer);
  const tensors: WeightEntry[] = [];
  let offset = 0;
  for (const e of entries) {
    tensors.push({ name: e.name, shape: e.shape, offset });
    for (let i = 0; i < e.data.length; i++) view.setFloat32(offset + 4 * i, e.data[i]!, true);
    offset += 4 * e.data.length;
  }
  return { bytes, tensors };
}

/** Writes the model directory (created if needed). Files are written then renamed into place. */
export async function saveModel(model: InfiniFormer, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { bytes, tensors } = encodeWeights(model.params.byName.entries());
  const json: ModelFileJSON = {
    format: MODEL_FORMAT,
    formatVersion: MODEL_FORMAT_VERSION,
    config: model.config,
    tokenizer: model.tokenizer?.toJSON() ?? null,
    weights: { file: WEIGHTS_FILE, dtype: 'float32', byteLength: bytes.length, crc32: crc32(bytes), tensors },
  };
  await writeFile(join(dir, `${WEIGHTS_FILE}.tmp`), bytes);
  await writeFile(join(dir, `${CONFIG_FILE}.tmp`), JSON.stringify(json, null, 2));
  await rename(join(dir, `${WEIGHTS_FILE}.tmp`), join(dir, WEIGHTS_FILE));
  await rename(join(dir, `${CONFIG_FILE}.tmp`), join(dir, CONFIG_FILE));
}

async function readOrThrow(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (cause) {
    throw new ModelFileError(`cannot read ${path}: ${(cause as Error).message}`, { cause });
  }
}

/** Parses and checks config.json; returns it with a validated config. */
export function parseModelJSON(text: string, where: string): ModelFileJSON & { config: ReturnType<typeof validateConfig> } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new ModelFileError(`${where} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  const j = json as Partial<ModelFileJSON> | null;
  if (j === null || typeof j !== 'object' || j.format !== MODEL_FORMAT) throw new ModelFileError(`${where}: not an infiniformer model (format field must be "${MODEL_FORMAT}")`);
  if (j.formatVersion !== MODEL_FORMAT_VERSION) {
    throw new ModelFileError(`${where}: format version ${JSON.stringify(j.formatVersion)} is not supported (this library reads version ${MODEL_FORMAT_VERSION})`);
  }
  let config;
  try {
    config = validateConfig(j.config);
  } catch (cause) {
    throw new ModelFileError(`${where}: config.${cause instanceof InfiniformerError ? cause.message : String(cause)}`, { cause });
  }
  const w = j.weights;
  if (w === undefined || w === null || typeof w !== 'object' || !Array.isArray(w.tensors) || typeof w.byteLength !== 'number' || typeof w.crc32 !== 'number') {
    throw new ModelFileError(`${where}: weights manifest is missing or incomplete (needs tensors, byteLength, crc32)`);
  }
  return { ...(j as ModelFileJSON), config };
}

/** Decodes weights bytes against a manifest into named variables; checks names and shapes. */
export function decodeWeights(
  bytes: Uint8Array,
  manifest: ModelFileJSON['weights'],
  expected: { name: string; shape: number[] }[],
  where: string,
): Map<string, tf.Variable> {
  if (bytes.length !== manifest.byteLength) {
    throw new ModelFileError(`${where}: ${bytes.length} bytes, the manifest says ${manifest.byteLength} (truncated or wrong file)`);
  }
  if (crc32(bytes) !== manifest.crc32) throw new ModelFileError(`${where}: checksum mismatch (the weights are corrupt)`);
  const byName = new Map(manifest.tensors.map((t) => [t.name, t]));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const vars = new Map<string, tf.Variable>();
  try {
    for (const spec of expected) {
      const entry = byName.get(spec.name);
      if (entry === undefined) throw new ModelFileError(`${where}: tensor ${spec.name} is missing`);
      if (!Array.isArray(entry.shape) || entry.shape.join() !== spec.shape.join()) {
        throw new ModelFileError(`${where}: tensor ${spec.name} has shape [${String(entry.shape)}], the config needs [${spec.shape.join(', ')}]`);
      }
      const count = spec.shape.reduce((a, b) => a * b, 1);
      if (!Number.isInteger(entry.offset) || entry.offset < 0 || entry.offset + 4 * count > bytes.length) {
        throw new ModelFileError(`${where}: tensor ${spec.name} lies outside the file`);
      }
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(entry.offset + 4 * i, true);
      const t = tf.tensor(data, spec.shape);
      vars.set(spec.name, tf.variable(t, true, `${spec.name}#load${loadId++}`));
      t.dispose();
    }
  } catch (error) {
    for (const v of vars.values()) v.dispose();
    throw error;
  }
  return vars;
}

let loadId = 0;

/** Loads a model directory written by {@link saveModel}. */
export async function loadModel(dir: string): Promise<InfiniFormer> {
  const where = join(dir, CONFIG_FILE);
  const json = parseModelJSON((await readOrThrow(where)).toString('utf8'), where);
  const weightsPath = join(dir, typeof json.weights.file === 'string' ? json.weights.file : WEIGHTS_FILE);
  const bytes = new Uint8Array(await readOrThrow(weightsPath));
  let tokenizer;
  try {
    tokenizer = json.tokenizer === null || json.tokenizer === undefined ? undefined : tokenizerFromJSON(json.tokenizer);
  } catch (cause) {
    throw new ModelFileError(`${where}: ${(cause as Error).message}`, { cause });
  }
  const vars = decodeWeights(bytes, json.weights, paramSpecs(json.config), weightsPath);
  return new InfiniFormer(json.config, wrapParams(json.config, vars), tokenizer);
}
