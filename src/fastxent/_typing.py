"""Names for the types of fastxent's public API, used in its annotations.

A reduced loss (``"mean"``, ``"sum"``) is a NumPy scalar of the input's dtype;
``reduction="none"`` gives an array; gradients are arrays.  Inputs are anything
NumPy can read: array-likes (sequences, ``__array__``, the buffer protocol) and
DLPack producers (``__dlpack__``).
"""
from __future__ import annotations

from typing import Any, Literal, Protocol, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray


class SupportsDLPack(Protocol):
    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...


ArrayInput = Union[ArrayLike, SupportsDLPack]
Scalar = np.floating[Any]
Array = NDArray[np.floating[Any]]
Loss = Union[Scalar, Array]
LossAndGrad = Tuple[Loss, Array]
Reduction = Literal["mean", "sum", "none"]
