"""SPEC.md "Bad input": errors that name the argument, inputs never modified, and
the array layouts that must simply work (non-contiguous, read-only, memmap,
byte-swapped, empty)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import fastxent as fx
from helpers import assert_close


@pytest.fixture
def case(rng):
    """(logits (4, 3, 2), class indices (4, 2), probabilities, weight (3,))."""
    x = rng.standard_normal((4, 3, 2))
    y = rng.integers(0, 3, size=(4, 2))
    t = rng.random((4, 3, 2))
    w = rng.uniform(0.5, 1.5, 3)
    return x, y, t, w


# ----------------------------------------------------------------------------
# Targets out of range
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("bad, where", [(3, 5), (7, 2), (-1, 7), (-101, 4), (2**40, 6)])
def test_target_out_of_range_names_value_and_index(fn, bad, where):
    # positions and values chosen not to appear elsewhere in a message about
    # C == 3 classes and ignore_index -100
    x = np.zeros((12, 3))
    y = np.zeros(12, np.int64)
    y[where] = bad
    y[where + 1:] = 55          # later bad values: the first one is reported
    f = getattr(fx, fn)
    for kw in ({}, dict(reduction="none", return_grad=True)):
        with pytest.raises(ValueError) as err:
            f(x, y, **kw)
        msg = str(err.value)
        assert re.search(rf"(?<![\d-]){bad}(?!\d)", msg), msg
        assert re.search(rf"(?<![\d-]){where}(?!\d)", msg.replace(str(bad), "")), msg
        assert not re.search(r"\b55\b", msg), msg


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_target_out_of_range_names_multi_dimensional_index(fn):
    x = np.zeros((2, 4, 3, 5))
    y = np.zeros((2, 3, 5), np.int32)
    y[1, 2, 3] = 4
    with pytest.raises(ValueError, match=r"\b4\b.*\(1, 2, 3\)"):
        getattr(fx, fn)(x, y)
    # with axis=-1 the sample index follows the other axes
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        getattr(fx, fn)(np.zeros((2, 3, 4)), np.array([[0, 1, 5], [0, 0, 0]]), axis=-1)


def test_target_out_of_range_in_a_later_block():
    # the target check runs in blocks of 65536: the first bad one anywhere is named
    y = np.zeros(200_000, np.int64)
    y[150_001] = 2
    y[190_000] = 5
    with pytest.raises(ValueError, match=r"\b2\b.*\b150001\b"):
        fx.cross_entropy(np.zeros((200_000, 2), np.float32), y, n_threads=2)


def test_huge_unsigned_target_is_out_of_range():
    y = np.array([0, np.iinfo(np.uint64).max], np.uint64)
    with pytest.raises(ValueError, match=str(np.iinfo(np.uint64).max)):
        fx.cross_entropy(np.zeros((2, 3)), y)


def test_ignore_index_is_not_out_of_range():
    # ignore_index may lie outside [0, C): those positions are skipped, not checked
    loss = fx.cross_entropy(np.zeros((2, 3)), [-7, 1], ignore_index=-7)
    assert_close(loss, np.log(3.0), rtol=1e-15)


# ----------------------------------------------------------------------------
# Shapes
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
@pytest.mark.parametrize("x_shape, y_shape, axis", [((4, 3), (5,), None), ((4, 3), (4, 1), None),
                                                    ((4, 3, 2), (4, 3), None), ((4, 3, 2), (4, 2), -1),
                                                    ((3,), (1,), None), ((4, 3), (), None)])
def test_index_target_shape_mismatch_names_both_shapes(fn, x_shape, y_shape, axis):
    with pytest.raises(ValueError) as err:
        getattr(fx, fn)(np.zeros(x_shape), np.zeros(y_shape, np.int64), axis=axis)
    assert str(x_shape) in str(err.value) and str(y_shape) in str(err.value), str(err.value)


@pytest.mark.parametrize("x_shape, t_shape", [((4, 3), (4, 4)), ((4, 3), (3, 4)), ((4, 3), (4,)),
                                              ((2, 3, 4), (2, 3))])
def test_probability_target_shape_mismatch_names_both_shapes(x_shape, t_shape):
    with pytest.raises(ValueError) as err:
        fx.cross_entropy(np.zeros(x_shape), np.zeros(t_shape))
    assert str(x_shape) in str(err.value) and str(t_shape) in str(err.value), str(err.value)


@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_zero_dimensional_input_is_an_error(fn):
    with pytest.raises(ValueError, match="dimension"):
        getattr(fx, fn)(np.float64(2.0), 0)


# ----------------------------------------------------------------------------
# Types
# ----------------------------------------------------------------------------

# The log-sum-exp family takes integers and bools as SciPy does (test_lse_scipy_parity.py).
@pytest.mark.parametrize("fn, dtype", [
    (fn, dtype) for fn in ["cross_entropy", "nll_loss", "logsumexp", "softmax", "log_softmax"]
    for dtype in [np.int64, np.int32, np.uint8, np.bool_, np.complex128, object, "U3"]
    if fn in ("cross_entropy", "nll_loss") or np.dtype(dtype).kind not in "iub"])
def test_non_floating_input_is_a_type_error(fn, dtype):
    x = np.zeros((2, 3)).astype(dtype)
    args = (x, np.zeros(2, np.int64)) if fn in ("cross_entropy", "nll_loss") else (x,)
    with pytest.raises(TypeError, match="input|x"):
        getattr(fx, fn)(*args)


def test_long_double_input_is_a_type_error():
    if np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError):
        fx.cross_entropy(np.zeros((2, 3), np.longdouble), [0, 1])


@pytest.mark.parametrize("tdtype", [np.float64, np.float32, np.float16])
def test_floating_target_to_nll_loss_is_a_type_error(tdtype):
    with pytest.raises(TypeError, match="target"):
        fx.nll_loss(np.zeros((2, 3)), np.array([0.0, 1.0], tdtype))


@pytest.mark.parametrize("target", [np.array([True, False]), np.array([1 + 0j, 0j]),
                                    np.array(["a", "b"])])
def test_other_target_dtypes_are_type_errors(target):
    with pytest.raises(TypeError, match="target"):
        fx.cross_entropy(np.zeros((2, 3)), target)


# ----------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", ["avg", "Mean", "elementwise_mean", None, 1, ""])
def test_unknown_reduction(case, reduction):
    x, y, _, _ = case
    for call in (lambda: fx.cross_entropy(x, y, reduction=reduction),
                 lambda: fx.nll_loss(x, y, reduction=reduction),
                 lambda: fx.CrossEntropyLoss(reduction=reduction),
                 lambda: fx.NLLLoss(reduction=reduction)):
        with pytest.raises(ValueError, match="reduction"):
            call()


@pytest.mark.parametrize("eps", [-0.1, -1e-300, 1.0000001, 2, np.inf, np.nan])
def test_label_smoothing_outside_unit_interval(case, eps):
    x, y, t, _ = case
    with pytest.raises(ValueError, match="label_smoothing"):
        fx.cross_entropy(x, y, label_smoothing=eps)
    with pytest.raises(ValueError, match="label_smoothing"):
        fx.cross_entropy(x, t, label_smoothing=eps)
    with pytest.raises(ValueError, match="label_smoothing"):
        fx.CrossEntropyLoss(label_smoothing=eps)


@pytest.mark.parametrize("eps", ["0.1x", None, [0.1]])
def test_label_smoothing_of_the_wrong_type(case, eps):
    x, y, _, _ = case
    with pytest.raises((TypeError, ValueError), match="label_smoothing"):
        fx.cross_entropy(x, y, label_smoothing=eps)


@pytest.mark.parametrize("axis", [3, -4, 10])
def test_axis_out_of_range(case, axis):
    x, y, _, _ = case
    for call in (lambda: fx.cross_entropy(x, y, axis=axis), lambda: fx.nll_loss(x, y, axis=axis),
                 lambda: fx.logsumexp(x, axis=axis), lambda: fx.softmax(x, axis=axis),
                 lambda: fx.log_softmax(x, axis=axis)):
        with pytest.raises(ValueError, match="axis"):
            call()


@pytest.mark.parametrize("axis", [1.0, "1", (0, 1)])
def test_axis_of_the_wrong_type(case, axis):
    x, y, _, _ = case
    with pytest.raises(TypeError, match="axis"):
        fx.cross_entropy(x, y, axis=axis)
    if not isinstance(axis, tuple):      # the log-sum-exp family takes a tuple, as SciPy
        with pytest.raises(TypeError, match="axis"):
            fx.softmax(x, axis=axis)


@pytest.mark.parametrize("ignore_index", [1.5, "a", None, True])
def test_ignore_index_of_the_wrong_type(case, ignore_index):
    x, y, _, _ = case
    with pytest.raises(TypeError, match="ignore_index"):
        fx.cross_entropy(x, y, ignore_index=ignore_index)


@pytest.mark.parametrize("weight", [np.ones(4), np.ones(2), np.ones((1, 3)), np.ones((3, 1)),
                                    2.0, []])
@pytest.mark.parametrize("fn", ["cross_entropy", "nll_loss"])
def test_weight_of_the_wrong_shape(case, fn, weight):
    x, y, _, _ = case
    with pytest.raises(ValueError, match="weight"):
        getattr(fx, fn)(x, y, weight)
    with pytest.raises(ValueError, match="weight"):
        getattr(fx, {"cross_entropy": "CrossEntropyLoss", "nll_loss": "NLLLoss"}[fn])(weight)(x, y)


@pytest.mark.parametrize("weight", [np.array(["a", "b", "c"]), np.ones(3, complex), [None] * 3])
def test_weight_of_the_wrong_dtype(case, weight):
    x, y, _, _ = case
    with pytest.raises(TypeError, match="weight"):
        fx.cross_entropy(x, y, weight)


@pytest.mark.parametrize("reduction, go", [("mean", np.ones(1)), ("sum", np.ones((4, 2))),
                                           ("none", np.ones(8)), ("none", np.ones((2, 4))),
                                           ("none", 1.0), ("mean", [1.0, 2.0])])
def test_grad_output_of_the_wrong_shape(case, reduction, go):
    x, y, t, _ = case
    for target in (y, t):
        with pytest.raises(ValueError, match="grad_output"):
            fx.cross_entropy(x, target, reduction=reduction, return_grad=True, grad_output=go)
    with pytest.raises(ValueError, match="grad_output"):
        fx.nll_loss(x, y, reduction=reduction, return_grad=True, grad_output=go)


@pytest.mark.parametrize("go", [1j, "1", np.array(["a"])[0]])
def test_grad_output_of_the_wrong_dtype(case, go):
    x, y, _, _ = case
    with pytest.raises(TypeError, match="grad_output"):
        fx.cross_entropy(x, y, return_grad=True, grad_output=go)


def test_grad_output_and_out_need_return_grad(case):
    x, y, _, _ = case
    with pytest.raises(ValueError, match="return_grad"):
        fx.cross_entropy(x, y, grad_output=1.0)
    with pytest.raises(ValueError, match="return_grad"):
        fx.nll_loss(x, y, out=np.empty_like(x))


def _out_cases(x):
    """(description, out, expected exception) for bad ``out`` arrays."""
    ro = np.empty_like(x)
    ro.setflags(write=False)
    return [
        ("wrong shape", np.empty(x.shape[::-1]), ValueError),
        ("wrong shape, same size", np.empty(x.size), ValueError),
        ("wrong dtype", np.empty(x.shape, np.float32), TypeError),
        ("byte-swapped dtype", np.empty(x.shape, x.dtype.newbyteorder()), TypeError),
        ("non-contiguous", np.empty(x.shape[:-1] + (2 * x.shape[-1],))[..., ::2], ValueError),
        ("Fortran order", np.asfortranarray(np.empty(x.shape)), ValueError),
        ("read-only", ro, ValueError),
        ("the input itself", x, ValueError),
        ("a list", np.empty(x.shape).tolist(), TypeError),
    ]


@pytest.mark.parametrize("which", range(9))
def test_bad_out_is_rejected_by_name(case, which):
    x, y, t, _ = case
    desc, out, exc = _out_cases(x)[which]
    calls = [lambda: fx.cross_entropy(x, y, return_grad=True, out=out),
             lambda: fx.cross_entropy(x, t, return_grad=True, out=out),
             lambda: fx.nll_loss(x, y, return_grad=True, out=out),
             lambda: fx.softmax(x, out=out),
             lambda: fx.log_softmax(x, out=out)]
    for call in calls:
        with pytest.raises(exc, match="out"):
            call()


def test_out_overlapping_a_probability_target_is_rejected(case):
    x, _, t, _ = case
    with pytest.raises(ValueError, match="out"):
        fx.cross_entropy(x, t, return_grad=True, out=t)


def test_out_overlapping_grad_output_is_rejected(rng):
    # grad_output of "none" lives in the same buffer as out: refused by name
    # (the kernels would read grad_output entries already overwritten), with
    # grad_output left as it was
    N, C = 4, 3
    x = rng.standard_normal((N, C))
    y = np.array([0, 1, 2, 0])
    go = rng.standard_normal(N)
    buf = np.empty(N * C + N)
    out = buf[: N * C].reshape(N, C)
    go_view = buf[N * C - N: N * C]
    go_view[:] = go
    before = buf.copy()
    for fn in ("cross_entropy", "nll_loss"):
        with pytest.raises(ValueError, match="out"):
            getattr(fx, fn)(x, y, reduction="none", return_grad=True, grad_output=go_view, out=out)
        np.testing.assert_array_equal(buf, before)


def test_out_overlapping_weight_is_rejected(rng):
    N, C = 4, 3
    x = rng.standard_normal((N, C))
    y = np.array([0, 1, 2, 0])
    w = rng.uniform(0.5, 1.5, C)
    out = np.empty((N, C))
    w_view = out[1]
    w_view[:] = w
    before = out.copy()
    for fn in ("cross_entropy", "nll_loss"):
        with pytest.raises(ValueError, match="out"):
            getattr(fx, fn)(x, y, w_view, return_grad=True, out=out)
        np.testing.assert_array_equal(out, before)
    with pytest.raises(ValueError, match="out"):
        fx.CrossEntropyLoss(w_view)(x, y, return_grad=True, out=out)
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("name", ["cross_entropy", "softmax", "log_softmax"])
def test_float16_out_overlapping_the_input_is_rejected(rng, name):
    # float16 is computed in a float32 copy: out=input must still be refused (as
    # for float32/64), not silently overwrite the caller's input
    x = rng.standard_normal((4, 3)).astype(np.float16)
    before = x.copy()
    with pytest.raises(ValueError, match="out"):
        if name == "cross_entropy":
            fx.cross_entropy(x, [0, 1, 2, 0], return_grad=True, out=x)
        else:
            getattr(fx, name)(x, out=x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("n", [0, -1])
def test_bad_thread_counts(case, n):
    x, y, _, _ = case
    with pytest.raises(ValueError, match="n_threads"):
        fx.cross_entropy(x, y, n_threads=n)
    with pytest.raises(ValueError, match="n_threads"):
        fx.softmax(x, n_threads=n)
    with pytest.raises(ValueError, match="n_threads"):
        fx.set_num_threads(n)


@pytest.mark.parametrize("n", [1.5, "2"])
def test_thread_count_of_the_wrong_type(case, n):
    x, y, _, _ = case
    with pytest.raises(TypeError, match="n_threads"):
        fx.cross_entropy(x, y, n_threads=n)
    with pytest.raises(TypeError, match="n_threads"):
        fx.set_num_threads(n)


# ----------------------------------------------------------------------------
# Inputs are never modified
# ----------------------------------------------------------------------------

def _calls(x, y, t, w, go_none):
    """Every public entry point with every array argument it takes."""
    return [
        ("cross_entropy index", fx.cross_entropy, (x, y, w),
         dict(label_smoothing=0.1, return_grad=True)),
        ("cross_entropy index none", fx.cross_entropy, (x, y, w),
         dict(reduction="none", return_grad=True, grad_output=go_none)),
        ("cross_entropy prob", fx.cross_entropy, (x, t, w),
         dict(reduction="none", return_grad=True, grad_output=go_none)),
        ("nll_loss", fx.nll_loss, (x, y, w), dict(reduction="none", return_grad=True,
                                                   grad_output=go_none)),
        ("CrossEntropyLoss", fx.CrossEntropyLoss(weight=w, reduction="none"), (x, y),
         dict(return_grad=True, grad_output=go_none)),
        ("logsumexp", fx.logsumexp, (x,), dict(axis=1)),
        ("softmax", fx.softmax, (x,), dict(axis=1)),
        ("log_softmax", fx.log_softmax, (x,), dict(axis=1)),
    ]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
def test_inputs_are_never_modified(rng, dtype, contiguous):
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    y = rng.integers(0, 3, size=(4, 5))
    y[0, 0] = -100
    t = rng.random((4, 3, 5)).astype(dtype)
    w = rng.uniform(0.5, 1.5, 3).astype(dtype)
    go = rng.standard_normal((4, 5))
    if not contiguous:
        x = np.repeat(x, 2, axis=-1)[..., ::2]
        t = np.repeat(t, 2, axis=-1)[..., ::2]
        y = np.repeat(y, 2, axis=-1)[..., ::2]
        w = np.repeat(w, 2)[::2]
        go = np.repeat(go, 2, axis=-1)[..., ::2]
    arrays = [x, y, t, w, go]
    copies = [a.copy() for a in arrays]
    for name, fn, args, kw in _calls(x, y, t, w, go):
        fn(*args, **kw)
        for a, c in zip(arrays, copies):
            np.testing.assert_array_equal(a, c, err_msg=f"{name} modified an argument")
    # out= never touches anything else either
    fx.cross_entropy(x, t, w, return_grad=True, reduction="none", grad_output=go,
                     out=np.empty(x.shape, dtype))
    for a, c in zip(arrays, copies):
        np.testing.assert_array_equal(a, c)


# ----------------------------------------------------------------------------
# Layouts that just work
# ----------------------------------------------------------------------------

def _results(x, y, t, w, go):
    """Losses and gradients of every entry point, for comparing layouts."""
    res = []
    for _, fn, args, kw in _calls(x, y, t, w, go):
        r = fn(*args, **kw)
        res.extend(r if isinstance(r, tuple) else (r,))
    return res


def _assert_same_results(got, want):
    assert len(got) == len(want)
    for g, v in zip(got, want):
        assert np.asarray(g).dtype == np.asarray(v).dtype
        np.testing.assert_array_equal(g, v)


@pytest.fixture
def native(rng):
    x = rng.standard_normal((4, 3, 5))
    y = rng.integers(0, 3, size=(4, 5))
    t = rng.random((4, 3, 5))
    w = rng.uniform(0.5, 1.5, 3)
    go = rng.standard_normal((4, 5))
    return x, y, t, w, go


def test_non_contiguous_arrays(native):
    want = _results(*native)
    strided = [np.repeat(a, 2, axis=-1)[..., ::2] for a in native]
    assert not any(a.flags.c_contiguous for a in strided)
    _assert_same_results(_results(*strided), want)
    # Fortran order and negative strides
    fortran = [np.asfortranarray(a) for a in native]
    _assert_same_results(_results(*fortran), want)
    flipped = [np.flip(np.flip(a, axis=-1).copy(), axis=-1) for a in native]
    _assert_same_results(_results(*flipped), want)


def test_read_only_arrays(native):
    want = _results(*native)
    ro = [a.copy() for a in native]
    for a in ro:
        a.setflags(write=False)
    _assert_same_results(_results(*ro), want)


def test_read_only_memmaps(native, tmp_path):
    want = _results(*native)
    maps = []
    for i, a in enumerate(native):
        path = tmp_path / f"a{i}.dat"
        mm = np.memmap(path, dtype=a.dtype, mode="w+", shape=a.shape)
        mm[...] = a
        mm.flush()
        del mm
        maps.append(np.memmap(path, dtype=a.dtype, mode="r", shape=a.shape))
    _assert_same_results(_results(*maps), want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_byte_swapped_arrays(native, dtype):
    native = [a.astype(dtype) if a.dtype.kind == "f" else a for a in native]
    want = _results(*native)
    swapped = [a.astype(a.dtype.newbyteorder()) for a in native]
    assert all(not a.dtype.isnative for a in swapped)
    got = _results(*swapped)
    assert len(got) == len(want)
    for g, v in zip(got, want):
        # results come back in native byte order, with the same values
        np.testing.assert_array_equal(g, v)
        assert np.asarray(g).dtype == np.asarray(v).dtype.newbyteorder("=")


@pytest.mark.parametrize("shape", [(0, 3), (0, 3, 4), (2, 3, 0)])
def test_empty_arrays(shape):
    x = np.zeros(shape)
    y = np.zeros(shape[:1] + shape[2:], np.int64)
    t = np.zeros(shape)
    for target in (y, t):
        loss, grad = fx.cross_entropy(x, target, reduction="none", return_grad=True)
        assert loss.shape == y.shape and grad.shape == shape
        assert np.isnan(fx.cross_entropy(x, target))
        assert fx.cross_entropy(x, target, reduction="sum") == 0.0
    assert fx.nll_loss(x, y, reduction="none").shape == y.shape
    assert fx.softmax(x, axis=1).shape == shape
    assert fx.logsumexp(x, axis=1).shape == y.shape


def test_empty_class_axis_with_probability_targets_is_zero_loss():
    # an empty class axis: each per-sample loss is an empty sum, 0 (as PyTorch)
    loss, grad = fx.cross_entropy(np.zeros((3, 0)), np.zeros((3, 0)), reduction="none",
                                  return_grad=True)
    np.testing.assert_array_equal(loss, np.zeros(3))
    assert grad.shape == (3, 0)
