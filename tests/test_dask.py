"""fastxent.dask against the in-memory functions, on several chunkings (the
class axis split included), and on real engines: the synchronous and threaded
schedulers and dask.distributed LocalClusters of processes and of threads.

What is exact and what is not (the module's notes): without a split class
axis, "none" losses and gradients are bitwise the in-memory ones (a weighted
"mean" gradient to an ulp: its denominator is summed by blocks); reduced
losses within a few ulp; with a split class axis, values within a few ulp of
the rows' spread (their logits' range plus a log of the class count), whatever
the logits' offset.  Any chunking gives the same bits on every engine.
"""
from __future__ import annotations

import logging
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
import dask  # noqa: E402

import fastxent  # noqa: E402
import fastxent.dask as fxd  # noqa: E402
from fastxent import _dask_blocks  # noqa: E402
from helpers import index_target, make_case, prob_target, upstream  # noqa: E402

F64, F32, F16 = np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.float16)
ULP = {F64: 2.0 ** -52, F32: 2.0 ** -23, F16: 2.0 ** -10}

# (shape, axis, chunks): sample axes cut evenly and unevenly; "split" layouts
# also cut the class axis (vocabulary-parallel).
LAYOUTS = [
    pytest.param((40, 9), None, (40, 9), id="NC-one-block"),
    pytest.param((40, 9), None, (12, 9), id="NC-rows"),
    pytest.param((40, 9), None, ((5, 30, 5), 9), id="NC-uneven"),
    pytest.param((40, 9), None, (12, (4, 5)), id="NC-split"),
    pytest.param((40, 9), None, (40, (2, 3, 4)), id="NC-split3"),
    pytest.param((3, 8, 11), -1, (2, 3, 11), id="BSV-rows"),
    pytest.param((3, 8, 11), -1, (2, 3, (6, 5)), id="BSV-split"),
    pytest.param((6, 5, 7), None, (4, 5, 3), id="NCd-tiles"),
    pytest.param((6, 5, 7), None, (4, (2, 3), 3), id="NCd-split"),
    pytest.param((9,), None, (9,), id="C"),
    pytest.param((9,), None, ((4, 5),), id="C-split"),
]


def _class_axis(shape, axis):
    return (0 if len(shape) == 1 else 1) if axis is None else axis % len(shape)


def _split(x, axis):
    return x.numblocks[_class_axis(x.shape, axis)] > 1


def _chunked(a, chunks):
    return da.from_array(a, chunks=chunks)


def _sample_chunks(chunks, ax):
    return tuple(c for d, c in enumerate(chunks) if d != ax)


def compute(*objs, scheduler="sync"):
    return dask.compute(*objs, scheduler=scheduler)


def assert_same(got, want):
    """Bitwise the in-memory result: values, dtype and type (scalar or array)."""
    assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
    np.testing.assert_array_equal(got, want)


def assert_ulps(got, want, dtype, ulps=8, scale=0.0):
    """Within ``ulps`` units of ``dtype`` of ``want``, relative to ``|want|``
    and, for split rows, to ``scale`` (see _spread)."""
    assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
    eps = ulps * ULP[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=eps, atol=eps * scale, equal_nan=True)


def _spread(x, w=None):
    """What a row's rounding is relative to when its classes span several
    blocks (and in the in-memory kernel): the range of the finite logits plus
    the log of their number, times the largest weight.  Independent of the
    logits' offset."""
    finite = x[np.isfinite(x)]
    return (np.ptp(finite) + np.log(x.size)) * (1.0 if w is None else np.abs(w).max())


# ----------------------------------------------------------------------------
# cross_entropy and nll_loss against the in-memory functions
# ----------------------------------------------------------------------------

OPTIONS = [pytest.param(False, 0.0, id="plain"), pytest.param(True, 0.2, id="weighted-smoothed")]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted, eps", OPTIONS)
@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("shape, axis, chunks", LAYOUTS)
def test_cross_entropy_matches_in_memory(rng, shape, axis, chunks, target_kind, weighted, eps,
                                         reduction):
    """The loss on every layout; loss and gradient where the class axis is whole."""
    x, t, w = make_case(rng, shape, axis, target_kind, weighted)
    ax = _class_axis(shape, axis)
    X = _chunked(x, chunks)
    T = _chunked(t, _sample_chunks(chunks, ax) if target_kind == "index" else chunks)
    kw = dict(reduction=reduction, label_smoothing=eps, axis=axis)
    loss, want = compute(fxd.cross_entropy(X, T, w, **kw))[0], fastxent.cross_entropy(x, t, w, **kw)
    if _split(X, axis):
        assert_ulps(loss, want, F64, ulps=4, scale=_spread(x, w))
        return
    assert_same(loss, want) if reduction == "none" else assert_ulps(loss, want, F64, ulps=4)
    go = upstream(rng, reduction, shape[:ax] + shape[ax + 1:])
    lazy = fxd.cross_entropy(X, T, w, return_grad=True, grad_output=go, **kw)
    assert lazy[1].chunks == X.chunks
    (loss, grad), (want, want_grad) = compute(*lazy), \
        fastxent.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    assert_same(loss, want) if reduction == "none" else assert_ulps(loss, want, F64, ulps=4)
    if reduction == "mean" and weighted and target_kind == "index":
        # the denominator is summed by blocks: its last bit may differ, and
        # entries that cancel (p * mass - w * q) carry that to the row's scale
        assert_ulps(grad, want_grad, F64, ulps=4, scale=np.abs(want_grad).max())
    else:
        assert_same(grad, want_grad)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape, axis, chunks", LAYOUTS)
def test_nll_loss_matches_in_memory(rng, shape, axis, chunks, weighted, reduction):
    """nll_loss is exact with a split class axis too: each sample's loss and
    gradient come from the one block that holds its target."""
    x, t, w = make_case(rng, shape, axis, "index", weighted)
    ax = _class_axis(shape, axis)
    go = upstream(rng, reduction, t.shape)
    X, T = _chunked(x, chunks), _chunked(t, _sample_chunks(chunks, ax))
    kw = dict(reduction=reduction, axis=axis)
    magnitude = fastxent.nll_loss(-np.abs(x), t, w, **kw)    # terms of both signs: rounding
    check = assert_same if reduction == "none" else \
        (lambda a, b: assert_ulps(a, b, F64, ulps=4, scale=magnitude))
    check(compute(fxd.nll_loss(X, T, w, **kw))[0], fastxent.nll_loss(x, t, w, **kw))
    lazy = fxd.nll_loss(X, T, w, return_grad=True, grad_output=go, **kw)
    assert lazy[1].chunks == X.chunks
    (loss, grad), (want, want_grad) = compute(*lazy), \
        fastxent.nll_loss(x, t, w, return_grad=True, grad_output=go, **kw)
    check(loss, want)
    if reduction == "mean" and weighted:
        assert_ulps(grad, want_grad, F64, ulps=4)      # the denominator's last bit
    else:
        assert_same(grad, want_grad)


@pytest.mark.parametrize("chunks", [(8, 9), (8, (4, 5)), (8, (2, 3, 4))], ids=["rows", "split", "split3"])
def test_ignore_index_inside_the_classes_and_unnormalized_targets(rng, chunks):
    """ignore_index=2 is also a class index (PyTorch ignores those targets); class
    probabilities need not sum to 1."""
    x, t, w = make_case(rng, (30, 9), None, "index", True, ignore=False)
    X, T = _chunked(x, chunks), _chunked(t, chunks[0])
    for fn, mem, kw in [(fxd.cross_entropy, fastxent.cross_entropy, {"label_smoothing": 0.1}),
                        (fxd.nll_loss, fastxent.nll_loss, {})]:
        for reduction in ("mean", "none"):
            got = compute(fn(X, T, w, ignore_index=2, reduction=reduction, **kw))[0]
            want = mem(x, t, w, ignore_index=2, reduction=reduction, **kw)
            assert_ulps(got, want, F64, ulps=4, scale=_spread(x, w))
    _, p, _ = make_case(rng, (30, 9), None, "unnormalized", False)
    got = compute(fxd.cross_entropy(X, _chunked(p, chunks), w, reduction="none"))[0]
    assert_ulps(got, fastxent.cross_entropy(x, p, w, reduction="none"), F64, ulps=4, scale=_spread(x, w))


@pytest.mark.parametrize("dtype", [F32, F16])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("chunks", [(16, 33), (16, (11, 22))], ids=["rows", "split"])
def test_cross_entropy_float32_float16(rng, dtype, reduction, chunks):
    """float16 blocks are computed in float32 and rounded once, as in memory."""
    x = (3.0 * rng.standard_normal((50, 33))).astype(dtype)
    t = index_target(rng, (50,), 33, ignore_frac=0.1)
    w = rng.uniform(0.5, 2.0, 33)
    X, T = _chunked(x, chunks), _chunked(t, chunks[0])
    split = X.numblocks[1] > 1
    kw = dict(reduction=reduction, label_smoothing=0.1, return_grad=not split)
    want, got = fastxent.cross_entropy(x, t, w, **kw), fxd.cross_entropy(X, T, w, **kw)
    if split:
        assert_ulps(compute(got)[0], want, dtype, ulps=4, scale=_spread(x.astype(float), w))
        return
    got_loss, got_grad = compute(*got)
    assert_same(got_grad, want[1]) if reduction != "mean" else assert_ulps(got_grad, want[1], dtype, 1)
    assert_same(got_loss, want[0]) if reduction == "none" else assert_ulps(got_loss, want[0], dtype, 2)


# ----------------------------------------------------------------------------
# The binary losses
# ----------------------------------------------------------------------------

BINARY_WEIGHTS = [
    pytest.param(None, id="none"),
    pytest.param((), id="scalar"),
    pytest.param((7,), id="per-column"),
    pytest.param((30, 1), id="per-row"),
    pytest.param((30, 7), id="full-dask"),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("wshape", BINARY_WEIGHTS)
@pytest.mark.parametrize("logits", [False, True], ids=["probs", "logits"])
@pytest.mark.parametrize("chunks", [(30, 7), (8, 7), (8, (3, 4))], ids=["one", "rows", "grid"])
def test_binary_matches_in_memory(rng, chunks, logits, wshape, reduction):
    x = rng.standard_normal((30, 7)) * 3 if logits else rng.uniform(0, 1, (30, 7))
    t = rng.uniform(0, 1, (30, 7))
    w = None if wshape is None else rng.uniform(0.2, 2.0, wshape)
    go = upstream(rng, reduction, x.shape)
    kw = dict(reduction=reduction)
    if logits:
        kw["pos_weight"] = rng.uniform(0.5, 3.0, 7)
    mem = fastxent.binary_cross_entropy_with_logits if logits else fastxent.binary_cross_entropy
    lazy = fxd.binary_cross_entropy_with_logits if logits else fxd.binary_cross_entropy
    W = w if w is None or w.ndim < 2 else da.from_array(w, chunks=(13, 7))   # dask operands too
    X, T = _chunked(x, chunks), da.from_array(t, chunks=10)
    check = assert_same if reduction == "none" else (lambda a, b: assert_ulps(a, b, F64, ulps=4))
    check(compute(lazy(X, T, W, **kw))[0], mem(x, t, w, **kw))
    got = lazy(X, T, W, return_grad=True, grad_output=go, **kw)
    assert got[1].chunks == X.chunks
    (loss, grad), (want, want_grad) = compute(*got), mem(x, t, w, return_grad=True, grad_output=go, **kw)
    check(loss, want)
    assert_same(grad, want_grad)     # "mean" divides by the element count: exact


# ----------------------------------------------------------------------------
# logsumexp, softmax, log_softmax
# ----------------------------------------------------------------------------

LSE_LAYOUTS = [
    pytest.param((20, 9), -1, (7, 9), id="rows"),
    pytest.param((20, 9), -1, (7, (4, 5)), id="split"),
    pytest.param((20, 9), 0, (7, 9), id="axis0-split"),
    pytest.param((4, 5, 6), 1, (2, 5, 3), id="middle"),
    pytest.param((4, 5, 6), 1, (2, (1, 4), 3), id="middle-split"),
    pytest.param((20, 9), None, (20, 9), id="all-one-block"),
    pytest.param((20, 9), None, (7, 4), id="all-split"),
]


@pytest.mark.parametrize("values", ["normal", "masked", "offset"])
@pytest.mark.parametrize("mode", ["logsumexp", "logsumexp-keepdims", "softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis, chunks", LSE_LAYOUTS)
def test_lse_family_matches_in_memory(rng, shape, axis, chunks, mode, values):
    """Rows in one block: fastxent's own call, bitwise.  Rows across blocks:
    within a few ulp of the rows' spread, whatever their offset."""
    x = 3.0 * rng.standard_normal(shape)
    if values == "masked":
        x[rng.random(shape) < 0.3] = -np.inf
        x.reshape(-1)[::7] = 0.0             # no row all masked...
        x.reshape(-1)[-1] = -np.inf
        if axis is not None:                 # ...but one
            np.moveaxis(x, axis, -1)[(0,) * (len(shape) - 1)] = -np.inf
    elif values == "offset":
        x += 1000.0
    name, kw = (mode, {}) if mode != "logsumexp-keepdims" else ("logsumexp", {"keepdims": True})
    want = getattr(fastxent, name)(x, axis=axis, **kw)
    X = _chunked(x, chunks)
    got = compute(getattr(fxd, name)(X, axis=axis, **kw))[0]
    axes = range(len(shape)) if axis is None else [axis % len(shape)]
    if all(X.numblocks[d] == 1 for d in axes):
        assert_same(got, want)
    elif name == "softmax":
        assert_ulps(got, want, F64, ulps=4 * _spread(x))
    else:
        assert_ulps(got, want, F64, ulps=4, scale=_spread(x))


def test_logsumexp_keeps_relative_precision_across_blocks():
    """A result near 0 from blocks combined by fastxent.logsumexp: 4.25e-18, not 0."""
    x = np.array([0.0, -40.0, -40.0, -40.0])
    assert_ulps(compute(fxd.logsumexp(da.from_array(x, chunks=1)))[0], fastxent.logsumexp(x), F64, ulps=2)


# ----------------------------------------------------------------------------
# The class axis split: the cross-entropy gradient (needs the slice kernel)
# ----------------------------------------------------------------------------

SLICE_NEEDED = pytest.mark.xfail(
    strict=True, raises=NotImplementedError,
    reason=f"needs fastxent.{_dask_blocks.SLICE_KERNEL_NAME} (fastxent.dask.SLICE_KERNEL)")


def _split_grad_case(rng, target_kind, weighted, eps, reduction, chunks=(8, (5, 6, 4))):
    x, t, w = make_case(rng, (20, 15), None, target_kind, weighted)
    go = upstream(rng, reduction, (20,))
    kw = dict(reduction=reduction, label_smoothing=eps, return_grad=True, grad_output=go)
    X = _chunked(x, chunks)
    T = _chunked(t, chunks[0] if target_kind == "index" else chunks)
    return x, t, w, X, T, kw


def _check_split_grad(x, t, w, X, T, kw):
    want_loss, want_grad = fastxent.cross_entropy(x, t, w, **kw)
    got_loss, got_grad = fxd.cross_entropy(X, T, w, **kw)
    assert got_grad.chunks == X.chunks
    got_loss, got_grad = compute(got_loss, got_grad)
    assert_ulps(got_loss, want_loss, F64, scale=_spread(x, w))
    assert_ulps(got_grad, want_grad, F64, scale=np.abs(want_grad).max())


@SLICE_NEEDED
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_split_cross_entropy_grad_matches_in_memory(rng, target_kind, reduction):
    _check_split_grad(*_split_grad_case(rng, target_kind, True, 0.1, reduction))


def _mock_slice_kernel(input, target, row_max, log_norm, weight=None, *, class_start, num_classes,
                       target_mass=None, ignore_index=-100, label_smoothing=0.0, axis=None,
                       reduction="none", return_grad=False, grad_output=None, out=None,
                       n_threads=None):
    """A NumPy stand-in for the entry point of SLICE_KERNEL, following its text."""
    ax = _class_axis(input.shape, axis)
    x = np.moveaxis(input.astype(np.float64), ax, -1)
    C, eps, cs = num_classes, label_smoothing, np.arange(class_start, class_start + x.shape[-1])
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    lp = (x - row_max[..., None]) - log_norm[..., None]
    if target.dtype.kind in "iu":
        keep = target != ignore_index
        y = np.where(keep, target, 0)
        q = (1 - eps) * (y[..., None] == cs) + eps / C
        mass = np.where(keep, (1 - eps) * w[y] + eps / C * w.sum(), 0.0)
    else:
        keep = np.ones(row_max.shape, bool)
        q = (1 - eps) * np.moveaxis(target, ax, -1) + eps / C
        mass = target_mass
    loss = np.where(keep, -np.sum(w[cs] * q * lp, axis=-1), 0.0)
    grad = np.asarray(grad_output)[..., None] * (mass[..., None] * np.exp(lp) - w[cs] * q)
    grad = np.where(keep[..., None], grad, 0.0)
    return loss, np.moveaxis(grad, -1, ax).astype(input.dtype)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted, eps", OPTIONS)
@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_split_cross_entropy_grad_python_side(rng, monkeypatch, target_kind, weighted, eps,
                                               reduction):
    """The graph of the split-axis gradient, run now with a NumPy stand-in for
    the kernel entry point: what the xfail tests above will check for real."""
    monkeypatch.setattr(fastxent, _dask_blocks.SLICE_KERNEL_NAME, _mock_slice_kernel, raising=False)
    _check_split_grad(*_split_grad_case(rng, target_kind, weighted, eps, reduction))


# ----------------------------------------------------------------------------
# sample_weight: passed to every block, the "mean" denominator computed first
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name, chunks", [("cross_entropy", (7, 9)), ("cross_entropy", (7, (4, 5))),
                                          ("nll_loss", (7, 9)), ("nll_loss", (7, (4, 5)))])
def test_sample_weight_multiclass(rng, name, chunks, reduction):
    x, t, w = make_case(rng, (20, 9), None, "index", True)
    sw = rng.uniform(0, 3, 20)
    kw = dict(reduction=reduction, sample_weight=sw)
    grad = name == "nll_loss" or chunks[1] == 9
    res = getattr(fxd, name)(_chunked(x, chunks), _chunked(t, 7), w, return_grad=grad,
                             **dict(kw, sample_weight=da.from_array(sw, chunks=5)))
    got = compute(*(res if grad else (res,)))
    want = getattr(fastxent, name)(x, t, w, return_grad=grad, **kw)
    for g, want_part in zip(got, want if grad else (want,)):
        assert_ulps(g, want_part, F64, scale=_spread(x, w))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_sample_weight_binary(rng, reduction):
    x, t = rng.standard_normal((20, 6)), rng.uniform(0, 1, (20, 6))
    sw = rng.uniform(0, 3, (20, 1))
    got = compute(*fxd.binary_cross_entropy_with_logits(_chunked(x, (6, 4)), t, reduction=reduction,
                                                        sample_weight=sw, return_grad=True))
    want = fastxent.binary_cross_entropy_with_logits(x, t, reduction=reduction, sample_weight=sw,
                                                     return_grad=True)
    for g, want_part in zip(got, want):
        assert_ulps(g, want_part, F64)


# ----------------------------------------------------------------------------
# Real engines: the same bits on every scheduler and any number of workers
# ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clusters():
    """One dask.distributed LocalCluster of worker processes and one of worker
    threads, two single-threaded workers each, shared by this module's tests."""
    distributed = pytest.importorskip("distributed")
    made = []
    try:
        for processes in (True, False):
            cluster = distributed.LocalCluster(
                n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=":0",
                scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)
            made.append((cluster, distributed.Client(cluster, set_as_default=False)))
        yield {"processes": made[0][1], "threads": made[1][1]}
    finally:
        for cluster, client in made:
            client.close()
            cluster.close()


def _engine_problems(rng):
    """Lazy results of every kind of graph: the first on 10 blocks (a tree of
    partial sums two levels deep), the others on 3 to 8."""
    x, t, w = make_case(rng, (60, 13), None, "index", True)
    p = prob_target(rng, (60, 13), 1)
    X, T = da.from_array(x, chunks=(20, 13)), da.from_array(t, chunks=20)
    XS, PS = da.from_array(x, chunks=(20, (6, 7))), da.from_array(p, chunks=(20, (6, 7)))
    return {
        "xent-mean-grad": fxd.cross_entropy(da.from_array(x, chunks=(6, 13)), T, w,
                                            label_smoothing=0.1, return_grad=True),
        "xent-sum-prob": fxd.cross_entropy(X, da.from_array(p, chunks=(20, 13)), w, reduction="sum"),
        "xent-split-mean": fxd.cross_entropy(XS, T, w, label_smoothing=0.1),
        "xent-split-prob-none": fxd.cross_entropy(XS, PS, reduction="none"),
        "nll-split-sum-grad": fxd.nll_loss(XS, T, w, reduction="sum", return_grad=True),
        "bce-logits-mean-grad": fxd.binary_cross_entropy_with_logits(
            da.from_array(x, chunks=(30, 7)), rng.uniform(0, 1, x.shape), w, return_grad=True),
        "lse-all": fxd.logsumexp(da.from_array(x, chunks=(30, 7)), axis=None),
        "log_softmax-split": fxd.log_softmax(XS),
    }


def _flatten(results):
    return [r for v in results.values() for r in (v if isinstance(v, tuple) else (v,))]


def test_same_bits_on_every_engine(rng, clusters):
    """Synchronous, threaded, and LocalClusters of processes and of threads at 1
    and 2 workers: bitwise the same results."""
    lazy = _flatten(_engine_problems(rng))
    want = compute(*lazy)
    runs = {"threads": dask.compute(*lazy, scheduler="threads", num_workers=3)}
    for kind, client in clusters.items():
        workers = sorted(client.scheduler_info()["workers"])
        assert len(workers) == 2
        runs[f"{kind}-1-worker"] = client.gather(client.compute(lazy, workers=workers[:1]))
        runs[f"{kind}-2-workers"] = client.gather(client.compute(lazy))
    for name, got in runs.items():
        for g, w in zip(got, want):
            assert_same(g, w), name


def test_partial_sums_are_added_by_the_documented_tree(rng):
    """The reduced loss is the blocks' in-memory sums added in float64, in block
    order, TREE_ARITY at a time, level by level: recomputed here by hand, bitwise."""
    x, t, w = make_case(rng, (200, 7), None, "index", True)
    rows = 9                                           # 23 blocks: three levels
    level = [float(fastxent.cross_entropy(x[i:i + rows], t[i:i + rows], w, reduction="sum"))
             for i in range(0, 200, rows)]
    while len(level) > 1:
        level = [sum(level[i + 1:i + fxd.TREE_ARITY], level[i]) for i in range(0, len(level), fxd.TREE_ARITY)]
    got = compute(fxd.cross_entropy(da.from_array(x, chunks=(rows, 7)), t, w, reduction="sum"))[0]
    assert got == level[0] and got.dtype == F64


def test_threads_of_each_task(monkeypatch, clusters):
    """fastxent is called with one OpenMP thread per task on Dask's thread pools
    (threaded scheduler, cluster workers of both kinds), with its default in the
    synchronous scheduler, and with n_threads where given."""
    seen = []
    real = fastxent.cross_entropy

    def recording(*args, **kwargs):
        seen.append(kwargs["n_threads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(fastxent, "cross_entropy", recording)
    X = da.zeros((40, 5), chunks=(10, 5))
    T = da.zeros(40, dtype=int, chunks=10)
    for scheduler, n_threads, want in [("sync", None, None), ("threads", None, 1), ("threads", 2, 2)]:
        seen.clear()
        loss = fxd.cross_entropy(X, T, n_threads=n_threads)
        seen.clear()                                  # the check of the options, on one sample
        compute(loss, scheduler=scheduler)
        assert seen == [want] * 4, (scheduler, n_threads)
    for kind, client in clusters.items():
        shares = client.gather([client.submit(_dask_blocks.task_threads, None, pure=False, workers=[w])
                                for w in client.scheduler_info()["workers"]])
        assert shares == [1, 1], kind
    # Process workers start with OMP_NUM_THREADS=1 (distributed's nanny), so
    # fastxent's own default there is one thread as well.
    assert set(clusters["processes"].run(fastxent.get_num_threads).values()) == {1}


# ----------------------------------------------------------------------------
# Lazy graphs, each block computed once
# ----------------------------------------------------------------------------

def _explode(block):
    raise RuntimeError("a block was computed")


def test_results_are_lazy():
    X = da.map_blocks(_explode, da.zeros((20, 4), chunks=(5, 4)), dtype=np.float64)
    T = da.zeros(20, dtype=np.int64, chunks=5)
    lazy = [fxd.cross_entropy(X, T, return_grad=True)[0], fxd.cross_entropy(X, T, reduction="none"),
            fxd.nll_loss(X, T), fxd.binary_cross_entropy_with_logits(X, X), fxd.logsumexp(X),
            fxd.softmax(X, axis=0), fxd.log_softmax(X, axis=None)]
    assert all(isinstance(r, da.Array) for r in lazy)
    with pytest.raises(RuntimeError, match="a block was computed"):
        compute(lazy[0])


@pytest.mark.parametrize("chunks", [(10, 6), (10, (2, 4))], ids=["rows", "split"])
def test_each_block_is_computed_once(rng, monkeypatch, chunks):
    """dask.compute(loss, grad): one fastxent call per block, not one per result."""
    calls = []
    for name in ("cross_entropy", "nll_loss", "logsumexp"):
        real = getattr(fastxent, name)
        monkeypatch.setattr(fastxent, name, lambda *a, _real=real, _name=name, **k:
                            calls.append(_name) or _real(*a, **k))
    x, t, w = make_case(rng, (40, 6), None, "index", True)
    X, T = da.from_array(x, chunks=chunks), da.from_array(t, chunks=10)
    blocks = X.npartitions
    lazy = [fxd.nll_loss(X, T, w, return_grad=True), fxd.cross_entropy(X, T, w)]
    if X.numblocks[1] == 1:
        lazy.append(fxd.cross_entropy(X, T, w, reduction="none", return_grad=True))
    calls.clear()
    compute(*_flatten(dict(enumerate(lazy))))
    assert calls.count("nll_loss") == blocks
    if X.numblocks[1] == 1:
        assert calls.count("cross_entropy") == 2 * blocks
    else:     # a logsumexp per block, and one per row of blocks to merge them
        assert calls.count("logsumexp") == blocks + X.numblocks[0]


# ----------------------------------------------------------------------------
# Arguments and errors
# ----------------------------------------------------------------------------

def test_numpy_arguments_and_lazy_grad_output(rng):
    """NumPy input and targets (one block), Dask grad_output (0-d for a reduced
    loss, loss-shaped for "none")."""
    x, t, w = make_case(rng, (30, 5), None, "index", True)
    assert_ulps(compute(fxd.cross_entropy(x, t, w))[0], fastxent.cross_entropy(x, t, w), F64, ulps=4)
    go = rng.standard_normal(30)
    got = compute(*fxd.cross_entropy(da.from_array(x, chunks=(7, 5)), t, w, reduction="none",
                                     return_grad=True, grad_output=da.from_array(go, chunks=11)))
    want = fastxent.cross_entropy(x, t, w, reduction="none", return_grad=True, grad_output=go)
    assert_same(got[0], want[0])
    assert_same(got[1], want[1])
    got = compute(*fxd.cross_entropy(da.from_array(x, chunks=(7, 5)), t, w, return_grad=True,
                                     grad_output=da.from_array(np.float64(2.5))))
    want = fastxent.cross_entropy(x, t, w, return_grad=True, grad_output=2.5)
    assert_ulps(got[1], want[1], F64, ulps=4, scale=np.abs(want[1]).max())


def test_inputs_are_not_modified(rng):
    x, t, w = make_case(rng, (30, 5), None, "index", True)
    copies = [a.copy() for a in (x, t, w)]
    compute(*fxd.cross_entropy(da.from_array(x, chunks=(7, 5)), t, w, return_grad=True))
    compute(fxd.softmax(da.from_array(x, chunks=(7, 2))))
    for a, c in zip((x, t, w), copies):
        np.testing.assert_array_equal(a, c)


BAD_OPTIONS = [
    pytest.param("cross_entropy", {"reduction": "avg"}, id="reduction"),
    pytest.param("cross_entropy", {"label_smoothing": 1.5}, id="label_smoothing"),
    pytest.param("cross_entropy", {"ignore_index": 2 ** 70}, id="ignore_index"),
    pytest.param("cross_entropy", {"axis": 2}, id="axis-range"),
    pytest.param("nll_loss", {"axis": 1.0}, id="axis-type"),
    pytest.param("cross_entropy", {"input": np.zeros(())}, id="input-0d"),
    pytest.param("cross_entropy", {"weight": np.ones(3)}, id="weight-shape"),
    pytest.param("cross_entropy", {"n_threads": 0}, id="n_threads"),
    pytest.param("cross_entropy", {"grad_output": 1.0}, id="grad_output-without-grad"),
    pytest.param("cross_entropy", {"reduction": "none", "return_grad": True,
                                   "grad_output": np.ones(3)}, id="grad_output-shape"),
    pytest.param("cross_entropy", {"target": np.zeros(7, np.int64)}, id="target-shape"),
    pytest.param("cross_entropy", {"input": np.zeros((8, 5), np.int32)}, id="input-dtype"),
    pytest.param("nll_loss", {"target": np.zeros(8)}, id="nll-float-target"),
    pytest.param("binary_cross_entropy_with_logits", {"weight": np.ones(4)}, id="bce-weight"),
    pytest.param("binary_cross_entropy", {"reduction": "max"}, id="bce-reduction"),
    pytest.param("logsumexp", {"axis": 2}, id="lse-axis"),
    pytest.param("softmax", {"x": np.zeros((8, 5), np.complex128)}, id="softmax-dtype"),
]


@pytest.mark.parametrize("name, bad", BAD_OPTIONS)
def test_bad_arguments_raise_as_in_memory(name, bad):
    """Checked when the graph is built, with the in-memory function's error."""
    binary = name.startswith("binary")
    args = {"input": np.full((8, 5), 0.5),
            "target": np.full((8, 5), 0.5) if binary else np.zeros(8, np.int64)}
    if name in ("logsumexp", "softmax"):
        args = {"x": np.zeros((8, 5))}
    args.update(bad)
    lazy_args = {k: da.from_array(v, chunks=4) if k in ("input", "x", "target") else v for k, v in args.items()}
    with pytest.raises(Exception) as want:
        getattr(fastxent, name)(**args)
    with pytest.raises(want.type) as got:
        getattr(fxd, name)(**lazy_args)
    assert str(got.value) == str(want.value)


def test_bad_target_is_named_by_its_index_in_the_whole_target(rng):
    x = rng.standard_normal((30, 6))
    t = index_target(rng, (30,), 6)
    t[17] = 6
    with pytest.raises(ValueError, match=r"target value 6 at index 5 .* block that starts at \(12, 0\)"):
        compute(fxd.cross_entropy(da.from_array(x, chunks=(12, 6)), t))
    for fn in (fxd.cross_entropy, fxd.nll_loss):        # split class axis: the whole-array index
        with pytest.raises(ValueError, match=r"target value 6 at index 17 is not a class index in \[0, 6\)"):
            compute(fn(da.from_array(x, chunks=(12, 3)), t))


def test_probabilities_outside_0_1_are_named_by_block(rng):
    x = rng.uniform(0, 1, (20, 4))
    x[13, 2] = 1.5
    with pytest.raises(ValueError, match=r"outside \[0, 1\].* block that starts at \(10, 0\)"):
        compute(fxd.binary_cross_entropy(da.from_array(x, chunks=(10, 4)), x))


def test_what_is_not_available_says_so(rng):
    x, t, _ = make_case(rng, (20, 6), None, "index", False)
    X = da.from_array(x, chunks=(10, 3))
    with pytest.raises(NotImplementedError, match=r"rechunk input to one block along axis 1"):
        fxd.cross_entropy(X, t, return_grad=True)
    with pytest.raises(ValueError, match="out= is not available"):
        fxd.cross_entropy(X, t, return_grad=True, out=np.empty(x.shape))
    if "sample_weight" not in __import__("inspect").signature(fastxent.cross_entropy).parameters:
        with pytest.raises(NotImplementedError, match="sample_weight"):
            fxd.cross_entropy(X, t, sample_weight=np.ones(20))


def test_import_fastxent_does_not_import_dask():
    code = "import sys, fastxent; assert not any(m.split('.')[0] == 'dask' for m in sys.modules), 'dask'"
    subprocess.run([sys.executable, "-c", code], check=True, env=None)
