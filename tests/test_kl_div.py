"""Tests of kl_div and KLDivLoss (issue 16).

Oracles: the float64 reference (tests/reference.py, itself checked against
PyTorch in test_reference.py), PyTorch's torch.nn.functional.kl_div and its
autograd where installed, and central finite differences.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import TORCH_RTOL, assert_close, assert_within_scale

DTYPES = (np.float16, np.float32, np.float64)
KL_REDUCTIONS = ("mean", "batchmean", "sum", "none")
SHAPES = ((), (7,), (4, 5), (3, 4, 2))


def make_data(rng, shape, log_target, dtype=np.float64):
    """Log-probabilities and targets (probabilities with some exact 0s, or their logs)."""
    x = np.log(rng.uniform(0.01, 1.0, shape))
    t = rng.uniform(0.0, 1.0, shape)
    if log_target:
        t = np.log(t + 0.01)
    elif t.size:
        t.flat[::4] = 0.0                                 # xlogy(0, 0) = 0
    return x.astype(dtype), t.astype(dtype)


def upstream(rng, reduction, shape):
    return rng.standard_normal(shape) if reduction == "none" else 0.75


# ---- values against the reference, every option ----------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kl_div_matches_reference(rng, shape, reduction, log_target, dtype):
    x, t = make_data(rng, shape, log_target, dtype)
    go = upstream(rng, reduction, shape)
    loss, grad = fx.kl_div(x, t, reduction=reduction, log_target=log_target, return_grad=True,
                           grad_output=go)
    res = ref.kl_div(x, t, reduction=reduction, log_target=log_target, grad_output=go,
                     details=True)
    assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == shape
    assert np.shape(loss) == (shape if reduction == "none" else ())
    assert_within_scale(loss, res.loss, res.loss_scale, dtype)
    assert_within_scale(grad, res.grad, res.grad_scale, dtype)
    alone = fx.kl_div(x, t, reduction=reduction, log_target=log_target)
    np.testing.assert_array_equal(alone, loss)            # the same pass without the gradient


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")   # PyTorch's advice
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
def test_kl_div_against_torch_autograd(torch, rng, reduction, log_target, dtype):
    x, t = make_data(rng, (6, 5), log_target, dtype)
    go = upstream(rng, reduction, x.shape)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.kl_div(xt, torch.tensor(t), reduction=reduction,
                                    log_target=log_target)
    lt.backward(torch.tensor(np.asarray(go, dtype)).reshape(lt.shape))
    loss, grad = fx.kl_div(x, t, reduction=reduction, log_target=log_target, return_grad=True,
                           grad_output=go)
    rtol = TORCH_RTOL[np.dtype(dtype)]
    scale = float(np.abs(lt.detach().numpy()).max()) if reduction == "none" else 1.0
    assert_close(loss, lt.detach().numpy(), rtol=rtol, atol=rtol * scale)
    assert_close(grad, xt.grad.numpy(), rtol=rtol, atol=1e-30)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum"])
def test_kl_div_gradient_is_finite_differences(rng, reduction, log_target):
    x, t = make_data(rng, (3, 4), log_target)
    loss, grad = fx.kl_div(x, t, reduction=reduction, log_target=log_target, return_grad=True)
    num = ref.numerical_grad(lambda z: fx.kl_div(z, t, reduction=reduction,
                                                 log_target=log_target), x)
    assert_close(grad, num, rtol=1e-7, atol=1e-8)


def test_kl_div_none_gradient_is_that_of_the_weighted_sum(rng):
    x, t = make_data(rng, (3, 4), False)
    go = rng.standard_normal(x.shape)
    _, grad = fx.kl_div(x, t, reduction="none", return_grad=True, grad_output=go)
    num = ref.numerical_grad(lambda z: np.sum(go * fx.kl_div(z, t, reduction="none")), x)
    assert_close(grad, num, rtol=1e-7, atol=1e-8)


# ---- the conventions --------------------------------------------------------------

def test_kl_div_zero_target_adds_zero():
    """xlogy(0, 0) = 0: a target of 0 adds 0 for any finite input; 0 times an
    infinite input is NaN, as in PyTorch."""
    x = np.array([-1.0, -50.0, -np.inf, np.inf, -2.0])
    t = np.array([0.0, 0.0, 0.0, 0.0, 0.5])
    loss = fx.kl_div(x, t, reduction="none")
    assert loss[0] == 0.0 and loss[1] == 0.0
    assert np.isnan(loss[2]) and np.isnan(loss[3])
    assert loss[4] == pytest.approx(0.5 * (np.log(0.5) + 2.0), rel=1e-15)
    _, grad = fx.kl_div(x, t, reduction="sum", return_grad=True)
    np.testing.assert_array_equal(grad, -t)


def test_kl_div_zero_target_matches_torch(torch):
    x = np.array([[-1.0, -np.inf, np.inf], [-2.0, -3.0, -0.5]])
    t = np.array([[0.0, 0.0, 0.0], [0.2, 0.0, 0.8]])
    want = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), reduction="none")
    assert_close(fx.kl_div(x, t, reduction="none"), want.numpy(), rtol=1e-15)


def test_kl_div_log_target_underflow_is_finite():
    """With log_target a target of -800 (a probability that underflows) adds
    exp(-800) (t - x) = 0, not NaN."""
    x = np.array([-1.0, -2.0])
    t = np.array([-800.0, np.log(0.5)])
    loss = fx.kl_div(x, t, reduction="none", log_target=True)
    assert loss[0] == 0.0 and loss[1] == pytest.approx(0.5 * (np.log(0.5) + 2.0), rel=1e-15)


def test_kl_div_negative_target_is_nan_as_torch(torch):
    x, t = np.array([-1.0, -1.0]), np.array([-0.5, 0.5])
    got = fx.kl_div(x, t, reduction="none")
    want = torch.nn.functional.kl_div(torch.tensor(x), torch.tensor(t), reduction="none").numpy()
    assert np.isnan(got[0]) and np.isnan(want[0])
    assert got[1] == pytest.approx(want[1], rel=1e-15)


def test_kl_div_batchmean_divides_by_the_first_axis(rng):
    x, t = make_data(rng, (3, 4, 5), False)
    total = fx.kl_div(x, t, reduction="sum")
    assert fx.kl_div(x, t, reduction="batchmean") == pytest.approx(total / 3, rel=1e-15)
    assert fx.kl_div(x, t, reduction="mean") == pytest.approx(total / 60, rel=1e-15)
    assert float(fx.kl_div(-1.0, 0.5, reduction="batchmean")) == pytest.approx(
        0.5 * (np.log(0.5) + 1.0), rel=1e-15)          # 0-d: the sum


@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
def test_kl_div_empty_input(reduction):
    x = np.empty((0, 3))
    loss, grad = fx.kl_div(x, x, reduction=reduction, return_grad=True)
    assert grad.shape == (0, 3)
    if reduction == "none":
        assert loss.shape == (0, 3)
    elif reduction == "sum":
        assert loss == 0.0
    else:
        assert np.isnan(loss)                             # 0 / 0, as PyTorch


def test_kl_div_no_warning_for_mean():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fx.kl_div(np.log([0.5, 0.5]), [0.5, 0.5])          # PyTorch warns here; fastxent does not


# ---- buffers, threads, layouts ------------------------------------------------------

def test_kl_div_out_receives_the_gradient(rng):
    x, t = make_data(rng, (4, 5), False, np.float32)
    out = np.full_like(x, np.nan)
    loss, grad = fx.kl_div(x, t, reduction="batchmean", return_grad=True, out=out)
    assert grad is out
    np.testing.assert_array_equal(out, fx.kl_div(x, t, reduction="batchmean", return_grad=True)[1])


def test_kl_div_is_bitwise_the_same_for_every_thread_count(rng):
    x, t = make_data(rng, (300, 1000), False, np.float32)
    want = fx.kl_div(x, t, reduction="batchmean", return_grad=True, n_threads=1)
    for n in (2, 3, 8):
        got = fx.kl_div(x, t, reduction="batchmean", return_grad=True, n_threads=n)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


def test_kl_div_odd_layouts_and_dtypes(rng):
    x, t = make_data(rng, (6, 8), False)
    want = fx.kl_div(x, t, reduction="none")
    np.testing.assert_array_equal(fx.kl_div(np.asfortranarray(x), t[:, ::-1][:, ::-1],
                                            reduction="none"), want)
    xs = x.astype(x.dtype.newbyteorder())
    np.testing.assert_array_equal(fx.kl_div(xs, t, reduction="none"), want)
    x.setflags(write=False)
    t.setflags(write=False)
    np.testing.assert_array_equal(fx.kl_div(x, t, reduction="none"), want)
    ti = (t > 0.5).astype(np.int32)                        # any real target dtype
    assert_close(fx.kl_div(x, ti, reduction="none"), ref.kl_div(x, ti, reduction="none"),
                 rtol=1e-15)


def test_kl_div_does_not_modify_its_inputs(rng):
    x, t = make_data(rng, (5, 6), False)
    go = rng.standard_normal(x.shape)
    copies = [a.copy() for a in (x, t, go)]
    fx.kl_div(x, t, reduction="none", return_grad=True, grad_output=go)
    for a, c in zip((x, t, go), copies):
        np.testing.assert_array_equal(a, c)


# ---- bad input ----------------------------------------------------------------------

def test_kl_div_target_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"target must have the input's shape \(2, 3\), got target \(3,\)"):
        fx.kl_div(np.zeros((2, 3)), np.zeros(3))


@pytest.mark.parametrize("reduction", ["avg", "elementwise_mean", None, 1])
def test_kl_div_unknown_reduction(reduction):
    with pytest.raises(ValueError, match="'mean', 'batchmean', 'sum', 'none'"):
        fx.kl_div(np.zeros(3), np.zeros(3), reduction=reduction)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_kl_div_log_target_must_be_a_bool(value):
    with pytest.raises(TypeError, match="log_target must be True or False"):
        fx.kl_div(np.zeros(3), np.zeros(3), log_target=value)


@pytest.mark.parametrize("x, t, err", [
    (np.zeros(3, np.int64), np.zeros(3), TypeError),         # integer input
    (np.zeros(3), np.zeros(3, bool), TypeError),             # bool target
    (np.zeros(3), np.array(["a", "b", "c"]), TypeError),
])
def test_kl_div_bad_dtypes(x, t, err):
    with pytest.raises(err):
        fx.kl_div(x, t)


def test_kl_div_bad_grad_output_and_out(rng):
    x, t = make_data(rng, (2, 3), False)
    with pytest.raises(ValueError, match="grad_output must have the loss's shape"):
        fx.kl_div(x, t, reduction="none", return_grad=True, grad_output=np.ones(3))
    with pytest.raises(ValueError, match="grad_output must have the loss's shape"):
        fx.kl_div(x, t, reduction="batchmean", return_grad=True, grad_output=np.ones(2))
    with pytest.raises(ValueError, match="only with return_grad=True"):
        fx.kl_div(x, t, grad_output=1.0)
    with pytest.raises(ValueError, match="must not overlap"):
        fx.kl_div(x, t, return_grad=True, out=x)
    with pytest.raises(TypeError, match="out must have the input's dtype"):
        fx.kl_div(x, t, return_grad=True, out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="n_threads"):
        fx.kl_div(x, t, n_threads=0)


# ---- KLDivLoss ----------------------------------------------------------------------

def test_kl_div_loss_class_runs_the_function(rng):
    x, t = make_data(rng, (4, 5), True)
    loss_fn = fx.KLDivLoss(reduction="batchmean", log_target=True)
    got = loss_fn(x, t, return_grad=True, grad_output=2.0)
    want = fx.kl_div(x, t, reduction="batchmean", log_target=True, return_grad=True,
                     grad_output=2.0)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    loss_fn.reduction = "none"
    loss_fn.log_target = False
    np.testing.assert_array_equal(loss_fn(x, np.exp(t)), fx.kl_div(x, np.exp(t), reduction="none"))
    assert repr(loss_fn) == "KLDivLoss(reduction='none', log_target=False, n_threads=None)"


def test_kl_div_loss_class_checks_its_options():
    loss_fn = fx.KLDivLoss()
    assert loss_fn.reduction == "mean" and loss_fn.log_target is False
    with pytest.raises(ValueError, match="batchmean"):
        loss_fn.reduction = "avg"
    with pytest.raises(TypeError, match="log_target"):
        loss_fn.log_target = "yes"
    with pytest.raises(AttributeError):
        loss_fn.log_targets = True                         # misspelled: no silent no-op
    with pytest.raises(TypeError):
        loss_fn(np.zeros(3), np.zeros(3), True)            # return_grad is keyword-only
    with pytest.raises(ValueError, match="batchmean"):
        fx.KLDivLoss(reduction="elementwise_mean")
    assert loss_fn.reduction == "mean"                     # a refused value is not stored
