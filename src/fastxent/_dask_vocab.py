"""Tasks of :mod:`fastxent.dask` for a class axis split across blocks (vocabulary-parallel).

Design note.  With the classes of a sample spread over several blocks, the
softmax needs each sample's global log-sum-exp.  Every block contributes its
own, from :func:`fastxent.logsumexp`; the contributions of a sample are
combined by :func:`fastxent.logsumexp` over them, in float64, which is exact to
rounding (log-sum-exp is associative: ``lse(a ++ b) = lse([lse(a), lse(b)])``).

The loss needs, besides that, a few per-sample sums over the classes, and they
are taken relative to the block's own log-sum-exp ``r`` so that no large
terms cancel: with ``lse`` the global value,

    sum_c w_c q_c (lse - x_c) = sum_blocks [ sum_{c in block} w_c q_c (r - x_c) + A_block (lse - r) ]

where ``A_block = sum_{c in block} w_c q_c``; both terms are non-negative for
non-negative weights and targets, so the float64 sum keeps the precision the
in-memory kernel has (``r`` is replaced by 0 where it is not finite: a block
whose classes are all masked with ``-inf``).  The target's logit ``x_y`` and
weight come from the one block that holds class ``y``; the other blocks add
exact zeros.

The gradient of a class block needs the global ``lse`` and, per sample, the
total weighted target mass; fastxent does not yet have a kernel that takes an
external log-sum-exp, so :func:`xent_slice_grad` calls the entry point named
``SLICE_KERNEL_NAME`` when fastxent has it (fastxent.dask raises
NotImplementedError before building such a graph otherwise).
"""
from __future__ import annotations

import numpy as np

import fastxent

from ._dask_blocks import (SLICE_KERNEL_NAME, block_start, check_index_targets, compute_dtype,
                           loss_block, task_threads)


def _class_start(block_info, ax):
    start = block_start(block_info)
    return (start[ax] if start else 0), start


def _drop(start, ax):
    return start[:ax] + start[ax + 1:] if start else ()


def _along(v, ax, ndim):
    """A (k,) vector shaped to broadcast along axis ``ax`` of an ``ndim`` array."""
    return v.reshape([-1 if d == ax else 1 for d in range(ndim)])


def xent_stats(x, target, weight, *, spec, block_info=None):
    """Stage 1 of cross_entropy on a class block: the block's per-sample
    statistics, each shaped like the block with length 1 on the class axis."""
    ax, C, eps = spec["axis"], spec["C"], spec["label_smoothing"]
    c0, start = _class_start(block_info, ax)
    xb = compute_dtype(x)
    nt = task_threads(spec["n_threads"])
    lse = np.asarray(fastxent.logsumexp(xb, axis=ax, keepdims=True, n_threads=nt), dtype=np.float64)
    ref = np.where(np.isfinite(lse), lse, 0.0)
    w = None if weight is None else _along(weight.reshape(-1).astype(np.float64), ax, xb.ndim)
    st = {"lse": lse, "ref": ref}
    if target.dtype.kind in "iu":
        ii = spec["ignore_index"]
        if c0 == 0:     # one class block per sample block checks its targets
            check_index_targets(np.squeeze(target, ax), C, ii, _drop(start, ax))
        inb = (target != ii) & (target >= c0) & (target < c0 + xb.shape[ax])
        loc = np.where(inb, target - c0, 0).astype(np.intp)
        st["xt"] = np.where(inb, np.take_along_axis(xb, loc, axis=ax).astype(np.float64), 0.0)
        st["wy"] = inb.astype(np.float64) if w is None else np.where(inb, w.reshape(-1)[loc], 0.0)
        if eps > 0:
            wc = 1.0 if w is None else w
            st["S"] = np.sum(wc * (ref - xb.astype(np.float64)), axis=ax, keepdims=True)
            st["W"] = float(xb.shape[ax]) if w is None else float(np.sum(w))
    else:
        q = (1.0 - eps) * target.astype(np.float64) + eps / C
        wq = q if w is None else w * q
        st["A"] = np.sum(wq, axis=ax, keepdims=True)
        st["B"] = np.sum(wq * (ref - xb.astype(np.float64)), axis=ax, keepdims=True)
    return st


def xent_combine(stats, target, sample_weight, *, spec):
    """Stage 2, one sample block: the class blocks' statistics (a list, in class
    order) combined into the per-sample loss, the block's float64 partial sum,
    the global log-sum-exp and the total target mass of each sample."""
    ax, C, eps = spec["axis"], spec["C"], spec["label_smoothing"]
    stats = [{k: np.squeeze(v, ax) if isinstance(v, np.ndarray) else v for k, v in s.items()}
             for s in stats]
    lse = np.asarray(fastxent.logsumexp(np.stack([s["lse"] for s in stats], axis=-1), axis=-1,
                                        n_threads=task_threads(spec["n_threads"])), dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if "A" in stats[0]:
            loss = sum(s["B"] + s["A"] * (lse - s["ref"]) for s in stats)
            mass = sum(s["A"] for s in stats)
        else:
            kept = target != spec["ignore_index"]
            wy = sum(s["wy"] for s in stats)
            loss = wy * (lse - sum(s["xt"] for s in stats))
            mass = wy
            if eps > 0:
                smooth = sum(s["S"] + s["W"] * (lse - s["ref"]) for s in stats)
                loss = (1.0 - eps) * loss + (eps / C) * smooth
                mass = (1.0 - eps) * wy + (eps / C) * sum(s["W"] for s in stats)
            loss = np.where(kept, loss, 0.0)
            mass = np.where(kept, mass, 0.0)
        if sample_weight is not None:
            loss = loss * sample_weight.astype(np.float64)
    part = np.full((1,) * lse.ndim, float(np.sum(loss)))
    out = loss.astype(spec["dtype"]) if spec["reduction"] == "none" else None
    return out, part, lse, mass


def xent_slice_grad(x, target, lse, mass, sample_weight, go, scale, *, weight, spec,
                    block_info=None):
    """Stage 3, one class block: its gradient from the global statistics,
    through fastxent's class-slice entry point (see fastxent.dask.SLICE_KERNEL)."""
    kernel = getattr(fastxent, SLICE_KERNEL_NAME)
    ax = spec["axis"]
    c0, _ = _class_start(block_info, ax)
    gs = (np.float64(np.asarray(scale).reshape(())) * np.ones(np.squeeze(lse, ax).shape)
          if spec["reduction"] != "none" else np.squeeze(go, ax).astype(np.float64))
    if sample_weight is not None:
        gs = gs * np.squeeze(sample_weight, ax)
    index = target.dtype.kind in "iu"
    _, grad = kernel(compute_dtype(x), np.squeeze(target, ax) if index else target,
                     np.squeeze(lse, ax), weight, class_start=c0, num_classes=spec["C"],
                     target_mass=None if index else np.squeeze(mass, ax),
                     ignore_index=spec["ignore_index"], label_smoothing=spec["label_smoothing"],
                     axis=ax, reduction="none", return_grad=True, grad_output=gs,
                     n_threads=task_threads(spec["n_threads"]))
    return grad.astype(x.dtype, copy=False)


def nll_slice(x, target, weight, sample_weight, go, scale, *, spec, block_info=None):
    """nll_loss on a class block: fastxent's own call with the targets that fall
    in the block made local, the others ignored.  Exact: a sample's loss and
    gradient come from the one block that holds its target."""
    ax, C, ii = spec["axis"], spec["C"], spec["ignore_index"]
    c0, start = _class_start(block_info, ax)
    if c0 == 0:
        check_index_targets(np.squeeze(target, ax), C, ii, _drop(start, ax))
    inb = (target != ii) & (target >= c0) & (target < c0 + x.shape[ax])
    local = np.where(inb, target - c0, -1).astype(np.int64)
    return loss_block(x, local, weight, None, sample_weight, go, scale,
                      spec=dict(spec, ignore_index=-1), block_info=block_info)


def sum_class_blocks(parts, *, axis):
    """The per-sample losses of the class blocks of one sample block (a list of
    ``(loss, grad)`` in class order) added in class order, the class axis dropped."""
    total = parts[0][0]
    for p in parts[1:]:
        total = total + p[0]
    return np.squeeze(total, axis=axis)


def lse_partial(x, *, axis, n_threads):
    """A block's log-sum-exp over ``axis`` (None: every element), float64, dims kept."""
    xb = compute_dtype(x)
    if axis is None:
        return np.full((1,) * x.ndim, float(fastxent.logsumexp(xb, axis=None, n_threads=task_threads(n_threads))))
    return np.asarray(fastxent.logsumexp(xb, axis=axis, keepdims=True,
                                         n_threads=task_threads(n_threads)), dtype=np.float64)


def lse_combine(partials, *, axis, n_threads):
    """The blocks' log-sum-exps of one row combined by fastxent.logsumexp, dims kept."""
    if axis is None:
        return np.full((1,) * partials.ndim, float(fastxent.logsumexp(partials, axis=None, n_threads=1)))
    return np.asarray(fastxent.logsumexp(partials, axis=axis, keepdims=True,
                                         n_threads=task_threads(n_threads)), dtype=np.float64)


def lse_apply(x, lse, *, mode, dtype):
    """softmax or log_softmax of a block given the global log-sum-exp (float64)."""
    d = x.astype(np.float64) - lse
    return (np.exp(d) if mode == "softmax" else d).astype(dtype)


def lse_whole(x, *, mode, axis, n_threads):
    """The logsumexp family on a block that holds whole rows: fastxent's own call."""
    nt = task_threads(n_threads)
    if mode == "logsumexp":
        return np.asarray(fastxent.logsumexp(x, axis=axis, keepdims=True, n_threads=nt))
    return getattr(fastxent, mode)(x, axis=axis, n_threads=nt)
