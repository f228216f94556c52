"""Tasks of :mod:`fastxent.dask` for a class axis split across blocks (vocabulary-parallel).

Design note.  With the classes of a sample spread over several blocks, the
softmax needs each sample's global log-sum-exp.  Every block contributes, for
each of its rows, its maximum ``m`` and ``l = log sum exp(x - m)`` from
:func:`fastxent.logsumexp` on the shifted block (``l`` lies in ``[0, log
Cb]`` and keeps full precision); the rows' global ``R = max m`` (the
in-memory kernel's own shift) and ``L = log sum_blocks exp(m - R + l)``, again
from :func:`fastxent.logsumexp`, give ``lse = R + L``, and the log-softmax is
computed as the kernel does, ``(x - R) - L``: exact to rounding, whatever the
logits' offset.  A block whose row has no finite maximum uses the shift 0.

The loss needs, besides that, a few per-sample sums over the classes, taken
relative to the block's shift ``m`` so that no large terms cancel:

    sum_c w_c q_c (lse - x_c) = sum_blocks [ sum_{c in block} w_c q_c (m - x_c) + A_block ((R - m) + L) ]

where ``A_block = sum_{c in block} w_c q_c``; every term is non-negative for
non-negative weights and targets.  The target's logit ``x_y`` and weight come
from the one block that holds class ``y``; the other blocks add exact zeros.

The gradient of a class block needs ``R``, ``L`` and each sample's total
weighted target mass: :func:`xent_slice_grad` passes them to
:func:`fastxent.cross_entropy_class_slice`, cross-entropy's own kernel with the
rows' statistics over all classes in place of the block's.
"""
from __future__ import annotations

import numpy as np

import fastxent

from ._dask_blocks import (block_start, check_index_targets, compute_dtype, loss_block,
                           task_threads)


def _class_start(block_info, ax):
    start = block_start(block_info)
    return (start[ax] if start else 0), start


def _drop(start, ax):
    return start[:ax] + start[ax + 1:] if start else ()


def _along(v, ax, ndim):
    """A (k,) vector shaped to broadcast along axis ``ax`` of an ``ndim`` array."""
    return v.reshape([-1 if d == ax else 1 for d in range(ndim)])


def _shifted(xb, axes, nt):
    """A block's rows relative to their maxima: ``(m, ref, d, l)``, dims kept:
    the maxima (float64), the shift (``m`` where finite, else 0), ``d = x - ref``
    (float64) and ``l = log sum exp(d)`` over ``axes`` from fastxent.logsumexp."""
    m = np.max(xb, axis=axes, keepdims=True).astype(np.float64)
    ref = np.where(np.isfinite(m), m, 0.0)
    d = xb.astype(np.float64) - ref
    lse_axis = axes[0] if len(axes) == 1 else None        # several axes: all of them
    l = np.asarray(fastxent.logsumexp(d, axis=lse_axis, keepdims=True, n_threads=nt), dtype=np.float64)
    return m, ref, d, l.reshape(m.shape)


def _merge(ms, ls, nt):
    """The rows' ``(R, L)`` from their blocks' ``(m, l)`` (lists, one array per block)."""
    M, Lb = np.stack(ms, axis=-1), np.stack(ls, axis=-1)
    finite = np.isfinite(M)
    R = np.max(np.where(finite, M, -np.inf), axis=-1)
    R = np.where(np.isfinite(R), R, 0.0)
    with np.errstate(invalid="ignore"):
        L = fastxent.logsumexp((np.where(finite, M, 0.0) - R[..., None]) + Lb, axis=-1, n_threads=nt)
    return R, np.asarray(L, dtype=np.float64)


def xent_stats(x, target, weight, *, spec, block_info=None):
    """Stage 1 of cross_entropy on a class block: the block's per-sample
    statistics, each shaped like the block with length 1 on the class axis."""
    ax, C, eps = spec["axis"], spec["C"], spec["label_smoothing"]
    c0, start = _class_start(block_info, ax)
    xb = compute_dtype(x)
    m, ref, d, l = _shifted(xb, (ax,), task_threads(spec["n_threads"]))
    w = None if weight is None else _along(weight.reshape(-1).astype(np.float64), ax, xb.ndim)
    st = {"m": m, "l": l, "ref": ref}
    with np.errstate(invalid="ignore"):
        if target.dtype.kind in "iu":
            ii = spec["ignore_index"]
            if c0 == 0:     # one class block per sample block checks its targets
                check_index_targets(np.squeeze(target, ax), C, ii, _drop(start, ax))
            inb = (target != ii) & (target >= c0) & (target < c0 + xb.shape[ax])
            loc = np.where(inb, target - c0, 0).astype(np.intp)
            st["xt"] = np.where(inb, np.take_along_axis(xb, loc, axis=ax).astype(np.float64), 0.0)
            st["wy"] = inb.astype(np.float64) if w is None else np.where(inb, w.reshape(-1)[loc], 0.0)
            if eps > 0:
                st["S"] = -np.sum(d if w is None else w * d, axis=ax, keepdims=True)
                st["W"] = float(xb.shape[ax]) if w is None else float(np.sum(w))
        else:
            q = (1.0 - eps) * target.astype(np.float64) + eps / C
            wq = q if w is None else w * q
            st["A"] = np.sum(wq, axis=ax, keepdims=True)
            st["B"] = -np.sum(wq * d, axis=ax, keepdims=True)
    return st


def xent_combine(stats, target, sample_weight, *, spec):
    """Stage 2, one sample block: the class blocks' statistics (a list, in class
    order) combined into the per-sample loss, the block's float64 partial sum,
    the rows' ``R`` and ``L`` and the total target mass of each sample."""
    ax, C, eps = spec["axis"], spec["C"], spec["label_smoothing"]
    stats = [{k: np.squeeze(v, ax) if isinstance(v, np.ndarray) else v for k, v in s.items()}
             for s in stats]
    R, L = _merge([s["m"] for s in stats], [s["l"] for s in stats], task_threads(spec["n_threads"]))
    with np.errstate(invalid="ignore", over="ignore"):
        if "A" in stats[0]:
            loss = sum(s["B"] + s["A"] * ((R - s["ref"]) + L) for s in stats)
            mass = sum(s["A"] for s in stats)
        else:
            kept = target != spec["ignore_index"]
            wy = sum(s["wy"] for s in stats)
            loss = wy * ((R - sum(s["xt"] for s in stats)) + L)
            mass = wy
            if eps > 0:
                smooth = sum(s["S"] + s["W"] * ((R - s["ref"]) + L) for s in stats)
                loss = (1.0 - eps) * loss + (eps / C) * smooth
                mass = (1.0 - eps) * wy + (eps / C) * sum(s["W"] for s in stats)
            loss = np.where(kept, loss, 0.0)
            mass = np.where(kept, mass, 0.0)
        if sample_weight is not None:
            loss = loss * sample_weight.astype(np.float64)
    part = np.full((1,) * R.ndim, float(np.sum(loss)))
    out = np.asarray(loss).astype(spec["dtype"]) if spec["reduction"] == "none" else None
    return out, part, R, L, np.asarray(mass, dtype=np.float64)


def xent_slice_grad(x, target, row_max, log_norm, mass, sample_weight, go, scale, *, weight, spec,
                    block_info=None):
    """Stage 3, one class block: its gradient from the global statistics, by
    fastxent.cross_entropy_class_slice (see fastxent.dask.SLICE_KERNEL)."""
    ax = spec["axis"]
    c0, _ = _class_start(block_info, ax)
    gs = (np.float64(np.asarray(scale).reshape(())) * np.ones(np.squeeze(row_max, ax).shape)
          if spec["reduction"] != "none" else np.squeeze(go, ax).astype(np.float64))
    if sample_weight is not None:
        gs = gs * np.squeeze(sample_weight, ax)
    index = target.dtype.kind in "iu"
    _, grad = fastxent.cross_entropy_class_slice(
        compute_dtype(x), np.squeeze(target, ax) if index else target,
        np.squeeze(row_max, ax), np.squeeze(log_norm, ax), weight,
        class_start=c0, num_classes=spec["C"], target_mass=None if index else np.squeeze(mass, ax),
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


def lse_stats(x, *, axes, n_threads):
    """Stage 1 of the logsumexp family on a block: its rows' ``(m, l)``, dims kept."""
    m, _, _, l = _shifted(compute_dtype(x), axes, task_threads(n_threads))
    return m, l


def _flat(nested):
    return [b for item in nested for b in _flat(item)] if isinstance(nested, list) else [nested]


def lse_merge(stats, *, axes, n_threads):
    """Stage 2: the blocks of a row (nested lists, in block order) merged into
    ``(R, L)``, the reduced axes dropped."""
    blocks = _flat(stats)
    return _merge([np.squeeze(m, axes) for m, _ in blocks], [np.squeeze(l, axes) for _, l in blocks],
                  task_threads(n_threads))


def lse_total(R, L, *, out_dtype):
    """The log-sum-exp ``R + L`` in the result's dtype."""
    return np.asarray(R + L).astype(out_dtype)


def lse_apply(x, R, L, *, mode, out_dtype):
    """softmax or log_softmax of a block, ``(x - R) - L`` as the kernel computes it."""
    with np.errstate(invalid="ignore"):
        d = (x.astype(np.float64) - R) - L
    return (np.exp(d) if mode == "softmax" else d).astype(out_dtype)


def lse_whole(x, *, mode, axis, n_threads):
    """The logsumexp family on a block that holds whole rows: fastxent's own call."""
    nt = task_threads(n_threads)
    if mode == "logsumexp":
        return np.asarray(fastxent.logsumexp(x, axis=axis, keepdims=True, n_threads=nt))
    return getattr(fastxent, mode)(x, axis=axis, n_threads=nt)
