"""The Cython-level API: a downstream extension cimports fastxent.kernels,
compiles against fastxent.get_include() with fastxent.get_compile_args() and
get_link_args(), and calls the nogil kernels: bitwise the results of the Python
API.

Compiles a small extension (about 10 s of CPU); skipped without Cython or a C
compiler.  Run as a script (``python tests/test_cython_api.py``) it also builds
the extension with the compiler's default flags and prints the table of both
builds against the Python API.
"""
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy as np
import pytest

import fastxent

DOWNSTREAM_PYX = """
# cython: language_level=3, boundscheck=False, wraparound=False
from libc.stdint cimport int64_t
from libc.string cimport memset
from fastxent.kernels cimport (fx_xent_args, fx_lse_args, fx_nblocks, fx_xent_block_f,
                               fx_xent_block_d, fx_lse_block_f, FX_LSE, FX_LOG_SOFTMAX)
from fastxent cimport kernels


cdef fx_xent_args xent_args(const void *x, Py_ssize_t rows, Py_ssize_t C, const int64_t *y,
                            void *loss, void *g) noexcept nogil:
    cdef fx_xent_args a
    memset(&a, 0, sizeof(a))                        # options added later are off at zero
    a.shape.n_outer, a.shape.C, a.shape.inner = rows, C, 1
    a.x, a.y, a.ignore_index = x, y, -100
    a.w_sum = <double>C
    a.loss, a.grad, a.gscale = loss, g, 1.0
    return a


def xent_rows_f(const float[:, ::1] x, const int64_t[::1] y, const float[::1] w, double w_sum,
                double eps, float[::1] loss, float[:, ::1] g):
    '''Per-row cross-entropy of class-index targets (weighted, smoothed), the
    gradient of their sum into g; returns the sum of the row losses.'''
    cdef fx_xent_args a = xent_args(&x[0, 0], x.shape[0], x.shape[1], &y[0], &loss[0], &g[0, 0])
    cdef double total = 0.0
    cdef Py_ssize_t b, bad
    a.w, a.w_sum, a.eps = &w[0], w_sum, eps
    with nogil:
        for b in range(fx_nblocks(&a.shape)):       # block sums in block order
            total += fx_xent_block_f(&a, b, &bad)
    return total


def xent_rows_d(const double[:, ::1] x, const int64_t[::1] y, double[::1] loss, double[:, ::1] g):
    '''Per-row cross-entropy of class-index targets, no weights or smoothing.'''
    cdef fx_xent_args a = xent_args(&x[0, 0], x.shape[0], x.shape[1], &y[0], &loss[0], &g[0, 0])
    cdef Py_ssize_t b, bad
    with nogil:
        for b in range(fx_nblocks(&a.shape)):
            fx_xent_block_d(&a, b, &bad)


cdef fx_lse_args lse_args(const void *x, Py_ssize_t rows, Py_ssize_t C, int mode) noexcept nogil:
    cdef fx_lse_args a
    memset(&a, 0, sizeof(a))
    a.shape.n_outer, a.shape.C, a.shape.inner = rows, C, 1
    a.x, a.mode = x, mode
    return a


def row_logsumexp(const float[:, ::1] x, float[::1] out):
    cdef fx_lse_args a = lse_args(&x[0, 0], x.shape[0], x.shape[1], FX_LSE)
    cdef Py_ssize_t b
    a.lse = &out[0]
    with nogil:
        for b in range(fx_nblocks(&a.shape)):
            fx_lse_block_f(&a, b)


def log_softmax_rows(const double[:, ::1] x, double[:, ::1] out):
    cdef fx_lse_args a = lse_args(&x[0, 0], x.shape[0], x.shape[1], FX_LOG_SOFTMAX)
    cdef Py_ssize_t b
    a.out = &out[0, 0]
    with nogil:
        for b in range(kernels.fx_nblocks(&a.shape)):
            kernels.fx_lse_block_d(&a, b)
"""

SETUP_PY = """
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup

import fastxent

flags = sys.argv.pop(1)          # "fastxent": get_compile_args(); "default": none
name = sys.argv.pop(1)
compile_args = fastxent.get_compile_args() if flags == "fastxent" else []
link_args = fastxent.get_link_args() if flags == "fastxent" else []
setup(
    name=name,
    ext_modules=cythonize([Extension(name, ["downstream.pyx"], include_dirs=[fastxent.get_include()],
                                     extra_compile_args=compile_args + ["-Wno-unused-function"],
                                     extra_link_args=link_args)],
                          quiet=True),
    script_args=["build_ext", "--inplace"],
)
"""


def _no_c_compiler():
    if sys.platform == "win32":
        return False                     # setuptools finds MSVC itself
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(shlex.split(cc)[0]) is None


def build_downstream(directory, flags, name):
    """Compiles DOWNSTREAM_PYX as module ``name`` in ``directory`` with
    ``flags`` ("fastxent" or "default") and imports it."""
    d = str(directory)
    with open(os.path.join(d, "downstream.pyx"), "w") as f:
        f.write(textwrap.dedent(DOWNSTREAM_PYX))
    with open(os.path.join(d, "setup.py"), "w") as f:
        f.write(textwrap.dedent(SETUP_PY))
    res = subprocess.run([sys.executable, "setup.py", flags, name], cwd=d, capture_output=True,
                         text=True, timeout=600,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))  # this fastxent
    if res.returncode != 0:
        raise RuntimeError(res.stdout[-3000:] + res.stderr[-3000:])
    sys.path.insert(0, d)
    try:
        return __import__(name)
    finally:
        sys.path.remove(d)


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    if _no_c_compiler():
        pytest.skip("no C compiler")
    return build_downstream(tmp_path_factory.mktemp("downstream"), "fastxent", "downstream")


def test_headers_are_installed():
    inc = fastxent.get_include()
    for name in ("fx_xent.h", "fx_xent_impl.h", "fx_math.h", "fx_math_impl.h"):
        assert os.path.isfile(os.path.join(inc, name)), name
    pxd = os.path.join(os.path.dirname(fastxent.__file__), "kernels.pxd")
    assert os.path.isfile(pxd)


def test_compile_args_are_those_of_the_chosen_kernel_module():
    from fastxent._info import build_info
    args = fastxent.get_compile_args()
    assert args == build_info()["compile_args"][f"_kernels_{fastxent.get_simd_path()}"]
    assert fastxent.get_simd_path() in fastxent.get_simd_paths()
    for simd in fastxent.get_simd_paths():
        assert isinstance(fastxent.get_compile_args(simd), list)
        assert isinstance(fastxent.get_link_args(simd), list)
    if "avx2" in fastxent.get_simd_paths() and not any(a.startswith("/") for a in args):
        assert "-mfma" in fastxent.get_compile_args("avx2")
        assert "-mfma" not in fastxent.get_compile_args("baseline")
    if "avx512" in fastxent.get_simd_paths() and not any(a.startswith("/") for a in args):
        avx512 = fastxent.get_compile_args("avx512")
        assert {"-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mfma"} <= set(avx512)
    with pytest.raises(ValueError, match="simd must be"):
        fastxent.get_compile_args("avx1024")


def _problem(n, C, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (3 * rng.standard_normal((n, C))).astype(dtype)
    y = rng.integers(0, C, size=n)
    y[::7] = -100                                  # ignored rows
    w = rng.uniform(0.5, 2.0, C).astype(dtype)
    return x, y, w


def _xent(downstream, x, y, w, eps):
    loss = np.empty(x.shape[0], x.dtype)
    g = np.empty_like(x)
    # the class weights' sum as fastxent's Python layer computes it
    total = downstream.xent_rows_f(x, y, w, float(w.sum(dtype=np.float64)), eps, loss, g)
    return total, loss, g


def test_downstream_cross_entropy_is_bitwise_the_python_api(downstream):
    x, y, w = _problem(301, 37, np.float32)
    total, loss, g = _xent(downstream, x, y, w, 0.1)
    want, want_grad = fastxent.cross_entropy(x, y, w, label_smoothing=0.1, reduction="none",
                                             return_grad=True, n_threads=1)
    np.testing.assert_array_equal(loss, want)
    np.testing.assert_array_equal(g, want_grad)
    assert total == pytest.approx(float(np.sum(want, dtype=np.float64)), rel=1e-6)

    xd = x.astype(np.float64)
    loss_d, g_d = np.empty(301), np.empty_like(xd)
    downstream.xent_rows_d(xd, y, loss_d, g_d)
    want, want_grad = fastxent.cross_entropy(xd, y, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss_d, want)
    np.testing.assert_array_equal(g_d, want_grad)


def test_downstream_lse_kernels_are_bitwise_the_python_api(downstream):
    rng = np.random.default_rng(1)
    x = (3 * rng.standard_normal((50, 300))).astype(np.float32)
    out = np.empty(50, np.float32)
    downstream.row_logsumexp(x, out)
    np.testing.assert_array_equal(out, fastxent.logsumexp(x, axis=-1))
    xd = x.astype(np.float64)
    lsm = np.empty_like(xd)
    downstream.log_softmax_rows(xd, lsm)
    np.testing.assert_array_equal(lsm, fastxent.log_softmax(xd, axis=-1))


def _timed_calls(downstream, n=2048, C=1000):
    """(name, downstream call, Python API call) for the speed comparison: one
    thread each, float32, the two cases issue 13 measured."""
    x, y, w = _problem(n, C, np.float32, seed=2)
    loss, g, g2 = np.empty(n, np.float32), np.empty_like(x), np.empty_like(x)
    lse = np.empty(n, np.float32)
    return [
        ("weighted smoothed cross_entropy loss+grad",
         lambda: downstream.xent_rows_f(x, y, w, float(w.sum(dtype=np.float64)), 0.1, loss, g),
         lambda: fastxent.cross_entropy(x, y, w, label_smoothing=0.1, reduction="sum",
                                        return_grad=True, out=g2, n_threads=1)),
        ("float32 logsumexp", lambda: downstream.row_logsumexp(x, lse),
         lambda: fastxent.logsumexp(x, axis=-1, n_threads=1)),
    ]


def _table():
    """Builds the extension with default flags and with get_compile_args() and
    prints their times against the Python API (medians of interleaved rounds)."""
    from fastxent._workloads import time_median
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "default"))
        os.mkdir(os.path.join(d, "fastxent"))
        builds = {"default flags": build_downstream(os.path.join(d, "default"), "default",
                                                    "downstream_default"),
                  "get_compile_args()": build_downstream(os.path.join(d, "fastxent"), "fastxent",
                                                         "downstream_fastxent")}
        print(f"fastxent {fastxent.__version__}, SIMD path {fastxent.get_simd_path()}; "
              f"get_compile_args(): {' '.join(fastxent.get_compile_args())}")
        print("one thread, 2048 x 1000 float32, median of 15 interleaved calls (ms)\n")
        print("| case | default flags | get_compile_args() | Python API | bitwise equal (default / ours) |")
        print("|---|---:|---:|---:|---|")
        calls = {k: _timed_calls(m) for k, m in builds.items()}
        for i, (name, _, api) in enumerate(calls["default flags"]):
            fns = [calls["default flags"][i][1], calls["get_compile_args()"][i][1], api]
            times = [[] for _ in fns]
            for _ in range(15):
                for t, fn in zip(times, fns):
                    t.append(time_median(fn, repeat=1, warmup=0))
            med = [1e3 * float(np.median(t)) for t in times]
            same = []
            for m in builds.values():
                x, y, w = _problem(301, 37, np.float32)
                if "cross" in name:
                    _, loss, g = _xent(m, x, y, w, 0.1)
                    want = fastxent.cross_entropy(x, y, w, label_smoothing=0.1, reduction="none",
                                                  return_grad=True)
                    same.append(np.array_equal(loss, want[0]) and np.array_equal(g, want[1]))
                else:
                    out = np.empty(301, np.float32)
                    m.row_logsumexp(x, out)
                    same.append(np.array_equal(out, fastxent.logsumexp(x, axis=-1)))
            print(f"| {name} | {med[0]:.2f} | {med[1]:.2f} | {med[2]:.2f} | "
                  f"{'yes' if same[0] else 'no'} / {'yes' if same[1] else 'no'} |")


if __name__ == "__main__":
    _table()
