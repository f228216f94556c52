"""The garbage-input fuzz (tests/fuzz_driver.py), run in a subprocess so that a
crash fails this test instead of killing the test run.

Contract checked: every call returns or raises TypeError/ValueError; the
process never dies; no input (nor ``out`` on error) is modified.  The number of
calls is FASTXENT_FUZZ_N (default 3000, split over the SIMD paths).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import fastxent

HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "fuzz_driver.py")
N = int(os.environ.get("FASTXENT_FUZZ_N", "3000"))


def _env(simd):
    env = dict(os.environ)
    # the subprocess imports the fastxent this process imported
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(fastxent.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([pkg_root] + [p for p in [env.get("PYTHONPATH")] if p])
    env["FASTXENT_SIMD"] = simd
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


@pytest.mark.parametrize("simd,share,seed", [("auto", 1 / 2, 1), ("baseline", 1 / 4, 2),
                                              ("avx2", 1 / 4, 3)])
def test_garbage_input_fuzz(simd, share, seed):
    """auto runs the fastest path of this CPU (avx512 where it has AVX-512);
    avx2 runs where that is another path the CPU runs."""
    if simd == "avx2":
        from fastxent import _kernels, _kernels_baseline
        if ("avx2" not in fastxent.get_simd_paths()
                or not _kernels_baseline.cpu_features()["avx2_fma"]):
            pytest.skip("no avx2 kernels here: not built (x86-64 only), or the CPU lacks "
                        "AVX2 or FMA")
        if _kernels.simd_path == "avx2":
            pytest.skip("auto already runs the avx2 kernels on this CPU")
    n = max(50, int(N * share))
    proc = subprocess.run([sys.executable, DRIVER, "--n", str(n), "--seed", str(seed), "--trace"],
                          capture_output=True, text=True, env=_env(simd),
                          timeout=max(600, n // 10))
    tail = "\n".join(proc.stderr.splitlines()[-15:])
    assert proc.returncode in (0, 1), (
        f"the fuzz process died (exit status {proc.returncode}); its last calls:\n{tail}")
    summary = json.loads(proc.stdout.splitlines()[-1])
    print(f"fuzz ({simd}): {summary['calls']} calls: {summary['outcomes']}; "
          f"{summary['distinct_error_messages']} distinct error messages")
    failures = "\n".join(json.dumps(f) for f in summary["failures"])
    assert summary["n_failures"] == 0, f"{summary['n_failures']} calls broke the contract:\n{failures}"
    assert proc.returncode == 0
    assert set(summary["outcomes"]) <= {"returned", "TypeError", "ValueError"}
    # the harness itself: every function was called, and each outcome happened
    assert set(summary["by_function"]) == set(summary["functions"])
    assert {"returned", "TypeError", "ValueError"} <= set(summary["outcomes"])
    # the fast path of small calls (test_fast_path.py) is fuzzed too
    assert summary["fast_path_calls"] > 0
