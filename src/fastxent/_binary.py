"""The binary family: binary_cross_entropy and binary_cross_entropy_with_logits."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from . import _args
from ._kernels import kernels, resolve_threads

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import (Array, ArrayInput, BCEWithLogitsOptions, GradOptions, Loss, LossAndGrad,
                          Reduced, Reduction, Scalar)


def _not_probabilities(name: str, a: np.ndarray, count: int) -> ValueError:
    """The error for ``count`` values of ``a`` outside [0, 1] (found by the kernel)."""
    flat = a.reshape(-1)
    first = int(np.flatnonzero(~((flat >= 0) & (flat <= 1)))[0])
    return ValueError(
        f"binary_cross_entropy: {count} value(s) of {name} are outside [0, 1]; the first is "
        f"{float(flat[first])!r} at index {_args.format_index(first, a.shape)}")


def _binary(logits, input, target, weight, pos_weight, reduction, return_grad,
            grad_output, out, n_threads):
    """Both binary losses: one argument check, one kernel call.

    The options (``weight``, ``pos_weight``, ``reduction``, ``return_grad``,
    ``n_threads``) come checked by ``_args``' option checks: per call from the
    functions, once per assignment from the loss classes.
    """
    xv, x, result_dtype = _args.read_input(input)
    nt = resolve_threads(n_threads)
    tv = _args.real_array(target, "target")
    if tv.shape != x.shape:
        raise ValueError(f"target must have the input's shape {x.shape}, got target {tv.shape}")
    t = _args.as_real_array(tv, x.dtype)
    w, w_dims, w_strides = _args.broadcast_operand(weight, "weight", x.shape, x.dtype)
    pw, pw_dims, pw_strides = _args.broadcast_operand(pos_weight, "pos_weight", x.shape, x.dtype)

    g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, out, reduction, x.shape,
                                             x.size, x, result_dtype,
                                             (xv, x, tv, t, weight, w, pos_weight, pw))
    loss_out = np.empty(x.shape, dtype=x.dtype) if reduction == "none" else None

    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731  (views, no copies)
    total, bad_x, bad_t = kernels.bce(logits=logits, x=flat(x), t=flat(t), w=w, w_dims=w_dims,
                                      w_strides=w_strides, pw=pw, pw_dims=pw_dims,
                                      pw_strides=pw_strides, loss_out=flat(loss_out), grad=flat(g),
                                      gout=gout, gscale=gscale, n_threads=nt)
    if bad_x:
        raise _not_probabilities("input", x, bad_x)
    if bad_t:
        raise _not_probabilities("target", t, bad_t)

    return _args.finish(total, loss_out, x.size, reduction, result_dtype, g, grad)


# For type checkers, as for cross_entropy.
@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                         reduction: Reduced = ..., return_grad: Literal[False] = ...,
                         **options: Unpack[GradOptions]) -> Scalar: ...
@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                         reduction: Literal["none"], return_grad: Literal[False] = ...,
                         **options: Unpack[GradOptions]) -> Array: ...
@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                         reduction: Reduced = ..., return_grad: Literal[True],
                         **options: Unpack[GradOptions]) -> tuple[Scalar, Array]: ...
@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                         reduction: Literal["none"], return_grad: Literal[True],
                         **options: Unpack[GradOptions]) -> tuple[Array, Array]: ...
@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                         reduction: Reduction = ..., return_grad: bool = ...,
                         **options: Unpack[GradOptions]) -> Loss | LossAndGrad: ...
def binary_cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = None, *,
                         reduction: Reduction = "mean", return_grad: bool = False,
                         grad_output: ArrayInput | None = None, out: Array | None = None,
                         n_threads: int | None = None) -> Loss | LossAndGrad:
    """Binary cross-entropy between probabilities and targets, as
    ``torch.nn.functional.binary_cross_entropy``.

    ``loss = -weight * (t * max(log(x), -100) + (1 - t) * max(log1p(-x), -100))``
    elementwise; the clamp at -100 keeps the loss finite at ``x`` = 0 or 1.

    Parameters
    ----------
    input : array_like
        Probabilities ``x`` in [0, 1], any shape (float16, float32 or float64).
    target : array_like
        Targets ``t`` in [0, 1] (soft labels allowed), with ``input``'s shape.
    weight : array_like, optional
        Weights that broadcast to ``input`` as NumPy broadcasts, e.g. a scalar, a
        ``(C,)`` vector along the last axis, an ``(N, 1)`` column, or one weight
        per element.  They are never copied to ``input``'s shape.
    reduction : {"mean", "sum", "none"}
        "mean" averages over every element.
    return_grad : bool
        Also return the gradient of the returned loss with respect to ``input``,
        ``weight * (x - t) / max(x * (1 - x), 1e-12)`` times the reduction's
        scale, computed in the same pass.
    grad_output : array_like, optional
        The upstream gradient: a scalar for "mean"/"sum", ``input``'s shape for "none".
    out : ndarray, optional
        A C-contiguous, writeable array of ``input``'s shape and dtype for the
        gradient, sharing memory with no other argument (an ndarray subclass such
        as ``np.memmap`` is written through and returned).  Nothing is written to
        it unless every argument passes its checks, but for the [0, 1] check of
        the values, made in the kernel's one pass (see Raises).
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    loss : NumPy scalar of the input's dtype, or an array for ``reduction="none"``
    grad : ndarray of the input's shape and dtype (only with ``return_grad=True``)

    Raises
    ------
    ValueError
        When a value of ``input`` or ``target`` is outside [0, 1] or NaN (as
        PyTorch), saying how many and the first; ``out`` may have been written.
        When ``target``'s or ``weight``'s shape does not fit ``input``'s.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> p = np.array([0.9, 0.2, 0.6])
    >>> round(float(fastxent.binary_cross_entropy(p, [1., 0., 1.])), 4)
    0.2798
    >>> loss, grad = fastxent.binary_cross_entropy(p, [1., 0., 1.], return_grad=True)
    >>> np.round(grad, 4)
    array([-0.3704,  0.4167, -0.5556])
    >>> float(fastxent.binary_cross_entropy([0.], [1.], reduction="sum"))   # log clamped
    100.0
    """
    return _binary(False, input, target, _args.real_array_option(weight, "weight"), None,
                   _args.check_reduction(reduction), _args.check_bool(return_grad, "return_grad"),
                   grad_output, out, _args.threads_option(n_threads))


@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Reduced = ..., return_grad: Literal[False] = ...,
                                     **options: Unpack[BCEWithLogitsOptions]) -> Scalar: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Literal["none"], return_grad: Literal[False] = ...,
                                     **options: Unpack[BCEWithLogitsOptions]) -> Array: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Reduced = ..., return_grad: Literal[True],
                                     **options: Unpack[BCEWithLogitsOptions]) -> tuple[Scalar, Array]: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Literal["none"], return_grad: Literal[True],
                                     **options: Unpack[BCEWithLogitsOptions]) -> tuple[Array, Array]: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Reduction = ..., return_grad: bool = ...,
                                     **options: Unpack[BCEWithLogitsOptions]) -> Loss | LossAndGrad: ...
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = None, *,
                                     pos_weight: ArrayInput | None = None, reduction: Reduction = "mean",
                                     return_grad: bool = False,
                                     grad_output: ArrayInput | None = None, out: Array | None = None,
                                     n_threads: int | None = None) -> Loss | LossAndGrad:
    """Binary cross-entropy on logits, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``loss = -weight * (pos_weight * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x)))``
    elementwise, computed as ``weight * ((1 - t) * softplus(x) + pos_weight * t *
    softplus(-x))``: no overflow for any finite logit and full precision where
    the loss is tiny.  NaN and infinite logits raise nothing; they give NaN or
    inf where PyTorch does (a logit of -inf gives NaN, as in PyTorch).

    Parameters
    ----------
    input : array_like
        Logits ``x``, any shape (float16, float32 or float64).
    target : array_like
        Targets ``t`` with ``input``'s shape; soft labels in [0, 1] allowed (not
        checked, as in PyTorch).
    weight : array_like, optional
        Weights that broadcast to ``input`` (see :func:`binary_cross_entropy`).
    pos_weight : array_like, optional
        Weights of the positive term that broadcast to ``input``: a ``(C,)``
        vector applies along the last axis, one weight per class of a
        multi-label problem.
    reduction, return_grad, grad_output, out, n_threads
        As for :func:`binary_cross_entropy`.  The gradient is
        ``weight * ((pos_weight * t + 1 - t) * sigmoid(x) - pos_weight * t)``
        times the reduction's scale.

    Returns
    -------
    loss : NumPy scalar of the input's dtype, or an array for ``reduction="none"``
    grad : ndarray of the input's shape and dtype (only with ``return_grad=True``)

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> x = np.full((2, 3), 1.0)
    >>> round(float(fastxent.binary_cross_entropy_with_logits(x, np.ones((2, 3)),
    ...                                                       pos_weight=np.ones(3))), 4)
    0.3133
    >>> fastxent.binary_cross_entropy_with_logits([1e4, -1e4], [0., 0.], reduction="none")
    array([10000.,     0.])
    >>> loss, grad = fastxent.binary_cross_entropy_with_logits(
    ...     np.zeros(4, np.float32), [0., 1., 1., 0.], pos_weight=2.0, return_grad=True)
    >>> grad
    array([ 0.125, -0.25 , -0.25 ,  0.125], dtype=float32)
    """
    return _binary(True, input, target, _args.real_array_option(weight, "weight"),
                   _args.real_array_option(pos_weight, "pos_weight"), _args.check_reduction(reduction),
                   _args.check_bool(return_grad, "return_grad"), grad_output, out,
                   _args.threads_option(n_threads))
