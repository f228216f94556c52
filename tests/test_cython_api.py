"""The Cython-level API: a downstream extension cimports fastxent.kernels,
compiles against fastxent.get_include() and calls the nogil kernels.

Compiles a small extension (about 6 s of CPU); skipped without Cython or a C compiler.
"""
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

import fastxent

pytest.importorskip("Cython")
pytest.importorskip("setuptools")

DOWNSTREAM_PYX = """
# cython: language_level=3, boundscheck=False, wraparound=False
from libc.stdint cimport int64_t
from libc.string cimport memset
from fastxent.kernels cimport (fx_xent_args, fx_lse_args, fx_nblocks, fx_xent_block_d,
                               fx_lse_block_f, FX_LSE, FX_LOG_SOFTMAX)
from fastxent cimport kernels


def xent_sum(const double[:, ::1] x, const int64_t[::1] y, double[:, ::1] g):
    '''Summed cross-entropy of class-index targets, gradient into g.'''
    cdef fx_xent_args a
    cdef double total = 0.0
    cdef Py_ssize_t b, bad
    memset(&a, 0, sizeof(a))
    a.shape.n_outer, a.shape.C, a.shape.inner = x.shape[0], x.shape[1], 1
    a.x, a.y, a.ignore_index = &x[0, 0], &y[0], -100
    a.w_sum = <double>x.shape[1]
    a.grad, a.gscale = &g[0, 0], 1.0
    with nogil:
        for b in range(fx_nblocks(&a.shape)):       # block sums in block order
            total += fx_xent_block_d(&a, b, &bad)
    return total


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

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

import fastxent

quick = ["/Od"] if sys.platform == "win32" else ["-O0"]    # compiles in half the time
setup(
    name="downstream",
    ext_modules=cythonize([Extension("downstream", ["downstream.pyx"], extra_compile_args=quick,
                                     include_dirs=[fastxent.get_include(), np.get_include()])],
                          quiet=True),
    script_args=["build_ext", "--inplace"],
)
"""


def _no_c_compiler():
    if sys.platform == "win32":
        return False                     # setuptools finds MSVC itself
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shutil.which(shlex.split(cc)[0]) is None


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    if _no_c_compiler():
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("downstream")
    (d / "downstream.pyx").write_text(textwrap.dedent(DOWNSTREAM_PYX))
    (d / "setup.py").write_text(textwrap.dedent(SETUP_PY))
    res = subprocess.run([sys.executable, "setup.py"], cwd=d, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)),  # this fastxent
                         timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    sys.path.insert(0, str(d))
    try:
        import downstream
    finally:
        sys.path.remove(str(d))
    return downstream


def test_headers_are_installed():
    inc = fastxent.get_include()
    for name in ("fx_xent.h", "fx_xent_impl.h", "fx_math.h", "fx_math_impl.h"):
        assert os.path.isfile(os.path.join(inc, name)), name
    pxd = os.path.join(os.path.dirname(fastxent.__file__), "kernels.pxd")
    assert os.path.isfile(pxd)


def test_downstream_row_kernel_matches_cross_entropy(downstream):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((37, 11))
    y = rng.integers(0, 11, size=37)
    y[3] = -100                               # ignored
    g = np.empty_like(x)
    total = downstream.xent_sum(x, y, g)
    loss, grad = fastxent.cross_entropy(x, y, reduction="sum", return_grad=True)
    # the downstream module is compiled with its own flags (-O0, no FMA), so the
    # results agree to a few ulp rather than bit for bit
    np.testing.assert_allclose(total, loss, rtol=1e-13)
    np.testing.assert_allclose(g, grad, rtol=1e-13, atol=1e-16)


def test_downstream_lse_kernels_match(downstream):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 300)).astype(np.float32)
    out = np.empty(5, np.float32)
    downstream.row_logsumexp(x, out)
    np.testing.assert_allclose(out, fastxent.logsumexp(x, axis=-1), rtol=1e-6)
    xd = x.astype(np.float64)
    lsm = np.empty_like(xd)
    downstream.log_softmax_rows(xd, lsm)
    np.testing.assert_allclose(lsm, fastxent.log_softmax(xd, axis=-1), rtol=1e-13, atol=1e-15)
