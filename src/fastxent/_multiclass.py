"""The multi-class family: cross_entropy, nll_loss, logsumexp, softmax, log_softmax."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from . import _args, _lse
from ._kernels import kernels, resolve_threads, sample_weight_total

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import (Array, ArrayInput, CrossEntropyOptions, Loss, LossAndGrad, LossGradHess,
                          NLLOptions, Out, Reduced, Reduction, Scalar)


_NO_OPTIONS: dict = {}      # the drivers' version 0.2 keywords when none is given

# The fast path of small calls (issue 19, _small.pxi): the common case, checked
# in typed code; None where the general path must run.
_fast_xent = kernels.fast_xent
_fast_lse = kernels.fast_lse
_LSE, _SOFTMAX, _LOG_SOFTMAX = kernels.LSE, kernels.SOFTMAX, kernels.LOG_SOFTMAX


def _prepare_index_target(tgt, sample_shape, x_shape, C, ignore_index, w, sw, nt):
    """Checks class-index targets (and sample weights); returns them flat and what
    a "mean" divides by: ``sum_n sw_n w[y_n]`` over the targets kept."""
    y = _args.as_index_target(tgt, sample_shape, x_shape)
    w64 = None if w is None else w.astype(np.float64)
    if sw is None:          # (a keyword less: the common call stays as cheap as it was)
        first_bad, n_kept, w_kept, bad_sw = kernels.check_samples(
            y=y, C=C, ignore_index=ignore_index, w=w64, n_threads=nt)
    else:
        first_bad, n_kept, w_kept, bad_sw = kernels.check_samples(
            y=y, C=C, ignore_index=ignore_index, w=w64, n_threads=nt, sw=sw)
    if first_bad >= 0:
        raise ValueError(
            f"target value {int(y[first_bad])} at index {_args.format_index(first_bad, sample_shape)} "
            f"is not a class index in [0, {C}) nor ignore_index ({ignore_index})")
    if bad_sw >= 0:
        raise _args.sample_weight_error(sw, bad_sw, sample_shape)
    return y, (float(n_kept) if w is None and sw is None else w_kept)


def _multiclass(kind, input, target, weight, ignore_index, reduction, eps, axis, return_grad,
                grad_output, out, n_threads, sample_weight=None, return_hessian=False, v=None,
                z_loss=0.0, softcap=None, part=None):
    """cross_entropy, nll_loss, cross_entropy_hvp and cross_entropy_class_slice: one
    argument check, one kernel call.

    The options (all but ``input``, ``target``, ``grad_output`` and ``out``) come
    checked by ``_args``' option checks: per call from the functions, once per
    assignment from the loss classes.  ``sample_weight``, ``return_hessian``
    (checked) and ``v`` (cross_entropy_hvp's vector: the result is then the
    Hessian times ``v`` alone, in the gradient's buffer) are per call.
    ``z_loss`` and ``softcap`` are cross-entropy's only (the kernel refuses
    them with ``return_hessian`` or ``v``).  ``part`` (cross-entropy only,
    without z_loss, softcap and the per-call arrays): a
    ``_class_slice.ClassSlice``, the input then being a slice of the classes
    (class indices and ``weight`` run over all of them).
    """
    xv, x, result_dtype = _args.read_input(input)
    nt = resolve_threads(n_threads)
    ax = _args.class_axis(axis, x.ndim)
    n_outer, C, inner = _args.split_shape(x.shape, ax)
    sample_shape = x.shape[:ax] + x.shape[ax + 1:]
    n_classes = C if part is None else part.n_classes(C)
    w = _args.class_weight(weight, n_classes, x.dtype)
    swv = sw = vv = vc = None
    if sample_weight is not None:
        swv, sw = _args.sample_weight_array(sample_weight, sample_shape, x.shape)
    if v is not None:
        vv = _args.real_array(v, "v")
        if vv.shape != x.shape:
            raise ValueError(f"v must have the input's shape {x.shape}, got {vv.shape}")
        vc = _args.as_real_array(vv, x.dtype)

    tgt = _args.asarray(target, "target")
    if tgt.dtype.kind in "iu":
        y, denom = _prepare_index_target(tgt, sample_shape, x.shape, n_classes, ignore_index, w,
                                         sw, nt)
        t = None
    elif tgt.dtype.kind == "f" and kind == "xent":
        if tgt.shape != x.shape:
            raise _args.probability_target_shape_error(tgt.shape, x.shape, sample_shape)
        y, t = None, np.ascontiguousarray(tgt, dtype=x.dtype)
        denom = float(n_outer * inner) if sw is None else sample_weight_total(sw, sample_shape, nt)
        denom = denom if x.size else 0.0          # PyTorch: an empty input's mean is NaN
    elif kind == "nll":
        raise TypeError(f"nll_loss target must be integer class indices, got dtype {tgt.dtype}")
    else:
        raise TypeError(
            f"target must be integer class indices or floating class probabilities, got dtype {tgt.dtype}")

    reads = (xv, x, tgt, y, t, weight, w, swv, sw, vv, vc)   # what out may not overlap
    slice_args = None
    if part is not None:
        if sw is not None or return_hessian or vc is not None:
            raise NotImplementedError(
                "the class slice takes no sample_weight, return_hessian or v")
        slice_args = part.kernel_args(sample_shape, C, w, t is not None)
        reads = reads + part.arrays
    h = None
    if return_hessian:
        if not return_grad:
            raise ValueError("return_hessian=True needs return_grad=True")
        grad_out, hess_out = _args.split_out(out)
        g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, grad_out, reduction,
                                                 sample_shape, denom, x, result_dtype,
                                                 reads + (hess_out,), "out[0]")
        h, hess = _args.hess_setup(hess_out, x, result_dtype, reads + (grad_output, gout))
    else:
        g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, out, reduction,
                                                 sample_shape, denom, x, result_dtype, reads)
    loss_out = np.empty(sample_shape, dtype=x.dtype) if reduction == "none" and v is None else None

    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731  (views, no copies)
    # The version 0.2 keywords go to the driver only when given: a keyword costs
    # a fused Cython driver's dispatch about 0.1 us, and an empty ** nothing.
    # (The driver refuses z_loss/softcap with hess or v.)
    v2 = _NO_OPTIONS if sw is None and h is None and vc is None else \
        {"sw": sw, "hess": flat(h), "v": flat(vc)} if kind == "xent" else {"sw": sw}
    if kind == "xent" and (z_loss or softcap is not None):
        v2 = dict(v2, z_loss=z_loss, softcap=softcap or 0.0)
    if kind == "xent" and part is not None:
        total = kernels.xent_slice(x=flat(x), n_outer=n_outer, C=C, inner=inner, y=y,
                                   ignore_index=ignore_index, t=flat(t), w=w, eps=eps,
                                   loss_out=flat(loss_out), grad=flat(g), gout=gout,
                                   gscale=gscale, n_threads=nt, **slice_args)
    elif kind == "xent":
        w_sum = float(C) if w is None else float(w.sum(dtype=np.float64))
        total = kernels.xent(x=flat(x), n_outer=n_outer, C=C, inner=inner, y=y,
                             ignore_index=ignore_index, t=flat(t), w=w, w_sum=w_sum, eps=eps,
                             loss_out=flat(loss_out), grad=flat(g), gout=gout, gscale=gscale,
                             n_threads=nt, **v2)
    else:
        total = kernels.nll(x=flat(x), n_outer=n_outer, C=C, inner=inner, y=y,
                            ignore_index=ignore_index, w=w, loss_out=flat(loss_out), grad=flat(g),
                            gout=gout, gscale=gscale, n_threads=nt, **v2)

    if v is not None:
        return _args.finish_grad(g, grad[0], grad[1], result_dtype)
    res = _args.finish(total, loss_out, denom, reduction, result_dtype, g, grad)
    if h is None:
        return res
    return res + (_args.finish_grad(h, hess[0], hess[1], result_dtype),)


# For type checkers: a reduced loss is a NumPy scalar, reduction="none" an
# array, return_grad=True makes the result a (loss, grad) tuple and
# return_hessian=True a (loss, grad, hess) one; the last overload is for values
# known only at run time.  The options that leave the type alone are a
# TypedDict (fastxent._typing), to keep each overload short.
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Reduced = ..., return_grad: Literal[False] = ...,
                  return_hessian: Literal[False] = ...,
                  **options: Unpack[CrossEntropyOptions]) -> Scalar: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Literal["none"], return_grad: Literal[False] = ...,
                  return_hessian: Literal[False] = ...,
                  **options: Unpack[CrossEntropyOptions]) -> Array: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Reduced = ..., return_grad: Literal[True],
                  return_hessian: Literal[False] = ...,
                  **options: Unpack[CrossEntropyOptions]) -> tuple[Scalar, Array]: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Literal["none"], return_grad: Literal[True],
                  return_hessian: Literal[False] = ...,
                  **options: Unpack[CrossEntropyOptions]) -> tuple[Array, Array]: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Reduced = ..., return_grad: Literal[True],
                  return_hessian: Literal[True],
                  **options: Unpack[CrossEntropyOptions]) -> tuple[Scalar, Array, Array]: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Literal["none"], return_grad: Literal[True],
                  return_hessian: Literal[True],
                  **options: Unpack[CrossEntropyOptions]) -> tuple[Array, Array, Array]: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = ..., *,
                  reduction: Reduction = ..., return_grad: bool = ..., return_hessian: bool = ...,
                  **options: Unpack[CrossEntropyOptions]) -> Loss | LossAndGrad | LossGradHess: ...
def cross_entropy(input: ArrayInput, target: ArrayInput, weight: ArrayInput | None = None, *,
                  ignore_index: int = -100, reduction: Reduction = "mean",
                  label_smoothing: float = 0.0, z_loss: float = 0.0, softcap: float | None = None,
                  axis: int | None = None, return_grad: bool = False,
                  grad_output: ArrayInput | None = None, out: Out | None = None,
                  n_threads: int | None = None, sample_weight: ArrayInput | None = None,
                  return_hessian: bool = False) -> Loss | LossAndGrad | LossGradHess:
    """Cross-entropy between logits and targets, as ``torch.nn.functional.cross_entropy``.

    The loss of a sample position is the negative log-softmax of its logits at
    its target class (class indices) or averaged under its target distribution
    (class probabilities), with optional class weights, sample weights and
    label smoothing, and the z-loss and logit soft-capping of language-model
    recipes (the formulas are in Notes).  With ``return_grad=True`` the
    gradient with respect to ``input`` is computed in the same pass over the
    logits, and with ``return_hessian=True`` the diagonal of the Hessian too.

    Parameters
    ----------
    input : array_like, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Unnormalized logits: float32 or float64, or float16 (computed in float32,
        results returned as float16).  Anything ``np.asarray`` accepts; a
        C-contiguous float32 or float64 array, or a tensor over one, is read in
        place.  NaN and inf propagate into the result as in PyTorch.
    target : array_like
        Class indices: any integer dtype, ``input``'s shape without the class
        axis, each in ``[0, C)`` or equal to ``ignore_index``.  Or class
        probabilities: floating, ``input``'s shape; they need not sum to 1 and
        are not checked to be non-negative.
    weight : array_like, shape (C,), optional
        A weight per class, ``w`` in Notes (default: 1 for every class).  A
        weight enters only through the terms that use it: an inf or NaN weight
        of a class no target and no smoothing term uses changes nothing.
    ignore_index : int, default -100
        A class-index target equal to it adds neither loss nor gradient and is
        left out of the "mean" denominator.  It does not apply to probability
        targets.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the per-sample losses, shaped like ``target`` (``input``
        without its class axis).  "sum": their sum.  "mean": their sum divided
        by the weight of the kept targets, ``sum_n sw_n * w[y_n]`` over the
        targets that are not ``ignore_index`` (``sw`` the sample weights, 1
        without; their count without either weight); for probability targets,
        divided by ``sum_n sw_n`` (the number of sample positions without
        ``sample_weight``).  Where that denominator is 0 (every target ignored
        or of weight 0, or an empty input) the loss is NaN, and so is the
        gradient of every kept target's row, with or without label smoothing,
        as in PyTorch.
    label_smoothing : float, default 0.0
        ``eps`` in ``[0, 1]``: the target is mixed with the uniform distribution
        over the classes, ``(1 - eps) * target + eps / C`` (see Notes).  A value
        outside ``[0, 1]`` is a ValueError (PyTorch treats a negative one as 0);
        a bool or a string is a TypeError.
    z_loss : float, default 0.0
        ``z`` in Notes, finite and at least 0: adds ``z * lse_n ** 2`` to the
        loss of each sample position whose target is not ignored, ``lse_n``
        the log-sum-exp of its logits (after ``softcap``): PaLM's z-loss, which
        keeps the softmax's normalizer near 1.  Class weights do not multiply
        it; "mean" divides it by the same denominator as the rest.
    softcap : float, optional
        ``s`` in Notes, finite and above 0: every logit ``x`` is replaced by
        ``s * tanh(x / s)`` before the softmax, as Gemma 2 does; the gradient
        is still with respect to ``input``.  ``+-inf`` logits become ``+-s``
        (a ``-inf`` is then no longer a masked class).  Default: no capping.
    axis : int, optional
        The class axis.  None is PyTorch's convention: 0 for 1-D input, 1
        otherwise.  Any axis may be named, e.g. ``-1`` for ``(batch, seq,
        vocab)`` logits, and is read in place (no transposed copy).
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, computed in the same pass.  True or False (a NumPy bool
        too); anything else is a TypeError.
    grad_output : array_like, optional
        The upstream gradient that the returned gradient is multiplied by
        (with ``return_grad=True`` only).  For "mean" and "sum", a scalar.  For
        "none", an array of the loss's shape, and the returned gradient is
        that of ``sum(grad_output * loss)``.  Default: 1 (ones for "none").
    out : ndarray or pair of ndarrays, optional
        Receives the gradient (with ``return_grad=True`` only), returned as
        ``grad``: ``input``'s shape and dtype, C-contiguous and writeable.  It
        must not share memory with any argument, whatever object the argument
        came in as (an array, a view of one, a tensor).  An ndarray subclass
        such as ``np.memmap`` is written through and returned.  Nothing is
        written to it unless every argument passes its checks.  With
        ``return_hessian=True``, a pair ``(grad_out, hess_out)`` (either may
        be None) receiving the gradient and the Hessian's diagonal.
    n_threads : int, optional
        Threads for this call, at least 1 (default:
        :func:`fastxent.get_num_threads`).  The results do not depend on it:
        they are bitwise identical for every thread count.
    sample_weight : array_like, optional
        A non-negative weight per sample position, ``sw`` in Notes: shaped
        like ``input`` without its class axis (the shape of a class-index
        target).  Each sample's loss and derivatives are multiplied by it and
        "mean" divides by the summed weight of the kept samples, so that
        integer weights are the same as repeating samples.  Read in float64
        and never copied to ``input``'s shape.  A negative, NaN or infinite
        weight is a ValueError.  Default: 1 for every sample.
    return_hessian : bool, default False
        Also return the diagonal of the Hessian of the returned loss with
        respect to ``input`` (needs ``return_grad=True``), computed in the
        same pass: ``A_n * p * (1 - p)`` per sample times the gradient's
        scale (Notes).  The Newton step of a boosting library's custom
        objective, or the preconditioner of a second-order solver; for the
        whole Hessian's action, :func:`cross_entropy_hvp`.

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in ``input``'s dtype: a NumPy scalar for "mean" and "sum"
        (accumulated in float64), an array shaped like ``target`` (``input``
        without its class axis) for "none".
    grad : ndarray
        Only with ``return_grad=True``: the derivative of ``loss`` with respect
        to ``input`` (of ``sum(grad_output * loss)`` for "none"), times
        ``grad_output`` for "mean" and "sum"; ``input``'s shape and dtype.
        It is ``out`` (``out[0]``) where given.
    hess : ndarray
        Only with ``return_hessian=True``: the second derivatives
        ``d2 loss / d input[n, c]**2`` of the same loss, scaled as ``grad``;
        ``input``'s shape and dtype.  It is ``out[1]`` where given.

    Raises
    ------
    TypeError
        If ``input`` is not floating (integer, bool and complex included), if
        ``target`` is neither integer nor floating, if ``out`` is not an
        ndarray or not of ``input``'s dtype, or if an option has the wrong
        type: a bool for a number (``label_smoothing=True``, ``n_threads=True``),
        a number or string for a bool (``return_grad="no"``); if ``out`` is
        not a pair with ``return_hessian=True``.
    ValueError
        If a class index is outside ``[0, C)`` and is not ``ignore_index`` (the
        message names the value and its position); if ``target``, ``weight``,
        ``grad_output`` or ``out`` has a shape that does not fit ``input``'s
        (both shapes named); if ``reduction`` is unknown, ``label_smoothing``
        outside ``[0, 1]``, ``z_loss`` negative or not finite, ``softcap`` not
        above 0 or not finite, ``axis`` out of range or ``n_threads`` below 1;
        if ``out`` is not C-contiguous, not writeable or overlaps an argument;
        if ``grad_output`` or ``out`` is given without ``return_grad=True``; if
        ``sample_weight`` has the wrong shape or a negative or non-finite
        value (the message names it and its position); if
        ``return_hessian=True`` comes without ``return_grad=True``, or with
        ``z_loss`` or ``softcap`` (not implemented).

    See Also
    --------
    nll_loss : The same loss from log-probabilities.
    cross_entropy_hvp : The Hessian of the same loss times a vector.
    linear_cross_entropy : The loss of ``hidden @ weight.T + bias`` without holding the logits.
    log_softmax : The log-probabilities the loss is made of.
    CrossEntropyLoss : This function with its options kept as attributes.
    fastxent.torch.cross_entropy : For PyTorch tensors, with autograd.

    Notes
    -----
    Let ``lp = log_softmax(input)`` along the class axis, ``p = exp(lp)``,
    ``n`` run over the sample positions (every index but the class one),
    ``w_c = weight[c]`` (1 without ``weight``) and ``eps = label_smoothing``.

    Class indices ``y``: the loss of position ``n`` is ::

        loss_n = (1 - eps) * (-w[y_n] * lp[n, y_n]) + (eps / C) * sum_c (-w_c * lp[n, c])

    (0 where ``y_n == ignore_index``) and its gradient ::

        d loss_n / d input[n, c] = M_n * p[n, c] - (1 - eps) * w[y_n] * [c == y_n] - (eps / C) * w_c
        M_n = (1 - eps) * w[y_n] + (eps / C) * sum_c w_c

    (``[c == y_n]`` is 1 at the target class, else 0; the gradient row is 0
    where the target is ignored).  "mean" divides both by ``sum_n w[y_n]``
    over the positions not ignored.

    Class probabilities ``t``, with ``q = (1 - eps) * t + eps / C``::

        loss_n = -sum_c w_c * q[n, c] * lp[n, c]
        d loss_n / d input[n, c] = (sum_k w_k * q[n, k]) * p[n, c] - w_c * q[n, c]

    "mean" divides both by the number of sample positions.  These are
    PyTorch's formulas; the values agree with PyTorch to a few ulp (about 1e-13
    relative in float64), not bit for bit.

    Sample weights ``sw_n`` multiply ``loss_n`` and its derivatives; "mean"
    then divides by ``sum_n sw_n * w[y_n]`` over the kept positions (class
    indices) or ``sum_n sw_n`` (probabilities).  The targets' terms of the
    gradient do not depend on ``input``, so the Hessian of ``loss_n`` is
    ``A_n * (diag(p_n) - p_n p_n^T)`` with ``A_n`` the sample's total target
    mass (``M_n`` above, or ``sum_k w_k * q[n, k]``); ``return_hessian``
    returns its diagonal ::

        d2 loss_n / d input[n, c]**2 = A_n * p[n, c] * (1 - p[n, c])

    times ``sw_n``, ``grad_output`` and the mean's divisor, like the gradient.

    With ``softcap`` ``s``, ``input`` stands for ``s * tanh(input / s)`` in all
    of the above, and the gradient is multiplied by the cap's derivative
    ``1 - tanh(input / s) ** 2``.  With ``z_loss`` ``z``, each position ``n``
    whose target is kept (every position for probabilities) adds ::

        z * lse_n ** 2          to loss_n,  lse_n = logsumexp(input[n, :])
        2 * z * lse_n * p[n, c] to its gradient

    with the same "mean" denominator (and times ``sw_n``): this is the PyTorch
    expression ``F.cross_entropy(softcap * torch.tanh(x / softcap), ...,
    reduction="none") + z_loss * torch.logsumexp(...) ** 2`` over the kept
    positions, reduced as above.  Both are done in the same pass (the cap
    where the logits are read); at their defaults the kernels run without
    them.  ``return_hessian`` does not take them (not implemented).

    The loss and gradient of a row come from one pass: its maximum, its sum of
    exponentials, its loss, then the gradient in place.  Sums accumulate in
    float64 whatever the input's dtype, in blocks that depend on the shape
    only, added in block order: the result is the same for every
    ``n_threads``.  The GIL is released during the computation.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logits = np.array([[2.0, 0.5, -1.0],
    ...                    [0.0, 1.0, 0.0]])
    >>> round(float(fastxent.cross_entropy(logits, [0, 1])), 4)
    0.3964

    The loss and its gradient in one pass; the gradient of the mean is that of
    each row divided by the number of rows:

    >>> loss, grad = fastxent.cross_entropy(logits, [0, 1], return_grad=True)
    >>> grad.round(4)
    array([[-0.1072,  0.0876,  0.0196],
           [ 0.106 , -0.2119,  0.106 ]])

    Class weights, an ignored target and the per-sample losses:

    >>> fastxent.cross_entropy(logits, [0, -100], weight=[1.0, 2.0, 3.0],
    ...                        reduction="none").round(4)
    array([0.2413, 0.    ])

    Class probabilities (which need not sum to 1) and label smoothing:

    >>> round(float(fastxent.cross_entropy(logits, [[0.9, 0.1, 0.0], [0.0, 0.5, 0.5]],
    ...                                    label_smoothing=0.1)), 4)
    0.7972

    A language model's recipe: logits soft-capped at 1.0 (Gemma 2 uses 30.0)
    and a z-loss (PaLM uses 1e-4):

    >>> round(float(fastxent.cross_entropy(logits, [0, 1], z_loss=1e-2, softcap=1.0)), 4)
    0.641

    ``(batch, seq, vocab)`` logits with the class axis last, and a gradient
    buffer reused from step to step:

    >>> x = np.zeros((2, 5, 7), np.float32)
    >>> y = np.zeros((2, 5), np.int32)
    >>> buf = np.empty_like(x)
    >>> loss, grad = fastxent.cross_entropy(x, y, axis=-1, return_grad=True, out=buf)
    >>> loss.dtype, grad is buf
    (dtype('float32'), True)

    Sample weights (an integer weight counts a sample that many times) and
    the Hessian's diagonal, as a boosting library's custom objective takes:

    >>> loss, grad, hess = fastxent.cross_entropy(logits, [0, 1], sample_weight=[2.0, 1.0],
    ...                                           reduction="sum", return_grad=True,
    ...                                           return_hessian=True)
    >>> round(float(loss), 4)
    1.0341
    >>> hess.round(4)
    array([[0.3369, 0.2891, 0.0752],
           [0.167 , 0.2442, 0.167 ]])
    """
    if (grad_output is None and out is None and axis is None and n_threads is None
            and sample_weight is None and return_hessian is False and softcap is None
            and type(z_loss) is float and z_loss == 0.0):
        res = _fast_xent(input, target, weight, ignore_index, reduction, label_smoothing,
                         return_grad)
        if res is not None:
            return res
    return _multiclass("xent", input, target, _args.class_weight_option(weight),
                       _args.check_int64(ignore_index, "ignore_index"), _args.check_reduction(reduction),
                       _args.check_label_smoothing(label_smoothing), _args.axis_option(axis),
                       _args.check_bool(return_grad, "return_grad"), grad_output, out,
                       _args.threads_option(n_threads), sample_weight,
                       # (the common False without a call: small calls cost microseconds)
                       False if return_hessian is False else
                       _args.check_bool(return_hessian, "return_hessian"), None,
                       _args.check_z_loss(z_loss), _args.softcap_option(softcap))


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
             out: Array | None = None, n_threads: int | None = None,
             sample_weight: ArrayInput | None = None) -> Loss | LossAndGrad:
    """Negative log-likelihood of log-probabilities, as ``torch.nn.functional.nll_loss``.

    The loss of a sample position is minus the (weighted) entry of ``input`` at
    its target class: ``-w[y] * input[n, y]``.  ``input`` is expected to hold
    log-probabilities, e.g. from :func:`log_softmax`, so that
    ``nll_loss(log_softmax(x), y)`` equals ``cross_entropy(x, y)``; nothing
    checks that it does.  With ``return_grad=True`` the gradient with respect
    to ``input`` is computed in the same pass.

    Parameters
    ----------
    input : array_like, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Log-probabilities: float32 or float64, or float16 (computed in float32,
        results returned as float16).  Anything ``np.asarray`` accepts; a
        C-contiguous float32 or float64 array, or a tensor over one, is read in
        place.  Only the entries at the target classes are read.
    target : array_like of int
        Class indices: any integer dtype, ``input``'s shape without the class
        axis, each in ``[0, C)`` or equal to ``ignore_index``.  A floating
        target is a TypeError (``nll_loss`` takes no class probabilities).
    weight : array_like, shape (C,), optional
        A weight per class, ``w`` in the formula (default: 1 for every class).
    ignore_index : int, default -100
        A target equal to it adds neither loss nor gradient and is left out of
        the "mean" denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the per-sample losses, shaped like ``target``.  "sum": their
        sum.  "mean": their sum divided by ``sum_n sw_n * w[y_n]`` over the
        targets that are not ``ignore_index`` (``sw`` the sample weights, 1
        without; their count without either weight); NaN where that is 0
        (every target ignored or of weight 0, or an empty input), as in
        PyTorch.
    axis : int, optional
        The class axis.  None is PyTorch's convention: 0 for 1-D input, 1
        otherwise.  Any axis may be named, e.g. ``-1``, and is read in place.
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, computed in the same pass.  True or False (a NumPy bool
        too); anything else is a TypeError.
    grad_output : array_like, optional
        The upstream gradient that the returned gradient is multiplied by
        (with ``return_grad=True`` only).  For "mean" and "sum", a scalar.  For
        "none", an array of the loss's shape, and the returned gradient is
        that of ``sum(grad_output * loss)``.  Default: 1 (ones for "none").
    out : ndarray, optional
        Receives the gradient (with ``return_grad=True`` only), returned as
        ``grad``: ``input``'s shape and dtype, C-contiguous, writeable, and
        sharing memory with no argument.  Nothing is written to it unless
        every argument passes its checks.
    n_threads : int, optional
        Threads for this call, at least 1 (default:
        :func:`fastxent.get_num_threads`).  The results are bitwise identical
        for every thread count.
    sample_weight : array_like, optional
        A non-negative weight per sample position, ``target``'s shape: it
        multiplies each sample's loss and gradient, and "mean" divides by the
        summed weight of the kept samples (integer weights are the same as
        repeating samples).  A negative, NaN or infinite weight is a
        ValueError.  Default: 1 for every sample.

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in ``input``'s dtype: a NumPy scalar for "mean" and "sum"
        (accumulated in float64), an array shaped like ``target`` for "none".
    grad : ndarray
        Only with ``return_grad=True``: the derivative of ``loss`` with respect
        to ``input`` (of ``sum(grad_output * loss)`` for "none"), times
        ``grad_output`` for "mean" and "sum"; ``input``'s shape and dtype, 0
        except at the target classes.  It is ``out`` where ``out`` is given.

    Raises
    ------
    TypeError
        If ``input`` is not floating, if ``target`` is not integer (a floating
        target included), if ``out`` is not an ndarray or not of ``input``'s
        dtype, or if an option has the wrong type (a bool for a number, a
        number or string for a bool).
    ValueError
        If a class index is outside ``[0, C)`` and is not ``ignore_index`` (the
        message names the value and its position); if ``target``, ``weight``,
        ``grad_output`` or ``out`` has a shape that does not fit ``input``'s;
        if ``reduction`` is unknown, ``axis`` out of range or ``n_threads``
        below 1; if ``out`` is not C-contiguous, not writeable or overlaps an
        argument; if ``grad_output`` or ``out`` is given without
        ``return_grad=True``; if ``sample_weight`` has the wrong shape or a
        negative or non-finite value.

    See Also
    --------
    cross_entropy : The same loss from logits, with label smoothing and probability targets.
    log_softmax : Log-probabilities from logits.
    NLLLoss : This function with its options kept as attributes.
    fastxent.torch.nll_loss : For PyTorch tensors, with autograd.

    Notes
    -----
    With ``w_c = weight[c]`` (1 without ``weight``) and ``n`` running over the
    sample positions (every index but the class one)::

        loss_n = -w[y_n] * input[n, y_n]                   (0 where y_n == ignore_index)
        d loss_n / d input[n, c] = -w[y_n] * [c == y_n]     (1 at the target class, else 0)

    "mean" divides both by ``sum_n w[y_n]`` over the positions not ignored.
    These are PyTorch's formulas.  Sample weights ``sw_n`` multiply both, and
    the "mean" then divides by ``sum_n sw_n * w[y_n]``.  Sums accumulate in float64 in an order that
    does not depend on ``n_threads``.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logp = np.log([[0.7, 0.2, 0.1],
    ...                [0.1, 0.6, 0.3]])
    >>> round(float(fastxent.nll_loss(logp, [0, 2])), 4)
    0.7803

    With its gradient, which is ``-1 / N`` at each target for "mean":

    >>> loss, grad = fastxent.nll_loss(logp, [0, 2], return_grad=True)
    >>> grad
    array([[-0.5,  0. ,  0. ],
           [ 0. ,  0. , -0.5]])

    Class weights and the per-sample losses:

    >>> fastxent.nll_loss(logp, [0, 2], weight=[1.0, 1.0, 4.0], reduction="none").round(4)
    array([0.3567, 4.8159])

    A sample weight of 2 counts the first sample twice:

    >>> bool(np.isclose(fastxent.nll_loss(logp, [0, 2], sample_weight=[2, 1]),
    ...                 fastxent.nll_loss(logp[[0, 0, 1]], [0, 0, 2])))
    True

    From logits, through :func:`log_softmax`, it is :func:`cross_entropy`:

    >>> x = np.array([[0.0, 1.0, 2.0, 3.0]])
    >>> bool(np.isclose(fastxent.nll_loss(fastxent.log_softmax(x), [3]),
    ...                 fastxent.cross_entropy(x, [3])))
    True
    """
    return _multiclass("nll", input, target, _args.class_weight_option(weight),
                       _args.check_int64(ignore_index, "ignore_index"), _args.check_reduction(reduction),
                       0.0, _args.axis_option(axis), _args.check_bool(return_grad, "return_grad"),
                       grad_output, out, _args.threads_option(n_threads), sample_weight)


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
        # the weights are read in the same sweep as x, laid out alike
        kernels.lse_family(x=flat, n_outer=lay.n_outer, C=lay.C, inner=lay.inner, mode=mode,
                           b=None if w is None else _lse.for_kernels(w, lay), lse_out=res,
                           sign_out=sign, out=None, n_threads=nt)
        shape = _lse.reduced_shape(a.shape, axes, keepdims)
        results = tuple(_lse_result(r.reshape(shape), result_dtype) for r in (res, sign)
                        if r is not None)
        return results if return_sign else results[0]
    buf, copy_to, result = _args.grad_buffer(out, a.shape, result_dtype, a.dtype, (xv, a))
    if lay.perm is None:
        kernels.lse_family(x=flat, n_outer=lay.n_outer, C=lay.C, inner=lay.inner, mode=mode,
                           b=None, lse_out=None, sign_out=None, out=buf.reshape(-1), n_threads=nt)
    else:                                # the reduced axes were moved last: move them back
        moved = np.empty(a.size, dtype=a.dtype)
        kernels.lse_family(x=flat, n_outer=lay.n_outer, C=lay.C, inner=lay.inner, mode=mode,
                           b=None, lse_out=None, sign_out=None, out=moved, n_threads=nt)
        np.copyto(buf, _lse.from_kernels(moved, a.shape, lay))
    if out is not None:
        return _args.finish_grad(buf, copy_to, result, result_dtype)
    return _lse_result(buf, result_dtype)


def _lse_result(res, result_dtype):
    """A result in the caller's dtype; a 0-d result as a NumPy scalar, as SciPy."""
    if res.dtype != result_dtype:
        res = _args.as_result(res, result_dtype)
    return res if res.ndim else res[()]


@overload
def logsumexp(x: ArrayInput, axis: int | tuple[int, ...] | None = ..., keepdims: bool = ...,
              n_threads: int | None = ..., *, b: ArrayInput | None = ...,
              return_sign: Literal[False] = ...) -> Scalar | Array: ...
@overload
def logsumexp(x: ArrayInput, axis: int | tuple[int, ...] | None = ..., keepdims: bool = ...,
              n_threads: int | None = ..., *, b: ArrayInput | None = ...,
              return_sign: Literal[True]) -> tuple[Scalar | Array, Scalar | Array]: ...
@overload
def logsumexp(x: ArrayInput, axis: int | tuple[int, ...] | None = ..., keepdims: bool = ...,
              n_threads: int | None = ..., *, b: ArrayInput | None = ...,
              return_sign: bool = ...) -> Scalar | Array | tuple[Scalar | Array, Scalar | Array]: ...
def logsumexp(x: ArrayInput, axis: int | tuple[int, ...] | None = -1, keepdims: bool = False,
              n_threads: int | None = None, *, b: ArrayInput | None = None,
              return_sign: bool = False) -> Scalar | Array | tuple[Scalar | Array, Scalar | Array]:
    """``log(sum(b * exp(x)))`` along ``axis``, stable for any finite input, as ``scipy.special.logsumexp``.

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
    b : array_like, optional
        Weights of the exponentials, broadcast against ``x`` (real numbers of
        any sign).  A zero weight leaves its term out, even where ``x`` is
        inf or NaN.  Read in the same sweep as ``x``: the weighted terms are
        never stored.
    return_sign : bool, default False
        Also return the sign of the sum.  Without it, a negative sum gives NaN.

    Returns
    -------
    lse : NumPy scalar or ndarray
        ``log(|sum(b * exp(x))|)``, shaped like ``x`` without the reduced axes
        (or with them of length 1, for ``keepdims``); a NumPy scalar where
        that shape is ``()``.  Its dtype is SciPy's: ``x``'s and ``b``'s
        promoted, float64 where that is an integer dtype.  An empty sum gives
        ``-inf``.
    sign : NumPy scalar or ndarray
        Only with ``return_sign=True``: the sign of the sum, 1.0, -1.0, 0.0
        (a sum of 0, empty sums included) or NaN, shaped and typed like ``lse``.

    Raises
    ------
    TypeError
        If ``x`` or ``b`` is complex or not a number array, if ``axis`` is
        not an integer, a tuple of them or None, or if ``keepdims`` or
        ``return_sign`` is not a bool.
    ValueError
        If ``b`` does not broadcast against ``x``, or an axis is out of range
        or named twice.

    See Also
    --------
    softmax : The gradient of ``logsumexp``.
    scipy.special.logsumexp : The reference for these conventions.

    Notes
    -----
    With ``M`` the largest ``x`` of nonzero weight, the kernel sums
    ``b * exp(x - M)`` in float64 in one sweep of ``x`` and ``b``, the terms
    at ``M`` apart from the others, so that a result near 0 keeps its
    relative precision (``log|top| + log1p(rest / top)``).  Where SciPy's
    result differs, the differences are listed in ``tests/external/DIFFERENCES.md``:
    the sign of an empty sum is 0 (SciPy: -1), a zero weight always hides an
    inf or NaN ``x``, and sums whose largest weighted terms cancel do not
    overflow.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> float(fastxent.logsumexp(np.array([1000., 1000.])))  # no overflow
    1000.6931471805599
    >>> fastxent.logsumexp(np.zeros((2, 3, 4)), axis=(0, 2)).shape
    (3,)
    >>> float(fastxent.logsumexp([1, 2, 3], axis=None))      # integers: float64
    3.4076059644443806

    Weights, negative ones included, and the sign of the sum:

    >>> x = np.array([1.0, 2.0])
    >>> float(fastxent.logsumexp(x, b=[2.0, 0.5]))            # log(2 e + e^2 / 2)
    2.2116852609945026
    >>> lse, sign = fastxent.logsumexp(x, b=[1.0, -1.0], return_sign=True)
    >>> round(float(lse), 6), float(sign)                     # e - e^2 < 0
    (1.541325, -1.0)

    A zero weight masks its entry, whatever its value:

    >>> round(float(fastxent.logsumexp([np.log(2.0), np.inf, np.log(3.0)], b=[1, 0, 1])), 12)
    1.609437912434
    """
    if keepdims is False and n_threads is None and b is None and return_sign is False:
        res = _fast_lse(x, axis, _LSE)
        if res is not None:
            return res
    return _lse_family(kernels.LSE, x, axis, keepdims, b=b, return_sign=return_sign,
                       n_threads=n_threads)


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
    if out is None and n_threads is None:
        res = _fast_lse(x, axis, _SOFTMAX)
        if res is not None:
            return res
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
    if out is None and n_threads is None:
        res = _fast_lse(x, axis, _LOG_SOFTMAX)
        if res is not None:
            return res
    return _lse_family(kernels.LOG_SOFTMAX, x, axis, out=out, n_threads=n_threads)
