"""Custom objectives for gradient boosting: XGBoost's and LightGBM's layouts.

A boosting library's custom objective returns, for every sample (and class),
the gradient and the Hessian's diagonal of the loss with respect to the raw
scores.  For the cross-entropy both come out of fastxent's fused kernel in one
pass (``cross_entropy(..., reduction="sum", return_grad=True,
return_hessian=True, sample_weight=...)``); this module shapes the call and
its results the way the libraries want them.

* :func:`softmax_objective`, :func:`logistic_objective`: ``(grad, hess)``
  from labels and raw scores.  Labels may be float (both libraries store them
  as float32): whole numbers are class indices, anything else a ValueError.
* :func:`xgboost_objective`, :func:`lightgbm_objective`: callables for each
  library's two interfaces, ``xgboost.train(..., obj=f)`` /
  ``XGBClassifier(objective=f)`` and ``lightgbm.train({"objective": f, ...})``
  / ``LGBMClassifier(objective=f)``, with the Hessian factor of the library's
  built-in objective, so that the custom objective grows the built-in's trees.

Neither library is imported here, even by the adapters: they read the training
set through its ``get_label`` and ``get_weight`` methods.

Layout: XGBoost (2.0 and later) hands multi-class scores as a C-ordered
``(n, K)`` array and LightGBM (4.0 and later) as a Fortran-ordered one (a view
of its class-major buffer); the kernel reads either in place (the Fortran one
as ``(K, n)`` with the class axis first) and the results have the scores'
memory layout, so that neither library copies them back.
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, Literal, Optional, Tuple, Union

import numpy as np

from ._binary import binary_cross_entropy_with_logits
from ._multiclass import cross_entropy

if TYPE_CHECKING:
    from ._typing import Array, ArrayInput

__all__ = ["softmax_objective", "logistic_objective", "xgboost_objective",
           "lightgbm_objective", "BoostingObjective"]

HessianFactor = Union[float, Literal["xgboost", "lightgbm"]]
ObjectiveName = Literal["softmax", "logistic"]

# The Hessian factors of the built-in multi-class objectives (their sources:
# XGBoost's SoftmaxMultiClassObj, ``2 p (1 - p)``; LightGBM's
# MulticlassSoftmax, ``K / (K - 1) p (1 - p)``).
_LIBRARY_FACTORS = {"xgboost": lambda K: 2.0, "lightgbm": lambda K: K / (K - 1.0)}


def _hessian_factor(factor: Any, n_classes: int) -> float:
    if isinstance(factor, str):
        if factor not in _LIBRARY_FACTORS:
            raise ValueError(f'hessian_factor must be a positive number, "xgboost" or "lightgbm", '
                             f'got {factor!r}')
        return _LIBRARY_FACTORS[factor](n_classes)
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real):
        raise TypeError(f'hessian_factor must be a positive number, "xgboost" or "lightgbm", '
                        f'got {type(factor).__name__}')
    value = float(factor)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"hessian_factor must be a positive finite number, got {factor!r}")
    return value


def _scores(raw: Any) -> np.ndarray:
    a = np.asarray(raw)
    if a.dtype.kind != "f":
        raise TypeError(f"raw must hold floating scores (float16, float32 or float64), got dtype {a.dtype}")
    return a


def _first(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad.reshape(-1))[0])


def _class_indices(labels: Any, n: int, n_classes: int) -> np.ndarray:
    """Labels as class indices in [0, K): integers as they are, floats holding
    whole numbers (XGBoost's and LightGBM's float32 labels) cast to int64."""
    lab = np.asarray(labels)
    if lab.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), one class index per row of raw "
                         f"({n}, {n_classes}), got {lab.shape}")
    if lab.dtype.kind == "b":
        lab = lab.astype(np.int64)
    if lab.dtype.kind in "iu":
        bad = (lab < 0) | (lab >= n_classes)
        if bad.any():
            i = _first(bad)
            raise ValueError(f"labels[{i}] = {lab[i]} is not a class index in [0, {n_classes}) "
                             f"(raw has {n_classes} columns)")
        return lab
    if lab.dtype.kind != "f":
        raise TypeError(f"labels must be class indices (integers, or floats holding whole "
                        f"numbers), got dtype {lab.dtype}")
    whole = np.floor(lab) == lab                    # False for NaN and inf
    bad = ~(whole & (lab >= 0) & (lab < n_classes))
    if bad.any():
        i = _first(bad)
        what = ("is not a whole number" if not whole[i] else
                f"is not a class index in [0, {n_classes}) (raw has {n_classes} columns)")
        raise ValueError(f"labels[{i}] = {lab[i]} {what}: labels of a multi-class objective are "
                         f"class indices, which float labels may hold as whole numbers")
    return lab.astype(np.int64)


def _per_sample(sample_weight: Any, n: int, raw_shape: tuple) -> Optional[np.ndarray]:
    if sample_weight is None:
        return None
    sw = np.asarray(sample_weight)
    if sw.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), one weight per sample (a row of "
                         f"raw {raw_shape}), got {sw.shape}")
    return sw


def softmax_objective(labels: ArrayInput, raw: ArrayInput, sample_weight: ArrayInput | None = None,
                      *, hessian_factor: HessianFactor = 1.0,
                      n_threads: int | None = None) -> Tuple[Array, Array]:
    """Gradient and Hessian diagonal of the multi-class cross-entropy, per sample and class.

    What a boosting library's multi-class custom objective returns: with ``p``
    the softmax of a sample's raw scores and ``w`` its sample weight, the
    gradient of ``w * cross_entropy`` with respect to the scores, ``w * (p -
    one_hot(label))``, and the Hessian's diagonal times ``hessian_factor``,
    ``hessian_factor * w * p * (1 - p)``.  Both come from one pass of
    :func:`fastxent.cross_entropy`'s fused kernel.

    Parameters
    ----------
    labels : array_like, shape (n,)
        Class indices in ``[0, K)``: integers, or floats holding whole numbers
        (XGBoost and LightGBM store labels as float32).
    raw : array_like, shape (n, K)
        Raw scores (margins, before the softmax): float32, float64 or float16,
        C- or Fortran-ordered (XGBoost passes the one, LightGBM the other),
        read in place.
    sample_weight : array_like, shape (n,), optional
        A non-negative, finite weight per sample, which multiplies both
        results (default: 1 for every sample).
    hessian_factor : float or {"xgboost", "lightgbm"}, default 1.0
        A factor of the Hessian's diagonal.  1.0 is the exact diagonal;
        "xgboost" is 2, the factor of XGBoost's ``multi:softprob``; "lightgbm"
        is ``K / (K - 1)``, that of LightGBM's ``multiclass``.  With the
        library's factor a custom objective grows the built-in's trees.
    n_threads : int, optional
        Threads for the call (default :func:`fastxent.get_num_threads`); the
        results are bitwise the same for every count.

    Returns
    -------
    grad : ndarray, shape (n, K)
        ``w * (p - one_hot(label))``, in ``raw``'s dtype and memory layout.
    hess : ndarray, shape (n, K)
        ``hessian_factor * w * p * (1 - p)``, the same dtype and layout.

    Raises
    ------
    TypeError
        ``raw`` is not floating; ``labels`` are neither integers nor floats;
        ``hessian_factor`` is not a number or a library's name.
    ValueError
        ``raw`` is not 2-D with at least 2 columns; ``labels`` or
        ``sample_weight`` do not have one entry per row; a label is not a whole
        number in ``[0, K)`` (the error names the first and its index); a
        sample weight is negative or not finite; ``hessian_factor`` is not
        positive.

    See Also
    --------
    xgboost_objective : This function in XGBoost's calling conventions.
    lightgbm_objective : This function in LightGBM's calling conventions.
    logistic_objective : The binary (sigmoid) counterpart.

    Notes
    -----
    The exact Hessian of the cross-entropy is not diagonal (``diag(p) - p
    p^T`` per sample); boosting libraries grow one tree per class and use its
    diagonal.  XGBoost doubles it (an upper bound of the curvature that makes
    each tree's step more conservative) and LightGBM scales it by ``K / (K -
    1)``.  XGBoost's built-in also floors the Hessian at 1e-16; this function
    does not, which changes no split or leaf while ``reg_lambda`` (1 by
    default) is positive.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.objectives import softmax_objective
    >>> raw = np.array([[2.0, 0.0, 0.0],
    ...                 [0.0, 0.0, 0.0]])
    >>> grad, hess = softmax_objective(np.array([0.0, 2.0]), raw)
    >>> grad.round(4)
    array([[-0.213 ,  0.1065,  0.1065],
           [ 0.3333,  0.3333, -0.6667]])
    >>> hess.round(4)
    array([[0.1676, 0.0952, 0.0952],
           [0.2222, 0.2222, 0.2222]])

    XGBoost's factor, and sample weights:

    >>> _, hess = softmax_objective([0, 2], raw, [1.0, 0.5], hessian_factor="xgboost")
    >>> hess.round(4)
    array([[0.3353, 0.1903, 0.1903],
           [0.2222, 0.2222, 0.2222]])

    A label that is not a class index:

    >>> softmax_objective(np.array([0.0, 1.5]), raw)
    Traceback (most recent call last):
    ...
    ValueError: labels[1] = 1.5 is not a whole number: labels of a multi-class objective are class indices, which float labels may hold as whole numbers
    """
    x = _scores(raw)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"raw must have shape (n_samples, n_classes) with at least 2 classes, got "
                         f"{x.shape} (XGBoost passes (n, K) scores when num_class is set, "
                         f"LightGBM when num_class > 1)")
    n, n_classes = x.shape
    y = _class_indices(labels, n, n_classes)
    sw = _per_sample(sample_weight, n, x.shape)
    factor = _hessian_factor(hessian_factor, n_classes)
    # A Fortran-ordered (n, K) is a C-ordered (K, n): read it with the class axis
    # first, and its results transposed back are Fortran-ordered (n, K) too.
    transposed = x.flags.f_contiguous and not x.flags.c_contiguous
    _, grad, hess = cross_entropy(x.T if transposed else x, y, ignore_index=-1, reduction="sum",
                                  axis=0 if transposed else 1, return_grad=True,
                                  return_hessian=True, sample_weight=sw, n_threads=n_threads)
    if factor != 1.0:
        np.multiply(hess, factor, out=hess)
    return (grad.T, hess.T) if transposed else (grad, hess)


def _binary_labels(labels: Any, shape: tuple) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != shape:
        raise ValueError(f"labels must have raw's shape {shape}, got {lab.shape}")
    if lab.dtype.kind not in "biuf":
        raise TypeError(f"labels must be 0/1 classes or probabilities, got dtype {lab.dtype}")
    bad = ~((lab >= 0) & (lab <= 1))                # True for NaN
    if bad.any():
        i = _first(bad)
        where = np.unravel_index(i, shape)
        index = where[0] if len(where) == 1 else tuple(int(k) for k in where)
        raise ValueError(f"labels[{index}] = {lab.reshape(-1)[i]} is outside [0, 1]: labels of a "
                         f"logistic objective are 0/1 classes or probabilities")
    return lab if lab.dtype.kind == "f" else lab.astype(np.float64)


def logistic_objective(labels: ArrayInput, raw: ArrayInput, sample_weight: ArrayInput | None = None,
                       *, n_threads: int | None = None) -> Tuple[Array, Array]:
    """Gradient and Hessian of the binary cross-entropy on logits, per sample.

    What a boosting library's binary custom objective returns: with ``s`` the
    sigmoid of a raw score, ``t`` its label and ``w`` its sample weight, the
    gradient of ``w * binary_cross_entropy_with_logits`` with respect to the
    score, ``w * (s - t)``, and its second derivative ``w * s * (1 - s)``, as
    XGBoost's ``binary:logistic`` and LightGBM's ``binary`` compute them.
    Both come from one pass of
    :func:`fastxent.binary_cross_entropy_with_logits`'s fused kernel.

    Parameters
    ----------
    labels : array_like
        ``raw``'s shape: 0/1 classes (bool, integer or float) or probabilities
        in ``[0, 1]``.
    raw : array_like, shape (n,) or (n, T)
        Raw scores (logits): float32, float64 or float16; ``(n, T)`` for ``T``
        binary targets per sample.
    sample_weight : array_like, shape (n,), optional
        A non-negative, finite weight per sample (per row of a 2-D ``raw``),
        which multiplies both results.
    n_threads : int, optional
        Threads for the call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    grad : ndarray
        ``w * (s - t)``, ``raw``'s shape and dtype.
    hess : ndarray
        ``w * s * (1 - s)``, ``raw``'s shape and dtype.

    Raises
    ------
    TypeError
        ``raw`` is not floating, or ``labels`` are not numbers.
    ValueError
        ``labels`` do not have ``raw``'s shape or ``sample_weight`` one entry
        per sample; a label is outside ``[0, 1]`` or NaN; a sample weight is
        negative or not finite.

    See Also
    --------
    softmax_objective : The multi-class counterpart.
    xgboost_objective : This function in XGBoost's calling conventions.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.objectives import logistic_objective
    >>> grad, hess = logistic_objective(np.array([1.0, 0.0]), np.array([0.0, 2.0]))
    >>> grad.round(4), hess.round(4)
    (array([-0.5   ,  0.8808]), array([0.25 , 0.105]))
    >>> _, hess = logistic_objective([1, 0], [0.0, 2.0], sample_weight=[2.0, 0.0])
    >>> hess.round(4)
    array([0.5, 0. ])
    """
    x = _scores(raw)
    if x.ndim == 0:
        raise ValueError("raw must have one score per sample, shape (n,) or (n, T), got a scalar")
    t = _binary_labels(labels, x.shape)
    sw = _per_sample(sample_weight, x.shape[0], x.shape)
    if sw is not None:
        sw = sw.reshape(sw.shape + (1,) * (x.ndim - 1))      # a row's weight for each of its targets
    _, grad, hess = binary_cross_entropy_with_logits(x, t, reduction="sum", return_grad=True,
                                                     return_hessian=True, sample_weight=sw,
                                                     n_threads=n_threads)
    return grad, hess


_OBJECTIVES = {"softmax": softmax_objective, "logistic": logistic_objective}


class BoostingObjective:
    """A fastxent objective in a boosting library's calling conventions.

    Made by :func:`xgboost_objective` and :func:`lightgbm_objective`.  One
    object serves both interfaces of its library: the native training
    function calls it with ``(raw, training_set)``, the scikit-learn wrappers
    with ``(labels, raw, sample_weight)``; it tells them apart by the second
    argument (a training set has ``get_label``).  It holds no state beyond its
    options and can be pickled, copied and cloned with the estimator that
    holds it.

    Parameters
    ----------
    objective : {"softmax", "logistic"}
        :func:`softmax_objective` (multi-class) or :func:`logistic_objective`
        (binary).
    library : {"xgboost", "lightgbm"}
        Whose Hessian factor the softmax objective uses (see
        :func:`softmax_objective`'s ``hessian_factor``).
    n_threads : int, optional
        Threads for each call (default :func:`fastxent.get_num_threads`).

    Attributes
    ----------
    objective : str
        The objective, as given.
    library : str
        The library, as given.
    n_threads : int or None
        The thread count, as given.

    See Also
    --------
    xgboost_objective : The object for XGBoost.
    lightgbm_objective : The object for LightGBM.

    Examples
    --------
    >>> import numpy as np
    >>> from fastxent.objectives import BoostingObjective
    >>> obj = BoostingObjective("softmax", "lightgbm")
    >>> obj
    lightgbm_objective('softmax')
    >>> grad, hess = obj(np.array([0.0]), np.zeros((1, 3)))
    >>> hess.round(4)
    array([[0.3333, 0.3333, 0.3333]])
    """

    def __init__(self, objective: ObjectiveName, library: Literal["xgboost", "lightgbm"],
                 n_threads: int | None = None) -> None:
        if objective not in _OBJECTIVES:
            raise ValueError(f'objective must be "softmax" or "logistic", got {objective!r}')
        if library not in _LIBRARY_FACTORS:
            raise ValueError(f'library must be "xgboost" or "lightgbm", got {library!r}')
        if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int)):
            raise TypeError(f"n_threads must be an int or None, got {type(n_threads).__name__}")
        self.objective = objective
        self.library = library
        self.n_threads = n_threads

    def __call__(self, first: Any, second: Any,
                 sample_weight: ArrayInput | None = None) -> Tuple[Array, Array]:
        """The gradient and Hessian diagonal, from either calling convention.

        Parameters
        ----------
        first : ndarray
            The raw scores (native ``train``) or the labels (scikit-learn
            wrappers).
        second : training set or ndarray
            The training set, a ``DMatrix`` or ``lightgbm.Dataset``, whose
            labels and weights are used (native ``train``), or the raw scores
            (scikit-learn wrappers).
        sample_weight : array_like, optional
            The sample weights of the scikit-learn wrappers (ignored with a
            training set, whose own weights are used).

        Returns
        -------
        grad : ndarray
            The gradient, the scores' shape.
        hess : ndarray
            The Hessian's diagonal, the scores' shape.

        Examples
        --------
        >>> import numpy as np, fastxent.objectives as fo
        >>> grad, hess = fo.xgboost_objective("logistic")(np.array([1.0]), np.array([0.0]))
        >>> grad, hess
        (array([-0.5]), array([0.25]))
        """
        if hasattr(second, "get_label"):                  # native: (raw, training set)
            raw, labels = first, second.get_label()
            weights = second.get_weight()
            sample_weight = None if weights is None or np.size(weights) == 0 else weights
        else:                                             # scikit-learn: (labels, raw, weight)
            labels, raw = first, second
        if self.objective == "softmax":
            return softmax_objective(labels, raw, sample_weight, hessian_factor=self.library,
                                     n_threads=self.n_threads)
        return logistic_objective(labels, raw, sample_weight, n_threads=self.n_threads)

    def __repr__(self) -> str:
        threads = "" if self.n_threads is None else f", n_threads={self.n_threads}"
        return f"{self.library}_objective({self.objective!r}{threads})"

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and (self.objective, self.library, self.n_threads)
                == (other.objective, other.library, other.n_threads))   # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((self.objective, self.library, self.n_threads))


def xgboost_objective(objective: ObjectiveName = "softmax", *,
                      n_threads: int | None = None) -> BoostingObjective:
    """An XGBoost custom objective computed by fastxent's fused kernel.

    For ``xgboost.train(params, dtrain, obj=f)`` and
    ``xgboost.XGBClassifier(objective=f)`` alike.  The multi-class objective
    uses XGBoost's Hessian factor (2, as ``multi:softprob``), so it grows the
    same trees as the built-in objective.

    Parameters
    ----------
    objective : {"softmax", "logistic"}, default "softmax"
        "softmax" (multi-class, as ``multi:softprob``; set ``num_class`` for
        ``xgboost.train``) or "logistic" (binary, as ``binary:logistic``).
    n_threads : int, optional
        Threads for each call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    BoostingObjective
        A callable taking ``(raw, dtrain)`` (``xgboost.train``'s ``obj``) or
        ``(labels, raw, sample_weight=None)`` (``XGBClassifier``'s
        ``objective``), returning ``(grad, hess)`` of the scores' shape.

    See Also
    --------
    softmax_objective : The multi-class gradient and Hessian.
    logistic_objective : The binary gradient and Hessian.
    lightgbm_objective : The same for LightGBM.

    Notes
    -----
    XGBoost (2.0 and later) estimates the intercept (``base_score``) from the
    labels for its built-in objectives only: a model trained with a custom
    objective starts from ``base_score`` (0.5 by default).  To get the
    built-in's model, set ``base_score`` in both (``base_score=0`` is a margin
    of 0 for ``multi:softprob``; a probability of 0.5 for ``binary:logistic``).
    ``xgboost.train`` with ``obj=`` and without ``objective`` returns raw
    margins from ``predict``; with ``"objective": "multi:softprob"`` in the
    parameters too, ``predict`` applies its softmax (``XGBClassifier`` sets
    that itself, so its ``predict_proba`` gives probabilities).

    Examples
    --------
    The scikit-learn convention, ``(labels, raw, sample_weight)``:

    >>> import numpy as np
    >>> from fastxent.objectives import xgboost_objective
    >>> obj = xgboost_objective("softmax")
    >>> grad, hess = obj(np.array([1.0]), np.zeros((1, 2), np.float32))
    >>> grad, hess
    (array([[ 0.5, -0.5]], dtype=float32), array([[0.5, 0.5]], dtype=float32))

    With XGBoost (not run here)::

        import xgboost as xgb
        booster = xgb.train({"num_class": 10, "base_score": 0.0}, dtrain, 20,
                            obj=xgboost_objective())
        clf = xgb.XGBClassifier(objective=xgboost_objective(), base_score=0.0).fit(X, y)
    """
    return BoostingObjective(objective, "xgboost", n_threads)


def lightgbm_objective(objective: ObjectiveName = "softmax", *,
                       n_threads: int | None = None) -> BoostingObjective:
    """A LightGBM custom objective computed by fastxent's fused kernel.

    For ``lightgbm.train({"objective": f, ...}, train_set)`` and
    ``lightgbm.LGBMClassifier(objective=f)`` alike.  The multi-class objective
    uses LightGBM's Hessian factor (``K / (K - 1)``, as ``multiclass``), so it
    grows the same trees as the built-in objective.

    Parameters
    ----------
    objective : {"softmax", "logistic"}, default "softmax"
        "softmax" (multi-class, as ``multiclass``; set ``num_class`` for
        ``lightgbm.train``) or "logistic" (binary, as ``binary``).
    n_threads : int, optional
        Threads for each call (default :func:`fastxent.get_num_threads`).

    Returns
    -------
    BoostingObjective
        A callable taking ``(raw, train_set)`` (``lightgbm.train``) or
        ``(labels, raw, weight)`` (``LGBMClassifier``), returning ``(grad,
        hess)`` of the scores' shape and layout (LightGBM's multi-class scores
        are Fortran-ordered ``(n, K)``; the results are too, and LightGBM
        flattens them without a copy).

    See Also
    --------
    softmax_objective : The multi-class gradient and Hessian.
    logistic_objective : The binary gradient and Hessian.
    xgboost_objective : The same for XGBoost.

    Notes
    -----
    LightGBM's built-in objectives start from the log class prior
    (``boost_from_average``); a custom objective starts from 0.  To get the
    built-in's model, pass ``boost_from_average=False`` to the built-in, or
    give the custom one ``init_score`` (the log of the weighted class
    frequencies, for each sample; ``predict`` then leaves it out, so add it
    back).  With a custom objective ``predict`` returns raw scores, and so do
    ``LGBMClassifier.predict`` and ``predict_proba`` (LightGBM warns):
    :func:`fastxent.softmax` turns them into probabilities.

    Examples
    --------
    The scikit-learn convention, ``(labels, raw, weight)``:

    >>> import numpy as np
    >>> from fastxent.objectives import lightgbm_objective
    >>> obj = lightgbm_objective("softmax")
    >>> grad, hess = obj(np.array([1.0]), np.zeros((1, 3)), np.array([2.0]))
    >>> hess.round(4)
    array([[0.6667, 0.6667, 0.6667]])

    With LightGBM (not run here)::

        import lightgbm as lgb
        booster = lgb.train({"objective": lightgbm_objective(), "num_class": 10},
                            lgb.Dataset(X, y), 20)
        clf = lgb.LGBMClassifier(objective=lightgbm_objective()).fit(X, y)
    """
    return BoostingObjective(objective, "lightgbm", n_threads)
