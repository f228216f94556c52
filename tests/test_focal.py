"""Tests of sigmoid_focal_loss and SigmoidFocalLoss (issue 16).

Oracles: the float64 reference (tests/reference.py), PyTorch autograd through
torchvision's documented formula written in float64 torch (torchvision itself
is not installed beside torch here), mpmath at extreme logits, central finite
differences, and fastxent's own binary_cross_entropy_with_logits for gamma=0.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import REDUCTIONS, assert_close, assert_within_scale

DTYPES = (np.float16, np.float32, np.float64)
ALPHAS = (0.25, -1.0, 0.0, 1.0, 0.6)
GAMMAS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def make_data(rng, shape, dtype=np.float64, scale=4.0):
    """Logits and targets: mostly 0/1 labels, some soft ones."""
    x = scale * rng.standard_normal(shape)
    t = (rng.random(shape) < 0.3).astype(np.float64)
    if t.size:
        t.flat[::5] = rng.random(t.flat[::5].shape)
    return x.astype(dtype), t.astype(dtype)


def upstream(rng, reduction, shape):
    return rng.standard_normal(shape) if reduction == "none" else 0.75


def torchvision_formula(torch, x, t, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss as documented, in torch."""
    p = torch.sigmoid(x)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]


# ---- values against the reference, every option ----------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", GAMMAS)
@pytest.mark.parametrize("alpha", ALPHAS)
def test_focal_matches_reference(rng, alpha, gamma, reduction, dtype):
    x, t = make_data(rng, (7, 9), dtype)
    go = upstream(rng, reduction, x.shape)
    loss, grad = fx.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction,
                                       return_grad=True, grad_output=go)
    res = ref.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction,
                                 grad_output=go, details=True)
    assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == x.shape
    assert np.shape(loss) == (x.shape if reduction == "none" else ())
    assert_within_scale(loss, res.loss, res.loss_scale, dtype)
    assert_within_scale(grad, res.grad, res.grad_scale, dtype)
    alone = fx.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction)
    assert_within_scale(alone, res.loss, res.loss_scale, dtype)


@pytest.mark.parametrize("shape", [(), (1,), (5000,), (3, 4, 5)], ids=str)
def test_focal_any_shape(rng, shape):
    x, t = make_data(rng, shape)
    loss, grad = fx.sigmoid_focal_loss(x, t, return_grad=True)
    res = ref.sigmoid_focal_loss(x, t, details=True)
    assert loss.shape == shape and grad.shape == shape
    assert_within_scale(loss, res.loss, res.loss_scale, np.float64)
    assert_within_scale(grad, res.grad, res.grad_scale, np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 2.0), (0.6, 0.0), (0.25, 1.5),
                                          (0.5, 5.0), (0.1, 0.5)])
def test_focal_against_torchvision_formula_autograd(torch, rng, alpha, gamma, reduction, dtype):
    x, t = make_data(rng, (6, 8))
    go = upstream(rng, reduction, x.shape)
    xt = torch.tensor(x, requires_grad=True)                 # float64 torch: the oracle
    lt = torchvision_formula(torch, xt, torch.tensor(t), alpha, gamma, reduction)
    lt.backward(torch.tensor(np.asarray(go, np.float64)).reshape(lt.shape))
    loss, grad = fx.sigmoid_focal_loss(x.astype(dtype), t.astype(dtype), alpha=alpha, gamma=gamma,
                                       reduction=reduction, return_grad=True, grad_output=go)
    # fastxent in float32 from inputs rounded to float32: a few ulp of float32
    # per element, and the inputs' rounding (|x| <= 20: 1e-6 relative)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    want, want_grad = lt.detach().numpy(), xt.grad.numpy()
    assert_close(loss, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))
    assert_close(grad, want_grad, rtol=rtol, atol=rtol * float(np.abs(want_grad).max()))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (-1.0, 0.5), (0.7, 3.0), (0.25, 0.0)])
def test_focal_gradient_is_finite_differences(rng, alpha, gamma, reduction):
    x, t = make_data(rng, (3, 5), scale=2.0)
    loss, grad = fx.sigmoid_focal_loss(x, t, alpha=alpha, gamma=gamma, reduction=reduction,
                                       return_grad=True)
    num = ref.numerical_grad(lambda z: fx.sigmoid_focal_loss(z, t, alpha=alpha, gamma=gamma,
                                                             reduction=reduction), x)
    assert_close(grad, num, rtol=1e-6, atol=1e-9)


def test_focal_none_gradient_is_that_of_the_weighted_sum(rng):
    x, t = make_data(rng, (3, 5), scale=2.0)
    go = rng.standard_normal(x.shape)
    _, grad = fx.sigmoid_focal_loss(x, t, gamma=1.5, return_grad=True, grad_output=go)
    num = ref.numerical_grad(lambda z: np.sum(go * fx.sigmoid_focal_loss(z, t, gamma=1.5)), x)
    assert_close(grad, num, rtol=1e-6, atol=1e-9)


# ---- what it reduces to, and its extremes -----------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_focal_gamma_0_without_alpha_is_bce_with_logits(rng, reduction, dtype):
    x, t = make_data(rng, (20, 30), dtype)
    got = fx.sigmoid_focal_loss(x, t, alpha=-1.0, gamma=0.0, reduction=reduction, return_grad=True)
    want = fx.binary_cross_entropy_with_logits(x, t, reduction=reduction, return_grad=True)
    rtol = 1e-15 if dtype == np.float64 else 1e-6
    for a, b in zip(got, want):
        assert_close(a, b, rtol=rtol, atol=rtol * float(np.abs(b).max()))
    w = 0.3 * t + 0.7 * (1 - t)                               # alpha = 0.3: BCE weighted so
    got = fx.sigmoid_focal_loss(x, t, alpha=0.3, gamma=0.0, reduction=reduction)
    want = fx.binary_cross_entropy_with_logits(x, t, weight=w, reduction=reduction)
    assert_close(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("gamma", GAMMAS)
def test_focal_is_stable_for_large_logits(dtype, gamma):
    """No overflow, no NaN and full precision at large |x|, against the mpmath
    values of BCE times (1 - p_t)**gamma (0/1 labels and soft ones)."""
    mpmath = pytest.importorskip("mpmath")
    x = np.array([30.0, -30.0, 80.0, -80.0, 1e4, -1e4, 200.0, -200.0, 17.0, -17.0])
    for tv in (0.0, 1.0, 0.3):
        t = np.full_like(x, tv)
        loss, grad = fx.sigmoid_focal_loss(x.astype(dtype), t.astype(dtype), alpha=0.25,
                                           gamma=gamma, return_grad=True)
        assert np.isfinite(loss).all() and np.isfinite(grad).all(), (tv, loss, grad)
        with mpmath.workprec(300):
            want, want_g = [], []
            for xi in x:
                xm, tm, g = mpmath.mpf(float(xi)), mpmath.mpf(tv), mpmath.mpf(gamma)
                s = 1 / (1 + mpmath.exp(-xm))
                sm = 1 / (1 + mpmath.exp(xm))
                ce = (1 - tm) * mpmath.log1p(mpmath.exp(xm)) if xm < 0 else \
                    (1 - tm) * (xm + mpmath.log1p(mpmath.exp(-xm)))
                ce += tm * (mpmath.log1p(mpmath.exp(-xm)) if xm > 0 else -xm + mpmath.log1p(mpmath.exp(xm)))
                m = (1 - tm) * s + tm * sm
                a = mpmath.mpf(0.25) * tm + mpmath.mpf(0.75) * (1 - tm)
                mg = m ** g if g else mpmath.mpf(1)
                want.append(float(a * ce * mg))
                dm = g * m ** (g - 1) * s * sm * (1 - 2 * tm) if g else mpmath.mpf(0)
                want_g.append(float(a * (((1 - tm) * s - tm * sm) * mg + ce * dm)))
        ulps = 64 if dtype == np.float32 else 16
        eps = np.finfo(dtype).eps
        tiny = np.finfo(dtype).tiny
        # relative precision where the result is a normal number of the dtype
        assert_close(loss, want, rtol=ulps * eps, atol=tiny, err_msg=f"t={tv}")
        assert_close(grad, want_g, rtol=ulps * eps, atol=tiny, err_msg=f"t={tv}")


def test_focal_minus_inf_logit_is_nan_as_torchvision(torch):
    x = np.array([-np.inf, 0.5])
    t = np.array([0.0, 1.0])
    got = fx.sigmoid_focal_loss(x, t)
    want = torchvision_formula(torch, torch.tensor(x), torch.tensor(t), 0.25, 2.0, "none").numpy()
    assert np.isnan(got[0]) and np.isnan(want[0])
    assert got[1] == pytest.approx(want[1], rel=1e-14)


def test_focal_alpha_weights_positives_and_negatives(rng):
    x, _ = make_data(rng, (10,))
    pos, neg = np.ones(10), np.zeros(10)
    assert np.all(fx.sigmoid_focal_loss(x, pos, alpha=0.0) == 0.0)     # only negatives count
    assert np.all(fx.sigmoid_focal_loss(x, neg, alpha=1.0) == 0.0)     # only positives count
    assert_close(fx.sigmoid_focal_loss(x, pos, alpha=0.25) * 4,
                 fx.sigmoid_focal_loss(x, pos, alpha=-5.0), rtol=1e-15)  # < 0: no weighting


# ---- buffers, threads ---------------------------------------------------------------

def test_focal_out_receives_the_gradient(rng):
    x, t = make_data(rng, (4, 5), np.float32)
    out = np.full_like(x, np.nan)
    loss, grad = fx.sigmoid_focal_loss(x, t, reduction="mean", return_grad=True, out=out)
    assert grad is out
    np.testing.assert_array_equal(out, fx.sigmoid_focal_loss(x, t, reduction="mean",
                                                             return_grad=True)[1])


@pytest.mark.parametrize("gamma", [2.0, 1.5])
def test_focal_is_bitwise_the_same_for_every_thread_count(rng, gamma):
    x, t = make_data(rng, (300000,), np.float32)
    want = fx.sigmoid_focal_loss(x, t, gamma=gamma, reduction="mean", return_grad=True,
                                 n_threads=1)
    for n in (2, 3, 8):
        got = fx.sigmoid_focal_loss(x, t, gamma=gamma, reduction="mean", return_grad=True,
                                    n_threads=n)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


def test_focal_odd_layouts_and_no_modification(rng):
    x, t = make_data(rng, (6, 8))
    want = fx.sigmoid_focal_loss(x, t, return_grad=True)
    copies = (x.copy(), t.copy())
    got = fx.sigmoid_focal_loss(np.asfortranarray(x), t.astype(t.dtype.newbyteorder()),
                                return_grad=True)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(t, copies[1])
    ti = (t > 0.5).astype(np.int8)                             # any real target dtype
    assert_close(fx.sigmoid_focal_loss(x, ti), ref.sigmoid_focal_loss(x, ti), rtol=1e-13,
                 atol=1e-300)


# ---- bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("bad", [1.5, -0.1, np.nan])
def test_focal_targets_outside_unit_interval(bad):
    x = np.zeros((3, 4))
    t = np.zeros((3, 4))
    t[2, 1] = bad
    t[2, 3] = bad
    with pytest.raises(ValueError, match=r"2 value\(s\) of target are outside \[0, 1\]; "
                                         r"the first is .* at index \(2, 1\)"):
        fx.sigmoid_focal_loss(x, t)


@pytest.mark.parametrize("name, value, err, match", [
    ("alpha", np.inf, ValueError, "alpha must be a finite number"),
    ("alpha", np.nan, ValueError, "alpha must be a finite number"),
    ("alpha", True, TypeError, "alpha must be a finite number"),
    ("alpha", "0.25", TypeError, "alpha must be a finite number"),
    ("gamma", -0.5, ValueError, "gamma must be a finite number >= 0"),
    ("gamma", np.inf, ValueError, "gamma must be a finite number >= 0"),
    ("gamma", None, TypeError, "gamma must be a finite number >= 0"),
    ("reduction", "batchmean", ValueError, "reduction must be one of 'mean', 'sum', 'none'"),
    ("return_grad", 1, TypeError, "return_grad must be True or False"),
    ("n_threads", 0, ValueError, "n_threads"),
])
def test_focal_bad_options(name, value, err, match):
    with pytest.raises(err, match=match):
        fx.sigmoid_focal_loss(np.zeros(3), np.zeros(3), **{name: value})


def test_focal_bad_arrays():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match=r"target must have the input's shape \(2, 3\), got target \(3,\)"):
        fx.sigmoid_focal_loss(x, np.zeros(3))
    with pytest.raises(TypeError, match="input must be a float16, float32 or float64"):
        fx.sigmoid_focal_loss(np.zeros(3, np.int32), np.zeros(3))
    with pytest.raises(TypeError, match="target must be a real numeric array"):
        fx.sigmoid_focal_loss(np.zeros(3), np.zeros(3, bool))
    with pytest.raises(ValueError, match="grad_output must have the loss's shape"):
        fx.sigmoid_focal_loss(x, x, return_grad=True, grad_output=1.0)
    with pytest.raises(ValueError, match="must not overlap"):
        fx.sigmoid_focal_loss(x, x.copy(), return_grad=True, out=x)


# ---- SigmoidFocalLoss -----------------------------------------------------------------

def test_focal_loss_class_runs_the_function(rng):
    x, t = make_data(rng, (4, 5))
    loss_fn = fx.SigmoidFocalLoss(alpha=0.5, gamma=1.5, reduction="sum")
    got = loss_fn(x, t, return_grad=True, grad_output=2.0)
    want = fx.sigmoid_focal_loss(x, t, alpha=0.5, gamma=1.5, reduction="sum", return_grad=True,
                                 grad_output=2.0)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    loss_fn.gamma = 0
    loss_fn.alpha = -1
    loss_fn.reduction = "none"
    np.testing.assert_array_equal(loss_fn(x, t), fx.sigmoid_focal_loss(x, t, alpha=-1, gamma=0))
    assert repr(loss_fn) == "SigmoidFocalLoss(alpha=-1.0, gamma=0.0, reduction='none', n_threads=None)"


def test_focal_loss_class_checks_its_options():
    loss_fn = fx.SigmoidFocalLoss()
    assert (loss_fn.alpha, loss_fn.gamma, loss_fn.reduction) == (0.25, 2.0, "none")
    with pytest.raises(ValueError, match="gamma"):
        loss_fn.gamma = -1.0
    with pytest.raises(TypeError, match="alpha"):
        loss_fn.alpha = "half"
    with pytest.raises(ValueError, match="reduction"):
        loss_fn.reduction = "batchmean"
    with pytest.raises(AttributeError):
        loss_fn.gama = 1.0
    with pytest.raises(TypeError):
        loss_fn(np.zeros(3), np.zeros(3), True)            # return_grad is keyword-only
    assert (loss_fn.alpha, loss_fn.gamma) == (0.25, 2.0)   # refused values are not stored
