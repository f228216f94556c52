"""Load: many Python threads at once give exactly the serial answers; many calls
leave memory flat (RSS and tracemalloc) and leak no references.

Default sizes are modest, for CI (20,000 small calls, 60 large ones).
FASTXENT_RUN_SLOW=1 (or pytest --run-slow) runs the full counts: 1,000,000
small calls and 1,000 large calls.  Every test
prints its figures (run with -s to see them).
"""
from __future__ import annotations

import gc
import os
import sys
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import fastxent


def _full(request):
    return (os.environ.get("FASTXENT_RUN_SLOW", "").strip() not in ("", "0")
            or bool(request.config.getoption("--run-slow", default=False)))


# Under ASan (tools/run_sanitized.sh) or valgrind freed memory is held in a
# quarantine, so RSS grows by design: the RSS checks are skipped there.
UNDER_SANITIZER = bool(os.environ.get("FASTXENT_UNDER_SANITIZER")) or "asan" in os.environ.get("LD_PRELOAD", "")


def _rss():
    """Resident set size of this process in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


BINARY = ["binary_cross_entropy", "binary_cross_entropy_with_logits"]


# ---- a mixed workload -------------------------------------------------------------------

def make_calls(n, seed, medium_every=10):
    """``n`` calls ``(fn, args, kwargs)`` over every function and option; every
    ``medium_every``-th is big enough to run its kernel on several OpenMP threads."""
    rng = np.random.default_rng(seed)
    calls = []
    names = ["cross_entropy", "cross_entropy", "nll_loss", "logsumexp", "softmax", "log_softmax"] + BINARY
    for i in range(n):
        name = names[rng.integers(len(names))]
        dtype = [np.float32, np.float64, np.float16][rng.integers(3)]
        if medium_every and i % medium_every == 0:
            shape = [(256, 200), (8, 40, 200), (64, 1500)][rng.integers(3)]
        else:
            shape = [(7,), (5, 9), (3, 4, 6), (2, 33)][rng.integers(4)]
        x = (rng.standard_normal(shape) * 3).astype(dtype)
        if rng.integers(4) == 0:
            x.reshape(-1)[rng.integers(x.size)] = [np.nan, -np.inf, np.inf][rng.integers(3)]
        kw = {"n_threads": [None, 1, 2, 3][rng.integers(4)]}
        ax = 0 if len(shape) == 1 else 1
        C = shape[ax]
        sshape = shape[:ax] + shape[ax + 1:]
        if name in ("cross_entropy", "nll_loss"):
            if name == "cross_entropy" and rng.integers(3) == 0:
                t = rng.random(shape).astype(dtype)
            else:
                t = rng.integers(0, C, size=sshape)
                t.reshape(-1)[0] = -100
            if rng.integers(2):
                kw["weight"] = rng.random(C).astype(dtype)
            if name == "cross_entropy" and rng.integers(2):
                kw["label_smoothing"] = 0.1
            kw["reduction"] = ["mean", "sum", "none"][rng.integers(3)]
            if rng.integers(2):
                kw["return_grad"] = True
            args = (x, t)
        elif name in BINARY:
            if name == "binary_cross_entropy":
                x = rng.random(shape).astype(dtype)
            args = (x, rng.random(shape).astype(dtype))
            kw["reduction"] = ["mean", "sum", "none"][rng.integers(3)]
            kw["return_grad"] = bool(rng.integers(2))
        else:
            args = (x,)
            kw["axis"] = int(rng.integers(-len(shape), len(shape)))
        calls.append((getattr(fastxent, name), args, kw))
    return calls


def _bits(res):
    parts = res if isinstance(res, tuple) else (res,)
    return tuple((np.asarray(p).dtype.str, np.shape(p), np.asarray(p).tobytes()) for p in parts)


# ---- threads ------------------------------------------------------------------------------

def test_threads_give_serial_answers(request):
    """16 Python threads x 500 calls (mixed functions, options, dtypes, sizes,
    some with OpenMP inside), all at once, each in its own order: every result
    is bitwise the serial one."""
    n_threads, n_calls = 16, 500
    calls = make_calls(n_calls, seed=7)
    serial = [_bits(fn(*a, **kw)) for fn, a, kw in calls]
    barrier = threading.Barrier(n_threads)
    mismatches, errors = [], []

    def worker(k):
        order = np.random.default_rng(100 + k).permutation(n_calls)
        try:
            barrier.wait()
            for i in order:
                fn, a, kw = calls[i]
                if _bits(fn(*a, **kw)) != serial[i]:
                    mismatches.append((k, int(i)))
        except Exception as exc:  # noqa: BLE001 -- reported below
            errors.append(f"thread {k}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"\nload: {n_threads} threads x {n_calls} calls: {len(mismatches)} mismatches, {len(errors)} errors")
    assert not errors, errors[:5]
    assert not mismatches, f"{len(mismatches)} results differ from the serial ones, e.g. {mismatches[:5]}"


def test_threads_with_out_buffers():
    """Threads writing gradients into their own out= buffers at once never see
    each other's numbers."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((512, 100)).astype(np.float32)       # 51200 elements: OpenMP inside
    targets = [rng.integers(0, 100, size=512) for _ in range(8)]
    want = [fastxent.cross_entropy(x, t, return_grad=True)[1] for t in targets]
    outs = [np.empty_like(x) for _ in targets]
    bad = []

    def worker(k):
        for _ in range(40):
            fastxent.cross_entropy(x, targets[k], return_grad=True, out=outs[k], n_threads=2)
            if outs[k].tobytes() != want[k].tobytes():
                bad.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(len(targets))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


# ---- memory -------------------------------------------------------------------------------

def _error_call(i):
    """A call that raises (every few calls): error paths must not leak either."""
    try:
        fastxent.cross_entropy(np.zeros((3, 4)), np.array([0, 9, 1]))    # target out of range
    except ValueError:
        pass


def _run(calls, n):
    m = len(calls)
    for i in range(n):
        fn, a, kw = calls[i % m]
        fn(*a, **kw)
        if i % 16 == 0:
            _error_call(i)


def test_small_calls_memory_flat(request):
    """Many small calls of every kind: RSS after them is where it was after a
    warm-up, and tracemalloc sees no growth."""
    full = _full(request)
    n = 1_000_000 if full else 20_000
    calls = make_calls(97, seed=11, medium_every=0)
    _run(calls, 5_000)                                   # warm-up: caches, arenas, pools
    gc.collect()
    rss0, objs0 = _rss(), len(gc.get_objects())
    _run(calls, n)
    gc.collect()
    rss1, objs1 = _rss(), len(gc.get_objects())

    n_tm = 100_000 if full else 10_000
    tracemalloc.start()
    _run(calls, 2_000)
    gc.collect()
    snap0 = tracemalloc.take_snapshot()
    traced0 = tracemalloc.get_traced_memory()[0]
    _run(calls, n_tm)
    gc.collect()
    traced1 = tracemalloc.get_traced_memory()[0]
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    top = snap1.compare_to(snap0, "lineno")[:3]

    print(f"\nload: {n} small calls: RSS {rss0 / 2**20:.1f} -> {rss1 / 2**20:.1f} MiB "
          f"({(rss1 - rss0) / n:+.3f} B/call); gc objects {objs0} -> {objs1}; "
          f"tracemalloc over {n_tm} calls {traced0 / 1024:.1f} -> {traced1 / 1024:.1f} KiB")
    # A leak of one object per call would be n objects; the margin leaves room for
    # what other tests' background threads (a Dask cluster's) create meanwhile.
    assert abs(objs1 - objs0) < min(1000, n // 20)
    assert traced1 - traced0 < 64 * 1024, "\n".join(str(s) for s in top)
    if rss0 is not None and not UNDER_SANITIZER:
        # one leaked malloc per call (>= 32 B with its header) would be caught
        assert rss1 - rss0 < max(512 * 1024, 4 * n), f"RSS grew by {(rss1 - rss0) / 2**20:.1f} MiB"


def test_large_calls_memory_flat(request):
    """Large calls (a 16 MB float32 input and its gradient, several threads):
    RSS stays within one call's worth of its level after a warm-up."""
    full = _full(request)
    n = 1000 if full else 60
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4096, 1000)).astype(np.float32)
    y = rng.integers(0, 1000, size=4096)
    w = rng.random(1000).astype(np.float32)
    one_call = 2 * x.nbytes
    kinds = [
        lambda: fastxent.cross_entropy(x, y, w, return_grad=True, label_smoothing=0.1),
        lambda: fastxent.cross_entropy(x, y, reduction="none", return_grad=True),
        lambda: fastxent.log_softmax(x),
        lambda: fastxent.softmax(x, axis=0),
        lambda: fastxent.nll_loss(x, y, return_grad=True),
        lambda: fastxent.logsumexp(x, axis=1),
    ]
    for k in kinds * 2:
        k()
    gc.collect()
    rss0 = _rss()
    peak = rss0
    for i in range(n):
        kinds[i % len(kinds)]()
        if i % 10 == 0:
            peak = max(peak, _rss() or 0)
    gc.collect()
    rss1 = _rss()
    print(f"\nload: {n} large calls ({x.nbytes / 2**20:.0f} MiB input): RSS {rss0 / 2**20:.1f} -> "
          f"{rss1 / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
    if rss0 is not None and not UNDER_SANITIZER:
        assert rss1 - rss0 < one_call, f"RSS grew by {(rss1 - rss0) / 2**20:.1f} MiB"


def test_no_reference_leaks():
    """The calls keep no reference to their arguments or results, and leak no
    reference to shared objects (dtypes, types), on success and on error."""
    rng = np.random.default_rng(9)
    x = rng.standard_normal((6, 5))
    x32 = x.astype(np.float32)
    y = rng.integers(0, 5, size=6)
    t = rng.random((6, 5))
    w = rng.random(5)
    go = rng.random(6)
    out = np.empty_like(x)
    bad_y = np.array([0, 1, 2, 3, 4, 5])
    shared = [np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.int64), np.float64, np.float32,
              np.ndarray, fastxent.cross_entropy]
    args = [x, x32, y, t, w, go, out, bad_y]

    def calls():
        fastxent.cross_entropy(x, y, w, return_grad=True, out=out)
        fastxent.cross_entropy(x32, y, reduction="none", return_grad=True, grad_output=go)
        fastxent.cross_entropy(x, t, w, label_smoothing=0.2, return_grad=True)
        fastxent.nll_loss(x, y, w, reduction="sum", return_grad=True)
        fastxent.logsumexp(x, axis=0, keepdims=True)
        fastxent.softmax(x32, out=None)
        fastxent.log_softmax(x, out=out)
        fastxent.CrossEntropyLoss(w, label_smoothing=0.1)(x, y, return_grad=True)
        for bad in (lambda: fastxent.cross_entropy(x, bad_y),
                    lambda: fastxent.cross_entropy(x, y, out=out),
                    lambda: fastxent.softmax(x, out=x),
                    lambda: fastxent.nll_loss(x, t)):
            try:
                bad()
            except (TypeError, ValueError):
                pass

    for _ in range(50):
        calls()
    gc.collect()
    before = [sys.getrefcount(a) for a in args] + [sys.getrefcount(s) for s in shared]
    for _ in range(2000):
        calls()
    gc.collect()
    after = [sys.getrefcount(a) for a in args] + [sys.getrefcount(s) for s in shared]
    assert after == before, list(zip(before, after))

    # results are owned by the caller alone; inputs are released with the call
    loss, grad = fastxent.cross_entropy(x, y, return_grad=True)
    assert sys.getrefcount(grad) == 2
    tmp = rng.standard_normal((4, 3))
    ref = weakref.ref(tmp)
    fastxent.cross_entropy(tmp, np.array([0, 1, 2, 0]), return_grad=True)
    fastxent.softmax(tmp)
    del tmp
    gc.collect()
    assert ref() is None


# ---- fork ---------------------------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_hang():
    """A process forked after fastxent ran on several threads (a DataLoader
    worker, a pre-forking server) computes the same answers and does not hang:
    GNU OpenMP would wait forever for the threads a fork does not copy."""
    import multiprocessing

    rng = np.random.default_rng(4)
    x = rng.standard_normal((512, 200)).astype(np.float32)        # 102400 elements: parallel
    y = rng.integers(0, 200, size=512)
    want = _bits(fastxent.cross_entropy(x, y, return_grad=True, n_threads=2))
    want_sm = _bits(fastxent.softmax(x, n_threads=2))

    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()

    def child():
        got = _bits(fastxent.cross_entropy(x, y, return_grad=True, n_threads=2))
        got_sm = _bits(fastxent.softmax(x, n_threads=None))
        child_end.send(got == want and got_sm == want_sm)

    p = ctx.Process(target=child)
    p.start()
    p.join(60)
    hung = p.is_alive()
    if hung:
        p.kill()
        p.join()
    assert not hung, "the forked child hung in its first parallel region"
    assert p.exitcode == 0 and parent_end.poll(1) and parent_end.recv() is True
