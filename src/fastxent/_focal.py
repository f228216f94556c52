"""The focal loss: sigmoid_focal_loss, torchvision's, on logits."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from . import _args
from ._kernels import kernels, resolve_threads

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import (Array, ArrayInput, FocalOptions, Loss, LossAndGrad, Reduced,
                          Reduction, Scalar)


def _not_targets(t: np.ndarray, count: int) -> ValueError:
    """The error for ``count`` targets outside [0, 1] (found by the kernel)."""
    flat = t.reshape(-1)
    first = int(np.flatnonzero(~((flat >= 0) & (flat <= 1)))[0])
    return ValueError(
        f"sigmoid_focal_loss: {count} value(s) of target are outside [0, 1]; the first is "
        f"{float(flat[first])!r} at index {_args.format_index(first, t.shape)}")


def _focal(input, target, alpha, gamma, reduction, return_grad, grad_output, out, n_threads):
    """sigmoid_focal_loss with checked options (``_args``' option checks, per
    call from the function, once per assignment from SigmoidFocalLoss): one
    kernel call."""
    xv, x, result_dtype = _args.read_input(input)
    nt = resolve_threads(n_threads)
    tv = _args.real_array(target, "target")
    if tv.shape != x.shape:
        raise ValueError(f"target must have the input's shape {x.shape}, got target {tv.shape}")
    t = _args.as_real_array(tv, x.dtype)
    g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, out, reduction, x.shape,
                                             x.size, x, result_dtype, (xv, x, tv, t))
    loss_out = np.empty(x.shape, dtype=x.dtype) if reduction == "none" else None
    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731  (views, no copies)
    total, bad = kernels.focal(x=flat(x), t=flat(t), alpha=alpha, gamma=gamma,
                               loss_out=flat(loss_out), grad=flat(g), gout=gout, gscale=gscale,
                               n_threads=nt)
    if bad:
        raise _not_targets(t, bad)
    return _args.finish(total, loss_out, x.size, reduction, result_dtype, g, grad)


@overload
def sigmoid_focal_loss(input: ArrayInput, target: ArrayInput, *, reduction: Literal["none"] = ...,
                       return_grad: Literal[False] = ...,
                       **options: Unpack[FocalOptions]) -> Array: ...
@overload
def sigmoid_focal_loss(input: ArrayInput, target: ArrayInput, *, reduction: Reduced,
                       return_grad: Literal[False] = ...,
                       **options: Unpack[FocalOptions]) -> Scalar: ...
@overload
def sigmoid_focal_loss(input: ArrayInput, target: ArrayInput, *, reduction: Literal["none"] = ...,
                       return_grad: Literal[True],
                       **options: Unpack[FocalOptions]) -> tuple[Array, Array]: ...
@overload
def sigmoid_focal_loss(input: ArrayInput, target: ArrayInput, *, reduction: Reduced,
                       return_grad: Literal[True],
                       **options: Unpack[FocalOptions]) -> tuple[Scalar, Array]: ...
@overload
def sigmoid_focal_loss(input: ArrayInput, target: ArrayInput, *, reduction: Reduction = ...,
                       return_grad: bool = ...,
                       **options: Unpack[FocalOptions]) -> Loss | LossAndGrad: ...
def sigmoid_focal_loss(input: ArrayInput, target: ArrayInput, *, alpha: float = 0.25,
                       gamma: float = 2.0, reduction: Reduction = "none",
                       return_grad: bool = False, grad_output: ArrayInput | None = None,
                       out: Array | None = None, n_threads: int | None = None) -> Loss | LossAndGrad:
    """The focal loss of logits, as ``torchvision.ops.sigmoid_focal_loss``.

    Binary cross-entropy with logits, down-weighted where the prediction is
    already right: elementwise ``a_t * ce * (1 - p_t) ** gamma`` (Lin et al.,
    2017, for dense detection and other heavily imbalanced problems), with
    ``p_t`` the predicted probability of the target.  Stable for any finite
    logit: no overflow at ±1e4, full precision where the loss is tiny.  With
    ``return_grad=True`` the gradient with respect to ``input`` is computed in
    the same pass.

    Parameters
    ----------
    input : array_like
        Logits ``x``, any shape: float32 or float64, or float16 (computed in
        float32, results returned as float16).
    target : array_like
        Targets ``t`` in ``[0, 1]`` (0 or 1 for a binary label; soft labels
        allowed) with ``input``'s shape, any real dtype (converted to
        ``input``'s).
    alpha : float, default 0.25
        The weight of the positive term (``1 - alpha`` that of the negative
        one); a negative ``alpha`` turns the weighting off, as in torchvision.
    gamma : float, default 2.0
        The focusing exponent, a finite number >= 0; ``gamma=0`` is binary
        cross-entropy with logits (weighted by ``alpha``).
    reduction : {"none", "mean", "sum"}, default "none"
        "none" (torchvision's default): the elementwise losses, ``input``'s
        shape.  "sum": their sum.  "mean": their sum divided by the number of
        elements.
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
        sharing memory with no argument.  Nothing is written to it unless
        every argument passes its checks, except for the ``[0, 1]`` check of
        the targets, which is made in the kernel's one pass (see Raises).
    n_threads : int, optional
        Threads for this call, at least 1 (default:
        :func:`fastxent.get_num_threads`).  The results are bitwise identical
        for every thread count.

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in ``input``'s dtype: an array of ``input``'s shape for
        "none", a NumPy scalar for "mean" and "sum" (accumulated in float64).
    grad : ndarray
        Only with ``return_grad=True``: the derivative of ``loss`` with respect
        to ``input`` (of ``sum(grad_output * loss)`` for "none"), times
        ``grad_output`` for "mean" and "sum"; ``input``'s shape and dtype.  It
        is ``out`` where ``out`` is given.

    Raises
    ------
    TypeError
        If ``input`` is not floating (integer and bool included), if
        ``target`` is not real, if ``out`` is not an ndarray or not of
        ``input``'s dtype, or if an option has the wrong type (a bool or a
        string for ``alpha`` or ``gamma``, a number or string for a bool).
    ValueError
        If a target is outside ``[0, 1]`` or NaN (torchvision does not check
        them; its formula makes no sense there): the message says how many and
        where the first is, and ``out`` may have been written.  If
        ``target``'s shape is not ``input``'s, or ``grad_output`` or ``out``
        does not fit it; if ``alpha`` is not finite, ``gamma`` not a finite
        number >= 0, ``reduction`` unknown or ``n_threads`` below 1; if
        ``out`` is not C-contiguous, not writeable or overlaps an argument;
        if ``grad_output`` or ``out`` is given without ``return_grad=True``.

    See Also
    --------
    binary_cross_entropy_with_logits : The loss ``gamma=0`` reduces to.
    SigmoidFocalLoss : This function with its options kept as attributes.

    Notes
    -----
    Elementwise, with ``s = sigmoid(x)``::

        ce   = -(t * log(s) + (1 - t) * log(1 - s))
        p_t  = s * t + (1 - s) * (1 - t)
        a_t  = alpha * t + (1 - alpha) * (1 - t)         (1 when alpha < 0)
        loss = a_t * ce * (1 - p_t) ** gamma
        d loss / d x = a_t * (1 - p_t) ** gamma * (s - t + gamma * ce * (1 - 2 t)
                                                   * s * (1 - s) / (1 - p_t))

    "mean" divides both by the number of elements.  These are torchvision's
    formulas, computed without cancellation: ``1 - p_t`` is ``(1 - t) * s +
    t * sigmoid(-x)``, and for a 0/1 target its log is a softplus, so no
    factor underflows to a 0 that a later one multiplies by infinity.  A
    logit of -inf gives NaN, as torchvision's does.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logits = np.array([3.0, -1.0, 0.5, -4.0])
    >>> labels = np.array([1.0, 0.0, 1.0, 1.0])
    >>> fastxent.sigmoid_focal_loss(logits, labels).round(4)
    array([0.    , 0.017 , 0.0169, 0.9687])

    Reduced, with the gradient; ``alpha=-1`` and ``gamma=0`` give binary
    cross-entropy:

    >>> loss, grad = fastxent.sigmoid_focal_loss(logits, labels, reduction="sum",
    ...                                          return_grad=True)
    >>> grad.round(3)
    array([-0.   ,  0.039, -0.034, -0.272])
    >>> bool(np.allclose(fastxent.sigmoid_focal_loss(logits, labels, alpha=-1, gamma=0),
    ...                  fastxent.binary_cross_entropy_with_logits(logits, labels,
    ...                                                            reduction="none")))
    True

    No overflow at large logits:

    >>> fastxent.sigmoid_focal_loss([1e4, -1e4], [0.0, 0.0], alpha=-1)
    array([10000.,     0.])
    """
    return _focal(input, target, _args.check_focal_alpha(alpha), _args.check_focal_gamma(gamma),
                  _args.check_reduction(reduction), _args.check_bool(return_grad, "return_grad"),
                  grad_output, out, _args.threads_option(n_threads))
