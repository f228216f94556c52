"""The binary family: binary_cross_entropy and binary_cross_entropy_with_logits."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from . import _args
from ._kernels import kernels, resolve_threads, sample_weight_total

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import (Array, ArrayInput, BCEWithLogitsOptions, GradOptions, Loss, LossAndGrad,
                          LossGradHess, Out, Reduced, Reduction, Scalar)


def _not_probabilities(name: str, a: np.ndarray, count: int) -> ValueError:
    """The error for ``count`` values of ``a`` outside [0, 1] (found by the kernel)."""
    flat = a.reshape(-1)
    first = int(np.flatnonzero(~((flat >= 0) & (flat <= 1)))[0])
    return ValueError(
        f"binary_cross_entropy: {count} value(s) of {name} are outside [0, 1]; the first is "
        f"{float(flat[first])!r} at index {_args.format_index(first, a.shape)}")


_NO_OPTIONS: dict = {}      # the driver's version 0.2 keywords when none is given
_fast_bce_logits = kernels.fast_bce_logits    # the fast path of small calls (_small.pxi)


def _sample_weight(sample_weight, shape, dtype, nt):
    """``sample_weight`` of a binary call, broadcast to the input (never copied to its
    shape): ``(view, flat, dims, strides, total)``, total the sum of the broadcast
    weights (what a "mean" divides by); checked non-negative and finite."""
    swv = _args.real_array(sample_weight, "sample_weight")
    sw, dims, strides = _args.broadcast_operand(swv, "sample_weight", shape, dtype)
    sw64 = np.ascontiguousarray(swv, dtype=np.float64).reshape(-1)
    total = sample_weight_total(sw64, swv.shape, nt)
    size = math.prod(shape)
    return swv, sw, dims, strides, total * (size // sw64.size) if size else 0.0


def _binary(logits, input, target, weight, pos_weight, reduction, return_grad,
            grad_output, out, n_threads, sample_weight=None, return_hessian=False):
    """Both binary losses: one argument check, one kernel call.

    The options (``weight``, ``pos_weight``, ``reduction``, ``return_grad``,
    ``n_threads``) come checked by ``_args``' option checks: per call from the
    functions, once per assignment from the loss classes; ``sample_weight`` and
    ``return_hessian`` (checked; logits only) are per call.
    """
    xv, x, result_dtype = _args.read_input(input)
    nt = resolve_threads(n_threads)
    tv = _args.real_array(target, "target")
    if tv.shape != x.shape:
        raise ValueError(f"target must have the input's shape {x.shape}, got target {tv.shape}")
    t = _args.as_real_array(tv, x.dtype)
    w, w_dims, w_strides = _args.broadcast_operand(weight, "weight", x.shape, x.dtype)
    pw, pw_dims, pw_strides = _args.broadcast_operand(pos_weight, "pos_weight", x.shape, x.dtype)
    swv = sw = sw_dims = sw_strides = None
    denom = x.size
    if sample_weight is not None:
        swv, sw, sw_dims, sw_strides, denom = _sample_weight(sample_weight, x.shape, x.dtype, nt)

    reads = (xv, x, tv, t, weight, w, pos_weight, pw, swv, sw)   # what out may not overlap
    h = None
    if return_hessian:
        if not return_grad:
            raise ValueError("return_hessian=True needs return_grad=True")
        grad_out, hess_out = _args.split_out(out)
        g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, grad_out, reduction,
                                                 x.shape, denom, x, result_dtype,
                                                 reads + (hess_out,), "out[0]")
        h, hess = _args.hess_setup(hess_out, x, result_dtype, reads + (grad_output, gout))
    else:
        g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, out, reduction, x.shape,
                                                 denom, x, result_dtype, reads)
    loss_out = np.empty(x.shape, dtype=x.dtype) if reduction == "none" else None

    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731  (views, no copies)
    # the version 0.2 arrays only when given (see _multiclass)
    v2 = _NO_OPTIONS if sw is None and h is None else \
        {"sw": sw, "sw_dims": sw_dims, "sw_strides": sw_strides, "hess": flat(h)}
    total, bad_x, bad_t = kernels.bce(logits=logits, x=flat(x), t=flat(t), w=w, w_dims=w_dims,
                                      w_strides=w_strides, pw=pw, pw_dims=pw_dims,
                                      pw_strides=pw_strides, loss_out=flat(loss_out), grad=flat(g),
                                      gout=gout, gscale=gscale, n_threads=nt, **v2)
    if bad_x:
        raise _not_probabilities("input", x, bad_x)
    if bad_t:
        raise _not_probabilities("target", t, bad_t)

    res = _args.finish(total, loss_out, denom, reduction, result_dtype, g, grad)
    if h is None:
        return res
    return res + (_args.finish_grad(h, hess[0], hess[1], result_dtype),)


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
                         n_threads: int | None = None,
                         sample_weight: ArrayInput | None = None) -> Loss | LossAndGrad:
    """Binary cross-entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    Elementwise ``-weight * (t * log(x) + (1 - t) * log(1 - x))`` for
    probabilities ``x`` and targets ``t`` of the same shape, with the logs
    clamped at -100 as PyTorch does, so that the loss stays finite at ``x`` = 0
    or 1.  With ``return_grad=True`` the gradient with respect to ``input`` is
    computed in the same pass.  For logits, :func:`binary_cross_entropy_with_logits`
    is the stable choice.

    Parameters
    ----------
    input : array_like
        Probabilities ``x`` in ``[0, 1]``, any shape: float32 or float64, or
        float16 (computed in float32, results returned as float16).  A value
        outside ``[0, 1]``, or NaN, is a ValueError, as in PyTorch.
    target : array_like
        Targets ``t`` in ``[0, 1]`` with ``input``'s shape; soft labels are
        allowed.  Any real dtype (converted to ``input``'s).
    weight : array_like, optional
        Weights that broadcast to ``input`` as NumPy broadcasts: a scalar, a
        ``(C,)`` vector along the last axis, an ``(N, 1)`` column, or one
        weight per element.  They are never copied to ``input``'s shape.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses, ``input``'s shape.  "sum": their sum.
        "mean": their sum divided by the number of elements (NaN for an empty
        input), whatever ``weight``; by the sum of the sample weights with
        ``sample_weight``.
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, computed in the same pass.  True or False (a NumPy bool
        too); anything else is a TypeError.
    grad_output : array_like, optional
        The upstream gradient that the returned gradient is multiplied by
        (with ``return_grad=True`` only).  For "mean" and "sum", a scalar.  For
        "none", an array of ``input``'s shape, and the returned gradient is
        that of ``sum(grad_output * loss)``.  Default: 1 (ones for "none").
    out : ndarray, optional
        Receives the gradient (with ``return_grad=True`` only), returned as
        ``grad``: ``input``'s shape and dtype, C-contiguous, writeable, and
        sharing memory with no argument.  An ndarray subclass such as
        ``np.memmap`` is written through and returned.  Nothing is written to
        it unless every argument passes its checks, except for the ``[0, 1]``
        check of the values, which is made in the kernel's one pass (see
        Raises).
    n_threads : int, optional
        Threads for this call, at least 1 (default:
        :func:`fastxent.get_num_threads`).  The results are bitwise identical
        for every thread count.
    sample_weight : array_like, optional
        Non-negative weights that broadcast to ``input`` like ``weight`` (one
        per row: an ``(N, 1)`` column; one per element: ``input``'s shape).
        They multiply the loss and its derivatives, and "mean" divides by
        their sum over the elements (each weight counted once per element it
        broadcasts to), so that integer weights are the same as repeating
        samples.  Never copied to ``input``'s shape.  A negative, NaN or
        infinite weight is a ValueError.  Default: 1.

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in ``input``'s dtype: a NumPy scalar for "mean" and "sum"
        (accumulated in float64), an array of ``input``'s shape for "none".
    grad : ndarray
        Only with ``return_grad=True``: the derivative of ``loss`` with respect
        to ``input`` (of ``sum(grad_output * loss)`` for "none"), times
        ``grad_output`` for "mean" and "sum"; ``input``'s shape and dtype.  It
        is ``out`` where ``out`` is given.

    Raises
    ------
    TypeError
        If ``input`` is not floating (integer and bool included), if
        ``target`` or ``weight`` is not real, if ``out`` is not an ndarray or
        not of ``input``'s dtype, or if an option has the wrong type (a bool
        for a number, a number or string for a bool).
    ValueError
        If a value of ``input`` or ``target`` is outside ``[0, 1]`` or NaN: the
        message says how many and where the first is; ``out`` may have been
        written.  If ``target``'s shape is not ``input``'s, or ``weight``,
        ``grad_output`` or ``out`` does not fit it; if ``reduction`` is unknown
        or ``n_threads`` below 1; if ``out`` is not C-contiguous, not writeable
        or overlaps an argument; if ``grad_output`` or ``out`` is given
        without ``return_grad=True``; if ``sample_weight`` does not broadcast
        to ``input`` or has a negative or non-finite value.

    See Also
    --------
    binary_cross_entropy_with_logits : The same loss from logits, stable for any logit.
    BCELoss : This function with its options kept as attributes.
    fastxent.torch.binary_cross_entropy : For PyTorch tensors, with autograd.

    Notes
    -----
    Elementwise, with ``w`` the broadcast weight (1 without ``weight``)::

        loss = -w * (t * max(log(x), -100) + (1 - t) * max(log1p(-x), -100))
        d loss / d x = w * (x - t) / max(x * (1 - x), eps)

    with PyTorch's ``eps = float32(1e-12)`` for every dtype; "mean" divides
    both by the number of elements.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> p = np.array([0.9, 0.2, 0.6])
    >>> round(float(fastxent.binary_cross_entropy(p, [1.0, 0.0, 1.0])), 4)
    0.2798

    With its gradient, and with a weight per element:

    >>> loss, grad = fastxent.binary_cross_entropy(p, [1.0, 0.0, 1.0], return_grad=True)
    >>> np.round(grad, 4)
    array([-0.3704,  0.4167, -0.5556])
    >>> fastxent.binary_cross_entropy(p, [1.0, 0.0, 1.0], weight=[1.0, 2.0, 1.0],
    ...                               reduction="none").round(4)
    array([0.1054, 0.4463, 0.5108])

    A weight per row broadcasts along the columns; a probability of 0 for a
    positive target costs 100, the clamp:

    >>> x = np.array([[0.9, 0.2], [0.6, 0.4]])
    >>> fastxent.binary_cross_entropy(x, [[1.0, 0.0], [1.0, 0.0]], weight=[[1.0], [3.0]],
    ...                               reduction="none").round(4)
    array([[0.1054, 0.2231],
           [1.5325, 1.5325]])
    >>> float(fastxent.binary_cross_entropy([0.0], [1.0], reduction="sum"))
    100.0
    """
    return _binary(False, input, target, _args.real_array_option(weight, "weight"), None,
                   _args.check_reduction(reduction), _args.check_bool(return_grad, "return_grad"),
                   grad_output, out, _args.threads_option(n_threads), sample_weight)


@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Reduced = ..., return_grad: Literal[False] = ...,
                                     return_hessian: Literal[False] = ...,
                                     **options: Unpack[BCEWithLogitsOptions]) -> Scalar: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Literal["none"], return_grad: Literal[False] = ...,
                                     return_hessian: Literal[False] = ...,
                                     **options: Unpack[BCEWithLogitsOptions]) -> Array: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Reduced = ..., return_grad: Literal[True],
                                     return_hessian: Literal[False] = ...,
                                     **options: Unpack[BCEWithLogitsOptions]) -> tuple[Scalar, Array]: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Literal["none"], return_grad: Literal[True],
                                     return_hessian: Literal[False] = ...,
                                     **options: Unpack[BCEWithLogitsOptions]) -> tuple[Array, Array]: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Reduced = ..., return_grad: Literal[True],
                                     return_hessian: Literal[True],
                                     **options: Unpack[BCEWithLogitsOptions]
                                     ) -> tuple[Scalar, Array, Array]: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Literal["none"], return_grad: Literal[True],
                                     return_hessian: Literal[True],
                                     **options: Unpack[BCEWithLogitsOptions]
                                     ) -> tuple[Array, Array, Array]: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = ..., *,
                                     reduction: Reduction = ..., return_grad: bool = ...,
                                     return_hessian: bool = ...,
                                     **options: Unpack[BCEWithLogitsOptions]
                                     ) -> Loss | LossAndGrad | LossGradHess: ...
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayInput,
                                     weight: ArrayInput | None = None, *,
                                     pos_weight: ArrayInput | None = None, reduction: Reduction = "mean",
                                     return_grad: bool = False,
                                     grad_output: ArrayInput | None = None, out: Out | None = None,
                                     n_threads: int | None = None,
                                     sample_weight: ArrayInput | None = None,
                                     return_hessian: bool = False) -> Loss | LossAndGrad | LossGradHess:
    """Binary cross-entropy of logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Elementwise ``-weight * (pos_weight * t * log(sigmoid(x)) + (1 - t) *
    log(1 - sigmoid(x)))`` for logits ``x`` and targets ``t`` of the same
    shape, computed as ``weight * ((1 - t) * softplus(x) + pos_weight * t *
    softplus(-x))``: no overflow for any finite logit, and full precision
    where the loss is tiny.  With ``return_grad=True`` the gradient with
    respect to ``input`` is computed in the same pass, and with
    ``return_hessian=True`` the second derivative too.

    Parameters
    ----------
    input : array_like
        Logits ``x``, any shape: float32 or float64, or float16 (computed in
        float32, results returned as float16).  NaN and infinite logits raise
        nothing; they give NaN or inf where PyTorch does (a logit of -inf gives
        NaN, as in PyTorch).
    target : array_like
        Targets ``t`` with ``input``'s shape, any real dtype (converted to
        ``input``'s).  Soft labels in ``[0, 1]`` are allowed and not checked,
        as in PyTorch.
    weight : array_like, optional
        Weights that broadcast to ``input`` as NumPy broadcasts: a scalar, a
        ``(C,)`` vector along the last axis, an ``(N, 1)`` column, or one
        weight per element.  They are never copied to ``input``'s shape.
    pos_weight : array_like, optional
        Weights of the positive term, ``pw`` in Notes, that broadcast to
        ``input``: a ``(C,)`` vector applies along the last axis, one weight
        per label of a multi-label problem (e.g. the ratio of negatives to
        positives of each label).  Default: 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses, ``input``'s shape.  "sum": their sum.
        "mean": their sum divided by the number of elements (NaN for an empty
        input), whatever ``weight`` and ``pos_weight``; by the sum of the
        sample weights with ``sample_weight``.
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, computed in the same pass.  True or False (a NumPy bool
        too); anything else is a TypeError.
    grad_output : array_like, optional
        The upstream gradient that the returned gradient is multiplied by
        (with ``return_grad=True`` only).  For "mean" and "sum", a scalar.  For
        "none", an array of ``input``'s shape, and the returned gradient is
        that of ``sum(grad_output * loss)``.  Default: 1 (ones for "none").
    out : ndarray or pair of ndarrays, optional
        Receives the gradient (with ``return_grad=True`` only), returned as
        ``grad``: ``input``'s shape and dtype, C-contiguous, writeable, and
        sharing memory with no argument.  An ndarray subclass such as
        ``np.memmap`` is written through and returned.  Nothing is written to
        it unless every argument passes its checks.  With
        ``return_hessian=True``, a pair ``(grad_out, hess_out)`` (either may
        be None).
    n_threads : int, optional
        Threads for this call, at least 1 (default:
        :func:`fastxent.get_num_threads`).  The results are bitwise identical
        for every thread count.
    sample_weight : array_like, optional
        Non-negative weights that broadcast to ``input`` like ``weight`` (one
        per row: an ``(N, 1)`` column; one per element: ``input``'s shape).
        They multiply the loss and its derivatives, and "mean" divides by
        their sum over the elements (each weight counted once per element it
        broadcasts to), so that integer weights are the same as repeating
        samples.  Never copied to ``input``'s shape.  A negative, NaN or
        infinite weight is a ValueError.  Default: 1.
    return_hessian : bool, default False
        Also return the second derivative of the returned loss with respect
        to each element of ``input`` (needs ``return_grad=True``), from the
        same pass: ``w * (pw * t + 1 - t) * s * (1 - s)`` times the
        gradient's scale.  The loss is elementwise, so this is the whole
        Hessian (its diagonal): the Newton step of a boosting library's
        logistic objective.

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in ``input``'s dtype: a NumPy scalar for "mean" and "sum"
        (accumulated in float64), an array of ``input``'s shape for "none".
    grad : ndarray
        Only with ``return_grad=True``: the derivative of ``loss`` with respect
        to ``input`` (of ``sum(grad_output * loss)`` for "none"), times
        ``grad_output`` for "mean" and "sum"; ``input``'s shape and dtype.  It
        is ``out`` (``out[0]``) where given.
    hess : ndarray
        Only with ``return_hessian=True``: the second derivatives of the same
        loss, scaled as ``grad``; ``input``'s shape and dtype; ``out[1]``
        where given.

    Raises
    ------
    TypeError
        If ``input`` is not floating (integer and bool included), if
        ``target``, ``weight``, ``pos_weight`` or ``sample_weight`` is not
        real, if ``out`` is not an ndarray (a pair with
        ``return_hessian=True``) or not of ``input``'s dtype, or if an option
        has the wrong type (a bool for a number, a number or string for a
        bool).
    ValueError
        If ``target``'s shape is not ``input``'s, or ``weight``,
        ``pos_weight``, ``grad_output`` or ``out`` does not fit it; if
        ``reduction`` is unknown or ``n_threads`` below 1; if ``out`` is not
        C-contiguous, not writeable or overlaps an argument; if
        ``grad_output`` or ``out`` is given without ``return_grad=True``; if
        ``sample_weight`` does not broadcast to ``input`` or has a negative or
        non-finite value; if ``return_hessian=True`` comes without
        ``return_grad=True``.

    See Also
    --------
    binary_cross_entropy : The same loss from probabilities.
    BCEWithLogitsLoss : This function with its options kept as attributes.
    fastxent.torch.binary_cross_entropy_with_logits : For PyTorch tensors, with autograd.

    Notes
    -----
    Elementwise, with ``w`` and ``pw`` the broadcast ``weight`` and
    ``pos_weight`` (1 where not given) and ``s = sigmoid(x)``::

        loss = -w * (pw * t * log(s) + (1 - t) * log(1 - s))
        d loss / d x = w * ((pw * t + 1 - t) * s - pw * t)
        d2 loss / d x2 = w * (pw * t + 1 - t) * s * (1 - s)

    "mean" divides them by the number of elements.  Sample weights multiply
    ``w``, and "mean" then divides by their sum over the elements.  These are PyTorch's
    formulas; the values agree with PyTorch to a few ulp.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logits = np.array([[2.0, -1.0, 0.5],
    ...                    [0.0, 3.0, -2.0]])
    >>> labels = np.array([[1.0, 0.0, 0.0],
    ...                    [0.0, 1.0, 1.0]])
    >>> fastxent.binary_cross_entropy_with_logits(logits, labels, reduction="none").round(4)
    array([[0.1269, 0.3133, 0.9741],
           [0.6931, 0.0486, 2.1269]])

    A weight per label for the positives (here the third label's count 4
    times), with the gradient:

    >>> loss, grad = fastxent.binary_cross_entropy_with_logits(
    ...     logits, labels, pos_weight=[1.0, 1.0, 4.0], return_grad=True)
    >>> round(float(loss), 4)
    1.7773
    >>> grad.round(4)
    array([[-0.0199,  0.0448,  0.1037],
           [ 0.0833, -0.0079, -0.5872]])

    No overflow at large logits, and full precision where the loss is tiny:

    >>> fastxent.binary_cross_entropy_with_logits([1e4, -1e4, -40.0], [0.0, 0.0, 0.0],
    ...                                           reduction="none")
    array([1.00000000e+04, 0.00000000e+00, 4.24835426e-18])

    A weight per sample (row), and the gradient and Hessian a boosting
    library's custom objective returns:

    >>> loss, grad, hess = fastxent.binary_cross_entropy_with_logits(
    ...     logits, labels, sample_weight=[[1.0], [0.5]], reduction="sum",
    ...     return_grad=True, return_hessian=True)
    >>> hess.round(4)
    array([[0.105 , 0.1966, 0.235 ],
           [0.125 , 0.0226, 0.0525]])
    """
    if (weight is None and pos_weight is None and grad_output is None and out is None
            and n_threads is None and sample_weight is None and return_hessian is False):
        res = _fast_bce_logits(input, target, reduction, return_grad)
        if res is not None:
            return res
    return _binary(True, input, target, _args.real_array_option(weight, "weight"),
                   _args.real_array_option(pos_weight, "pos_weight"), _args.check_reduction(reduction),
                   _args.check_bool(return_grad, "return_grad"), grad_output, out,
                   _args.threads_option(n_threads), sample_weight,
                   # (the common False without a call: small calls cost microseconds)
                   False if return_hessian is False else
                   _args.check_bool(return_hessian, "return_hessian"))
