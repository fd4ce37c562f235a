/**
 * Installs the PyTorch peer's Python environment on first use: a venv in .cache/peers/venv
 * (gitignored) holding torch from the Python package index, CPU use only.
 *
 * The index's Linux torch wheel is a CUDA build whose dependencies are several GB of NVIDIA
 * libraries. Instead: the torch wheel alone (--no-deps, ~540 MB), its pure-Python dependencies
 * and numpy (~30 MB), then cudastubs.py writes tiny stand-ins for the CUDA libraries the wheel
 * links against (they are never called on the CPU), and `import torch` is checked.
 * Every download lands in .cache/peers/wheels first, so its size is what the install fetched.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TORCH_VERSION = process.env['PEERS_TORCH_VERSION'] ?? '2.15.0';
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CACHE = join(ROOT, '.cache', 'peers');
const VENV = join(CACHE, 'venv');
const WHEELS = join(CACHE, 'wheels');
const LOG = join(CACHE, 'setup.log');
export const VENV_PYTHON = join(VENV, 'bin', 'python');
const PURE_DEPS = ['filelock', 'typing-extensions>=4.13.0', 'setuptools>=77.0.3', 'sympy>=1.13.3', 'networkx>=2.5.1', 'jinja2', 'fsspec>=0.8.5', 'numpy'];

export type Setup = { ok: true; python: string; downloadedMiB?: number } | { ok: false; reason: string };

function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`;
  writeFileSync(LOG, `$ ${cmd} ${args.join(' ')}\n${out}\n`, { flag: 'a' });
  return { ok: r.status === 0, out };
}

const torchImports = (): boolean => existsSync(VENV_PYTHON) && run(VENV_PYTHON, ['-c', `import torch, numpy; assert torch.__version__.startswith('${TORCH_VERSION}')`]).ok;

function dirMiB(dir: string): number {
  return existsSync(dir) ? readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0) / 2 ** 20 : 0;
}

/** Makes sure the venv imports torch; installs it if not. Never throws: failures are reasons. */
export function ensureTorch(log: (line: string) => void): Setup {
  mkdirSync(CACHE, { recursive: true });
  if (torchImports()) return { ok: true, python: VENV_PYTHON };
  const python = process.env['PEERS_PYTHON'] ?? 'python3';
  const version = run(python, ['--version']);
  if (!version.ok) return { ok: false, reason: `no Python interpreter (${python} --version failed; set PEERS_PYTHON)` };
  for (const tool of ['gcc', 'readelf']) {
    if (!run(tool, ['--version']).ok) return { ok: false, reason: `${tool} not found (needed to stub the CUDA libraries of the torch wheel)` };
  }
  log(`installing PyTorch ${TORCH_VERSION} for CPU use into .cache/peers/venv (${version.out.trim()}; about 570 MB to download once; log in .cache/peers/setup.log)`);
  const before = dirMiB(WHEELS);
  if (!existsSync(VENV_PYTHON) && !run(python, ['-m', 'venv', VENV]).ok) return { ok: false, reason: `${python} -m venv failed (see .cache/peers/setup.log)` };
  const pip = [VENV_PYTHON, '-m', 'pip'] as const;
  const steps: [string, string[]][] = [
    ['download torch', [...pip.slice(1), 'download', '--no-deps', '-d', WHEELS, `torch==${TORCH_VERSION}`]],
    ['download its pure-Python dependencies', [...pip.slice(1), 'download', '-d', WHEELS, ...PURE_DEPS]],
    ['install torch', [...pip.slice(1), 'install', '--no-index', '--find-links', WHEELS, '--no-deps', `torch==${TORCH_VERSION}`]],
    ['install the dependencies', [...pip.slice(1), 'install', '--no-index', '--find-links', WHEELS, ...PURE_DEPS]],
  ];
  for (const [what, args] of steps) {
    if (!run(VENV_PYTHON, args).ok) return { ok: false, reason: `pip could not ${what} (see .cache/peers/setup.log)` };
  }
  const site = run(VENV_PYTHON, ['-c', 'import sysconfig; print(sysconfig.get_paths()["platlib"])']).out.trim();
  const stubs = run(VENV_PYTHON, [fileURLToPath(new URL('./cudastubs.py', import.meta.url)), join(site, 'torch')]);
  if (!stubs.ok) return { ok: false, reason: 'writing the CUDA stubs failed (see .cache/peers/setup.log)' };
  if (!torchImports()) return { ok: false, reason: 'torch was installed but does not import (see .cache/peers/setup.log)' };
  const downloadedMiB = dirMiB(WHEELS) - before;
  log(`PyTorch ${TORCH_VERSION} ready: downloaded ${downloadedMiB.toFixed(0)} MiB of wheels (${dirMiB(WHEELS).toFixed(0)} MiB kept in .cache/peers/wheels); venv ${(Number(run('du', ['-sm', VENV]).out.split(/\s/)[0]) || NaN).toFixed(0)} MiB on disk`);
  return { ok: true, python: VENV_PYTHON, downloadedMiB };
}
