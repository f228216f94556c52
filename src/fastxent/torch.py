"""fastxent's losses for PyTorch CPU tensors, with autograd.

``import fastxent.torch`` imports PyTorch; ``import fastxent`` never does.

Design: a loss is one call of the public NumPy function with
``return_grad=True``, on NumPy views of the tensors' memory (no copy for a
C-contiguous float32/float64 input), inside one ``torch.autograd.Function``.
The fused gradient is kept for backward, which only scales it by the upstream
gradient: no second pass over the logits.

* ``"mean"`` and ``"sum"``: backward returns the stored gradient itself when
  the upstream gradient is 1 (``loss.backward()``), else the gradient times it.
* ``"none"``: the stored gradient is the per-sample, unscaled one (that of
  ``sum(loss)``); backward multiplies it by ``grad_output`` broadcast along the
  class axis.  That is one pass over the gradient, cheaper than recomputing the
  softmax with ``grad_output`` in backward (a second read of the logits and
  second set of exps), and exact to one rounding.
* Without autograd (``torch.no_grad()``, or an input that does not require
  grad) the loss alone is computed, without a gradient.

Gradients flow to ``input`` only.  A ``target``, ``weight`` or ``pos_weight``
that requires grad is refused (TypeError) rather than given a silent zero.
float16 is computed in float32 by fastxent; bfloat16 (which NumPy lacks) is
converted to float32 here; both return losses and gradients in their own dtype.
Tensors on another device than the CPU are refused (ValueError).

The functions are not ``torch.func`` transformable (``vmap``, ``jacrev``), and
the gradient is not differentiable again (no double backward).

To add a loss: a function that calls ``_loss(fastxent_function, multiclass,
input, {other tensors}, options)``, and a module class over it.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch.autograd.function import once_differentiable

import fastxent as _fx

__all__ = [
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_tensor(t: Any, name: str) -> None:
    if isinstance(t, torch.Tensor):
        if t.device.type != "cpu":
            raise ValueError(f"{name} is on device {t.device}; fastxent.torch runs on CPU "
                             f"tensors only (move it with .cpu(), or use torch.nn.functional)")
        if t.layout != torch.strided:
            raise TypeError(f"{name} must be a dense (strided) tensor, got layout {t.layout}")


def _to_numpy(t: Any, name: str) -> Any:
    """A CPU tensor as a NumPy view of its memory (bfloat16 as a float32 copy);
    anything else is left to fastxent's own argument handling."""
    if not isinstance(t, torch.Tensor):
        return t
    _check_tensor(t, name)
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    try:
        return t.numpy()
    except RuntimeError:                  # a lazily negated view (neg bit set)
        return t.resolve_neg().numpy()


def _class_axis(axis: int | None, ndim: int) -> int:
    if axis is None:
        return 0 if ndim == 1 else 1
    return axis + ndim if axis < 0 else axis


class _Call:
    """What backward needs to know about one call, besides the stored gradient."""
    __slots__ = ("n_others", "reduction", "axis_ndim")

    def __init__(self, n_others: int, reduction: str, axis_ndim: tuple | None):
        self.n_others = n_others
        self.reduction = reduction
        self.axis_ndim = axis_ndim       # (axis option, input's ndim); None: elementwise loss


class _FusedLoss(torch.autograd.Function):
    """Forward: one fused kernel call (loss and gradient).  Backward: the stored
    gradient scaled by the upstream gradient."""

    @staticmethod
    def forward(ctx: Any, call: _Call, compute: Callable[[], tuple], input: torch.Tensor,
                *others: Any) -> torch.Tensor:
        loss, grad = compute()
        ctx.call = call
        ctx.save_for_backward(grad)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple:
        call: _Call = ctx.call
        (grad,) = ctx.saved_tensors
        none = (None,) * call.n_others
        go = grad_output
        if call.reduction == "none" and go.numel() and not any(go.stride()):
            go = go.as_strided((), ())         # one value expanded (loss.sum().backward())
        if go.dim() == 0:
            if go.item() == 1.0:               # loss.backward(): the stored gradient itself
                return (None, None, grad) + none
            return (None, None, grad * go.to(grad.dtype)) + none
        go = go.to(grad.dtype)
        if call.axis_ndim is not None:         # one factor per sample: along the class axis
            go = go.unsqueeze(_class_axis(*call.axis_ndim))
        return (None, None, grad * go) + none


def _loss(function: Callable[..., Any], multiclass: bool, input: Any,
          others: dict, options: dict) -> torch.Tensor:
    """One loss on tensors: ``function(input, **others, **options)`` of
    fastxent, through autograd when ``input`` requires grad.  ``multiclass``:
    the loss has a class axis (``options["axis"]``), along which backward
    broadcasts the ``grad_output`` of ``reduction="none"``."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__} "
                        f"(for NumPy arrays, use fastxent.{function.__name__})")
    _check_tensor(input, "input")
    reduction = _check_reduction(options.get("reduction", "mean"))
    dtype = input.dtype
    track = torch.is_grad_enabled() and input.requires_grad
    if torch.is_grad_enabled():
        for name, t in others.items():
            if isinstance(t, torch.Tensor) and t.requires_grad:
                raise TypeError(
                    f"{name} requires grad, but fastxent.torch differentiates with respect to "
                    f"input only: pass {name}.detach(), or use torch.nn.functional for "
                    f"gradients with respect to {name}")
    x = _to_numpy(input, "input")
    args = {name: _to_numpy(t, name) for name, t in others.items()}

    def as_tensor(a: Any) -> torch.Tensor:
        out = torch.from_numpy(np.asarray(a))          # a view: no copy
        return out if out.dtype == dtype else out.to(dtype)   # bfloat16

    def compute() -> tuple:
        loss, grad = function(x, **args, return_grad=True, **options)
        return as_tensor(loss), as_tensor(grad)

    if not track:
        return as_tensor(function(x, **args, **options))
    # the class axis is resolved in backward, after fastxent has checked it
    call = _Call(len(others), reduction, (options.get("axis"), input.dim()) if multiclass else None)
    return _FusedLoss.apply(call, compute, input, *others.values())


def cross_entropy(input: torch.Tensor, target: Any, weight: Any = None, *,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0, axis: int | None = None,
                  n_threads: int | None = None) -> torch.Tensor:
    """``torch.nn.functional.cross_entropy`` on CPU tensors, computed by fastxent.

    With autograd, the forward pass computes the loss and its gradient in one
    kernel call, and the backward pass scales that gradient.

    Parameters
    ----------
    input : torch.Tensor
        Logits on the CPU, float32 or float64 (float16 and bfloat16 are
        computed in float32), shaped ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    target : torch.Tensor or array_like
        Class indices (integers, ``input``'s shape without the class axis) or
        class probabilities (floating, ``input``'s shape).  It gets no gradient.
    weight : torch.Tensor or array_like, optional
        A weight per class, shape ``(C,)``.  It gets no gradient.
    ignore_index : int, default -100
        Class-index targets equal to it add nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-sample losses are combined.
    label_smoothing : float, default 0.0
        In ``[0, 1]``: the share of the target spread evenly over the classes.
    axis : int, optional
        The class axis (fastxent's extra), e.g. ``-1`` for ``(batch, seq,
        vocab)`` logits; None is PyTorch's convention (0 for 1-D input, else 1).
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    torch.Tensor
        The loss in ``input``'s dtype: a 0-d tensor, or per sample for
        ``reduction="none"``; differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        If ``input`` is not a ``torch.Tensor`` (or not a dense one), if
        another tensor argument requires grad (gradients flow to ``input``
        only: pass it ``.detach()``), or for fastxent's own type errors:
        a non-floating ``input``, a ``target`` neither integer nor
        floating, an option of the wrong type.
    ValueError
        If a tensor is not on the CPU, or for fastxent's own value errors:
        shapes that do not fit, a class index outside ``[0, C)`` that is
        not ``ignore_index``, an unknown ``reduction``, ``label_smoothing``
        outside ``[0, 1]``, ``axis`` out of range.

    See Also
    --------
    fastxent.cross_entropy : The NumPy function, with the formulas.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> x = torch.tensor([[0., 1., 2., 3.]], requires_grad=True)
    >>> loss = fxt.cross_entropy(x, torch.tensor([3]))
    >>> loss.backward()
    >>> round(loss.item(), 4), x.grad.shape
    (0.4402, torch.Size([1, 4]))
    """
    return _loss(_fx.cross_entropy, True, input,
                 {"target": target, "weight": weight},
                 dict(ignore_index=ignore_index, reduction=reduction,
                      label_smoothing=label_smoothing, axis=axis, n_threads=n_threads))


def nll_loss(input: torch.Tensor, target: Any, weight: Any = None, *,
             ignore_index: int = -100, reduction: str = "mean", axis: int | None = None,
             n_threads: int | None = None) -> torch.Tensor:
    """``torch.nn.functional.nll_loss`` on CPU tensors, computed by fastxent.

    Parameters
    ----------
    input : torch.Tensor
        Log-probabilities on the CPU (float32 or float64; float16 and bfloat16
        computed in float32), shaped ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    target : torch.Tensor or array_like
        Class indices (integers, ``input``'s shape without the class axis).
    weight : torch.Tensor or array_like, optional
        A weight per class, shape ``(C,)``.  It gets no gradient.
    ignore_index : int, default -100
        Targets equal to it add nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-sample losses are combined.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    torch.Tensor
        The loss in ``input``'s dtype, differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        If ``input`` is not a ``torch.Tensor`` (or not a dense one), if
        another tensor argument requires grad (gradients flow to ``input``
        only: pass it ``.detach()``), or for fastxent's own type errors:
        a non-floating ``input``, a ``target`` that is not integer, an
        option of the wrong type.
    ValueError
        If a tensor is not on the CPU, or for fastxent's own value errors:
        shapes that do not fit, a class index outside ``[0, C)`` that is
        not ``ignore_index``, an unknown ``reduction``, ``axis`` out of range.

    See Also
    --------
    fastxent.nll_loss : The NumPy function, with the formulas.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> logp = torch.log_softmax(torch.tensor([[0., 1., 2., 3.]]), dim=1)
    >>> round(fxt.nll_loss(logp, torch.tensor([3])).item(), 4)
    0.4402
    """
    return _loss(_fx.nll_loss, True, input,
                 {"target": target, "weight": weight},
                 dict(ignore_index=ignore_index, reduction=reduction, axis=axis,
                      n_threads=n_threads))


def binary_cross_entropy(input: torch.Tensor, target: Any, weight: Any = None, *,
                         reduction: str = "mean", n_threads: int | None = None) -> torch.Tensor:
    """``torch.nn.functional.binary_cross_entropy`` on CPU tensors, computed by fastxent.

    Parameters
    ----------
    input : torch.Tensor
        Probabilities in ``[0, 1]`` on the CPU (float32 or float64; float16 and
        bfloat16 computed in float32).
    target : torch.Tensor or array_like
        Targets in ``[0, 1]``, ``input``'s shape.  It gets no gradient.
    weight : torch.Tensor or array_like, optional
        Weights broadcast to ``input``'s shape.  They get no gradient.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the elementwise losses are combined.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    torch.Tensor
        The loss in ``input``'s dtype, differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        If ``input`` is not a ``torch.Tensor`` (or not a dense one), if
        another tensor argument requires grad (gradients flow to ``input``
        only: pass it ``.detach()``), or for fastxent's own type errors:
        a non-floating ``input``, a ``target`` or ``weight`` that is not
        real, an option of the wrong type.
    ValueError
        If a tensor is not on the CPU, or for fastxent's own value errors:
        shapes that do not fit, a value of ``input`` or ``target`` outside
        ``[0, 1]``, an unknown ``reduction``.

    See Also
    --------
    fastxent.binary_cross_entropy : The NumPy function, with the formulas.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> round(fxt.binary_cross_entropy(torch.tensor([0.9, 0.2]), torch.tensor([1., 0.]),
    ...                                reduction="sum").item(), 4)
    0.3285
    """
    return _loss(_fx.binary_cross_entropy, False, input, {"target": target, "weight": weight},
                 dict(reduction=reduction, n_threads=n_threads))


def binary_cross_entropy_with_logits(input: torch.Tensor, target: Any, weight: Any = None, *,
                                     pos_weight: Any = None, reduction: str = "mean",
                                     n_threads: int | None = None) -> torch.Tensor:
    """``torch.nn.functional.binary_cross_entropy_with_logits`` on CPU tensors, computed by fastxent.

    Parameters
    ----------
    input : torch.Tensor
        Logits on the CPU (float32 or float64; float16 and bfloat16 computed in
        float32).
    target : torch.Tensor or array_like
        Targets in ``[0, 1]``, ``input``'s shape.  It gets no gradient.
    weight : torch.Tensor or array_like, optional
        Weights broadcast to ``input``'s shape.  They get no gradient.
    pos_weight : torch.Tensor or array_like, optional
        Weights of the positive term, broadcast to ``input``'s shape (a ``(C,)``
        one along the last axis).  They get no gradient.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the elementwise losses are combined.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    torch.Tensor
        The loss in ``input``'s dtype, differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        If ``input`` is not a ``torch.Tensor`` (or not a dense one), if
        another tensor argument requires grad (gradients flow to ``input``
        only: pass it ``.detach()``), or for fastxent's own type errors:
        a non-floating ``input``, a ``target``, ``weight`` or
        ``pos_weight`` that is not real, an option of the wrong type.
    ValueError
        If a tensor is not on the CPU, or for fastxent's own value errors:
        shapes that do not fit, an unknown ``reduction``.

    See Also
    --------
    fastxent.binary_cross_entropy_with_logits : The NumPy function, with the formulas.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> x = torch.full((2, 3), 1.0, requires_grad=True)
    >>> loss = fxt.binary_cross_entropy_with_logits(x, torch.ones(2, 3))
    >>> loss.backward()
    >>> round(loss.item(), 4), round(x.grad[0, 0].item(), 4)
    (0.3133, -0.0448)
    """
    return _loss(_fx.binary_cross_entropy_with_logits, False, input,
                 {"target": target, "weight": weight, "pos_weight": pos_weight},
                 dict(reduction=reduction, n_threads=n_threads))


# ----------------------------------------------------------------------------
# Modules, as torch.nn's: options at construction (keyword-only after weight),
# kept as plain attributes; weight and pos_weight are buffers, so .to(),
# .double() and state_dict() carry them.

def _check_reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, _REDUCTIONS))}, "
                         f"got {reduction!r}")
    return reduction


def _buffer(value: Any) -> torch.Tensor | None:
    if value is None or isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(value)


class CrossEntropyLoss(torch.nn.Module):
    """``torch.nn.CrossEntropyLoss`` computed by :func:`fastxent.torch.cross_entropy`.

    Parameters
    ----------
    weight : torch.Tensor or array_like, optional
        A weight per class, kept as the buffer ``weight``.
    ignore_index : int, default -100
        Class-index targets equal to it add nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-sample losses are combined.
    label_smoothing : float, default 0.0
        In ``[0, 1]``: the share of the target spread evenly over the classes.
    axis : int, optional
        The class axis; None is PyTorch's convention.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Raises
    ------
    ValueError
        If ``reduction`` is unknown.  The other options are checked by the
        first call, with the function's errors.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> loss_fn = fxt.CrossEntropyLoss(label_smoothing=0.1)
    >>> round(loss_fn(torch.zeros(2, 5), torch.tensor([0, 4])).item(), 4)
    1.6094
    """
    weight: torch.Tensor | None

    def __init__(self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0, axis: int | None = None,
                 n_threads: int | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index
        self.reduction = _check_reduction(reduction)
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.n_threads = n_threads

    def forward(self, input: torch.Tensor, target: Any) -> torch.Tensor:
        return cross_entropy(input, target, self.weight, ignore_index=self.ignore_index,
                             reduction=self.reduction, label_smoothing=self.label_smoothing,
                             axis=self.axis, n_threads=self.n_threads)

    def extra_repr(self) -> str:
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}, axis={self.axis}")


class NLLLoss(torch.nn.Module):
    """``torch.nn.NLLLoss`` computed by :func:`fastxent.torch.nll_loss`.

    Parameters
    ----------
    weight : torch.Tensor or array_like, optional
        A weight per class, kept as the buffer ``weight``.
    ignore_index : int, default -100
        Targets equal to it add nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-sample losses are combined.
    axis : int, optional
        The class axis; None is PyTorch's convention.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Raises
    ------
    ValueError
        If ``reduction`` is unknown.  The other options are checked by the
        first call, with the function's errors.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> loss_fn = fxt.NLLLoss(reduction="sum")
    >>> round(loss_fn(torch.log(torch.tensor([[0.25, 0.75]])), torch.tensor([1])).item(), 4)
    0.2877
    """
    weight: torch.Tensor | None

    def __init__(self, weight: Any = None, *, ignore_index: int = -100, reduction: str = "mean",
                 axis: int | None = None, n_threads: int | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", _buffer(weight))
        self.ignore_index = ignore_index
        self.reduction = _check_reduction(reduction)
        self.axis = axis
        self.n_threads = n_threads

    def forward(self, input: torch.Tensor, target: Any) -> torch.Tensor:
        return nll_loss(input, target, self.weight, ignore_index=self.ignore_index,
                        reduction=self.reduction, axis=self.axis, n_threads=self.n_threads)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, axis={self.axis}"


class BCELoss(torch.nn.Module):
    """``torch.nn.BCELoss`` computed by :func:`fastxent.torch.binary_cross_entropy`.

    Parameters
    ----------
    weight : torch.Tensor or array_like, optional
        Weights broadcast to the input's shape, kept as the buffer ``weight``.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the elementwise losses are combined.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Raises
    ------
    ValueError
        If ``reduction`` is unknown.  The other options are checked by the
        first call, with the function's errors.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> loss_fn = fxt.BCELoss(reduction="sum")
    >>> round(loss_fn(torch.tensor([0.9, 0.2]), torch.tensor([1., 0.])).item(), 4)
    0.3285
    """
    weight: torch.Tensor | None

    def __init__(self, weight: Any = None, *, reduction: str = "mean",
                 n_threads: int | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", _buffer(weight))
        self.reduction = _check_reduction(reduction)
        self.n_threads = n_threads

    def forward(self, input: torch.Tensor, target: Any) -> torch.Tensor:
        return binary_cross_entropy(input, target, self.weight, reduction=self.reduction,
                                    n_threads=self.n_threads)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCEWithLogitsLoss(torch.nn.Module):
    """``torch.nn.BCEWithLogitsLoss`` computed by :func:`fastxent.torch.binary_cross_entropy_with_logits`.

    Parameters
    ----------
    weight : torch.Tensor or array_like, optional
        Weights broadcast to the input's shape, kept as the buffer ``weight``.
    pos_weight : torch.Tensor or array_like, optional
        Weights of the positive term, kept as the buffer ``pos_weight``.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the elementwise losses are combined.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).

    Raises
    ------
    ValueError
        If ``reduction`` is unknown.  The other options are checked by the
        first call, with the function's errors.

    Examples
    --------
    >>> import torch, fastxent.torch as fxt
    >>> loss_fn = fxt.BCEWithLogitsLoss(pos_weight=torch.ones(3))
    >>> round(loss_fn(torch.full((2, 3), 1.0), torch.ones(2, 3)).item(), 4)
    0.3133
    """
    weight: torch.Tensor | None
    pos_weight: torch.Tensor | None

    def __init__(self, weight: Any = None, *, pos_weight: Any = None, reduction: str = "mean",
                 n_threads: int | None = None) -> None:
        super().__init__()
        self.register_buffer("weight", _buffer(weight))
        self.register_buffer("pos_weight", _buffer(pos_weight))
        self.reduction = _check_reduction(reduction)
        self.n_threads = n_threads

    def forward(self, input: torch.Tensor, target: Any) -> torch.Tensor:
        return binary_cross_entropy_with_logits(input, target, self.weight,
                                                pos_weight=self.pos_weight,
                                                reduction=self.reduction,
                                                n_threads=self.n_threads)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"
