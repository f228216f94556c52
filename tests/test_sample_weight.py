"""sample_weight= on every loss and loss class (issue 12, SPEC.md "Sample weights and
second order").

Against the float64 oracle (tests/reference.py) on every kernel path, option and
reduction; against PyTorch (whose losses have no sample weights: its per-sample
losses, weighted and reduced by hand); the SPEC's mean, with which integer weights
repeat samples; the checks (shape named, negative and non-finite refused, inputs
untouched); the loss classes; thread-count independence.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import (RTOL, assert_close, assert_grad_close, make_case, sample_shape, upstream)

LAYOUTS = {
    "rows": ((6, 40), 1),
    "long_rows": ((2, 20000), 1),
    "few_classes": ((70, 5), 1),
    "strided": ((3, 6, 9), 1),
    "last_axis": ((2, 3, 37), -1),
    "one_d": ((7,), None),
}
DTYPES = [np.float64, np.float32]
REDUCTIONS = ["mean", "sum", "none"]


def _weights(rng, shape, kind="uniform"):
    if kind == "integers":
        return rng.integers(0, 4, shape)
    sw = rng.uniform(0.0, 3.0, shape)
    if kind == "zeros":                   # every third sample weighs nothing, not the first
        sw.reshape(-1)[1::3] = 0.0
    return sw


def _check(got, want, dtype, has_grad=True):
    loss, grad = got if has_grad else (got, None)
    want_loss, want_grad = want if has_grad else (want, None)
    assert_close(loss, want_loss, rtol=4 * RTOL[np.dtype(dtype)],
                 atol=1e-6 * RTOL[np.dtype(dtype)] * float(np.max(np.abs(want_loss), initial=0)))
    if has_grad:
        assert_grad_close(grad, want_grad, dtype, rel=2.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sw_kind", ["uniform", "integers", "zeros"])
@pytest.mark.parametrize("target_kind", ["index", "prob", "unnormalized"])
@pytest.mark.parametrize("options", ["plain", "weight_smoothing"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cross_entropy_sample_weight_against_reference(rng, layout, dtype, options, target_kind,
                                                       sw_kind, reduction):
    shape, axis = LAYOUTS[layout]
    x, t, w = make_case(rng, shape, axis, target_kind, options != "plain")
    x = x.astype(dtype)
    samples = sample_shape(shape, axis)
    kw = dict(weight=w, axis=axis, reduction=reduction, sample_weight=_weights(rng, samples, sw_kind),
              label_smoothing=0.1 if options != "plain" else 0.0)
    go = upstream(rng, reduction, samples)
    got = fx.cross_entropy(x, t, return_grad=True, grad_output=go, **kw)
    _check(got, ref.cross_entropy(x, t, return_grad=True, grad_output=go, **kw), dtype)
    _check(fx.cross_entropy(x, t, **kw), ref.cross_entropy(x, t, **kw), dtype, has_grad=False)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("sw_kind", ["uniform", "integers", "zeros"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_nll_loss_sample_weight_against_reference(rng, layout, dtype, weighted, sw_kind, reduction):
    shape, axis = LAYOUTS[layout]
    # A "mean" over no weight at all is NaN; nll's gradient is then NaN at the
    # targets only (as PyTorch's), where the oracle's is NaN throughout: the
    # first sample is kept and weighs something.
    x, t, w = make_case(rng, shape, axis, "index", weighted, ignore=sw_kind != "zeros")
    x = x.astype(dtype)
    samples = sample_shape(shape, axis)
    kw = dict(weight=w, axis=axis, reduction=reduction, sample_weight=_weights(rng, samples, sw_kind))
    go = upstream(rng, reduction, samples)
    got = fx.nll_loss(x, t, return_grad=True, grad_output=go, **kw)
    _check(got, ref.nll_loss(x, t, return_grad=True, grad_output=go, **kw), dtype)


# (weight, pos_weight, sample_weight) shapes for a (6, 4) input; "()" a scalar
BINARY_OPERANDS = [
    (None, None, (6, 4)),
    (None, None, (6, 1)),
    (None, None, (4,)),
    (None, None, ()),
    ((4,), (4,), (6, 1)),
    ((6, 1), (4,), (6, 4)),
    ((6, 4), None, (1, 4)),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("operands", BINARY_OPERANDS, ids=str)
@pytest.mark.parametrize("logits", [True, False], ids=["with_logits", "probabilities"])
def test_binary_sample_weight_against_reference(rng, logits, operands, dtype, reduction):
    shape = (6, 4)
    w_shape, pw_shape, sw_shape = operands
    make = lambda s, lo, hi: None if s is None else rng.uniform(lo, hi, s)  # noqa: E731
    w, pw, sw = make(w_shape, 0.2, 2.0), make(pw_shape, 0.5, 3.0), make(sw_shape, 0.0, 3.0)
    t = rng.random(shape).astype(dtype)
    go = upstream(rng, reduction, shape)
    if logits:
        x = (2.0 * rng.standard_normal(shape)).astype(dtype)
        kw = dict(pos_weight=pw, reduction=reduction, sample_weight=sw)
        got = fx.binary_cross_entropy_with_logits(x, t, w, return_grad=True, grad_output=go, **kw)
        want = ref.binary_cross_entropy_with_logits(x, t, w, return_grad=True, grad_output=go, **kw)
    else:
        x = rng.uniform(0.02, 0.98, shape).astype(dtype)
        kw = dict(reduction=reduction, sample_weight=sw)
        got = fx.binary_cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
        want = ref.binary_cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    _check(got, want, dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_sample_weight_on_many_blocks(rng, reduction):
    """More elements than one block (FX_BCE_BLOCK) and than one tile, with a
    per-row weight gathered across tiles."""
    shape = (4099, 13)
    x, t = rng.standard_normal(shape), rng.random(shape)
    sw = rng.uniform(0, 2, (shape[0], 1))
    got = fx.binary_cross_entropy_with_logits(x, t, sample_weight=sw, reduction=reduction,
                                              return_grad=True)
    want = ref.binary_cross_entropy_with_logits(x, t, sample_weight=sw, reduction=reduction,
                                                return_grad=True)
    _check(got, want, np.float64)


# ----------------------------------------------------------------------------
# PyTorch: its per-sample losses, weighted by hand
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", ["index", "index_weight_smoothing", "prob", "strided", "nll"])
def test_sample_weight_against_torch(torch, rng, case, reduction):
    F = torch.nn.functional
    shape = (2, 5, 3) if case == "strided" else (8, 5)
    kind = "prob" if case == "prob" else "index"
    x, t, w = make_case(rng, shape, 1, kind, case in ("index_weight_smoothing", "nll"))
    eps = 0.1 if case == "index_weight_smoothing" else 0.0
    sw = rng.uniform(0, 3, sample_shape(shape, 1))
    xt = torch.tensor(x, requires_grad=True)
    wt = None if w is None else torch.tensor(w)
    if case == "nll":
        loss_n = F.nll_loss(xt, torch.tensor(t), weight=wt, reduction="none")
    elif kind == "prob":
        loss_n = F.cross_entropy(xt, torch.tensor(t), weight=wt, reduction="none")
    else:
        loss_n = F.cross_entropy(xt, torch.tensor(t), weight=wt, reduction="none",
                                 label_smoothing=eps)
    if kind == "index":
        kept = t != -100
        denom_n = np.where(kept, 1.0 if w is None else w[np.where(kept, t, 0)], 0.0)
    else:
        denom_n = np.ones(sample_shape(shape, 1))
    total = (torch.tensor(sw) * loss_n).sum()
    if reduction == "mean":
        total = total / float(np.sum(sw * denom_n))
    total.backward()
    fn = fx.nll_loss if case == "nll" else fx.cross_entropy
    opts = {} if case == "nll" else dict(label_smoothing=eps)
    loss, grad = fn(x, t, w, sample_weight=sw, reduction=reduction, return_grad=True, **opts)
    assert_close(loss, total.item(), rtol=1e-12)
    assert_close(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_binary_sample_weight_against_torch(torch, rng, reduction):
    F = torch.nn.functional
    x, t = rng.standard_normal((5, 3)), rng.random((5, 3))
    sw, pw = rng.uniform(0, 3, (5, 1)), rng.uniform(0.5, 2, 3)
    xt = torch.tensor(x, requires_grad=True)
    loss_n = F.binary_cross_entropy_with_logits(xt, torch.tensor(t), pos_weight=torch.tensor(pw),
                                                reduction="none")
    total = (torch.tensor(sw) * loss_n).sum()
    if reduction == "mean":
        total = total / (3 * sw.sum())
    total.backward()
    loss, grad = fx.binary_cross_entropy_with_logits(x, t, pos_weight=pw, sample_weight=sw,
                                                     reduction=reduction, return_grad=True)
    assert_close(loss, total.item(), rtol=1e-12)
    assert_close(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-15)
    p = 1 / (1 + np.exp(-x))
    pt = torch.tensor(p, requires_grad=True)
    total = (torch.tensor(sw) * F.binary_cross_entropy(pt, torch.tensor(t), reduction="none")).sum()
    if reduction == "mean":
        total = total / (3 * sw.sum())
    total.backward()
    loss, grad = fx.binary_cross_entropy(p, t, sample_weight=sw, reduction=reduction,
                                         return_grad=True)
    assert_close(loss, total.item(), rtol=1e-12)
    assert_close(grad, pt.grad.numpy(), rtol=1e-12, atol=1e-15)


# ----------------------------------------------------------------------------
# The SPEC's mean: integer weights repeat samples; weights of 1 change nothing
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("layout", ["rows", "few_classes"])
def test_integer_weights_repeat_samples(rng, layout, target_kind):
    shape, axis = LAYOUTS[layout]
    x, t, w = make_case(rng, shape, axis, target_kind, True)
    sw = rng.integers(0, 4, shape[0])
    rep = np.repeat(np.arange(shape[0]), sw)
    for fn, opts in ((fx.cross_entropy, dict(label_smoothing=0.1)), (fx.nll_loss, {})):
        if fn is fx.nll_loss and target_kind != "index":
            continue
        got = fn(x, t, w, sample_weight=sw, return_grad=True, **opts)
        loss, grad_rep = fn(x[rep], t[rep], w, return_grad=True, **opts)
        assert_close(got[0], loss, rtol=1e-13)
        # the repeated rows' gradients add up to the weighted row's
        summed = np.zeros_like(x)
        np.add.at(summed, rep, grad_rep)
        assert_close(got[1], summed, rtol=1e-12, atol=1e-16)
    xb, tb = rng.standard_normal((shape[0], 3)), rng.random((shape[0], 3))
    for fn, xx in ((fx.binary_cross_entropy_with_logits, xb),
                   (fx.binary_cross_entropy, 1 / (1 + np.exp(-xb)))):
        assert_close(fn(xx, tb, sample_weight=sw[:, None]), fn(xx[rep], tb[rep]), rtol=1e-13)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_weights_of_one_change_no_bit(rng, layout, dtype):
    shape, axis = LAYOUTS[layout]
    for kind in ("index", "prob"):
        x, t, w = make_case(rng, shape, axis, kind, True)
        x = x.astype(dtype)
        ones = np.ones(sample_shape(shape, axis))
        for red in REDUCTIONS:
            a = fx.cross_entropy(x, t, w, reduction=red, return_grad=True, label_smoothing=0.1,
                                 axis=axis)
            b = fx.cross_entropy(x, t, w, reduction=red, return_grad=True, label_smoothing=0.1,
                                 axis=axis, sample_weight=ones)
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)
    x, t = rng.standard_normal((9, 4)).astype(dtype), rng.random((9, 4)).astype(dtype)
    for red in REDUCTIONS:
        a = fx.binary_cross_entropy_with_logits(x, t, reduction=red, return_grad=True)
        b = fx.binary_cross_entropy_with_logits(x, t, reduction=red, return_grad=True,
                                                sample_weight=1)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)


def test_zero_weights(rng):
    """A sample of weight 0 adds nothing; all weights 0 make the mean NaN, as an
    empty batch does."""
    x, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, 1])
    sw = np.array([1.0, 0.0, 2.0, 0.0])
    loss, grad = fx.cross_entropy(x, y, sample_weight=sw, return_grad=True)
    keep = sw > 0
    l2, g2 = fx.cross_entropy(x[keep], y[keep], sample_weight=sw[keep], return_grad=True)
    assert_close(loss, l2, rtol=1e-15)
    assert (grad[~keep] == 0).all()
    assert_close(grad[keep], g2, rtol=1e-15)
    loss, grad = fx.cross_entropy(x, y, sample_weight=np.zeros(4), return_grad=True)
    assert np.isnan(loss) and np.isnan(grad).all()
    loss, grad = fx.binary_cross_entropy_with_logits(x, (x > 0) * 1.0, sample_weight=np.zeros((4, 1)),
                                                     return_grad=True)
    assert np.isnan(loss) and np.isnan(grad).all()


# ----------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss", "cross_entropy_prob",
                                "binary_cross_entropy", "binary_cross_entropy_with_logits"])
@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf, -np.inf])
def test_negative_and_non_finite_weights_are_refused(rng, fn, bad):
    x = rng.uniform(0.1, 0.9, (4, 3))
    sw = np.ones(4) if fn in ("cross_entropy", "nll_loss", "cross_entropy_prob") else np.ones((4, 3))
    sw.reshape(-1)[2] = bad
    sw_before = sw.copy()
    t = {"cross_entropy": [0, 1, 2, 1], "nll_loss": [0, 1, 2, 1]}.get(fn, rng.random((4, 3)))
    f = getattr(fx, fn.replace("_prob", ""))
    out = np.full_like(x, 7.0)
    where = "2" if sw.ndim == 1 else r"\(0, 2\)"
    with pytest.raises(ValueError, match=rf"sample_weight must be finite and non-negative, "
                                         rf"got {bad!r} at index {where}"):
        f(x, t, sample_weight=sw, return_grad=True, out=out)
    assert (out == 7.0).all()
    np.testing.assert_array_equal(sw, sw_before)


def test_sample_weight_shape_and_type_are_checked(rng):
    x, y = rng.standard_normal((4, 3, 2)), rng.integers(0, 3, (4, 2))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4, 2\).*input "
                                         r"\(4, 3, 2\) without its class axis.*got \(4,\)"):
        fx.cross_entropy(x, y, sample_weight=np.ones(4))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4, 2\)"):
        fx.cross_entropy(x, rng.random((4, 3, 2)), sample_weight=np.ones((4, 3, 2)))
    with pytest.raises(ValueError, match=r"sample_weight must have shape \(4, 2\)"):
        fx.nll_loss(x, y, sample_weight=np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"sample_weight of shape \(3,\) does not broadcast to "
                                         r"the input's shape \(4, 2\)"):
        fx.binary_cross_entropy_with_logits(x[:, 0], x[:, 1], sample_weight=np.ones(3))
    for bad in (np.ones(4, bool), np.ones(4, complex), ["a"] * 4):
        with pytest.raises(TypeError, match="sample_weight"):
            fx.cross_entropy(x[:, :, 0], y[:, 0], sample_weight=bad)


def test_sample_weight_layouts_and_dtypes_are_read(rng):
    """Integer, float32, strided, read-only and byte-swapped weights are all read
    as their values."""
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    sw = rng.integers(0, 5, 6)
    want = fx.cross_entropy(x, y, sample_weight=sw.astype(np.float64), return_grad=True)
    big = np.zeros(12)
    big[::2] = sw
    ro = sw.astype(np.float64)
    ro.setflags(write=False)
    for v in (sw, sw.astype(np.float32), big[::2], ro, sw.astype(">f8"), list(sw)):
        got = fx.cross_entropy(x, y, sample_weight=v, return_grad=True)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


def test_out_may_not_overlap_sample_weight(rng):
    x, y = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    buf = np.zeros(24)
    sw, out = buf[:4], buf.reshape(2, 12)[1].reshape(4, 3)
    buf[:] = 1.0
    fx.cross_entropy(x, y, sample_weight=sw, return_grad=True, out=out)   # disjoint: fine
    with pytest.raises(ValueError, match="overlap"):
        fx.cross_entropy(x, y, sample_weight=buf[:4], return_grad=True, out=buf[:12].reshape(4, 3))
    with pytest.raises(ValueError, match="overlap"):
        fx.binary_cross_entropy_with_logits(x, x * 0, sample_weight=buf[:12].reshape(4, 3),
                                            return_grad=True, out=buf[:12].reshape(4, 3))


def test_loss_classes_take_sample_weight_at_the_call(rng):
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    sw = rng.uniform(0, 2, 5)
    w = rng.uniform(0.5, 2, 4)
    cases = [
        (fx.CrossEntropyLoss(weight=w, label_smoothing=0.1), fx.cross_entropy,
         dict(weight=w, label_smoothing=0.1), x, y, sw),
        (fx.NLLLoss(weight=w, reduction="sum"), fx.nll_loss, dict(weight=w, reduction="sum"),
         x, y, sw),
        (fx.BCEWithLogitsLoss(pos_weight=w), fx.binary_cross_entropy_with_logits,
         dict(pos_weight=w), x, (x > 0) * 1.0, sw[:, None]),
        (fx.BCELoss(reduction="none"), fx.binary_cross_entropy, dict(reduction="none"),
         1 / (1 + np.exp(-x)), (x > 0) * 1.0, sw[:, None]),
    ]
    for obj, fn, opts, xx, tt, s in cases:
        got = obj(xx, tt, sample_weight=s, return_grad=True)
        want = fn(xx, tt, sample_weight=s, return_grad=True, **opts)
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        with pytest.raises(ValueError, match="sample_weight"):
            obj(xx, tt, sample_weight=-np.asarray(s) - 1)


@pytest.mark.parametrize("layout", ["rows", "few_classes", "strided"])
def test_sample_weight_is_the_same_for_every_thread_count(rng, layout):
    shape, axis = LAYOUTS[layout]
    n = 1 + 300000 // int(np.prod(shape))
    big = (n * shape[0],) + shape[1:]
    x, t, w = make_case(rng, big, axis, "index", True)
    sw = rng.uniform(0, 2, sample_shape(big, axis))
    one = fx.cross_entropy(x, t, w, sample_weight=sw, axis=axis, return_grad=True, n_threads=1)
    for nt in (2, 3):
        many = fx.cross_entropy(x, t, w, sample_weight=sw, axis=axis, return_grad=True, n_threads=nt)
        for a, b in zip(one, many):
            np.testing.assert_array_equal(a, b)
    xb, tb = rng.standard_normal((3000, 40)), rng.random((3000, 40))
    swb = rng.uniform(0, 2, (3000, 1))
    one = fx.binary_cross_entropy_with_logits(xb, tb, sample_weight=swb, return_grad=True,
                                              n_threads=1)
    many = fx.binary_cross_entropy_with_logits(xb, tb, sample_weight=swb, return_grad=True,
                                               n_threads=2)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)
