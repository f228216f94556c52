#!/usr/bin/env bash
# Packaging checks, run by .ci/run inside its venv (which has the test extras):
#  1. `python -m build`: the sdist (with the build tools of this venv), then
#     the wheel built from that sdist in a fresh, isolated build environment;
#  2. the wheel and its test extras (plus mypy) installed into a clean venv,
#     and the packaging tests run there from outside the repository, so that
#     the installed wheel is what they import: version and files, typing
#     (mypy --strict on tests/typing_usage*.py), the Cython API (a downstream
#     extension compiled against the installed headers) and threadpoolctl;
#  3. stubtest on the extension stubs and mypy on the package source;
#  4. a wheel built from the sdist with FASTXENT_NO_OPENMP=1: it reports no
#     OpenMP, runs on one thread and gives bitwise the same results.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
start=$SECONDS
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
step() {
    times > "$work/times"           # the user and system CPU time of the commands so far
    echo "== packaging: $1 ($((SECONDS - start)) s; CPU so far: $(tail -1 "$work/times"))"
}

python -m pip install -q build
{ python -m build --sdist --no-isolation -o "$work/dist" . &&
  sdist=$(ls "$work"/dist/fastxent-*.tar.gz) &&
  tar -xzf "$sdist" -C "$work" &&
  python -m build --wheel -o "$work/dist" "$work/$(basename "$sdist" .tar.gz)"; } \
    > "$work/build.log" 2>&1 || { tail -50 "$work/build.log"; exit 1; }
wheel=$(ls "$work"/dist/fastxent-*.whl)
step "built $(basename "$sdist") and $(basename "$wheel")"

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
    "$root/tests/test_cython_api.py" "$root/tests/test_threadpoolctl.py"
step "tests of the installed wheel done"

"$py" -m mypy.stubtest --ignore-missing-stub fastxent._kernels_baseline \
    $("$py" -c "import importlib.util as u; print('fastxent._kernels_avx2' if u.find_spec('fastxent._kernels_avx2') else '')")
(cd "$root/src" && "$py" -m mypy --cache-dir "$work/mypy-cache" fastxent)
step "stubs and package source type-checked"

# Without OpenMP: from a fresh copy of the unpacked sdist (its generated C kept,
# its build/ left out, so every module is compiled again), with the build tools
# of this venv.
src_dir="$work/$(basename "$sdist" .tar.gz)"
mkdir "$work/noomp-src"
(cd "$src_dir" && tar --exclude=./build -cf - .) | (cd "$work/noomp-src" && tar -xf -)
FASTXENT_NO_OPENMP=1 python -m pip wheel -q --no-build-isolation --no-deps -w "$work/noomp-dist" \
    "$work/noomp-src" > "$work/noomp.log" 2>&1 || { tail -50 "$work/noomp.log"; exit 1; }
"$py" -m pip install -q --no-deps --target "$work/noomp" "$work"/noomp-dist/fastxent-*.whl
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
assert not b["openmp"] and b["threads"] == 1, "the FASTXENT_NO_OPENMP=1 wheel should run serially"
for k in a.files:
    if k not in ("openmp", "threads"):
        assert np.array_equal(a[k], b[k]), k
print("without OpenMP: serial, and bitwise the same results as with OpenMP")
PY
step "build without OpenMP checked"
