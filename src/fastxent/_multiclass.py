"""The multi-class family: cross_entropy, nll_loss, logsumexp, softmax, log_softmax."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from . import _args, _lse
from ._kernels import kernels, resolve_threads

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import (Array, ArrayInput, CrossEntropyOptions, Loss, LossAndGrad, NLLOptions,
                          Reduced, Reduction, Scalar)


def _prepare_index_target(tgt, sample_shape, x_shape, C, ignore_index, w, nt):
    """Checks class-index targets; returns them flat and what a "mean" divides by."""
    y = _args.as_index_target(tgt, sample_shape, x_shape)
    w64 = None if w is None else w.astype(np.float64)
    first_bad, n_kept, w_kept = kernels.check_index_targets(y=y, C=C, ignore_index=ignore_index,
                                                            w=w64, n_threads=nt)
    if first_bad >= 0:
        raise ValueError(
            f"target value {int(y[first_bad])} at index {_args.format_index(first_bad, sample_shape)} "
            f"is not a class index in [0, {C}) nor ignore_index ({ignore_index})")
    return y, (w_kept if w is not None else float(n_kept))


def _multiclass(kind, input, target, weight, ignore_index, reduction, eps, axis, return_grad,
                grad_output, out, n_threads):
    """cross_entropy and nll_loss: one argument check, one kernel call.

    The options (``weight`` to ``n_threads`` but ``grad_output`` and ``out``) come
    checked by ``_args``' option checks: per call from the functions, once per
    assignment from the loss classes.
    """
    xv, x, result_dtype = _args.read_input(input)
    nt = resolve_threads(n_threads)
    ax = _args.class_axis(axis, x.ndim)
    n_outer, C, inner = _args.split_shape(x.shape, ax)
    sample_shape = x.shape[:ax] + x.shape[ax + 1:]
    w = _args.class_weight(weight, C, x.dtype)

    tgt = _args.asarray(target, "target")
    if tgt.dtype.kind in "iu":
        y, denom = _prepare_index_target(tgt, sample_shape, x.shape, C, ignore_index, w, nt)
        t = None
    elif tgt.dtype.kind == "f" and kind == "xent":
        if tgt.shape != x.shape:
            raise _args.probability_target_shape_error(tgt.shape, x.shape, sample_shape)
        y, t = None, np.ascontiguousarray(tgt, dtype=x.dtype)
        denom = float(n_outer * inner) if x.size else 0.0   # PyTorch: an empty input's mean is NaN
    elif kind == "nll":
        raise TypeError(f"nll_loss target must be integer class indices, got dtype {tgt.dtype}")
    else:
        raise TypeError(
            f"target must be integer class indices or floating class probabilities, got dtype {tgt.dtype}")

    g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, out, reduction,
                                             sample_shape, denom, x, result_dtype,
                                             (xv, x, tgt, y, t, weight, w))
    loss_out = np.empty(sample_shape, dtype=x.dtype) if reduction == "none" else None

    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731  (views, no copies)
    if kind == "xent":
        w_sum = float(C) if w is None else float(w.sum(dtype=np.float64))
        total = kernels.xent(x=flat(x), n_outer=n_outer, C=C, inner=inner, y=y,
                             ignore_index=ignore_index, t=flat(t), w=w, w_sum=w_sum, eps=eps,
                             loss_out=flat(loss_out), grad=flat(g), gout=gout, gscale=gscale,
                             n_threads=nt)
    else:
        total = kernels.nll(x=flat(x), n_outer=n_outer, C=C, inner=inner, y=y,
                            ignore_index=ignore_index, w=w, loss_out=flat(loss_out), grad=flat(g),
                            gout=gout, gscale=gscale, n_threads=nt)

    return _args.finish(total, loss_out, denom, reduction, result_dtype, g, grad)


# For type checkers: a reduced loss is a NumPy scalar, reduction="none" an
# array, and return_grad=True makes the result a (loss, grad) tuple; the last
# overload is for values known only at run time.  The options that leave the
# type alone are a TypedDict (fastxent._typing), to keep each overload short.
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Reduced = ..., return_grad: Literal[False] = ...,
                  **options: Unpack[CrossEntropyOptions]) -> Scalar: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Literal["none"], return_grad: Literal[False] = ...,
                  **options: Unpack[CrossEntropyOptions]) -> Array: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Reduced = ..., return_grad: Literal[True],
                  **options: Unpack[CrossEntropyOptions]) -> tuple[Scalar, Array]: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Literal["none"], return_grad: Literal[True],
                  **options: Unpack[CrossEntropyOptions]) -> tuple[Array, Array]: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Reduction = ..., return_grad: bool = ...,
                  **options: Unpack[CrossEntropyOptions]) -> Loss | LossAndGrad: ...
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = None, *,
                  ignore_index: int = -100, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, axis: int | None = None, return_grad: bool = False,
                  grad_output: ArrayInput | None = None, out: Array | None = None,
                  n_threads: int | None = None) -> Loss | LossAndGrad:
    """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    input : array_like, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Unnormalized logits (float16, float32 or float64).
    target : array_like
        Class indices (any integer dtype, shaped like ``input`` without its class
        axis) or class probabilities (floating, shaped like ``input``).
    weight : array_like, shape (C,), optional
        A weight per class.
    ignore_index : int
        Class-index targets equal to it add nothing (default -100).
    reduction : {"mean", "sum", "none"}
        "mean" divides by the summed weights of the non-ignored targets (the
        number of samples for probabilities); NaN, loss and gradient, when that
        is 0, with or without label smoothing, as PyTorch.
    label_smoothing : float in [0, 1]
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    return_grad : bool
        Also return the gradient of the returned loss with respect to ``input``,
        computed in the same pass (True or False: anything else is a TypeError).
    grad_output : array_like, optional
        The upstream gradient: a scalar for "mean"/"sum", the loss's shape for "none".
    out : ndarray, optional
        A C-contiguous, writeable array of ``input``'s shape and dtype for the
        gradient, sharing memory with no other argument (an ndarray subclass such
        as ``np.memmap`` is written through and returned).  Nothing is written to
        it unless every argument passes its checks.
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    loss : NumPy scalar of the input's dtype, or an array for ``reduction="none"``
    grad : ndarray of the input's shape and dtype (only with ``return_grad=True``)

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> round(float(fastxent.cross_entropy([[0., 1., 2., 3.]], [3])), 4)
    0.4402
    >>> loss, grad = fastxent.cross_entropy(np.ones(3), [0.6004, 0.3339, 0.0657], return_grad=True)
    >>> np.round(grad, 4)
    array([-0.2671, -0.0006,  0.2676])
    >>> logits = np.zeros((2, 5, 7), np.float32)        # (batch, seq, vocab)
    >>> fastxent.cross_entropy(logits, np.zeros((2, 5), np.int32), axis=-1).dtype
    dtype('float32')
    """
    return _multiclass("xent", input, target, _args.class_weight_option(weight),
                       _args.check_int64(ignore_index, "ignore_index"), _args.check_reduction(reduction),
                       _args.check_label_smoothing(label_smoothing), _args.axis_option(axis),
                       _args.check_bool(return_grad, "return_grad"), grad_output, out,
                       _args.threads_option(n_threads))


# For type checkers, as for cross_entropy.
@overload
def nll_loss(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
             reduction: Reduced = ..., return_grad: Literal[False] = ...,
             **options: Unpack[NLLOptions]) -> Scalar: ...
@overload
def nll_loss(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
             reduction: Literal["none"], return_grad: Literal[False] = ...,
             **options: Unpack[NLLOptions]) -> Array: ...
@overload
def nll_loss(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
             reduction: Reduced = ..., return_grad: Literal[True],
             **options: Unpack[NLLOptions]) -> tuple[Scalar, Array]: ...
@overload
def nll_loss(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
             reduction: Literal["none"], return_grad: Literal[True],
             **options: Unpack[NLLOptions]) -> tuple[Array, Array]: ...
@overload
def nll_loss(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
             reduction: Reduction = ..., return_grad: bool = ...,
             **options: Unpack[NLLOptions]) -> Loss | LossAndGrad: ...
def nll_loss(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = None, *,
             ignore_index: int = -100, reduction: Reduction = "mean", axis: int | None = None,
             return_grad: bool = False, grad_output: ArrayInput | None = None,
             out: Array | None = None, n_threads: int | None = None) -> Loss | LossAndGrad:
    """Negative log-likelihood of log-probabilities, as ``torch.nn.functional.nll_loss``.

    ``input`` holds log-probabilities (e.g. from :func:`log_softmax`); ``target``
    holds class indices.  The other arguments are those of :func:`cross_entropy`.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logp = fastxent.log_softmax(np.array([[0., 1., 2., 3.]]))
    >>> round(float(fastxent.nll_loss(logp, [3])), 4)
    0.4402
    """
    return _multiclass("nll", input, target, _args.class_weight_option(weight),
                       _args.check_int64(ignore_index, "ignore_index"), _args.check_reduction(reduction),
                       0.0, _args.axis_option(axis), _args.check_bool(return_grad, "return_grad"),
                       grad_output, out, _args.threads_option(n_threads))


def _lse_reduce(a, w, lay, lse_out, sign_out, nt):
    """The log-sum-exp kernel over a prepared layout: ``lse_out`` per sample and,
    with ``sign_out``, the sign of the (weighted) sum of exponentials.
    (``b=`` and ``return_sign=`` join logsumexp's signature with the weighted
    kernel; until then ``w`` and ``sign_out`` are None.)"""
    if w is not None or sign_out is not None:
        raise NotImplementedError("the weighted log-sum-exp kernel is not in this build")
    kernels.lse_family(x=a, n_outer=lay.n_outer, C=lay.C, inner=lay.inner, mode=kernels.LSE,
                       lse_out=lse_out, out=None, n_threads=nt)


def _lse_family(mode, x, axis, keepdims=False, b=None, return_sign=False, out=None,
                n_threads=None):
    """logsumexp, softmax and log_softmax with scipy.special's conventions (see _lse)."""
    xv, a, w, result_dtype = _lse.operands(x, b)
    nt = resolve_threads(_args.threads_option(n_threads))
    axes = _lse.reduced_axes(axis, a.ndim)
    lay = _lse.layout(a.shape, axes)
    flat = _lse.for_kernels(a, lay)
    if mode == kernels.LSE:
        keepdims = _args.check_bool(keepdims, "keepdims")
        return_sign = _args.check_bool(return_sign, "return_sign")
        res = np.empty(lay.n_outer * lay.inner, dtype=a.dtype)
        sign = np.empty_like(res) if return_sign else None
        _lse_reduce(flat, None if w is None else _lse.for_kernels(w, lay), lay, res, sign, nt)
        shape = _lse.reduced_shape(a.shape, axes, keepdims)
        results = tuple(_lse_result(r.reshape(shape), result_dtype) for r in (res, sign)
                        if r is not None)
        return results if return_sign else results[0]
    buf, copy_to, result = _args.grad_buffer(out, a.shape, result_dtype, a.dtype, (xv, a))
    if lay.perm is None:
        kernels.lse_family(x=flat, n_outer=lay.n_outer, C=lay.C, inner=lay.inner, mode=mode,
                           lse_out=None, out=buf.reshape(-1), n_threads=nt)
    else:                                # the reduced axes were moved last: move them back
        moved = np.empty(a.size, dtype=a.dtype)
        kernels.lse_family(x=flat, n_outer=lay.n_outer, C=lay.C, inner=lay.inner, mode=mode,
                           lse_out=None, out=moved, n_threads=nt)
        np.copyto(buf, _lse.from_kernels(moved, a.shape, lay))
    if out is not None:
        return _args.finish_grad(buf, copy_to, result, result_dtype)
    return _lse_result(buf, result_dtype)


def _lse_result(res, result_dtype):
    """A result in the caller's dtype; a 0-d result as a NumPy scalar, as SciPy."""
    if res.dtype != result_dtype:
        res = _args.as_result(res, result_dtype)
    return res if res.ndim else res[()]


def logsumexp(x: ArrayInput, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False,
              n_threads: int | None = None) -> Scalar | Array:
    """``log(sum(exp(x)))`` along ``axis``, stable for any finite input, as
    ``scipy.special.logsumexp``.

    Parameters
    ----------
    x : array_like
        Real input (float16, float32 or float64; integer and bool input is
        computed as float64).  ``-inf`` entries (masked classes) are allowed.
    axis : int, tuple of ints or None, default -1
        The axis or axes summed over; None: all of them.
    keepdims : bool, default False
        Keep the reduced axes as axes of length 1.
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    lse : NumPy scalar or ndarray
        Of ``x``'s floating dtype (float64 for integer input), shaped like ``x``
        without the reduced axes; a NumPy scalar where that shape is ``()``.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> float(fastxent.logsumexp(np.array([1000., 1000.])))  # no overflow
    1000.6931471805599
    >>> fastxent.logsumexp(np.zeros((2, 3, 4)), axis=(0, 2)).shape
    (3,)
    >>> float(fastxent.logsumexp([1, 2, 3], axis=None))      # integers: float64
    3.4076059644443806
    """
    return _lse_family(kernels.LSE, x, axis, keepdims, n_threads=n_threads)


def softmax(x: ArrayInput, axis: int | tuple[int, ...] | None = -1, out: Array | None = None,
            n_threads: int | None = None) -> Array:
    """``exp(x - logsumexp(x, axis))``, as ``scipy.special.softmax``.

    Parameters
    ----------
    x : array_like
        Real input (float16, float32 or float64; integer and bool input is
        computed as float64).  ``-inf`` entries get probability 0.
    axis : int, tuple of ints or None, default -1
        The axis or axes normalized over; None: all of them.
    out : ndarray, optional
        Receives the result: ``x``'s shape and floating dtype, C-contiguous,
        writeable, not overlapping ``x``.
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    p : ndarray
        Of ``x``'s shape and floating dtype (float64 for integer input), summing
        to 1 along ``axis``; ``out`` where given.  A 0-d input gives a NumPy
        scalar, as SciPy.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> fastxent.softmax(np.array([0., np.log(3.)]))
    array([0.25, 0.75])
    """
    return _lse_family(kernels.SOFTMAX, x, axis, out=out, n_threads=n_threads)


def log_softmax(x: ArrayInput, axis: int | tuple[int, ...] | None = -1, out: Array | None = None,
                n_threads: int | None = None) -> Array:
    """``x - logsumexp(x, axis)``, as ``scipy.special.log_softmax``.

    Parameters
    ----------
    x : array_like
        Real input (float16, float32 or float64; integer and bool input is
        computed as float64).  ``-inf`` entries stay ``-inf``.
    axis : int, tuple of ints or None, default -1
        The axis or axes normalized over; None: all of them.
    out : ndarray, optional
        Receives the result: ``x``'s shape and floating dtype, C-contiguous,
        writeable, not overlapping ``x``.
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    logp : ndarray
        Of ``x``'s shape and floating dtype (float64 for integer input); ``out``
        where given.  A 0-d input gives a NumPy scalar, as SciPy.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> np.round(fastxent.log_softmax(np.array([0., 0.])), 4)
    array([-0.6931, -0.6931])
    """
    return _lse_family(kernels.LOG_SOFTMAX, x, axis, out=out, n_threads=n_threads)
