"""Loss classes that mirror PyTorch's modules: options at construction, data at call."""
from __future__ import annotations

from . import _args
from ._binary import binary_cross_entropy, binary_cross_entropy_with_logits
from ._multiclass import cross_entropy, nll_loss


class _Loss:
    _function = None
    _options: tuple = ()

    def __init__(self, weight=None, **options):
        if "reduction" in options:
            _args.check_reduction(options["reduction"])
        self.weight = weight
        self._kw = options

    def __call__(self, input, target, return_grad=False, grad_output=None, out=None):
        return type(self)._function(input, target, self.weight, return_grad=return_grad,
                                    grad_output=grad_output, out=out, **self._kw)

    def __getattr__(self, name):
        kw = self.__dict__.get("_kw", {})
        if name in kw:
            return kw[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self):
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

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", label_smoothing=0.0,
                 axis=None, n_threads=None):
        _args.check_label_smoothing(label_smoothing)
        super().__init__(weight, ignore_index=ignore_index, reduction=reduction,
                         label_smoothing=label_smoothing, axis=axis, n_threads=n_threads)


class NLLLoss(_Loss):
    """:func:`fastxent.nll_loss` with its options fixed, like ``torch.nn.NLLLoss``."""
    _function = staticmethod(nll_loss)

    def __init__(self, weight=None, *, ignore_index=-100, reduction="mean", axis=None,
                 n_threads=None):
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

    def __init__(self, weight=None, *, reduction="mean", n_threads=None):
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

    def __init__(self, weight=None, *, pos_weight=None, reduction="mean", n_threads=None):
        super().__init__(weight, pos_weight=pos_weight, reduction=reduction, n_threads=n_threads)
