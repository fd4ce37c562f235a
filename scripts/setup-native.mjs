#!/usr/bin/env node
// @ts-check
/**
 * `npm run setup:native`: builds the native TensorFlow backend (`@tensorflow/tfjs-node`) from
 * the `tensorflow-cpu` wheel, because tfjs-node's own install script downloads libtensorflow
 * from a host that refuses. The wheel's `libtensorflow_cc.so.2` exports the same C API.
 *
 * Steps, each cached under `.cache/native/` (or `INFINIFORMER_NATIVE_CACHE`) and skipped when done:
 *   1. `npm pack` the tfjs-node package (its install script never runs) and install its
 *      runtime dependencies except `@tensorflow/*` with `--ignore-scripts`;
 *   2. `pip download` the pinned wheel (binary only, no deps, hash-checked) and extract only
 *      the two shared libraries and the C headers the addon includes (transitively);
 *   3. build the addon with node-gyp against the machine's Node headers, or the Node-API
 *      headers of the `node-api-headers` package (never downloaded);
 *   4. install the result as `node_modules/@tensorflow/tfjs-node`, the big libraries
 *      hard-linked from the cache, so it resolves the project's own `@tensorflow/tfjs`.
 *
 * `npm ci` wipes node_modules; running this again then only repeats step 4 (seconds).
 * Usable as a module too: `import { setupNative } from './scripts/setup-native.mjs'`.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const TENSORFLOW_VERSION = '2.21.0';
export const TFJS_NODE_VERSION = '4.22.0';
/** The one wheel we build from: its libraries do not depend on the Python version. */
const WHEEL = {
  name: `tensorflow_cpu-${TENSORFLOW_VERSION}-cp311-cp311-manylinux_2_27_x86_64.whl`,
  sha256: '2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c',
  platform: 'manylinux_2_27_x86_64',
  pythonVersion: '3.11',
  minGlibc: [2, 27],
};
const LIBRARIES = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'];
/** The linker names the addon's binding.gyp asks for (`-ltensorflow -ltensorflow_framework`). */
const LINKER_NAMES = { 'libtensorflow.so': 'libtensorflow_cc.so.2', 'libtensorflow_framework.so': 'libtensorflow_framework.so.2' };
/** Free space needed for a cold run: wheel (274 MB) + libraries (853 MB) + build, with margin. */
const COLD_BYTES = 1.6e9;
const STAMP = '.infiniformer-native.json';

/** A setup failure with a code the caller (or the CLI) can act on. */
export class NativeSetupError extends Error {
  /** @param {string} code @param {string} message */
  constructor(code, message) {
    super(message);
    this.name = 'NativeSetupError';
    this.code = code;
  }
}

/**
 * @typedef {object} SetupNativeOptions
 * @property {string} [projectDir] the project whose node_modules receives tfjs-node (default: this repository)
 * @property {string} [cacheDir] build cache (default `INFINIFORMER_NATIVE_CACHE` or `<projectDir>/.cache/native`)
 * @property {string} [python] Python with pip (default `INFINIFORMER_PYTHON`, else python3, else python)
 * @property {string} [nodeDir] a Node install prefix holding `include/node/node_api.h` (default `INFINIFORMER_NODEDIR`, else the running Node's prefix)
 * @property {boolean} [force] re-extract the wheel (downloading it again unless kept), rebuild and reinstall (default false)
 * @property {boolean} [keepWheel] keep the 274 MB wheel after extraction (default false)
 * @property {(line: string) => void} [log] progress lines (default: stderr)
 */

/**
 * Build (if needed) and install the native backend. Idempotent.
 * @param {SetupNativeOptions} [options]
 * @returns {Promise<{ installed: string, napiVersion: number, built: boolean, seconds: number }>}
 */
export async function setupNative(options = {}) {
  const started = Date.now();
  const log = options.log ?? ((line) => process.stderr.write(`[setup-native] ${line}\n`));
  const projectDir = path.resolve(options.projectDir ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
  const cacheDir = path.resolve(options.cacheDir ?? process.env['INFINIFORMER_NATIVE_CACHE'] ?? path.join(projectDir, '.cache', 'native'));
  const force = options.force ?? false;

  checkPlatform();
  checkProjectTfjs(projectDir);
  const napiVersion = bestNapiVersion();
  const buildKey = `tfjs-node-${TFJS_NODE_VERSION}-tf-${TENSORFLOW_VERSION}-napi${napiVersion}`;
  const builtDir = path.join(cacheDir, buildKey);
  const target = path.join(projectDir, 'node_modules', '@tensorflow', 'tfjs-node');
  const stamp = { tensorflow: TENSORFLOW_VERSION, tfjsNode: TFJS_NODE_VERSION, napiVersion, buildKey };

  if (!force && readStamp(target)?.buildKey === buildKey && loads(projectDir, log)) {
    log(`already installed: ${path.relative(projectDir, target)} (${buildKey})`);
    return { installed: target, napiVersion, built: false, seconds: (Date.now() - started) / 1000 };
  }

  let built = false;
  if (force || readStamp(builtDir)?.buildKey !== buildKey) {
    if (force) fs.rmSync(path.join(cacheDir, `tensorflow-${TENSORFLOW_VERSION}`), { recursive: true, force: true });
    fs.mkdirSync(cacheDir, { recursive: true });
    checkDiskSpace(cacheDir, COLD_BYTES);
    const tools = findBuildTools(options, projectDir, cacheDir);
    build({ cacheDir, builtDir, napiVersion, tools, keepWheel: options.keepWheel ?? false, log });
    writeStamp(builtDir, stamp);
    built = true;
  } else {
    log(`using cached build ${path.relative(projectDir, builtDir) || builtDir}`);
  }

  install(builtDir, target, log);
  writeStamp(target, stamp);
  if (!loads(projectDir, log)) {
    throw new NativeSetupError('LOAD_FAILED', `installed ${target} but it does not load; rerun with --force, or see the error above`);
  }
  const seconds = (Date.now() - started) / 1000;
  log(`done in ${seconds.toFixed(1)} s: import('@tensorflow/tfjs-node') works (backend "tensorflow")`);
  return { installed: target, napiVersion, built, seconds };
}

function checkPlatform() {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new NativeSetupError(
      'WRONG_PLATFORM',
      `the native backend is built from the tensorflow-cpu ${WHEEL.platform} wheel, which needs Linux on x86_64; this is ${process.platform}/${process.arch}. Use the wasm backend (the default fallback).`,
    );
  }
  const report = /** @type {{ header?: { glibcVersionRuntime?: string } }} */ (process.report?.getReport() ?? {});
  const glibc = report.header?.glibcVersionRuntime;
  if (glibc === undefined) {
    throw new NativeSetupError('WRONG_PLATFORM', 'the tensorflow-cpu wheel needs glibc (not musl/Alpine); use the wasm backend.');
  }
  const [major = 0, minor = 0] = glibc.split('.').map(Number);
  const [needMajor, needMinor] = WHEEL.minGlibc;
  if (major < needMajor || (major === needMajor && minor < needMinor)) {
    throw new NativeSetupError('WRONG_PLATFORM', `the tensorflow-cpu wheel needs glibc >= ${WHEEL.minGlibc.join('.')}; this system has ${glibc}.`);
  }
}

/**
 * tfjs-node must share the project's tfjs instance, so the versions must agree exactly. Resolved
 * the way the project's code resolves it (nested or hoisted, e.g. when installed as a dependency).
 */
function checkProjectTfjs(projectDir) {
  let file;
  try {
    file = createRequire(path.join(projectDir, 'package.json')).resolve('@tensorflow/tfjs/package.json');
  } catch {
    throw new NativeSetupError('NO_TFJS', `@tensorflow/tfjs is not installed for ${projectDir}: run \`npm ci\` (or npm install) there first.`);
  }
  const version = JSON.parse(fs.readFileSync(file, 'utf8')).version;
  if (version !== TFJS_NODE_VERSION) {
    throw new NativeSetupError('TFJS_VERSION', `the project has @tensorflow/tfjs ${version}, but the native backend is built for ${TFJS_NODE_VERSION}; they must match.`);
  }
}

/** The N-API version node-pre-gyp will look for: the highest tfjs-node ships (3..8) that this Node supports. */
function bestNapiVersion() {
  const supported = Number(process.versions.napi ?? 0);
  const best = Math.min(8, supported);
  if (best < 3) throw new NativeSetupError('WRONG_PLATFORM', `Node ${process.version} supports N-API ${supported}; tfjs-node needs 3 or later.`);
  return best;
}

/** @param {string} dir @param {number} bytes */
function checkDiskSpace(dir, bytes) {
  const stats = fs.statfsSync(dir);
  const free = stats.bavail * stats.bsize;
  if (free < bytes) {
    throw new NativeSetupError('NO_DISK_SPACE', `${dir} has ${(free / 1e9).toFixed(2)} GB free; building the native backend needs about ${(bytes / 1e9).toFixed(1)} GB (set INFINIFORMER_NATIVE_CACHE to a bigger disk).`);
  }
}

/**
 * @param {string} command @param {string[]} args
 * @param {{ cwd?: string, env?: NodeJS.ProcessEnv, quiet?: boolean }} [opts]
 */
function run(command, args, opts = {}) {
  const result = spawnSync(command, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ok: result.status === 0 && result.error === undefined, status: result.status, stdout: result.stdout ?? '', stderr: result.stderr ?? '', error: result.error };
}

/** @param {string} command @param {string[]} args @param {Parameters<typeof run>[2]} opts @param {string} what */
function runOrThrow(command, args, opts, what) {
  const result = run(command, args, opts);
  if (!result.ok) {
    const output = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-25).join('\n');
    throw new NativeSetupError('STEP_FAILED', `${what} failed (${command} ${args.join(' ')}; exit ${result.status ?? String(result.error)}):\n${output}`);
  }
  return result;
}

/** @param {string} command @param {string[]} args */
function works(command, args) {
  return run(command, args).ok;
}

/** @param {SetupNativeOptions} options @param {string} projectDir @param {string} cacheDir */
function findBuildTools(options, projectDir, cacheDir) {
  const pythons = [options.python, process.env['INFINIFORMER_PYTHON'], 'python3', 'python'].filter((p) => p !== undefined && p !== '');
  const python = pythons.find((p) => works(/** @type {string} */ (p), ['-m', 'pip', '--version']));
  if (python === undefined) {
    const anyPython = pythons.find((p) => works(/** @type {string} */ (p), ['--version']));
    throw new NativeSetupError(
      'NO_PIP',
      anyPython === undefined
        ? 'no Python found (tried python3, python): pip is needed to download the tensorflow-cpu wheel. Install python3 and python3-pip, or set INFINIFORMER_PYTHON.'
        : `${anyPython} has no pip: install it (e.g. the python3-pip package, or \`${anyPython} -m ensurepip\`), or set INFINIFORMER_PYTHON to a Python that has pip.`,
    );
  }
  const compiler = [process.env['CXX'], 'c++', 'g++', 'clang++'].find((c) => c !== undefined && c !== '' && works(c, ['--version']));
  if (compiler === undefined) {
    throw new NativeSetupError('NO_COMPILER', 'no C++ compiler found (tried $CXX, c++, g++, clang++): node-gyp needs one to build the addon. Install build-essential (Debian/Ubuntu) or gcc-c++ and make.');
  }
  if (!works('make', ['--version'])) {
    throw new NativeSetupError('NO_COMPILER', 'make is missing: node-gyp needs it. Install build-essential (Debian/Ubuntu) or make.');
  }
  const nodeGyp = findNodeGyp();
  const nodeDir = findNodeHeaders(options, projectDir, cacheDir);
  return { python: /** @type {string} */ (python), nodeGyp, nodeDir };
}

/** node-gyp ships inside npm; npm also names it in `npm_config_node_gyp` when it runs scripts. */
function findNodeGyp() {
  const candidates = [
    process.env['npm_config_node_gyp'],
    path.join(path.dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const found = candidates.find((c) => c !== undefined && c !== '' && fs.existsSync(c));
  if (found === undefined) {
    throw new NativeSetupError('NO_NODE_GYP', 'node-gyp not found (it ships with npm): run this through `npm run setup:native`, or install node-gyp.');
  }
  return found;
}

/**
 * Node's headers, never downloaded: INFINIFORMER_NODEDIR, else the running Node's install prefix,
 * else a node-gyp "nodedir" assembled from the `node-api-headers` package (the addon uses
 * Node-API only, so those headers suffice).
 * @param {SetupNativeOptions} options @param {string} projectDir @param {string} cacheDir
 */
function findNodeHeaders(options, projectDir, cacheDir) {
  const candidates = [options.nodeDir, process.env['INFINIFORMER_NODEDIR'], path.resolve(path.dirname(process.execPath), '..')];
  const found = candidates.find((dir) => dir !== undefined && dir !== '' && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h')));
  if (found !== undefined) return found;
  const fromPackage = nodeApiHeadersDir(projectDir, cacheDir);
  if (fromPackage !== undefined) return fromPackage;
  throw new NativeSetupError(
    'NO_NODE_HEADERS',
    `Node's headers were not found (looked for include/node/node_api.h under ${candidates.filter(Boolean).join(', ')}, and for the node-api-headers package). Run \`npm ci\` (it installs node-api-headers), install the Node headers (official Node tarballs ship them; Debian: libnode-dev), or set INFINIFORMER_NODEDIR to a prefix that has them.`,
  );
}

/** Minimal node-gyp common.gypi: what Node's own sets for an addon build on Linux. */
const COMMON_GYPI = `{
  'variables': { 'node_engine_include_dir%': 'deps/v8/include', 'node_module_version%': '', 'node_use_openssl%': 'false', 'node_shared_openssl%': 'false' },
  'target_defaults': {
    'default_configuration': 'Release',
    'configurations': { 'Release': { 'cflags': ['-O3'] }, 'Debug': { 'cflags': ['-g', '-O0'] } },
    'cflags': ['-fPIC', '-pthread'],
    'cflags_cc': ['-std=gnu++17', '-fno-rtti', '-fno-exceptions'],
    'ldflags': ['-pthread']
  }
}
`;

/** @param {string} projectDir @param {string} cacheDir @returns {string | undefined} */
function nodeApiHeadersDir(projectDir, cacheDir) {
  let includeDir;
  try {
    const require = createRequire(path.join(projectDir, 'package.json'));
    includeDir = path.join(path.dirname(require.resolve('node-api-headers/package.json')), 'include');
  } catch {
    return undefined;
  }
  if (!fs.existsSync(path.join(includeDir, 'node_api.h'))) return undefined;
  const nodeDir = path.join(cacheDir, 'node-api-nodedir');
  const target = path.join(nodeDir, 'include', 'node');
  fs.rmSync(nodeDir, { recursive: true, force: true });
  fs.mkdirSync(target, { recursive: true });
  for (const header of fs.readdirSync(includeDir)) fs.copyFileSync(path.join(includeDir, header), path.join(target, header));
  fs.writeFileSync(path.join(target, 'common.gypi'), COMMON_GYPI);
  return nodeDir;
}

/**
 * @param {{ cacheDir: string, builtDir: string, napiVersion: number,
 *   tools: { python: string, nodeGyp: string, nodeDir: string }, keepWheel: boolean, log: (line: string) => void }} args
 */
function build({ cacheDir, builtDir, napiVersion, tools, keepWheel, log }) {
  const staging = `${builtDir}.partial`;
  fs.rmSync(staging, { recursive: true, force: true });
  fs.mkdirSync(staging, { recursive: true });
  const packageDir = path.join(staging, 'package');

  log(`fetching @tensorflow/tfjs-node ${TFJS_NODE_VERSION} (install script not run)`);
  const packed = runOrThrow('npm', ['pack', `@tensorflow/tfjs-node@${TFJS_NODE_VERSION}`, '--pack-destination', staging, '--silent'], { cwd: staging }, 'npm pack');
  const tarball = path.join(staging, packed.stdout.trim().split('\n').pop() ?? '');
  runOrThrow('tar', ['xzf', tarball, '-C', staging], {}, 'unpacking the tfjs-node tarball');
  fs.rmSync(tarball);

  // Runtime dependencies (node-pre-gyp finds the binding, google-protobuf ...), without
  // @tensorflow/*: those must resolve to the project's copies, one tfjs engine only.
  const manifest = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
  const runtimeDeps = Object.fromEntries(Object.entries(manifest.dependencies ?? {}).filter(([name]) => !name.startsWith('@tensorflow/')));
  const depsDir = path.join(staging, 'runtime');
  fs.mkdirSync(depsDir);
  fs.writeFileSync(path.join(depsDir, 'package.json'), JSON.stringify({ name: 'tfjs-node-runtime', private: true, dependencies: runtimeDeps }, null, 2));
  runOrThrow('npm', ['install', '--ignore-scripts', '--omit=dev', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: depsDir }, 'installing tfjs-node runtime dependencies');

  const tfDir = extractTensorflow({ cacheDir, python: tools.python, bindingDir: path.join(packageDir, 'binding'), keepWheel, log });
  const libDir = path.join(packageDir, 'deps', 'lib');
  fs.mkdirSync(libDir, { recursive: true });
  for (const lib of LIBRARIES) linkOrCopy(path.join(tfDir, 'lib', lib), path.join(libDir, lib));
  for (const [linkName, file] of Object.entries(LINKER_NAMES)) fs.symlinkSync(file, path.join(libDir, linkName));
  fs.cpSync(path.join(tfDir, 'include'), path.join(packageDir, 'deps', 'include'), { recursive: true });

  log(`building the addon with node-gyp (N-API ${napiVersion}, Node headers from ${tools.nodeDir})`);
  // A node-gyp warning about a missing config.gypi is expected with the node-api-headers nodedir.
  const modulePath = path.join(packageDir, 'lib', `napi-v${napiVersion}`);
  runOrThrow(
    process.execPath,
    [
      tools.nodeGyp, 'rebuild', `--nodedir=${tools.nodeDir}`, `--devdir=${path.join(cacheDir, 'node-gyp')}`,
      '--module_name=tfjs_binding', `--module_path=${modulePath}`, `--napi_build_version=${napiVersion}`, '-j', '2',
    ],
    { cwd: packageDir, env: { ...process.env, PYTHON: tools.python, npm_config_python: tools.python } },
    'node-gyp build of the tfjs-node addon',
  );
  if (!fs.existsSync(path.join(modulePath, 'tfjs_binding.node'))) {
    throw new NativeSetupError('STEP_FAILED', `node-gyp succeeded but ${modulePath}/tfjs_binding.node is missing`);
  }
  fs.rmSync(path.join(packageDir, 'build'), { recursive: true, force: true }); // objects only; the .node is in lib/

  fs.rmSync(builtDir, { recursive: true, force: true });
  fs.renameSync(staging, builtDir);
}

/**
 * Download the wheel (cached) and extract, by streaming from the zip, only the two libraries
 * and the headers the addon includes, following `#include "..."` transitively.
 * @returns {string} directory with lib/ and include/
 */
function extractTensorflow({ cacheDir, python, bindingDir, keepWheel, log }) {
  const tfDir = path.join(cacheDir, `tensorflow-${TENSORFLOW_VERSION}`);
  const done = path.join(tfDir, '.complete');
  if (fs.existsSync(done)) return tfDir;
  const wheelDir = path.join(cacheDir, 'wheel');
  const wheel = path.join(wheelDir, WHEEL.name);
  if (!fs.existsSync(wheel)) {
    log(`downloading tensorflow-cpu ${TENSORFLOW_VERSION} with pip (binary only, no deps, ~274 MB)`);
    fs.mkdirSync(wheelDir, { recursive: true });
    const requirements = path.join(wheelDir, 'requirements.txt');
    fs.writeFileSync(requirements, `tensorflow-cpu==${TENSORFLOW_VERSION} --hash=sha256:${WHEEL.sha256}\n`);
    runOrThrow(
      python,
      [
        '-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--require-hashes', '--disable-pip-version-check',
        '--platform', WHEEL.platform, '--python-version', WHEEL.pythonVersion, '--implementation', 'cp',
        '--dest', wheelDir, '-r', requirements,
      ],
      {},
      'pip download of tensorflow-cpu',
    );
  }
  log('extracting the TensorFlow C libraries and headers from the wheel');
  const staging = `${tfDir}.partial`;
  fs.rmSync(staging, { recursive: true, force: true });
  runOrThrow(python, ['-c', EXTRACT_PY, wheel, staging, bindingDir, ...LIBRARIES], {}, 'extracting the wheel');
  fs.writeFileSync(path.join(staging, '.complete'), `${WHEEL.name}\n`);
  fs.rmSync(tfDir, { recursive: true, force: true });
  fs.renameSync(staging, tfDir);
  if (!keepWheel) fs.rmSync(wheelDir, { recursive: true, force: true });
  return tfDir;
}

/** argv: wheel, outDir, bindingDir, library names... Python's zipfile streams members without unpacking the rest. */
const EXTRACT_PY = `
import os, re, shutil, sys, zipfile
wheel, out, binding, libs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
inc = re.compile(rb'^[ \\t]*#[ \\t]*include[ \\t]+"([^"]+)"', re.M)
z = zipfile.ZipFile(wheel)
names = set(z.namelist())
os.makedirs(os.path.join(out, 'lib'))
for lib in libs:
    with z.open('tensorflow/' + lib) as src, open(os.path.join(out, 'lib', lib), 'wb') as dst:
        shutil.copyfileobj(src, dst, 1 << 22)
todo = []
for f in os.listdir(binding):
    with open(os.path.join(binding, f), 'rb') as h:
        todo += [m.decode() for m in inc.findall(h.read())]
seen = set()
while todo:
    h = todo.pop()
    if h in seen:
        continue
    seen.add(h)
    member = 'tensorflow/include/' + h
    if member not in names:
        continue  # the addon's own headers
    data = z.read(member)
    dest = os.path.join(out, 'include', h)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    with open(dest, 'wb') as d:
        d.write(data)
    todo += [m.decode() for m in inc.findall(data)]
if not os.path.exists(os.path.join(out, 'include', 'tensorflow', 'c', 'c_api.h')):
    sys.exit('tensorflow/c/c_api.h not found in the wheel')
`;

/** Hard links share the 850 MB of libraries between cache and node_modules; copy across filesystems. */
function linkOrCopy(from, to) {
  try {
    fs.linkSync(from, to);
  } catch {
    fs.copyFileSync(from, to);
  }
}

/** @param {string} builtDir @param {string} target @param {(line: string) => void} log */
function install(builtDir, target, log) {
  log(`installing into ${target}`);
  const staging = `${target}.partial`;
  fs.rmSync(staging, { recursive: true, force: true });
  const packageDir = path.join(builtDir, 'package');
  const libDir = path.join(packageDir, 'deps', 'lib');
  fs.cpSync(packageDir, staging, { recursive: true, verbatimSymlinks: true, filter: (src) => src !== libDir });
  fs.mkdirSync(path.join(staging, 'deps', 'lib'), { recursive: true });
  for (const entry of fs.readdirSync(libDir, { withFileTypes: true })) {
    const from = path.join(libDir, entry.name);
    const to = path.join(staging, 'deps', 'lib', entry.name);
    if (entry.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), to);
    else linkOrCopy(from, to);
  }
  fs.cpSync(path.join(builtDir, 'runtime', 'node_modules'), path.join(staging, 'node_modules'), { recursive: true, verbatimSymlinks: true });
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(staging, target);
}

/** @param {string} dir */
function readStamp(dir) {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, STAMP), 'utf8'));
  } catch {
    return undefined;
  }
}

/** @param {string} dir @param {object} stamp */
function writeStamp(dir, stamp) {
  fs.writeFileSync(path.join(dir, STAMP), `${JSON.stringify(stamp, null, 2)}\n`);
}

/**
 * In a child process: tfjs-node loads, computes a product correctly on the `tensorflow`
 * backend, and uses the project's own tfjs-core (a second copy would be a second engine).
 */
function loads(projectDir, log) {
  const probe = `
    const { createRequire } = require('node:module');
    const tf = require('@tensorflow/tfjs-node');
    const fromProject = require.resolve('@tensorflow/tfjs-core');
    const fromNode = createRequire(require.resolve('@tensorflow/tfjs-node')).resolve('@tensorflow/tfjs-core');
    if (fromProject !== fromNode) throw new Error('tfjs-node resolves a second tfjs-core: ' + fromNode);
    if (tf.getBackend() !== 'tensorflow') throw new Error('backend is ' + tf.getBackend());
    const c = tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]])).dataSync();
    if (c[0] !== 17 || c[1] !== 39) throw new Error('wrong product ' + Array.from(c));
  `;
  const require = createRequire(path.join(projectDir, 'package.json'));
  try {
    require.resolve('@tensorflow/tfjs-node');
  } catch {
    return false;
  }
  const result = run(process.execPath, ['-e', probe], { cwd: projectDir, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } });
  if (!result.ok) log(`tfjs-node does not load yet: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return result.ok;
}

const invokedDirectly = process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const args = process.argv.slice(2);
  if (args.includes('--help')) {
    console.log('usage: setup-native [--force] [--keep-wheel]\n  env: INFINIFORMER_NATIVE_CACHE, INFINIFORMER_PYTHON, INFINIFORMER_NODEDIR');
  } else {
    setupNative({ force: args.includes('--force'), keepWheel: args.includes('--keep-wheel') }).catch((error) => {
      const code = error instanceof NativeSetupError ? ` [${error.code}]` : '';
      console.error(`setup-native failed${code}: ${error instanceof Error ? error.message : String(error)}`);
      process.exitCode = 1;
    });
  }
}
