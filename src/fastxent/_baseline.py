"""Plain-NumPy twins of fastxent's functions: the benchmark baseline.

Each twin is written the way a careful NumPy user would write it, in the input's
dtype: shift by the maximum, ``exp``, ``sum``, ``log``; the gradient as softmax
minus the target, scaled by the reduction.  Temporaries are reused in place where
that is the natural thing to do, so the baseline is fair, not a straw man.

They cover what the benchmark workloads call (see ``_workloads.py``) and take the
same arguments as fastxent's functions, minus ``weight``, ``ignore_index``,
``label_smoothing``, ``grad_output``, ``out`` and ``n_threads``.  The second-order
twins (``return_hessian=True``, ``cross_entropy_hvp``) follow SPEC.md's version 0.2
("Sample weights and second order") ahead of fastxent: the bench times them as soon
as fastxent has the same functions; ``distillation_loss`` and ``sigmoid_focal_loss``
("More of the family") write out PyTorch's and torchvision's formulas.  The bench judges
fastxent by them, so tests/test_workloads.py checks them against the tests' float64
oracle (tests/reference.py); they are no oracle themselves.
"""
from __future__ import annotations

import numpy as np


def _class_axis(x: np.ndarray, axis) -> int:
    return (0 if x.ndim == 1 else 1) if axis is None else axis % x.ndim


def _reduce(loss: np.ndarray, reduction: str):
    """The reduced loss and the factor its gradient is scaled by."""
    if reduction == "none":
        return loss, None
    if reduction == "sum":
        return loss.dtype.type(loss.sum()), None
    if reduction == "mean":
        return loss.dtype.type(loss.mean()), 1.0 / max(loss.size, 1)
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _scale_of(reduction, n):
    """The factor a gradient is scaled by for ``n`` loss terms."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return 1.0 / max(n, 1) if reduction == "mean" else None


def _scaled(a, scale):
    if scale is not None:
        a *= a.dtype.type(scale)
    return a


def _with_grad(loss, grad, scale):
    """``(loss, grad)``, the gradient scaled in place by the reduction's factor."""
    if scale is not None:
        grad *= grad.dtype.type(scale)
    return loss, grad


def _shifted(x: np.ndarray, axis: int):
    """``x`` minus its maximum along ``axis`` (a new array), and that maximum."""
    m = np.max(x, axis=axis, keepdims=True)
    return x - m, m


def logsumexp(x, axis=-1):
    x = np.asarray(x)
    z, m = _shifted(x, axis)
    s = np.sum(np.exp(z, out=z), axis=axis, keepdims=True)
    return np.squeeze(np.log(s) + m, axis=axis)


def softmax(x, axis=-1):
    z, _ = _shifted(np.asarray(x), axis)
    e = np.exp(z, out=z)
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def log_softmax(x, axis=-1):
    z, _ = _shifted(np.asarray(x), axis)
    z -= np.log(np.sum(np.exp(z), axis=axis, keepdims=True))
    return z


def _need_grad(return_grad, return_hessian):
    if return_hessian and not return_grad:
        raise ValueError("return_hessian=True needs return_grad=True")


def cross_entropy(input, target, *, reduction="mean", axis=None, return_grad=False,
                  return_hessian=False):
    _need_grad(return_grad, return_hessian)
    x, t = np.asarray(input), np.asarray(target)
    ax = _class_axis(x, axis)
    z, _ = _shifted(x, ax)
    if t.dtype.kind in "iu":                               # class indices
        idx = np.expand_dims(t, ax)
        picked = np.take_along_axis(z, idx, axis=ax)
        e = np.exp(z, out=z)
        s = np.sum(e, axis=ax, keepdims=True)
        loss = np.squeeze(np.log(s) - picked, axis=ax)
    else:                                                  # class probabilities
        t = t.astype(x.dtype, copy=False)
        tz = np.sum(t * z, axis=ax, keepdims=True)
        t_sum = np.sum(t, axis=ax, keepdims=True)
        e = np.exp(z, out=z)
        s = np.sum(e, axis=ax, keepdims=True)
        loss = np.squeeze(np.log(s) * t_sum - tz, axis=ax)
    loss, scale = _reduce(loss, reduction)
    if not return_grad:
        return loss
    grad = e
    grad /= s                                              # softmax
    if return_hessian:                                     # A_n p (1 - p), A_n the target mass
        hess = np.subtract(1, grad, dtype=grad.dtype)
        hess *= grad
        if t.dtype.kind not in "iu":
            hess *= t_sum
    if t.dtype.kind in "iu":
        np.put_along_axis(grad, idx, np.take_along_axis(grad, idx, axis=ax) - 1, axis=ax)
    else:
        grad *= t_sum
        grad -= t
    if return_hessian:
        return _with_grad(loss, grad, scale) + (_scaled(hess, scale),)
    return _with_grad(loss, grad, scale)


def cross_entropy_hvp(input, target, v, *, reduction="mean", axis=None):
    """The Hessian of the returned loss times ``v`` (input's shape): per sample,
    ``A_n (p * v - p * sum_c p v)``, scaled as the gradient."""
    x, t, v = np.asarray(input), np.asarray(target), np.asarray(v)
    ax = _class_axis(x, axis)
    p, _ = _shifted(x, ax)
    np.exp(p, out=p)
    p /= np.sum(p, axis=ax, keepdims=True)
    hv = np.multiply(p, v, dtype=x.dtype)
    pv_sum = np.sum(hv, axis=ax, keepdims=True)
    p *= pv_sum
    hv -= p
    if t.dtype.kind not in "iu":
        hv *= np.sum(t.astype(x.dtype, copy=False), axis=ax, keepdims=True)
    n = t.size if t.dtype.kind in "iu" else x.size // max(x.shape[ax], 1)
    return _scaled(hv, _scale_of(reduction, n))


def nll_loss(input, target, *, reduction="mean", axis=None, return_grad=False):
    x, t = np.asarray(input), np.asarray(target)
    ax = _class_axis(x, axis)
    idx = np.expand_dims(t, ax)
    loss, scale = _reduce(-np.squeeze(np.take_along_axis(x, idx, axis=ax), axis=ax), reduction)
    if not return_grad:
        return loss
    grad = np.zeros_like(x)
    np.put_along_axis(grad, idx, -1, axis=ax)
    return _with_grad(loss, grad, scale)


def binary_cross_entropy_with_logits(input, target, *, reduction="mean", return_grad=False,
                                     return_hessian=False):
    _need_grad(return_grad, return_hessian)
    x = np.asarray(input)
    t = np.asarray(target).astype(x.dtype, copy=False)
    softplus = np.logaddexp(x.dtype.type(0), x)            # -log(1 - sigmoid(x))
    loss, scale = _reduce(softplus - t * x, reduction)
    if not return_grad:
        return loss
    grad = np.subtract(x, softplus, out=softplus)          # log(sigmoid(x))
    np.exp(grad, out=grad)
    if return_hessian:                                     # s (1 - s)
        hess = np.subtract(1, grad, dtype=grad.dtype)
        hess *= grad
    grad -= t
    if return_hessian:
        return _with_grad(loss, grad, scale) + (_scaled(hess, scale),)
    return _with_grad(loss, grad, scale)


def binary_cross_entropy(input, target, *, reduction="mean", return_grad=False):
    p = np.asarray(input)
    t = np.asarray(target).astype(p.dtype, copy=False)
    one = p.dtype.type(1)
    with np.errstate(divide="ignore"):                     # log(0) = -inf, clamped at -100
        log_p = np.maximum(np.log(p), -100)
        log_1mp = np.maximum(np.log(one - p), -100)
    loss, scale = _reduce(-(t * log_p + (one - t) * log_1mp), reduction)
    if not return_grad:
        return loss
    grad = (p - t) / np.maximum(p * (one - p), p.dtype.type(1e-12))
    return _with_grad(loss, grad, scale)


def _kl_reduce(elem: np.ndarray, reduction: str):
    """A kl_div-style reduction (PyTorch's "batchmean": the sum over the first
    axis' length) and the factor its gradient is scaled by."""
    if reduction == "batchmean":
        n = elem.shape[0] if elem.ndim else 1
        return elem.dtype.type(elem.sum() / n), 1.0 / max(n, 1)
    return _reduce(elem, reduction)


def distillation_loss(student_logits, teacher_logits, *, temperature=1.0, axis=None,
                      reduction="batchmean", return_grad=False):
    """PyTorch's recipe ``kl_div(log_softmax(s / T), log_softmax(t / T),
    log_target=True) * T**2`` in NumPy: elementwise ``T**2 p_t (lp_t - lp_s)``,
    gradient ``T (p_s - p_t)``."""
    s, t = np.asarray(student_logits), np.asarray(teacher_logits)
    ax = _class_axis(s, axis)
    T = s.dtype.type(temperature)
    lp_s = log_softmax(s / T, axis=ax)
    lp_t = log_softmax(t.astype(s.dtype, copy=False) / T, axis=ax)
    p_t = np.exp(lp_t)
    elem = np.subtract(lp_t, lp_s, out=lp_t)
    elem *= p_t
    elem *= T * T
    loss, scale = _kl_reduce(elem, reduction)
    if not return_grad:
        return loss
    grad = np.exp(lp_s, out=lp_s)                          # p_s
    grad -= p_t
    grad *= T
    return _with_grad(loss, grad, scale)


def sigmoid_focal_loss(input, target, *, alpha=0.25, gamma=2.0, reduction="none",
                       return_grad=False):
    """torchvision's formula in NumPy: ``a_t ce (1 - p_t) ** gamma`` with ``ce``
    binary cross-entropy with logits (``a_t`` = 1 for alpha < 0)."""
    x = np.asarray(input)
    t = np.asarray(target).astype(x.dtype, copy=False)
    one = x.dtype.type(1)
    softplus = np.logaddexp(x.dtype.type(0), x)            # -log(1 - sigmoid(x))
    ce = softplus - t * x
    p = np.exp(x - softplus)                               # sigmoid(x)
    m = p * (one - t) + (one - p) * t                      # 1 - p_t
    mod = m ** x.dtype.type(gamma)
    a_t = alpha * t + (1 - alpha) * (one - t) if alpha >= 0 else None
    loss = ce * mod
    if a_t is not None:
        loss *= a_t
    loss, scale = _reduce(loss, reduction)
    if not return_grad:
        return loss
    grad = (p - t) * mod
    if gamma:
        grad += ce * (gamma * m ** x.dtype.type(gamma - 1)) * p * (one - p) * (one - 2 * t)
    if a_t is not None:
        grad *= a_t
    return _with_grad(loss, grad, scale)
