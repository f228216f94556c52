#!/usr/bin/env bash
# fastxent's tests under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# 1. Copies this tree (git's tracked and untracked-not-ignored files) to a scratch
#    directory and builds the kernels there with FASTXENT_SANITIZE=1 (setup.py:
#    -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all
#    -fno-wrapv -O1 -g).  The normal in-place build is not touched.
# 2. Checks that the sanitizers see into the kernels: a deliberate out-of-bounds
#    read and a deliberate signed overflow, made by calling the unchecked kernel
#    entry points directly, must each abort the process with a report.
# 3. Runs the tests with libasan preloaded into the (uninstrumented) python;
#    any report aborts the run and fails the script.  PyTorch is hidden (the
#    oracle tests skip): it is slow and noisy under ASan and tests no fastxent
#    memory.  LeakSanitizer is off: CPython itself keeps memory to the end.
#
#   tools/run_sanitized.sh                      # every test not marked slow
#   tools/run_sanitized.sh tests/test_fuzz.py   # any pytest arguments instead
#
# Environment: PYTHON (default python3; needs numpy, Cython>=3, setuptools,
# pytest, hypothesis), CC (gcc, or clang), FASTXENT_SANITIZE_DIR (the scratch
# directory; kept when given, else a temporary one, removed on success),
# FASTXENT_SANITIZE_JOBS (parallel compiles, default 2).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python3}
CC=${CC:-gcc}
export CC
jobs=${FASTXENT_SANITIZE_JOBS:-2}
start=$SECONDS
say() { echo "== run_sanitized: $* ($((SECONDS - start)) s)"; }

command -v "$CC" >/dev/null || { echo "run_sanitized: no C compiler '$CC' (set CC)" >&2; exit 2; }
"$PY" -c "import numpy, Cython, setuptools, pytest, hypothesis" 2>/dev/null || {
    echo "run_sanitized: $PY lacks numpy, Cython, setuptools, pytest or hypothesis" >&2
    echo "  e.g.: $PY -m pip install numpy 'Cython>=3.0' 'setuptools>=77' pytest hypothesis scipy" >&2
    exit 2; }

# The ASan runtime to preload: the compiler's own.
asan_rt=$("$CC" -print-file-name=libasan.so)
if [ ! -e "$asan_rt" ]; then                      # clang names it differently
    asan_rt=$("$CC" -print-file-name="libclang_rt.asan-$(uname -m).so")
fi
[ -e "$asan_rt" ] || { echo "run_sanitized: cannot find $CC's ASan runtime (libasan.so)" >&2; exit 2; }

if [ -n "${FASTXENT_SANITIZE_DIR:-}" ]; then
    work=$FASTXENT_SANITIZE_DIR
    keep=1
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/fastxent-sanitize.XXXXXX")
    keep=0
fi

# -- 1. the sanitized build, in a copy ----------------------------------------------
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    (cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work")
else
    (cd "$repo" && tar cf - --exclude=./build --exclude='./.venv*' --exclude='*.so' . ) | (cd "$work" && tar xf -)
fi
say "building with FASTXENT_SANITIZE=1 in $work"
(cd "$work" && FASTXENT_SANITIZE=1 "$PY" setup.py -q build_ext --inplace --parallel "$jobs") \
    > "$work/build.log" 2>&1 || { tail -30 "$work/build.log"; echo "run_sanitized: build failed" >&2; exit 1; }

# The peers with native runtimes of their own are hidden: `import torch` (jax, ...)
# fails, so the tests that use them skip.  Their libraries are not built with the
# sanitizers (jaxlib and matplotlib abort under the preloaded ASan runtime), and the suite's main
# run covers them; this run is about fastxent's kernels.
for mod in torch jax jaxlib optax xgboost lightgbm dask distributed matplotlib; do
    mkdir -p "$work/.no-torch/$mod"
    echo "raise ModuleNotFoundError('$mod is hidden under the sanitizers (tools/run_sanitized.sh)')" \
        > "$work/.no-torch/$mod/__init__.py"
done

export PYTHONPATH="$work/.no-torch:$work/src${PYTHONPATH:+:$PYTHONPATH}"
export LD_PRELOAD="$asan_rt${LD_PRELOAD:+:$LD_PRELOAD}"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export FASTXENT_UNDER_SANITIZER=1      # tests/test_load.py: RSS grows by design (ASan's quarantine)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
cd "$work"

"$PY" - <<'EOF'
import fastxent, fastxent._build_info as b
assert b.BUILD_INFO["sanitize"], "not the sanitized build"
assert fastxent.__file__.startswith(__import__("os").getcwd()), fastxent.__file__
print("sanitized fastxent from", fastxent.__file__, "- SIMD path", fastxent._kernels.simd_path)
EOF

# -- 2. the sanitizers must catch deliberate faults in the kernels --------------------
expect_report() {   # $1: what, $2: pattern of the report, $3: python code
    set +e
    out=$("$PY" -c "$3" 2>&1)
    rc=$?
    set -e
    if [ $rc -eq 0 ] || ! grep -q "$2" <<<"$out"; then
        echo "$out" | tail -20
        echo "run_sanitized: the sanitizers did not catch $1 (exit $rc): they are not working" >&2
        exit 1
    fi
    say "self-test: $1 caught: $(grep -m1 "$2" <<<"$out" | cut -c1-110)"
}
# The drivers check every length, so no call reaches a kernel with a bad shape:
# the faults come from cext/fx_selftest.h, compiled into this build only.
expect_report "an out-of-bounds read in the kernel module" "heap-buffer-overflow" '
from fastxent._kernels import kernels
kernels._sanitizer_selftest("read", 10)'
expect_report "a signed integer overflow in the kernel module" "signed integer overflow" '
from fastxent._kernels import kernels
kernels._sanitizer_selftest("overflow", 2**62)'

# -- 3. the tests ----------------------------------------------------------------------
if [ $# -eq 0 ]; then
    set -- tests -m "not slow"
fi
say "running pytest $* under ASan+UBSan"
set +e
"$PY" -m pytest -q -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -ne 0 ]; then
    say "FAILED (pytest exit status $rc); the build is kept in $work"
    exit $rc
fi
say "passed: no sanitizer report"
[ "$keep" = 1 ] || rm -rf "$work"
