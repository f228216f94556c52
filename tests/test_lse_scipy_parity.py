"""SciPy parity of logsumexp, softmax and log_softmax (issue 18, item 2).

SPEC.md: "As SciPy: axis may be a tuple, logsumexp takes b= and return_sign=,
integer and bool input is converted to float64 (the losses still refuse it), and
0-d input gives NumPy scalars."  Each test compares with ``scipy.special``
itself on the same arguments; tests/external/ also replays SciPy's own test file.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import assert_close

special = pytest.importorskip("scipy.special")

FUNCS = ["logsumexp", "softmax", "log_softmax"]
TOL = dict(rtol=1e-13, atol=1e-14)


def scipy_call(name, *args, **kwargs):
    with np.errstate(all="ignore"):
        return getattr(special, name)(*args, **kwargs)


def same_type_and_shape(got, want):
    """fastxent returns what SciPy returns: a NumPy scalar or an array, same shape and dtype."""
    assert isinstance(got, np.ndarray) == isinstance(want, np.ndarray), (type(got), type(want))
    assert np.shape(got) == np.shape(want)
    assert np.asarray(got).dtype == np.asarray(want).dtype


# ---- tuple axes ------------------------------------------------------------------

TUPLE_AXES = [(0, 1), (1, 2), (2, 3), (0, 2), (1, 3), (0, 3), (0, 1, 3), (-1, 0), (-3, -1),
              (0, 1, 2, 3), (), (2,)]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", TUPLE_AXES, ids=str)
def test_tuple_axes_logsumexp(rng, axis, keepdims):
    x = 3.0 * rng.standard_normal((3, 4, 5, 6))
    got = fx.logsumexp(x, axis=axis, keepdims=keepdims)
    want = scipy_call("logsumexp", x, axis=axis, keepdims=keepdims)
    same_type_and_shape(got, want)
    assert_close(got, want, **TOL)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", TUPLE_AXES, ids=str)
def test_tuple_axes_softmax(rng, name, axis):
    x = 3.0 * rng.standard_normal((3, 4, 5, 6))
    got = getattr(fx, name)(x, axis=axis)
    want = scipy_call(name, x, axis=axis)
    same_type_and_shape(got, want)
    assert got.flags.c_contiguous
    assert_close(got, want, **TOL)


@pytest.mark.parametrize("axis", [(0, 2), (0, 3), (1, 3)], ids=str)
def test_tuple_axes_across_length_one_axes_need_no_move(axis):
    # (5, 1, 4, 1): axes 0 and 2 are adjacent once the length-1 axis is ignored
    from fastxent import _lse
    assert _lse.layout((5, 1, 4, 1), (0, 2)).perm is None
    assert _lse.layout((5, 2, 4, 1), (0, 2)).perm is not None
    x = np.arange(20.0).reshape(5, 1, 4, 1) / 7
    for name in FUNCS:
        assert_close(getattr(fx, name)(x, axis=axis), scipy_call(name, x, axis=axis), **TOL)


@pytest.mark.parametrize("axis", [(0, 2), (1, 2)], ids=str)
def test_tuple_axes_with_out_and_float32(rng, axis):
    x = rng.standard_normal((4, 3, 5)).astype(np.float32)
    for name in ("softmax", "log_softmax"):
        out = np.full_like(x, np.nan)
        res = getattr(fx, name)(x, axis=axis, out=out)
        assert res is out
        assert_close(out, scipy_call(name, x.astype(np.float64), axis=axis), rtol=2e-6, atol=2e-6)


def test_tuple_axes_on_non_contiguous_input(rng):
    x = rng.standard_normal((6, 5, 4)).transpose(2, 0, 1)[:, ::2]
    for axis in [(0, 2), (1, 2), None]:
        for name in FUNCS:
            assert_close(getattr(fx, name)(x, axis=axis), scipy_call(name, x, axis=axis), **TOL)


@pytest.mark.parametrize("axis", [(0, 0), (1, -1)], ids=str)
def test_duplicate_axis_is_a_value_error(axis):
    for name in FUNCS:
        with pytest.raises(ValueError, match="axis"):
            getattr(fx, name)(np.zeros((2, 2)), axis=axis)


@pytest.mark.parametrize("axis", [[0, 1], (0, 1.0), True, (0, 2), 2.0])
def test_bad_axes_are_refused(axis):
    # a list is a TypeError, as in NumPy and SciPy; an axis out of range a ValueError
    for name in FUNCS:
        with pytest.raises((TypeError, ValueError), match="axis"):
            getattr(fx, name)(np.zeros((2, 2)), axis=axis)


# ---- integer and bool input --------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint64,
                                   np.bool_])
@pytest.mark.parametrize("name", FUNCS)
def test_integer_and_bool_input_computed_as_float64(name, dtype):
    # SPEC: float64 for every integer dtype and bool, as scipy.special.logsumexp.
    # (SciPy's softmax and log_softmax follow np.exp instead: float16 for int8,
    # float32 for int16, TypeError for bool; tests/external/DIFFERENCES.md.)
    x = np.array([[3, 0, 1], [2, 2, 0]]).astype(dtype)
    for axis in (None, 0, -1):
        got = getattr(fx, name)(x, axis=axis)
        want = scipy_call(name, x.astype(np.float64), axis=axis)
        same_type_and_shape(got, want)
        assert np.asarray(got).dtype == np.float64
        assert_close(got, want, **TOL)
    if name == "logsumexp" or np.dtype(dtype).itemsize >= 4:
        same_type_and_shape(got, scipy_call(name, x, axis=-1))


def test_python_integers_and_lists_like_scipy():
    for name in FUNCS:
        for x in (1000, [1000, 0, 0, 0], [[1, 2], [3, 4]]):
            got, want = getattr(fx, name)(x, axis=None), scipy_call(name, x, axis=None)
            same_type_and_shape(got, want)
            assert_close(got, want, **TOL)


def test_losses_still_refuse_integer_input():
    x = np.zeros((2, 3), np.int64)
    with pytest.raises(TypeError, match="input"):
        fx.cross_entropy(x, [0, 1])
    with pytest.raises(TypeError, match="input"):
        fx.nll_loss(x, [0, 1])


# ---- complex input -----------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCS)
def test_complex_input_is_a_clear_type_error(name):
    with pytest.raises(TypeError, match="complex"):
        getattr(fx, name)(np.array([1 + 1j, 2 - 1j]))


# ---- 0-d input and keepdims --------------------------------------------------------

@pytest.mark.parametrize("x", [np.array(2.5), np.float32(-1.5), 1000, 1.0, True],
                         ids=["0d-f64", "f32", "int", "float", "bool"])
@pytest.mark.parametrize("name", FUNCS)
def test_zero_dimensional_input_gives_numpy_scalars(name, x):
    for axis in (None, 0, -1):
        got = getattr(fx, name)(x, axis=axis)
        want = scipy_call(name, np.asarray(x, dtype=np.float64 if x is True else None), axis=axis)
        assert isinstance(got, np.floating) and not isinstance(got, np.ndarray)
        same_type_and_shape(got, want)
        assert_close(got, want, **TOL)


@pytest.mark.parametrize("axis", [None, 0, -1, (0,)], ids=str)
def test_keepdims_of_zero_dimensional_input_like_scipy(axis):
    got = fx.logsumexp(np.array(2.5), axis=axis, keepdims=True)
    want = scipy_call("logsumexp", np.array(2.5), axis=axis, keepdims=True)
    same_type_and_shape(got, want)          # shape (1,): SciPy treats 0-d input as 1-d
    assert_close(got, want, rtol=0)


@pytest.mark.parametrize("axis", [None, 1, (0, 2), ()], ids=str)
def test_keepdims_like_scipy(rng, axis):
    x = rng.standard_normal((2, 3, 4))
    got = fx.logsumexp(x, axis=axis, keepdims=True)
    want = scipy_call("logsumexp", x, axis=axis, keepdims=True)
    same_type_and_shape(got, want)
    assert_close(got, want, **TOL)


@pytest.mark.parametrize("value", [1, 0, "yes", None, np.array([True])])
def test_keepdims_and_return_sign_take_bools_only(value):
    with pytest.raises(TypeError, match="keepdims"):
        fx.logsumexp(np.zeros(3), keepdims=value)
    with pytest.raises(TypeError, match="return_sign"):
        fx.logsumexp(np.zeros(3), return_sign=value)


# ---- b= and return_sign= ---------------------------------------------------------
# Fused into the log-sum-exp kernel: a weighted sum of exponentials.

WEIGHTED = [
    # (x, b, axis)
    (np.arange(6.0).reshape(2, 3), np.array([1.0, -0.5, 2.0]), -1),
    (np.arange(6.0).reshape(2, 3), np.array([[1.0], [-3.0]]), 0),
    (np.array([1000.0, 1000.0]), np.array([1.2, 1.2]), None),
    (np.array([1.0, 1.0, 1.0]), np.array([1.0, -1.0, -1.0]), None),      # negative sum
    (np.array([1.0, 1.0]), np.array([1.0, -1.0]), None),                  # zero sum
    (np.array([1.0, 10000.0]), np.array([1.0, 0.0]), None),               # zero weight on the max
    (np.array([1.0, np.inf, np.nan]), np.array([2.0, 0.0, 0.0]), None),  # zero weights hide inf, NaN
    (np.array([3.06409428, 0.37251854, 3.87471931]),
     np.array([1.88190708, 2.84174795, -0.85016884]), None),             # scipy gh-22903
    (np.array([np.inf]), np.array([-1.0]), None),                         # scipy gh-23548
    (np.array([-np.inf, -np.inf]), np.array([1.0, -1.0]), None),
    (np.zeros((4, 1, 2, 1)), np.ones((3, 1, 5)), None),                  # b broadcasts x
    (np.zeros((2, 3)), np.array(2.0), 1),
    # (weights from -1 to 2: with linspace(-1, 1, 24) and axis (0, 2) the middle
    # sum is 0 in real numbers, and each library returns its rounding noise:
    # SciPy -inf, fastxent NaN, the floats' exact sum being -3.3e-16)
    (np.ones((2, 3, 4)), np.linspace(-1, 2, 24).reshape(2, 3, 4), (0, 2)),
    (np.ones((2, 3, 4)), np.linspace(-1, 2, 24).reshape(2, 3, 4), (1, 2)),
    (np.array(2.5), np.array(-3.0), None),                                # 0-d
    (np.array(2.5), np.array([1.0, 2.0]), 0),                             # b broadcasts a 0-d x
]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("case", range(len(WEIGHTED)))
def test_b_weights_match_scipy(case, keepdims):
    x, b, axis = WEIGHTED[case]
    got = fx.logsumexp(x, axis=axis, b=b, keepdims=keepdims)
    want = scipy_call("logsumexp", x, axis=axis, b=b, keepdims=keepdims)
    same_type_and_shape(got, want)
    assert_close(got, want, **TOL)


@pytest.mark.parametrize("case", range(len(WEIGHTED)))
def test_return_sign_matches_scipy(case):
    x, b, axis = WEIGHTED[case]
    for weights in (b, None):
        got = fx.logsumexp(x, axis=axis, b=weights, return_sign=True)
        want = scipy_call("logsumexp", x, axis=axis, b=weights, return_sign=True)
        assert isinstance(got, tuple) and len(got) == 2
        for g, w in zip(got, want):
            same_type_and_shape(g, w)
            assert_close(g, w, **TOL)


@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float32, np.float64),
                                    (np.int32, np.float32), (np.int64, np.int64),
                                    (np.float16, np.float16), (np.float64, np.bool_),
                                    (np.int8, np.float16), (np.bool_, np.float32),
                                    (np.float32, float), (np.float32, int), (np.float16, float),
                                    (np.int64, float), (np.float32, np.float64().dtype.type)],
                         ids=str)
def test_b_result_dtype_like_scipy(dtypes):
    # a Python number as b promotes weakly (NEP 50): float32 x, b=2.0 stays float32
    x = np.array([[2, 1, 0], [0, 1, 3]]).astype(dtypes[0])
    b = dtypes[1](2) if dtypes[1] in (float, int) else np.array([1, 2, 1]).astype(dtypes[1])
    for return_sign in (False, True):
        got = fx.logsumexp(x, axis=-1, b=b, return_sign=return_sign)
        want = scipy_call("logsumexp", x, axis=-1, b=b, return_sign=return_sign)
        for g, w in zip(got, want) if return_sign else [(got, want)]:
            same_type_and_shape(g, w)
            assert_close(g, w, rtol=1e-3 if np.asarray(w).dtype.itemsize == 2 else 1e-6)
    scalar_weight = fx.logsumexp(x, axis=-1, b=np.float64(2.0))        # a NumPy scalar is strong
    assert scalar_weight.dtype == np.result_type(np.asarray(x).dtype, np.float64)


@pytest.mark.parametrize("shape, axis", [((7, 300), -1), ((300, 7), 0), ((3, 5, 70), 1),
                                         ((2, 40000), -1)], ids=str)
def test_b_both_kernel_layouts(rng, shape, axis):
    # rows, strided tiles and long rows cut into chunks, with weights of both signs
    x = 4.0 * rng.standard_normal(shape)
    b = rng.standard_normal(shape)
    b[rng.random(shape) < 0.1] = 0.0
    got = fx.logsumexp(x, axis=axis, b=b, return_sign=True)
    want = scipy_call("logsumexp", x, axis=axis, b=b, return_sign=True)
    assert_close(got[1], want[1], rtol=0)
    assert_close(got[0], want[0], rtol=1e-11, atol=1e-12)


def test_b_of_the_wrong_kind_is_refused():
    with pytest.raises(TypeError, match="b"):
        fx.logsumexp(np.zeros(3), b=np.array([1j, 0, 0]))
    with pytest.raises(ValueError, match="b"):
        fx.logsumexp(np.zeros(3), b=np.ones(4))


def test_b_leaves_its_arguments_unmodified():
    x, b = np.array([5.0, 4.0]), np.array([3.0, -2.0])
    fx.logsumexp(x, b=b, return_sign=True)
    assert x.tolist() == [5.0, 4.0] and b.tolist() == [3.0, -2.0]


@pytest.mark.parametrize("shape, axis", [((0,), None), ((2, 0), 1), ((3, 0, 2), (1,))], ids=str)
def test_return_sign_of_an_empty_sum_is_zero(shape, axis):
    # tests/external/DIFFERENCES.md, lse-empty-sign-zero: SciPy gives -1 here (the
    # sign of its -inf placeholder) but 0 for weights that are all zero
    lse, sign = fx.logsumexp(np.zeros(shape), axis=axis, return_sign=True)
    assert np.all(np.asarray(lse) == -np.inf)
    assert np.all(np.asarray(sign) == 0.0)
    zero_weights = scipy_call("logsumexp", np.ones(3), b=np.zeros(3), return_sign=True)
    assert zero_weights[1] == 0.0


# ---- b= against the float64 reference and mpmath ---------------------------------
# The error of a weighted sum is relative to its condition number, sum|terms| / |sum|:
# reference.logsumexp(..., details=True) gives that scale, in which a few ulp
# of the computing dtype are allowed.

ULPS = 16


def assert_lse_within(got, want, scale, dtype, err_msg=""):
    """Finite values within ULPS ulp of ``dtype`` times their error scale; the
    non-finite ones (NaN, +-inf) exactly where the reference has them."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    finite = np.isfinite(want)
    assert_close(np.where(finite, 0.0, got), np.where(finite, 0.0, want), rtol=0, err_msg=err_msg)
    tol = ULPS * np.finfo(dtype).eps * np.asarray(scale)
    np.testing.assert_array_less(np.abs(np.where(finite, got - want, 0.0)), tol + 1e-300,
                                 err_msg=err_msg)


FUZZ_LAYOUTS = [((7, 300), -1), ((300, 7), 0), ((3, 5, 70), 1), ((2, 40000), -1), ((40, 20), -1),
                ((4, 6, 5), (0, 2)), ((50,), None), ((6, 1, 33), (1, 2)), ((9, 3, 2), (0, 1))]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis", FUZZ_LAYOUTS, ids=str)
def test_b_fuzz_against_reference(rng, shape, axis, dtype):
    # rows, tiles of few classes, strided tiles, long rows cut into chunks, moved
    # axes; weights of both signs, zeros (masking the largest x too), tiny ones
    for trial in range(6):
        x = (rng.standard_normal(shape) * [0.1, 3.0, 30.0][trial % 3]).astype(dtype)
        b = rng.standard_normal(shape) * (1e-3 if trial == 4 else 1.0)
        b[rng.random(shape) < 0.2] = 0.0
        if trial % 2:
            b = np.abs(b)
        b = b.astype(dtype)
        lse, sign = fx.logsumexp(x, axis=axis, b=b, return_sign=True)
        want, want_sign, scale = reference_lse(x, axis, b)
        assert_lse_within(lse, want, scale, dtype, err_msg=f"trial {trial}")
        assert_close(sign, want_sign, rtol=0)
        assert np.asarray(lse).dtype == dtype
        plain = fx.logsumexp(x, axis=axis, b=b)              # no sign: NaN where negative
        assert_close(plain, np.where(want_sign < 0, np.nan, lse), rtol=0)


def reference_lse(x, axis, b):
    return ref.logsumexp(x.astype(np.float64), axis, b=np.asarray(b, np.float64),
                         return_sign=True, details=True)


@pytest.mark.parametrize("shape, axis", [((3, 7, 4), -1), ((3, 7, 4), 1), ((5, 100), -1)], ids=str)
def test_b_broadcast_shapes(rng, shape, axis):
    # b of fewer dimensions, or of length 1 along the reduced axis or elsewhere
    x = 2.0 * rng.standard_normal(shape)
    for bshape in [shape[-1:], (1,) + shape[1:], shape[:-1] + (1,), (),
                   (shape[0],) + (1,) * (len(shape) - 1)]:
        b = rng.standard_normal(bshape)
        got = fx.logsumexp(x, axis=axis, b=b, return_sign=True)
        want = scipy_call("logsumexp", x, axis=axis, b=b, return_sign=True)
        assert_close(got[1], want[1], rtol=0, err_msg=str(bshape))
        assert_close(got[0], want[0], rtol=1e-11, atol=1e-12, err_msg=str(bshape))


MP_ROWS = [
    # (x, b): results near 0, sums that nearly cancel, weights at the max that cancel
    ([0.0, -40.0], [1.0, 1.0]),
    ([0.0, -40.0], [1.0, -1.0]),
    ([0.0, 0.0, -50.0], [0.5, 0.5, 3.0]),
    ([0.0, -1e-9], [1.0, -1.0]),
    ([1.0, 1.0, 0.0], [1.0, -1.0, 1.0]),                      # the max's weights cancel
    ([5.0, 5.0, 4.0, -3.0], [2.0, -2.0 + 1e-12, 1.0, -0.25]),
    ([0.0, -700.0], [1e-300, 1.0]),                           # a tiny weight at the max
    ([30.0, -30.0, 0.0], [1e-20, 1e20, -1.0]),
    ([-1e-300, 0.0], [1.0, 1.0]),
    (list(np.linspace(-3.0, 0.0, 31)), list(np.cos(np.arange(31.0)))),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", range(len(MP_ROWS)))
def test_b_against_mpmath(case, dtype):
    pytest.importorskip("mpmath")
    x, b = (np.array(v, dtype) for v in MP_ROWS[case])
    if dtype == np.float32 and not (np.isfinite(x).all() and np.isfinite(b).all()
                                    and (b[b != 0] != 0).all()):
        pytest.skip("not representable in float32")
    mp_lse, mp_sign = ref.mp_logsumexp_row(x.astype(np.float64), b.astype(np.float64))
    _, _, scale = reference_lse(x, None, b)
    for layout in ("row", "tile", "long-row"):
        xs, bs, ax = x, b, None
        if layout == "tile":              # the same sum as a strided column
            xs, bs, ax = np.stack([x, x], 1), np.stack([b, b], 1), 0
        elif layout == "long-row":        # spread over chunks, padded with zero weights
            pad = 40000
            xs = np.concatenate([np.full(pad, 1e4, dtype), x, np.full(pad, -7.0, dtype)])
            bs = np.concatenate([np.zeros(pad, dtype), b, np.zeros(pad, dtype)])
        lse, sign = fx.logsumexp(xs, axis=ax, b=bs, return_sign=True)
        lse, sign = np.ravel(lse)[0], np.ravel(sign)[0]
        tol = ULPS * np.finfo(dtype).eps * scale
        if tol > 0.5:      # the dtype cannot resolve this sum (1 - exp(-1e-9) in float32)
            continue
        assert sign == mp_sign, layout
        assert abs(float(lse) - mp_lse) <= tol + 2 * np.spacing(dtype(abs(mp_lse))), layout


def test_b_result_near_zero_keeps_relative_precision():
    # the weighted sum keeps the terms at the max apart: log1p of the rest
    for x, b in [([0.0, -40.0], [1.0, 1.0]), ([0.0, -40.0], [1.0, -1.0]),
                 ([0.0, 0.0, -45.0], [0.5, 0.5, 2.0])]:
        got = fx.logsumexp(np.array(x), b=np.array(b))
        want = ref.mp_logsumexp_row(np.array(x), np.array(b))[0]
        assert abs(got - want) <= 2 * np.spacing(abs(want)), (x, b, got, want)
        assert got != 0.0


@pytest.mark.parametrize("shape, axis", [((300, 200), -1), ((200, 5, 60), 1), ((3000, 20), -1),
                                         ((2, 70000), -1)], ids=str)
def test_b_bitwise_same_for_any_thread_count(rng, shape, axis):
    x = 3.0 * rng.standard_normal(shape)
    b = rng.standard_normal(shape)
    one = fx.logsumexp(x, axis=axis, b=b, return_sign=True, n_threads=1)
    for nt in (2, 3):
        other = fx.logsumexp(x, axis=axis, b=b, return_sign=True, n_threads=nt)
        for a, c in zip(one, other):
            np.testing.assert_array_equal(a, c)


SPECIAL = [
    # (x, b): non-finite values and weights where SciPy and fastxent agree
    ([np.inf, 1.0], [1.0, 1.0]), ([np.inf, 1.0], [-1.0, 1.0]), ([np.inf, np.inf], [1.0, -1.0]),
    ([np.nan, 1.0], [1.0, 1.0]), ([1.0, 2.0], [np.nan, 1.0]), ([1.0, 2.0], [np.inf, 1.0]),
    ([1.0, 2.0], [1.0, -np.inf]), ([-np.inf, 2.0], [np.inf, 1.0]), ([-np.inf, -np.inf], [1.0, 2.0]),
    ([-np.inf, 0.0], [-1.0, 0.0]), ([1.0, 2.0], [0.0, 0.0]), ([1e308, 1e308], [1.0, 1.0]),
    ([-1e308, 0.0], [1.0, 1.0]), ([710.0, 710.0], [1.0, -0.5]),
]


@pytest.mark.parametrize("case", range(len(SPECIAL)))
def test_b_special_values_like_scipy(case):
    x, b = (np.array(v) for v in SPECIAL[case])
    for return_sign in (False, True):
        got = fx.logsumexp(x, b=b, return_sign=return_sign)
        want = scipy_call("logsumexp", x, b=b, return_sign=return_sign)
        for g, w in zip(got, want) if return_sign else [(got, want)]:
            same_type_and_shape(g, w)
            assert_close(g, w, rtol=1e-15)
        assert_close(got, ref.logsumexp(x, b=b, return_sign=return_sign), rtol=1e-15)


def test_zero_weight_hides_inf_and_nan_whatever_the_result():
    # tests/external/DIFFERENCES.md, lse-zero-weight-hides-nonfinite: SciPy masks
    # the terms of zero weight, then recomputes a non-finite result without the
    # mask, where 0 * inf is NaN
    cases = [([np.inf, np.inf], [1.0, 0.0], np.inf, 1.0),
             ([np.inf, 1.0], [0.0, 0.0], -np.inf, 0.0),
             ([np.nan, -np.inf], [0.0, 1.0], -np.inf, 0.0)]
    for x, b, lse, sign in cases:
        got = fx.logsumexp(np.array(x), b=np.array(b), return_sign=True)
        assert got == (lse, sign), (x, b, got)
        assert np.isnan(scipy_call("logsumexp", np.array(x), b=np.array(b)))


def test_b_largest_terms_cancel_without_overflow():
    # tests/external/DIFFERENCES.md, lse-weighted-cancel-no-overflow: where the
    # weights at the max cancel, SciPy falls back to summing b * exp(x) unshifted,
    # which overflows; fastxent's sum stays shifted
    x, b = np.array([1000.0, 1000.0, 999.0]), np.array([1.0, -1.0, 1.0])
    assert fx.logsumexp(x, b=b, return_sign=True) == (999.0, 1.0)
    assert np.isnan(scipy_call("logsumexp", x, b=b))
    small = fx.logsumexp(x - 998.0, b=b, return_sign=True)           # SciPy agrees here
    assert_close(small, scipy_call("logsumexp", x - 998.0, b=b, return_sign=True), rtol=1e-15)
