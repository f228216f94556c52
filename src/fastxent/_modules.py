"""Loss classes that mirror PyTorch's modules: options at construction, data at call.

Each option is a real attribute (an ``_Option`` descriptor): assigning it runs
the same check of ``_args`` that the loss functions run on every call, so a bad
value is refused where it is written, with the same TypeError or ValueError,
and the checked value is stored.  A call hands the stored values straight to
the functions' common body (``_multiclass._multiclass``, ``_binary._binary``),
so nothing is checked twice; an assignment takes effect on the next call, as in
PyTorch.  The classes have ``__slots__``: a misspelled option
(``loss_fn.label_smothing = 0.1``) is an AttributeError, not a silent no-op.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, Literal, Optional, TypeVar, overload

from . import _args, _loss_docs
from ._binary import _binary, _fast_bce_logits
from ._multiclass import _fast_xent, _multiclass

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from ._typing import Array, ArrayInput, Loss, LossAndGrad, Reduction

_Set = TypeVar("_Set")
_Get = TypeVar("_Get")


class _Option(Generic[_Set, _Get]):
    """An option of a loss class, checked on assignment and stored checked in the
    slot ``_<name>``.  ``_Set`` is what may be assigned, ``_Get`` what is read back.
    ``summary`` and an example assignment (``value`` as typed, ``shown`` as read
    back) make the attribute's docstring, shown in the API reference."""

    def __init__(self, check: Callable[[Any, str], Any], summary: str, value: str,
                 shown: str) -> None:
        self.check = check
        self.name = self.slot = ""
        self._doc = (summary, value, shown)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.slot = "_" + name
        summary, value, shown = self._doc
        cls = "BCELoss" if owner.__name__.startswith("_") else owner.__name__
        self.__doc__ = (
            f"{summary}\n\nChecked when assigned (the function's TypeError or ValueError), "
            f"used by the next call.\n\nExamples\n--------\n>>> import fastxent\n"
            f">>> loss_fn = fastxent.{cls}()\n>>> loss_fn.{name} = {value}\n"
            f">>> loss_fn.{name}\n{shown}\n")

    @overload
    def __get__(self, obj: None, owner: Optional[type] = None) -> _Option[_Set, _Get]: ...
    @overload
    def __get__(self, obj: object, owner: Optional[type] = None) -> _Get: ...
    def __get__(self, obj: object, owner: Optional[type] = None) -> Any:
        return self if obj is None else getattr(obj, self.slot)

    def __set__(self, obj: object, value: _Set) -> None:
        setattr(obj, self.slot, self.check(value, self.name))


class _Loss:
    """What the four loss classes share: ``reduction``, ``n_threads``, the call and the repr."""

    __slots__ = ("_reduction", "_n_threads")
    _options: tuple[str, ...] = ()
    _reduction: Reduction                 # the checked values, in the slots
    _n_threads: Optional[int]

    reduction: _Option[Reduction, Reduction] = _Option(
        _args.check_reduction, '``"mean"``, ``"sum"`` or ``"none"``, as for the function.', '"sum"', "'sum'")
    n_threads: _Option[Optional[int], Optional[int]] = _Option(
        _args.threads_option, "Threads of each call; None for :func:`fastxent.get_num_threads`.", "2", "2")

    @overload
    def __call__(self, input: ArrayInput, target: ArrayInput, *, return_grad: Literal[False] = ...,
                 grad_output: ArrayInput | None = ..., out: Array | None = ...,
                 sample_weight: ArrayInput | None = ...) -> Loss: ...
    @overload
    def __call__(self, input: ArrayInput, target: ArrayInput, *, return_grad: Literal[True],
                 grad_output: ArrayInput | None = ..., out: Array | None = ...,
                 sample_weight: ArrayInput | None = ...) -> LossAndGrad: ...
    @overload
    def __call__(self, input: ArrayInput, target: ArrayInput, *, return_grad: bool,
                 grad_output: ArrayInput | None = ..., out: Array | None = ...,
                 sample_weight: ArrayInput | None = ...) -> Loss | LossAndGrad: ...
    def __call__(self, input: ArrayInput, target: ArrayInput, *, return_grad: bool = False,
                 grad_output: ArrayInput | None = None, out: Array | None = None,
                 sample_weight: ArrayInput | None = None) -> Loss | LossAndGrad:
        """The loss of ``input`` against ``target`` with this object's options;
        ``return_grad``, ``grad_output``, ``out`` and ``sample_weight`` (keyword-only)
        as for the function.  Each loss class has this call under a docstring of
        its own (``_loss_docs``)."""
        return self._run(input, target, _args.check_bool(return_grad, "return_grad"),
                         grad_output, out, sample_weight)

    def _run(self, input: Any, target: Any, return_grad: bool, grad_output: Any,
             out: Any, sample_weight: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        # array options as "...": a weight per class can be long
        values = ((name, getattr(self, name)) for name in self._options)
        opts = ", ".join(f"{name}={'...' if hasattr(v, 'shape') else repr(v)}" for name, v in values)
        return f"{type(self).__name__}({opts})"


class CrossEntropyLoss(_Loss):
    """Cross-entropy with its options kept as attributes, like ``torch.nn.CrossEntropyLoss``.

    The options go to the constructor, the data to the call:
    ``loss_fn(input, target)`` is :func:`fastxent.cross_entropy` with the
    options as keywords.  Each option is an attribute of the same name;
    assigning one checks it (the function's TypeError or ValueError, raised
    by the assignment) and the next call uses it, as in PyTorch.  A misspelled
    attribute is an AttributeError; the repr shows the current values.

    Parameters
    ----------
    weight : array_like, shape (C,), optional
        A weight per class (default: 1 for every class).
    ignore_index : int, default -100
        Class-index targets equal to it add neither loss nor gradient and are
        left out of the "mean" denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the per-sample losses.  "sum": their sum.  "mean": their sum
        divided by the summed weight of the targets not ignored (the number of
        sample positions for probability targets); NaN where that is 0.
    label_smoothing : float, default 0.0
        ``eps`` in ``[0, 1]``: the target is mixed with the uniform
        distribution, ``(1 - eps) * target + eps / C``.
    z_loss : float, default 0.0
        At least 0: adds ``z_loss * lse**2`` to the loss of each sample not
        ignored (``lse`` the log-sum-exp of its logits), as in PaLM.
    softcap : float, optional
        Above 0: each logit ``x`` is replaced by ``softcap * tanh(x / softcap)``
        before the softmax, as in Gemma 2.  Default: no capping.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    n_threads : int, optional
        Threads of each call, at least 1 (default: :func:`fastxent.get_num_threads`
        at the time of the call).  The results do not depend on it.

    Raises
    ------
    TypeError
        If an option has the wrong type: a bool or a string for a number, a
        non-integer ``ignore_index`` or ``axis``, a ``weight`` that is not real.
    ValueError
        If ``reduction`` is unknown, ``label_smoothing`` outside ``[0, 1]``,
        ``z_loss`` negative or not finite, ``softcap`` not above 0 or not
        finite, ``weight`` not 1-D, or ``n_threads`` below 1.

    See Also
    --------
    cross_entropy : The function, with the formulas.
    fastxent.torch.CrossEntropyLoss : A ``torch.nn.Module`` with autograd.

    Examples
    --------
    >>> import fastxent
    >>> loss_fn = fastxent.CrossEntropyLoss(weight=[1.3, 2.0])
    >>> round(float(loss_fn([[1.3, 2.0], [1.3, 2.0]], [1, 1])), 4)
    0.4032
    >>> loss_fn.reduction = "sum"                 # checked here, used by the next call
    >>> round(float(loss_fn([[1.3, 2.0], [1.3, 2.0]], [1, 1])), 4)
    1.6127
    >>> loss_fn
    CrossEntropyLoss(weight=..., ignore_index=-100, reduction='sum', label_smoothing=0.0, z_loss=0.0, softcap=None, axis=None, n_threads=None)
    >>> loss_fn.label_smoothing = 1.5
    Traceback (most recent call last):
        ...
    ValueError: label_smoothing must be in [0, 1], got 1.5

    A language model's recipe: soft-capped logits and a z-loss.

    >>> lm_loss = fastxent.CrossEntropyLoss(z_loss=1e-4, softcap=30.0, axis=-1)
    >>> round(float(lm_loss([[[40.0, 0.0, -40.0]]], [[0]])), 4)
    0.0681
    """
    __slots__ = ("_weight", "_ignore_index", "_label_smoothing", "_z_loss", "_softcap", "_axis")
    _weight: Optional[NDArray[Any]]
    _ignore_index: int
    _label_smoothing: float
    _z_loss: float
    _softcap: Optional[float]
    _axis: Optional[int]
    _options = ("weight", "ignore_index", "reduction", "label_smoothing", "z_loss", "softcap", "axis",
                "n_threads")

    weight: _Option[Optional[ArrayInput], Optional[NDArray[Any]]] = _Option(
        _args.class_weight_option, "A weight per class, shape ``(C,)``, or None.", "[1.0, 2.0]",
        "array([1., 2.])")
    ignore_index: _Option[int, int] = _Option(
        _args.check_int64, "Class-index targets equal to it add nothing.", "-1", "-1")
    label_smoothing: _Option[float, float] = _Option(
        _args.check_label_smoothing, "A float in [0, 1].", "0.1", "0.1")
    z_loss: _Option[float, float] = _Option(
        _args.check_z_loss, "The factor of the z-loss ``z_loss * lse**2``, a finite float >= 0.",
        "1e-4", "0.0001")
    softcap: _Option[Optional[float], Optional[float]] = _Option(
        _args.softcap_option, "The soft-capping ``softcap * tanh(x / softcap)`` of the logits, a "
        "finite float > 0, or None.", "30", "30.0")
    axis: _Option[Optional[int], Optional[int]] = _Option(
        _args.axis_option, "The class axis; None for PyTorch's convention.", "-1", "-1")

    def __init__(self, weight: ArrayInput | None = None, *, ignore_index: int = -100,
                 reduction: Reduction = "mean", label_smoothing: float = 0.0,
                 z_loss: float = 0.0, softcap: float | None = None,
                 axis: int | None = None, n_threads: int | None = None) -> None:
        self.weight = weight
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.label_smoothing = label_smoothing
        self.z_loss = z_loss
        self.softcap = softcap
        self.axis = axis
        self.n_threads = n_threads

    if not TYPE_CHECKING:       # type checkers read _Loss.__call__'s overloads
        __call__ = _loss_docs.documented_call(_Loss.__call__, "CrossEntropyLoss")

    def _run(self, input: Any, target: Any, return_grad: bool, grad_output: Any, out: Any,
             sample_weight: Any) -> Any:
        if (grad_output is None and out is None and sample_weight is None and self._axis is None
                and self._n_threads is None and self._softcap is None
                and self._z_loss == 0.0):            # the fast path of small calls
            res = _fast_xent(input, target, self._weight, self._ignore_index, self._reduction,
                             self._label_smoothing, return_grad)
            if res is not None:
                return res
        return _multiclass("xent", input, target, self._weight, self._ignore_index,
                           self._reduction, self._label_smoothing, self._axis, return_grad,
                           grad_output, out, self._n_threads, sample_weight,
                           z_loss=self._z_loss, softcap=self._softcap)


class NLLLoss(_Loss):
    """Negative log-likelihood with its options kept as attributes, like ``torch.nn.NLLLoss``.

    The options go to the constructor, the data to the call:
    ``loss_fn(input, target)`` is :func:`fastxent.nll_loss` with the options
    as keywords: the loss of a sample is ``-weight[y] * input[n, y]`` for
    log-probabilities ``input`` and class indices ``y``.  Each option is an
    attribute of the same name; assigning one checks it (the function's
    TypeError or ValueError, raised by the assignment) and the next call uses
    it, as in PyTorch.  A misspelled attribute is an AttributeError; the repr
    shows the current values.

    Parameters
    ----------
    weight : array_like, shape (C,), optional
        A weight per class (default: 1 for every class).
    ignore_index : int, default -100
        Targets equal to it add neither loss nor gradient and are left out of
        the "mean" denominator.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the per-sample losses.  "sum": their sum.  "mean": their sum
        divided by the summed weight of the targets not ignored; NaN where
        that is 0.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    n_threads : int, optional
        Threads of each call, at least 1 (default: :func:`fastxent.get_num_threads`
        at the time of the call).  The results do not depend on it.

    Raises
    ------
    TypeError
        If an option has the wrong type: a bool or a string for a number, a
        non-integer ``ignore_index`` or ``axis``, a ``weight`` that is not real.
    ValueError
        If ``reduction`` is unknown, ``weight`` not 1-D, or ``n_threads`` below 1.

    See Also
    --------
    nll_loss : The function, with the formulas.
    fastxent.torch.NLLLoss : A ``torch.nn.Module`` with autograd.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> logp = np.log([[0.7, 0.2, 0.1],
    ...                [0.1, 0.6, 0.3]])
    >>> loss_fn = fastxent.NLLLoss(weight=[1.0, 1.0, 4.0], reduction="sum")
    >>> round(float(loss_fn(logp, [0, 2])), 4)
    5.1726
    >>> loss_fn.ignore_index = 2                  # the second target is ignored from now on
    >>> round(float(loss_fn(logp, [0, 2])), 4)
    0.3567
    """
    __slots__ = ("_weight", "_ignore_index", "_axis")
    _weight: Optional[NDArray[Any]]
    _ignore_index: int
    _axis: Optional[int]
    _options = ("weight", "ignore_index", "reduction", "axis", "n_threads")

    weight: _Option[Optional[ArrayInput], Optional[NDArray[Any]]] = _Option(
        _args.class_weight_option, "A weight per class, shape ``(C,)``, or None.", "[1.0, 2.0]",
        "array([1., 2.])")
    ignore_index: _Option[int, int] = _Option(
        _args.check_int64, "Class-index targets equal to it add nothing.", "-1", "-1")
    axis: _Option[Optional[int], Optional[int]] = _Option(
        _args.axis_option, "The class axis; None for PyTorch's convention.", "-1", "-1")

    def __init__(self, weight: ArrayInput | None = None, *, ignore_index: int = -100,
                 reduction: Reduction = "mean", axis: int | None = None,
                 n_threads: int | None = None) -> None:
        self.weight = weight
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.axis = axis
        self.n_threads = n_threads

    if not TYPE_CHECKING:       # type checkers read _Loss.__call__'s overloads
        __call__ = _loss_docs.documented_call(_Loss.__call__, "NLLLoss")

    def _run(self, input: Any, target: Any, return_grad: bool, grad_output: Any, out: Any,
             sample_weight: Any) -> Any:
        return _multiclass("nll", input, target, self._weight, self._ignore_index,
                           self._reduction, 0.0, self._axis, return_grad, grad_output, out,
                           self._n_threads, sample_weight)


class BCELoss(_Loss):
    """Binary cross-entropy with its options kept as attributes, like ``torch.nn.BCELoss``.

    The options go to the constructor, the data to the call:
    ``loss_fn(input, target)`` is :func:`fastxent.binary_cross_entropy` with
    the options as keywords.  Each option is an attribute of the same name;
    assigning one checks it (the function's TypeError or ValueError, raised
    by the assignment) and the next call uses it, as in PyTorch.  A misspelled
    attribute is an AttributeError; the repr shows the current values.

    Parameters
    ----------
    weight : array_like, optional
        Weights that broadcast to the input as NumPy broadcasts (a scalar, a
        ``(C,)`` vector along the last axis, one per element); default 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses.  "sum": their sum.  "mean": their sum
        divided by the number of elements.
    n_threads : int, optional
        Threads of each call, at least 1 (default: :func:`fastxent.get_num_threads`
        at the time of the call).  The results do not depend on it.

    Raises
    ------
    TypeError
        If an option has the wrong type: a ``weight`` that is not real, a bool
        or a string for ``n_threads``.
    ValueError
        If ``reduction`` is unknown or ``n_threads`` below 1.

    See Also
    --------
    binary_cross_entropy : The function, with the formulas.
    fastxent.torch.BCELoss : A ``torch.nn.Module`` with autograd.

    Examples
    --------
    >>> import fastxent
    >>> loss_fn = fastxent.BCELoss(reduction="sum")
    >>> round(float(loss_fn([0.9, 0.2], [1.0, 0.0])), 4)
    0.3285
    >>> loss_fn.weight = [1.0, 2.0]
    >>> round(float(loss_fn([0.9, 0.2], [1.0, 0.0])), 4)
    0.5516
    """
    __slots__ = ("_weight",)
    _weight: Optional[NDArray[Any]]
    _options = ("weight", "reduction", "n_threads")

    weight: _Option[Optional[ArrayInput], Optional[NDArray[Any]]] = _Option(
        _args.real_array_option, "Weights that broadcast to the input, or None.", "[1.0, 2.0]",
        "array([1., 2.])")

    def __init__(self, weight: ArrayInput | None = None, *, reduction: Reduction = "mean",
                 n_threads: int | None = None) -> None:
        self.weight = weight
        self.reduction = reduction
        self.n_threads = n_threads

    if not TYPE_CHECKING:       # type checkers read _Loss.__call__'s overloads
        __call__ = _loss_docs.documented_call(_Loss.__call__, "BCELoss")

    def _run(self, input: Any, target: Any, return_grad: bool, grad_output: Any, out: Any,
             sample_weight: Any) -> Any:
        return _binary(False, input, target, self._weight, None, self._reduction, return_grad,
                       grad_output, out, self._n_threads, sample_weight)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits with its options kept as attributes, like ``torch.nn.BCEWithLogitsLoss``.

    The options go to the constructor, the data to the call:
    ``loss_fn(input, target)`` is :func:`fastxent.binary_cross_entropy_with_logits`
    with the options as keywords.  Each option is an attribute of the same
    name; assigning one checks it (the function's TypeError or ValueError,
    raised by the assignment) and the next call uses it, as in PyTorch.  A
    misspelled attribute is an AttributeError; the repr shows the current
    values.

    Parameters
    ----------
    weight : array_like, optional
        Weights that broadcast to the input as NumPy broadcasts (a scalar, a
        ``(C,)`` vector along the last axis, one per element); default 1.
    pos_weight : array_like, optional
        Weights of the positive term that broadcast to the input: a ``(C,)``
        vector applies along the last axis, one weight per label; default 1.
    reduction : {"mean", "sum", "none"}, default "mean"
        "none": the elementwise losses.  "sum": their sum.  "mean": their sum
        divided by the number of elements.
    n_threads : int, optional
        Threads of each call, at least 1 (default: :func:`fastxent.get_num_threads`
        at the time of the call).  The results do not depend on it.

    Raises
    ------
    TypeError
        If an option has the wrong type: a ``weight`` or ``pos_weight`` that
        is not real, a bool or a string for ``n_threads``.
    ValueError
        If ``reduction`` is unknown or ``n_threads`` below 1.

    See Also
    --------
    binary_cross_entropy_with_logits : The function, with the formulas.
    fastxent.torch.BCEWithLogitsLoss : A ``torch.nn.Module`` with autograd.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> loss_fn = fastxent.BCEWithLogitsLoss(pos_weight=np.ones(3))
    >>> round(float(loss_fn(np.full((2, 3), 1.0), np.ones((2, 3)))), 4)
    0.3133
    >>> loss_fn.pos_weight = [1.0, 1.0, 4.0]      # one weight per label
    >>> round(float(loss_fn(np.full((2, 3), 1.0), np.ones((2, 3)))), 4)
    0.6265
    """
    __slots__ = ("_weight", "_pos_weight")
    _weight: Optional[NDArray[Any]]
    _pos_weight: Optional[NDArray[Any]]
    _options = ("weight", "pos_weight", "reduction", "n_threads")

    weight: _Option[Optional[ArrayInput], Optional[NDArray[Any]]] = _Option(
        _args.real_array_option, "Weights that broadcast to the input, or None.", "[1.0, 2.0]",
        "array([1., 2.])")
    pos_weight: _Option[Optional[ArrayInput], Optional[NDArray[Any]]] = _Option(
        _args.real_array_option, "Weights of the positive term that broadcast to the input, or None.",
        "[1.0, 2.0]", "array([1., 2.])")

    def __init__(self, weight: ArrayInput | None = None, *, pos_weight: ArrayInput | None = None,
                 reduction: Reduction = "mean", n_threads: int | None = None) -> None:
        self.weight = weight
        self.pos_weight = pos_weight
        self.reduction = reduction
        self.n_threads = n_threads

    if not TYPE_CHECKING:       # type checkers read _Loss.__call__'s overloads
        __call__ = _loss_docs.documented_call(_Loss.__call__, "BCEWithLogitsLoss")

    def _run(self, input: Any, target: Any, return_grad: bool, grad_output: Any, out: Any,
             sample_weight: Any) -> Any:
        if (grad_output is None and out is None and sample_weight is None and self._weight is None
                and self._pos_weight is None and self._n_threads is None):
            res = _fast_bce_logits(input, target, self._reduction, return_grad)
            if res is not None:
                return res
        return _binary(True, input, target, self._weight, self._pos_weight, self._reduction,
                       return_grad, grad_output, out, self._n_threads, sample_weight)
