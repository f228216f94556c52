"""Checks of the oracle itself, tests/reference.py: against SciPy, PyTorch autograd
(float64), its own finite differences and mpmath.

The first part guards what the rest of the suite compares fastxent with.  The
second part checks the references of version 0.2 (SPEC.md) before fastxent has
them, so that whoever builds a feature finds its oracle ready: sample weights,
diagonal Hessians and Hessian-vector products (against PyTorch's full Hessian),
z_loss and softcap, kl_div and sigmoid_focal_loss.
"""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from helpers import REDUCTIONS, assert_close, make_case, sample_shape, upstream


# ---- the functions fastxent has -------------------------------------------------------

def test_lse_reference_agrees_with_scipy():
    """The reference's logsumexp / softmax / log_softmax are scipy.special's."""
    special = pytest.importorskip("scipy.special")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 7)) * 5
    x[0, 1], x[1, :] = np.nan, -np.inf
    x[2, 3], x[3, 0], x[4, 2] = np.inf, -np.inf, 1e30
    with np.errstate(all="ignore"):
        for mode in ("logsumexp", "softmax", "log_softmax"):
            for axis in (0, 1, -1, None, (0, 1)):
                want = getattr(special, mode)(x, axis=axis)
                got = getattr(ref, mode)(x, axis)
                np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300, equal_nan=True)
        for keepdims in (False, True):
            for axis in (0, None, (0, 1)):
                np.testing.assert_array_equal(
                    np.shape(ref.logsumexp(x, axis, keepdims)),
                    np.shape(special.logsumexp(x, axis=axis, keepdims=keepdims)))


def test_weighted_lse_reference_agrees_with_scipy():
    """The reference's logsumexp(b=, return_sign=) is scipy.special's on finite
    input, and exact (mpmath) on sums that cancel."""
    special = pytest.importorskip("scipy.special")
    pytest.importorskip("mpmath")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 9)) * 5
    b = rng.standard_normal((7, 9))
    b[rng.random(b.shape) < 0.2] = 0.0
    with np.errstate(all="ignore"):
        for axis in (0, 1, None, (0, 1)):
            for return_sign in (False, True):
                want = special.logsumexp(x, axis=axis, b=b, return_sign=return_sign)
                got = ref.logsumexp(x, axis, b=b, return_sign=return_sign)
                np.testing.assert_allclose(got, want, rtol=1e-11, equal_nan=True)
    for row_x, row_b in zip(x, b):
        lse, sign = ref.logsumexp(row_x, b=row_b, return_sign=True)
        mp_lse, mp_sign = ref.mp_logsumexp_row(row_x, row_b)
        assert sign == mp_sign
        np.testing.assert_allclose(lse, mp_lse, rtol=1e-15)


def test_reference_matches_torch(torch):
    """The reference itself against PyTorch on a few finite cases (a check of the oracle)."""
    rng = np.random.default_rng(1)
    for trial in range(20):
        N, C = 5, 4
        x = rng.standard_normal((N, C, 2)) * 3
        idx = rng.integers(0, C, size=(N, 2))
        idx[0, 0] = -100
        w = rng.random(C) + 0.1
        eps = [0.0, 0.2][trial % 2]
        red = ["mean", "sum", "none"][trial % 3]
        tprob = rng.random((N, C, 2))
        for tgt in (idx, tprob):
            loss, grad = ref.cross_entropy(x, tgt, w, reduction=red, label_smoothing=eps,
                                           return_grad=True)
            xt = torch.tensor(x, requires_grad=True)
            lt = torch.nn.functional.cross_entropy(xt, torch.tensor(tgt), weight=torch.tensor(w),
                                                   reduction=red, label_smoothing=eps)
            lt.backward(torch.ones_like(lt))
            np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-12)
            np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)
        loss, grad = ref.nll_loss(x, idx, w, reduction=red, return_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        lt = torch.nn.functional.nll_loss(xt, torch.tensor(idx), weight=torch.tensor(w),
                                          reduction=red)
        lt.backward(torch.ones_like(lt))
        np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12)
    for name in ("binary_cross_entropy", "binary_cross_entropy_with_logits"):
        logits = name.endswith("logits")
        x = rng.standard_normal((4, 3)) * 4 if logits else rng.random((4, 3))
        t, w, pw = rng.random((4, 3)), rng.random(3) + 0.5, rng.random(3) + 0.5
        for red in ("mean", "sum", "none"):
            extra = {"pos_weight": pw} if logits else {}
            loss, grad = getattr(ref, name)(x, t, w, reduction=red, return_grad=True, **extra)
            xt = torch.tensor(x, requires_grad=True)
            lt = getattr(torch.nn.functional, name)(
                xt, torch.tensor(t), weight=torch.tensor(w), reduction=red,
                **{k: torch.tensor(v) for k, v in extra.items()})
            lt.backward(torch.ones_like(lt))
            np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-12)
            np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_reference_grad_is_derivative_of_reference_loss(rng):
    """The oracle's own analytic gradient agrees with its loss (guards the oracle)."""
    for target_kind in ("index", "prob"):
        x, t, w = make_case(rng, (2, 3, 2), None, target_kind, True, ignore=False)
        _, g = ref.cross_entropy(x, t, w, label_smoothing=0.3, return_grad=True)
        num = ref.numerical_grad(lambda z: ref.cross_entropy(z, t, w, label_smoothing=0.3), x)
        assert_close(g, num, rtol=1e-6, atol=1e-8)


def test_mpmath_references_agree_with_float64():
    """The mpmath references and the float64 ones, where float64 is exact enough."""
    pytest.importorskip("mpmath")
    row, w = [0.5, -1.0, 2.0, 0.25], [1.5, 0.5, 1.0, 2.0]
    for eps in (0.0, 0.3):
        loss, grad, _ = ref.mp_cross_entropy_row(row, 2, w, eps)
        want, want_grad = ref.cross_entropy(np.array(row), np.int64(2), w, label_smoothing=eps,
                                            reduction="sum", return_grad=True)
        assert_close(loss, want, rtol=1e-14)
        assert_close(grad, want_grad, rtol=1e-13, atol=1e-15)
    x = np.array([-30.0, -2.0, -1e-3, 0.0, 0.7, 5.0, 30.0])
    t = np.array([0.0, 1.0, 0.3, 1.0, 0.0, 0.5, 1.0])
    loss, grad = ref.mp_binary_cross_entropy_with_logits(x, t, 1.5)
    want, want_grad = ref.binary_cross_entropy_with_logits(x, t, pos_weight=1.5, reduction="none",
                                                           return_grad=True)
    assert_close(loss, want, rtol=1e-14)
    assert_close(grad, want_grad, rtol=1e-14)


# ---- version 0.2 references, ahead of fastxent ------------------------------------------

def _t(torch, a):
    return None if a is None else torch.tensor(np.asarray(a, np.float64))


def _torch_reduce(torch, loss_n, reduction, denom_n, sample_weight):
    """SPEC.md's reduction with sample weights, in torch: loss_n and its share of
    the mean's denominator both multiplied by the sample weight."""
    if sample_weight is not None:
        sw = _t(torch, sample_weight).expand(loss_n.shape)
        loss_n, denom_n = loss_n * sw, denom_n * sw
    if reduction == "none":
        return loss_n
    return loss_n.sum() if reduction == "sum" else loss_n.sum() / denom_n.sum()


def _torch_cross_entropy(torch, x, target, weight, *, ignore_index=-100, reduction="mean",
                         label_smoothing=0.0, sample_weight=None, z_loss=0.0, softcap=None):
    """cross_entropy with version 0.2's options, written in torch on a (N, C, ...)
    tensor ``x`` (class axis 1)."""
    F = torch.nn.functional
    if softcap is not None:
        x = softcap * torch.tanh(x / softcap)
    tt = torch.tensor(target) if target.dtype.kind in "iu" else _t(torch, target)
    loss_n = F.cross_entropy(x, tt, weight=_t(torch, weight), ignore_index=ignore_index,
                             reduction="none", label_smoothing=label_smoothing)
    if target.dtype.kind in "iu":
        keep = tt != ignore_index
        w = torch.ones(x.shape[1], dtype=x.dtype) if weight is None else _t(torch, weight)
        denom_n = torch.where(keep, w[torch.where(keep, tt, 0)], 0.0)
    else:
        keep = torch.ones(loss_n.shape, dtype=torch.bool)
        denom_n = torch.ones(loss_n.shape, dtype=x.dtype)
    if z_loss:
        lse = torch.logsumexp(x, dim=1)
        loss_n = loss_n + torch.where(keep, z_loss * lse ** 2, 0.0)
    return _torch_reduce(torch, loss_n, reduction, denom_n, sample_weight)


def _torch_derivatives(torch, f, x, go):
    """The loss ``f(x)``, the gradient, the diagonal and the full Hessian of
    ``sum(go * f(x))``, as float64 NumPy arrays shaped like ``x``."""
    xt = torch.tensor(x, requires_grad=True)
    loss = f(xt)
    got = _t(torch, go) if go is not None else torch.ones_like(loss)
    scalar = lambda z: (f(z) * got).sum()  # noqa: E731
    grad = torch.autograd.grad(scalar(xt), xt)[0].numpy()
    H = torch.autograd.functional.hessian(scalar, xt, vectorize=True)
    H = H.reshape(x.size, x.size).numpy()
    return loss.detach().numpy(), grad, np.diag(H).reshape(x.shape), H


V2_CASES = [   # (shape, target kind, label_smoothing, z_loss, softcap)
    ((4, 5), "index", 0.0, 0.0, None),
    ((3, 4, 2), "index", 0.2, 0.0, None),
    ((4, 5), "prob", 0.1, 0.0, None),
    ((4, 5), "index", 0.0, 1e-2, None),
    ((4, 5), "index", 0.1, 0.0, 3.0),
    ((3, 4, 2), "prob", 0.0, 0.05, 2.5),
    ((3, 4, 2), "index", 0.2, 0.3, 4.0),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, target_kind, eps, z_loss, softcap", V2_CASES)
def test_cross_entropy_v2_against_torch(torch, rng, shape, target_kind, eps, z_loss, softcap,
                                        reduction):
    """sample_weight, z_loss, softcap, return_hessian and cross_entropy_hvp."""
    x, t, w = make_case(rng, shape, None, target_kind, True)
    x = 3.0 * x
    ss = sample_shape(shape, None)
    sw = rng.uniform(0.0, 2.0, ss)
    go = upstream(rng, reduction, ss)
    v = rng.standard_normal(shape)
    opts = dict(reduction=reduction, label_smoothing=eps, sample_weight=sw, z_loss=z_loss,
                softcap=softcap)
    loss, grad, hess = ref.cross_entropy(x, t, w, return_hessian=True, grad_output=go, **opts)
    hvp = ref.cross_entropy_hvp(x, t, v, w, grad_output=go, **opts)
    t_loss, t_grad, t_hess, H = _torch_derivatives(
        torch, lambda z: _torch_cross_entropy(torch, z, t, w, **opts), x, go)
    assert_close(loss, t_loss, rtol=1e-12, atol=1e-14)
    assert_close(grad, t_grad, rtol=1e-10, atol=1e-14)
    assert_close(hess, t_hess, rtol=1e-10, atol=1e-14)
    assert_close(hvp, (H @ v.reshape(-1)).reshape(shape), rtol=1e-10, atol=1e-13)
    # without the new options: the loss and gradient of version 0.1
    plain = ref.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps,
                              return_grad=True, grad_output=go)
    with_ones = ref.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps,
                                  return_grad=True, grad_output=go, sample_weight=np.ones(ss))
    for a, b in zip(plain, with_ones):
        assert_close(a, b, rtol=1e-15)


def test_integer_sample_weights_repeat_samples():
    """SPEC.md: "mean" with integer sample weights equals repeating the samples."""
    rng = np.random.default_rng(3)
    x, y, w = make_case(rng, (6, 4), None, "index", True)
    sw = np.array([0, 1, 2, 3, 1, 2])
    rep = np.repeat(np.arange(6), sw)
    for fn in (ref.cross_entropy, ref.nll_loss):
        assert_close(fn(x, y, w, sample_weight=sw), fn(x[rep], y[rep], w), rtol=1e-14)
    p = 1 / (1 + np.exp(-x))
    t = rng.random(x.shape)
    swb = rng.integers(0, 3, x.shape)
    for fn, xx in ((ref.binary_cross_entropy_with_logits, x), (ref.binary_cross_entropy, p)):
        got = fn(xx, t, sample_weight=swb)
        want = fn(np.repeat(xx.ravel(), swb.ravel()), np.repeat(t.ravel(), swb.ravel()))
        assert_close(got, want, rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_sample_weight_against_torch(torch, rng, reduction):
    x, y, w = make_case(rng, (3, 4, 2), None, "index", True)
    sw = rng.uniform(0.0, 2.0, y.shape)
    go = upstream(rng, reduction, y.shape)
    loss, grad = ref.nll_loss(x, y, w, reduction=reduction, sample_weight=sw, return_grad=True,
                              grad_output=go)

    def f(z):
        loss_n = torch.nn.functional.nll_loss(z, torch.tensor(y), weight=_t(torch, w),
                                              reduction="none")
        keep = torch.tensor(y != -100)
        denom_n = torch.where(keep, _t(torch, w)[torch.tensor(np.where(y != -100, y, 0))], 0.0)
        return _torch_reduce(torch, loss_n, reduction, denom_n, sw)

    t_loss, t_grad, _, _ = _torch_derivatives(torch, f, x, go)
    assert_close(loss, t_loss, rtol=1e-13, atol=1e-15)
    assert_close(grad, t_grad, rtol=1e-13, atol=1e-15)


BINARY_OPERANDS = [   # (weight shape, pos_weight shape, sample_weight shape) for a (3, 4) input
    (None, None, None), ((4,), None, (3, 4)), ((3, 1), (4,), (3, 1)), ((), (3, 4), (4,)),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("w_shape, pw_shape, sw_shape", BINARY_OPERANDS)
def test_binary_v2_against_torch(torch, rng, w_shape, pw_shape, sw_shape, reduction):
    """sample_weight on both binary losses; the Hessian and its product for logits."""
    F = torch.nn.functional
    shape = (3, 4)
    x = 3.0 * rng.standard_normal(shape)
    p = rng.uniform(0.02, 0.98, shape)
    t = rng.random(shape)
    t.flat[::4] = 1.0
    w, pw, sw = (None if s is None else rng.uniform(0.5, 2.0, s)
                 for s in (w_shape, pw_shape, sw_shape))
    go = upstream(rng, reduction, shape)
    v = rng.standard_normal(shape)
    ones = lambda z: torch.ones(shape, dtype=z.dtype)  # noqa: E731

    loss, grad, hess = ref.binary_cross_entropy_with_logits(
        x, t, w, pos_weight=pw, reduction=reduction, sample_weight=sw, return_hessian=True,
        grad_output=go)
    hvp = ref.binary_cross_entropy_with_logits_hvp(x, t, v, w, pos_weight=pw, reduction=reduction,
                                                   sample_weight=sw, grad_output=go)
    t_loss, t_grad, t_hess, H = _torch_derivatives(torch, lambda z: _torch_reduce(
        torch, F.binary_cross_entropy_with_logits(z, _t(torch, t), _t(torch, w),
                                                  pos_weight=_t(torch, pw), reduction="none"),
        reduction, ones(z), sw), x, go)
    assert_close(loss, t_loss, rtol=1e-12, atol=1e-15)
    assert_close(grad, t_grad, rtol=1e-11, atol=1e-15)
    assert_close(hess, t_hess, rtol=1e-10, atol=1e-15)
    assert_close(hvp, (H @ v.reshape(-1)).reshape(shape), rtol=1e-10, atol=1e-14)

    loss, grad = ref.binary_cross_entropy(p, t, w, reduction=reduction, sample_weight=sw,
                                          return_grad=True, grad_output=go)
    wt = None if w is None else _t(torch, np.broadcast_to(w, shape))
    t_loss, t_grad, _, _ = _torch_derivatives(torch, lambda z: _torch_reduce(
        torch, F.binary_cross_entropy(z, _t(torch, t), wt, reduction="none"), reduction, ones(z),
        sw), p, go)
    assert_close(loss, t_loss, rtol=1e-12, atol=1e-15)
    assert_close(grad, t_grad, rtol=1e-11, atol=1e-15)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")   # PyTorch's advice
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
def test_kl_div_against_torch(torch, rng, reduction, log_target):
    x = np.log(rng.dirichlet(np.ones(5), size=4))
    t = rng.dirichlet(np.ones(5), size=4)
    if log_target:
        t = np.log(t)
    else:
        t[0, 1] = 0.0                               # xlogy(0, 0) = 0
    go = upstream(rng, reduction, x.shape)
    loss, grad = ref.kl_div(x, t, reduction=reduction, log_target=log_target, return_grad=True,
                            grad_output=go)
    t_loss, t_grad, _, _ = _torch_derivatives(torch, lambda z: torch.nn.functional.kl_div(
        z, _t(torch, t), reduction=reduction, log_target=log_target), x, go)
    assert_close(loss, t_loss, rtol=1e-13, atol=1e-15)
    assert_close(grad, t_grad, rtol=1e-13, atol=1e-15)


def _torchvision_focal(torch, x, t, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss's formula, in torch."""
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 2.0), (0.6, 0.0), (0.25, 1.5)])
def test_sigmoid_focal_loss_against_torch(torch, rng, alpha, gamma, reduction):
    x = 3.0 * rng.standard_normal((4, 5))
    t = (rng.random((4, 5)) < 0.3).astype(np.float64)
    t[0] = rng.random(5)                            # soft targets too
    go = upstream(rng, reduction, x.shape)
    loss, grad = ref.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction,
                                        return_grad=True, grad_output=go)
    t_loss, t_grad, _, _ = _torch_derivatives(
        torch, lambda z: _torchvision_focal(torch, z, _t(torch, t), alpha, gamma, reduction), x, go)
    assert_close(loss, t_loss, rtol=1e-12, atol=1e-15)
    assert_close(grad, t_grad, rtol=1e-11, atol=1e-15)


def _torch_distillation(torch, s, t, T, axis, reduction):
    """PyTorch's distillation recipe: kl_div of the softened log-softmaxes, times T**2."""
    F = torch.nn.functional
    dim = ref.class_axis(axis, s.dim())
    return F.kl_div(F.log_softmax(s / T, dim), F.log_softmax(t / T, dim), reduction=reduction,
                    log_target=True) * T * T


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")   # PyTorch's advice
@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean", "none"])
@pytest.mark.parametrize("shape, axis, T", [((4, 5), None, 1.0), ((4, 5), None, 2.5),
                                            ((3, 4, 2), None, 0.7), ((2, 3, 6), -1, 4.0),
                                            ((6,), None, 2.0)])
def test_distillation_loss_against_torch(torch, rng, shape, axis, T, reduction):
    s, t = 3.0 * rng.standard_normal(shape), 3.0 * rng.standard_normal(shape)
    go = upstream(rng, reduction, shape)
    loss, grad = ref.distillation_loss(s, t, temperature=T, axis=axis, reduction=reduction,
                                       return_grad=True, grad_output=go)
    t_loss, t_grad, _, _ = _torch_derivatives(
        torch, lambda z: _torch_distillation(torch, z, _t(torch, t), T, axis, reduction), s, go)
    assert_close(loss, t_loss, rtol=1e-12, atol=1e-14)
    assert_close(grad, t_grad, rtol=1e-11, atol=1e-14)


def test_distillation_reference_masked_classes(torch):
    """A class of teacher probability 0 adds 0 to the loss, even where the
    student's log-probability is -inf (PyTorch's recipe: NaN); elsewhere the
    recipe's values."""
    s = np.array([[1.0, -np.inf, 0.5, 2.0], [0.0, 1.0, 2.0, 3.0]])
    t = np.array([[2.0, -np.inf, -np.inf, 1.0], [1.0, 0.0, -1.0, 2.0]])
    loss, grad = ref.distillation_loss(s, t, temperature=2.0, reduction="none", return_grad=True)
    assert loss[0, 1] == 0.0 and loss[0, 2] == 0.0 and np.isfinite(loss).all()
    recipe = _torch_distillation(torch, _t(torch, s), _t(torch, t), 2.0, None, "none").numpy()
    assert np.isnan(recipe[0, 1])
    keep = np.isfinite(recipe)
    assert_close(loss[keep], recipe[keep], rtol=1e-13, atol=1e-15)
    s_fin = np.where(np.isfinite(s), s, -500.0)       # the same but finite: gradients agree
    _, g_fin = ref.distillation_loss(s_fin, t, temperature=2.0, return_grad=True)
    _, g = ref.distillation_loss(s, t, temperature=2.0, return_grad=True)
    assert_close(g, g_fin, rtol=1e-12, atol=1e-12)
