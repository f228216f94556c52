"""What each task of :mod:`fastxent.dask` runs: NumPy blocks in, one fastxent call, NumPy out.

Design note.  fastxent.dask builds graphs; this module holds the functions its
tasks call, so that a worker unpickles plain references to importable
functions and needs no Dask here.  Every loss value and gradient comes from
fastxent's public functions; what is added is only the bookkeeping of a block:
its place in the whole array (for error messages and class offsets), the
scale of the global reduction, and the exact combination of per-block
statistics when the class axis is split across blocks.

Exactness: a block of a loss is fastxent's own call on that block with
``reduction="sum"`` and ``grad_output`` equal to the global scale, so every
``"none"`` loss and every gradient entry has the in-memory bits; reduced
losses add per-block partial sums in float64 in a fixed order
(:func:`sum_in_order`).  A block's partial comes back from fastxent in the
input's dtype (float32 for float16 and float32 input), hence reduced float32
losses agree with the in-memory result to about an ulp rather than bitwise.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

import fastxent

# The functions of fastxent a loss block may call, by name (picklable options).
_LOSSES = {
    "xent": "cross_entropy",
    "nll": "nll_loss",
    "bce": "binary_cross_entropy",
    "bce_logits": "binary_cross_entropy_with_logits",
}

def task_threads(n_threads):
    """The OpenMP threads of one fastxent call inside a Dask task.

    An explicit ``n_threads`` wins.  Otherwise a task that runs in the thread
    that called ``compute`` (the synchronous scheduler, one task at a time)
    uses fastxent's default, and a task run by a pool of Dask threads (the
    threaded scheduler, every ``dask.distributed`` worker) uses one thread:
    those pools run one task per core, so more would oversubscribe.
    """
    if n_threads is not None:
        return n_threads
    return None if threading.current_thread() is threading.main_thread() else 1


def compute_dtype(x: np.ndarray) -> np.ndarray:
    """float16 blocks are computed in float32, as the in-memory functions do."""
    return x.astype(np.float32) if x.dtype == np.float16 else x


def block_start(block_info) -> tuple:
    """Where the block of the first array argument starts in the whole array."""
    if not block_info or 0 not in block_info:     # meta inference: an empty block
        return ()
    return tuple(lo for lo, _ in block_info[0]["array-location"])


def located(call, block_info):
    """Runs ``call``; a ValueError (a bad value in this block) gets the block's place."""
    try:
        return call()
    except ValueError as e:
        raise ValueError(f"{e} (index within the Dask block that starts at {block_start(block_info)} "
                         f"of input)") from e


def _squeeze(a, ax):
    return None if a is None else np.squeeze(a, axis=ax)


def _as_float(a) -> float:
    return float(np.asarray(a).reshape(()))


def loss_block(x, target, weight, pos_weight, sample_weight, go, scale, *, spec, block_info=None):
    """One block of a loss whose class axis (if any) is whole in the block.

    Arrays come with the input's number of dimensions: a per-sample array
    (index target, ``grad_output`` of "none", ``sample_weight``) has length 1
    on the class axis, a class ``weight`` of a multi-class loss length 1 on
    every other axis.  Returns ``(loss, grad)``: for a reduced loss, the block's
    float64 sum shaped ``(1,) * ndim``; for "none", the loss with the class
    axis kept (length 1); ``grad`` is None without ``return_grad``.
    """
    kind, ax, reduction = spec["kind"], spec["axis"], spec["reduction"]
    multiclass = kind in ("xent", "nll")
    xb = compute_dtype(x)
    kwargs: dict[str, Any] = {"reduction": "sum" if reduction != "none" else "none",
                              "n_threads": task_threads(spec["n_threads"])}
    if multiclass:
        kwargs.update(ignore_index=spec["ignore_index"], axis=ax)
        if kind == "xent":
            kwargs["label_smoothing"] = spec["label_smoothing"]
        if target.dtype.kind in "iu":
            target = _squeeze(target, ax)
        weight = None if weight is None else weight.reshape(-1)
        sample_weight, go = _squeeze(sample_weight, ax), _squeeze(go, ax)
    elif kind == "bce_logits":
        kwargs["pos_weight"] = pos_weight
    if sample_weight is not None:
        kwargs["sample_weight"] = sample_weight
    if spec["return_grad"]:
        kwargs["return_grad"] = True
        kwargs["grad_output"] = go if reduction == "none" else _as_float(scale)
    func = getattr(fastxent, _LOSSES[kind])
    res = located(lambda: func(xb, target, weight, **kwargs), block_info)
    loss, grad = res if spec["return_grad"] else (res, None)
    dtype = x.dtype
    if reduction == "none":
        loss = np.asarray(loss).astype(dtype, copy=False)
        part = np.expand_dims(loss, ax) if multiclass else loss
    else:
        part = np.full((1,) * x.ndim, float(loss))
    return part, (None if grad is None else grad.astype(dtype, copy=False))


def check_index_targets(y, C, ignore_index, start):
    """A ValueError naming the first target that is not a class index, by its
    index in the whole target (``start``: where the block ``y`` starts)."""
    bad = ((y < 0) | (y >= C)) & (y != ignore_index)
    if bad.any():
        local = np.unravel_index(int(np.argmax(bad.reshape(-1))), y.shape)
        start = start or (0,) * y.ndim
        idx = tuple(int(s + i) for s, i in zip(start, local))
        idx_s = str(idx[0]) if len(idx) == 1 else str(idx)
        raise ValueError(f"target value {int(y[local])} at index {idx_s} is not a class index "
                         f"in [0, {C}) nor ignore_index ({ignore_index})")


def index_denominator(target, sample_weight, *, weight, C, ignore_index, keep_ndim):
    """A block's share of what an index-target "mean" divides by: the weights
    ``weight[y]`` (1 without weights) of its kept targets, times their sample
    weights; float64, shaped ``(1,) * keep_ndim``.  Invalid targets add nothing
    (the loss blocks raise for them)."""
    keep = (target != ignore_index) & (target >= 0) & (target < C)
    if weight is None:
        terms = keep.astype(np.float64)
    else:
        terms = np.where(keep, weight.astype(np.float64)[np.where(keep, target, 0)], 0.0)
    if sample_weight is not None:
        terms = terms * sample_weight.astype(np.float64)
    return np.full((1,) * keep_ndim, float(np.sum(terms)))


def count_denominator(sample_weight, *, keep_ndim):
    """A block's share of the "mean" denominator of a loss without index targets,
    given sample weights (already broadcast to the samples): their float64 sum."""
    return np.full((1,) * keep_ndim, float(np.sum(sample_weight, dtype=np.float64)))


def sum_in_order(*parts) -> float:
    """Partial sums added left to right in float64: one node of the fixed tree."""
    total = _as_float(parts[0])
    for p in parts[1:]:
        total += _as_float(p)
    return total


def grad_scale(grad_output, denom, reduction) -> float:
    """The factor every gradient entry of a reduced loss is multiplied by."""
    go = np.float64(_as_float(grad_output))
    if reduction == "sum":
        return float(go)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(go / np.float64(denom))


def finish_reduced(total, denom, reduction, dtype):
    """The reduced loss: a NumPy scalar of the input's dtype, as in memory."""
    value = np.float64(total)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            value = value / np.float64(denom)
    with np.errstate(over="ignore"):
        return np.dtype(dtype).type(value)


def as_scalar(block):
    """A 0-d block as the NumPy scalar the in-memory functions return."""
    return block[()]


def getitem(block, i):
    """Element ``i`` of a tuple-valued block."""
    return block[i]
