"""The bench's ``loop`` section (issue 11): matmul, loss+grad, matmul.  Its
configurations run, and its thread diagnostics see what they claim: after a
matmul, NumPy's OpenBLAS workers burn CPU during fastxent's call unless
OPENBLAS_THREAD_TIMEOUT is small, and after fastxent's call its OpenMP workers
burn CPU during the matmuls unless OMP_WAIT_POLICY=passive.  CPU time of each
worker thread, unlike wall time, does not depend on the machine's load."""
import io
import os

import pytest

from fastxent import _bench_loop as loop

# Big enough that OpenBLAS runs the matmul on its threads and a loss+grad lasts
# a few milliseconds; small enough for a test.
SHAPE = (2048, 64, 1000)


def _blas_and_omp():
    """Skips unless NumPy's BLAS is OpenBLAS on pthreads with >= 2 threads and
    fastxent's OpenMP is GNU's (the runtimes the diagnostics are about)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numpy as np

    import fastxent
    np.ones((64, 64)) @ np.ones((64, 64))
    fastxent.cross_entropy(np.ones((4096, 16)), np.zeros(4096, dtype=np.int64), n_threads=2)
    info = threadpoolctl.threadpool_info()
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU")
    if not any(d["internal_api"] == "openblas" and d.get("threading_layer") == "pthreads"
               and d["num_threads"] >= 2 and "numpy" in d["filepath"] for d in info):
        pytest.skip("NumPy's BLAS is not OpenBLAS on pthreads with 2 threads or more")
    if not any(d["prefix"] == "libgomp" for d in info):
        pytest.skip("fastxent's OpenMP is not GNU's")


def test_section_runs_every_configuration():
    out = io.StringIO()
    results = loop.run_section(threads=(1, 2), tiny=True, out=out, err=io.StringIO())
    configs = [c for c in loop.CONFIGS if c != "BLAS 1 thread" or loop._has_threadpoolctl()]
    assert set(results) == {(c, n) for c in configs for n in (1, 2)}
    for r in results.values():
        assert r["loss"] > 0 and r["alone"] > 0 and r["mm"] > 0 and r["step"] >= r["loss"]
    assert "| default" in out.getvalue() and "1T / nT in loop" in out.getvalue()


def test_blas_workers_spin_during_fastxent_unless_their_timeout_is_short():
    _blas_and_omp()
    for _ in range(3):                  # clock ticks: as in the test above
        default = loop.measure("default", 2, steps=5, shape=SHAPE)
        if default["blas_cpu"] > 0.05 * default["loss"]:
            break
    short = loop.measure("OPENBLAS_THREAD_TIMEOUT=4", 2, steps=5, shape=SHAPE)
    assert default["blas_workers"] >= 1 and default["omp_workers"] >= 1
    assert default["blas_cpu"] > 0.05 * default["loss"], default     # ms of CPU burned
    assert short["blas_cpu"] < 0.02, short


def test_openmp_workers_spin_during_matmuls_unless_passive():
    _blas_and_omp()
    # A thread's CPU clock advances in scheduler ticks, and on a loaded machine
    # one short run may see few ticks of the spin: up to three runs.
    for _ in range(3):
        default = loop.measure("default", 2, steps=5, shape=SHAPE)
        if default["omp_cpu"] > 0.05:
            break
    passive = loop.measure("OMP_WAIT_POLICY=passive", 2, steps=5, shape=SHAPE)
    assert default["omp_cpu"] > 0.05, default
    assert passive["omp_cpu"] < 0.02, passive
