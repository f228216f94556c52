"""Loss classes of the cross-entropy family's relatives: KLDivLoss and SigmoidFocalLoss.

They work as the four classes of ``_modules`` (options checked on assignment
by ``_args``' option checks and stored checked, the data at the call, the
call's docstring from ``_loss_docs``) and share their base class.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _args, _loss_docs
from ._focal import _focal
from ._kl import _kl_div
from ._modules import _Loss, _Option

if TYPE_CHECKING:
    from ._typing import KLReduction, Reduction


class KLDivLoss(_Loss):
    """The Kullback-Leibler divergence with its options kept as attributes, like ``torch.nn.KLDivLoss``.

    The options go to the constructor, the data to the call:
    ``loss_fn(input, target)`` is :func:`fastxent.kl_div` with the options as
    keywords, for log-probabilities ``input`` and probabilities ``target``.
    Each option is an attribute of the same name; assigning one checks it
    (the function's TypeError or ValueError, raised by the assignment) and
    the next call uses it, as in PyTorch.  A misspelled attribute is an
    AttributeError; the repr shows the current values.

    Parameters
    ----------
    reduction : {"mean", "batchmean", "sum", "none"}, default "mean"
        "none": the elementwise losses.  "sum": their sum.  "batchmean": their
        sum divided by the input's first dimension (the KL divergence per
        distribution).  "mean": their sum divided by the number of elements,
        PyTorch's default (fastxent does not warn about it).
    log_target : bool, default False
        The target holds log-probabilities.
    n_threads : int, optional
        Threads of each call, at least 1 (default: :func:`fastxent.get_num_threads`
        at the time of the call).  The results do not depend on it.

    Raises
    ------
    TypeError
        If an option has the wrong type: a number or a string for
        ``log_target``, a bool or a string for ``n_threads``.
    ValueError
        If ``reduction`` is unknown or ``n_threads`` below 1.

    See Also
    --------
    kl_div : The function, with the formulas.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> loss_fn = fastxent.KLDivLoss(reduction="batchmean")
    >>> logp = np.log([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
    >>> target = np.array([[0.5, 0.5, 0.0], [0.2, 0.5, 0.3]])
    >>> round(float(loss_fn(logp, target)), 4)
    0.1687
    >>> loss_fn.log_target = True                 # checked here, used by the next call
    >>> round(float(loss_fn(logp, np.log(target[1:]).repeat(2, 0))), 4)
    0.2923
    >>> loss_fn
    KLDivLoss(reduction='batchmean', log_target=True, n_threads=None)
    """
    __slots__ = ("_log_target",)
    _log_target: bool
    _options = ("reduction", "log_target", "n_threads")

    reduction: _Option[KLReduction, KLReduction] = _Option(  # type: ignore[assignment]
        _args.check_kl_reduction, '``"mean"``, ``"batchmean"``, ``"sum"`` or ``"none"``.',
        '"batchmean"', "'batchmean'")
    log_target: _Option[bool, bool] = _Option(
        _args.check_bool, "The target holds log-probabilities.", "True", "True")

    def __init__(self, *, reduction: KLReduction = "mean", log_target: bool = False,
                 n_threads: int | None = None) -> None:
        self.reduction = reduction
        self.log_target = log_target
        self.n_threads = n_threads

    if not TYPE_CHECKING:       # type checkers read _Loss.__call__'s overloads
        __call__ = _loss_docs.documented_call(_Loss.__call__, "KLDivLoss")

    def _run(self, input: Any, target: Any, return_grad: bool, grad_output: Any, out: Any,
             sample_weight: Any) -> Any:
        if sample_weight is not None:     # (the family takes none: _Loss.__call__ is shared)
            raise TypeError(f"{type(self).__name__} takes no sample_weight")
        return _kl_div(input, target, self._reduction, self._log_target, return_grad,
                       grad_output, out, self._n_threads)


class SigmoidFocalLoss(_Loss):
    """The focal loss of logits with its options kept as attributes.

    The options go to the constructor, the data to the call:
    ``loss_fn(input, target)`` is :func:`fastxent.sigmoid_focal_loss` (torchvision's
    ``sigmoid_focal_loss``, which has no class of its own) with the options as
    keywords.  Each option is an attribute of the same name; assigning one
    checks it (the function's TypeError or ValueError, raised by the
    assignment) and the next call uses it.  A misspelled attribute is an
    AttributeError; the repr shows the current values.

    Parameters
    ----------
    alpha : float, default 0.25
        The weight of the positive term (``1 - alpha`` that of the negative
        one); negative: no weighting.
    gamma : float, default 2.0
        The focusing exponent, a finite number >= 0.
    reduction : {"none", "mean", "sum"}, default "none"
        "none": the elementwise losses.  "sum": their sum.  "mean": their sum
        divided by the number of elements.
    n_threads : int, optional
        Threads of each call, at least 1 (default: :func:`fastxent.get_num_threads`
        at the time of the call).  The results do not depend on it.

    Raises
    ------
    TypeError
        If an option has the wrong type: a bool or a string for ``alpha``,
        ``gamma`` or ``n_threads``.
    ValueError
        If ``alpha`` is not finite, ``gamma`` not a finite number >= 0,
        ``reduction`` unknown or ``n_threads`` below 1.

    See Also
    --------
    sigmoid_focal_loss : The function, with the formulas.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> loss_fn = fastxent.SigmoidFocalLoss(reduction="sum")
    >>> logits, labels = np.array([3.0, -1.0, 0.5, -4.0]), np.array([1.0, 0.0, 1.0, 1.0])
    >>> round(float(loss_fn(logits, labels)), 4)
    1.0026
    >>> loss_fn.gamma = 0.0                       # checked here, used by the next call
    >>> round(float(loss_fn(logits, labels)), 4)
    1.3701
    >>> loss_fn
    SigmoidFocalLoss(alpha=0.25, gamma=0.0, reduction='sum', n_threads=None)
    """
    __slots__ = ("_alpha", "_gamma")
    _alpha: float
    _gamma: float
    _options = ("alpha", "gamma", "reduction", "n_threads")

    alpha: _Option[float, float] = _Option(
        _args.check_focal_alpha, "The weight of the positive term; negative: no weighting.",
        "0.5", "0.5")
    gamma: _Option[float, float] = _Option(
        _args.check_focal_gamma, "The focusing exponent, a finite number >= 0.", "1.5", "1.5")

    def __init__(self, *, alpha: float = 0.25, gamma: float = 2.0, reduction: Reduction = "none",
                 n_threads: int | None = None) -> None:
        self.alpha = alpha
        self.gamma = gamma
        self.reduction = reduction
        self.n_threads = n_threads

    if not TYPE_CHECKING:       # type checkers read _Loss.__call__'s overloads
        __call__ = _loss_docs.documented_call(_Loss.__call__, "SigmoidFocalLoss")

    def _run(self, input: Any, target: Any, return_grad: bool, grad_output: Any, out: Any,
             sample_weight: Any) -> Any:
        if sample_weight is not None:     # (the family takes none: _Loss.__call__ is shared)
            raise TypeError(f"{type(self).__name__} takes no sample_weight")
        return _focal(input, target, self._alpha, self._gamma, self._reduction, return_grad,
                      grad_output, out, self._n_threads)

