"""Threads and determinism (SPEC.md "Threads and determinism"): the thread-count
setting, bitwise-identical results for every thread count, calls from many
Python threads at once, threadpoolctl limits and OMP_NUM_THREADS."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import fastxent as fx

THREAD_COUNTS = [1, 2, 3, 4, 7]


@pytest.fixture(autouse=True)
def openmp_count_at_its_default():
    """Each test starts from OpenMP's default thread count in this thread.  An
    earlier test in the process may have lowered it through torch.set_num_threads
    (PyTorch shares libgomp), and a lowered OpenMP count caps fastxent's count
    as a threadpoolctl limit does."""
    from fastxent import _kernels, _kernels_baseline
    before = _kernels_baseline.omp_max_threads()
    _kernels_baseline.omp_set_num_threads(_kernels._omp_default)
    yield
    _kernels_baseline.omp_set_num_threads(before)


@pytest.fixture(scope="module")
def big():
    """Inputs large enough for many blocks (and for the kernels to go parallel:
    more than 32768 elements)."""
    rng = np.random.default_rng(20240611)
    rows = 3.0 * rng.standard_normal((3000, 40))          # 8 blocks of rows
    tiles = 3.0 * rng.standard_normal((30, 20, 200))      # 120 tiles of 64 positions
    return {
        "rows": (rows, rng.integers(0, 40, 3000), rng.random((3000, 40)),
                 rng.uniform(0.5, 1.5, 40), rng.standard_normal(3000)),
        "tiles": (tiles, rng.integers(0, 20, (30, 200)), rng.random((30, 20, 200)),
                  rng.uniform(0.5, 1.5, 20), rng.standard_normal((30, 200))),
    }


def all_results(x, y, t, w, go, n_threads):
    """Every result that has a reduction or a block split, at one thread count."""
    y = y.copy()
    y[::7] = -100
    res = []
    for reduction in ("sum", "mean"):
        for target in (y, t):
            res += fx.cross_entropy(x, target, w, reduction=reduction, label_smoothing=0.1,
                                    return_grad=True, n_threads=n_threads)
        res += fx.nll_loss(x, y, w, reduction=reduction, return_grad=True, n_threads=n_threads)
    res += fx.cross_entropy(x, y, w, reduction="none", return_grad=True, grad_output=go,
                            n_threads=n_threads)
    res.append(fx.logsumexp(x, axis=1, n_threads=n_threads))
    res.append(fx.softmax(x, axis=1, n_threads=n_threads))
    res.append(fx.log_softmax(x, axis=1, n_threads=n_threads))
    return res


def assert_bitwise_equal(got, want):
    assert len(got) == len(want)
    for i, (g, v) in enumerate(zip(got, want)):
        g, v = np.asarray(g), np.asarray(v)
        assert g.dtype == v.dtype and g.shape == v.shape
        # compare bytes: equal values and equal NaN payloads, -0.0 != 0.0
        assert g.tobytes() == v.tobytes(), f"result {i} differs"


def test_set_and_get_num_threads(keep_num_threads):
    for n in (1, 3, 7):
        fx.set_num_threads(n)
        assert fx.get_num_threads() == n
    fx.set_num_threads(np.int64(2))
    assert fx.get_num_threads() == 2


def test_default_thread_count_is_positive():
    assert isinstance(fx.get_num_threads(), int) and fx.get_num_threads() >= 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["rows", "tiles"])
def test_results_are_bitwise_identical_for_any_thread_count(big, layout, dtype):
    x, y, t, w, go = big[layout]
    x, t, w = x.astype(dtype), t.astype(dtype), w.astype(dtype)
    want = all_results(x, y, t, w, go, n_threads=1)
    for n in THREAD_COUNTS[1:]:
        assert_bitwise_equal(all_results(x, y, t, w, go, n_threads=n), want)


def test_set_num_threads_applies_to_calls_without_n_threads(big, keep_num_threads):
    x, y, t, w, go = big["rows"]
    want = all_results(x, y, t, w, go, n_threads=1)
    for n in (1, 3):
        fx.set_num_threads(n)
        assert_bitwise_equal(all_results(x, y, t, w, go, n_threads=None), want)


def test_many_targets_bitwise_identical_for_any_thread_count():
    # the target check and nll_loss split more than 65536 targets into blocks
    rng = np.random.default_rng(7)
    x = rng.standard_normal((140_000, 2)).astype(np.float32)
    y = rng.integers(0, 2, 140_000)
    y[::5] = -100
    w = np.array([0.7, 1.9], np.float32)
    want = [fx.nll_loss(x, y, w, n_threads=1), fx.cross_entropy(x, y, w, n_threads=1)]
    for n in THREAD_COUNTS[1:]:
        got = [fx.nll_loss(x, y, w, n_threads=n), fx.cross_entropy(x, y, w, n_threads=n)]
        assert_bitwise_equal(got, want)


def test_concurrent_calls_from_python_threads_match_serial(big):
    # the GIL is released in the kernels: 8 threads at once, each with its own
    # inputs and thread count, must each get exactly the serial answers
    rng = np.random.default_rng(11)
    jobs = []
    for i in range(8):
        layout = "rows" if i % 2 == 0 else "tiles"
        x, y, t, w, go = big[layout]
        scale = 1.0 + 0.1 * i
        jobs.append((scale * x, y, t, w * scale, go, 1 + i % 3))
    serial = [all_results(x, y, t, w, go, n) for x, y, t, w, go, n in jobs]
    start_order = rng.permutation(8)

    barrier = threading.Barrier(8)
    results: list = [None] * 8
    errors: list = []

    def work(i):
        try:
            x, y, t, w, go, n = jobs[i]
            barrier.wait()
            results[i] = [all_results(x, y, t, w, go, n) for _ in range(2)]
        except BaseException as exc:    # re-raised in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in start_order]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for i in range(8):
        for rep in results[i]:
            assert_bitwise_equal(rep, serial[i])


def test_threadpoolctl_limits_apply(keep_num_threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    fx.set_num_threads(3)
    with threadpoolctl.threadpool_limits(1):
        assert fx.get_num_threads() == 1
    assert fx.get_num_threads() == 3
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert fx.get_num_threads() == 1
        x = np.random.default_rng(0).standard_normal((2000, 20))
        assert fx.softmax(x).shape == x.shape
    assert fx.get_num_threads() == 3


def test_threadpoolctl_limit_below_the_openmp_default_caps_a_larger_setting(keep_num_threads):
    # a limit below OpenMP's default caps a larger set_num_threads.  (A limit
    # equal to the default cannot be seen: fastxent never sets OpenMP's count, so
    # inside threadpool_limits(default) OpenMP reports what it reports outside.)
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastxent import _kernels_baseline
    default = _kernels_baseline.omp_max_threads()
    if default < 2:
        pytest.skip("OpenMP's default is one thread: no limit below it")
    fx.set_num_threads(default + 1)
    with threadpoolctl.threadpool_limits(limits=default - 1, user_api="openmp"):
        assert fx.get_num_threads() == default - 1
    assert fx.get_num_threads() == default + 1


def _run_python(code, **env):
    """Runs ``code`` in a fresh interpreter that imports the same fastxent."""
    pkg_parent = os.path.dirname(os.path.dirname(fx.__file__))
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in full_env.get("PYTHONPATH", "").split(os.pathsep) if p])
    full_env.update(env)
    proc = subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("n", ["1", "3"])
def test_omp_num_threads_sets_the_default(n):
    from fastxent import _kernels_baseline
    if not _kernels_baseline.openmp_enabled():
        pytest.skip("built without OpenMP")
    out = _run_python("import fastxent; print(fastxent.get_num_threads())", OMP_NUM_THREADS=n)
    assert out.strip() == n
