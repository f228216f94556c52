"""Names for the types of fastxent's public API, used in its annotations.

A reduced loss (``"mean"``, ``"sum"``) is a NumPy scalar of the input's dtype;
``reduction="none"`` gives an array; gradients are arrays.  Inputs are anything
NumPy can read: array-likes (sequences, ``__array__``, the buffer protocol) and
DLPack producers (``__dlpack__``).

The options that do not change the result's type are gathered in TypedDicts,
so that the overloads of each function (one per result type) stay short: a
mistyped call lists a few lines, not kilobytes.  ``reduction`` is a Literal
everywhere: a misspelled one (``"avg"``) is a type error.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Literal, Optional, Protocol, Sequence, Tuple, TypedDict, Union

import numpy as np
from numpy.typing import NDArray

if sys.version_info >= (3, 12):
    from collections.abc import Buffer
elif TYPE_CHECKING:
    from typing_extensions import Buffer
else:                    # typing_extensions need not be installed: only type checkers read this
    Buffer = memoryview


class SupportsDLPack(Protocol):
    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...


class SupportsArray(Protocol):
    """NumPy arrays and scalars, and what converts itself to one (tensors, JAX arrays)."""
    def __array__(self) -> np.ndarray[Any, Any]: ...


# What np.asarray (or np.from_dlpack) reads.  Spelled out rather than NumPy's
# ArrayLike, whose ten members a type checker prints in full for every argument
# of every overload when a call matches none of them.
ArrayInput = Union[SupportsArray, Buffer, SupportsDLPack, Sequence[Any], float]
Scalar = np.floating[Any]
Array = NDArray[np.floating[Any]]
Loss = Union[Scalar, Array]
LossAndGrad = Tuple[Loss, Array]
LossGradHess = Tuple[Loss, Array, Array]
# ``out`` of the functions with ``return_hessian``: the gradient's buffer, or
# with return_hessian=True a pair (grad_out, hess_out), either member None.
Out = Union[Array, Tuple[Optional[Array], Optional[Array]]]
Reduction = Literal["mean", "sum", "none"]
Reduced = Literal["mean", "sum"]
KLReduction = Literal["mean", "batchmean", "sum", "none"]
KLReduced = Literal["mean", "batchmean", "sum"]


class _CommonOptions(TypedDict, total=False):
    """Keyword options of every loss function that leave the result's type alone,
    but ``out`` (whose type depends on the function) and ``sample_weight``
    (which the cross-entropy losses take, and the family of kl_div does not)."""
    grad_output: Optional[ArrayInput]
    n_threads: Optional[int]


class _Options(_CommonOptions, total=False):
    """The options of the cross-entropy losses (multi-class and binary) that
    leave the result's type alone, but ``out``."""
    sample_weight: Optional[ArrayInput]


class GradOptions(_Options, total=False):
    """The options of binary_cross_entropy (and nll_loss's, with NLLOptions)."""
    out: Optional[Array]


class NLLOptions(GradOptions, total=False):
    ignore_index: int
    axis: Optional[int]


class CrossEntropyOptions(_Options, total=False):
    ignore_index: int
    axis: Optional[int]
    label_smoothing: float
    z_loss: float
    softcap: Optional[float]
    out: Optional[Out]


class BCEWithLogitsOptions(_Options, total=False):
    pos_weight: Optional[ArrayInput]
    out: Optional[Out]


class FamilyOptions(_CommonOptions, total=False):
    """The options of kl_div, distillation_loss and sigmoid_focal_loss, which
    take no ``sample_weight``."""
    out: Optional[Array]


class KLDivOptions(FamilyOptions, total=False):
    log_target: bool


class DistillationOptions(FamilyOptions, total=False):
    temperature: float
    axis: Optional[int]


class FocalOptions(FamilyOptions, total=False):
    alpha: float
    gamma: float


class ClassSliceOptions(_CommonOptions, total=False):
    """The options of cross_entropy_class_slice (no z_loss, softcap or
    sample_weight; ``out`` the gradient's buffer)."""
    ignore_index: int
    axis: Optional[int]
    label_smoothing: float
    out: Optional[Array]
