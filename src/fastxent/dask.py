"""fastxent on Dask arrays: the same losses, lazily, for data beyond one machine's memory.

::

    import dask.array as da, fastxent.dask as fxd
    logits = da.from_zarr("logits.zarr")            # (tokens, vocab), chunked by tokens
    loss = fxd.cross_entropy(logits, targets, axis=-1, reduction="none")
    mean = fxd.cross_entropy(logits, targets, axis=-1)
    loss, grad = fxd.cross_entropy(logits, targets, axis=-1, return_grad=True)

Every function takes the arguments of its in-memory namesake (``input`` and
array arguments as ``dask.array`` or anything NumPy takes; ``out=`` is not
available, the results being lazy) and returns Dask arrays: a reduced loss is a
0-d array, ``grad`` is chunked exactly like ``input``.  Compute them together
(``dask.compute(loss, grad)``) so that each block is read and computed once.

Exact reductions.  Every block is one call of fastxent's in-memory function.
A ``"mean"`` first reduces its denominator (from the targets, class weights
and sample weights only); each block then computes its loss and its gradient
in one call with the global scale (``reduction="sum"``, ``grad_output`` = the
upstream gradient / denominator), so ``"none"`` losses and gradients have the
in-memory bits.  Block partial sums are added in float64, in block order, by a
tree of fixed shape (``TREE_ARITY`` partials per node): a given chunking gives
the same bits on every scheduler and any number of workers, within a few ulp
of the in-memory result.

Class axis split across blocks (vocabulary-parallel): ``logsumexp``,
``softmax``, ``log_softmax``, the losses of ``cross_entropy`` and both loss and
gradient of ``nll_loss`` are computed from per-block statistics combined
exactly (see :mod:`fastxent._dask_vocab`).  The gradient of ``cross_entropy``
needs fastxent's class-slice entry point (``SLICE_KERNEL`` below); until it
exists, ``return_grad=True`` with a split class axis raises NotImplementedError.

Threads.  With ``n_threads=None`` a task run by a pool of Dask threads (the
threaded scheduler, ``dask.distributed`` workers) calls fastxent with one
OpenMP thread, since those pools run one task per core; the synchronous
scheduler's tasks use fastxent's default.  Give a cluster as many threads in
all as the machine has cores; pass ``n_threads=k`` to give every task ``k``
threads when the cluster runs fewer tasks at once than there are cores.
"""
from __future__ import annotations

import operator
from typing import Any

import dask  # type: ignore[import-not-found, unused-ignore]  # optional: fastxent[dask]
import dask.array as da  # type: ignore[import-not-found, unused-ignore]
import numpy as np

import fastxent

from . import _dask_blocks as _b
from . import _dask_vocab as _v

__all__ = ["cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "logsumexp", "softmax", "log_softmax", "SLICE_KERNEL", "TREE_ARITY"]

#: How many partial sums one node of the reduction tree adds.
#:
#: The block sums of a loss (and of a "mean" denominator) are added in
#: float64, in the C order of the blocks, ``TREE_ARITY`` at a time, level by
#: level.  The tree's shape depends on the number of blocks only, so a given
#: chunking gives the same bits on every scheduler and any number of workers.
TREE_ARITY = 8

#: The specification, as text, of the kernel a split class axis's gradient needs.
#:
#: :func:`cross_entropy` with ``return_grad=True`` and the class axis split
#: across blocks needs an in-memory entry point that makes one fused pass over
#: a block of classes, given each sample's normalizer over all classes;
#: ``print(fastxent.dask.SLICE_KERNEL)`` shows its signature and formulas.
#: Until fastxent has that function, such a call raises NotImplementedError.
SLICE_KERNEL = f"""fastxent.{_b.SLICE_KERNEL_NAME}(input, target, row_max, log_norm, weight=None, *,
    class_start, num_classes, target_mass=None, ignore_index=-100, label_smoothing=0.0,
    axis=None, reduction="none", return_grad=False, grad_output=None, out=None,
    n_threads=None)

``input`` holds the logits of classes [class_start, class_start + Cs) of a problem with
``num_classes`` = C classes (Cs = input.shape[axis]).  ``target`` holds class indices in
[0, C) (or ignore_index), shaped like input without the class axis, or the slice's class
probabilities, shaped like input.  ``row_max`` and ``log_norm`` (float64, the sample shape)
give each sample's normalizer over all C classes: lse = row_max + log_norm, with row_max the
maximum logit (0 where the row has none finite) and log_norm = log sum_c exp(x_c - row_max);
the kernel uses lp_c = (x_c - row_max) - log_norm, as in memory.  ``weight`` is the (C,)
vector of all classes; ``target_mass`` (float64, per sample, probability targets only) is
sum_{{c<C}} w_c q_c.  Returns the slice's loss terms, which add up over the slices to the
in-memory per-sample loss:
    index:  (1-eps) w_y (-lp_y) [y in slice] + (eps/C) sum_{{c in slice}} w_c (-lp_c)
            (0 where ignored),
    probs:  sum_{{c in slice}} w_c q_c (-lp_c),  q = (1-eps) t + eps/C,
and with return_grad the gradient of sum_n grad_output_n * loss_n with respect to the slice:
    index:  go_n (M_n exp(lp_c) - (1-eps) w_y [c == y_n] - (eps/C) w_c),
            M_n = (1-eps) w_y + (eps/C) sum_{{c<C}} w_c (0 where ignored),
    probs:  go_n (target_mass_n exp(lp_c) - w_c q_c).
One fused pass over the slice, as cross_entropy's; "sum" returns the float64 total."""


# ---------------------------------------------------------------------------
# Arguments

def _as_dask(a, chunks="auto") -> da.Array:
    return a if isinstance(a, da.Array) else da.from_array(np.asarray(a), chunks=chunks)


def _numpy(a):
    """A small argument (class weights, a scalar) as NumPy, computed if lazy."""
    return np.asarray(a.compute() if isinstance(a, da.Array) else a)


def _aligned(a, x: da.Array, shape: tuple) -> da.Array:
    """``a`` reshaped to ``shape`` (``x.ndim`` dims, each ``x``'s length or 1) and
    chunked like ``x`` along the axes where it has ``x``'s length."""
    chunks = tuple(x.chunks[d] if n == x.shape[d] else (n,) for d, n in enumerate(shape))
    if isinstance(a, da.Array):
        return a.reshape(shape).rechunk(chunks)
    return da.from_array(np.reshape(np.asarray(a), shape), chunks=chunks)


def _check_no_out(out):
    if out is not None:
        raise ValueError("out= is not available in fastxent.dask: results are lazy Dask arrays "
                         "(write them with dask.array.store)")


def _shape_of(a):
    return a.shape if isinstance(a, da.Array) else np.shape(a)


def _dtype_of(a):
    return a.dtype if isinstance(a, da.Array) else np.asarray(a).dtype


def _grad_output_dummy(grad_output, reduction, loss_shape, loss_shape0):
    """``grad_output`` for the validating in-memory call (its values are not needed)."""
    if grad_output is None:
        return None
    want = loss_shape if reduction == "none" else ()
    if _shape_of(grad_output) != want:
        raise ValueError(f"grad_output must have the loss's shape {want}, got {_shape_of(grad_output)}")
    if reduction != "none" and not isinstance(grad_output, da.Array):
        return grad_output
    return np.zeros(loss_shape0 if reduction == "none" else (), dtype=_dtype_of(grad_output))


# ---------------------------------------------------------------------------
# Graph pieces

def _tree_sum(parts: da.Array):
    """The float64 sum of an array of block partials, as a Delayed: the partials
    in C order of the blocks, added ``TREE_ARITY`` at a time, level by level."""
    level = list(parts.to_delayed(optimize_graph=False).ravel())
    while True:
        level = [dask.delayed(_b.sum_in_order, pure=True)(*level[i:i + TREE_ARITY])
                 for i in range(0, len(level), TREE_ARITY)]
        if len(level) == 1:
            return level[0]


def _ones_chunks(a: da.Array) -> tuple:
    return tuple((1,) * n for n in a.numblocks)


def _item(t: da.Array, i: int, dtype, chunks=None) -> da.Array:
    """Element ``i`` of the tuples a graph of tuple-valued blocks holds."""
    ndim = t.ndim if chunks is None else len(chunks)
    return da.map_blocks(_b.getitem, t, i, dtype=dtype, chunks=chunks,
                        meta=np.empty((0,) * ndim, dtype=dtype))


def _reduced(total, denom, reduction, dtype) -> da.Array:
    value = dask.delayed(_b.finish_reduced, pure=True)(total, denom, reduction, np.dtype(dtype).str)
    return da.from_delayed(value, shape=(), dtype=dtype)


def _scale(grad_output, denom, reduction):
    """The gradient's global factor as a 0-d Dask array (computed after the denominator)."""
    go = 1.0 if grad_output is None else grad_output
    if isinstance(go, da.Array):
        go = go.to_delayed(optimize_graph=False).reshape(()).item()
    return da.from_delayed(dask.delayed(_b.grad_scale, pure=True)(go, denom, reduction),
                           shape=(), dtype=np.float64)


def _tuples(func, *args, like: da.Array, **kwargs) -> da.Array:
    return da.map_blocks(func, *args, dtype=object, meta=np.empty((0,) * like.ndim, dtype=object),
                         **kwargs)


def _finish_loss(t, x, reduction, loss_chunks, denom, return_grad, squeeze_axis=None):
    """The (loss, grad) of a graph whose blocks are ``(part, grad)`` tuples."""
    if reduction == "none":
        loss = _item(t, 0, x.dtype, chunks=loss_chunks)
        if squeeze_axis is not None:
            loss = loss.squeeze(axis=squeeze_axis)
    else:
        parts = _item(t, 0, np.float64, chunks=_ones_chunks(t))
        loss = _reduced(_tree_sum(parts), denom, reduction, x.dtype)
    return (loss, _item(t, 1, x.dtype)) if return_grad else loss


# ---------------------------------------------------------------------------
# cross_entropy and nll_loss

def _class_axis(axis, ndim, func):
    """The class axis of an input of ``ndim`` dimensions (PyTorch's convention
    for None); a bad ``axis`` raises the in-memory function's own error."""
    try:
        if ndim == 0:
            raise ValueError
        ax = (0 if ndim == 1 else 1) if axis is None else operator.index(axis)
        if not -ndim <= ax < ndim:
            raise ValueError
        return ax % ndim
    except (TypeError, ValueError):
        func(np.zeros((1,) * ndim), np.zeros((1,) * max(ndim - 1, 0), np.int64), axis=axis)
        raise


def _multiclass(kind, input, target, weight, ignore_index, reduction, label_smoothing, axis,
                return_grad, grad_output, out, n_threads, sample_weight):
    func = fastxent.cross_entropy if kind == "xent" else fastxent.nll_loss
    _check_no_out(out)
    ax = _class_axis(axis, len(_shape_of(input)), func)
    x = _as_dask(input, chunks={ax: -1})
    C = x.shape[ax]
    sample_shape = x.shape[:ax] + x.shape[ax + 1:]
    index = _dtype_of(target).kind in "iu"
    tshape = _shape_of(target)
    if index and tshape != sample_shape:
        raise ValueError(f"target of class indices must have shape {sample_shape} (input {x.shape} "
                         f"without its class axis), got target {tshape}")
    if kind == "xent" and _dtype_of(target).kind == "f" and tshape != x.shape:
        raise ValueError(f"target of class probabilities must have the input's shape {x.shape}, got {tshape}")
    if sample_weight is not None and _shape_of(sample_weight) != sample_shape:
        raise ValueError(f"sample_weight must have shape {sample_shape}, one weight per sample "
                         f"position, got {_shape_of(sample_weight)}")
    # Every option is checked by the in-memory function itself, on a one-sample problem.
    shape0 = tuple(C if d == ax else 1 for d in range(x.ndim))
    sample0 = shape0[:ax] + shape0[ax + 1:]
    w = None if weight is None else _numpy(weight)
    opts: dict[str, Any] = dict(ignore_index=ignore_index, reduction=reduction, axis=axis,
                                return_grad=return_grad, n_threads=n_threads)
    if kind == "xent":
        opts["label_smoothing"] = label_smoothing
    if sample_weight is not None:
        opts["sample_weight"] = np.ones(sample0, dtype=_dtype_of(sample_weight))
    go0 = _grad_output_dummy(grad_output, reduction, sample_shape, sample0)
    func(np.zeros(shape0, x.dtype), np.zeros(sample0 if index else shape0, _dtype_of(target)), w,
         grad_output=go0, **opts)

    compute = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    w64 = None if w is None else w.astype(compute).astype(np.float64)   # as the kernels see them
    keep = tuple(1 if d == ax else n for d, n in enumerate(x.shape))
    tgt = _aligned(da.expand_dims(target, ax) if isinstance(target, da.Array) else
                   np.expand_dims(np.asarray(target), ax), x, keep) if index else _aligned(target, x, x.shape)
    wd = None if w is None else _aligned(w, x, shape0)
    swd = None if sample_weight is None else _aligned(
        da.expand_dims(sample_weight, ax) if isinstance(sample_weight, da.Array) else
        np.expand_dims(np.asarray(sample_weight), ax), x, keep)
    god = None
    if grad_output is not None and reduction == "none":
        god = _aligned(da.expand_dims(grad_output, ax) if isinstance(grad_output, da.Array) else
                       np.expand_dims(np.asarray(grad_output), ax), x, keep)

    n_samples = int(np.prod(sample_shape))
    if reduction != "mean":
        denom: Any = None
    elif index:
        dparts = da.map_blocks(_b.index_denominator, tgt, swd,
                               weight=None if w64 is None else dask.delayed(w64), C=C,
                               ignore_index=ignore_index, keep_ndim=x.ndim, chunks=_ones_chunks(tgt),
                               dtype=np.float64)
        denom = _tree_sum(dparts)
    elif sample_weight is not None:
        denom = _tree_sum(da.map_blocks(_b.count_denominator, swd, keep_ndim=x.ndim,
                                        chunks=_ones_chunks(swd), dtype=np.float64))
    else:
        denom = float(n_samples) if x.size else 0.0
    scale = _scale(grad_output, denom, reduction) if return_grad and reduction != "none" else None
    spec = dict(kind=kind, axis=ax, reduction=reduction, ignore_index=ignore_index, C=C,
                label_smoothing=float(label_smoothing) if kind == "xent" else 0.0,
                return_grad=bool(return_grad), n_threads=n_threads, dtype=x.dtype.str)
    loss_chunks = tuple((1,) * x.numblocks[ax] if d == ax else c for d, c in enumerate(x.chunks))

    if x.numblocks[ax] == 1:
        t = _tuples(_b.loss_block, x, tgt, wd, None, swd, god, scale, spec=spec, like=x)
        return _finish_loss(t, x, reduction, loss_chunks, denom, return_grad, squeeze_axis=ax)
    if kind == "nll":
        t = _tuples(_v.nll_slice, x, tgt, wd, swd, god, scale, spec=spec, like=x)
        if reduction != "none":
            return _finish_loss(t, x, reduction, None, denom, return_grad)
        letters = "abcdefghijklmnopqrstuvwxyz"[:x.ndim]
        out_ind = letters[:ax] + letters[ax + 1:]
        loss = da.blockwise(_v.sum_class_blocks, out_ind, t, letters, axis=ax, concatenate=False,
                            dtype=x.dtype, meta=np.empty((0,) * len(out_ind), dtype=x.dtype))
        return (loss, _item(t, 1, x.dtype)) if return_grad else loss
    return _split_xent(x, tgt, wd, swd, god, scale, w64, index, denom, spec)


def _split_xent(x, tgt, wd, swd, god, scale, w64, index, denom, spec):
    """cross_entropy with the class axis split across blocks (see fastxent._dask_vocab)."""
    ax, reduction, return_grad = spec["axis"], spec["reduction"], spec["return_grad"]
    if return_grad and not hasattr(fastxent, _b.SLICE_KERNEL_NAME):
        raise NotImplementedError(
            "cross_entropy with return_grad=True and the class axis split across blocks needs "
            f"fastxent.{_b.SLICE_KERNEL_NAME} (see fastxent.dask.SLICE_KERNEL), which this fastxent "
            f"does not have; rechunk input to one block along axis {ax}: input.rechunk({{{ax}: -1}})")
    letters = "abcdefghijklmnopqrstuvwxyz"[:x.ndim]
    out_ind = letters[:ax] + letters[ax + 1:]
    stats = _tuples(_v.xent_stats, x, tgt, wd, spec=spec, like=x)
    per_sample = (lambda a: None if a is None else a.squeeze(axis=ax))
    comb = da.blockwise(_v.xent_combine, out_ind, stats, letters,
                        per_sample(tgt) if index else None, out_ind if index else None,
                        per_sample(swd), None if swd is None else out_ind,
                        spec=spec, concatenate=False, dtype=object,
                        meta=np.empty((0,) * len(out_ind), dtype=object))
    if reduction == "none":
        loss = _item(comb, 0, x.dtype)
    else:
        loss = _reduced(_tree_sum(_item(comb, 1, np.float64, chunks=_ones_chunks(comb))),
                        denom, reduction, x.dtype)
    if not return_grad:
        return loss
    row_max, log_norm, mass = (da.expand_dims(_item(comb, i, np.float64), ax) for i in (2, 3, 4))
    grad = da.map_blocks(_v.xent_slice_grad, x, tgt, row_max, log_norm, mass, swd, god, scale,
                         weight=None if w64 is None else dask.delayed(w64), spec=spec,
                         dtype=x.dtype, meta=np.empty((0,) * x.ndim, dtype=x.dtype))
    return loss, grad


def cross_entropy(input, target, weight=None, *, ignore_index=-100, reduction="mean",
                  label_smoothing=0.0, axis=None, return_grad=False, grad_output=None,
                  out=None, n_threads=None, sample_weight=None):
    """Cross-entropy of Dask arrays of logits, as :func:`fastxent.cross_entropy`, lazily.

    Each block of ``input`` is one call of the in-memory function; a "mean"
    first reduces its denominator over the whole array, so that every block's
    loss and gradient carry the global scale.  Block sums are added in block
    order by a tree of fixed shape (``TREE_ARITY`` partials a node): a given
    chunking gives the same bits on every scheduler and any number of
    workers, within a few ulp of the in-memory result.

    Parameters
    ----------
    input : dask.array.Array or array_like, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Logits, float16, float32 or float64, chunked along any axis, the class
        axis included (vocabulary-parallel: see Notes).  Anything else NumPy
        takes is wrapped with ``dask.array.from_array``, the class axis in one
        block.
    target : dask.array.Array or array_like
        Class indices (integers, ``input``'s shape without the class axis, in
        ``[0, C)`` or equal to ``ignore_index``) or class probabilities
        (floating, ``input``'s shape); rechunked to match ``input``.
    weight : array_like, shape (C,), optional
        A weight per class (default: 1 for every class).  A Dask array is
        computed at once: every block needs all of it.
    ignore_index : int, default -100
        A class-index target equal to it adds neither loss nor gradient and is
        left out of the "mean" denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the per-sample losses, chunked like ``input`` without its class
        axis.  "sum": their sum.  "mean": their sum divided by the weight of
        the kept targets (``sum_n weight[y_n]`` over the targets that are not
        ``ignore_index``; the number of sample positions for probability
        targets); NaN where that is 0.
    label_smoothing : float, default 0.0
        ``eps`` in ``[0, 1]``: the target is mixed with the uniform
        distribution over the classes, ``(1 - eps) * target + eps / C``.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, from the same task as each block's loss.
    grad_output : scalar, array_like or dask.array.Array, optional
        The upstream gradient the returned gradient is multiplied by (with
        ``return_grad=True`` only): a scalar (or 0-d array) for "mean" and
        "sum"; for "none", an array of the loss's shape, rechunked to match,
        and the gradient is that of ``sum(grad_output * loss)``.  Default: 1.
    out : None
        Must be None: the results are lazy (write them with
        ``dask.array.store``).  Any other value is a ValueError.
    n_threads : int, optional
        Threads of each task's fastxent call, at least 1.  None: one thread in
        a task run by a pool of Dask threads (the threaded scheduler,
        ``dask.distributed`` workers), fastxent's default
        (:func:`fastxent.get_num_threads`) under the synchronous scheduler.
        The results do not depend on it.
    sample_weight : array_like or dask.array.Array, optional
        A non-negative weight per sample position (``input``'s shape without
        the class axis), as for :func:`fastxent.cross_entropy`: passed to
        every block, and a "mean" divides by the weighted total computed
        first.  A negative or non-finite weight raises when computed.

    Returns
    -------
    loss : dask.array.Array
        A 0-d Dask array of ``input``'s dtype for "mean" and "sum"; for
        "none", the per-sample losses, chunked like ``input`` without its
        class axis.  ``.compute()`` gives a NumPy scalar or array, as the
        in-memory function does.
    grad : dask.array.Array
        Only with ``return_grad=True``: the derivative of ``loss`` (of
        ``sum(grad_output * loss)`` for "none") with respect to ``input``,
        chunked exactly like ``input``.  Compute it with ``loss``
        (``dask.compute(loss, grad)``) so that each block is read once.

    Raises
    ------
    TypeError
        At the call: the dtype and option errors of
        :func:`fastxent.cross_entropy` (floating ``input``, integer or floating
        ``target``, the type of each option), checked on a one-sample problem.
    ValueError
        At the call: shapes that do not fit, an unknown ``reduction``,
        ``label_smoothing`` outside ``[0, 1]``, ``axis`` out of range,
        ``n_threads`` below 1, ``out`` given.  When computed: a class index
        outside ``[0, C)`` that is not ``ignore_index`` (the message names the
        value, its index within the block and the block).
    NotImplementedError
        At the call: ``return_grad=True`` with the class axis split across
        blocks (rechunk it to one block, ``input.rechunk({axis: -1})``) until
        fastxent has the class-slice kernel ``SLICE_KERNEL`` describes.

    See Also
    --------
    fastxent.cross_entropy : The in-memory function, with the formulas.
    nll_loss : The same loss from log-probabilities.

    Notes
    -----
    With the class axis split across blocks, each block contributes its
    rows' maximum and the log-sum-exp of its shifted logits, and these are
    combined exactly to each row's log-normalizer before the loss terms are
    summed; the loss is then exact too.

    Examples
    --------
    >>> import numpy as np, dask, dask.array as da, fastxent, fastxent.dask as fxd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((1000, 20))
    >>> y = rng.integers(0, 20, size=1000)
    >>> y[::10] = -100                                 # ignored targets
    >>> logits = da.from_array(x, chunks=(250, 20))    # four blocks of rows
    >>> loss, grad = fxd.cross_entropy(logits, y, return_grad=True)
    >>> grad.chunks == logits.chunks
    True
    >>> loss_value, grad_value = dask.compute(loss, grad)
    >>> bool(np.isclose(loss_value, fastxent.cross_entropy(x, y)))
    True

    The class axis split in two blocks (the loss only):

    >>> split = da.from_array(x, chunks=(500, 10))
    >>> bool(np.isclose(fxd.cross_entropy(split, y).compute(), loss_value))
    True
    """
    return _multiclass("xent", input, target, weight, ignore_index, reduction, label_smoothing,
                       axis, return_grad, grad_output, out, n_threads, sample_weight)


def nll_loss(input, target, weight=None, *, ignore_index=-100, reduction="mean", axis=None,
             return_grad=False, grad_output=None, out=None, n_threads=None, sample_weight=None):
    """Negative log-likelihood of Dask arrays of log-probabilities, as :func:`fastxent.nll_loss`, lazily.

    Each block of ``input`` is one call of the in-memory function; a "mean"
    first reduces its denominator over the whole array, so that every block's
    loss and gradient carry the global scale.  Block sums are added in block
    order by a tree of fixed shape: a given chunking gives the same bits on
    every scheduler and any number of workers.  The class axis may be split
    across blocks: the loss and the gradient are exact there too.

    Parameters
    ----------
    input : dask.array.Array or array_like, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Log-probabilities, float16, float32 or float64, chunked along any axis,
        the class axis included.  Anything else NumPy takes is wrapped with
        ``dask.array.from_array``, the class axis in one block.
    target : dask.array.Array or array_like of int
        Class indices: integers, ``input``'s shape without the class axis, in
        ``[0, C)`` or equal to ``ignore_index``; rechunked to match ``input``.
    weight : array_like, shape (C,), optional
        A weight per class (default: 1 for every class).  A Dask array is
        computed at once: every block needs all of it.
    ignore_index : int, default -100
        A target equal to it adds neither loss nor gradient and is left out of
        the "mean" denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the per-sample losses ``-weight[y_n] * input[n, y_n]``,
        chunked like ``target``.  "sum": their sum.  "mean": their sum divided
        by ``sum_n weight[y_n]`` over the targets not ignored; NaN where that
        is 0.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, from the same task as each block's loss.
    grad_output : scalar, array_like or dask.array.Array, optional
        The upstream gradient the returned gradient is multiplied by (with
        ``return_grad=True`` only): a scalar (or 0-d array) for "mean" and
        "sum"; for "none", an array of the loss's shape, rechunked to match,
        and the gradient is that of ``sum(grad_output * loss)``.  Default: 1.
    out : None
        Must be None: the results are lazy (write them with
        ``dask.array.store``).  Any other value is a ValueError.
    n_threads : int, optional
        Threads of each task's fastxent call, at least 1.  None: one thread in
        a task run by a pool of Dask threads, fastxent's default under the
        synchronous scheduler.  The results do not depend on it.
    sample_weight : array_like or dask.array.Array, optional
        A non-negative weight per sample position (``target``'s shape), as for
        :func:`fastxent.nll_loss`: passed to every block, and a "mean"
        divides by the weighted total computed first.

    Returns
    -------
    loss : dask.array.Array
        A 0-d Dask array of ``input``'s dtype for "mean" and "sum"; for
        "none", the per-sample losses, chunked like ``target``.
    grad : dask.array.Array
        Only with ``return_grad=True``: the derivative of ``loss`` (of
        ``sum(grad_output * loss)`` for "none") with respect to ``input``,
        chunked exactly like ``input``.

    Raises
    ------
    TypeError
        At the call: a non-floating ``input``, a target that is not integer,
        an option of the wrong type (checked by :func:`fastxent.nll_loss` on a
        one-sample problem).
    ValueError
        At the call: shapes that do not fit, an unknown ``reduction``,
        ``axis`` out of range, ``n_threads`` below 1, ``out`` given.  When
        computed: a class index outside ``[0, C)`` that is not
        ``ignore_index`` (the message names the value and the block), a
        negative or non-finite sample weight.

    See Also
    --------
    fastxent.nll_loss : The in-memory function, with the formulas.
    log_softmax : Log-probabilities from Dask logits.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastxent, fastxent.dask as fxd
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((400, 30))
    >>> y = rng.integers(0, 30, size=400)
    >>> logp = fxd.log_softmax(da.from_array(x, chunks=(100, 10)), axis=1)   # classes split
    >>> loss, grad = fxd.nll_loss(logp, y, return_grad=True)
    >>> grad.chunks
    ((100, 100, 100, 100), (10, 10, 10))
    >>> bool(np.isclose(loss.compute(), fastxent.cross_entropy(x, y)))
    True
    """
    return _multiclass("nll", input, target, weight, ignore_index, reduction, 0.0,
                       axis, return_grad, grad_output, out, n_threads, sample_weight)


# ---------------------------------------------------------------------------
# The binary losses

def _binary(kind, input, target, weight, pos_weight, reduction, return_grad, grad_output, out,
            n_threads, sample_weight):
    func = fastxent.binary_cross_entropy if kind == "bce" else fastxent.binary_cross_entropy_with_logits
    _check_no_out(out)
    x = _as_dask(input)
    if _shape_of(target) != x.shape:
        raise ValueError(f"target must have the input's shape {x.shape}, got target {_shape_of(target)}")
    operands = {"weight": weight, "pos_weight": pos_weight, "sample_weight": sample_weight}
    full: dict[str, tuple] = {}
    for name, a in operands.items():
        if a is None:
            continue
        s = _shape_of(a)
        try:
            fits = np.broadcast_shapes(s, x.shape) == x.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name} of shape {s} does not broadcast to the input's shape {x.shape}")
        full[name] = (1,) * (x.ndim - len(s)) + tuple(s)
    # Every option is checked by the in-memory function itself, on a one-element problem.
    shape0 = (1,) * x.ndim
    dummies = {n: np.ones((1,) * len(_shape_of(a)), dtype=_dtype_of(a)) for n, a in operands.items()
               if a is not None and n != "weight"}
    func(np.zeros(shape0, x.dtype), np.zeros(shape0, _dtype_of(target)),
         None if weight is None else np.ones((1,) * len(_shape_of(weight)), _dtype_of(weight)),
         reduction=reduction, return_grad=return_grad, n_threads=n_threads,
         grad_output=_grad_output_dummy(grad_output, reduction, x.shape, shape0), **dummies)

    ops = {n: _aligned(a, x, full[n]) if a is not None else None for n, a in operands.items()}
    tgt = _aligned(target, x, x.shape)
    god = _aligned(grad_output, x, x.shape) if grad_output is not None and reduction == "none" else None
    if reduction != "mean":
        denom: Any = None
    elif sample_weight is not None:
        sw = da.broadcast_to(ops["sample_weight"], x.shape, chunks=x.chunks)
        denom = _tree_sum(da.map_blocks(_b.count_denominator, sw, keep_ndim=x.ndim,
                                        chunks=_ones_chunks(sw), dtype=np.float64))
    else:
        denom = float(x.size)
    scale = _scale(grad_output, denom, reduction) if return_grad and reduction != "none" else None
    spec = dict(kind=kind, axis=None, reduction=reduction, return_grad=bool(return_grad),
                n_threads=n_threads, dtype=x.dtype.str)
    t = _tuples(_b.loss_block, x, tgt, ops["weight"], ops["pos_weight"], ops["sample_weight"], god,
                scale, spec=spec, like=x)
    return _finish_loss(t, x, reduction, x.chunks, denom, return_grad)


def binary_cross_entropy(input, target, weight=None, *, reduction="mean", return_grad=False,
                         grad_output=None, out=None, n_threads=None, sample_weight=None):
    """Binary cross-entropy of Dask arrays of probabilities, as :func:`fastxent.binary_cross_entropy`, lazily.

    Each block of ``input`` is one call of the in-memory function; a "mean"
    divides by the number of elements of the whole array, so that every
    block's loss and gradient carry the global scale.  Block sums are added
    in block order by a tree of fixed shape: a given chunking gives the same
    bits on every scheduler and any number of workers.

    Parameters
    ----------
    input : dask.array.Array or array_like
        Probabilities in ``[0, 1]``, float16, float32 or float64, any shape and
        chunking.  Anything else NumPy takes is wrapped with
        ``dask.array.from_array``.
    target : dask.array.Array or array_like
        Targets in ``[0, 1]`` (soft labels allowed), ``input``'s shape;
        rechunked to match ``input``.
    weight : dask.array.Array or array_like, optional
        Weights that broadcast to ``input`` as NumPy broadcasts (a scalar, a
        ``(C,)`` vector along the last axis, an ``(N, 1)`` column); each block
        gets its slice, never expanded to ``input``'s shape.  Default: 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses, chunked like ``input``.  "sum": their
        sum.  "mean": their sum divided by the number of elements.
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, from the same task as each block's loss.
    grad_output : scalar, array_like or dask.array.Array, optional
        The upstream gradient the returned gradient is multiplied by (with
        ``return_grad=True`` only): a scalar (or 0-d array) for "mean" and
        "sum"; for "none", an array of ``input``'s shape, rechunked to match,
        and the gradient is that of ``sum(grad_output * loss)``.  Default: 1.
    out : None
        Must be None: the results are lazy (write them with
        ``dask.array.store``).  Any other value is a ValueError.
    n_threads : int, optional
        Threads of each task's fastxent call, at least 1.  None: one thread in
        a task run by a pool of Dask threads, fastxent's default under the
        synchronous scheduler.  The results do not depend on it.
    sample_weight : array_like or dask.array.Array, optional
        Non-negative weights that broadcast to ``input``, as for
        :func:`fastxent.binary_cross_entropy`: passed to every block, and a
        "mean" divides by their total computed first.

    Returns
    -------
    loss : dask.array.Array
        A 0-d Dask array of ``input``'s dtype for "mean" and "sum"; for
        "none", the elementwise losses, chunked like ``input``.
    grad : dask.array.Array
        Only with ``return_grad=True``: the derivative of ``loss`` (of
        ``sum(grad_output * loss)`` for "none") with respect to ``input``,
        chunked exactly like ``input``.

    Raises
    ------
    TypeError
        At the call: a non-floating ``input``, a ``target`` or ``weight`` that
        is not real, an option of the wrong type.
    ValueError
        At the call: shapes that do not fit (``target``, ``weight``,
        ``grad_output``), an unknown ``reduction``, ``n_threads`` below 1,
        ``out`` given.  When computed: a value of ``input`` or ``target``
        outside ``[0, 1]`` or NaN (the message says how many, where in the
        block, and which block), a negative or non-finite sample weight.

    See Also
    --------
    fastxent.binary_cross_entropy : The in-memory function, with the formulas.
    binary_cross_entropy_with_logits : The same loss from Dask logits.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastxent, fastxent.dask as fxd
    >>> rng = np.random.default_rng(0)
    >>> p = rng.uniform(0.01, 0.99, size=(600, 4))
    >>> t = (rng.random((600, 4)) < 0.3).astype(np.float64)
    >>> loss = fxd.binary_cross_entropy(da.from_array(p, chunks=(200, 4)), t,
    ...                                 weight=[1.0, 2.0, 1.0, 0.5])
    >>> bool(np.isclose(loss.compute(),
    ...                 fastxent.binary_cross_entropy(p, t, weight=[1.0, 2.0, 1.0, 0.5])))
    True
    """
    return _binary("bce", input, target, weight, None, reduction, return_grad, grad_output, out,
                   n_threads, sample_weight)


def binary_cross_entropy_with_logits(input, target, weight=None, *, pos_weight=None,
                                     reduction="mean", return_grad=False, grad_output=None,
                                     out=None, n_threads=None, sample_weight=None):
    """Binary cross-entropy of Dask arrays of logits, as :func:`fastxent.binary_cross_entropy_with_logits`, lazily.

    Each block of ``input`` is one call of the in-memory function; a "mean"
    divides by the number of elements of the whole array, so that every
    block's loss and gradient carry the global scale.  Block sums are added
    in block order by a tree of fixed shape: a given chunking gives the same
    bits on every scheduler and any number of workers.

    Parameters
    ----------
    input : dask.array.Array or array_like
        Logits, float16, float32 or float64, any shape and chunking.  Anything
        else NumPy takes is wrapped with ``dask.array.from_array``.
    target : dask.array.Array or array_like
        Targets, ``input``'s shape (soft labels in ``[0, 1]`` allowed, not
        checked); rechunked to match ``input``.
    weight : dask.array.Array or array_like, optional
        Weights that broadcast to ``input`` as NumPy broadcasts; each block
        gets its slice, never expanded to ``input``'s shape.  Default: 1.
    pos_weight : dask.array.Array or array_like, optional
        Weights of the positive term that broadcast to ``input``: a ``(C,)``
        vector applies along the last axis, one weight per label.  Default: 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses, chunked like ``input``.  "sum": their
        sum.  "mean": their sum divided by the number of elements.
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, from the same task as each block's loss.
    grad_output : scalar, array_like or dask.array.Array, optional
        The upstream gradient the returned gradient is multiplied by (with
        ``return_grad=True`` only): a scalar (or 0-d array) for "mean" and
        "sum"; for "none", an array of ``input``'s shape, rechunked to match,
        and the gradient is that of ``sum(grad_output * loss)``.  Default: 1.
    out : None
        Must be None: the results are lazy (write them with
        ``dask.array.store``).  Any other value is a ValueError.
    n_threads : int, optional
        Threads of each task's fastxent call, at least 1.  None: one thread in
        a task run by a pool of Dask threads, fastxent's default under the
        synchronous scheduler.  The results do not depend on it.
    sample_weight : array_like or dask.array.Array, optional
        Non-negative weights that broadcast to ``input``, as for
        :func:`fastxent.binary_cross_entropy_with_logits`: passed to every
        block, and a "mean" divides by their total computed first.

    Returns
    -------
    loss : dask.array.Array
        A 0-d Dask array of ``input``'s dtype for "mean" and "sum"; for
        "none", the elementwise losses, chunked like ``input``.
    grad : dask.array.Array
        Only with ``return_grad=True``: the derivative of ``loss`` (of
        ``sum(grad_output * loss)`` for "none") with respect to ``input``,
        chunked exactly like ``input``.

    Raises
    ------
    TypeError
        At the call: a non-floating ``input``, a ``target``, ``weight`` or
        ``pos_weight`` that is not real, an option of the wrong type.
    ValueError
        At the call: shapes that do not fit (``target``, ``weight``,
        ``pos_weight``, ``grad_output``), an unknown ``reduction``,
        ``n_threads`` below 1, ``out`` given.  When computed: a negative or
        non-finite sample weight.

    See Also
    --------
    fastxent.binary_cross_entropy_with_logits : The in-memory function, with the formulas.
    binary_cross_entropy : The same loss from Dask probabilities.

    Examples
    --------
    >>> import numpy as np, dask, dask.array as da, fastxent, fastxent.dask as fxd
    >>> rng = np.random.default_rng(0)
    >>> z = rng.standard_normal((600, 5))
    >>> t = (rng.random((600, 5)) < 0.2).astype(np.float64)
    >>> pw = np.full(5, 4.0)                          # positives count 4x
    >>> loss, grad = fxd.binary_cross_entropy_with_logits(
    ...     da.from_array(z, chunks=(150, 5)), t, pos_weight=pw, return_grad=True)
    >>> loss_value, grad_value = dask.compute(loss, grad)
    >>> ref_loss, ref_grad = fastxent.binary_cross_entropy_with_logits(
    ...     z, t, pos_weight=pw, return_grad=True)
    >>> bool(np.isclose(loss_value, ref_loss)), bool(np.allclose(grad_value, ref_grad))
    (True, True)
    """
    return _binary("bce_logits", input, target, weight, pos_weight, reduction, return_grad,
                   grad_output, out, n_threads, sample_weight)


# ---------------------------------------------------------------------------
# logsumexp, softmax, log_softmax

def _split_lse(x: da.Array, axes: tuple, n_threads):
    """``(R, L)`` of the rows over ``axes`` (float64, those axes dropped) of an
    array whose rows span several blocks (see fastxent._dask_vocab)."""
    letters = "abcdefghijklmnopqrstuvwxyz"[:x.ndim]
    out_ind = "".join(c for d, c in enumerate(letters) if d not in axes)
    stats = _tuples(_v.lse_stats, x, axes=axes, n_threads=n_threads, like=x)
    comb = da.blockwise(_v.lse_merge, out_ind, stats, letters, axes=axes, n_threads=n_threads,
                        concatenate=False, dtype=object, meta=np.empty((0,) * len(out_ind), dtype=object))
    return _item(comb, 0, np.float64), _item(comb, 1, np.float64)


def _lse_family(mode, x, axis, keepdims=False, out=None, n_threads=None):
    _check_no_out(out)
    xd = _as_dask(x)
    func = getattr(fastxent, mode)
    kw: dict[str, Any] = dict(axis=axis, n_threads=n_threads)
    if mode == "logsumexp":
        kw["keepdims"] = keepdims
    probe = np.asarray(func(np.zeros((1,) * xd.ndim, xd.dtype), **kw))   # checks every option
    if xd.ndim == 0:                  # one element: the in-memory call, in one task
        return da.from_delayed(dask.delayed(func, pure=True)(xd, **kw), shape=probe.shape, dtype=probe.dtype)
    axes = tuple(range(xd.ndim)) if axis is None else (operator.index(axis) % xd.ndim,)
    if all(xd.numblocks[d] == 1 for d in axes):
        kc = tuple((1,) if d in axes and mode == "logsumexp" else c for d, c in enumerate(xd.chunks))
        r = da.map_blocks(_v.lse_whole, xd, mode=mode, axis=axis, n_threads=n_threads, chunks=kc,
                          dtype=probe.dtype, meta=np.empty((0,) * xd.ndim, dtype=probe.dtype))
        if mode != "logsumexp":
            return r
    else:
        R, L = _split_lse(xd, axes, n_threads)
        if mode != "logsumexp":
            return da.map_blocks(_v.lse_apply, xd, da.expand_dims(R, axes), da.expand_dims(L, axes),
                                 mode=mode, out_dtype=probe.dtype.str, dtype=probe.dtype,
                                 meta=np.empty((0,) * xd.ndim, dtype=probe.dtype))
        r = da.map_blocks(_v.lse_total, R, L, out_dtype=probe.dtype.str, dtype=probe.dtype)
        r = da.expand_dims(r, axes) if keepdims else r
    if not keepdims and r.ndim == xd.ndim:
        r = r.squeeze(axis=axes)
    return r if r.ndim else da.map_blocks(_b.as_scalar, r, dtype=r.dtype)   # as in memory


def logsumexp(x, axis=-1, keepdims=False, n_threads=None):
    """``log(sum(exp(x)))`` of a Dask array along an axis, as :func:`fastxent.logsumexp`, lazily.

    The axis may span several blocks: each block contributes its rows'
    maximum and the log-sum-exp of its shifted values, and these are combined
    exactly (by :func:`fastxent.logsumexp` again), stable for any finite
    input.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Real input (float16, float32 or float64; integer and bool input is
        computed as float64), any chunking.  ``-inf`` entries are allowed.
        Anything else NumPy takes is wrapped with ``dask.array.from_array``.
    axis : int or None, default -1
        The axis summed over; None: every element.  (A tuple of axes, which
        the in-memory function takes, is not supported here.)
    keepdims : bool, default False
        Keep the reduced axis as an axis of length 1.
    n_threads : int, optional
        Threads of each task's fastxent call, at least 1.  None: one thread in
        a task run by a pool of Dask threads, fastxent's default under the
        synchronous scheduler.  The results do not depend on it.

    Returns
    -------
    lse : dask.array.Array
        Of ``x``'s floating dtype (float64 for integer input), shaped like
        ``x`` without the reduced axis (or with it of length 1, with
        ``keepdims``); 0-d for ``axis=None``.  ``.compute()`` gives what the
        in-memory function gives.

    Raises
    ------
    TypeError
        At the call: complex or other non-real input, an option of the wrong
        type.
    ValueError
        At the call: ``axis`` out of range, ``n_threads`` below 1.

    See Also
    --------
    fastxent.logsumexp : The in-memory function.
    softmax : ``exp(x - logsumexp(x))`` of a Dask array.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastxent, fastxent.dask as fxd
    >>> x = np.random.default_rng(0).standard_normal((100, 1000))
    >>> lse = fxd.logsumexp(da.from_array(x, chunks=(50, 250)), axis=1)   # the axis in 4 blocks
    >>> lse.shape, lse.chunks
    ((100,), ((50, 50),))
    >>> bool(np.allclose(lse.compute(), fastxent.logsumexp(x, axis=1)))
    True
    """
    return _lse_family("logsumexp", x, axis, keepdims, n_threads=n_threads)


def softmax(x, axis=-1, out=None, n_threads=None):
    """``exp(x - logsumexp(x, axis))`` of a Dask array, as :func:`fastxent.softmax`, lazily.

    The axis may span several blocks: each row's log-normalizer is combined
    exactly from the blocks' statistics first, then every block is
    normalized with it.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Real input (float16, float32 or float64; integer and bool input is
        computed as float64), any chunking.  ``-inf`` entries get probability
        0.  Anything else NumPy takes is wrapped with ``dask.array.from_array``.
    axis : int or None, default -1
        The axis normalized over; None: every element.  (A tuple of axes is
        not supported here.)
    out : None
        Must be None: the result is lazy.  Any other value is a ValueError.
    n_threads : int, optional
        Threads of each task's fastxent call, at least 1.  None: one thread in
        a task run by a pool of Dask threads, fastxent's default under the
        synchronous scheduler.  The results do not depend on it.

    Returns
    -------
    p : dask.array.Array
        Of ``x``'s shape, chunks and floating dtype (float64 for integer
        input), summing to 1 along ``axis``.

    Raises
    ------
    TypeError
        At the call: complex or other non-real input, an option of the wrong
        type.
    ValueError
        At the call: ``axis`` out of range, ``n_threads`` below 1, ``out`` given.

    See Also
    --------
    fastxent.softmax : The in-memory function.
    log_softmax : Its logarithm, computed directly.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastxent.dask as fxd
    >>> x = np.random.default_rng(0).standard_normal((8, 100))
    >>> p = fxd.softmax(da.from_array(x, chunks=(4, 25)), axis=1)
    >>> p.chunks
    ((4, 4), (25, 25, 25, 25))
    >>> bool(np.allclose(p.sum(axis=1).compute(), 1.0))
    True
    """
    return _lse_family("softmax", x, axis, out=out, n_threads=n_threads)


def log_softmax(x, axis=-1, out=None, n_threads=None):
    """``x - logsumexp(x, axis)`` of a Dask array, as :func:`fastxent.log_softmax`, lazily.

    The axis may span several blocks: each row's log-normalizer is combined
    exactly from the blocks' statistics first, then subtracted in every
    block.

    Parameters
    ----------
    x : dask.array.Array or array_like
        Real input (float16, float32 or float64; integer and bool input is
        computed as float64), any chunking.  ``-inf`` entries stay ``-inf``.
        Anything else NumPy takes is wrapped with ``dask.array.from_array``.
    axis : int or None, default -1
        The axis normalized over; None: every element.  (A tuple of axes is
        not supported here.)
    out : None
        Must be None: the result is lazy.  Any other value is a ValueError.
    n_threads : int, optional
        Threads of each task's fastxent call, at least 1.  None: one thread in
        a task run by a pool of Dask threads, fastxent's default under the
        synchronous scheduler.  The results do not depend on it.

    Returns
    -------
    logp : dask.array.Array
        Of ``x``'s shape, chunks and floating dtype (float64 for integer
        input).

    Raises
    ------
    TypeError
        At the call: complex or other non-real input, an option of the wrong
        type.
    ValueError
        At the call: ``axis`` out of range, ``n_threads`` below 1, ``out`` given.

    See Also
    --------
    fastxent.log_softmax : The in-memory function.
    nll_loss : The loss of Dask log-probabilities.

    Examples
    --------
    >>> import numpy as np, dask.array as da, fastxent, fastxent.dask as fxd
    >>> x = np.random.default_rng(0).standard_normal((8, 100))
    >>> logp = fxd.log_softmax(da.from_array(x, chunks=(8, 50)), axis=1)
    >>> bool(np.allclose(logp.compute(), fastxent.log_softmax(x, axis=1)))
    True
    """
    return _lse_family("log_softmax", x, axis, out=out, n_threads=n_threads)
