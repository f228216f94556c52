"""cross_entropy's z_loss and softcap (issue 14, items 1 and 5) against PyTorch
autograd, the float64 reference (tests/reference.py) and finite differences.

PyTorch has neither option; the oracle is the expression every LM recipe
writes: the logits soft-capped with ``softcap * torch.tanh(x / softcap)``, then
``F.cross_entropy(reduction="none")``, plus ``z_loss * torch.logsumexp(capped) **
2`` for each sample not ignored, then the reduction ("mean" divides by the same
denominator as the plain loss: the summed class weight of the kept targets, or
the number of sample positions for probability targets).

Every kernel path is covered: rows (class axis contiguous, more than 32
classes), rows long enough to be cut into chunks (and into several soft-capping
blocks), small-C rows done as transposed tiles, and strided class axes (tiles),
with class-index targets (a quarter ignored), probability targets, class
weights, label smoothing, grad_output, float32 and float64.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import (REDUCTIONS, RTOL, assert_close, assert_grad_close, make_case, sample_shape,
                     upstream)

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)

# (input shape, axis) for each kernel path
LAYOUTS = [
    pytest.param((40,), None, id="C-rows"),
    pytest.param((6, 50), None, id="rows"),
    pytest.param((3, 4, 45), -1, id="batch-seq-vocab-rows"),
    pytest.param((70, 5), None, id="small-C-tiles"),
    pytest.param((5,), None, id="C-small"),
    pytest.param((3, 6, 9), None, id="strided-tiles"),
    pytest.param((2, 7, 70), None, id="strided-two-tiles"),
    pytest.param((40, 6), 0, id="axis0-tiles"),
    pytest.param((2, 3, 4, 5), None, id="NCdd"),
]

# (z_loss, softcap)
OPTIONS = [
    pytest.param(1e-2, None, id="z_loss"),
    pytest.param(0.0, 2.5, id="softcap"),
    pytest.param(0.3, 4.0, id="both"),
]

# (weighted, label_smoothing)
EXTRAS = [pytest.param(False, 0.0, id="plain"), pytest.param(True, 0.2, id="weighted-smoothed")]


def torch_z_softcap(torch, x, t, w=None, *, axis=None, reduction="mean", label_smoothing=0.0,
                    z_loss=0.0, softcap=None, grad_output=None, ignore_index=-100):
    """The oracle: PyTorch autograd in float64 on the expression written out.
    Returns the loss and the gradient of ``sum(grad_output * loss)`` in ``x``'s
    layout, as NumPy arrays."""
    F = torch.nn.functional
    x = np.asarray(x, np.float64)
    ax = ref.class_axis(axis, x.ndim)
    cdim = 1 if x.ndim > 1 else 0
    move = (lambda a: np.moveaxis(a, ax, 1)) if x.ndim > 1 else (lambda a: a)  # noqa: E731
    xt = torch.tensor(np.ascontiguousarray(move(x)), requires_grad=True)
    logits = xt if softcap is None else softcap * torch.tanh(xt / softcap)
    t = np.asarray(t)
    C = x.shape[ax]
    wt = torch.ones(C, dtype=torch.float64) if w is None else torch.tensor(np.asarray(w, np.float64))
    if t.dtype.kind in "iu":
        tt = torch.tensor(t.astype(np.int64))
        keep = tt != ignore_index
        denom = torch.where(keep, wt[torch.where(keep, tt, 0)], 0.0).sum()
    else:
        tt = torch.tensor(np.ascontiguousarray(move(t.astype(np.float64))))
        keep = torch.ones(tuple(s for i, s in enumerate(x.shape) if i != ax), dtype=torch.bool)
        denom = torch.tensor(float(keep.numel()), dtype=torch.float64)
    loss_n = F.cross_entropy(logits, tt, weight=wt, ignore_index=ignore_index, reduction="none",
                             label_smoothing=label_smoothing)
    loss_n = loss_n + z_loss * torch.where(keep, torch.logsumexp(logits, dim=cdim) ** 2, 0.0)
    loss = {"none": loss_n, "sum": loss_n.sum(), "mean": loss_n.sum() / denom}[reduction]
    go = torch.ones_like(loss) if grad_output is None else torch.tensor(
        np.asarray(grad_output, np.float64)).reshape(loss.shape)
    (loss * go).sum().backward()
    grad = xt.grad.numpy()
    return loss.detach().numpy(), (np.moveaxis(grad, 1, ax) if x.ndim > 1 else grad)


def case(rng, shape, axis, target_kind, weighted, scale=3.0):
    x, t, w = make_case(rng, shape, axis, target_kind, weighted)
    return scale * x, t, w          # logits large enough for the cap to bend


# ----------------------------------------------------------------------------
# Against PyTorch autograd (float64) and the float64 reference
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted, eps", EXTRAS)
@pytest.mark.parametrize("z_loss, softcap", OPTIONS)
@pytest.mark.parametrize("target_kind", ["index", "prob", "unnormalized"])
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_matches_torch_autograd(torch, rng, shape, axis, target_kind, z_loss, softcap, weighted,
                                eps, reduction):
    """Every layout, target kind and option, a quarter of the class-index
    targets ignored, grad_output (an array for "none")."""
    x, t, w = case(rng, shape, axis, target_kind, weighted)
    go = upstream(rng, reduction, sample_shape(shape, axis))
    kw = dict(axis=axis, reduction=reduction, label_smoothing=eps, z_loss=z_loss, softcap=softcap)
    loss, grad = fx.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    want_loss, want_grad = torch_z_softcap(torch, x, t, w, grad_output=go, **kw)
    assert_close(loss, want_loss, rtol=1e-12, atol=1e-13)
    assert_grad_close(grad, want_grad, F64, rel=2)
    # the loss alone (no gradient pass) is the same number
    assert_close(fx.cross_entropy(x, t, w, **kw), loss, rtol=4e-16)
    # and the reference agrees
    want_ref = ref.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    assert_close(loss, want_ref[0], rtol=1e-12, atol=1e-13)
    assert_grad_close(grad, want_ref[1], F64, rel=2)


@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("z_loss, softcap", OPTIONS)
@pytest.mark.parametrize("weighted, eps", EXTRAS)
def test_long_rows_cut_into_chunks(torch, rng, weighted, eps, z_loss, softcap, target_kind):
    """Rows of 40000 classes: three chunks with their own max, each capped in
    blocks of FX_CAP_BLOCK (a count that divides neither)."""
    x, t, w = case(rng, (3, 40003), None, target_kind, weighted)
    kw = dict(label_smoothing=eps, z_loss=z_loss, softcap=softcap, reduction="none")
    loss, grad = fx.cross_entropy(x, t, w, return_grad=True, **kw)
    want_loss, want_grad = torch_z_softcap(torch, x, t, w, **kw)
    assert_close(loss, want_loss, rtol=1e-12, atol=1e-13)
    assert_grad_close(grad, want_grad, F64, rel=2)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("z_loss, softcap", OPTIONS)
@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("shape, axis", [((40, 300), None), ((70, 5), None), ((3, 30, 70), None),
                                         ((4, 5, 300), -1), ((2, 20000), None)],
                         ids=["rows", "small-C-tiles", "strided-tiles", "vocab-last", "long-rows"])
def test_float32_matches_float64_reference(rng, shape, axis, target_kind, z_loss, softcap,
                                           reduction):
    """float32 inputs within float32 accuracy of the float64 reference computed
    from the same float32 values (the cap, its derivative and the sums in
    float32 lanes)."""
    x, t, w = case(rng, shape, axis, target_kind, True)
    x = x.astype(np.float32)
    t = t.astype(np.float32) if target_kind == "prob" else t
    w = w.astype(np.float32)
    kw = dict(axis=axis, reduction=reduction, label_smoothing=0.1, z_loss=z_loss, softcap=softcap)
    loss, grad = fx.cross_entropy(x, t, w, return_grad=True, **kw)
    want_loss, want_grad = ref.cross_entropy(x, t, w, return_grad=True, **kw)
    assert np.asarray(loss).dtype == F32 and grad.dtype == F32
    assert_close(loss, want_loss, rtol=5 * RTOL[F32],
                 atol=5 * RTOL[F32] * float(np.max(np.abs(want_loss))))
    assert_grad_close(grad, want_grad, F32, rel=5)


def test_float16_is_computed_in_float32(rng):
    x, t, w = case(rng, (6, 40), None, "index", True)
    kw = dict(z_loss=1e-2, softcap=3.0, reduction="none")
    loss, grad = fx.cross_entropy(x.astype(np.float16), t, w, return_grad=True, **kw)
    loss32, grad32 = fx.cross_entropy(x.astype(np.float16).astype(np.float32), t,
                                      w.astype(np.float32), return_grad=True, **kw)
    assert loss.dtype == np.float16 and grad.dtype == np.float16
    assert np.array_equal(loss, loss32.astype(np.float16))
    assert np.array_equal(grad, grad32.astype(np.float16))


# ----------------------------------------------------------------------------
# Finite differences
# ----------------------------------------------------------------------------

FD_CASES = [
    pytest.param((3, 40), None, "index", id="rows-index"),
    pytest.param((3, 40), None, "prob", id="rows-prob"),
    pytest.param((4, 3), None, "index", id="small-C-index"),
    pytest.param((2, 3, 2), None, "index", id="tiles-index"),
    pytest.param((2, 3, 2), None, "prob", id="tiles-prob"),
    pytest.param((2, 2, 35), -1, "index", id="axis-1-index"),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, axis, target_kind", FD_CASES)
def test_grad_is_derivative_of_loss(rng, shape, axis, target_kind, reduction):
    """The fused gradient against central differences of fastxent's own loss,
    with both options, smoothing, weights and an ignored position."""
    x, t, w = make_case(rng, shape, axis, target_kind, True, ignore=False)
    x = 3.0 * x
    if target_kind == "index":
        t.reshape(-1)[0] = -100
    go = upstream(rng, reduction, sample_shape(shape, axis))
    kw = dict(reduction=reduction, label_smoothing=0.2, axis=axis, z_loss=0.05, softcap=2.0)

    def scalar_loss(z):
        loss = fx.cross_entropy(z, t, w, **kw)
        return np.sum(np.asarray(go) * loss) if reduction == "none" else go * loss

    _, grad = fx.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    assert_close(grad, ref.numerical_grad(scalar_loss, x), rtol=1e-6, atol=1e-8)


# ----------------------------------------------------------------------------
# What each option adds, ignored targets, extremes
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("shape, axis", [((5, 50), None), ((70, 5), None), ((3, 6, 9), None)],
                         ids=["rows", "small-C-tiles", "strided-tiles"])
def test_z_loss_adds_z_lse_squared_to_kept_samples(rng, shape, axis):
    """loss(z) - loss(0) is z * lse**2 (lse of the capped logits) where the
    target is kept and exactly 0 where it is ignored, whose gradient row stays
    exactly 0."""
    x, t, w = case(rng, shape, axis, "index", True)
    ax = ref.class_axis(axis, x.ndim)
    kw = dict(axis=axis, reduction="none", softcap=4.0, label_smoothing=0.1)
    base, g0 = fx.cross_entropy(x, t, w, return_grad=True, **kw)
    loss, grad = fx.cross_entropy(x, t, w, return_grad=True, z_loss=0.25, **kw)
    lse = fx.logsumexp(4.0 * np.tanh(x / 4.0), axis=ax)
    kept = t != -100
    assert kept.any() and (~kept).any()
    assert_close((loss - base)[kept], 0.25 * lse[kept] ** 2, rtol=1e-12)
    assert not loss[~kept].any()
    ignored_rows = np.moveaxis(grad, ax, -1)[~kept]
    assert not ignored_rows.any() and not np.moveaxis(g0, ax, -1)[~kept].any()


@pytest.mark.parametrize("fn_kind", ["index", "prob"])
def test_z_loss_mean_divides_by_the_plain_denominator(rng, fn_kind):
    """"mean" is the sum of the per-sample losses (z-loss included) over the
    summed class weight of the kept targets (positions for probabilities)."""
    x, t, w = case(rng, (8, 40), None, fn_kind, True)
    kw = dict(z_loss=0.1, softcap=5.0)
    per_sample = fx.cross_entropy(x, t, w, reduction="none", **kw)
    if fn_kind == "index":
        kept = t != -100
        denom = w[t[kept]].sum()
    else:
        denom = len(x)
    assert_close(fx.cross_entropy(x, t, w, **kw), per_sample.sum() / denom, rtol=1e-14)
    assert_close(fx.cross_entropy(x, t, w, reduction="sum", **kw), per_sample.sum(), rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(4, 50), (2, 5, 3)], ids=["rows", "tiles"])
def test_all_targets_ignored(rng, shape, reduction):
    """No z-loss for ignored targets: a NaN mean (0 / 0, as PyTorch), a 0 sum,
    zero losses and a zero gradient."""
    x = rng.standard_normal(shape)
    t = np.full(sample_shape(shape, None), -100)
    loss, grad = fx.cross_entropy(x, t, reduction=reduction, z_loss=1.0, softcap=2.0,
                                  return_grad=True)
    if reduction == "mean":
        assert np.isnan(loss)
    else:
        assert not np.any(loss)
    assert not grad.any()


@pytest.mark.parametrize("shape, axis", [((3, 50), None), ((70, 5), None), ((3, 6, 9), None)],
                         ids=["rows", "small-C-tiles", "strided-tiles"])
def test_softcap_non_finite_logits(torch, rng, shape, axis):
    """The cap of +-inf is +-softcap (a finite logit: a -inf entry is no longer a
    masked class, as in the PyTorch expression, and its gradient is 0); a NaN
    stays NaN in its sample."""
    x, t, w = case(rng, shape, axis, "index", False)
    t = np.where(t == -100, 0, t)
    x = np.moveaxis(x, ref.class_axis(axis, x.ndim), -1).copy()
    x[0, ..., 1] = np.inf
    x[1, ..., 2] = -np.inf
    x[1, ..., 3] = -np.inf
    x[2, ..., 0] = np.nan
    x = np.moveaxis(x, -1, ref.class_axis(axis, x.ndim))
    kw = dict(axis=axis, reduction="none", z_loss=1e-2, softcap=3.0)
    loss, grad = fx.cross_entropy(x, t, return_grad=True, **kw)
    want_loss, want_grad = torch_z_softcap(torch, x, t, **kw)
    assert_close(loss, want_loss, rtol=1e-12, atol=1e-13)
    assert_close(grad, want_grad, rtol=1e-12, atol=1e-14)
    assert np.isfinite(loss[:2]).all() and np.isnan(loss[2]).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softcap_extreme_logits(torch, rng, dtype):
    """Logits from 1e-9 to 1e4 times the cap: the cap's tanh keeps its relative
    precision near 0 and saturates to +-cap; its derivative underflows to 0."""
    mags = np.concatenate([[0.0, 1e-9, 1e-4, 0.3, 1.0, 3.0, 9.0, 10.5, 19.0, 21.0, 40.0, 400.0, 1e4]])
    x = np.concatenate([mags, -mags[1:]])[None, :].repeat(3, axis=0) * 2.0
    x = (x + 1e-3 * rng.standard_normal(x.shape)).astype(dtype)
    t = np.array([0, 5, 20])
    for layout in ("rows", "tiles"):
        xx = x if layout == "rows" else np.ascontiguousarray(x.T)
        axis = None if layout == "rows" else 0
        loss, grad = fx.cross_entropy(xx, t, return_grad=True, reduction="none", softcap=2.0,
                                      z_loss=1e-2, axis=axis)
        want_loss, want_grad = torch_z_softcap(torch, xx, t, reduction="none", softcap=2.0,
                                               z_loss=1e-2, axis=axis)
        assert_close(loss, want_loss, rtol=2 * RTOL[np.dtype(dtype)])
        assert_grad_close(grad, want_grad, dtype, rel=2)


def test_large_softcap_is_no_cap(rng):
    """softcap far above the logits changes them by x**3 / (3 softcap**2)."""
    x, t, w = case(rng, (5, 40), None, "index", True, scale=1.0)
    plain = fx.cross_entropy(x, t, w, return_grad=True)
    capped = fx.cross_entropy(x, t, w, softcap=1e7, return_grad=True)
    assert_close(capped[0], plain[0], rtol=1e-12)
    assert_grad_close(capped[1], plain[1], F64)


def test_defaults_are_the_plain_loss(rng):
    """z_loss=0 and softcap=None are the plain kernel, bit for bit."""
    for shape, axis in (((6, 50), None), ((70, 5), None), ((3, 6, 9), None)):
        x, t, w = case(rng, shape, axis, "index", True)
        a = fx.cross_entropy(x, t, w, axis=axis, label_smoothing=0.1, return_grad=True)
        b = fx.cross_entropy(x, t, w, axis=axis, label_smoothing=0.1, return_grad=True,
                             z_loss=0.0, softcap=None)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((3000, 50), None), ((9000, 7), None), ((3, 9, 3000), None)],
                         ids=["rows", "small-C-tiles", "strided-tiles"])
def test_same_bits_for_every_thread_count(rng, shape, axis, dtype):
    x, t, w = case(rng, shape, axis, "index", True)
    x = x.astype(dtype)
    kw = dict(axis=axis, label_smoothing=0.1, z_loss=1e-3, softcap=3.0, return_grad=True)
    runs = [fx.cross_entropy(x, t, w, n_threads=n, **kw) for n in (1, 2, 3)]
    for loss, grad in runs[1:]:
        assert np.array_equal(loss, runs[0][0]) and np.array_equal(grad, runs[0][1])


def test_inputs_are_not_modified(rng):
    x, t, w = case(rng, (5, 40), None, "prob", True)
    copies = [a.copy() for a in (x, t, w)]
    fx.cross_entropy(x, t, w, z_loss=0.1, softcap=2.0, label_smoothing=0.1, return_grad=True)
    for a, c in zip((x, t, w), copies):
        assert np.array_equal(a, c)


# ----------------------------------------------------------------------------
# Bad arguments
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("name, value, error, match", [
    ("z_loss", -1e-4, ValueError, r"z_loss must be a finite number >= 0, got -0.0001"),
    ("z_loss", float("nan"), ValueError, "z_loss must be a finite number"),
    ("z_loss", float("inf"), ValueError, "z_loss must be a finite number"),
    ("z_loss", True, TypeError, "z_loss must be a number, got True"),
    ("z_loss", "0.1", TypeError, "z_loss must be a number"),
    ("z_loss", None, TypeError, "z_loss must be a number"),
    ("softcap", 0.0, ValueError, r"softcap must be a finite number > 0, got 0.0"),
    ("softcap", -30, ValueError, "softcap must be a finite number > 0"),
    ("softcap", float("inf"), ValueError, "softcap must be a finite number > 0"),
    ("softcap", float("nan"), ValueError, "softcap"),
    ("softcap", np.bool_(True), TypeError, "softcap must be a number"),
    ("softcap", "30", TypeError, "softcap must be a number"),
])
def test_bad_values(rng, name, value, error, match):
    x, t, _ = case(rng, (3, 5), None, "index", False)
    with pytest.raises(error, match=match):
        fx.cross_entropy(x, t, **{name: value})
    with pytest.raises(error, match=match):
        fx.CrossEntropyLoss(**{name: value})


def test_numpy_scalars_are_accepted(rng):
    x, t, _ = case(rng, (3, 5), None, "index", False)
    a = fx.cross_entropy(x, t, z_loss=np.float32(0.5), softcap=np.int64(3))
    b = fx.cross_entropy(x, t, z_loss=float(np.float32(0.5)), softcap=3.0)
    assert a == b


def test_nll_loss_has_neither():
    with pytest.raises(TypeError):
        fx.nll_loss(np.zeros((2, 3)), [0, 1], z_loss=0.1)
    with pytest.raises(TypeError):
        fx.nll_loss(np.zeros((2, 3)), [0, 1], softcap=3.0)
