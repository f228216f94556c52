"""An independent float64 reference of fastxent's functions, for the reliability tests.

Written from the formulas of SPEC.md (PyTorch's semantics) with plain NumPy, in
float64, sharing no code with fastxent.  Besides each value it returns an error
scale: the sensitivity of the value to rounding of the inputs and intermediates
in the computing dtype, so that the tests can use a tolerance of a few ulp of
that scale instead of a blanket relative tolerance (which is either too loose
for well-conditioned values or too tight near cancellation).

Non-finite logits, as PyTorch: a row (the classes of one sample) that holds a
NaN or a +inf, or only -inf, gives NaN loss and NaN gradient; a -inf entry in an
otherwise finite row is a masked class (probability 0).  A row whose target is
``ignore_index`` gives loss 0 and gradient 0 whatever its logits (PyTorch's
gradient is NaN there when the logits are; see test_properties.py).
"""
from __future__ import annotations

import math

import numpy as np

# PyTorch's floor of x (1 - x) in binary_cross_entropy's gradient: float32(1e-12)
# in every dtype (SPEC.md).
_BCE_EPS = float(np.float32(1e-12))


def _rows(a, ax):
    """``a`` with axis ``ax`` moved last, as (N, C) rows; and the sample shape."""
    m = np.moveaxis(a, ax, -1)
    # contiguous rows: NumPy sums a contiguous axis pairwise (error ~log C ulp),
    # a strided one term by term (error ~C ulp), which is too coarse for a reference
    return np.ascontiguousarray(m.reshape(math.prod(m.shape[:-1]), m.shape[-1])), m.shape[:-1]


def _unrows(r, sample_shape, ax):
    """Inverse of _rows for arrays shaped like the input."""
    return np.moveaxis(r.reshape(sample_shape + (r.shape[-1],)), -1, ax)


def row_stats(xr):
    """Per row of (N, C) float64 logits: (bad, M, logS, p, dev).

    bad: NaN loss/grad row; M: max (0 for bad rows); logS = log sum exp(x - M);
    p: softmax (NaN in bad rows); dev = |x - M| where finite, else 0.
    """
    N, C = xr.shape
    with np.errstate(all="ignore"):
        has_nan = np.isnan(xr).any(axis=1)
        has_pinf = (xr == np.inf).any(axis=1)
        # an empty row (C == 0) is an empty sum: loss 0, as PyTorch
        all_minf = (xr == -np.inf).all(axis=1) if C else np.zeros(N, bool)
        bad = has_nan | has_pinf | all_minf
        safe = np.where(bad[:, None], 0.0, xr)
        M = safe.max(axis=1) if C else np.zeros(N)
        d = safe - M[:, None]
        e = np.exp(d)
        S = e.sum(axis=1)
        logS = np.log(np.where(bad, 1.0, S))
        p = np.where(bad[:, None], np.nan, e / np.where(bad, 1.0, S)[:, None])
        dev = np.where(np.isfinite(d), np.abs(d), 0.0)
    return bad, M, logS, p, dev


def multiclass(kind, x, target, weight=None, ignore_index=-100, reduction="mean",
               label_smoothing=0.0, axis=None, grad_output=None):
    """cross_entropy ("xent") or nll_loss ("nll") in float64.

    ``x`` float64 logits (or log-probabilities for nll); ``target`` integer class
    indices or float64 probabilities; ``weight`` float64 (C,) or None.  Returns a
    dict: loss (float or array), loss_scale (same shape), grad, grad_scale (like x).
    """
    x = np.asarray(x, np.float64)
    ax = (0 if x.ndim == 1 else 1) if axis is None else axis % x.ndim
    C = x.shape[ax]
    xr, sshape = _rows(x, ax)
    N = xr.shape[0]
    w = np.ones(C) if weight is None else np.asarray(weight, np.float64)
    eps = np.float64(label_smoothing)
    tgt = np.asarray(target)
    by_index = tgt.dtype.kind in "iu"
    with np.errstate(all="ignore"):
        if by_index:
            y = tgt.reshape(-1).astype(np.int64)
            keep = y != ignore_index
            yk = np.where(keep, y, 0)
            onehot = np.zeros((N, C))
            if C:
                onehot[np.arange(N), yk] = 1.0
            onehot[~keep] = 0.0
            wy = np.where(keep, w[yk] if C else 0.0, 0.0)
            denom = wy.sum()
        else:
            t, _ = _rows(np.asarray(tgt, np.float64), ax)
            keep = np.ones(N, bool)
            denom = np.float64(N) if x.size else np.float64(0.0)   # PyTorch: an empty mean is NaN

        if kind == "nll":
            xy = np.where(keep, xr[np.arange(N), yk] if C else 0.0, 0.0)
            loss = np.where(keep, -wy * xy, 0.0)
            lscale = np.abs(loss)
            ignored_grad = 0.0
            q = onehot                       # d loss / d x = -w_y at y
            gr = -w[None, :] * q
            gscale_r = np.abs(gr)
        else:
            bad, M, logS, p, dev = row_stats(xr)
            ignored_grad = np.where(bad[:, None], np.nan, 0.0)
            lp = (xr - M[:, None]) - logS[:, None]
            if by_index:
                q = (1.0 - eps) * onehot + np.where(keep, eps / C if C else 0.0, 0.0)[:, None]
                # PyTorch: (1 - eps) * nll + (eps / C) * smooth, the smooth term
                # skipped when eps == 0 (so masked classes add no 0 * -inf)
                lpy = lp[np.arange(N), yk] if C else np.zeros(N)
                loss = (1.0 - eps) * (-wy * lpy)
                if eps > 0.0:
                    loss = loss + (eps / C) * -(w[None, :] * lp).sum(axis=1)
            else:
                q = (1.0 - eps) * t + (eps / C if C else 0.0)
                loss = -(w[None, :] * q * lp).sum(axis=1)
            wq = w[None, :] * q
            Q = wq.sum(axis=1)
            Qabs = np.abs(wq).sum(axis=1)     # Q's own rounding error scales with this
            loss = np.where(bad, np.nan, loss)
            loss = np.where(keep, loss, 0.0)
            spread = (p * dev).sum(axis=1)
            lscale = (np.abs(loss) + Qabs * (np.abs(logS) + 1.0 + np.nan_to_num(spread))
                      + (np.abs(wq) * (dev + 1.0)).sum(axis=1))
            gr = p * Q[:, None] - wq
            gr = np.where(keep[:, None], gr, 0.0)
            gscale_r = (Qabs[:, None] * np.nan_to_num(p) *
                        (2.0 + dev + np.abs(logS)[:, None] + np.nan_to_num(spread)[:, None])
                        + np.abs(wq) + Qabs[:, None] * 1e-30)
            gscale_r = np.where(keep[:, None], gscale_r, 0.0)

        lscale = np.where(np.isfinite(lscale), lscale, 0.0)
        if reduction == "none":
            go = np.ones(N) if grad_output is None else np.asarray(grad_output, np.float64).reshape(-1)
            g = np.where(keep[:, None], gr * go[:, None], ignored_grad)
            gs = gscale_r * np.abs(go)[:, None]
            return {"loss": loss.reshape(sshape), "loss_scale": lscale.reshape(sshape),
                    "grad": _unrows(g, sshape, ax), "grad_scale": _unrows(gs, sshape, ax)}
        go = np.float64(1.0 if grad_output is None else grad_output)
        total = loss.sum()
        tscale = lscale.sum()
        if reduction == "mean":
            total, tscale, go = total / denom, tscale / abs(denom), go / denom
        # an ignored row has gradient 0 even where "mean" divides by 0 (NaN where
        # its softmax is NaN: PyTorch multiplies that by the zero upstream gradient)
        g = np.where(keep[:, None], gr * go, ignored_grad)
        return {"loss": total, "loss_scale": tscale,
                "grad": _unrows(g, sshape, ax), "grad_scale": _unrows(gscale_r * abs(go), sshape, ax)}


def lse_family(mode, x, axis=-1):
    """logsumexp / softmax / log_softmax (scipy.special's semantics) in float64,
    with their error scales.  ``axis=None``: over every element."""
    x = np.asarray(x, np.float64)
    shape = x.shape
    if axis is None:
        xr, ax, sshape = x.reshape(1, -1), 0, ()
    else:
        xx = x.reshape(1) if x.ndim == 0 else x
        ax = axis % xx.ndim
        xr, sshape = _rows(xx, ax)
    N, C = xr.shape
    with np.errstate(all="ignore"):
        finite_max = np.isfinite(xr.max(axis=1)) if C else np.zeros(N, bool)
        M = np.where(finite_max, xr.max(axis=1) if C else 0.0, 0.0)
        d = xr - M[:, None]
        e = np.exp(d)
        S = e.sum(axis=1)
        logS = np.log(S)
        lse = M + logS
        dev = np.where(np.isfinite(d), np.abs(d), 0.0)
        p = e / S[:, None]
        spread = np.nan_to_num((np.nan_to_num(p) * dev).sum(axis=1))
        if mode == "logsumexp":
            val = lse.reshape(sshape) if axis is not None else lse[0]
            scale = (np.abs(M) + np.abs(logS) + 1.0 + spread)
            scale = np.where(np.isfinite(scale), scale, 0.0)
            return val, (scale.reshape(sshape) if axis is not None else scale[0])
        if mode == "softmax":
            # scipy: no shift fix-up for a non-finite max: such rows are NaN
            out = np.where(finite_max[:, None], p, np.nan)
            out = np.where(np.isnan(xr).any(axis=1)[:, None], np.nan, out)
            scale = np.nan_to_num(p) * (2.0 + dev + spread[:, None]) + 1e-300
        else:
            out = d - logS[:, None]
            scale = dev + np.abs(logS)[:, None] + 1.0 + spread[:, None]
        scale = np.where(np.isfinite(scale), scale, 0.0)
    if axis is None:
        return out.reshape(shape), scale.reshape(shape)
    xx_shape = shape if len(shape) else (1,)
    out = _unrows(out, sshape, ax).reshape(xx_shape).reshape(shape)
    scale = _unrows(scale, sshape, ax).reshape(xx_shape).reshape(shape)
    return out, scale


def _log_sigmoid(z):
    """log(sigmoid(z)) = -log(1 + exp(-z)), without overflow."""
    return -np.logaddexp(0.0, -z)


def binary(kind, x, t, weight=None, pos_weight=None, reduction="mean", grad_output=None):
    """binary_cross_entropy ("bce") or binary_cross_entropy_with_logits ("bcel")
    in float64, SPEC.md's formulas; returns the dict of :func:`multiclass`."""
    x = np.asarray(x, np.float64)
    t = np.asarray(t, np.float64)
    w = np.ones_like(x) if weight is None else np.broadcast_to(np.asarray(weight, np.float64), x.shape)
    with np.errstate(all="ignore"):
        if kind == "bce":
            lx = np.maximum(np.log(x), -100.0)
            l1x = np.maximum(np.log1p(-x), -100.0)
            loss = -w * (t * lx + (1.0 - t) * l1x)
            gr = w * (x - t) / np.maximum(x * (1.0 - x), _BCE_EPS)
            lscale = np.abs(w) * (np.abs(t * lx) + np.abs((1.0 - t) * l1x) + 1.0)
            gsc = np.abs(gr) + np.abs(w) * (np.abs(x) + np.abs(t)) / np.maximum(x * (1.0 - x), _BCE_EPS)
        else:
            pw = np.ones_like(x) if pos_weight is None else np.broadcast_to(np.asarray(pos_weight, np.float64), x.shape)
            ls, lms = _log_sigmoid(x), _log_sigmoid(-x)
            loss = -w * (pw * t * ls + (1.0 - t) * lms)
            # non-finite logits: PyTorch's own formula, whose inf - inf makes a
            # -inf logit (and +inf with t == 1) NaN; SPEC follows PyTorch there
            lw = (pw - 1.0) * t + 1.0
            torch_form = w * ((1.0 - t) * x + lw * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)))
            loss = np.where(np.isfinite(x), loss, torch_form)
            sig = np.exp(ls)
            gr = w * ((pw * t + 1.0 - t) * sig - pw * t)
            lscale = np.abs(w) * (np.abs(pw * t * ls) + np.abs((1.0 - t) * lms) + 1.0 + np.abs(x))
            gsc = np.abs(w) * (np.abs(pw * t) + np.abs(1.0 - t) + 1.0)
    if reduction == "none":
        go = np.ones(x.shape) if grad_output is None else np.broadcast_to(np.asarray(grad_output, np.float64), x.shape)
        return {"loss": loss, "loss_scale": lscale, "grad": gr * go, "grad_scale": gsc * np.abs(go)}
    go = 1.0 if grad_output is None else float(grad_output)
    total, tscale = loss.sum(), lscale.sum()
    if reduction == "mean":
        n = np.float64(x.size)              # 0 for an empty input: NaN, as PyTorch
        with np.errstate(all="ignore"):
            total, tscale, go = total / n, tscale / max(x.size, 1), go / n
    return {"loss": total, "loss_scale": tscale, "grad": gr * go, "grad_scale": gsc * abs(go)}
