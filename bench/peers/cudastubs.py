"""
Makes PyPI's Linux torch wheel (a CUDA build) import on a machine without the CUDA libraries.

The wheel's shared objects name CUDA libraries (libcudart.so.13, libcublas.so.13, cuDNN, NCCL,
...) as dependencies; those come as separate multi-GB wheels. The CPU kernels never call them,
so this writes a small stub library for each missing one into torch/lib (the wheel's own rpath
$ORIGIN): every CUDA function that torch references is defined and returns 100 (CUDA's "no
device" error code), with the symbol versions the references ask for. torch then imports,
reports no CUDA device and runs on the CPU as usual.

Usage: python cudastubs.py <torch package dir>  (needs gcc and readelf on PATH)
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

SYSTEM_LIBS = ['libc.so.6', 'libm.so.6', 'libdl.so.2', 'libpthread.so.0', 'librt.so.1', 'libgcc_s.so.1', 'libstdc++.so.6', 'ld-linux-x86-64.so.2']


def dyn_syms(path):
    """(name, version or None, defined?, binding) of every dynamic symbol of a shared object."""
    out = subprocess.run(['readelf', '--dyn-syms', '-W', path], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 8 or not parts[0].endswith(':'):
            continue
        name = parts[7]
        version = None
        m = re.match(r'([^@]+)@{1,2}([^ ]+)', name)
        if m:
            name, version = m.group(1), m.group(2)
        rows.append((name, version, parts[6] != 'UND', parts[4]))
    return rows


def needed(path):
    out = subprocess.run(['readelf', '-d', '-W', path], capture_output=True, text=True, check=True).stdout
    return re.findall(r'\(NEEDED\)\s+Shared library: \[([^\]]+)\]', out)


def version_files(path):
    """Version name -> the library that must define it, from the object's version needs."""
    out = subprocess.run(['readelf', '-V', '-W', path], capture_output=True, text=True, check=True).stdout
    result = {}
    current = None
    for line in out.splitlines():
        m = re.search(r'File: (\S+)', line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r'Name: (\S+)', line)
        if m and current is not None:
            result[m.group(1)] = current
    return result


_LDCONFIG = []


def system_path(soname):
    """Where the dynamic linker finds `soname` on this system (ldconfig's cache), or None."""
    if not _LDCONFIG:
        tool = shutil.which('ldconfig') or next((p for p in ('/sbin/ldconfig', '/usr/sbin/ldconfig') if os.path.exists(p)), 'ldconfig')
        _LDCONFIG.append(subprocess.run([tool, '-p'], capture_output=True, text=True, check=True).stdout)
    out = _LDCONFIG[0]
    m = re.search(r'^\s*' + re.escape(soname) + r' .*=> (\S+)$', out, re.M)
    return m.group(1) if m else None


def main(torch_dir):
    lib_dir = os.path.join(torch_dir, 'lib')
    objects = [os.path.join(lib_dir, f) for f in os.listdir(lib_dir) if f.endswith('.so') or '.so.' in f]
    objects += [os.path.join(torch_dir, f) for f in os.listdir(torch_dir) if f.startswith('_C') and f.endswith('.so')]
    manifest = os.path.join(lib_dir, 'cuda-stubs.txt')
    if os.path.exists(manifest):  # a rerun: the stubs written last time count as missing again
        with open(manifest) as f:
            for old in f.read().split():
                if os.path.exists(os.path.join(lib_dir, old)):
                    os.remove(os.path.join(lib_dir, old))
    objects = [o for o in objects if os.path.exists(o)]
    present = set(os.listdir(lib_dir))
    missing = set()
    for o in objects:
        for n in needed(o):
            if n not in present and system_path(n) is None:
                missing.add(n)
    defined = set()
    for o in objects + [p for p in (system_path(s) for s in SYSTEM_LIBS + ['libgomp.so.1']) if p]:
        defined.update(name for name, _, is_def, _ in dyn_syms(o) if is_def)
    versioned = {}  # version node -> functions
    plain = set()
    for o in objects:
        files = version_files(o)
        for name, version, is_def, bind in dyn_syms(o):
            if is_def or bind == 'WEAK':
                continue
            if version is not None and files.get(version) in missing:
                versioned.setdefault(files[version], {}).setdefault(version, set()).add(name)
            elif version is None and name not in defined:
                plain.add(name)
    open(manifest, 'w').close()
    with tempfile.TemporaryDirectory() as tmp:
        for soname in sorted(missing):
            nodes = versioned.get(soname, {})
            own = set().union(*nodes.values()) if nodes else set()
            names = sorted(own | plain)
            c_file = os.path.join(tmp, 'stub.c')
            map_file = os.path.join(tmp, 'stub.map')
            with open(c_file, 'w') as f:
                f.write('/* generated: CUDA stub, every function fails with 100 (no device) */\n')
                for n in names:
                    f.write(f'long {n}(void) {{ return 100; }}\n')
            with open(map_file, 'w') as f:
                for node, syms in sorted(nodes.items()):
                    f.write(f'{node} {{ global: {"; ".join(sorted(syms))}; }};\n')
                f.write('STUB { global: *; };\n' if nodes else '{ global: *; };\n')
            target = os.path.join(lib_dir, soname)
            subprocess.run(['gcc', '-shared', '-fPIC', '-O0', '-w', f'-Wl,-soname,{soname}', f'-Wl,--version-script={map_file}', '-o', target, c_file], check=True)
            with open(manifest, 'a') as f:
                f.write(soname + '\n')
            print(f'stub {soname}: {len(own)} versioned + {len(plain)} unversioned functions')


if __name__ == '__main__':
    main(sys.argv[1])
