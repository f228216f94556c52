"""cross_entropy, nll_loss and the loss classes against the float64 reference
(tests/reference.py), PyTorch (when installed) and finite differences.

Every option and layout of SPEC.md "Semantics": class-index and probability
targets, weight, ignore_index, label_smoothing, the three reductions, (C,),
(N, C) and (N, C, d1, ..., dk) inputs, any class axis, float16/32/64,
return_grad with grad_output and out=; and the kernels' internal paths: rows
(class axis contiguous), tiles (strided class axis), long rows cut into chunks,
many blocks, masked (-inf) logits and non-finite values.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import (REDUCTIONS, RTOL, assert_close, assert_grad_close, index_target,
                     make_case, prob_target, sample_shape, torch_loss_and_grad, upstream)

F64 = np.dtype(np.float64)
F32 = np.dtype(np.float32)
F16 = np.dtype(np.float16)

# (input shape, axis): both kernel layouts.  Rows: the class axis is the last
# one.  Tiles: a class axis with a stride ("inner" > 1 sample positions after it).
LAYOUTS = [
    pytest.param((7,), None, id="C"),
    pytest.param((6, 5), None, id="NC"),
    pytest.param((5, 6), 0, id="NC-axis0"),
    pytest.param((3, 4, 5), None, id="NCd"),
    pytest.param((2, 3, 4, 5), None, id="NCdd"),
    pytest.param((3, 4, 6), -1, id="batch-seq-vocab"),
    pytest.param((3, 4, 6), 0, id="NCd-axis0"),
]
# ----------------------------------------------------------------------------
# The whole option matrix against the float64 reference and against PyTorch
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target_kind", ["index", "prob", "unnormalized"])
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_cross_entropy_matches_reference(rng, shape, axis, target_kind, weighted, eps, reduction):
    x, t, w = make_case(rng, shape, axis, target_kind, weighted)
    go = upstream(rng, reduction, sample_shape(shape, axis))
    kw = dict(reduction=reduction, label_smoothing=eps, axis=axis)

    loss, grad = fx.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    want_loss, want_grad = ref.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)

    assert_close(loss, want_loss, rtol=1e-12, atol=1e-14)
    assert_grad_close(grad, want_grad, F64)
    assert grad.dtype == F64 and grad.shape == x.shape
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == F64
    else:
        assert isinstance(loss, np.float64)
    # the loss alone (no gradient pass) is the same number
    assert_close(fx.cross_entropy(x, t, w, **kw), loss, rtol=4e-16)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("target_kind", ["index", "prob", "unnormalized"])
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_cross_entropy_matches_torch(torch, rng, shape, axis, target_kind, weighted, eps,
                                     reduction):
    x, t, w = make_case(rng, shape, axis, target_kind, weighted)
    go = upstream(rng, reduction, sample_shape(shape, axis))

    loss, grad = fx.cross_entropy(x, t, w, reduction=reduction, label_smoothing=eps, axis=axis,
                                  return_grad=True, grad_output=go)
    want_loss, want_grad = torch_loss_and_grad(torch, "cross_entropy", x, t, w, axis=axis,
                                               grad_output=go, reduction=reduction,
                                               label_smoothing=eps)
    assert_close(loss, want_loss, rtol=1e-12, atol=1e-14)
    assert_grad_close(grad, want_grad, F64)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape, axis", LAYOUTS)
def test_nll_loss_matches_reference_and_torch(request, rng, shape, axis, weighted, reduction):
    x0, y, w = make_case(rng, shape, axis, "index", weighted)
    logp = ref.log_softmax(x0, axis=ref.class_axis(axis, len(shape)))
    go = upstream(rng, reduction, sample_shape(shape, axis))
    kw = dict(reduction=reduction, axis=axis)

    loss, grad = fx.nll_loss(logp, y, w, return_grad=True, grad_output=go, **kw)
    want_loss, want_grad = ref.nll_loss(logp, y, w, return_grad=True, grad_output=go, **kw)
    assert_close(loss, want_loss, rtol=1e-13, atol=1e-15)
    assert_close(grad, want_grad, rtol=1e-13, atol=1e-15)
    assert_close(fx.nll_loss(logp, y, w, **kw), loss, rtol=0)

    torch = pytest.importorskip("torch")
    t_loss, t_grad = torch_loss_and_grad(torch, "nll_loss", logp, y, w, axis=axis,
                                         grad_output=go, reduction=reduction)
    assert_close(loss, t_loss, rtol=1e-13, atol=1e-15)
    assert_close(grad, t_grad, rtol=1e-13, atol=1e-15)


def test_nll_loss_of_log_softmax_is_cross_entropy(rng):
    x, y, w = make_case(rng, (4, 6, 3), None, "index", True)
    lp = fx.log_softmax(x, axis=1)
    assert_close(fx.nll_loss(lp, y, w), fx.cross_entropy(x, y, w), rtol=1e-13)


# ----------------------------------------------------------------------------
# ignore_index, empty batches, label_smoothing limits, target dtypes
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("fn, eps", [("cross_entropy", 0.0), ("cross_entropy", 0.3),
                                     ("nll_loss", 0.0)])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("shape, axis", [((4, 5), None), ((2, 5, 3), None)], ids=["rows", "tiles"])
def test_all_targets_ignored_gives_nan_mean_zero_sum_and_zero_grad(rng, fn, eps, weighted, shape,
                                                                   axis):
    x, _, w = make_case(rng, shape, axis, "index", weighted)
    y = np.full(sample_shape(shape, axis), -100)
    kw = dict(label_smoothing=eps) if eps else {}
    f = getattr(fx, fn)

    loss, grad = f(x, y, w, return_grad=True, **kw)
    assert np.isnan(loss) and isinstance(loss, np.float64)
    np.testing.assert_array_equal(grad, np.zeros(shape))
    loss, grad = f(x, y, w, reduction="sum", return_grad=True, **kw)
    assert loss == 0.0
    np.testing.assert_array_equal(grad, np.zeros(shape))
    loss, grad = f(x, y, w, reduction="none", return_grad=True, **kw)
    np.testing.assert_array_equal(loss, np.zeros(y.shape))
    np.testing.assert_array_equal(grad, np.zeros(shape))


@pytest.mark.parametrize("fn, target_kind", [("cross_entropy", "index"), ("cross_entropy", "prob"),
                                             ("nll_loss", "index")])
def test_empty_batch(fn, target_kind):
    f = getattr(fx, fn)
    x = np.zeros((0, 5))
    t = np.zeros((0,), np.int64) if target_kind == "index" else np.zeros((0, 5))
    loss, grad = f(x, t, return_grad=True)
    assert np.isnan(loss)
    assert grad.shape == (0, 5) and grad.dtype == F64
    assert f(x, t, reduction="sum") == 0.0
    none = f(x, t, reduction="none")
    assert none.shape == (0,) and none.dtype == F64
    # an empty trailing dimension: (N, C, 0)
    x3 = np.zeros((2, 5, 0), np.float32)
    t3 = np.zeros((2, 0), np.int64) if target_kind == "index" else np.zeros((2, 5, 0), np.float32)
    loss, grad = f(x3, t3, reduction="none", return_grad=True)
    assert loss.shape == (2, 0) and loss.dtype == F32 and grad.shape == (2, 5, 0)


@pytest.mark.parametrize("ignore_index", [-1, 2, 1000])
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_custom_ignore_index(rng, fn, ignore_index):
    # ignore_index may be a valid class (2): those positions are then ignored
    x = rng.standard_normal((12, 5))
    y = index_target(rng, (12,), 5, ignore_frac=0.3, ignore_index=ignore_index)
    w = rng.uniform(0.5, 1.5, 5)
    f, rf = getattr(fx, fn), getattr(ref, fn)
    for reduction in REDUCTIONS:
        loss, grad = f(x, y, w, ignore_index=ignore_index, reduction=reduction, return_grad=True)
        want, want_grad = rf(x, y, w, ignore_index=ignore_index, reduction=reduction,
                             return_grad=True)
        assert_close(loss, want, rtol=1e-12)
        assert_grad_close(grad, want_grad, F64)


def test_custom_ignore_index_matches_torch(torch, rng):
    x = rng.standard_normal((12, 5))
    y = index_target(rng, (12,), 5, ignore_frac=0.3, ignore_index=2)
    for eps in (0.0, 0.2):
        loss, grad = fx.cross_entropy(x, y, ignore_index=2, label_smoothing=eps, return_grad=True)
        t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, y, ignore_index=2,
                                             label_smoothing=eps)
        assert_close(loss, t_loss, rtol=1e-12)
        assert_grad_close(grad, t_grad, F64)


def test_ignore_index_does_not_apply_to_probability_targets(rng):
    x = rng.standard_normal((4, 3))
    t = prob_target(rng, (4, 3), 1)
    t[:, 0] = 0.0    # a class 0 that a confused implementation might "ignore"
    for ignore_index in (0, 1, -100):
        loss, grad = fx.cross_entropy(x, t, ignore_index=ignore_index, return_grad=True)
        want, want_grad = ref.cross_entropy(x, t, return_grad=True)
        assert_close(loss, want, rtol=1e-12)
        assert_grad_close(grad, want_grad, F64)


@pytest.mark.parametrize("eps", [0.0, 1e-12, 0.5, 1.0])
@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_label_smoothing_range(torch, rng, eps, target_kind):
    x, t, w = make_case(rng, (5, 4), None, target_kind, True)
    loss, grad = fx.cross_entropy(x, t, w, label_smoothing=eps, return_grad=True)
    assert_close(loss, ref.cross_entropy(x, t, w, label_smoothing=eps), rtol=1e-12)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, t, w, label_smoothing=eps)
    assert_close(loss, t_loss, rtol=1e-12)
    assert_grad_close(grad, t_grad, F64)


@pytest.mark.parametrize("tdtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                    np.int64, np.uint64, np.intp])
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_any_integer_target_dtype(rng, fn, tdtype):
    x = rng.standard_normal((6, 4, 3))
    y = index_target(rng, (6, 3), 4)
    f = getattr(fx, fn)
    want, want_grad = f(x, y, reduction="none", return_grad=True)
    got, got_grad = f(x, y.astype(tdtype), reduction="none", return_grad=True)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_grad, want_grad)
    assert_close(want, getattr(ref, fn)(x, y, reduction="none"), rtol=1e-12)


def test_python_lists_and_scalars_are_accepted():
    # anything np.asarray takes: nested lists, a Python int target for (C,) input
    assert_close(fx.cross_entropy([[0.0, 1.0, 2.0, 3.0]], [3]),
                 ref.cross_entropy([[0.0, 1.0, 2.0, 3.0]], [3]), rtol=1e-13)
    assert_close(fx.cross_entropy([0.0, 1.0, 2.0], 1), ref.cross_entropy([0.0, 1.0, 2.0], 1),
                 rtol=1e-13)
    assert_close(fx.nll_loss([[-1.0, -2.0]], [1], weight=[1, 3]), 2.0, rtol=0)


# ----------------------------------------------------------------------------
# grad_output and out=
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("go", [2.5, -1, np.float32(0.5), np.array(3.0), np.array([[-2.0]])[0, 0]])
def test_grad_output_scalar_scales_reduced_gradient(rng, reduction, go):
    x, y, w = make_case(rng, (5, 4), None, "index", True)
    _, g1 = fx.cross_entropy(x, y, w, reduction=reduction, return_grad=True)
    _, g = fx.cross_entropy(x, y, w, reduction=reduction, return_grad=True, grad_output=go)
    assert_close(g, float(go) * g1, rtol=1e-15, atol=1e-300)
    _, n1 = fx.nll_loss(x, y, w, reduction=reduction, return_grad=True, grad_output=go)
    _, want = ref.nll_loss(x, y, w, reduction=reduction, return_grad=True, grad_output=go)
    assert_close(n1, want, rtol=1e-15)


@pytest.mark.parametrize("shape, axis", [((5, 4), None), ((2, 4, 3), None), ((2, 3, 4), -1)])
def test_grad_output_loss_shaped_for_none(rng, shape, axis):
    x, y, w = make_case(rng, shape, axis, "index", True)
    go = rng.standard_normal(sample_shape(shape, axis))
    _, g = fx.cross_entropy(x, y, w, axis=axis, reduction="none", return_grad=True, grad_output=go)
    _, want = ref.cross_entropy(x, y, w, axis=axis, reduction="none", return_grad=True,
                                grad_output=go)
    assert_grad_close(g, want, F64)
    # default grad_output: ones, i.e. the gradient of the summed loss
    _, g_none = fx.cross_entropy(x, y, w, axis=axis, reduction="none", return_grad=True)
    _, g_sum = fx.cross_entropy(x, y, w, axis=axis, reduction="sum", return_grad=True)
    assert_close(g_none, g_sum, rtol=1e-15, atol=1e-300)
    # a nested list of the loss's shape works too
    _, g_list = fx.cross_entropy(x, y, w, axis=axis, reduction="none", return_grad=True,
                                 grad_output=go.tolist())
    np.testing.assert_array_equal(g_list, g)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("shape, axis", [((6, 5), None), ((2, 5, 3), None)], ids=["rows", "tiles"])
def test_out_receives_gradient(rng, dtype, fn, shape, axis):
    x, y, w = make_case(rng, shape, axis, "index", True)
    x = x.astype(dtype)
    f = getattr(fx, fn)
    loss, grad = f(x, y, w, return_grad=True)
    out = np.full(shape, np.nan, dtype=dtype)     # stale contents must not leak through
    loss2, got = f(x, y, w, return_grad=True, out=out)
    assert got is out
    np.testing.assert_array_equal(out, grad)
    assert loss2 == loss


def test_out_for_probability_targets_and_none(rng):
    x, t, w = make_case(rng, (3, 4, 5), -1, "prob", True)
    go = rng.standard_normal((3, 4))
    out = np.empty_like(x)
    _, got = fx.cross_entropy(x, t, w, axis=-1, reduction="none", label_smoothing=0.1,
                              return_grad=True, grad_output=go, out=out)
    _, want = ref.cross_entropy(x, t, w, axis=-1, reduction="none", label_smoothing=0.1,
                                return_grad=True, grad_output=go)
    assert got is out
    assert_grad_close(out, want, F64)


# ----------------------------------------------------------------------------
# dtypes: float32 and float16 against float64 computed from the same values
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("shape, axis", [((40, 30), None), ((3, 30, 70), None), ((4, 5, 30), -1)],
                         ids=["rows", "tiles", "axis-1"])
def test_float32_matches_float64_reference(rng, shape, axis, target_kind, reduction):
    x, t, w = make_case(rng, shape, axis, target_kind, True)
    x = x.astype(np.float32)
    w = w.astype(np.float32)
    if target_kind == "prob":
        t = t.astype(np.float32)
    go = upstream(rng, reduction, sample_shape(shape, axis))
    kw = dict(reduction=reduction, axis=axis, label_smoothing=0.1)
    loss, grad = fx.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    want, want_grad = ref.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    assert grad.dtype == F32
    if reduction == "none":
        assert loss.dtype == F32
        assert_close(loss, want, rtol=2e-6, atol=2e-6 * np.max(np.abs(want)))
    else:
        assert isinstance(loss, np.float32)
        assert_close(loss, want, rtol=2e-6)
    assert_grad_close(grad, want_grad, F32)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_float16_is_computed_in_float32_and_returned_as_float16(rng, fn, reduction):
    x, y, w = make_case(rng, (9, 7, 5), None, "index", True)
    x16 = x.astype(np.float16)
    f = getattr(fx, fn)
    loss16, grad16 = f(x16, y, w, reduction=reduction, return_grad=True)
    loss32, grad32 = f(x16.astype(np.float32), y, w, reduction=reduction, return_grad=True)
    assert grad16.dtype == F16
    np.testing.assert_array_equal(grad16, grad32.astype(np.float16))
    want = getattr(ref, fn)(x16, y, w, reduction=reduction)
    if reduction == "none":
        assert loss16.dtype == F16
        np.testing.assert_array_equal(loss16, loss32.astype(np.float16))
    else:
        assert isinstance(loss16, np.float16)
    # one rounding to float16 of the float64 answer (half an ulp, plus float32's error)
    assert_close(loss16, want, rtol=6e-4, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_low_precision_matches_torch_in_its_own_dtype(torch, rng, dtype):
    x, t, w = make_case(rng, (8, 6, 4), None, "index", True)
    x = x.astype(dtype)
    loss, grad = fx.cross_entropy(x, t, w, label_smoothing=0.1, return_grad=True)
    # PyTorch computes in float32 for both (its CPU float16 path upcasts too)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x.astype(np.float32), t,
                                         w.astype(np.float32), dtype=np.float32,
                                         label_smoothing=0.1)
    tol = 1e-5 if dtype == np.float32 else 1e-3
    assert_close(loss, t_loss, rtol=tol)
    assert_grad_close(grad, t_grad, F32, rel=tol / RTOL[F32])


def test_weight_dtype_follows_input(rng):
    # integer or float64 weights with a float32 input: computed in float32
    x, y, _ = make_case(rng, (6, 3), None, "index", False)
    x = x.astype(np.float32)
    for w in ([1, 2, 3], np.array([1.0, 2.0, 3.0]), np.array([1, 2, 3], np.uint8)):
        loss = fx.cross_entropy(x, y, w)
        assert isinstance(loss, np.float32)
        assert_close(loss, ref.cross_entropy(x, y, [1.0, 2.0, 3.0]), rtol=2e-6)


# ----------------------------------------------------------------------------
# Gradients against PyTorch autograd and central finite differences
# ----------------------------------------------------------------------------

FD_CASES = [
    pytest.param((3, 4), None, "index", id="rows-index"),
    pytest.param((3, 4), None, "prob", id="rows-prob"),
    pytest.param((2, 3, 2), None, "index", id="tiles-index"),
    pytest.param((2, 3, 2), None, "prob", id="tiles-prob"),
    pytest.param((2, 2, 3), -1, "index", id="axis-1-index"),
]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape, axis, target_kind", FD_CASES)
def test_cross_entropy_grad_is_derivative_of_loss(rng, shape, axis, target_kind, reduction):
    """The fused gradient against central differences of fastxent's own loss."""
    x, t, w = make_case(rng, shape, axis, target_kind, True, ignore=False)
    if target_kind == "index":
        t.reshape(-1)[0] = -100          # one ignored position
    go = upstream(rng, reduction, sample_shape(shape, axis))
    kw = dict(reduction=reduction, label_smoothing=0.2, axis=axis)

    def scalar_loss(z):
        loss = fx.cross_entropy(z, t, w, **kw)
        return np.sum(np.asarray(go) * loss) if reduction == "none" else go * loss

    _, grad = fx.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
    assert_close(grad, ref.numerical_grad(scalar_loss, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_grad_is_derivative_of_loss(rng, reduction):
    x, y, w = make_case(rng, (2, 3, 2), None, "index", True, ignore=False)
    y[0, 0] = -100
    go = upstream(rng, reduction, y.shape)

    def scalar_loss(z):
        loss = fx.nll_loss(z, y, w, reduction=reduction)
        return np.sum(np.asarray(go) * loss) if reduction == "none" else go * loss

    _, grad = fx.nll_loss(x, y, w, reduction=reduction, return_grad=True, grad_output=go)
    assert_close(grad, ref.numerical_grad(scalar_loss, x), rtol=1e-6, atol=1e-8)


MPMATH_ROWS = [
    ([0.0, 1.0, 2.0, 3.0], 3),
    ([1e-8, 0.0, -1e-8], 1),                   # nearly uniform
    ([40.0, 0.0, -40.0, 3.0], 0),              # a confident, correct row: loss ~ 5e-17
    ([40.0, 0.0, -40.0, 3.0], 2),              # a confident, wrong row: loss ~ 80
    ([700.0, 699.0, -700.0], 1),               # exp would overflow unshifted
    ([-745.0, -746.0, -800.0, -744.5], 3),     # exp would underflow unshifted
]


@pytest.mark.parametrize("eps", [0.0, 0.3])
@pytest.mark.parametrize("row, y", MPMATH_ROWS)
def test_cross_entropy_matches_mpmath(row, y, eps):
    """An oracle independent of floating point: 50 significant digits."""
    pytest.importorskip("mpmath")
    w = [1.5, 0.5, 1.0, 2.0][: len(row)]
    loss, grad, Q = ref.mp_cross_entropy_row(row, y, w, eps, dps=50)

    got, got_grad = fx.cross_entropy(np.array(row), np.int64(y), w, label_smoothing=eps,
                                     reduction="sum", return_grad=True)
    # absolute error ~ ulp(1): a loss of 1e-16 (a confident, correct row) comes out as
    # log(1 + 1e-16) = 0, as in PyTorch; relative elsewhere
    assert_close(got, loss, rtol=4e-15, atol=4e-16 * sum(w))
    # the gradient is p * Q - w * q: absolute error ~ ulp(Q) where p rounds to 1
    assert_close(got_grad, grad, rtol=1e-14, atol=4e-16 * Q)


# ----------------------------------------------------------------------------
# Kernel paths: long rows in chunks, strided tiles, many blocks
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("C", [16385, 40000])
def test_long_rows_in_chunks(rng, C, target_kind):
    # C > 16384: each row is cut into chunks with their own max; the chunks'
    # maxima differ a lot here, so the rescaling between chunks matters
    x = rng.standard_normal((3, C))
    x[:, : C // 3] += 30.0
    x[1, C // 2:] -= 50.0
    x[2] *= 5.0
    if target_kind == "index":
        t = np.array([C - 1, 0, C // 2])
    else:
        t = prob_target(rng, (3, C), 1)
    w = rng.uniform(0.5, 1.5, C)
    for reduction in ("sum", "none"):
        kw = dict(reduction=reduction, label_smoothing=0.1)
        loss, grad = fx.cross_entropy(x, t, w, return_grad=True, **kw)
        want, want_grad = ref.cross_entropy(x, t, w, return_grad=True, **kw)
        assert_close(loss, want, rtol=1e-12)
        assert_grad_close(grad, want_grad, F64)


@pytest.mark.parametrize("C", [16384 * 64 + 1, 1_200_000])
def test_very_long_row_float32(rng, C):
    # C > 16384 * 64: at most 64 chunks per row, so the chunk length grows
    x = rng.standard_normal(C).astype(np.float32)
    x[: C // 64] -= 20.0
    x[-1000:] += 8.0
    y = np.int64(C - 10)
    w = rng.uniform(0.5, 1.5, C).astype(np.float32)
    loss, grad = fx.cross_entropy(x, y, w, label_smoothing=0.05, return_grad=True)
    want, want_grad = ref.cross_entropy(x, y, w, label_smoothing=0.05, return_grad=True)
    assert isinstance(loss, np.float32)
    assert_close(loss, want, rtol=2e-6)
    assert_grad_close(grad, want_grad, F32)
    lse = fx.logsumexp(x)
    assert_close(lse, ref.logsumexp(x), rtol=2e-6)


def test_long_row_with_a_whole_chunk_masked(rng):
    C = 3 * 16384 + 5
    x = rng.standard_normal((2, C))
    x[0, :16384] = -np.inf          # the first chunk entirely masked
    x[1, 16384:2 * 16384] = -np.inf  # a middle chunk entirely masked
    y = np.array([C - 1, 0])
    loss, grad = fx.cross_entropy(x, y, reduction="none", return_grad=True)
    want, want_grad = ref.cross_entropy(x, y, reduction="none", return_grad=True)
    assert np.all(np.isfinite(loss))
    assert_close(loss, want, rtol=1e-12)
    assert_grad_close(grad, want_grad, F64)
    assert np.all(grad[x == -np.inf] == 0.0)
    assert_close(fx.softmax(x), ref.softmax(x), rtol=1e-12, atol=1e-300)
    assert_close(fx.log_softmax(x), ref.log_softmax(x), rtol=1e-12)


def test_long_row_with_nan_in_one_chunk_is_nan(torch, rng):
    C = 2 * 16384 + 7
    x = rng.standard_normal((3, C))
    x[0, 20000] = np.nan        # in the second chunk
    x[1, 5] = np.inf
    x[2, :16384] = np.nan       # a whole chunk of NaN
    y = np.array([1, 2, C - 1])
    loss, grad = fx.cross_entropy(x, y, reduction="none", return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, y, reduction="none")
    assert_close(loss, t_loss, rtol=1e-12)
    assert np.array_equal(np.isnan(grad), np.isnan(t_grad))


@pytest.mark.parametrize("inner", [3, 64, 130])
@pytest.mark.parametrize("target_kind", ["index", "prob"])
def test_strided_class_axis_tiles(rng, inner, target_kind):
    # inner sample positions per outer index, in tiles of 64: a partial last tile
    # when inner is not a multiple of 64
    shape = (3, 7, inner)
    x, t, w = make_case(rng, shape, None, target_kind, True)
    for reduction in REDUCTIONS:
        go = upstream(rng, reduction, (3, inner))
        kw = dict(reduction=reduction, label_smoothing=0.15)
        loss, grad = fx.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
        want, want_grad = ref.cross_entropy(x, t, w, return_grad=True, grad_output=go, **kw)
        assert_close(loss, want, rtol=1e-12, atol=1e-14)
        assert_grad_close(grad, want_grad, F64)
    # the same numbers with the class axis moved last (rows)
    xr = np.moveaxis(x, 1, -1)
    tr = t if target_kind == "index" else np.moveaxis(t, 1, -1)
    lr, gr = fx.cross_entropy(xr, tr, w, axis=-1, reduction="none", return_grad=True)
    lt, gt = fx.cross_entropy(x, t, w, reduction="none", return_grad=True)
    assert_close(lr, lt, rtol=1e-13, atol=1e-15)
    assert_grad_close(np.moveaxis(gr, -1, 1), gt, F64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis", [((5000, 10), None), ((60, 6, 200), None),
                                         ((40, 50, 12), -1)], ids=["rows", "tiles", "axis-1"])
def test_many_blocks(rng, dtype, shape, axis):
    # N * C > 16384: the work is split into several blocks that prange runs
    x, y, w = make_case(rng, shape, axis, "index", True)
    x = x.astype(dtype)
    w = w.astype(dtype)
    for reduction in REDUCTIONS:
        kw = dict(reduction=reduction, label_smoothing=0.1, axis=axis)
        loss, grad = fx.cross_entropy(x, y, w, return_grad=True, n_threads=2, **kw)
        want, want_grad = ref.cross_entropy(x, y, w, return_grad=True, **kw)
        rtol = RTOL[np.dtype(dtype)]
        assert_close(loss, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))
        assert_grad_close(grad, want_grad, dtype)
    loss = fx.nll_loss(x, y, w, axis=axis, n_threads=2)
    assert_close(loss, ref.nll_loss(x, y, w, axis=axis), rtol=RTOL[np.dtype(dtype)])


def test_many_target_blocks(rng):
    # more than 65536 targets: the target check and nll run in several blocks
    n = 140_000
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = index_target(rng, (n,), 2, ignore_frac=0.1)
    w = np.array([0.3, 1.7], np.float32)
    for f in ("cross_entropy", "nll_loss"):
        loss, grad = getattr(fx, f)(x, y, w, return_grad=True, n_threads=2)
        want, want_grad = getattr(ref, f)(x, y, w, return_grad=True)
        assert_close(loss, want, rtol=2e-6)
        assert_grad_close(grad, want_grad, F32)


# ----------------------------------------------------------------------------
# Masked (-inf) logits; NaN and inf as PyTorch propagates them
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("shape, axis", [((6, 5), None), ((2, 5, 3), None)], ids=["rows", "tiles"])
def test_masked_logits(torch, rng, shape, axis, eps):
    x = rng.standard_normal(shape)
    xm = np.moveaxis(x, 1, -1)          # view: classes last
    y = index_target(rng, sample_shape(shape, axis), 5)
    # mask two classes that are not the target at every position
    for idx in np.ndindex(y.shape):
        others = [c for c in range(5) if c != y[idx]]
        xm[idx + (others[0],)] = -np.inf
        xm[idx + (others[-1],)] = -np.inf
    loss, grad = fx.cross_entropy(x, y, label_smoothing=eps, reduction="none", return_grad=True)
    want, want_grad = ref.cross_entropy(x, y, label_smoothing=eps, reduction="none",
                                        return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, y, label_smoothing=eps,
                                         reduction="none")
    # smoothing puts mass on the masked classes: +inf loss, as in PyTorch
    assert_close(loss, want, rtol=1e-12)
    assert_close(loss, t_loss, rtol=1e-12)
    assert_grad_close(grad, want_grad, F64)
    assert_grad_close(grad, t_grad, F64)
    assert np.all(np.isfinite(grad))
    # a masked class gets no probability: only the smoothing mass -eps/C is left
    assert_close(grad[x == -np.inf], np.full(np.sum(x == -np.inf), -eps / 5), rtol=1e-15)


def _nonfinite_cases(shape):
    """Logits of ``shape`` (N, 4, ...) with NaN, +inf and -inf in chosen rows."""
    x = np.zeros(shape) + np.arange(4.0).reshape((1, 4) + (1,) * (len(shape) - 2))
    xm = np.moveaxis(x, 1, -1)
    xm[0, ..., 1] = np.nan            # NaN at a non-target class
    xm[1, ..., 2] = np.inf            # +inf
    xm[2, ...] = -np.inf              # every class masked
    xm[3, ..., 0] = -np.inf           # the target class masked
    xm[4, ..., 3] = np.nan            # NaN at the target class
    xm[5, ..., 1] = -np.inf           # a plain masked class (finite loss)
    return x


@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 3)], ids=["rows", "tiles"])
def test_nan_and_inf_propagate_like_torch(torch, shape, reduction, eps):
    x = _nonfinite_cases(shape)
    y = np.zeros(sample_shape(shape, None), np.int64)
    y[4] = 3
    loss, grad = fx.cross_entropy(x, y, label_smoothing=eps, reduction=reduction,
                                  return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, y, label_smoothing=eps,
                                         reduction=reduction)
    assert_close(loss, t_loss, rtol=1e-12)
    assert_close(grad, t_grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", [(6, 4), (6, 4, 3)], ids=["rows", "tiles"])
def test_nan_and_inf_with_probability_targets_like_torch(torch, rng, shape):
    x = _nonfinite_cases(shape)
    t = prob_target(rng, shape, 1)
    loss, grad = fx.cross_entropy(x, t, reduction="none", return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, t, reduction="none")
    assert_close(loss, t_loss, rtol=1e-12)
    assert_close(grad, t_grad, rtol=1e-12, atol=1e-15)


def test_nan_in_nll_loss_input_propagates(torch):
    x = np.log(np.full((3, 4), 0.25))
    x[0, 1] = np.nan
    x[1, 2] = -np.inf
    y = np.array([1, 2, 0])
    loss, grad = fx.nll_loss(x, y, reduction="none", return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "nll_loss", x, y, reduction="none")
    assert_close(loss, t_loss, rtol=1e-15)
    assert_close(grad, t_grad, rtol=0)
    assert np.isnan(fx.nll_loss(x, y))


# PyTorch's gradient at an ignored position is NaN where that position's softmax is
# (NaN or +inf logits, or all -inf): log_softmax's backward multiplies its NaN output
# by the zero upstream gradient.  Short rows go through the tile kernel, long ones
# (C > 32) through the row kernel.
@pytest.mark.parametrize("shape", [(3, 4), (3, 40), (3, 4, 2)], ids=["short-rows", "rows", "tiles"])
def test_nonfinite_logits_at_ignored_positions_like_torch(torch, shape):
    x = np.zeros(shape)
    xm = np.moveaxis(x, 1, -1)
    xm[0, ..., 1] = np.nan
    xm[1, ..., 1] = np.inf
    xm[2] = -np.inf
    y = np.full(sample_shape(shape, None), -100)
    loss, grad = fx.cross_entropy(x, y, reduction="sum", return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, y, reduction="sum")
    assert_close(loss, t_loss, rtol=1e-12)
    assert_close(grad, t_grad, rtol=1e-12)


def test_extreme_finite_logits_are_stable(torch):
    # huge and tiny logits: no overflow, as log_softmax is computed shifted
    x = np.array([[1e300, -1e300, 0.0], [1000.0, 1000.0, 999.0], [-1000.0, -1001.0, -1002.0]])
    y = np.array([0, 2, 1])
    loss, grad = fx.cross_entropy(x, y, reduction="none", return_grad=True)
    t_loss, t_grad = torch_loss_and_grad(torch, "cross_entropy", x, y, reduction="none")
    assert np.all(np.isfinite(loss)) and np.all(np.isfinite(grad))
    assert_close(loss, t_loss, rtol=1e-12)
    assert_grad_close(grad, t_grad, F64)
    x32 = np.array([[80.0, -80.0, 0.0], [3e38, 3e38, -3e38]], np.float32)
    loss32 = fx.cross_entropy(x32, [1, 0], reduction="none")
    assert_close(loss32, ref.cross_entropy(x32, [1, 0], reduction="none"), rtol=2e-6)


@pytest.mark.parametrize("dtype, offset", [(np.float64, 1e6), (np.float64, 1e300),
                                           (np.float64, -1e300), (np.float32, 1e30)])
@pytest.mark.parametrize("target_kind", ["index", "prob"])
@pytest.mark.parametrize("shape", [(5, 6), (2, 6, 3)], ids=["rows", "tiles"])
def test_gradient_keeps_full_precision_for_huge_logits(rng, shape, target_kind, dtype, offset):
    # the loss is shift-invariant and so is the gradient: p = exp(x - max - log S)
    # must not be computed as exp(x - (max + log S)), where log S is lost in the
    # rounding of max + log S (cross_entropy([[1e300, 1e300, 0.]], [0]) gave the
    # gradient [0, 1, 0] instead of [-0.5, 0.5, 0])
    x, t, w = make_case(rng, shape, None, target_kind, True, ignore=False)
    x = (offset + x).astype(dtype)
    if target_kind == "prob":
        t = t.astype(dtype)
    loss, grad = fx.cross_entropy(x, t, w, label_smoothing=0.1, reduction="none",
                                  return_grad=True)
    want, want_grad = ref.cross_entropy(x, t, w, label_smoothing=0.1, reduction="none",
                                        return_grad=True)
    assert_close(loss, want, rtol=RTOL[np.dtype(dtype)], atol=RTOL[np.dtype(dtype)])
    assert_grad_close(grad, want_grad, dtype)


# ----------------------------------------------------------------------------
# The loss classes
# ----------------------------------------------------------------------------

def test_cross_entropy_loss_class_runs_the_function(rng):
    x, y, w = make_case(rng, (4, 5, 3), None, "index", True)
    go = rng.standard_normal((4, 3))
    loss_fn = fx.CrossEntropyLoss(weight=w, ignore_index=1, reduction="none", label_smoothing=0.1)
    loss, grad = loss_fn(x, y, return_grad=True, grad_output=go)
    want, want_grad = ref.cross_entropy(x, y, w, ignore_index=1, reduction="none",
                                        label_smoothing=0.1, return_grad=True, grad_output=go)
    assert_close(loss, want, rtol=1e-12)
    assert_grad_close(grad, want_grad, F64)
    out = np.empty_like(x)
    assert loss_fn(x, y, return_grad=True, grad_output=go, out=out)[1] is out
    np.testing.assert_array_equal(out, grad)
    assert loss_fn.reduction == "none" and loss_fn.label_smoothing == 0.1
    # axis at construction
    xl = np.moveaxis(x, 1, -1)
    assert_close(fx.CrossEntropyLoss(weight=w, axis=-1, reduction="sum")(xl, y),
                 ref.cross_entropy(x, y, w, reduction="sum"), rtol=1e-12)


def test_nll_loss_class_runs_the_function(rng):
    x, y, w = make_case(rng, (4, 5), None, "index", True)
    loss_fn = fx.NLLLoss(weight=w, reduction="sum")
    loss, grad = loss_fn(x, y, return_grad=True, grad_output=2.0)
    want, want_grad = ref.nll_loss(x, y, w, reduction="sum", return_grad=True, grad_output=2.0)
    assert_close(loss, want, rtol=1e-13)
    assert_close(grad, want_grad, rtol=1e-15)


def test_loss_classes_match_torch_modules(torch, rng):
    x, y, w = make_case(rng, (6, 4), None, "index", True)
    mine = fx.CrossEntropyLoss(weight=w, label_smoothing=0.2)(x, y)
    theirs = torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.2)(
        torch.tensor(x), torch.tensor(y))
    assert_close(mine, theirs.item(), rtol=1e-12)
    lp = ref.log_softmax(x, axis=1)
    mine = fx.NLLLoss(weight=w)(lp, y)
    theirs = torch.nn.NLLLoss(weight=torch.tensor(w))(torch.tensor(lp), torch.tensor(y))
    assert_close(mine, theirs.item(), rtol=1e-13)
