"""fastxent.dask against the in-memory functions, on several chunkings (the
class axis split included), and on real engines: the synchronous and threaded
schedulers and dask.distributed LocalClusters of processes and of threads.

What is exact and what is not (the module's notes): without a split class
axis, "none" losses and gradients are bitwise the in-memory ones (a weighted
"mean" gradient to an ulp: its denominator is summed by blocks); reduced
losses within a few ulp; with a split class axis, values within a few ulp of
the rows' log-sum-exp.  Any chunking gives the same bits on every engine.
"""
from __future__ import annotations

import logging

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
    and, for split rows, to ``scale`` (the rows' log-sum-exp magnitude)."""
    assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
    eps = ulps * ULP[np.dtype(dtype)]
    np.testing.assert_allclose(np.asarray(got, np.float64), np.asarray(want, np.float64),
                               rtol=eps, atol=eps * scale, equal_nan=True)


def _spread(x, w=None):
    """What a row's rounding is relative to when its classes span several
    blocks (and in the in-memory kernel): the spread of its finite logits plus
    log C, times the largest weight.  Independent of the logits' offset."""
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
# sample_weight: passed to every block once the in-memory functions take it
# ----------------------------------------------------------------------------

SAMPLE_WEIGHT_NEEDED = pytest.mark.xfail(
    strict=True, raises=NotImplementedError, reason="the in-memory functions take sample_weight (issue 12)")


@SAMPLE_WEIGHT_NEEDED
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("name, chunks", [("cross_entropy", (7, 9)), ("cross_entropy", (7, (4, 5))),
                                          ("nll_loss", (7, 9)), ("nll_loss", (7, (4, 5)))])
def test_sample_weight_multiclass(rng, name, chunks, reduction):
    x, t, w = make_case(rng, (20, 9), None, "index", True)
    sw = rng.uniform(0, 3, 20)
    kw = dict(reduction=reduction, sample_weight=sw)
    grad = name == "nll_loss" or chunks[1] == 9
    got = compute(*getattr(fxd, name)(_chunked(x, chunks), _chunked(t, 7), w, return_grad=grad,
                                      **dict(kw, sample_weight=da.from_array(sw, chunks=5))))
    want = getattr(fastxent, name)(x, t, w, return_grad=grad, **kw)
    for g, want_part in zip(got, want if grad else (want,)):
        assert_ulps(g, want_part, F64, scale=_spread(x, w))


@SAMPLE_WEIGHT_NEEDED
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
