"""Tests of the binary losses: binary_cross_entropy, binary_cross_entropy_with_logits,
BCELoss and BCEWithLogitsLoss.

Oracles: the float64 reference (tests/reference.py), PyTorch (loss and autograd,
where installed), central finite differences, mpmath at extreme logits, and the
worked examples of the seed documents.
"""
from __future__ import annotations

import math
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from fastxent import binary_cross_entropy as bce
from fastxent import binary_cross_entropy_with_logits as bce_logits
from helpers import ELEMENTWISE_RTOL, REDUCTIONS, TORCH_RTOL, assert_close

DTYPES = (np.float16, np.float32, np.float64)


def call(logits, x, t, w=None, pw=None, **kw):
    if logits:
        return bce_logits(x, t, w, pos_weight=pw, **kw)
    assert pw is None
    return bce(x, t, w, **kw)


def oracle(logits, x, t, w=None, pw=None, **kw):
    """The float64 reference of :func:`call` (per element unless ``reduction`` is given)."""
    kw = {"reduction": "none", "return_grad": True, **kw}
    if logits:
        return ref.binary_cross_entropy_with_logits(x, t, w, pos_weight=pw, **kw)
    return ref.binary_cross_entropy(x, t, w, **kw)


def rtol_of(dtype, against="reference"):
    return (ELEMENTWISE_RTOL if against == "reference" else TORCH_RTOL)[np.dtype(dtype)]


def make_data(rng, shape, logits, dtype=np.float64):
    """Logits (or probabilities away from 0 and 1) and soft targets with some
    exact 0s and 1s."""
    if logits:
        x = rng.standard_normal(shape) * 4
    else:
        x = rng.uniform(0.02, 0.98, shape)
    t = rng.uniform(0, 1, shape)
    t.flat[::3] = 0.0
    t.flat[1::5] = 1.0
    return x.astype(dtype), t.astype(dtype)


# ---- the seed documents (../shared/seeds) --------------------------------------------

def test_seed_bce_with_logits_pos_weight():
    # BCEWithLogitsLoss(pos_weight=ones(3)) on logits 1.0 and targets 1: -log(sigmoid(1))
    x, t = np.full((2, 3), 1.0), np.ones((2, 3))
    loss = bce_logits(x, t, pos_weight=np.ones(3))
    assert round(float(loss), 4) == 0.3133
    assert float(loss) == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-15)
    loss32 = fx.BCEWithLogitsLoss(pos_weight=np.ones(3, np.float32))(x.astype(np.float32), t)
    assert loss32.dtype == np.float32 and round(float(loss32), 4) == 0.3133


def _seed_logistic_regression():
    """The logistic-regression example of seed 000: six points from
    np.random.seed(0), the line (-0.3, -0.35, 2.5)."""
    rs = np.random.RandomState(0)           # the stream of np.random.seed(0)
    n = 3
    bias = np.ones(n)
    top = np.array([rs.normal(5, 2, n), rs.normal(5, 2, n), bias]).T
    bottom = np.array([rs.normal(3, 2, n), rs.normal(3, 2, n), bias]).T
    points = np.vstack((top, bottom))
    linear = points @ np.array([-0.3, -0.35, 2.5])
    y = np.array([np.zeros(n), np.ones(n)]).reshape(2 * n, 1)
    return linear.reshape(2 * n, 1), y


def test_seed_logistic_regression():
    linear, y = _seed_logistic_regression()
    assert_close(linear.ravel(), np.array([-3.37705665, -2.29738492, -0.65314827,
                                           -0.307472, 0.53998383, -0.40606014]),
                 rtol=1e-7, atol=1e-8)
    p = 1 / (1 + np.exp(-linear))
    assert_close(p.ravel(), np.array([0.03302025, 0.09133977, 0.34228043, 0.42373191,
                                      0.63180866, 0.3998572]), rtol=1e-7, atol=1e-8)
    assert round(float(bce(p, y)), 8) == 0.46380153
    assert round(float(bce_logits(linear, y)), 8) == 0.46380153
    assert round(float(fx.BCELoss()(p, y)), 8) == 0.46380153
    assert round(float(fx.BCEWithLogitsLoss()(linear, y)), 8) == 0.46380153


def test_seed_logistic_regression_gradient_step():
    # the example's natural next step: the gradient of the mean loss w.r.t. the line
    linear, y = _seed_logistic_regression()
    loss, g = bce_logits(linear, y, return_grad=True)
    assert_close(g, oracle(True, linear, y, reduction="mean")[1], rtol=1e-14, atol=1e-17)


# ---- against the float64 reference and PyTorch, every option ---------------------

# weight / pos_weight shapes for a (6, 5) input
OPERANDS = {
    "none": None,
    "scalar": (),
    "last_axis": (5,),
    "column": (6, 1),
    "full": (6, 5),
}


def _operand(rng, kind, dtype, lo=0.5, hi=2.0):
    shape = OPERANDS[kind]
    if shape is None:
        return None
    return rng.uniform(lo, hi, shape).astype(dtype)


def _torch_loss_and_grad(torch, logits, x, t, w, pw, reduction, gout):
    F = torch.nn.functional
    # PyTorch in float32 for float16 data: the same values, rounded once
    tdt = torch.float64 if x.dtype == np.float64 else torch.float32
    to = lambda a: None if a is None else torch.tensor(np.asarray(a), dtype=tdt)  # noqa: E731
    xt = to(x).requires_grad_(True)
    if logits:
        lt = F.binary_cross_entropy_with_logits(xt, to(t), to(w), pos_weight=to(pw), reduction=reduction)
    else:
        wt = None if w is None else to(w).expand(x.shape)
        lt = F.binary_cross_entropy(xt, to(t), wt, reduction=reduction)
    lt.backward(torch.ones_like(lt) if gout is None else to(gout))
    return lt.detach().numpy().astype(np.float64), xt.grad.numpy().astype(np.float64)


# (weight, pos_weight) pairs: every kind of each at least twice; "prob" marks
# binary_cross_entropy, which has no pos_weight
OPERAND_PAIRS = [(w, "prob") for w in OPERANDS] + [
    ("none", "none"), ("scalar", "last_axis"), ("last_axis", "full"), ("column", "scalar"),
    ("full", "column"), ("none", "last_axis"), ("column", "full"), ("last_axis", "none"),
    ("full", "scalar"), ("scalar", "column")]


def _case(rng, dtype, w_kind, pw_kind):
    """Data of one (weight, pos_weight) case and a grad_output per reduction."""
    logits = pw_kind != "prob"
    x, t = make_data(rng, (6, 5), logits, dtype)
    w = _operand(rng, w_kind, dtype)
    pw = _operand(rng, pw_kind, dtype, 0.5, 3.0) if logits else None
    gouts = {r: rng.uniform(0.5, 1.5, x.shape if r == "none" else ()) for r in REDUCTIONS}
    return logits, x, t, w, pw, gouts


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("w_kind, pw_kind", OPERAND_PAIRS)
def test_against_reference(rng, dtype, w_kind, pw_kind):
    logits, x, t, w, pw, gouts = _case(rng, dtype, w_kind, pw_kind)
    loss_e, _ = oracle(logits, x, t, w, pw)
    scale = float(np.max(np.abs(loss_e)))
    rtol = rtol_of(dtype)
    for reduction, gout in gouts.items():
        loss, g = call(logits, x, t, w, pw, reduction=reduction, return_grad=True, grad_output=gout)
        assert loss.dtype == dtype and g.dtype == dtype and g.shape == x.shape
        assert (loss.shape == x.shape) if reduction == "none" else np.ndim(loss) == 0
        want_loss, want_g = oracle(logits, x, t, w, pw, reduction=reduction, grad_output=gout)
        assert_close(loss, want_loss, rtol=rtol, atol=rtol * scale)
        assert_close(g, want_g, rtol=rtol, atol=rtol * float(np.max(np.abs(want_g))))
        # the loss alone is the same number
        np.testing.assert_array_equal(call(logits, x, t, w, pw, reduction=reduction), loss)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("w_kind, pw_kind", OPERAND_PAIRS)
def test_against_torch(torch, rng, dtype, w_kind, pw_kind):
    logits, x, t, w, pw, gouts = _case(rng, dtype, w_kind, pw_kind)
    rtol = rtol_of(dtype, "torch")
    for reduction, gout in gouts.items():
        loss, g = call(logits, x, t, w, pw, reduction=reduction, return_grad=True, grad_output=gout)
        t_loss, t_g = _torch_loss_and_grad(torch, logits, x, t, w, pw, reduction, gout)
        assert_close(loss, t_loss, rtol=rtol, atol=rtol * float(np.max(np.abs(t_loss))))
        assert_close(g, t_g, rtol=rtol, atol=rtol * float(np.max(np.abs(t_g))))


@pytest.mark.parametrize("logits", [False, True], ids=["prob", "logits"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradient_finite_differences(rng, logits, reduction):
    x, t = make_data(rng, (3, 4), logits)
    w = rng.uniform(0.5, 2, (4,))
    pw = rng.uniform(0.5, 3, (3, 1)) if logits else None
    gout = rng.uniform(0.5, 1.5, x.shape if reduction == "none" else ())

    def f(xv):
        loss = call(logits, xv, t, w, pw, reduction=reduction)
        return float(np.sum(gout * loss))

    _, g = call(logits, x, t, w, pw, reduction=reduction, return_grad=True, grad_output=gout)
    assert_close(g, ref.numerical_grad(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("logits", [False, True], ids=["prob", "logits"])
def test_broadcast_shapes(rng, logits):
    """weight and pos_weight of every broadcastable kind, on an input large enough
    for two blocks and many tiles whose boundaries cut through the axes."""
    shape = (2, 5, 3, 700)
    x, t = make_data(rng, shape, logits)
    kinds = [(), (1, 1, 1, 1), (700,), (3, 700), (5, 1, 1), (2, 1, 3, 1), (2, 5, 1, 700),
             (2, 1, 1, 700), (1, 5, 3, 1), shape]
    for wshape in kinds:
        w = rng.uniform(0.5, 2, wshape)
        pw = rng.uniform(0.5, 3, kinds[(kinds.index(wshape) + 3) % len(kinds)]) if logits else None
        loss, g = call(logits, x, t, w, pw, reduction="none", return_grad=True)
        want_loss, want_g = oracle(logits, x, t, w, pw)
        assert_close(loss, want_loss, rtol=1e-13, atol=1e-13 * float(np.max(want_loss)))
        assert_close(g, want_g, rtol=1e-13, atol=1e-13 * float(np.max(np.abs(want_g))))
        total = call(logits, x, t, w, pw, reduction="sum")
        assert float(total) == pytest.approx(math.fsum(want_loss.ravel().tolist()), rel=1e-13)


def test_pos_weight_applies_along_last_axis():
    # a (C,) pos_weight scales the positive term of column c only
    x = np.zeros((2, 3))
    t = np.ones((2, 3))
    loss = bce_logits(x, t, pos_weight=[1.0, 2.0, 3.0], reduction="none")
    assert_close(loss, np.log(2) * np.array([[1, 2, 3], [1, 2, 3]]), rtol=1e-15)


# ---- exact 0 and 1 probabilities, extreme and tiny logits ----------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_zero_and_one_probabilities(dtype):
    x = np.array([0, 0, 0, 1, 1, 1], dtype)
    t = np.array([0, 1, 0.5, 0, 1, 0.5], dtype)
    loss, g = bce(x, t, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, np.array([0, 100, 50, 100, 0, 50], dtype))
    eps = float(np.asarray(1e-12, dtype))   # the floor, rounded as PyTorch rounds it
    assert_close(g, np.array([0, -1 / eps, -0.5 / eps, 1 / eps, 0, 0.5 / eps]), rtol=1e-6)
    torch = pytest.importorskip("torch")      # after the checks that need no torch
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy(xt, torch.tensor(t), reduction="none")
    lt.sum().backward()
    np.testing.assert_array_equal(loss, lt.detach().numpy())
    assert_close(g, xt.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_probabilities_near_zero_and_one(dtype):
    # log1p(-x) as in PyTorch: full precision for tiny x
    tiny = np.array([1e-30, 1e-10, 1e-7, 0.5, 1 - 2 ** -20], dtype)
    rtol = 4 * np.finfo(dtype).eps
    for t in (np.zeros_like(tiny), np.ones_like(tiny)):
        loss = bce(tiny, t, reduction="none")
        assert_close(loss, ref.binary_cross_entropy(tiny, t, reduction="none"), rtol=rtol, atol=rtol)


EXTREME = [-1e38, -1e4, -710.0, -100.0, -89.0, -88.0, -30.0, -1.0, -1e-8, -1e-30, -0.0, 0.0,
           1e-30, 1e-8, 1.0, 30.0, 88.0, 89.0, 100.0, 710.0, 1e4, 1e38]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_and_tiny_logits(dtype):
    x = np.repeat(np.array(EXTREME, dtype), 3)
    t = np.tile(np.array([0.0, 0.25, 1.0], dtype), len(EXTREME))
    pw = 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, g = bce_logits(x, t, pos_weight=pw, reduction="none", return_grad=True)
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(g))
    pytest.importorskip("mpmath")
    want_loss, want_g = ref.mp_binary_cross_entropy_with_logits(x, t, pw)
    tiny = np.finfo(dtype).tiny
    rtol = 4 * np.finfo(dtype).eps
    # relative precision wherever the value is representable, tiny losses included
    assert_close(loss, want_loss, rtol=rtol, atol=tiny)
    assert_close(g, want_g, rtol=rtol, atol=tiny)
    # e.g. a confident right answer keeps its tiny loss and gradient (about 1.4e-13;
    # PyTorch's float32 formulas round the gradient to 0)
    i = EXTREME.index(30.0) * 3 + 2
    assert loss[i] > 0 and g[i] < 0


def test_extreme_logits_reduced_and_against_torch(torch):
    x = np.array([-1e4, 1e4, -710.0, 710.0, -88.7, 88.7, 0.0], np.float32)
    for t in (np.zeros_like(x), np.ones_like(x)):
        loss, g = bce_logits(x, t, return_grad=True)
        xt = torch.tensor(x, requires_grad=True)
        lt = torch.nn.functional.binary_cross_entropy_with_logits(xt, torch.tensor(t))
        lt.backward()
        assert float(loss) == pytest.approx(lt.item(), rel=1e-6)
        assert_close(g, xt.grad.numpy(), rtol=1e-6, atol=1e-12)


def test_nan_and_inf_logits_propagate_as_torch(torch):
    inf, nan = np.inf, np.nan
    x = np.array([inf, inf, inf, -inf, -inf, -inf, nan, nan], np.float64)
    t = np.array([0, 0.5, 1, 0, 0.5, 1, 0, 1], np.float64)
    loss, g = bce_logits(x, t, pos_weight=2.0, reduction="none", return_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    lt = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(t), pos_weight=torch.tensor(2.0, dtype=torch.float64), reduction="none")
    lt.sum().backward()
    np.testing.assert_array_equal(loss, lt.detach().numpy())   # inf, NaN where PyTorch has them
    np.testing.assert_array_equal(g, xt.grad.numpy())
    assert np.isnan(bce_logits(x, t))                           # a reduced NaN, no error


def test_soft_targets_outside_unit_interval_with_logits_as_torch(torch):
    # PyTorch does not check the targets of the logits version: neither do we
    x, t = np.array([0.3, -1.2]), np.array([1.5, -0.5])
    loss = bce_logits(x, t, reduction="none")
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(x), torch.tensor(t), reduction="none").numpy()
    assert_close(loss, want, rtol=1e-14)


# ---- bad input -------------------------------------------------------------------------

def test_probabilities_out_of_range():
    x = np.array([[0.5, 1.5, 0.2], [np.nan, -0.1, 1.0]])
    with pytest.raises(ValueError, match=r"3 value\(s\) of input are outside \[0, 1\]; "
                                         r"the first is 1\.5 at index \(0, 1\)"):
        bce(x, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"1 value\(s\) of input .* the first is nan at index 2"):
        bce(np.array([0.5, 0.5, np.nan], np.float32), np.zeros(3), return_grad=True)
    with pytest.raises(ValueError, match=r"2 value\(s\) of target .* the first is -1\.0 at index 1"):
        bce(np.full(4, 0.5), [0.0, -1.0, 2.0, 1.0])
    with pytest.raises(ValueError, match="of input"):     # input is checked first, as in PyTorch
        bce([2.0], [2.0])
    with pytest.raises(ValueError, match="of input"):
        bce(np.full(100_000, np.inf, np.float32), np.zeros(100_000), n_threads=2)


def test_shape_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"target must have the input's shape \(2, 3\), got target \(2, 2\)"):
        bce_logits(np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"target .*\(3,\).*\(1, 3\)"):
        bce(np.full(3, 0.5), np.zeros((1, 3)))   # no broadcasting of the target, as PyTorch
    with pytest.raises(ValueError, match=r"weight of shape \(2,\) does not broadcast to the input's shape \(2, 3\)"):
        bce(np.full((2, 3), 0.5), np.zeros((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match=r"weight of shape \(4, 2, 3\) does not broadcast"):
        bce(np.full((2, 3), 0.5), np.zeros((2, 3)), np.ones((4, 2, 3)))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast .*\(2, 3\)"):
        bce_logits(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=np.ones(2))


def test_argument_errors():
    x, t = np.full((2, 3), 0.5), np.zeros((2, 3))
    with pytest.raises(TypeError, match="input must be a float16, float32 or float64 array"):
        bce_logits(np.zeros((2, 3), np.int64), t)
    with pytest.raises(TypeError, match="target must be a real numeric array"):
        bce(x, t.astype(np.complex128))
    with pytest.raises(TypeError, match="weight"):
        bce(x, t, "heavy")
    with pytest.raises(TypeError, match="pos_weight"):
        bce_logits(x, t, pos_weight=np.ones(3, np.complex64))
    with pytest.raises(TypeError):
        bce(x, t, pos_weight=np.ones(3))           # probabilities take no pos_weight
    with pytest.raises(ValueError, match="reduction must be one of"):
        bce(x, t, reduction="avg")
    with pytest.raises(ValueError, match=r"grad_output must have the loss's shape \(2, 3\)"):
        bce(x, t, reduction="none", return_grad=True, grad_output=np.ones(3))
    with pytest.raises(ValueError, match=r"grad_output must have the loss's shape \(\)"):
        bce_logits(x, t, return_grad=True, grad_output=np.ones(3))
    with pytest.raises(ValueError, match="only with return_grad=True"):
        bce_logits(x, t, grad_output=1.0)
    with pytest.raises(TypeError, match="out must have the input's dtype"):
        bce(x, t, return_grad=True, out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"out must have the input's shape \(2, 3\)"):
        bce(x, t, return_grad=True, out=np.empty((3, 2)))
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        bce(x, t, return_grad=True, out=np.empty((3, 2)).T)
    ro = np.empty((2, 3))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        bce(x, t, return_grad=True, out=ro)
    with pytest.raises(ValueError, match="out must not overlap"):
        bce_logits(x, t, return_grad=True, out=x)
    with pytest.raises(ValueError, match="n_threads"):
        bce(x, t, n_threads=0)
    with pytest.raises(ValueError, match="reduction"):
        fx.BCELoss(reduction="avg")


# ---- layouts, dtypes, out=, inputs untouched -------------------------------------------

@pytest.mark.parametrize("logits", [False, True], ids=["prob", "logits"])
def test_layouts(rng, logits):
    base, tb = make_data(rng, (8, 10), logits)
    w = rng.uniform(0.5, 2, (10,))
    want = float(call(logits, base[::2, 1::3].copy(), tb[::2, 1::3].copy(), w[1::3].copy()))
    # non-contiguous views
    assert float(call(logits, base[::2, 1::3], tb[::2, 1::3], w[1::3])) == pytest.approx(want, rel=1e-15)
    # transposed (F-ordered)
    got = call(logits, base.T, tb.T, reduction="none")
    assert_close(got, call(logits, base, tb, reduction="none").T, rtol=1e-15)
    # read-only, memmap-like
    ro_x, ro_t, ro_w = base.copy(), tb.copy(), w.copy()
    for a in (ro_x, ro_t, ro_w):
        a.flags.writeable = False
    loss, g = call(logits, ro_x, ro_t, ro_w, return_grad=True)
    np.testing.assert_array_equal(loss, call(logits, base, tb, w))
    # byte-swapped input, target and weight
    sw = lambda a: a.astype(a.dtype.newbyteorder(">" if sys.byteorder == "little" else "<"))  # noqa: E731
    loss_sw, g_sw = call(logits, sw(base), sw(tb), sw(w), return_grad=True)
    assert loss_sw == loss and g_sw.dtype.isnative
    np.testing.assert_array_equal(g_sw, g)
    # lists and Python scalars
    assert float(call(logits, base.tolist(), tb.tolist(), 2.0)) == pytest.approx(
        2 * float(call(logits, base, tb)), rel=1e-15)


@pytest.mark.parametrize("logits", [False, True], ids=["prob", "logits"])
def test_empty_and_zero_dim(logits):
    for shape in [(0,), (0, 3), (4, 0, 2)]:
        x = np.full(shape, 0.5)
        w = np.ones(shape[-1:])
        assert np.isnan(call(logits, x, x, w))           # mean of nothing, as PyTorch
        assert call(logits, x, x, w, reduction="sum") == 0.0
        loss, g = call(logits, x, x, w, reduction="none", return_grad=True)
        assert loss.shape == shape and g.shape == shape
        loss, g = call(logits, x, x, return_grad=True)
        assert np.isnan(loss) and g.shape == shape
    x0, t0 = np.float64(0.25), np.float64(1.0)
    loss, g = call(logits, x0, t0, 2.0, reduction="none", return_grad=True)
    want_l, want_g = oracle(logits, x0, t0, 2.0)
    assert loss.shape == () and g.shape == ()
    assert float(loss) == pytest.approx(float(want_l), rel=1e-15)
    assert float(g) == pytest.approx(float(want_g), rel=1e-15)


@pytest.mark.parametrize("logits", [False, True], ids=["prob", "logits"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_out_and_dtypes(rng, logits, dtype):
    x, t = make_data(rng, (5, 7), logits, dtype)
    loss, g = call(logits, x, t, return_grad=True)
    out = np.full(x.shape, -7, dtype)
    loss_o, g_o = call(logits, x, t, return_grad=True, out=out)
    assert g_o is out and loss_o == loss
    np.testing.assert_array_equal(out, g)
    # integer targets (hard labels) are accepted
    labels = (t > 0.5).astype(np.int8)
    np.testing.assert_array_equal(call(logits, x, labels, reduction="none"),
                                  call(logits, x, labels.astype(dtype), reduction="none"))


@pytest.mark.parametrize("logits", [False, True], ids=["prob", "logits"])
def test_inputs_not_modified(rng, logits):
    x, t = make_data(rng, (40, 9), logits, np.float32)
    w, pw = rng.uniform(0.5, 2, (9,)), (rng.uniform(0.5, 2, (40, 1)) if logits else None)
    gout = rng.uniform(size=x.shape)
    copies = [a.copy() for a in (x, t, w, gout)]
    call(logits, x, t, w, pw, reduction="none", return_grad=True, grad_output=gout)
    call(logits, x, t, w, pw, return_grad=True, out=np.empty_like(x))
    for a, c in zip((x, t, w, gout), copies):
        np.testing.assert_array_equal(a, c)


# ---- threads -----------------------------------------------------------------------

@pytest.mark.parametrize("logits", [False, True], ids=["prob", "logits"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_thread_count_does_not_change_results(rng, logits, dtype):
    shape = (1013, 99)   # 100,287 elements: 7 blocks, a ragged last one
    x, t = make_data(rng, shape, logits, dtype)
    w = rng.uniform(0.5, 2, (shape[0], 1)).astype(dtype)
    pw = rng.uniform(0.5, 2, (shape[1],)).astype(dtype) if logits else None
    results = [call(logits, x, t, w, pw, reduction=r, n_threads=n, return_grad=True)
               for n in (1, 2, 3, 4, 7) for r in ("mean", "sum")]
    for k in range(2, len(results)):
        base_loss, base_g = results[k % 2]
        assert results[k][0].tobytes() == base_loss.tobytes()    # bitwise
        np.testing.assert_array_equal(results[k][1], base_g)
    want, _ = oracle(logits, x, t, w, pw)
    assert float(results[1][0]) == pytest.approx(math.fsum(want.ravel().tolist()), rel=rtol_of(dtype))


def test_python_threads_at_once(rng):
    x, t = make_data(rng, (200, 500), True, np.float32)
    want = bce_logits(x, t, return_grad=True, n_threads=1)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: bce_logits(x, t, return_grad=True, n_threads=2), range(8)))
    for loss, g in got:
        assert loss == want[0]
        np.testing.assert_array_equal(g, want[1])


def test_large_float32_logits_api():
    # the benchmark's workload: (4_000_000,) float32 logits, loss and gradient
    rng = np.random.default_rng(1)
    x = rng.standard_normal(4_000_000).astype(np.float32)
    t = (rng.random(4_000_000) < 0.5).astype(np.float32)
    loss, g = bce_logits(x, t, return_grad=True, n_threads=2)
    assert loss.dtype == np.float32 and g.dtype == np.float32 and g.shape == x.shape
    sl = slice(0, None, 997)   # a sample checked against the reference
    _, want_g = oracle(True, x[sl], t[sl])
    assert_close(g[sl], want_g / x.size, rtol=2e-6, atol=1e-15)
    loss64 = bce_logits(x.astype(np.float64), t, n_threads=2)   # sampled against the reference above
    assert float(loss) == pytest.approx(float(loss64), rel=1e-6)


# ---- the classes -------------------------------------------------------------------

def test_loss_classes(rng):
    x, t = make_data(rng, (4, 3), True)
    w, pw = rng.uniform(0.5, 2, (3,)), rng.uniform(0.5, 2, (3,))
    fn = fx.BCEWithLogitsLoss(w, pos_weight=pw, reduction="sum")
    assert fn.reduction == "sum" and fn.pos_weight is pw and fn.weight is w
    loss, g = fn(x, t, return_grad=True, grad_output=2.0)
    want_l, want_g = bce_logits(x, t, w, pos_weight=pw, reduction="sum", return_grad=True, grad_output=2.0)
    assert loss == want_l
    np.testing.assert_array_equal(g, want_g)
    assert repr(fn).startswith("BCEWithLogitsLoss(weight=..., ")
    p = 1 / (1 + np.exp(-x))
    fn = fx.BCELoss(weight=w, reduction="none")
    np.testing.assert_array_equal(fn(p, t), bce(p, t, w, reduction="none"))
    out = np.empty_like(p)
    _, g = fx.BCELoss()(p, t, return_grad=True, out=out)
    assert g is out
    with pytest.raises(TypeError):
        fx.BCELoss(pos_weight=pw)
