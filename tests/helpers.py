"""Test helpers: tolerances, an assertion that respects NaN and inf, random
test problems (logits, targets, weights, grad_output), and a bridge to
PyTorch's functions for any class axis.

Import as ``from helpers import ...`` (``tests/`` is on ``sys.path`` under pytest).
"""
from __future__ import annotations

import numpy as np

import reference as ref

# Relative tolerances against the float64 reference.  float64: SPEC.md promises a
# few ulp (about 1e-13); float32 is checked against float64 computed from the same
# float32 values; float16 is computed in float32 and rounded once to float16.
RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-6, np.dtype(np.float16): 1e-3}
# Gradients have entries that cancel (p_y - 1 with p_y close to 1), so their
# absolute error is relative to the largest entry: atol = GRAD_ATOL * max|grad|.
GRAD_ATOL = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 1e-6, np.dtype(np.float16): 1e-3}
# Elementwise losses (the binary ones) sum nothing along a class axis: a few ulp of
# the computing dtype against the float64 reference (float16: one rounding from float32).
ELEMENTWISE_RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 2e-6,
                    np.dtype(np.float16): 2e-3}
# Against PyTorch itself, which loses a little more in its own formulas (and computes
# float16 in float32).
TORCH_RTOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5, np.dtype(np.float16): 4e-3}


def assert_close(actual, desired, rtol, atol=0.0, err_msg=""):
    """``actual`` matches ``desired`` in shape, in where NaN and +-inf are, and
    elsewhere within ``atol + rtol * |desired|``."""
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    assert actual.shape == desired.shape, f"shape {actual.shape} != {desired.shape} {err_msg}"
    np.testing.assert_allclose(actual.astype(np.float64), desired.astype(np.float64),
                               rtol=rtol, atol=atol, equal_nan=True, err_msg=err_msg)


def assert_grad_close(actual, desired, dtype, rel=1.0, err_msg=""):
    """A gradient against the float64 oracle, at the tolerance of ``dtype``
    (``rel`` widens it for tests that need more slack)."""
    dtype = np.dtype(dtype)
    desired = np.asarray(desired, dtype=np.float64)
    finite = desired[np.isfinite(desired)]
    scale = float(np.max(np.abs(finite))) if finite.size else 0.0
    assert_close(actual, desired, rtol=rel * RTOL[dtype], atol=rel * GRAD_ATOL[dtype] * scale,
                 err_msg=err_msg)


def index_target(rng, shape, C, ignore_frac=0.0, ignore_index=-100, dtype=np.int64):
    """Random class indices in [0, C) of ``shape``; about ``ignore_frac`` of them
    set to ``ignore_index``."""
    y = rng.integers(0, C, size=shape).astype(dtype)
    if ignore_frac:
        y[rng.random(shape) < ignore_frac] = ignore_index
    return y


def prob_target(rng, shape, axis, normalized=True):
    """Random class probabilities shaped like the input (summing to 1 along the
    class axis when ``normalized``)."""
    t = rng.random(shape) + 0.05
    return t / t.sum(axis=axis, keepdims=True) if normalized else 3.0 * t


# ----------------------------------------------------------------------------
# Test problems
# ----------------------------------------------------------------------------

REDUCTIONS = ["mean", "sum", "none"]


def class_count(shape, axis):
    return shape[ref.class_axis(axis, len(shape))]


def sample_shape(shape, axis):
    ax = ref.class_axis(axis, len(shape))
    return shape[:ax] + shape[ax + 1:]


def upstream(rng, reduction, samples):
    """A grad_output: a scalar for the reduced losses, loss-shaped for "none"."""
    if reduction == "none":
        return rng.standard_normal(samples)
    return 0.75


def make_case(rng, shape, axis, target_kind, weighted, ignore=True):
    """Random ``(logits, target, weight)`` for an input of ``shape`` with class
    axis ``axis``: ``target_kind`` "index" (a quarter ignored with ``ignore``),
    "prob" (rows summing to 1) or "unnormalized"; ``weight`` None unless
    ``weighted``."""
    C = class_count(shape, axis)
    x = 2.0 * rng.standard_normal(shape)
    if target_kind == "index":
        t = index_target(rng, sample_shape(shape, axis), C, ignore_frac=0.25 if ignore else 0.0)
    elif target_kind == "prob":
        t = prob_target(rng, shape, ref.class_axis(axis, len(shape)))
    else:   # probabilities that need not sum to 1 (SPEC: allowed)
        t = prob_target(rng, shape, ref.class_axis(axis, len(shape)), normalized=False)
    w = rng.uniform(0.2, 2.0, size=C) if weighted else None
    return x, t, w


# ----------------------------------------------------------------------------
# PyTorch bridges (the caller passes the torch module, from the ``torch`` fixture)
# ----------------------------------------------------------------------------

def _torch_layout(a, ax, ndim):
    """``a`` with its class axis where PyTorch wants it (1, or 0 for 1-D)."""
    return a if ndim == 1 else np.moveaxis(a, ax, 1)


def torch_loss_and_grad(torch, fn_name, input, target, weight=None, *, axis=None,
                        grad_output=None, dtype=None, **options):
    """``torch.nn.functional.<fn_name>`` (cross_entropy or nll_loss) on NumPy
    arrays with fastxent's ``axis`` convention; returns the loss and the gradient
    of ``sum(grad_output * loss)`` (``grad_output`` defaults to ones) as float64
    NumPy arrays, the gradient in ``input``'s layout.

    ``dtype`` (a NumPy dtype) picks the precision PyTorch computes in; default
    float64.
    """
    fn = getattr(torch.nn.functional, fn_name)
    tdtype = {np.dtype(np.float64): torch.float64, np.dtype(np.float32): torch.float32,
              np.dtype(np.float16): torch.float16}[np.dtype(dtype or np.float64)]
    x = np.asarray(input)
    ax = ref.class_axis(axis, x.ndim)
    xt = torch.tensor(np.ascontiguousarray(_torch_layout(x, ax, x.ndim)), dtype=tdtype,
                      requires_grad=True)
    tgt = np.asarray(target)
    if tgt.dtype.kind == "f":
        tt = torch.tensor(np.ascontiguousarray(_torch_layout(tgt, ax, x.ndim)), dtype=tdtype)
    else:
        tt = torch.tensor(tgt.astype(np.int64))
    wt = None if weight is None else torch.tensor(np.asarray(weight), dtype=tdtype)
    loss = fn(xt, tt, weight=wt, **options)
    go = torch.ones_like(loss) if grad_output is None else torch.tensor(
        np.asarray(grad_output, dtype=np.float64), dtype=tdtype).reshape(loss.shape)
    loss.backward(go)
    grad = xt.grad.detach().to(torch.float64).numpy()
    if x.ndim > 1:
        grad = np.moveaxis(grad, 1, ax)
    return loss.detach().to(torch.float64).numpy(), grad


def assert_within_scale(actual, desired, scale, dtype, ulps=16.0, err_msg=""):
    """``actual`` against the float64 reference ``desired`` whose error scale
    (``details=True`` of tests/reference.py) is ``scale``: within ``ulps`` ulp of
    the computing dtype times the scale, plus the elementwise relative
    tolerance of ``dtype`` (float16 is computed in float32 and rounded once,
    its subnormals to their spacing); NaN and +-inf where the reference has them."""
    dtype = np.dtype(dtype)
    eps = float(np.finfo(np.float32 if dtype.itemsize <= 4 else np.float64).eps)
    a = np.asarray(actual).astype(np.float64)
    d = np.asarray(desired, np.float64)
    assert a.shape == d.shape, f"shape {a.shape} != {d.shape} {err_msg}"
    s = np.asarray(scale, np.float64)
    tol = (ulps * eps * np.where(np.isfinite(s), s, 0.0) + ELEMENTWISE_RTOL[dtype] * np.abs(d)
           + float(np.finfo(dtype).smallest_subnormal))     # a result rounded to dtype
    with np.errstate(invalid="ignore"):
        same = (a == d) | (np.isnan(a) & np.isnan(d)) | (np.abs(a - d) <= tol)
    if not np.all(same):
        bad = np.flatnonzero(~np.broadcast_to(same, d.shape).reshape(-1))
        i = bad[0]
        raise AssertionError(
            f"{bad.size} of {d.size} values differ; the first at flat index {i}: "
            f"{a.reshape(-1)[i]!r} against {d.reshape(-1)[i]!r} (tolerance "
            f"{np.broadcast_to(tol, d.shape).reshape(-1)[i]:.3g}) {err_msg}")
