"""Tests of distillation_loss (issue 16): T^2 KL(softmax(t / T) || softmax(s / T))
from logits, in one fused pass.

Oracles: the float64 reference (tests/reference.py, checked against PyTorch's
recipe in test_reference.py), PyTorch autograd through the recipe
``F.kl_div(F.log_softmax(s / T), F.log_softmax(t / T), log_target=True) * T**2``
where installed, and central finite differences.  The layouts cover each path
of the kernel: rows (class axis contiguous, more than 32 classes), transposed
tiles of few-class rows, strided tiles (a class axis before others), and long
rows.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import TORCH_RTOL, assert_close, assert_grad_close, assert_within_scale

DTYPES = (np.float16, np.float32, np.float64)
KL_REDUCTIONS = ("batchmean", "sum", "mean", "none")
# (shape, axis): rows of many classes, few classes, strided tiles, 1-D, axis=-1,
# a class axis in the middle of four, more positions than one tile
LAYOUTS = [((6, 40), None), ((70, 5), None), ((3, 4, 7), None), ((9,), None),
           ((2, 3, 50), -1), ((2, 3, 5, 4), 2), ((2, 6, 80), 1)]


def make_logits(rng, shape, dtype=np.float64, scale=3.0):
    s = scale * rng.standard_normal(shape)
    t = s + scale * rng.standard_normal(shape)          # a teacher that is not unrelated
    return s.astype(dtype), t.astype(dtype)


def upstream(rng, reduction, shape):
    return rng.standard_normal(shape) if reduction == "none" else 0.75


# ---- values against the reference, every option ----------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@pytest.mark.parametrize("T", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("shape, axis", LAYOUTS, ids=str)
def test_distillation_matches_reference(rng, shape, axis, T, reduction, dtype):
    s, t = make_logits(rng, shape, dtype)
    go = upstream(rng, reduction, shape)
    loss, grad = fx.distillation_loss(s, t, temperature=T, axis=axis, reduction=reduction,
                                      return_grad=True, grad_output=go)
    res = ref.distillation_loss(s, t, temperature=T, axis=axis, reduction=reduction,
                                grad_output=go, details=True)
    assert loss.dtype == dtype and grad.dtype == dtype and grad.shape == shape
    assert np.shape(loss) == (shape if reduction == "none" else ())
    assert_within_scale(loss, res.loss, res.loss_scale, dtype)
    assert_within_scale(grad, res.grad, res.grad_scale, dtype)
    alone = fx.distillation_loss(s, t, temperature=T, axis=axis, reduction=reduction)
    assert_within_scale(alone, res.loss, res.loss_scale, dtype)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")   # PyTorch's advice
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
@pytest.mark.parametrize("shape, axis, T", [((8, 40), None, 2.0), ((64, 10), None, 4.0),
                                            ((2, 5, 6), 1, 1.0), ((2, 3, 40), -1, 3.0)])
def test_distillation_against_torch_recipe(torch, rng, shape, axis, T, reduction, dtype):
    F = torch.nn.functional
    s, t = make_logits(rng, shape, dtype)
    go = upstream(rng, reduction, shape)
    dim = ref.class_axis(axis, len(shape))
    st = torch.tensor(s, requires_grad=True)
    lt = F.kl_div(F.log_softmax(st / T, dim), F.log_softmax(torch.tensor(t) / T, dim),
                  reduction=reduction, log_target=True) * T * T
    lt.backward(torch.tensor(np.asarray(go, dtype)).reshape(lt.shape))
    loss, grad = fx.distillation_loss(s, t, temperature=T, axis=axis, reduction=reduction,
                                      return_grad=True, grad_output=go)
    rtol = TORCH_RTOL[np.dtype(dtype)]
    want = lt.detach().numpy()
    # elementwise terms cancel (p_t (log p_t - log p_s)): absolute error relative to
    # the largest log-probability's size
    assert_close(loss, want, rtol=rtol, atol=50 * rtol * T * T * max(1.0, float(np.abs(want).max())))
    assert_grad_close(grad, st.grad.numpy(), dtype, rel=10.0)


@pytest.mark.parametrize("reduction", ["batchmean", "sum", "mean"])
@pytest.mark.parametrize("shape, axis, T", [((3, 4), None, 1.0), ((2, 3, 2), None, 2.5),
                                            ((2, 40), None, 0.7)])
def test_distillation_gradient_is_finite_differences(rng, shape, axis, T, reduction):
    s, t = make_logits(rng, shape, scale=1.0)
    loss, grad = fx.distillation_loss(s, t, temperature=T, axis=axis, reduction=reduction,
                                      return_grad=True)
    num = ref.numerical_grad(lambda z: fx.distillation_loss(z, t, temperature=T, axis=axis,
                                                            reduction=reduction), s)
    assert_close(grad, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("shape, axis", [((3, 4), None), ((2, 3, 2), 1), ((4, 40), None)])
def test_distillation_none_gradient_is_that_of_the_weighted_sum(rng, shape, axis):
    s, t = make_logits(rng, shape, scale=1.0)
    go = rng.standard_normal(shape)
    _, grad = fx.distillation_loss(s, t, temperature=1.5, axis=axis, reduction="none",
                                   return_grad=True, grad_output=go)
    num = ref.numerical_grad(lambda z: np.sum(go * fx.distillation_loss(
        z, t, temperature=1.5, axis=axis, reduction="none")), s)
    assert_close(grad, num, rtol=1e-6, atol=1e-8)


# ---- what it equals -----------------------------------------------------------------

def test_distillation_is_kl_div_of_the_log_softmaxes(rng):
    s, t = make_logits(rng, (5, 9))
    T = 2.0
    for reduction in KL_REDUCTIONS:
        want = fx.kl_div(fx.log_softmax(s / T, axis=1), fx.log_softmax(t / T, axis=1),
                         reduction=reduction, log_target=True) * T * T
        assert_close(fx.distillation_loss(s, t, temperature=T, reduction=reduction), want,
                     rtol=1e-12, atol=1e-14)


def test_distillation_gradient_at_t1_is_cross_entropys(rng):
    """At T = 1 the gradient is p_s - p_t, that of cross_entropy with the
    teacher's probabilities as the target."""
    s, t = make_logits(rng, (6, 12))
    _, g = fx.distillation_loss(s, t, return_grad=True)
    _, g_ce = fx.cross_entropy(s, fx.softmax(t, axis=1), return_grad=True)
    assert_close(g, g_ce, rtol=1e-12, atol=1e-16)


def test_distillation_of_equal_logits_is_zero(rng):
    s, _ = make_logits(rng, (4, 50))
    loss, grad = fx.distillation_loss(s, s + 7.0, temperature=3.0, reduction="none",
                                      return_grad=True)          # a shift changes no softmax
    assert np.abs(loss).max() < 1e-13 and np.abs(grad).max() < 1e-15


# ---- the conventions: masked classes, non-finite rows, extremes -------------------

@pytest.mark.parametrize("shape, axis", [((2, 40), None), ((2, 6), None), ((2, 6, 3), None)])
def test_distillation_masked_classes_add_nothing(shape, axis):
    """A class the teacher gives probability 0 adds 0, also where the student's
    logit is -inf there (PyTorch's recipe: NaN)."""
    rng = np.random.default_rng(5)
    s, t = make_logits(rng, shape)
    ax = ref.class_axis(axis, len(shape))
    idx = [slice(None)] * len(shape)
    idx[ax] = slice(1, 3)
    s[tuple(idx)] = -np.inf
    t[tuple(idx)] = -np.inf
    loss, grad = fx.distillation_loss(s, t, temperature=2.0, axis=axis, reduction="none",
                                      return_grad=True)
    res = ref.distillation_loss(s, t, temperature=2.0, axis=axis, reduction="none",
                                return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    assert np.all(loss[tuple(idx)] == 0.0) and np.all(grad[tuple(idx)] == 0.0)
    assert_close(loss, res[0], rtol=1e-12, atol=1e-14)
    assert_close(grad, res[1], rtol=1e-12, atol=1e-15)


def test_distillation_student_masks_what_the_teacher_wants_is_inf():
    s = np.array([[0.0, -np.inf, 1.0]])
    t = np.array([[0.0, 0.5, 1.0]])
    loss = fx.distillation_loss(s, t, reduction="none")
    assert loss[0, 1] == np.inf and fx.distillation_loss(s, t) == np.inf


@pytest.mark.parametrize("bad", [np.nan, np.inf, "all -inf"])
@pytest.mark.parametrize("which", ["student", "teacher"])
@pytest.mark.parametrize("shape", [(3, 40), (3, 5), (3, 5, 2)], ids=str)
def test_distillation_non_finite_rows_are_nan(which, bad, shape):
    rng = np.random.default_rng(7)
    s, t = make_logits(rng, shape)
    a = s if which == "student" else t
    if bad == "all -inf":
        a[1] = -np.inf
    else:
        a[1, 2] = bad                                    # class 2 of sample 1 (each position)
    loss, grad = fx.distillation_loss(s, t, reduction="none", return_grad=True)
    assert np.isnan(loss[1]).all() and np.isnan(grad[1]).all()
    assert np.isfinite(loss[[0, 2]]).all() and np.isfinite(grad[[0, 2]]).all()
    res = ref.distillation_loss(s, t, reduction="none", return_grad=True)
    assert_close(loss, res[0], rtol=1e-12, atol=1e-14)
    assert_close(grad, res[1], rtol=1e-12, atol=1e-15)
    assert np.isnan(fx.distillation_loss(s, t))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_distillation_is_stable_for_large_logits(rng, dtype):
    s, t = make_logits(rng, (4, 50), dtype, scale=1e4)
    loss, grad = fx.distillation_loss(s, t, temperature=0.5, reduction="none", return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(grad).all()
    res = ref.distillation_loss(s, t, temperature=0.5, reduction="none", details=True)
    assert_within_scale(loss, res.loss, res.loss_scale, dtype)


@pytest.mark.parametrize("reduction", KL_REDUCTIONS)
def test_distillation_empty_shapes(reduction):
    for shape in ((0, 5), (4, 0)):
        x = np.empty(shape)
        loss, grad = fx.distillation_loss(x, x, reduction=reduction, return_grad=True)
        assert grad.shape == shape
        want = ref.distillation_loss(x, x, reduction=reduction)
        assert_close(loss, want, rtol=0)                 # 0, or NaN for an empty mean


def test_distillation_long_rows(rng):
    """More classes than one chunk of the cross-entropy kernels (16384)."""
    s, t = make_logits(rng, (2, 40000), np.float32)
    loss, grad = fx.distillation_loss(s, t, temperature=2.0, return_grad=True)
    res = ref.distillation_loss(s, t, temperature=2.0, details=True)
    assert_within_scale(loss, res.loss, res.loss_scale, np.float32)
    assert_within_scale(grad, res.grad, res.grad_scale, np.float32)


# ---- dtypes, buffers, threads ---------------------------------------------------------

def test_distillation_teacher_takes_the_students_dtype(rng):
    s, t = make_logits(rng, (5, 40), np.float32)
    loss = fx.distillation_loss(s, t.astype(np.float64))
    assert loss.dtype == np.float32 and loss == fx.distillation_loss(s, t)
    ti = np.rint(t).astype(np.int16)                     # any real teacher dtype
    assert_close(fx.distillation_loss(s, ti), ref.distillation_loss(s, ti), rtol=2e-6)


def test_distillation_out_receives_the_gradient(rng):
    s, t = make_logits(rng, (5, 40), np.float32)
    out = np.full_like(s, np.nan)
    loss, grad = fx.distillation_loss(s, t, temperature=2.0, return_grad=True, out=out)
    assert grad is out
    np.testing.assert_array_equal(out, fx.distillation_loss(s, t, temperature=2.0,
                                                            return_grad=True)[1])


@pytest.mark.parametrize("shape, axis", [((300, 1000), None), ((4000, 10), None),
                                         ((8, 10, 500), 1)], ids=str)
def test_distillation_is_bitwise_the_same_for_every_thread_count(rng, shape, axis):
    s, t = make_logits(rng, shape, np.float32)
    want = fx.distillation_loss(s, t, temperature=2.0, axis=axis, return_grad=True, n_threads=1)
    for n in (2, 3, 8):
        got = fx.distillation_loss(s, t, temperature=2.0, axis=axis, return_grad=True,
                                   n_threads=n)
        assert got[0] == want[0]
        np.testing.assert_array_equal(got[1], want[1])


def test_distillation_odd_layouts_and_no_modification(rng):
    s, t = make_logits(rng, (6, 40))
    want = fx.distillation_loss(s, t, reduction="none", return_grad=True)
    copies = (s.copy(), t.copy())
    got = fx.distillation_loss(np.asfortranarray(s), t.astype(t.dtype.newbyteorder()),
                               reduction="none", return_grad=True)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(s, copies[0])
    np.testing.assert_array_equal(t, copies[1])


# ---- bad input ----------------------------------------------------------------------

def test_distillation_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"student_logits \(2, 3\), got teacher_logits \(2, 4\)"):
        fx.distillation_loss(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("T, err", [(0.0, ValueError), (-1.0, ValueError), (np.inf, ValueError),
                                    (np.nan, ValueError), (True, TypeError), ("2", TypeError),
                                    (None, TypeError)])
def test_distillation_bad_temperature(T, err):
    with pytest.raises(err, match="temperature must be a finite number > 0"):
        fx.distillation_loss(np.zeros((2, 3)), np.zeros((2, 3)), temperature=T)


def test_distillation_other_bad_arguments():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="at least one dimension"):
        fx.distillation_loss(np.float64(1.0), np.float64(1.0))
    with pytest.raises(ValueError, match="axis=2 is out of range"):
        fx.distillation_loss(x, x, axis=2)
    with pytest.raises(TypeError, match="axis must be an integer"):
        fx.distillation_loss(x, x, axis=1.0)
    with pytest.raises(ValueError, match="'batchmean'"):
        fx.distillation_loss(x, x, reduction="avg")
    with pytest.raises(TypeError, match="student_logits must be a float16, float32 or float64"):
        fx.distillation_loss(np.zeros((2, 3), np.int64), x)
    with pytest.raises(TypeError, match="teacher_logits must be a real numeric array"):
        fx.distillation_loss(x, np.zeros((2, 3), bool))
    with pytest.raises(ValueError, match="grad_output must have the loss's shape"):
        fx.distillation_loss(x, x, reduction="none", return_grad=True, grad_output=np.ones(2))
    with pytest.raises(ValueError, match="must not overlap"):
        fx.distillation_loss(x, x.copy(), return_grad=True, out=x)
    with pytest.raises(TypeError, match="return_grad must be True or False"):
        fx.distillation_loss(x, x, return_grad="yes")


def test_drivers_check_every_length():
    """The kernels trust their lengths: the drivers check them (and the layout,
    without overflow) before any kernel runs."""
    from fastxent._kernels import kernels
    z = np.zeros(10)
    kw = dict(n_outer=2, C=5, inner=1, temperature=1.0, loss_out=None, grad=None, gout=None,
              gscale=1.0, n_threads=1)
    with pytest.raises(ValueError, match="t has 9 elements"):
        kernels.distill(s=z, t=np.zeros(9), **kw)
    with pytest.raises(ValueError, match="grad has 11 elements"):
        kernels.distill(s=z, t=z, **{**kw, "grad": np.zeros(11)})
    with pytest.raises(ValueError, match="is not"):
        kernels.distill(s=z, t=z, **{**kw, "n_outer": 2**62, "C": 1, "inner": 65})
    with pytest.raises(ValueError, match="temperature"):
        kernels.distill(s=z, t=z, **{**kw, "temperature": 0.0})
    with pytest.raises(ValueError, match="gout has 3 elements"):
        kernels.kl_div(x=z, t=z, log_target=False, loss_out=None, grad=None, gout=np.zeros(3),
                       gscale=1.0, n_threads=1)
    with pytest.raises(ValueError, match="loss_out has 4 elements"):
        kernels.focal(x=z, t=z, alpha=0.25, gamma=2.0, loss_out=np.zeros(4), grad=None, gout=None,
                      gscale=1.0, n_threads=1)
    with pytest.raises(ValueError, match="gamma"):
        kernels.focal(x=z, t=z, alpha=0.25, gamma=-1.0, loss_out=None, grad=None, gout=None,
                      gscale=1.0, n_threads=1)
