"""Loss classes that mirror PyTorch's modules: options at construction, data at call."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Literal, overload

from . import _args
from ._binary import binary_cross_entropy, binary_cross_entropy_with_logits
from ._multiclass import cross_entropy, nll_loss

if TYPE_CHECKING:
    from ._typing import Array, ArrayInput, Loss, LossAndGrad


class _Loss:
    _function: Callable[..., Any]
    _options: tuple = ()

    def __init__(self, weight: ArrayInput | None = None, **options: Any) -> None:
        if "reduction" in options:
            _args.check_reduction(options["reduction"])
        self.weight = weight
        self._kw = options

    @overload
    def __call__(self, input: ArrayInput, target: ArrayInput, return_grad: Literal[False] = ...,
                 grad_output: ArrayInput | None = ..., out: Array | None = ...) -> Loss: ...
    @overload
    def __call__(self, input: ArrayInput, target: ArrayInput, return_grad: Literal[True],
                 grad_output: ArrayInput | None = ..., out: Array | None = ...) -> LossAndGrad: ...
    def __call__(self, input: ArrayInput, target: ArrayInput, return_grad: bool = False,
                 grad_output: ArrayInput | None = None, out: Array | None = None) -> Loss | LossAndGrad:
        return type(self)._function(input, target, self.weight, return_grad=return_grad,
                                    grad_output=grad_output, out=out, **self._kw)

    def __getattr__(self, name: str) -> Any:
        kw = self.__dict__.get("_kw", {})
        if name in kw:
            return kw[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self._kw.items())
        return f"{type(self).__name__}({'weight=..., ' if self.weight is not None else ''}{opts})"


class CrossEntropyLoss(_Loss):
    """:func:`fastxent.cross_entropy` with its options fixed, like ``torch.nn.CrossEntropyLoss``.

    Examples
    --------
    >>> import fastxent
    >>> loss_fn = fastxent.CrossEntropyLoss(weight=[1.3, 2.0])
    >>> round(float(loss_fn([[1.3, 2.0], [1.3, 2.0]], [1, 1])), 4)
    0.4032
    """
    _function = staticmethod(cross_entropy)

    def __init__(self, weight: ArrayInput | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean", label_smoothing: float = 0.0, axis: int | None = None,
                 n_threads: int | None = None) -> None:
        _args.check_label_smoothing(label_smoothing)
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction,
                         label_smoothing=label_smoothing, axis=axis, n_threads=n_threads)


class NLLLoss(_Loss):
    """:func:`fastxent.nll_loss` with its options fixed, like ``torch.nn.NLLLoss``."""
    _function = staticmethod(nll_loss)

    def __init__(self, weight: ArrayInput | None = None, *, ignore_index: int = -100,
                 reduction: str = "mean", axis: int | None = None,
                 n_threads: int | None = None) -> None:
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction, axis=axis,
                         n_threads=n_threads)


class BCELoss(_Loss):
    """:func:`fastxent.binary_cross_entropy` with its options fixed, like ``torch.nn.BCELoss``.

    Examples
    --------
    >>> import fastxent
    >>> loss_fn = fastxent.BCELoss(reduction="sum")
    >>> round(float(loss_fn([0.9, 0.2], [1., 0.])), 4)
    0.3285
    """
    _function = staticmethod(binary_cross_entropy)

    def __init__(self, weight: ArrayInput | None = None, *, reduction: str = "mean",
                 n_threads: int | None = None) -> None:
        super().__init__(weight, reduction=reduction, n_threads=n_threads)


class BCEWithLogitsLoss(_Loss):
    """:func:`fastxent.binary_cross_entropy_with_logits` with its options fixed, like
    ``torch.nn.BCEWithLogitsLoss``.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> loss_fn = fastxent.BCEWithLogitsLoss(pos_weight=np.ones(3))
    >>> round(float(loss_fn(np.full((2, 3), 1.0), np.ones((2, 3)))), 4)
    0.3133
    """
    _function = staticmethod(binary_cross_entropy_with_logits)

    def __init__(self, weight: ArrayInput | None = None, *, pos_weight: ArrayInput | None = None,
                 reduction: str = "mean", n_threads: int | None = None) -> None:
        super().__init__(weight, pos_weight=pos_weight, reduction=reduction, n_threads=n_threads)
