"""An installed wheel repaired by auditwheel carries its own OpenMP runtime:
the kernel modules load the vendored copy (fastxent.libs/), and threadpoolctl
sees it and limits it.

Skipped unless fastxent is imported from such a wheel (.ci/packaging.sh
installs one into a clean venv and runs this file there).
"""
import json
import os
import subprocess
import sys

import pytest

import fastxent

PKG = os.path.dirname(os.path.abspath(fastxent.__file__))
LIBS = os.path.join(os.path.dirname(PKG), "fastxent.libs")

pytestmark = pytest.mark.skipif(not os.path.isdir(LIBS),
                                reason="not installed from a repaired wheel (no fastxent.libs/)")

_PROBE = r"""
import json, sys
import fastxent
from threadpoolctl import threadpool_info, threadpool_limits

maps = open("/proc/self/maps").read() if sys.platform.startswith("linux") else ""
loaded = sorted({line.split()[-1] for line in maps.splitlines() if "omp" in line.split("/")[-1]})
libs = [i for i in threadpool_info() if i["user_api"] == "openmp"]
with threadpool_limits(limits=1, user_api="openmp"):
    limited = fastxent.get_num_threads()
json.dump({"libs": libs, "loaded": loaded, "limited": limited,
           "default": fastxent.get_num_threads()}, sys.stdout)
"""


def _probe():
    res = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         env=dict(os.environ, OMP_NUM_THREADS="3"), timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_the_openmp_runtime_is_vendored():
    vendored = [f for f in os.listdir(LIBS) if "gomp" in f or "omp" in f]
    assert vendored, f"no OpenMP runtime in {LIBS}: {os.listdir(LIBS)}"


def test_threadpoolctl_sees_the_vendored_runtime():
    info = _probe()
    paths = [os.path.realpath(lib["filepath"]) for lib in info["libs"]]
    assert any(p.startswith(os.path.realpath(LIBS) + os.sep) for p in paths), (paths, info)
    if info["loaded"]:                       # Linux: nothing but the vendored runtime loaded
        assert all(os.path.realpath(p).startswith(os.path.realpath(LIBS)) for p in info["loaded"]), info
    assert info["default"] == 3 and info["limited"] == 1
