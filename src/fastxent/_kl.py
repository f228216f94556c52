"""The Kullback-Leibler family: kl_div (PyTorch's) and distillation_loss (from logits)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from . import _args
from ._kernels import kernels, resolve_threads

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import (Array, ArrayInput, DistillationOptions, KLDivOptions, KLReduced,
                          KLReduction, Loss, LossAndGrad, Scalar)


def _kl_div(input, target, reduction, log_target, return_grad, grad_output, out, n_threads):
    """kl_div with checked options (``_args``' option checks, per call from the
    function, once per assignment from KLDivLoss): one kernel call."""
    xv, x, result_dtype = _args.read_input(input)
    nt = resolve_threads(n_threads)
    tv = _args.real_array(target, "target")
    if tv.shape != x.shape:
        raise ValueError(f"target must have the input's shape {x.shape}, got target {tv.shape}")
    t = _args.as_real_array(tv, x.dtype)
    denom = _args.kl_denominator(reduction, x.shape, x.size)
    red = "mean" if reduction == "batchmean" else reduction      # a sum over denom
    g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, out, red, x.shape, denom,
                                             x, result_dtype, (xv, x, tv, t))
    loss_out = np.empty(x.shape, dtype=x.dtype) if reduction == "none" else None
    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731  (views, no copies)
    total = kernels.kl_div(x=flat(x), t=flat(t), log_target=log_target, loss_out=flat(loss_out),
                           grad=flat(g), gout=gout, gscale=gscale, n_threads=nt)
    return _args.finish(total, loss_out, denom, red, result_dtype, g, grad)


@overload
def kl_div(input: ArrayInput, target: ArrayInput, *, reduction: KLReduced = ...,
           return_grad: Literal[False] = ..., **options: Unpack[KLDivOptions]) -> Scalar: ...
@overload
def kl_div(input: ArrayInput, target: ArrayInput, *, reduction: Literal["none"],
           return_grad: Literal[False] = ..., **options: Unpack[KLDivOptions]) -> Array: ...
@overload
def kl_div(input: ArrayInput, target: ArrayInput, *, reduction: KLReduced = ...,
           return_grad: Literal[True], **options: Unpack[KLDivOptions]) -> tuple[Scalar, Array]: ...
@overload
def kl_div(input: ArrayInput, target: ArrayInput, *, reduction: Literal["none"],
           return_grad: Literal[True], **options: Unpack[KLDivOptions]) -> tuple[Array, Array]: ...
@overload
def kl_div(input: ArrayInput, target: ArrayInput, *, reduction: KLReduction = ...,
           return_grad: bool = ..., **options: Unpack[KLDivOptions]) -> Loss | LossAndGrad: ...
def kl_div(input: ArrayInput, target: ArrayInput, *, reduction: KLReduction = "mean",
           log_target: bool = False, return_grad: bool = False,
           grad_output: ArrayInput | None = None, out: Array | None = None,
           n_threads: int | None = None) -> Loss | LossAndGrad:
    """The Kullback-Leibler divergence, as ``torch.nn.functional.kl_div``.

    Elementwise ``target * (log(target) - input)`` for log-probabilities
    ``input`` and probabilities ``target`` of the same shape, with the
    convention ``0 * log(0) = 0``; with ``log_target=True`` the target holds
    log-probabilities, ``exp(target) * (target - input)``.  Summed over a
    distribution (``reduction="batchmean"`` for a batch of them), it is
    ``KL(target || exp(input))``.  With ``return_grad=True`` the gradient with
    respect to ``input`` is computed in the same pass.

    Parameters
    ----------
    input : array_like
        Log-probabilities, any shape (e.g. from :func:`fastxent.log_softmax`):
        float32 or float64, or float16 (computed in float32, results returned
        as float16).
    target : array_like
        Probabilities (log-probabilities with ``log_target``) with ``input``'s
        shape, any real dtype (converted to ``input``'s).  Not checked, as in
        PyTorch: a negative probability gives NaN.
    reduction : {"mean", "batchmean", "sum", "none"}, default "mean"
        "none": the elementwise losses, ``input``'s shape.  "sum": their sum.
        "batchmean": their sum divided by ``input.shape[0]`` (the batch size;
        the sum for a 0-d input): the mean KL divergence of the batch's
        distributions.  "mean": their sum divided by the number of elements,
        PyTorch's default, which is not the KL divergence (PyTorch warns about
        it on every call; fastxent does not warn).
    log_target : bool, default False
        ``target`` holds log-probabilities: finite where a probability would
        underflow to 0.
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``input``, computed in the same pass.  True or False (a NumPy bool
        too); anything else is a TypeError.
    grad_output : array_like, optional
        The upstream gradient that the returned gradient is multiplied by
        (with ``return_grad=True`` only).  For the reduced losses, a scalar.
        For "none", an array of ``input``'s shape, and the returned gradient is
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

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in ``input``'s dtype: a NumPy scalar for the reduced losses
        (accumulated in float64), an array of ``input``'s shape for "none".
    grad : ndarray
        Only with ``return_grad=True``: the derivative of ``loss`` with respect
        to ``input`` (of ``sum(grad_output * loss)`` for "none"), times
        ``grad_output`` for the reduced losses; ``input``'s shape and dtype.
        It is ``out`` where ``out`` is given.

    Raises
    ------
    TypeError
        If ``input`` is not floating (integer and bool included), if
        ``target`` is not real, if ``out`` is not an ndarray or not of
        ``input``'s dtype, or if an option has the wrong type (a bool for a
        number, a number or string for a bool).
    ValueError
        If ``target``'s shape is not ``input``'s (no broadcasting), or
        ``grad_output`` or ``out`` does not fit it; if ``reduction`` is
        unknown or ``n_threads`` below 1; if ``out`` is not C-contiguous, not
        writeable or overlaps an argument; if ``grad_output`` or ``out`` is
        given without ``return_grad=True``.

    See Also
    --------
    distillation_loss : The KL divergence between two sets of logits, with a temperature.
    KLDivLoss : This function with its options kept as attributes.
    log_softmax : Log-probabilities from logits.

    Notes
    -----
    Elementwise, with ``x`` the input and ``t`` the target::

        loss = xlogy(t, t) - t * x,     d loss / d x = -t          (log_target=False)
        loss = exp(t) * (t - x),        d loss / d x = -exp(t)     (log_target=True)

    ``xlogy(0, 0) = 0``: a target of 0 adds 0 (NaN where ``x`` is infinite
    or NaN, ``0 * x``, as in PyTorch).  These are PyTorch's formulas; the
    values agree with PyTorch to a few ulp.  Unlike PyTorch, ``target`` does
    not broadcast to ``input``, and the gradient is with respect to ``input``
    only.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logp = np.log([[0.7, 0.2, 0.1],
    ...                [0.1, 0.6, 0.3]])
    >>> target = np.array([[0.5, 0.5, 0.0],
    ...                    [0.2, 0.5, 0.3]])
    >>> round(float(fastxent.kl_div(logp, target, reduction="batchmean")), 4)
    0.1687

    The elementwise losses (a target of 0 adds 0) and the gradient of the
    "batchmean":

    >>> fastxent.kl_div(logp, target, reduction="none").round(4)
    array([[-0.1682,  0.4581,  0.    ],
           [ 0.1386, -0.0912,  0.    ]])
    >>> loss, grad = fastxent.kl_div(logp, target, reduction="batchmean", return_grad=True)
    >>> grad
    array([[-0.25, -0.25, -0.  ],
           [-0.1 , -0.25, -0.15]])

    With the target given as log-probabilities:

    >>> round(float(fastxent.kl_div(logp, np.log(target[1:]).repeat(2, 0), reduction="sum",
    ...                             log_target=True)), 4)
    0.5846
    """
    return _kl_div(input, target, _args.check_kl_reduction(reduction),
                   _args.check_bool(log_target, "log_target"),
                   _args.check_bool(return_grad, "return_grad"), grad_output, out,
                   _args.threads_option(n_threads))


def _distillation(student_logits, teacher_logits, temperature, axis, reduction, return_grad,
                  grad_output, out, n_threads):
    """distillation_loss with checked options: one kernel call."""
    sv, s, result_dtype = _args.read_input(student_logits, "student_logits")
    nt = resolve_threads(n_threads)
    if s.ndim == 0:
        raise ValueError("student_logits must have at least one dimension (the class axis), "
                         "got a 0-d array")
    ax = _args.class_axis(axis, s.ndim)
    tv = _args.real_array(teacher_logits, "teacher_logits")
    if tv.shape != s.shape:
        raise ValueError(f"teacher_logits must have the shape of student_logits {s.shape}, "
                         f"got teacher_logits {tv.shape}")
    t = _args.as_real_array(tv, s.dtype)
    n_outer, C, inner = _args.split_shape(s.shape, ax)
    denom = _args.kl_denominator(reduction, s.shape, s.size)
    red = "mean" if reduction == "batchmean" else reduction
    g, grad, gout, gscale = _args.grad_setup(return_grad, grad_output, out, red, s.shape, denom,
                                             s, result_dtype, (sv, s, tv, t))
    loss_out = np.empty(s.shape, dtype=s.dtype) if reduction == "none" else None
    flat = lambda a: None if a is None else a.reshape(-1)  # noqa: E731  (views, no copies)
    total = kernels.distill(s=flat(s), t=flat(t), n_outer=n_outer, C=C, inner=inner,
                            temperature=temperature, loss_out=flat(loss_out), grad=flat(g),
                            gout=gout, gscale=gscale, n_threads=nt)
    return _args.finish(total, loss_out, denom, red, result_dtype, g, grad)


@overload
def distillation_loss(student_logits: ArrayInput, teacher_logits: ArrayInput, *,
                      reduction: KLReduced = ..., return_grad: Literal[False] = ...,
                      **options: Unpack[DistillationOptions]) -> Scalar: ...
@overload
def distillation_loss(student_logits: ArrayInput, teacher_logits: ArrayInput, *,
                      reduction: Literal["none"], return_grad: Literal[False] = ...,
                      **options: Unpack[DistillationOptions]) -> Array: ...
@overload
def distillation_loss(student_logits: ArrayInput, teacher_logits: ArrayInput, *,
                      reduction: KLReduced = ..., return_grad: Literal[True],
                      **options: Unpack[DistillationOptions]) -> tuple[Scalar, Array]: ...
@overload
def distillation_loss(student_logits: ArrayInput, teacher_logits: ArrayInput, *,
                      reduction: Literal["none"], return_grad: Literal[True],
                      **options: Unpack[DistillationOptions]) -> tuple[Array, Array]: ...
@overload
def distillation_loss(student_logits: ArrayInput, teacher_logits: ArrayInput, *,
                      reduction: KLReduction = ..., return_grad: bool = ...,
                      **options: Unpack[DistillationOptions]) -> Loss | LossAndGrad: ...
def distillation_loss(student_logits: ArrayInput, teacher_logits: ArrayInput, *,
                      temperature: float = 1.0, axis: int | None = None,
                      reduction: KLReduction = "batchmean", return_grad: bool = False,
                      grad_output: ArrayInput | None = None, out: Array | None = None,
                      n_threads: int | None = None) -> Loss | LossAndGrad:
    """Knowledge distillation's loss: the KL divergence of softened distributions, from logits.

    ``T**2 * KL(softmax(teacher / T) || softmax(student / T))`` per sample,
    the divergence of the student's softened distribution from the
    teacher's, scaled by ``T**2`` so that its gradient keeps its size as the
    temperature ``T`` changes (Hinton et al., 2015).  It is PyTorch's recipe

    ``F.kl_div(F.log_softmax(s / T, dim), F.log_softmax(t / T, dim),
    reduction=reduction, log_target=True) * T**2``

    in one fused pass: per sample, both log-softmaxes and, with
    ``return_grad=True``, the gradient with respect to the student's logits,
    without forming either distribution in memory.

    Parameters
    ----------
    student_logits : array_like
        The student's logits ``s``, shape ``(C,)``, ``(N, C)`` or
        ``(N, C, d1, ..., dk)``, the class axis where ``axis`` says: float32
        or float64, or float16 (computed in float32, results returned as
        float16).
    teacher_logits : array_like
        The teacher's logits ``t``, ``student_logits``' shape, any real dtype
        (converted to the student's).  No gradient is computed for them.
    temperature : float, default 1.0
        ``T``, a finite number > 0: both sets of logits are divided by it.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else
        1).  ``axis=-1`` for ``(batch, seq, vocab)`` logits, with no copy.
    reduction : {"batchmean", "sum", "mean", "none"}, default "batchmean"
        As for :func:`kl_div`, on the elementwise terms
        ``T**2 * p_t * (log p_t - log p_s)``: "none" returns them (the input's
        shape; sum them over ``axis`` for each sample's divergence); "sum"
        their sum; "batchmean" the sum divided by ``student_logits.shape[0]``
        (the mean divergence per sample for ``(N, C)`` logits; for
        ``(N, S, V)`` logits with ``axis=-1``, per sequence, as PyTorch's
        recipe gives); "mean" the sum divided by the number of elements.
    return_grad : bool, default False
        Also return the gradient of the returned loss with respect to
        ``student_logits``, computed in the same pass.
    grad_output : array_like, optional
        The upstream gradient that the returned gradient is multiplied by
        (with ``return_grad=True`` only).  For the reduced losses, a scalar.
        For "none", an array of the input's shape, and the returned gradient
        is that of ``sum(grad_output * loss)``.  Default: 1 (ones for "none").
    out : ndarray, optional
        Receives the gradient (with ``return_grad=True`` only), returned as
        ``grad``: the student's shape and dtype, C-contiguous, writeable, and
        sharing memory with no argument.
    n_threads : int, optional
        Threads for this call, at least 1 (default:
        :func:`fastxent.get_num_threads`).  The results are bitwise identical
        for every thread count.

    Returns
    -------
    loss : numpy scalar or ndarray
        The loss in the student's dtype: a NumPy scalar for the reduced
        losses (accumulated in float64), an array of the input's shape for
        "none".
    grad : ndarray
        Only with ``return_grad=True``: the derivative of ``loss`` with
        respect to ``student_logits`` (of ``sum(grad_output * loss)`` for
        "none"), times ``grad_output`` for the reduced losses.  It is ``out``
        where ``out`` is given.

    Raises
    ------
    TypeError
        If ``student_logits`` is not floating, ``teacher_logits`` not real,
        ``out`` not an ndarray of the student's dtype, or an option of the
        wrong type (a bool or a string for ``temperature``, a non-integer
        ``axis``).
    ValueError
        If the two shapes differ, ``student_logits`` is 0-d, ``axis`` is out
        of range, ``temperature`` is not a finite number > 0, ``reduction``
        is unknown, ``n_threads`` below 1, or ``grad_output`` or ``out`` does
        not fit (as for :func:`kl_div`).

    See Also
    --------
    kl_div : The divergence of given log-probabilities.
    cross_entropy : With ``target`` the teacher's probabilities, the same
        gradient at ``T = 1`` (the two losses differ by the teacher's entropy).

    Notes
    -----
    With ``a = 1 / T``, ``p_s = softmax(a s)`` and ``p_t = softmax(a t)``
    along the class axis, per sample::

        loss = T**2 * sum_c p_t,c * (log p_t,c - log p_s,c)
        d loss / d s_c = T * (p_s,c - p_t,c)

    A class to which the teacher gives probability 0 (a logit of -inf, or
    an exponential that underflows) adds 0, whatever the student's logit:
    ``0 * log 0 = 0``, and 0 times a student's -inf log-probability is taken
    as 0 too, where PyTorch's recipe gives NaN.  A sample whose student or
    teacher logits hold a NaN or a +inf, or only -inf, has NaN loss and
    gradient, as ``log_softmax`` gives in PyTorch.  An empty class axis
    gives 0.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> student = np.array([[2.0, 1.0, 0.1],
    ...                     [0.5, 2.5, 0.3]])
    >>> teacher = np.array([[3.0, 0.5, 0.2],
    ...                     [0.1, 3.0, 1.0]])
    >>> round(float(fastxent.distillation_loss(student, teacher)), 4)
    0.0774

    Softened by a temperature, with the gradient for the student:

    >>> loss, grad = fastxent.distillation_loss(student, teacher, temperature=2.0,
    ...                                         return_grad=True)
    >>> round(float(loss), 4)
    0.1331
    >>> grad.round(4)
    array([[-0.1506,  0.1174,  0.0332],
           [ 0.0699, -0.0361, -0.0339]])

    Language-model logits ``(batch, seq, vocab)``, the vocabulary last:

    >>> rng = np.random.default_rng(0)
    >>> s, t = rng.standard_normal((2, 2, 4, 50)).astype(np.float32)
    >>> per_token = fastxent.distillation_loss(s, t, axis=-1, reduction="none").sum(axis=-1)
    >>> per_token.shape
    (2, 4)
    """
    return _distillation(student_logits, teacher_logits, _args.check_temperature(temperature),
                         _args.axis_option(axis), _args.check_kl_reduction(reduction),
                         _args.check_bool(return_grad, "return_grad"), grad_output, out,
                         _args.threads_option(n_threads))
