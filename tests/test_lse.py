"""logsumexp, softmax and log_softmax against scipy.special and the reference.

SPEC.md: "as scipy.special, stable for any finite input; -inf entries (masked
classes) are allowed".  Covers every axis (None included), keepdims, -inf and
other non-finite entries, empty axes, both kernel layouts (rows and strided
tiles), long rows cut into chunks, float16/32/64 and out=.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastxent as fx
import reference as ref
from helpers import assert_close

special = pytest.importorskip("scipy.special")

SHAPES_AXES = [((5,), a) for a in (None, 0, -1)] + \
              [((3, 4), a) for a in (None, 0, 1, -1, -2)] + \
              [((2, 3, 4), a) for a in (None, 0, 1, 2, -1, -2)] + \
              [((4, 1, 5), a) for a in (1, 2)]
IDS = [f"{s}-axis{a}" for s, a in SHAPES_AXES]
FUNCS = ["softmax", "log_softmax"]
# float64 tolerances.  log_softmax near 0 is a difference of two O(1) numbers
# (x - max - log S), so its error is absolute, about ulp(log S).
TOL = {"softmax": dict(rtol=1e-13, atol=1e-300), "log_softmax": dict(rtol=1e-13, atol=1e-14)}


def scipy_lse(x, axis, keepdims=False):
    with np.errstate(all="ignore"):
        return special.logsumexp(x, axis=axis, keepdims=keepdims)


def scipy_fn(name, x, axis):
    with np.errstate(all="ignore"):
        return getattr(special, name)(x, axis=axis)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("shape, axis", SHAPES_AXES, ids=IDS)
def test_logsumexp_matches_scipy(rng, shape, axis, keepdims):
    x = 3.0 * rng.standard_normal(shape)
    got = fx.logsumexp(x, axis=axis, keepdims=keepdims)
    want = scipy_lse(x, axis, keepdims)
    assert_close(got, want, rtol=1e-13)
    assert np.asarray(got).dtype == np.float64
    if np.ndim(want) == 0:
        assert np.ndim(got) == 0


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("shape, axis", SHAPES_AXES, ids=IDS)
def test_softmax_and_log_softmax_match_scipy(rng, name, shape, axis):
    x = 3.0 * rng.standard_normal(shape)
    got = getattr(fx, name)(x, axis=axis)
    assert got.shape == x.shape and got.dtype == np.float64
    assert_close(got, scipy_fn(name, x, axis), **TOL[name])
    assert_close(got, getattr(ref, name)(x, axis=axis), **TOL[name])


def test_default_axis_is_last(rng):
    x = rng.standard_normal((3, 4, 5))
    assert_close(fx.logsumexp(x), scipy_lse(x, -1), rtol=1e-13)
    assert_close(fx.softmax(x), scipy_fn("softmax", x, -1), rtol=1e-13)
    assert_close(fx.log_softmax(x), scipy_fn("log_softmax", x, -1), rtol=1e-13)


@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "tiles"])
def test_masked_entries(rng, axis):
    # -inf entries are masked classes: they get probability 0, log-probability -inf
    x = rng.standard_normal((6, 6))
    x[x > 0.8] = -np.inf
    np.fill_diagonal(x, 0.5)       # keep one finite entry in every row and column
    for name in FUNCS:
        got = getattr(fx, name)(x, axis=axis)
        assert_close(got, scipy_fn(name, x, axis), **TOL[name])
    assert_close(fx.logsumexp(x, axis=axis), scipy_lse(x, axis), rtol=1e-13)
    assert np.all(fx.softmax(x, axis=axis)[x == -np.inf] == 0.0)
    assert np.all(fx.log_softmax(x, axis=axis)[x == -np.inf] == -np.inf)


NONFINITE_ROWS = [
    [-np.inf, -np.inf, -np.inf],     # every entry masked
    [np.inf, 1.0, 2.0],
    [np.inf, np.inf, 0.0],
    [np.inf, -np.inf, 0.0],
    [np.nan, 1.0, 2.0],
    [np.nan, np.inf, -np.inf],
    [-np.inf, 1.0, -np.inf],
    [1e308, 1e308, 0.0],             # finite, but the sum would overflow unshifted
    [-1e308, -1e308, -1e308],
]


@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "tiles"])
def test_nonfinite_like_scipy(axis):
    x = np.array(NONFINITE_ROWS)
    if axis == 0:
        x = np.ascontiguousarray(x.T)
    assert_close(fx.logsumexp(x, axis=axis), scipy_lse(x, axis), rtol=1e-13)
    for name in FUNCS:
        assert_close(getattr(fx, name)(x, axis=axis), scipy_fn(name, x, axis), **TOL[name],
                     err_msg=name)


def test_stable_for_large_inputs():
    assert_close(fx.logsumexp(np.array([1000.0, 1000.0])), 1000.0 + np.log(2.0), rtol=1e-15)
    assert_close(fx.softmax(np.array([1000.0, 1000.0 + np.log(3.0)])), [0.25, 0.75], rtol=1e-13)
    assert_close(fx.logsumexp(np.array([-1000.0, -1000.0], np.float32)),
                 -1000.0 + np.log(2.0), rtol=2e-7)


@pytest.mark.parametrize("shape, axis", [((3, 0), 1), ((3, 0), -1), ((0, 4), 0), ((3, 0), 0),
                                         ((0, 4), 1), ((2, 0, 3), 1), ((3, 0), None)])
def test_empty_along_axis(shape, axis):
    # the log of an empty sum is -inf; softmax of nothing is nothing
    x = np.zeros(shape)
    got = fx.logsumexp(x, axis=axis)
    assert_close(got, ref.logsumexp(x, axis=axis), rtol=0)
    if axis is not None and shape[axis] != 0:
        assert_close(got, scipy_lse(x, axis), rtol=0)
    for name in FUNCS:
        out = getattr(fx, name)(x, axis=axis)
        assert out.shape == shape and out.dtype == np.float64


@pytest.mark.parametrize("name", ["logsumexp"] + FUNCS)
def test_zero_dimensional_input_like_scipy(name):
    x = np.float64(2.5)
    got = getattr(fx, name)(x)
    want = scipy_lse(x, None) if name == "logsumexp" else scipy_fn(name, x, None)
    assert np.shape(got) == np.shape(want) == ()
    assert_close(got, want, rtol=1e-15)


def test_keepdims_with_axis_none(rng):
    x = rng.standard_normal((2, 3, 4))
    got = fx.logsumexp(x, axis=None, keepdims=True)
    assert got.shape == (1, 1, 1)
    assert_close(got, scipy_lse(x, None, keepdims=True), rtol=1e-13)


@pytest.mark.parametrize("inner", [3, 64, 130])
def test_strided_tiles(rng, inner):
    x = 4.0 * rng.standard_normal((3, 7, inner))
    x[0, 2, : inner // 2] = -np.inf
    assert_close(fx.logsumexp(x, axis=1), scipy_lse(x, 1), rtol=1e-13)
    for name in FUNCS:
        assert_close(getattr(fx, name)(x, axis=1), scipy_fn(name, x, 1), **TOL[name])


@pytest.mark.parametrize("C", [16385, 50000])
def test_long_rows(rng, C):
    x = rng.standard_normal((2, C))
    x[0, : C // 4] += 40.0           # chunks with very different maxima
    x[1, 16384:] = -np.inf           # masked from the second chunk on
    assert_close(fx.logsumexp(x), scipy_lse(x, -1), rtol=1e-13)
    for name in FUNCS:
        assert_close(getattr(fx, name)(x), scipy_fn(name, x, -1), **TOL[name])


@pytest.mark.parametrize("shape, axis", [((4000, 10), -1), ((50, 10, 100), 1)], ids=["rows", "tiles"])
def test_many_blocks(rng, shape, axis):
    x = rng.standard_normal(shape)
    assert_close(fx.logsumexp(x, axis=axis, n_threads=2), scipy_lse(x, axis), rtol=1e-13)
    for name in FUNCS:
        assert_close(getattr(fx, name)(x, axis=axis, n_threads=2), scipy_fn(name, x, axis),
                     **TOL[name])


@pytest.mark.parametrize("axis", [-1, 0, None], ids=["rows", "tiles", "all"])
def test_float32(rng, axis):
    x = (3.0 * rng.standard_normal((30, 40))).astype(np.float32)
    x[1, 3] = -np.inf
    got = fx.logsumexp(x, axis=axis)
    assert np.asarray(got).dtype == np.float32
    assert_close(got, scipy_lse(x.astype(np.float64), axis), rtol=2e-6)
    for name in FUNCS:
        got = getattr(fx, name)(x, axis=axis)
        want = scipy_fn(name, x.astype(np.float64), axis)
        assert got.dtype == np.float32
        if name == "softmax":
            assert_close(got, want, rtol=2e-6, atol=1e-12)
        else:
            assert_close(got, want, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("name", ["logsumexp"] + FUNCS)
def test_float16_computed_in_float32(rng, name):
    x = rng.standard_normal((5, 6)).astype(np.float16)
    got = getattr(fx, name)(x, axis=0)
    want = getattr(fx, name)(x.astype(np.float32), axis=0)
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, want.astype(np.float16))


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
@pytest.mark.parametrize("name", FUNCS)
def test_out(rng, name, dtype):
    x = rng.standard_normal((4, 5, 3)).astype(dtype)
    out = np.full(x.shape, np.nan, dtype=dtype)
    got = getattr(fx, name)(x, axis=1, out=out)
    assert got is out
    np.testing.assert_array_equal(out, getattr(fx, name)(x, axis=1))


@pytest.mark.parametrize("dtype, offset", [(np.float64, 1e6), (np.float64, 1e15), (np.float64, 1e300),
                                           (np.float64, -1e300), (np.float32, 1e30)])
@pytest.mark.parametrize("axis", [-1, 0], ids=["rows", "tiles"])
def test_huge_logits_keep_full_precision(rng, axis, dtype, offset):
    # softmax and log_softmax are shift-invariant: logits far from 0 must not cost
    # precision (computing x - (max + log S) instead of (x - max) - log S loses
    # the log S under the max's rounding: softmax([1e300, 1e300]) came out [1, 1])
    x = (offset + 3.0 * rng.standard_normal((5, 6))).astype(dtype)
    x64 = x.astype(np.float64)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    got = fx.softmax(x, axis=axis)
    assert_close(got, scipy_fn("softmax", x64, axis), rtol=rtol, atol=1e-300)
    assert_close(np.sum(got, axis=axis, dtype=np.float64), np.ones(x.shape[1 - axis % 2]), rtol=rtol * 10)
    assert_close(fx.log_softmax(x, axis=axis), scipy_fn("log_softmax", x64, axis), rtol=rtol,
                 atol=rtol)
    assert_close(fx.logsumexp(x, axis=axis), scipy_lse(x64, axis), rtol=rtol)
