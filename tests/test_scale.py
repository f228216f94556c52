"""Scale: inputs of more than 2**31 elements (float32, about 8.6 GB) give the
right answer: every index in the kernels is a Py_ssize_t, none wraps at 2**31.

Opt in with FASTXENT_RUN_HUGE=1; it needs about 9 GB of free memory for the
loss tests and 18 GB for the gradient test (skipped, with its reason, when
MemAvailable is short), and a few minutes.  The reference is float64, computed
in slices.  Run with -s to see the timings.
"""
from __future__ import annotations

import os
import time

import numpy as np
import pytest

import fastxent
import reference as ref

pytestmark = pytest.mark.skipif(not os.environ.get("FASTXENT_RUN_HUGE"),
                                reason="huge inputs (>2**31 elements, ~9-18 GB): set FASTXENT_RUN_HUGE=1")

C = 1000
# 4096 whole rows lie past element 2**31, and one row straddles it
ROWS = 2 ** 31 // C + 4096
SLICE = 8192                       # rows per slice of the float64 reference


def _mem_available():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _need(nbytes):
    avail = _mem_available()
    if avail is not None and avail < nbytes:
        pytest.skip(f"needs {nbytes / 2**30:.1f} GiB free, {avail / 2**30:.1f} GiB available")


@pytest.fixture(scope="module")
def huge():
    """(x, y): x float32 (ROWS, C) > 2**31 elements, y int64 targets."""
    _need(ROWS * C * 4 + 2 ** 30)
    t0 = time.perf_counter()
    rng = np.random.default_rng(2024)
    x = np.empty((ROWS, C), np.float32)
    for r0 in range(0, ROWS, 65536):
        rng.standard_normal(out=x[r0:r0 + 65536], dtype=np.float32)
    # rows past 2**31 get a distinct scale, so reading the wrong row shows
    x[2 ** 31 // C:] *= 3
    y = rng.integers(0, C, size=ROWS)
    y[-7:] = -100                                    # ignored rows at the very end
    assert x.size > 2 ** 31
    print(f"\nscale: x {x.shape} float32, {x.size} elements = {x.nbytes / 1e9:.2f} GB, "
          f"made in {time.perf_counter() - t0:.1f} s")
    return x, y


def test_huge_rows_loss(huge):
    """cross_entropy, class axis contiguous: every per-row loss and the mean."""
    x, y = huge
    t0 = time.perf_counter()
    per_row = fastxent.cross_entropy(x, y, reduction="none")
    mean = fastxent.cross_entropy(x, y)
    t1 = time.perf_counter()
    ref_total, worst = 0.0, 0.0
    for r0 in range(0, ROWS, SLICE):
        r1 = min(r0 + SLICE, ROWS)
        loss = ref.cross_entropy(x[r0:r1], y[r0:r1], reduction="none")
        ref_total += loss.sum()
        err = np.abs(per_row[r0:r1] - loss) / (1.0 + np.abs(loss))
        worst = max(worst, float(err.max()))
    t2 = time.perf_counter()
    ref_mean = ref_total / np.count_nonzero(y != -100)
    print(f"\nscale: rows: fastxent {t1 - t0:.1f} s (none + mean), reference {t2 - t1:.1f} s; "
          f"mean {float(mean):.7f} vs {ref_mean:.7f}; worst per-row rel. error {worst:.2e}")
    assert worst < 2e-6
    assert abs(float(mean) - ref_mean) <= 2e-6 * ref_mean
    assert per_row[-1] == 0.0 and per_row[-8] != 0.0


def test_huge_strided_class_axis(huge):
    """The same buffer as (1, C, ROWS) with the class axis strided: class c of
    sample i at element c * ROWS + i, up to 2.15e9."""
    x, y = huge
    x3 = x.reshape(1, C, ROWS)
    y3 = (np.arange(ROWS) % C).reshape(1, ROWS)
    t0 = time.perf_counter()
    per = fastxent.cross_entropy(x3, y3, reduction="none")[0]
    lse = fastxent.logsumexp(x3, axis=1)[0]
    t1 = time.perf_counter()
    worst = 0.0
    for i0 in range(0, ROWS, 16384):
        i1 = min(i0 + 16384, ROWS)
        xs = x3[0, :, i0:i1]
        ref_lse = ref.logsumexp(xs, axis=0)
        want = ref.cross_entropy(xs, y3[0, i0:i1], axis=0, reduction="none")
        worst = max(worst, float((np.abs(per[i0:i1] - want) / (1 + np.abs(want))).max()),
                    float((np.abs(lse[i0:i1] - ref_lse) / (1 + np.abs(ref_lse))).max()))
    t2 = time.perf_counter()
    print(f"\nscale: strided: fastxent {t1 - t0:.1f} s (loss + logsumexp), reference {t2 - t1:.1f} s; "
          f"worst rel. error {worst:.2e}")
    assert worst < 2e-6


def test_huge_gradient(huge):
    """The fused gradient (another 8.6 GB) and log_softmax into the same buffer,
    checked on the first rows, the row across element 2**31 and the last rows."""
    x, y = huge
    _need(x.nbytes + 2 ** 30)
    g = np.empty_like(x)
    t0 = time.perf_counter()
    total, _ = fastxent.cross_entropy(x, y, reduction="sum", return_grad=True, out=g)
    t1 = time.perf_counter()
    cross = 2 ** 31 // C
    checks = [(0, 64), (cross - 32, cross + 32), (ROWS - 64, ROWS)]
    worst = 0.0
    for r0, r1 in checks:
        _, want_g = ref.cross_entropy(x[r0:r1], y[r0:r1], reduction="sum", return_grad=True)
        worst = max(worst, float(np.abs(g[r0:r1] - want_g).max()))
    t2 = time.perf_counter()
    fastxent.log_softmax(x, out=g)
    t3 = time.perf_counter()
    worst_lsm = 0.0
    for r0, r1 in checks:
        lsm = ref.log_softmax(x[r0:r1], axis=1)
        worst_lsm = max(worst_lsm, float((np.abs(g[r0:r1] - lsm) / (1 + np.abs(lsm))).max()))
    print(f"\nscale: gradient: fastxent {t1 - t0:.1f} s (loss + grad), log_softmax {t3 - t2:.1f} s; "
          f"worst abs. grad error {worst:.2e}, log_softmax rel. error {worst_lsm:.2e}")
    assert worst < 1e-6
    assert worst_lsm < 2e-6
    del g
