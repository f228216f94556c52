"""cross_entropy over a slice of the classes, given each row's statistics over all of them.

When a vocabulary is split across blocks or workers (fastxent.dask's chunked
class axis, tensor-parallel logits), each holder of a slice of the classes can
compute its share of the loss and its part of the gradient once it knows each
row's log-sum-exp over all the classes.  The rows' maxima and log-sum-exps are
cheap to combine exactly from the slices' own (see fastxent._dask_vocab); this
module is the second step, one call of cross-entropy's own kernel with those
statistics in place of the slice's (``fx_xent_args.row_max`` and friends), so
that the formulas stay in ``fx_xent_finish``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from . import _args
from ._multiclass import _multiclass

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._typing import (Array, ArrayInput, ClassSliceOptions, Loss, LossAndGrad, Reduced,
                          Reduction, Scalar)


class ClassSlice:
    """The slice's place among all the classes and the rows' statistics over all
    of them, checked against the input by :func:`fastxent._multiclass._multiclass`."""

    def __init__(self, row_max, log_norm, class_start, num_classes, target_mass):
        self.class_start = _args.check_int64(class_start, "class_start")
        self.num_classes = _args.check_int64(num_classes, "num_classes")
        if self.class_start < 0:
            raise ValueError(f"class_start must be >= 0, got {self.class_start}")
        self.row_max = _args.real_array(row_max, "row_max")
        self.log_norm = _args.real_array(log_norm, "log_norm")
        self.target_mass = _args.real_array_option(target_mass, "target_mass")
        self.arrays = (self.row_max, self.log_norm, self.target_mass)   # what out may not overlap

    def n_classes(self, C: int) -> int:
        """All the classes, checked to hold the slice's ``C``."""
        if self.class_start + C > self.num_classes:
            raise ValueError(f"the input's {C} classes from class_start={self.class_start} do not "
                             f"fit in num_classes={self.num_classes}")
        return self.num_classes

    def kernel_args(self, sample_shape: tuple, C: int, w, probabilities: bool) -> dict:
        """The slice's keywords of ``kernels.xent_slice``."""
        per_sample = {}
        for name in ("row_max", "log_norm", "target_mass"):
            a = getattr(self, name)
            if a is None:
                continue
            if a.shape != sample_shape:
                raise ValueError(f"{name} must have the loss's shape {sample_shape} (the input "
                                 f"without its class axis), got {a.shape}")
            per_sample[name] = np.ascontiguousarray(a, dtype=np.float64).reshape(-1)
        if probabilities and self.target_mass is None:
            raise ValueError("target_mass (each sample's sum of w_c q_c over all the classes) is "
                             "required with probability targets")
        if not probabilities and self.target_mass is not None:
            raise ValueError("target_mass is for probability targets only: with class indices "
                             "it follows from the target and weight")
        c0 = self.class_start
        if w is None:
            w_sum, w_sum_all = float(C), float(self.num_classes)
        else:
            w_sum = float(w[c0:c0 + C].sum(dtype=np.float64))
            w_sum_all = float(w.sum(dtype=np.float64))
        return dict(row_max=per_sample["row_max"], log_norm=per_sample["log_norm"],
                    mass=per_sample.get("target_mass"), class_offset=c0,
                    n_classes=self.num_classes, w_sum=w_sum, w_sum_all=w_sum_all)


@overload
def cross_entropy_class_slice(input: ArrayInput, target: ArrayInput, row_max: ArrayInput,
                              log_norm: ArrayInput, weight: ArrayInput | None = ..., *,
                              class_start: int, num_classes: int,
                              target_mass: ArrayInput | None = ...,
                              reduction: Literal["none"] = ..., return_grad: Literal[False] = ...,
                              **options: Unpack[ClassSliceOptions]) -> Array: ...
@overload
def cross_entropy_class_slice(input: ArrayInput, target: ArrayInput, row_max: ArrayInput,
                              log_norm: ArrayInput, weight: ArrayInput | None = ..., *,
                              class_start: int, num_classes: int,
                              target_mass: ArrayInput | None = ..., reduction: Reduced,
                              return_grad: Literal[False] = ...,
                              **options: Unpack[ClassSliceOptions]) -> Scalar: ...
@overload
def cross_entropy_class_slice(input: ArrayInput, target: ArrayInput, row_max: ArrayInput,
                              log_norm: ArrayInput, weight: ArrayInput | None = ..., *,
                              class_start: int, num_classes: int,
                              target_mass: ArrayInput | None = ...,
                              reduction: Literal["none"] = ..., return_grad: Literal[True],
                              **options: Unpack[ClassSliceOptions]) -> tuple[Array, Array]: ...
@overload
def cross_entropy_class_slice(input: ArrayInput, target: ArrayInput, row_max: ArrayInput,
                              log_norm: ArrayInput, weight: ArrayInput | None = ..., *,
                              class_start: int, num_classes: int,
                              target_mass: ArrayInput | None = ..., reduction: Reduced,
                              return_grad: Literal[True],
                              **options: Unpack[ClassSliceOptions]) -> tuple[Scalar, Array]: ...
@overload
def cross_entropy_class_slice(input: ArrayInput, target: ArrayInput, row_max: ArrayInput,
                              log_norm: ArrayInput, weight: ArrayInput | None = ..., *,
                              class_start: int, num_classes: int,
                              target_mass: ArrayInput | None = ..., reduction: Reduction = ...,
                              return_grad: bool = ...,
                              **options: Unpack[ClassSliceOptions]) -> Loss | LossAndGrad: ...
def cross_entropy_class_slice(input: ArrayInput, target: ArrayInput, row_max: ArrayInput,
                              log_norm: ArrayInput, weight: ArrayInput | None = None, *,
                              class_start: int, num_classes: int,
                              target_mass: ArrayInput | None = None, ignore_index: int = -100,
                              label_smoothing: float = 0.0, axis: int | None = None,
                              reduction: Reduction = "none", return_grad: bool = False,
                              grad_output: ArrayInput | None = None, out: Array | None = None,
                              n_threads: int | None = None) -> Loss | LossAndGrad:
    """Cross-entropy over a slice of the classes, given each row's log-sum-exp over all of them.

    ``input`` holds the logits of the classes ``[class_start, class_start + Cs)``
    of a problem of ``num_classes`` classes; ``row_max`` and ``log_norm`` give
    each sample's log-sum-exp over all of them.  Returns the slice's terms of
    the loss, which added over the slices give :func:`cross_entropy` (for every
    reduction), and with ``return_grad=True`` the slice's columns of its
    gradient: one fused pass over the slice, by cross-entropy's own kernel.
    ``fastxent.dask`` calls it for a class axis split across chunks.

    Parameters
    ----------
    input : array_like
        The slice's logits, ``Cs`` classes along ``axis`` (float16, float32 or
        float64, as :func:`cross_entropy`).
    target : array_like
        Class indices in ``[0, num_classes)`` (or ``ignore_index``), shaped like
        ``input`` without its class axis; a target outside the slice adds its
        softmax term only.  Or the slice's class probabilities, shaped like
        ``input``.
    row_max : array_like
        Per sample (the loss's shape): the largest logit over all the classes,
        0 where it is not finite.
    log_norm : array_like
        Per sample: ``log(sum(exp(x_c - row_max)))`` over all the classes, so
        that ``row_max + log_norm`` is the sample's log-sum-exp.
    weight : array_like, shape (num_classes,), optional
        A weight per class, of all the classes (default: 1 for every class).
    class_start : int
        The global index of the slice's first class.
    num_classes : int
        The number of classes ``C`` of the whole problem, at least
        ``class_start + Cs``.
    target_mass : array_like, optional
        Probability targets only, and required with them: per sample,
        ``sum_c w_c q_c`` over all the classes (``q`` the smoothed targets, see
        Notes), which scales the softmax in the gradient.
    ignore_index : int, default -100
        A class-index target equal to it adds neither loss nor gradient.
    label_smoothing : float, default 0.0
        ``eps`` in ``[0, 1]``, spread over all ``num_classes`` classes.
    axis : int, optional
        The class axis, as :func:`cross_entropy` (None: 0 for 1-D input, else 1).
    reduction : {"none", "sum", "mean"}, default "none"
        "none": the slice's term of each sample's loss.  "sum": their sum.
        "mean": their sum divided by :func:`cross_entropy`'s denominator (the
        targets' weights over all the classes, or the number of samples for
        probabilities), so that the slices' means add up to the mean.
    return_grad : bool, default False
        Also return the gradient of the whole loss with respect to ``input``
        (the slice's columns of :func:`cross_entropy`'s gradient).
    grad_output : array_like, optional
        The upstream gradient, as :func:`cross_entropy`'s (with
        ``return_grad=True`` only).
    out : ndarray, optional
        Receives the gradient, as :func:`cross_entropy`'s.
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    loss : ndarray or NumPy scalar
        The slice's terms of the loss in ``input``'s dtype: per sample for
        "none", else reduced (accumulated in float64).
    grad : ndarray
        Only with ``return_grad=True``: ``input``'s shape and dtype.

    Raises
    ------
    TypeError
        As :func:`cross_entropy`, and for a non-numeric ``row_max``,
        ``log_norm`` or ``target_mass``.
    ValueError
        As :func:`cross_entropy` (class indices checked against
        ``num_classes``), and if the slice does not fit in ``num_classes``, if
        ``row_max``, ``log_norm`` or ``target_mass`` is not of the loss's
        shape, or ``target_mass`` is missing with probability targets or given
        with class indices.

    See Also
    --------
    cross_entropy : The loss over all the classes at once.
    logsumexp : Each slice's statistics, combined into ``row_max`` and ``log_norm``.

    Notes
    -----
    With ``lp_c = (x_c - row_max) - log_norm`` (the log-softmax over all the
    classes), ``q`` the smoothed target (``(1 - eps) [c == y] + eps / C`` for
    class indices, ``(1 - eps) t_c + eps / C`` for probabilities) and ``w`` the
    class weights, the slice's term of a sample's loss and its gradient are::

        loss = -sum_{c in slice} w_c q_c lp_c                 (0 where ignored)
        grad_c = go (Q exp(lp_c) - w_c q_c),   c in the slice

    where ``Q = sum_c w_c q_c`` over all the classes (``target_mass`` for
    probabilities; ``(1 - eps) w_y + eps / C sum_c w_c`` for class indices)
    and ``go`` the upstream gradient (over the "mean" denominator).  These are
    :func:`cross_entropy`'s formulas restricted to the slice: the slices' losses
    add up to its loss, their gradients side by side make its gradient.

    Examples
    --------
    A vocabulary of 6 classes in two slices of 3.  Each row's statistics over
    all the classes come from the slices' own maxima and log-sum-exps:

    >>> import numpy as np, fastxent
    >>> x = np.array([[1.0, 2.0, 0.5, -1.0, 3.0, 0.0],
    ...               [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])
    >>> y = np.array([4, 1])
    >>> parts = [x[:, :3], x[:, 3:]]
    >>> m = np.stack([p.max(axis=1) for p in parts], axis=1)
    >>> l = np.stack([fastxent.logsumexp(p - mk[:, None]) for p, mk in zip(parts, m.T)], axis=1)
    >>> row_max = m.max(axis=1)
    >>> log_norm = fastxent.logsumexp(m - row_max[:, None] + l)
    >>> results = [fastxent.cross_entropy_class_slice(p, y, row_max, log_norm, class_start=c0,
    ...                                               num_classes=6, return_grad=True)
    ...            for p, c0 in zip(parts, (0, 3))]
    >>> loss, grad = fastxent.cross_entropy(x, y, reduction="none", return_grad=True)
    >>> bool(np.allclose(results[0][0] + results[1][0], loss))
    True
    >>> bool(np.allclose(np.hstack([results[0][1], results[1][1]]), grad))
    True
    """
    part = ClassSlice(row_max, log_norm, class_start, num_classes, target_mass)
    return _multiclass("xent", input, target, _args.class_weight_option(weight),
                       _args.check_int64(ignore_index, "ignore_index"),
                       _args.check_reduction(reduction),
                       _args.check_label_smoothing(label_smoothing), _args.axis_option(axis),
                       _args.check_bool(return_grad, "return_grad"), grad_output, out,
                       _args.threads_option(n_threads), part=part)
