"""The float64 oracle of fastxent's tests: one plain-NumPy reference of every function.

Written from the formulas of SPEC.md ("Semantics (PyTorch 2.x)"), not from
fastxent's code: vectorized NumPy in float64 whatever the input dtype, with no
chunking, tiling or threads.  It is the only reference the tests use (the NumPy
twins of ``fastxent._baseline`` are the benchmark's baseline, checked against
this module in test_workloads.py); its own checks against PyTorch, SciPy and
finite differences are in test_reference.py.  Import it as ``import reference
as ref`` (``tests/`` is on ``sys.path`` under pytest).

Each function mirrors fastxent's signature and returns what fastxent returns:
the loss, or ``(loss, grad)`` with ``return_grad=True``; a reduced loss is an
``np.float64``, the rest float64 arrays.  ``details=True`` returns a
:class:`Result` instead, which adds each value's error scale: the sensitivity
of the value to rounding in the computing dtype, so that a test may allow a
few ulp of that scale instead of a blanket relative tolerance (too loose for
well-conditioned values, too tight near cancellation).  No argument checking
beyond what the formulas need: feed it valid arguments.

Non-finite logits follow PyTorch: a row (the classes of one sample) holding a
NaN or a +inf, or only -inf, has NaN loss and NaN gradient, also where its
target is ignored; a -inf entry in an otherwise finite row is a masked class
(probability 0).

How a function is built (and where a new option or loss goes): a family's
``_*_terms`` function computes, per sample position ``n`` laid out as rows of
classes (:class:`_Rows`), the loss ``loss_n``, its share of the ``"mean"``
denominator, and the derivatives of ``loss_n`` with respect to the input row
(gradient, diagonal Hessian, Hessian-vector product).  :func:`_finish` then
applies, once for every loss, ``sample_weight``, the reduction and
``grad_output``, and puts the arrays back in the input's layout.  A new loss is
one ``_*_terms`` function and a thin public wrapper; a new per-sample option
(``sample_weight``) is one line of :func:`_finish`.

Version 0.2 (SPEC.md), ahead of fastxent: ``sample_weight=`` on every loss,
``return_hessian=`` on cross_entropy and binary_cross_entropy_with_logits,
``cross_entropy_hvp`` and ``binary_cross_entropy_with_logits_hvp``, ``z_loss=``
and ``softcap=`` on cross_entropy, ``kl_div``, ``distillation_loss`` and
``sigmoid_focal_loss``; each checked against PyTorch autograd in
test_reference.py.

Notation (SPEC.md): ``lp = log_softmax(input)`` along the class axis, ``p`` its
exponential, ``w_c`` the class weight (1 without weights), ``eps`` the label
smoothing, ``q`` the smoothed target distribution and ``Q = sum_c w_c q_c``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = [
    # conventions and tools
    "class_axis", "numerical_grad", "Result",
    # the log-sum-exp family (scipy.special's semantics)
    "logsumexp", "softmax", "log_softmax",
    # multi-class losses
    "cross_entropy", "cross_entropy_class_slice", "cross_entropy_hvp", "nll_loss",
    # binary losses
    "binary_cross_entropy", "binary_cross_entropy_with_logits",
    "binary_cross_entropy_with_logits_hvp",
    # version 0.2 families
    "kl_div", "distillation_loss", "sigmoid_focal_loss",
    # more than float64: mpmath
    "mp_cross_entropy_row", "mp_logsumexp_row", "mp_binary_cross_entropy_with_logits",
]

# PyTorch's floor of x (1 - x) in binary_cross_entropy's gradient: the float
# 1e-12, for every dtype (SPEC.md)
BCE_EPS = float(np.float32(1e-12))


# ----------------------------------------------------------------------------
# Layout: the class axis (or the reduced axes) as contiguous rows
# ----------------------------------------------------------------------------

def class_axis(axis, ndim):
    """The class axis of an input with ``ndim`` dimensions, as a non-negative
    int: PyTorch's convention for None (0 for 1-D input, else 1)."""
    if axis is None:
        return 0 if ndim == 1 else 1
    return axis % ndim


class _Rows:
    """An array of ``shape`` seen as (N, K) rows: the axes ``axes`` moved last
    and flattened into K, the others (the sample positions, in their order)
    flattened into N."""

    def __init__(self, shape, axes):
        ndim = len(shape)
        self.shape = tuple(shape)
        self.axes = tuple(sorted({a % ndim for a in axes}))
        rest = tuple(d for d in range(ndim) if d not in self.axes)
        self.order = rest + self.axes
        self.sample_shape = tuple(shape[d] for d in rest)
        self.N = math.prod(self.sample_shape)
        self.K = math.prod(shape[a] for a in self.axes)

    def rows(self, a):
        # contiguous rows: NumPy sums a contiguous axis pairwise (error ~log K
        # ulp), a strided one term by term (~K ulp), too coarse for a reference
        m = np.transpose(np.asarray(a, np.float64), self.order)
        return np.ascontiguousarray(m.reshape(self.N, self.K))

    def unrows(self, r):
        m = r.reshape(self.sample_shape + tuple(self.shape[a] for a in self.axes))
        return np.transpose(m, np.argsort(self.order))

    def per_sample(self, a):
        """``a`` broadcast to the sample shape, flattened like the rows."""
        return np.broadcast_to(np.asarray(a, np.float64), self.sample_shape).reshape(self.N)


# ----------------------------------------------------------------------------
# The common end of every loss: sample weights, reduction, grad_output
# ----------------------------------------------------------------------------

class Result(NamedTuple):
    """A loss with everything the tests compare: ``loss`` (reduced scalar or
    per-sample array) and its error scale, ``grad`` (d of the returned loss, or
    of ``sum(grad_output * loss)``, by ``input``) and its error scale, and where
    asked the diagonal Hessian ``hess`` and the Hessian-vector product ``hvp``
    of the same loss."""
    loss: object
    loss_scale: object = None
    grad: np.ndarray | None = None
    grad_scale: np.ndarray | None = None
    hess: np.ndarray | None = None
    hvp: np.ndarray | None = None


class _Terms(NamedTuple):
    """Per sample position n (rows of the input's layout): what ``_finish`` needs.
    What nobody asked for is None (a loss alone skips its derivatives and scales)."""
    loss: np.ndarray          # (N,) loss_n; 0 where not kept
    loss_scale: np.ndarray    # (N,)
    denom: np.ndarray         # (N,) n's share of the "mean" denominator
    keep: np.ndarray          # (N,) bool: False for ignored positions
    dead: np.ndarray          # (N, 1): the derivatives of a position not kept (0 or NaN)
    grad: np.ndarray          # (N, K) d loss_n / d input_n
    grad_scale: np.ndarray    # (N, K)
    hess: np.ndarray | None = None   # (N, K) diagonal of d2 loss_n / d input_n2
    hvp: np.ndarray | None = None    # (N, K) (d2 loss_n / d input_n2) v_n


# what a call needs computed: the loss alone, its derivative, everything with error scales
LOSS, GRAD, DETAILS = frozenset(), frozenset({"grad"}), frozenset({"grad", "scales"})


def _need(return_grad, details, return_hessian=False):
    return ((DETAILS if details else GRAD if return_grad or return_hessian else LOSS)
            | ({"hess"} if return_hessian else set()))


def _finish(terms, rows, reduction, grad_output, sample_weight):
    """The returned loss and the derivatives of ``sum(grad_output * loss)``: each
    ``loss_n`` (and its share of the mean's denominator) times ``sample_weight``,
    reduced; derivatives scaled alike, and ``dead`` at positions not kept."""
    with np.errstate(all="ignore"):
        sw = None if sample_weight is None else rows.per_sample(sample_weight)
        loss, denom = terms.loss, terms.denom
        lscale = np.zeros_like(loss) if terms.loss_scale is None else terms.loss_scale
        if sw is not None:
            loss, lscale, denom = sw * loss, sw * lscale, sw * denom
        lscale = np.where(np.isfinite(lscale), lscale, 0.0)
        if reduction == "none":
            go = rows.per_sample(1.0 if grad_output is None else grad_output)
            # the rows keep the sample positions in C order: a reshape restores them
            loss_out = loss.reshape(rows.sample_shape)
            lscale_out = lscale.reshape(rows.sample_shape)
        else:
            go = np.float64(1.0 if grad_output is None else grad_output)
            loss_out, lscale_out = np.sum(loss), np.sum(lscale)
            if reduction == "mean":
                total = np.sum(denom)
                loss_out, go = loss_out / total, go / total
                # no error scale for the NaN of an empty mean
                lscale_out = lscale_out / abs(total) if total else np.float64(0.0)
            elif reduction != "sum":
                raise ValueError(f"unknown reduction {reduction!r}")
            go = np.full(rows.N, go)
        factor = go if sw is None else go * sw

        def derivative(d):
            if d is None:
                return None
            return rows.unrows(np.where(terms.keep[:, None], d * factor[:, None], terms.dead))

        gscale = (None if terms.grad_scale is None else
                  rows.unrows(terms.grad_scale * np.abs(factor)[:, None]))
        return Result(loss_out, lscale_out, derivative(terms.grad), gscale,
                      derivative(terms.hess), derivative(terms.hvp))


def _returned(res, return_grad, return_hessian=False, details=False):
    """What a public function returns: like fastxent, or the whole Result."""
    if details:
        return res
    if return_hessian:
        return res.loss, res.grad, res.hess
    return (res.loss, res.grad) if return_grad else res.loss


# ----------------------------------------------------------------------------
# log-sum-exp family (scipy.special's semantics)
# ----------------------------------------------------------------------------

class _RowStats(NamedTuple):
    """Per row of (N, K) float64 logits, PyTorch's rules: ``bad``, a row whose
    loss and gradient are NaN (a NaN, a +inf, or only -inf); ``M``, the max (0
    in bad rows); ``d = x - M``; ``e = exp(d)``; ``S = sum e`` (1 in bad rows);
    ``logS = log S``.  An empty
    row (K == 0) is an empty sum: not bad, loss 0, as PyTorch."""
    bad: np.ndarray
    M: np.ndarray
    d: np.ndarray
    e: np.ndarray
    S: np.ndarray
    logS: np.ndarray

    def softmax(self):
        """p, NaN in bad rows."""
        with np.errstate(all="ignore"):
            return np.where(self.bad[:, None], np.nan, self.e / self.S[:, None])

    def dev(self):
        """|x - M| where finite, else 0 (the error scale of each exponent)."""
        return np.where(np.isfinite(self.d), np.abs(self.d), 0.0)


def _row_stats(xr):
    N, K = xr.shape
    with np.errstate(all="ignore"):
        bad = np.isnan(xr).any(axis=1) | (xr == np.inf).any(axis=1)
        if K:
            bad |= (xr == -np.inf).all(axis=1)
        safe = np.where(bad[:, None], 0.0, xr)
        M = safe.max(axis=1) if K else np.zeros(N)
        d = safe - M[:, None]
        e = np.exp(d)
        S = np.where(bad, 1.0, e.sum(axis=1))
    return _RowStats(bad, M, d, e, S, np.log(S))


def _lse_rows(xr):
    """scipy's rules per row of (N, K) float64: (lse, log_softmax, softmax) and
    their error scales.  A non-finite max is not shifted (+inf gives +inf, a
    row of -inf gives -inf, NaN gives NaN); softmax is NaN wherever the row's
    log-sum-exp is not finite."""
    N, K = xr.shape
    with np.errstate(all="ignore"):
        mx = xr.max(axis=1) if K else np.zeros(N)
        finite_max = np.isfinite(mx) if K else np.zeros(N, bool)
        M = np.where(finite_max, mx, 0.0)
        d = xr - M[:, None]
        e = np.exp(d)
        S = e.sum(axis=1)
        logS = np.log(S)
        dev = np.where(np.isfinite(d), np.abs(d), 0.0)
        p = e / S[:, None]
        spread = np.nan_to_num((np.nan_to_num(p) * dev).sum(axis=1))
        lse = M + logS
        lse_scale = np.abs(M) + np.abs(logS) + 1.0 + spread
        lsm = d - logS[:, None]
        lsm_scale = dev + np.abs(logS)[:, None] + 1.0 + spread[:, None]
        sm = np.where(finite_max[:, None], p, np.nan)
        sm = np.where(np.isnan(xr).any(axis=1)[:, None], np.nan, sm)
        sm_scale = np.nan_to_num(p) * (2.0 + dev + spread[:, None]) + 1e-300
    fin = lambda s: np.where(np.isfinite(s), s, 0.0)  # noqa: E731
    return (lse, fin(lse_scale)), (lsm, fin(lsm_scale)), (sm, fin(sm_scale))


def _lse_layout(x, axis):
    """(rows, 0-d input?) for the log-sum-exp family: ``axis`` an int, a tuple
    or None (every axis); a 0-d input is one row of one element."""
    x = np.asarray(x, np.float64)
    scalar = x.ndim == 0
    if scalar:
        x = x.reshape(1)
    axes = range(x.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return x, _Rows(x.shape, axes), scalar


def _weighted_lse_rows(xr, br):
    """scipy's ``logsumexp(x, b=b, return_sign=True)`` per row of (N, K) float64
    ``x`` and weights ``b``, with a zero weight leaving its term out whatever
    ``x`` is: ``(log|S|, sign(S), scale)`` with ``S = sum_k b_k exp(x_k)``.

    Each row's sum is taken relative to its largest ``x`` of nonzero weight
    ``M`` (0 where that is not finite), its terms at ``M`` apart from the others
    and each part summed exactly (``math.fsum``), so that a result near 0
    keeps its relative precision: ``M + log|top| + log1p(rest / top)``.  The
    scale is the sensitivity to rounding: ``|M| + 1 + sum|terms| (1 + max|x - M|)
    / |S|``, the last part the condition number of a sum that cancels."""
    N, K = xr.shape
    lse, sign, scale = np.empty(N), np.empty(N), np.empty(N)
    with np.errstate(all="ignore"):
        active = br != 0
        xa = np.where(active, xr, -np.inf)
        mx = xa.max(axis=1) if K else np.full(N, -np.inf)
        M = np.where(np.isfinite(mx), mx, 0.0)
        d = xr - M[:, None]
        terms = np.where(active, br * np.exp(d), 0.0)
        at_top = active & (d == 0)
    for n in range(N):
        exact = math.fsum if np.isfinite(terms[n]).all() else lambda v: float(np.sum(v))
        with np.errstate(all="ignore"):
            top, rest = exact(terms[n, at_top[n]]), exact(terms[n, ~at_top[n]])
            total = top + rest
            sign[n] = np.sign(total)
            if top != 0 and abs(rest) <= abs(top):
                log_s = math.log(abs(top)) + math.log1p(rest / top)
            else:
                log_s = float(np.log(np.abs(total)))
            lse[n] = M[n] + log_s if np.isfinite(mx[n]) else log_s
            spread = 1.0 + float(np.max(np.where(active[n], np.abs(np.nan_to_num(d[n])), 0.0),
                                        initial=0.0))
            mass = float(np.sum(np.abs(np.nan_to_num(terms[n])))) * spread
            cond = mass / abs(total) if total != 0 else 0.0
        scale[n] = abs(M[n]) + 1.0 + (cond if np.isfinite(cond) else 0.0)
    return lse, sign, scale


def logsumexp(x, axis=-1, keepdims=False, *, b=None, return_sign=False, details=False):
    """``log(sum(b * exp(x)))`` along ``axis`` (an int, a tuple, or None for
    every element), float64.  An empty axis gives ``-inf`` (the log of an empty
    sum); ``+inf`` gives ``+inf``, NaN gives NaN.  ``b`` (broadcast against
    ``x``): weights of any sign, a zero one leaving its term out; a negative sum
    gives NaN, or with ``return_sign=True`` its log-magnitude and the sign
    ``(lse, sign)`` (0 for a zero or empty sum, NaN for NaN).
    ``details=True``: ``(value, scale)``, or ``(value, sign, scale)``."""
    if b is not None:
        x, b = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(b, np.float64))
    x, rows, scalar = _lse_layout(x, axis)
    if b is None:
        (lse, scale), _, _ = _lse_rows(rows.rows(x))
        sign = np.where(np.isnan(lse), np.nan, np.where(lse == -np.inf, 0.0, 1.0))
    else:
        lse, sign, scale = _weighted_lse_rows(rows.rows(x), rows.rows(_lse_layout(b, axis)[0]))
        if not return_sign:
            lse = np.where(sign < 0, np.nan, lse)
    out = []
    for v in (lse, sign, scale) if return_sign else (lse, scale):
        v = v.reshape(rows.sample_shape)
        if keepdims:
            v = v.reshape([1 if d in rows.axes else n for d, n in enumerate(x.shape)])
            if scalar:
                v = v.reshape(())
        out.append(v[()] if v.ndim == 0 else v)
    if details:
        return tuple(out)
    return tuple(out[:2]) if return_sign else out[0]


def _lse_elementwise(which, x, axis, details):
    x0 = np.asarray(x)
    x, rows, _ = _lse_layout(x0, axis)
    v, s = _lse_rows(rows.rows(x))[which]
    v, s = rows.unrows(v).reshape(x0.shape), rows.unrows(s).reshape(x0.shape)
    return (v, s) if details else v


def log_softmax(x, axis=-1, *, details=False):
    """``x - logsumexp(x, axis)``, float64 (NaN where both are infinite)."""
    return _lse_elementwise(1, x, axis, details)


def softmax(x, axis=-1, *, details=False):
    """``exp(x - logsumexp(x, axis))``, float64; a slice whose log-sum-exp is not
    finite (every entry ``-inf``, any ``+inf``, any NaN) is NaN throughout, as
    ``scipy.special.softmax``."""
    return _lse_elementwise(2, x, axis, details)


# ----------------------------------------------------------------------------
# Multi-class losses: cross_entropy, nll_loss
# ----------------------------------------------------------------------------

def _index_targets(target, rows, w, ignore_index):
    """Class indices as rows: (keep, y_n or 0 where ignored, w[y_n] or 0)."""
    y = np.asarray(target).reshape(-1).astype(np.int64)
    keep = y != ignore_index
    yk = np.where(keep, y, 0)
    wy = np.where(keep, w[yk] if rows.K else 0.0, 0.0)
    return keep, yk, wy


def _onehot(keep, yk, C):
    """(N, C): 1 at the target class of each kept position."""
    onehot = np.zeros((keep.size, C))
    if C:
        onehot[np.arange(keep.size), yk] = keep
    return onehot


def _cross_entropy_terms(x, target, weight, ignore_index, label_smoothing, axis, z_loss=0.0,
                         softcap=None, need=DETAILS, v=None):
    """Per-sample terms of cross_entropy (SPEC.md), and of its version 0.2 options.

    Class indices: ``loss_n = (1 - eps) (-w[y_n] lp[n, y_n]) + (eps / C) (-sum_c w_c lp[n, c])``
    (the smoothing term only computed when eps > 0, as PyTorch: a masked class
    must not add 0 * inf), 0 where ``y_n == ignore_index``; the mean's share
    ``w[y_n]`` of each kept position.  Probabilities ``t``: ``q = (1 - eps) t +
    eps / C``, ``loss_n = -sum_c w_c q_c lp_c``, a share of 1 per position.
    Gradient: ``p Q - w q``; diagonal Hessian ``Q p (1 - p)``; Hessian-vector
    product ``Q (p v - p sum_c p_c v_c)``.

    ``softcap`` (s): the logits are first replaced by ``s tanh(x / s)``;
    ``z_loss`` (z): ``z lse_n ** 2`` is added to each kept position's loss,
    with gradient ``2 z lse p`` and Hessian ``2 z (p p^T + lse (diag p - p p^T))``.
    ``need``: which of "grad", "scales", "hess" to compute (and the product
    with ``v`` when given).
    """
    x = np.asarray(x, np.float64)
    rows = _Rows(x.shape, (class_axis(axis, x.ndim),))
    N, C = rows.N, rows.K
    xr = rows.rows(x)
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    eps = np.float64(label_smoothing)
    tgt = np.asarray(target)
    by_index = tgt.dtype.kind in "iu"
    derivs = "grad" in need or "hess" in need or v is not None
    grad = gscale = lscale = hess = hvp = None
    with np.errstate(all="ignore"):
        if softcap is not None:
            th = np.tanh(xr / softcap)
            xr, dcap, d2cap = softcap * th, 1.0 - th * th, -2.0 * th * (1.0 - th * th) / softcap
        st = _row_stats(xr)
        bad, M, logS = st.bad, st.M, st.logS
        lp = (xr - M[:, None]) - logS[:, None]
        if by_index:
            keep, yk, wy = _index_targets(tgt, rows, w, ignore_index)
            denom = wy
            lpy = lp[np.arange(N), yk] if C else np.zeros(N)
            loss = (1.0 - eps) * (-wy * lpy)
            if eps > 0.0:
                loss = loss + (eps / C) * -(w[None, :] * lp).sum(axis=1)
            if derivs or "scales" in need:
                q = ((1.0 - eps) * _onehot(keep, yk, C)
                     + np.where(keep, eps / C if C else 0.0, 0.0)[:, None])
        else:
            t = rows.rows(tgt)
            keep = np.ones(N, bool)
            denom = np.ones(N) if x.size else np.zeros(N)   # an empty mean is NaN, as PyTorch
            q = (1.0 - eps) * t + (eps / C if C else 0.0)
            loss = -(w[None, :] * q * lp).sum(axis=1)
        loss = np.where(keep, np.where(bad, np.nan, loss), 0.0)
        if derivs or "scales" in need:
            wq = w[None, :] * q
            Q = wq.sum(axis=1)
            p = st.softmax()
        if derivs:
            grad = p * Q[:, None] - wq
        if "scales" in need:
            Qabs = np.abs(wq).sum(axis=1)        # Q's own rounding error scales with this
            dev = st.dev()
            spread = np.nan_to_num((p * dev).sum(axis=1))
            lscale = (np.abs(loss) + Qabs * (np.abs(logS) + 1.0 + spread)
                      + (np.abs(wq) * (dev + 1.0)).sum(axis=1))
            gscale = (Qabs[:, None] * np.nan_to_num(p) * (2.0 + dev + np.abs(logS)[:, None]
                                                           + spread[:, None])
                      + np.abs(wq) + Qabs[:, None] * 1e-30)
            gscale = np.where(keep[:, None], gscale, 0.0)
        if "hess" in need:
            hess = Q[:, None] * p * (1.0 - p)
        u = None if v is None else rows.rows(v) * (1.0 if softcap is None else dcap)
        if u is not None:
            pu = (p * u).sum(axis=1, keepdims=True)
            hvp = Q[:, None] * (p * u - p * pu)
        if z_loss:
            lse = M + logS
            loss = loss + np.where(keep, z_loss * lse * lse, 0.0)
            if lscale is not None:
                lscale = lscale + np.abs(z_loss) * 2.0 * np.abs(lse) * (np.abs(M) + 1.0 + spread)
            if grad is not None:
                grad = grad + 2.0 * z_loss * lse[:, None] * p
            if hess is not None:
                hess = hess + 2.0 * z_loss * (p * p + lse[:, None] * p * (1.0 - p))
            if hvp is not None:
                hvp = hvp + 2.0 * z_loss * (p * pu + lse[:, None] * (p * u - p * pu))
        if softcap is not None and grad is not None:     # the chain rule through s tanh(x / s)
            if hess is not None:
                hess = hess * dcap * dcap + grad * d2cap
            if hvp is not None:
                hvp = hvp * dcap + grad * d2cap * rows.rows(v)
            grad = grad * dcap
    dead = np.where(bad, np.nan, 0.0)[:, None]
    return _Terms(loss, lscale, denom, keep, dead, grad, gscale, hess, hvp), rows


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, axis=None, return_grad=False, grad_output=None,
                  sample_weight=None, z_loss=0.0, softcap=None, return_hessian=False,
                  details=False):
    """Cross-entropy of logits ``input`` against ``target``, float64 (SPEC.md).

    ``target`` holds class indices (integer dtype, shaped like ``input`` without
    its class axis) or class probabilities (floating, shaped like ``input``).
    ``"mean"`` divides by ``sum_n sample_weight_n * w[y_n]`` over the positions
    not ignored (class indices) or by ``sum_n sample_weight_n`` (probabilities).
    ``return_hessian=True`` returns ``(loss, grad, hess)``, the diagonal Hessian
    of the same loss.  See :func:`_cross_entropy_terms` for the formulas.
    """
    terms, rows = _cross_entropy_terms(input, target, weight, ignore_index, label_smoothing,
                                       axis, z_loss, softcap,
                                       _need(return_grad, details, return_hessian))
    res = _finish(terms, rows, reduction, grad_output, sample_weight)
    return _returned(res, return_grad or return_hessian, return_hessian, details)


def _class_slice_terms(x, target, row_max, log_norm, weight, class_start, num_classes,
                       target_mass, ignore_index, eps, axis):
    """A slice's terms of cross_entropy, from the formulas of
    ``fastxent.dask.SLICE_KERNEL``: ``lp = (x - row_max) - log_norm`` over the
    slice's classes, the loss ``-sum_slice w_c q_c lp_c`` and its gradient
    ``Q exp(lp) - w q`` with ``Q = sum_c w_c q_c`` over all the classes."""
    x = np.asarray(x, np.float64)
    rows = _Rows(x.shape, (class_axis(axis, x.ndim),))
    xr, C = rows.rows(x), num_classes
    cs = np.arange(class_start, class_start + rows.K)
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    R, L = rows.per_sample(row_max), rows.per_sample(log_norm)
    tgt = np.asarray(target)
    with np.errstate(all="ignore"):
        lp = (xr - R[:, None]) - L[:, None]
        if tgt.dtype.kind in "iu":
            y = rows.per_sample(tgt).astype(np.int64)
            keep = y != ignore_index
            yk = np.where(keep, y, 0)
            q = (1.0 - eps) * (yk[:, None] == cs[None, :]) + eps / C
            Q = (1.0 - eps) * w[yk] + eps / C * w.sum()
            denom = np.where(keep, w[yk], 0.0)
        else:
            keep = np.ones(rows.N, bool)
            q = (1.0 - eps) * rows.rows(tgt) + eps / C
            Q = rows.per_sample(target_mass)
            denom = np.ones(rows.N)
        wq = w[cs][None, :] * q
        loss = np.where(keep, -np.where(wq != 0, wq * lp, 0.0).sum(axis=1), 0.0)
        grad = Q[:, None] * np.exp(lp) - wq
        bad = ~(np.isfinite(R) & np.isfinite(L))
    dead = np.where(bad, np.nan, 0.0)[:, None]
    return _Terms(loss, None, denom, keep, dead, grad, None), rows


def cross_entropy_class_slice(input, target, row_max, log_norm, weight=None, *, class_start,
                              num_classes, target_mass=None, ignore_index=-100,
                              label_smoothing=0.0, axis=None, reduction="none",
                              return_grad=False, grad_output=None):
    """The share of cross_entropy of the classes ``[class_start, class_start +
    Cs)`` of ``input`` among ``num_classes``, given each sample's ``row_max`` and
    ``log_norm`` over all of them (``fastxent.cross_entropy_class_slice``),
    float64: the slices' losses add up to cross_entropy's, their gradients side
    by side make its gradient.  ``"mean"`` divides by cross_entropy's
    denominator."""
    terms, rows = _class_slice_terms(input, target, row_max, log_norm, weight, class_start,
                                     num_classes, target_mass, ignore_index, label_smoothing, axis)
    res = _finish(terms, rows, reduction, grad_output, None)
    return _returned(res, return_grad)


def cross_entropy_hvp(input, target, v, weight=None, *, ignore_index=-100, reduction="mean",
                      label_smoothing=0.0, axis=None, grad_output=None, sample_weight=None,
                      z_loss=0.0, softcap=None):
    """The Hessian of cross_entropy's returned loss (with ``grad_output`` as for
    the gradient) times ``v`` (input's shape), float64 (SPEC.md version 0.2)."""
    terms, rows = _cross_entropy_terms(input, target, weight, ignore_index, label_smoothing,
                                       axis, z_loss, softcap, GRAD, v=v)
    return _finish(terms, rows, reduction, grad_output, sample_weight).hvp


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean", axis=None,
             return_grad=False, grad_output=None, sample_weight=None, details=False):
    """Negative log-likelihood of log-probabilities ``input``, float64 (SPEC.md).

    ``loss_n = -w[y_n] * input[n, y_n]`` (0 where ``y_n == ignore_index``);
    ``"mean"`` divides by the sum of ``w[y_n]`` over the positions not ignored.
    The gradient is ``-w[y_n]`` at the target entry of each kept position (times
    d(loss)/d(loss_n)) and 0 elsewhere, whatever the input's values.
    """
    x = np.asarray(input, np.float64)
    rows = _Rows(x.shape, (class_axis(axis, x.ndim),))
    w = np.ones(rows.K) if weight is None else np.asarray(weight, np.float64)
    keep, yk, wy = _index_targets(target, rows, w, ignore_index)
    with np.errstate(all="ignore"):
        xy = np.where(keep, rows.rows(x)[np.arange(rows.N), yk] if rows.K else 0.0, 0.0)
        loss = np.where(keep, -wy * xy, 0.0)
    grad = None if not (return_grad or details) else -w[None, :] * _onehot(keep, yk, rows.K)
    terms = _Terms(loss, np.abs(loss), wy, keep, np.zeros((rows.N, 1)), grad,
                   None if grad is None else np.abs(grad))
    return _returned(_finish(terms, rows, reduction, grad_output, sample_weight), return_grad,
                     details=details)


# ----------------------------------------------------------------------------
# Binary losses (elementwise: each element is a "row" of one class)
# ----------------------------------------------------------------------------

def _elementwise(x, *operands):
    """Rows of one element for an elementwise loss, and each operand (None, a
    scalar or an array broadcasting to ``x``) as a matching (N, 1) float64 column."""
    x = np.asarray(x, np.float64)
    rows = _Rows(x.shape + (1,), (x.ndim,))
    cols = [None if a is None else
            np.broadcast_to(np.asarray(a, np.float64), x.shape).reshape(-1, 1) for a in operands]
    return rows, x.reshape(-1, 1), cols


def _finish_elementwise(terms, rows, reduction, grad_output, sample_weight):
    """_finish for losses shaped like their input (rows of one element)."""
    res = _finish(terms, rows, reduction, grad_output, sample_weight)
    shape = rows.shape[:-1]
    fix = lambda a: None if a is None else a.reshape(shape)  # noqa: E731
    return res._replace(grad=fix(res.grad), grad_scale=fix(res.grad_scale), hess=fix(res.hess),
                        hvp=fix(res.hvp))


def _terms(loss, lscale, grad, gscale, hess=None, hvp=None):
    """_Terms of an elementwise loss: every element kept, a share of 1 each."""
    n = loss.shape[0]
    return _Terms(loss[:, 0], lscale[:, 0], np.ones(n), np.ones(n, bool), np.zeros((n, 1)),
                  grad, gscale, hess, hvp)


def binary_cross_entropy(input, target, weight=None, *, reduction="mean", return_grad=False,
                         grad_output=None, sample_weight=None, details=False):
    """binary_cross_entropy of probabilities ``input``, float64 (SPEC.md):
    ``-w (t max(log x, -100) + (1 - t) max(log1p(-x), -100))``, gradient
    ``w (x - t) / max(x (1 - x), float32(1e-12))``; "mean" over all elements."""
    rows, x, (t, w) = _elementwise(input, target, 1.0 if weight is None else weight)
    with np.errstate(all="ignore"):
        lx = np.maximum(np.log(x), -100.0)
        l1x = np.maximum(np.log1p(-x), -100.0)
        loss = -w * (t * lx + (1.0 - t) * l1x)
        den = np.maximum(x * (1.0 - x), BCE_EPS)
        grad = w * (x - t) / den
        lscale = np.abs(w) * (np.abs(t * lx) + np.abs((1.0 - t) * l1x) + 1.0)
        gscale = np.abs(grad) + np.abs(w) * (np.abs(x) + np.abs(t)) / den
    res = _finish_elementwise(_terms(loss, lscale, grad, gscale), rows, reduction, grad_output,
                              sample_weight)
    return _returned(res, return_grad, details=details)


def _log_sigmoid(z):
    """log(sigmoid(z)) = -log(1 + exp(-z)), without overflow."""
    return -np.logaddexp(0.0, -z)


def _sigmoid(z):
    """sigmoid(z) with full relative precision on both sides (1 - sigmoid(z) is
    sigmoid(-z), never 1 minus a rounded 1)."""
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _bce_with_logits_terms(input, target, weight, pos_weight, v=None):
    """Per-element terms of binary_cross_entropy_with_logits (SPEC.md):
    ``loss = -w (pw t log s + (1 - t) log(1 - s))`` with ``s = sigmoid(x)``,
    gradient ``w ((1 - t) s - pw t (1 - s))`` (SPEC's ``w ((pw t + 1 - t) s -
    pw t)`` without its cancellation), diagonal Hessian ``w (pw t + 1 - t) s (1 - s)``.
    A non-finite logit gets PyTorch's own formula, whose ``inf - inf`` makes a
    -inf logit (and +inf with t == 1) NaN."""
    one = 1.0
    rows, x, (t, w, pw, vv) = _elementwise(input, target, one if weight is None else weight,
                                           one if pos_weight is None else pos_weight, v)
    with np.errstate(all="ignore"):
        ls, lms = _log_sigmoid(x), _log_sigmoid(-x)
        loss = -w * (pw * t * ls + (1.0 - t) * lms)
        lw = (pw - 1.0) * t + 1.0
        torch_form = w * ((1.0 - t) * x + lw * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)))
        loss = np.where(np.isfinite(x), loss, torch_form)
        s, sm = _sigmoid(x), _sigmoid(-x)
        grad = w * ((1.0 - t) * s - pw * t * sm)
        hess = w * lw * s * sm
        lscale = np.abs(w) * (np.abs(pw * t * ls) + np.abs((1.0 - t) * lms) + 1.0 + np.abs(x))
        gscale = np.abs(w) * (np.abs(pw * t) + np.abs(1.0 - t) + 1.0)
    hvp = None if vv is None else hess * vv
    return _terms(loss, lscale, grad, gscale, hess, hvp), rows


def binary_cross_entropy_with_logits(input, target, weight=None, *, pos_weight=None,
                                     reduction="mean", return_grad=False, grad_output=None,
                                     sample_weight=None, return_hessian=False, details=False):
    """binary_cross_entropy_with_logits, float64 (SPEC.md); ``weight``,
    ``pos_weight`` and ``sample_weight`` broadcast to the input (a ``(C,)``
    pos_weight along the last axis).  ``return_hessian=True``: ``(loss, grad,
    hess)``, the diagonal Hessian (the whole Hessian: the loss is elementwise)."""
    terms, rows = _bce_with_logits_terms(input, target, weight, pos_weight)
    res = _finish_elementwise(terms, rows, reduction, grad_output, sample_weight)
    return _returned(res, return_grad or return_hessian, return_hessian, details)


def binary_cross_entropy_with_logits_hvp(input, target, v, weight=None, *, pos_weight=None,
                                         reduction="mean", grad_output=None, sample_weight=None):
    """The Hessian of binary_cross_entropy_with_logits times ``v`` (diagonal: hess * v)."""
    terms, rows = _bce_with_logits_terms(input, target, weight, pos_weight, v=v)
    return _finish_elementwise(terms, rows, reduction, grad_output, sample_weight).hvp


# ----------------------------------------------------------------------------
# Version 0.2 families: kl_div, sigmoid_focal_loss (SPEC.md "More of the family")
# ----------------------------------------------------------------------------

def kl_div(input, target, *, reduction="mean", log_target=False, return_grad=False,
           grad_output=None, details=False):
    """PyTorch's kl_div of log-probabilities ``input``, float64: ``t (log t - x)``
    (``xlogy(t, t) - t x``: 0 where t == 0) or, with ``log_target``, ``exp(t) (t - x)``;
    gradient ``-t`` (``-exp(t)``).  ``"batchmean"`` divides the sum by
    ``input.shape[0]`` (the sum for a 0-d input), ``"mean"`` by the element count."""
    x0 = np.asarray(input, np.float64)
    rows, x, (t,) = _elementwise(x0, target)
    with np.errstate(all="ignore"):
        if log_target:
            et = np.exp(t)
            loss, grad = et * (t - x), -et
            lscale = np.abs(et) * (np.abs(t) + np.abs(x) + 1.0)
        else:
            xlogx = np.where(t == 0, 0.0, t * np.log(t))
            loss, grad = xlogx - t * x, -t
            lscale = np.abs(xlogx) + np.abs(t * x) + np.abs(t)
    terms = _terms(loss, lscale, grad, np.abs(grad))
    if reduction != "batchmean":
        res = _finish_elementwise(terms, rows, reduction, grad_output, None)
    else:
        n = np.float64(x0.shape[0] if x0.ndim else 1)
        res = _finish_elementwise(terms, rows, "sum",
                                  np.float64(1.0 if grad_output is None else grad_output) / n, None)
        with np.errstate(all="ignore"):
            res = res._replace(loss=res.loss / n, loss_scale=res.loss_scale / n)
    return _returned(res, return_grad, details=details)


def _kl_reduce(elem, escale, shape, reduction):
    """A kl_div-style reduction of elementwise terms (shaped ``shape``) and of
    their error scales: (loss, scale, denominator) with PyTorch's denominators
    (the element count for "mean", ``shape[0]`` for "batchmean", 1 for a 0-d
    input)."""
    if reduction == "none":
        return elem, escale, 1.0
    n = {"sum": 1.0, "mean": float(math.prod(shape)),
         "batchmean": float(shape[0]) if shape else 1.0}[reduction]
    with np.errstate(all="ignore"):
        return np.float64(np.sum(elem) / n), np.float64(np.sum(escale) / abs(n) if n else 0.0), n


def distillation_loss(student_logits, teacher_logits, *, temperature=1.0, axis=None,
                      reduction="batchmean", return_grad=False, grad_output=None, details=False):
    """Knowledge distillation's loss, float64: PyTorch's recipe
    ``F.kl_div(F.log_softmax(s / T, axis), F.log_softmax(t / T, axis),
    reduction, log_target=True) * T**2``, with the convention that a class of
    teacher probability 0 adds 0 (the recipe gives NaN where the student's
    log-probability is -inf there too).

    Elementwise terms ``T**2 p_t (log p_t - log p_s)`` (p = softmax of the
    logits over T along the class axis), reduced as :func:`kl_div`.  The
    gradient of ``sum(G * terms)`` (G = grad_output for "none", else
    grad_output over the denominator) with respect to ``s`` is
    ``T (p_s sum_c G_c p_t,c - G p_t)``.  A row (sample) of either input
    with a NaN, a +inf, or only -inf is NaN throughout.
    """
    s = np.asarray(student_logits, np.float64)
    t = np.asarray(teacher_logits, np.float64)
    T = np.float64(temperature)
    rows = _Rows(s.shape, (class_axis(axis, s.ndim),))
    with np.errstate(all="ignore"):
        ss, st = _row_stats(rows.rows(s) / T), _row_stats(rows.rows(t) / T)
        lps, lpt = ss.d - ss.logS[:, None], st.d - st.logS[:, None]
        ps, pt = ss.softmax(), st.softmax()
        bad = (ss.bad | st.bad)[:, None]
        elem = np.where(bad, np.nan, np.where(pt == 0, 0.0, T * T * pt * (lpt - lps)))
        escale = np.where(bad, 0.0, T * T * np.nan_to_num(pt) * (
            ss.dev() + st.dev() + np.abs(ss.logS)[:, None] + np.abs(st.logS)[:, None] + 1.0))
    loss, lscale, n = _kl_reduce(rows.unrows(elem), rows.unrows(escale), s.shape, reduction)
    if not (return_grad or details):
        return loss
    if reduction == "none":
        G = rows.rows(np.broadcast_to(1.0 if grad_output is None else grad_output, s.shape))
    else:
        G = np.full(rows.rows(s).shape, (1.0 if grad_output is None else float(grad_output)) / n)
    with np.errstate(all="ignore"):
        Gpt = G * pt
        grad = T * (ps * Gpt.sum(axis=1, keepdims=True) - Gpt)
        gscale = T * (np.nan_to_num(ps) * np.abs(Gpt).sum(axis=1, keepdims=True) + np.abs(Gpt)
                      ) * (1.0 + ss.dev() + st.dev()) + 1e-300
    res = Result(loss, lscale, rows.unrows(grad), rows.unrows(gscale))
    return _returned(res, return_grad, details=details)


def sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="none",
                       return_grad=False, grad_output=None, details=False):
    """torchvision's sigmoid_focal_loss of logits ``input``, float64:
    ``a_t ce (1 - p_t) ** gamma`` with ``ce`` binary_cross_entropy_with_logits,
    ``s = sigmoid(x)``, ``p_t = s t + (1 - s)(1 - t)``, ``a_t = alpha t + (1 -
    alpha)(1 - t)`` (1 when alpha < 0); "mean" over all elements.  Gradient:
    ``a_t ((s - t) m ** gamma - gamma m ** (gamma - 1) ce s (1 - s) (2 t - 1))``
    with ``m = 1 - p_t``."""
    rows, x, (t,) = _elementwise(input, target)
    with np.errstate(all="ignore"):
        s, sm = _sigmoid(x), _sigmoid(-x)
        ce = -(t * _log_sigmoid(x) + (1.0 - t) * _log_sigmoid(-x))
        m = s * (1.0 - t) + sm * t                    # 1 - p_t, without cancellation
        a = alpha * t + (1.0 - alpha) * (1.0 - t) if alpha >= 0 else np.ones_like(t)
        mg = m ** gamma
        dm = -s * sm * (2.0 * t - 1.0)                 # d m / d x
        dmg = np.zeros_like(m) if gamma == 0 else gamma * m ** (gamma - 1.0) * dm
        loss = a * ce * mg
        s_t = (1.0 - t) * s - t * sm                  # s - t, without cancellation
        grad = a * (s_t * mg + ce * dmg)
        lscale = np.abs(loss) * (2.0 + np.abs(x)) + np.abs(a) * mg
        gscale = np.abs(a) * (np.abs(s_t) * mg + np.abs(ce * dmg) + mg + 1e-300)
    res = _finish_elementwise(_terms(loss, lscale, grad, gscale), rows, reduction, grad_output,
                              None)
    return _returned(res, return_grad, details=details)


# ----------------------------------------------------------------------------
# More than float64: mpmath (tests import mpmath with pytest.importorskip first)
# ----------------------------------------------------------------------------

def mp_cross_entropy_row(row, y, weight, label_smoothing=0.0, dps=50):
    """cross_entropy of one row of logits with class index ``y``, class weights
    ``weight`` and smoothing, in ``dps`` significant digits; returns
    ``(loss, grad, Q)`` rounded to float (Q = sum_c w_c q_c)."""
    import mpmath
    C = len(row)
    with mpmath.workdps(dps):
        xs = [mpmath.mpf(v) for v in row]
        w = [mpmath.mpf(v) for v in weight]
        e = mpmath.mpf(label_smoothing)
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in xs))
        lp = [v - lse for v in xs]
        loss = (1 - e) * (-w[y] * lp[y]) - e / C * mpmath.fsum(wc * lpc for wc, lpc in zip(w, lp))
        Q = (1 - e) * w[y] + e / C * mpmath.fsum(w)
        grad = [mpmath.exp(lp[c]) * Q - w[c] * (e / C + (1 - e if c == y else 0))
                for c in range(C)]
        return float(loss), [float(g) for g in grad], float(Q)


def mp_logsumexp_row(x, b=None, prec=400):
    """``(log|S|, sign(S))`` of ``S = sum_k b_k exp(x_k)`` over the finite
    float64 values ``x`` and weights ``b`` (ones by default), the terms of zero
    weight left out, in ``prec`` bits: exact for any but astronomically
    cancelling sums (every float64 is an mpf exactly)."""
    import mpmath
    b = np.ones(len(x)) if b is None else b
    with mpmath.workprec(prec):
        S = mpmath.fsum(mpmath.mpf(float(bk)) * mpmath.exp(mpmath.mpf(float(xk)))
                        for xk, bk in zip(x, b) if bk != 0)
        if S == 0:
            return -math.inf, 0.0
        return float(mpmath.log(abs(S))), float(mpmath.sign(S))


def mp_binary_cross_entropy_with_logits(x, t, pos_weight=1.0, prec=200):
    """Per-element loss and gradient of binary_cross_entropy_with_logits in
    ``prec`` bits, rounded to float64 arrays (any finite logits)."""
    import mpmath
    loss, grad = [], []
    with mpmath.workprec(prec):
        pw = mpmath.mpf(float(pos_weight))
        for xi, ti in zip(np.ravel(x).tolist(), np.ravel(t).tolist()):
            xm, tm = mpmath.mpf(xi), mpmath.mpf(ti)
            sig, sig_neg = 1 / (1 + mpmath.exp(-xm)), 1 / (1 + mpmath.exp(xm))
            loss.append(float((1 - tm) * mpmath.log1p(mpmath.exp(xm))
                              + pw * tm * mpmath.log1p(mpmath.exp(-xm))))
            grad.append(float((1 - tm) * sig - pw * tm * sig_neg))
    return np.reshape(loss, np.shape(x)), np.reshape(grad, np.shape(x))


# ----------------------------------------------------------------------------
# Finite differences
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
