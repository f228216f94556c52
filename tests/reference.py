"""A plain float64 NumPy reference ("slow twin") of fastxent's multi-class functions.

Written from the formulas of SPEC.md ("Semantics (PyTorch 2.x)"), not from
fastxent's code: every function here is a few vectorized NumPy lines, computed in
float64 whatever the input dtype, with no chunking, tiling or threads.  The tests
use it as the oracle for fastxent's values, and anyone may import it::

    from reference import cross_entropy, nll_loss, log_softmax

(``tests/`` is on ``sys.path`` under pytest, which puts every test directory
without an ``__init__.py`` there.)

The signatures mirror fastxent's: ``cross_entropy(input, target, weight=None, *,
ignore_index=-100, reduction="mean", label_smoothing=0.0, axis=None,
return_grad=False, grad_output=None)`` returns the loss, or ``(loss, grad)`` with
``return_grad=True``.  A reduced loss is a Python-float-like ``np.float64``; the
per-sample loss of ``reduction="none"`` and the gradient are float64 arrays.  No
argument checking beyond what the formulas need: feed it valid arguments.

Notation (SPEC.md): ``lp = log_softmax(input)`` along the class axis, ``n`` runs
over the sample positions, ``w_c`` is the class weight (1 without weights), and
``eps`` the label smoothing.
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "nll_loss",
    "numerical_grad",
    "class_axis",
]


# ----------------------------------------------------------------------------
# log-sum-exp family (scipy.special conventions)
# ----------------------------------------------------------------------------

def _stable_shift(x, axis):
    """The max along ``axis`` (keepdims), replaced by 0 where it is not finite, so
    that ``x - shift`` never computes ``inf - inf`` (all ``-inf`` or ``+inf`` rows)."""
    if x.shape[axis] == 0:
        shape = list(x.shape)
        shape[axis] = 1
        return np.zeros(shape)
    with np.errstate(invalid="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
    # np.max propagates NaN; a NaN shift would only turn finite entries into NaN
    # early, which the sum of exponentials does anyway.  Keep the finite maxima.
    return np.where(np.isfinite(m), m, 0.0)


def logsumexp(x, axis=-1, keepdims=False):
    """``log(sum(exp(x)))`` along ``axis`` (None: over every element), float64.

    An empty axis gives ``-inf`` (the log of an empty sum); rows of ``-inf`` give
    ``-inf``; ``+inf`` gives ``+inf``; NaN gives NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        flat = x.reshape(-1)
        r = logsumexp(flat, axis=0)
        return np.reshape(r, (1,) * x.ndim) if keepdims else r
    if x.ndim == 0:
        x = x.reshape(1)
        axis = 0 if axis in (0, -1) else axis
        squeeze_scalar = True
    else:
        squeeze_scalar = False
    shift = _stable_shift(x, axis)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        r = np.log(np.sum(np.exp(x - shift), axis=axis, keepdims=True)) + shift
    if squeeze_scalar:
        return r.reshape(())[()]
    if not keepdims:
        r = np.squeeze(r, axis=axis)
    return r[()] if r.ndim == 0 else r


def log_softmax(x, axis=-1):
    """``x - logsumexp(x, axis)``, float64 (NaN where both are infinite)."""
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        return log_softmax(x.reshape(-1), axis=0).reshape(x.shape)
    if x.ndim == 0:
        return log_softmax(x.reshape(1), axis=0).reshape(())
    shift = _stable_shift(x, axis)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        z = x - shift
        return z - np.log(np.sum(np.exp(z), axis=axis, keepdims=True))


def softmax(x, axis=-1):
    """``exp(x - logsumexp(x, axis))``, float64.

    A slice whose log-sum-exp is not finite (every entry ``-inf``, any ``+inf``,
    any NaN) is NaN throughout, as in ``scipy.special.softmax``.
    """
    x = np.asarray(x, dtype=np.float64)
    if axis is None:
        return softmax(x.reshape(-1), axis=0).reshape(x.shape)
    if x.ndim == 0:
        return softmax(x.reshape(1), axis=0).reshape(())
    lse = logsumexp(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(x - lse)
    return np.where(np.isfinite(lse), p, np.nan)


# ----------------------------------------------------------------------------
# cross-entropy and nll
# ----------------------------------------------------------------------------

def class_axis(axis, ndim):
    """The class axis of an input with ``ndim`` dimensions, as a non-negative
    int: PyTorch's convention for None (0 for 1-D input, else 1)."""
    if axis is None:
        return 0 if ndim == 1 else 1
    return axis % ndim


def _to_last(input, axis):
    """(input with its class axis last as float64, the class axis)."""
    x = np.asarray(input, dtype=np.float64)
    ax = class_axis(axis, x.ndim)
    return np.moveaxis(x, ax, -1), ax


def _grad_factor(reduction, grad_output, sample_shape, denom):
    """d(returned loss)/d(loss_n), shaped like the samples (float64)."""
    if reduction == "none":
        go = np.ones(sample_shape) if grad_output is None else np.asarray(grad_output, np.float64)
        return np.broadcast_to(go, sample_shape).astype(np.float64)
    go = 1.0 if grad_output is None else float(np.asarray(grad_output, dtype=np.float64))
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.float64(go) / np.float64(denom) if reduction == "mean" else np.float64(go)
    return np.full(sample_shape, scale)


def _reduce(loss_n, reduction, denom):
    if reduction == "none":
        return loss_n
    total = np.sum(loss_n, dtype=np.float64)
    if reduction == "sum":
        return np.float64(total)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.float64(total) / np.float64(denom)


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, axis=None, return_grad=False, grad_output=None):
    """Cross-entropy of logits ``input`` against ``target``, float64 (SPEC.md).

    ``target`` holds class indices (integer dtype, shaped like ``input`` without
    its class axis) or class probabilities (floating, shaped like ``input``).

    Class indices::

        loss_n = (1 - eps) * (-w[y_n] * lp[n, y_n]) + (eps / C) * (-sum_c w_c lp[n, c])
        loss_n = 0 where y_n == ignore_index
        mean   = sum_n loss_n / sum_{n not ignored} w[y_n]

    Probabilities ``t``::

        q = (1 - eps) * t + eps / C;  loss_n = -sum_c w_c q[n, c] lp[n, c]
        mean = sum_n loss_n / (number of sample positions)

    The gradient with respect to the logits of ``loss_n`` is
    ``p * sum_c(w_c q_c) - w * q`` with ``p = softmax(input)`` and ``q`` the
    smoothed target distribution (one-hot for class indices), times
    d(loss)/d(loss_n): ``grad_output`` (default 1), divided by the mean's
    denominator for ``"mean"``; 0 at ignored positions.
    """
    x, ax = _to_last(input, axis)
    C = x.shape[-1]
    sample_shape = x.shape[:-1]
    eps = float(label_smoothing)
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    lp = log_softmax(x, axis=-1)
    tgt = np.asarray(target)

    if tgt.dtype.kind in "iu":
        y = tgt.astype(np.int64)
        keep = y != ignore_index
        y_safe = np.where(keep, y, 0)
        lp_y = np.take_along_axis(lp, y_safe[..., None], axis=-1)[..., 0]
        w_y = w[y_safe]
        nll = -w_y * lp_y
        if eps > 0.0:
            # only computed with smoothing, as PyTorch does: a masked (-inf)
            # logit makes the smoothing term +inf but must not touch eps == 0
            smooth = -np.sum(w * lp, axis=-1)
            loss_n = (1.0 - eps) * nll + (eps / C) * smooth
        else:
            loss_n = nll
        loss_n = np.where(keep, loss_n, 0.0)
        denom = np.sum(np.where(keep, w_y, 0.0), dtype=np.float64)
        # target distribution q and its weighted mass Q per sample
        q = np.full(x.shape, eps / C)
        np.put_along_axis(q, y_safe[..., None],
                          np.take_along_axis(q, y_safe[..., None], axis=-1) + (1.0 - eps), axis=-1)
        Q = (1.0 - eps) * w_y + (eps / C) * np.sum(w)
    elif tgt.dtype.kind == "f":
        t = np.moveaxis(tgt.astype(np.float64), ax, -1)
        q = (1.0 - eps) * t + eps / C
        with np.errstate(invalid="ignore"):
            loss_n = -np.sum(w * q * lp, axis=-1)
        keep = np.ones(sample_shape, dtype=bool)
        denom = float(np.prod(sample_shape, dtype=np.float64))
        Q = np.sum(w * q, axis=-1)
    else:
        raise TypeError(f"target dtype {tgt.dtype} is neither integer nor floating")

    loss = _reduce(loss_n, reduction, denom)
    if not return_grad:
        return loss
    factor = _grad_factor(reduction, grad_output, sample_shape, denom)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.exp(lp)
        g = (p * Q[..., None] - w * q) * factor[..., None]
    g = np.where(keep[..., None], g, 0.0)
    return loss, np.moveaxis(g, -1, ax)


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean", axis=None,
             return_grad=False, grad_output=None):
    """Negative log-likelihood of log-probabilities ``input``, float64 (SPEC.md).

    ``loss_n = -w[y_n] * input[n, y_n]`` (0 where ``y_n == ignore_index``);
    ``"mean"`` divides by the sum of ``w[y_n]`` over the positions not ignored.
    The gradient is ``-w[y_n]`` at the target entry of each kept position (times
    d(loss)/d(loss_n)) and 0 elsewhere.
    """
    x, ax = _to_last(input, axis)
    C = x.shape[-1]
    sample_shape = x.shape[:-1]
    w = np.ones(C) if weight is None else np.asarray(weight, dtype=np.float64)
    y = np.asarray(target).astype(np.int64)
    keep = y != ignore_index
    y_safe = np.where(keep, y, 0)
    x_y = np.take_along_axis(x, y_safe[..., None], axis=-1)[..., 0]
    w_y = np.where(keep, w[y_safe], 0.0)
    loss_n = np.where(keep, -w_y * x_y, 0.0)
    denom = np.sum(w_y, dtype=np.float64)
    loss = _reduce(loss_n, reduction, denom)
    if not return_grad:
        return loss
    factor = _grad_factor(reduction, grad_output, sample_shape, denom)
    g = np.zeros(x.shape)
    with np.errstate(invalid="ignore"):     # 0 * inf of a NaN mean: masked below
        np.put_along_axis(g, y_safe[..., None], (-w_y * factor)[..., None], axis=-1)
    g = np.where(keep[..., None], g, 0.0)
    return loss, np.moveaxis(g, -1, ax)


# ----------------------------------------------------------------------------
# finite differences
# ----------------------------------------------------------------------------

def numerical_grad(f, x, h=1e-6):
    """Central finite differences of the scalar function ``f`` at ``x`` (float64).

    Perturbs one element at a time: ``(f(x + h e_i) - f(x - h e_i)) / (2 h)``,
    with ``h`` scaled by ``max(1, |x_i|)``.  ``f`` is called ``2 * x.size`` times,
    so keep ``x`` small.  Truncation error is O(h**2), rounding O(ulp(f) / h):
    expect about 1e-9 absolute agreement with an analytic gradient for O(1)
    values and ``h=1e-6``.
    """
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        xi = flat[i]
        step = h * max(1.0, abs(xi))
        flat[i] = xi + step
        fp = float(f(x))
        flat[i] = xi - step
        fm = float(f(x))
        flat[i] = xi
        gflat[i] = (fp - fm) / (2.0 * step)
    return g
