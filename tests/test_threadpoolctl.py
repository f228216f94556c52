"""threadpoolctl sees fastxent's OpenMP runtime and its limits apply to fastxent.

Checked in a fresh interpreter that imports only NumPy and fastxent, so the
OpenMP runtime found is fastxent's (PyTorch, imported by other tests, brings
its own).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastxent
from fastxent._kernels import kernels

threadpoolctl = pytest.importorskip("threadpoolctl")

needs_openmp = pytest.mark.skipif(not kernels.openmp_enabled(), reason="built without OpenMP")

_PROBE = r"""
import json, sys
import fastxent
from threadpoolctl import threadpool_info, threadpool_limits

libs = [i for i in threadpool_info() if i["user_api"] == "openmp"]
default = fastxent.get_num_threads()
with threadpool_limits(limits=1):
    limited = fastxent.get_num_threads()
with threadpool_limits(limits=1, user_api="openmp"):
    limited_openmp = fastxent.get_num_threads()
json.dump({"libs": libs, "default": default, "limited": limited,
           "limited_openmp": limited_openmp, "after": fastxent.get_num_threads()}, sys.stdout)
"""


def _probe(**env):
    full_env = dict(os.environ, **env)
    res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         env=full_env, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@needs_openmp
def test_threadpool_info_lists_fastxents_openmp_runtime():
    info = _probe(OMP_NUM_THREADS="3")
    assert info["libs"], "threadpool_info() found no OpenMP runtime after importing fastxent"
    lib = info["libs"][0]
    assert lib["prefix"] in ("libgomp", "libomp", "libiomp", "vcomp"), lib
    assert os.path.exists(lib["filepath"])
    assert lib["num_threads"] == 3


@needs_openmp
def test_threadpool_limits_limit_fastxent():
    info = _probe(OMP_NUM_THREADS="3")
    assert info["default"] == 3
    assert info["limited"] == 1
    assert info["limited_openmp"] == 1
    assert info["after"] == 3


@needs_openmp
def test_threadpool_limits_leave_results_unchanged():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 64)).astype(np.float32)   # large enough to use threads
    y = rng.integers(0, 64, size=2048)
    loss, grad = fastxent.cross_entropy(x, y, return_grad=True, n_threads=2)
    with threadpoolctl.threadpool_limits(limits=1):
        assert fastxent.get_num_threads() == 1
        loss1, grad1 = fastxent.cross_entropy(x, y, return_grad=True)
    assert loss1 == loss
    np.testing.assert_array_equal(grad1, grad)
