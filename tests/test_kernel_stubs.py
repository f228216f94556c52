"""The kernel modules' stubs describe them: mypy's stubtest compares
_kernels_baseline.pyi (and _kernels_avx2.pyi, _kernels_avx512.pyi, which re-export
it) with the compiled modules of this build (every driver, its keyword-only
arguments, the constants).  Skipped without mypy."""
import os
import subprocess
import sys

import pytest

import fastxent

pytest.importorskip("mypy")


def test_kernel_stubs_match_the_compiled_modules():
    modules = [f"fastxent._kernels_{p}" for p in fastxent.get_simd_paths()]
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastxent.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [pkg_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    res = subprocess.run([sys.executable, "-m", "mypy.stubtest", *modules], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
