"""Second order (issue 12, SPEC.md "Sample weights and second order"):
``return_hessian=True`` of cross_entropy and binary_cross_entropy_with_logits, and
cross_entropy_hvp.

Every option on every kernel path against the float64 oracle (tests/reference.py),
then against PyTorch autograd (``torch.autograd.functional.hessian`` for the
diagonal, ``torch.autograd.functional.hvp`` for the product) on small cases, and
against finite differences of fastxent's own gradient.  Then the calling
conventions: ``out=`` as a pair, the checks, float16, threads, inputs untouched.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import (GRAD_ATOL, RTOL, assert_close, assert_grad_close, make_case,
                     sample_shape, upstream)

# The kernel paths of cross-entropy (fx_block_at): rows of many classes, long rows
# cut into chunks, few classes (tiles of transposed rows), a strided class axis
# (tiles in place), a 1-D input, the class axis first of a 2-D input.
LAYOUTS = {
    "rows": ((6, 40), 1),
    "long_rows": ((2, 20000), 1),
    "few_classes": ((70, 5), 1),
    "strided": ((3, 6, 9), 1),
    "last_axis": ((2, 3, 37), -1),
    "one_d": ((7,), None),
    "axis0": ((5, 66), 0),
}
DTYPES = [np.float64, np.float32]
# options of cross_entropy: (weight?, label_smoothing, sample_weight?)
OPTIONS = {
    "plain": (False, 0.0, False),
    "weight": (True, 0.0, False),
    "smoothing": (False, 0.15, False),
    "sample_weight": (False, 0.0, True),
    "all": (True, 0.1, True),
}
TARGETS = ["index", "prob", "unnormalized"]


def _problem(rng, layout, dtype, target_kind, option, reduction):
    shape, axis = LAYOUTS[layout]
    weighted, eps, sw = OPTIONS[option]
    x, t, w = make_case(rng, shape, axis, target_kind, weighted)
    samples = sample_shape(shape, axis)
    kw = dict(weight=w, axis=axis, reduction=reduction, label_smoothing=eps,
              grad_output=upstream(rng, reduction, samples),
              sample_weight=rng.uniform(0.0, 3.0, samples) if sw else None)
    t = t.astype(dtype) if target_kind != "index" else t
    return x.astype(dtype), t, kw


def _rel(dtype, rel=1.0):
    return dict(rtol=rel * RTOL[np.dtype(dtype)])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cross_entropy_hessian_against_reference(rng, layout, dtype, target_kind, option,
                                                 reduction):
    x, t, kw = _problem(rng, layout, dtype, target_kind, option, reduction)
    loss, grad, hess = fx.cross_entropy(x, t, return_grad=True, return_hessian=True, **kw)
    want = ref.cross_entropy(x, t, return_grad=True, return_hessian=True, **kw)
    assert grad.dtype == hess.dtype == x.dtype and hess.shape == x.shape
    assert_close(loss, want[0], rtol=4 * RTOL[np.dtype(dtype)],
                 atol=GRAD_ATOL[np.dtype(dtype)] * float(np.max(np.abs(want[0]), initial=0)))
    assert_grad_close(grad, want[1], dtype, rel=2.0)
    assert_grad_close(hess, want[2], dtype, rel=4.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("target_kind", TARGETS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_cross_entropy_hvp_against_reference(rng, layout, dtype, target_kind, option, reduction):
    x, t, kw = _problem(rng, layout, dtype, target_kind, option, reduction)
    v = rng.standard_normal(x.shape).astype(dtype)
    hv = fx.cross_entropy_hvp(x, t, v, **kw)
    assert hv.dtype == x.dtype and hv.shape == x.shape
    assert_grad_close(hv, ref.cross_entropy_hvp(x, t, v, **kw), dtype, rel=8.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sw_shape", [None, "full", "row", "scalar"])
@pytest.mark.parametrize("operands", ["plain", "weight", "pos_weight", "both"])
@pytest.mark.parametrize("shape", [(5, 4), (3000, 7), (20001,)])
def test_bce_with_logits_hessian_against_reference(rng, shape, operands, sw_shape, dtype,
                                                   reduction):
    x = (3.0 * rng.standard_normal(shape)).astype(dtype)
    t = rng.random(shape).astype(dtype)
    w = rng.uniform(0.2, 2.0, shape[-1]) if operands in ("weight", "both") else None
    pw = rng.uniform(0.2, 4.0, shape[-1]) if operands in ("pos_weight", "both") else None
    sw = {None: None, "full": rng.uniform(0, 3, shape), "scalar": 2.5,
          "row": rng.uniform(0, 3, shape[:1] + (1,) * (len(shape) - 1))}[sw_shape]
    kw = dict(weight=w, pos_weight=pw, reduction=reduction, sample_weight=sw,
              grad_output=upstream(rng, reduction, shape))
    loss, grad, hess = fx.binary_cross_entropy_with_logits(x, t, return_grad=True,
                                                          return_hessian=True, **kw)
    want = ref.binary_cross_entropy_with_logits(x, t, return_grad=True, return_hessian=True, **kw)
    assert_close(loss, want[0], **_rel(dtype, 4.0))
    assert_grad_close(grad, want[1], dtype, rel=2.0)
    assert_grad_close(hess, want[2], dtype, rel=2.0)


# ----------------------------------------------------------------------------
# PyTorch autograd: the Hessian itself, on small cases
# ----------------------------------------------------------------------------

def _torch_cross_entropy(torch, xt, t, w, axis, reduction, eps, sw, ignore_index=-100):
    """The scalar torch loss whose Hessian fastxent's options describe
    (``sum(grad_output * loss)`` for "none", here with grad_output 1)."""
    F = torch.nn.functional
    nd = xt.dim()
    ax = ref.class_axis(axis, nd)
    xm = xt if nd == 1 else torch.movedim(xt, ax, 1)
    wt = None if w is None else torch.tensor(w, dtype=torch.float64)
    if np.asarray(t).dtype.kind == "f":
        tt = torch.tensor(np.asarray(t if nd == 1 else np.moveaxis(t, ax, 1)), dtype=torch.float64)
        denom_n = torch.ones(tt.shape[:1] + tt.shape[2:] if nd > 1 else ())
    else:
        tt = torch.tensor(np.asarray(t, np.int64))
        kept = tt != ignore_index
        wy = torch.ones_like(tt, dtype=torch.float64) if wt is None else \
            wt[torch.where(kept, tt, 0)]
        denom_n = torch.where(kept, wy, torch.zeros_like(wy))
    loss_n = F.cross_entropy(xm, tt, weight=wt, reduction="none", label_smoothing=eps,
                             ignore_index=ignore_index)
    swt = torch.ones_like(loss_n) if sw is None else torch.tensor(sw, dtype=torch.float64)
    total = (swt * loss_n).sum()
    if reduction == "mean":
        total = total / (swt * denom_n).sum()
    return total


TORCH_CASES = {      # (shape, axis, target kind, weighted, eps, sample weights)
    "index": ((3, 4), 1, "index", False, 0.0, False),
    "index_weight_smoothing": ((4, 5), 1, "index", True, 0.2, False),
    "index_sample_weight": ((4, 3), 1, "index", True, 0.0, True),
    "prob_sample_weight": ((3, 4), 1, "unnormalized", True, 0.1, True),
    "strided": ((2, 3, 4), 1, "index", True, 0.1, True),
    "strided_prob": ((2, 4, 3), 1, "prob", False, 0.0, True),
    "last_axis": ((2, 2, 5), -1, "index", False, 0.05, True),
}


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_cross_entropy_hessian_and_hvp_against_torch_autograd(torch, rng, case, reduction):
    shape, axis, kind, weighted, eps, with_sw = TORCH_CASES[case]
    x, t, w = make_case(rng, shape, axis, kind, weighted)
    sw = rng.uniform(0.0, 3.0, sample_shape(shape, axis)) if with_sw else None
    v = rng.standard_normal(shape)

    def f(xt):
        return _torch_cross_entropy(torch, xt, t, w, axis, reduction, eps, sw)

    xt = torch.tensor(x)
    H = torch.autograd.functional.hessian(f, xt).reshape(x.size, x.size).numpy()
    _, hv_torch = torch.autograd.functional.hvp(f, xt, torch.tensor(v))
    kw = dict(weight=w, axis=axis, reduction=reduction, label_smoothing=eps, sample_weight=sw)
    loss, grad, hess = fx.cross_entropy(x, t, return_grad=True, return_hessian=True, **kw)
    assert_close(loss, f(xt).item(), rtol=1e-12)
    assert_close(hess, np.diag(H).reshape(shape), rtol=1e-10, atol=1e-14)
    assert_close(fx.cross_entropy_hvp(x, t, v, **kw), hv_torch.numpy(), rtol=1e-10, atol=1e-13)
    assert_close(fx.cross_entropy_hvp(x, t, v, **kw), (H @ v.reshape(-1)).reshape(shape),
                 rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("operands", ["plain", "weight_pos_weight", "sample_weight", "all"])
def test_bce_with_logits_hessian_against_torch_autograd(torch, rng, operands, reduction):
    x = 2.0 * rng.standard_normal((3, 4))
    t = rng.random((3, 4))
    w = rng.uniform(0.2, 2, 4) if operands in ("weight_pos_weight", "all") else None
    pw = rng.uniform(0.5, 3, 4) if operands in ("weight_pos_weight", "all") else None
    sw = rng.uniform(0, 3, (3, 1)) if operands in ("sample_weight", "all") else None
    F = torch.nn.functional

    def f(xt):
        loss = F.binary_cross_entropy_with_logits(
            xt, torch.tensor(t), weight=None if w is None else torch.tensor(w),
            pos_weight=None if pw is None else torch.tensor(pw), reduction="none")
        s = torch.ones_like(loss) if sw is None else torch.tensor(sw).expand(loss.shape)
        total = (s * loss).sum()
        return total / s.sum() if reduction == "mean" else total

    H = torch.autograd.functional.hessian(f, torch.tensor(x)).reshape(12, 12).numpy()
    loss, grad, hess = fx.binary_cross_entropy_with_logits(
        x, t, w, pos_weight=pw, sample_weight=sw, reduction=reduction, return_grad=True,
        return_hessian=True)
    assert_close(hess, np.diag(H).reshape(3, 4), rtol=1e-10, atol=1e-15)
    assert np.allclose(H - np.diag(np.diag(H)), 0.0, atol=1e-15)     # elementwise: diagonal


# ----------------------------------------------------------------------------
# Finite differences of fastxent's own gradient (float64)
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["rows", "few_classes", "strided", "one_d"])
@pytest.mark.parametrize("target_kind", TARGETS)
def test_cross_entropy_second_order_by_finite_differences(rng, layout, target_kind, monkeypatch):
    if layout == "few_classes":          # finite differences perturb every element
        monkeypatch.setitem(LAYOUTS, layout, ((12, 5), 1))
    x, t, kw = _problem(rng, layout, np.float64, target_kind, "all", "mean")
    kw.pop("grad_output")

    def grad(z):
        return fx.cross_entropy(z, t, return_grad=True, **kw)[1]

    _, _, hess = fx.cross_entropy(x, t, return_grad=True, return_hessian=True, **kw)
    h = 1e-5
    fd_diag = np.empty_like(x).reshape(-1)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = h
        e = e.reshape(x.shape)
        fd_diag[i] = (grad(x + e).reshape(-1)[i] - grad(x - e).reshape(-1)[i]) / (2 * h)
    scale = np.max(np.abs(hess))
    assert_close(hess, fd_diag.reshape(x.shape), rtol=1e-6, atol=1e-8 * scale)
    v = rng.standard_normal(x.shape)
    fd_hv = (grad(x + h * v) - grad(x - h * v)) / (2 * h)
    hv = fx.cross_entropy_hvp(x, t, v, **kw)
    assert_close(hv, fd_hv, rtol=1e-6, atol=1e-8 * np.max(np.abs(hv)))


def test_bce_with_logits_hessian_by_finite_differences(rng):
    x = 3.0 * rng.standard_normal((4, 5))
    t = rng.random((4, 5))
    kw = dict(weight=rng.uniform(0.5, 2, 5), pos_weight=rng.uniform(0.5, 3, 5),
              sample_weight=rng.uniform(0, 2, (4, 1)))
    _, _, hess = fx.binary_cross_entropy_with_logits(x, t, return_grad=True, return_hessian=True,
                                                     **kw)
    h = 1e-6
    gp = fx.binary_cross_entropy_with_logits(x + h, t, return_grad=True, **kw)[1]
    gm = fx.binary_cross_entropy_with_logits(x - h, t, return_grad=True, **kw)[1]
    assert_close(hess, (gp - gm) / (2 * h), rtol=1e-6, atol=1e-10)


# ----------------------------------------------------------------------------
# The gradient, the Hessian and H v are one loss's
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_return_hessian_leaves_loss_and_grad_bitwise_alone(rng, layout, dtype):
    x, t, kw = _problem(rng, layout, dtype, "index", "all", "none")
    loss0, grad0 = fx.cross_entropy(x, t, return_grad=True, **kw)
    loss1, grad1, _ = fx.cross_entropy(x, t, return_grad=True, return_hessian=True, **kw)
    np.testing.assert_array_equal(loss1, loss0)
    np.testing.assert_array_equal(grad1, grad0)
    xb = rng.standard_normal((6, 5)).astype(dtype)
    tb = rng.random((6, 5)).astype(dtype)
    a = fx.binary_cross_entropy_with_logits(xb, tb, return_grad=True)
    b = fx.binary_cross_entropy_with_logits(xb, tb, return_grad=True, return_hessian=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_hvp_of_unit_vectors_is_the_hessian(rng, layout, monkeypatch):
    """H e_i, column by column, has the Hessian's diagonal on its diagonal."""
    if layout == "long_rows":            # one product per element
        monkeypatch.setitem(LAYOUTS, layout, ((1, 300), 1))
    x, t, kw = _problem(rng, layout, np.float64, "index", "all", "sum")
    _, _, hess = fx.cross_entropy(x, t, return_grad=True, return_hessian=True, **kw)
    diag = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = 1.0
        diag[i] = fx.cross_entropy_hvp(x, t, e.reshape(x.shape), **kw).reshape(-1)[i]
    assert_close(diag.reshape(x.shape), hess, rtol=1e-13, atol=1e-16)


def test_hvp_is_linear_in_v(rng):
    x, t, kw = _problem(rng, "rows", np.float64, "index", "all", "mean")
    v1, v2 = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    lhs = fx.cross_entropy_hvp(x, t, 2.5 * v1 + v2, **kw)
    rhs = 2.5 * fx.cross_entropy_hvp(x, t, v1, **kw) + fx.cross_entropy_hvp(x, t, v2, **kw)
    assert_close(lhs, rhs, rtol=1e-12, atol=1e-15 * np.max(np.abs(rhs)))


def test_ignored_and_nan_rows(rng):
    """An ignored sample's Hessian and H v are 0; a row with a NaN logit is NaN
    throughout, in every path, as its gradient is."""
    for shape, axis in [((5, 40), 1), ((70, 4), 1), ((2, 4, 6), 1)]:
        x, t, _ = make_case(rng, shape, axis, "index", False, ignore=False)
        t = t.copy()
        t.reshape(-1)[0] = -100
        xb = x.copy()
        np.moveaxis(xb, axis, -1)[np.unravel_index(1, sample_shape(shape, axis))][2] = np.nan
        loss, grad, hess = fx.cross_entropy(xb, t, axis=axis, return_grad=True, return_hessian=True)
        hv = fx.cross_entropy_hvp(xb, t, np.ones_like(xb), axis=axis)
        for a in (grad, hess, hv):
            rows = np.moveaxis(a, axis, -1).reshape(-1, shape[axis])
            assert np.isnan(rows[1]).all()
        for a in (hess, hv):
            rows = np.moveaxis(a, axis, -1).reshape(-1, shape[axis])
            assert (rows[0] == 0).all()
            assert np.isfinite(rows[2:]).all()


def test_docs_example_newton_step():
    """The Newton step of one sample's logit in a binary logistic model: -g / h."""
    x, t = np.array([0.3]), np.array([1.0])
    _, g, h = fx.binary_cross_entropy_with_logits(x, t, return_grad=True, return_hessian=True)
    s = 1 / (1 + np.exp(-x))
    assert_close(g, s - t, rtol=1e-15)
    assert_close(h, s * (1 - s), rtol=1e-15)


# ----------------------------------------------------------------------------
# Calling conventions
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["cross_entropy", "binary_cross_entropy_with_logits"])
def test_out_pair_receives_grad_and_hess(rng, fn):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    t = rng.integers(0, 5, 6) if fn == "cross_entropy" else rng.random((6, 5))
    f = getattr(fx, fn)
    want = f(x, t, return_grad=True, return_hessian=True)
    g, h = np.empty_like(x), np.empty_like(x)
    res = f(x, t, return_grad=True, return_hessian=True, out=(g, h))
    assert res[1] is g and res[2] is h
    np.testing.assert_array_equal(g, want[1])
    np.testing.assert_array_equal(h, want[2])
    for pair in ((None, h), (g, None)):
        res = f(x, t, return_grad=True, return_hessian=True, out=pair)
        np.testing.assert_array_equal(res[1], want[1])
        np.testing.assert_array_equal(res[2], want[2])
        assert res[1] is g or pair[0] is None
        assert res[2] is h or pair[1] is None


@pytest.mark.parametrize("fn", ["cross_entropy", "binary_cross_entropy_with_logits"])
def test_out_pair_is_checked_before_anything_is_written(rng, fn):
    x = rng.standard_normal((6, 5))
    t = rng.integers(0, 5, 6) if fn == "cross_entropy" else rng.random((6, 5))
    f = getattr(fx, fn)
    g, h = np.full_like(x, 7.0), np.full_like(x, 7.0)
    with pytest.raises(TypeError, match="pair"):
        f(x, t, return_grad=True, return_hessian=True, out=g)
    with pytest.raises(TypeError, match="pair"):
        f(x, t, return_grad=True, return_hessian=True, out=[g, h])
    with pytest.raises(TypeError, match=r"out\[1\]"):
        f(x, t, return_grad=True, return_hessian=True, out=(g, [1.0]))
    with pytest.raises(ValueError, match=r"out\[0\] must not overlap"):
        f(x, t, return_grad=True, return_hessian=True, out=(g, g))
    with pytest.raises(ValueError, match=r"out\[1\] must not overlap"):
        f(x, t, return_grad=True, return_hessian=True, out=(None, x))
    with pytest.raises(ValueError, match=r"out\[1\] must have the input's shape"):
        f(x, t, return_grad=True, return_hessian=True, out=(g, h[:3]))
    with pytest.raises(TypeError, match=r"out\[1\] must have the input's dtype"):
        f(x, t, return_grad=True, return_hessian=True, out=(g, h.astype(np.float32)))
    with pytest.raises(ValueError, match=r"out\[1\] must be C-contiguous"):
        f(x, t, return_grad=True, return_hessian=True, out=(g, np.empty((5, 6)).T))
    with pytest.raises(ValueError, match="return_hessian=True needs return_grad=True"):
        f(x, t, return_hessian=True)
    with pytest.raises(TypeError, match="return_hessian"):
        f(x, t, return_grad=True, return_hessian="yes")
    with pytest.raises(TypeError, match="return_hessian"):
        f(x, t, return_grad=True, return_hessian=1)
    assert (g == 7.0).all() and (h == 7.0).all()


def test_float16_second_order(rng):
    x = rng.standard_normal((8, 6)).astype(np.float16)
    y = rng.integers(0, 6, 8)
    loss, grad, hess = fx.cross_entropy(x, y, return_grad=True, return_hessian=True)
    assert loss.dtype == grad.dtype == hess.dtype == np.float16
    want = ref.cross_entropy(x.astype(np.float64), y, return_grad=True, return_hessian=True)
    assert_grad_close(hess, want[2], np.float16)
    h16 = np.empty_like(x)
    res = fx.cross_entropy(x, y, return_grad=True, return_hessian=True, out=(None, h16))
    assert res[2] is h16
    np.testing.assert_array_equal(h16, hess)
    v = rng.standard_normal((8, 6))
    hv = fx.cross_entropy_hvp(x, y, v)
    assert hv.dtype == np.float16
    assert_grad_close(hv, ref.cross_entropy_hvp(x.astype(np.float64), y, v.astype(np.float16)),
                      np.float16, rel=4.0)
    t = rng.random((8, 6))
    _, _, hb = fx.binary_cross_entropy_with_logits(x, t, return_grad=True, return_hessian=True)
    assert hb.dtype == np.float16


@pytest.mark.parametrize("layout", ["rows", "few_classes", "strided", "long_rows"])
def test_second_order_is_the_same_for_every_thread_count(rng, layout):
    shape, axis = LAYOUTS[layout]
    n = 1 + 200000 // int(np.prod(shape))
    big = (n * shape[0],) + shape[1:]
    x, t, w = make_case(rng, big, axis, "index", True)
    sw = rng.uniform(0, 2, sample_shape(big, axis))
    v = rng.standard_normal(big)
    kw = dict(weight=w, axis=axis, sample_weight=sw, label_smoothing=0.1)
    one = fx.cross_entropy(x, t, return_grad=True, return_hessian=True, n_threads=1, **kw)
    hv1 = fx.cross_entropy_hvp(x, t, v, n_threads=1, **kw)
    for nt in (2, 3):
        many = fx.cross_entropy(x, t, return_grad=True, return_hessian=True, n_threads=nt, **kw)
        for a, b in zip(one, many):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fx.cross_entropy_hvp(x, t, v, n_threads=nt, **kw), hv1)


def test_inputs_are_not_modified(rng):
    x, t, w = make_case(rng, (40, 7), 1, "index", True)
    sw, v = rng.uniform(0, 2, 40), rng.standard_normal((40, 7))
    args = [x, t, w, sw, v]
    copies = [a.copy() for a in args]
    for a in args:
        a.setflags(write=False)
    fx.cross_entropy(x, t, w, sample_weight=sw, return_grad=True, return_hessian=True)
    fx.cross_entropy_hvp(x, t, v, w, sample_weight=sw)
    for a, c in zip(args, copies):
        np.testing.assert_array_equal(a, c)


def test_hvp_checks_v_and_out(rng):
    x, y = rng.standard_normal((4, 3)), rng.integers(0, 3, 4)
    with pytest.raises(ValueError, match=r"v must have the input's shape \(4, 3\), got \(3, 4\)"):
        fx.cross_entropy_hvp(x, y, np.zeros((3, 4)))
    with pytest.raises(TypeError, match="v must be a real numeric array"):
        fx.cross_entropy_hvp(x, y, np.zeros((4, 3), complex))
    with pytest.raises(ValueError, match="overlap"):
        fx.cross_entropy_hvp(x, y, x.copy(), out=x)
    v = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match="overlap"):
        fx.cross_entropy_hvp(x, y, v, out=v)
    out = np.empty_like(x)
    assert fx.cross_entropy_hvp(x, y, v, out=out) is out
    # v in another dtype is read as input's
    assert_close(fx.cross_entropy_hvp(x.astype(np.float32), y, v),
                 fx.cross_entropy_hvp(x.astype(np.float32), y, v.astype(np.float32)), rtol=0)
    # grad_output of "none": the Hessian of sum(grad_output * loss)
    go = rng.standard_normal(4)
    assert_close(fx.cross_entropy_hvp(x, y, v, reduction="none", grad_output=go),
                 ref.cross_entropy_hvp(x, y, v, reduction="none", grad_output=go), rtol=1e-12,
                 atol=1e-15)


def test_empty_and_all_ignored(rng):
    x = rng.standard_normal((3, 4))
    y = np.full(3, -100)
    _, grad, hess = fx.cross_entropy(x, y, return_grad=True, return_hessian=True, reduction="sum")
    assert (hess == 0).all() and (grad == 0).all()
    loss, grad, hess = fx.cross_entropy(x, y, return_grad=True, return_hessian=True)
    assert np.isnan(loss) and (hess == 0).all() and (grad == 0).all()   # as PyTorch's grad
    e = np.zeros((0, 4))
    loss, grad, hess = fx.cross_entropy(e, np.zeros(0, int), return_grad=True, return_hessian=True)
    assert np.isnan(loss) and hess.shape == (0, 4)
    assert fx.cross_entropy_hvp(e, np.zeros(0, int), e).shape == (0, 4)


def test_cross_entropy_hvp_is_exported_and_documented():
    assert "cross_entropy_hvp" in fx.__all__
    assert fx.cross_entropy_hvp.__doc__ and "Examples" in fx.cross_entropy_hvp.__doc__
