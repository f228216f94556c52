# Stub of the kernel extension modules (_kernels_baseline, and _kernels_avx2,
# which re-exports it: both are compiled from _kernels.pxi).  Every driver takes
# keyword arguments only, all of them required (None for an absent array; the
# compiled drivers let the version 0.2 arrays, sw, hess and v, default to None).
# Arrays are flat and C-contiguous; the floating ones of one call share one
# dtype (float32 or float64), and each is checked against the shape
# (ValueError) before the kernels run.
from typing import Optional, Union

import numpy as np
from numpy.typing import NDArray

_Real = Union[NDArray[np.float32], NDArray[np.float64]]
_Int64 = NDArray[np.int64]
_Float64 = NDArray[np.float64]
_Intp = NDArray[np.intp]

__test__: dict[str, str]          # Cython's table of doctests

LSE: int
SOFTMAX: int
LOG_SOFTMAX: int

def openmp_enabled() -> bool: ...
def omp_max_threads() -> int: ...
def omp_set_num_threads(n: int) -> None: ...
def cpu_features() -> dict[str, bool]: ...

def check_samples(*, y: Optional[_Int64], C: int, ignore_index: int,
                  w: Optional[_Float64], n_threads: int,
                  sw: Optional[_Float64] = None) -> tuple[int, int, float, int]:
    """(first_bad, n_kept, w_kept, first_bad_sw): the first index outside [0, C)
    that is not ignore_index (-1 if none), what a "mean" divides by, and the
    first negative or non-finite sample weight (-1 if none)."""

def xent(*, x: _Real, n_outer: int, C: int, inner: int, y: Optional[_Int64],
         ignore_index: int, t: Optional[_Real], w: Optional[_Real],
         w_sum: float, eps: float, loss_out: Optional[_Real],
         grad: Optional[_Real], gout: Optional[_Float64], gscale: float,
         n_threads: int, sw: Optional[_Float64], hess: Optional[_Real],
         v: Optional[_Real]) -> float:
    """Cross-entropy of an (n_outer, C, inner) input against y or t; the loss sum
    (with v, grad receives the Hessian times v)."""

def nll(*, x: _Real, n_outer: int, C: int, inner: int, y: _Int64, ignore_index: int,
        w: Optional[_Real], loss_out: Optional[_Real], grad: Optional[_Real],
        gout: Optional[_Float64], gscale: float, n_threads: int,
        sw: Optional[_Float64]) -> float:
    """nll of an (n_outer, C, inner) input of log-probabilities; the loss sum."""

def lse_family(*, x: _Real, n_outer: int, C: int, inner: int, mode: int,
               lse_out: Optional[_Real], out: Optional[_Real],
               n_threads: int) -> None:
    """log-sum-exp into lse_out and, by mode, softmax or log_softmax into out."""

def bce(*, logits: bool, x: _Real, t: _Real, w: Optional[_Real],
        w_dims: Optional[_Intp], w_strides: Optional[_Intp],
        pw: Optional[_Real], pw_dims: Optional[_Intp],
        pw_strides: Optional[_Intp], loss_out: Optional[_Real],
        grad: Optional[_Real], gout: Optional[_Float64], gscale: float,
        n_threads: int, sw: Optional[_Real], sw_dims: Optional[_Intp],
        sw_strides: Optional[_Intp],
        hess: Optional[_Real]) -> tuple[float, int, int]:
    """Binary cross-entropy; (loss sum, n_bad_x, n_bad_t)."""

# The fast path of small calls (_small.pxi): positional arguments as the
# public function's; the result it returns, or None where the general path
# must run (an unusual argument, or an input it would refuse).
def fast_calls() -> int:
    """How many calls took the fast path in this module."""

def fast_xent(x: object, target: object, weight: object, ignore_index: object,
              reduction: object, label_smoothing: object, return_grad: object) -> object:
    """cross_entropy's common case, or None."""

def fast_bce_logits(x: object, target: object, reduction: object,
                    return_grad: object) -> object:
    """binary_cross_entropy_with_logits' common case (no weights), or None."""

def fast_lse(x: object, axis: object, mode: int) -> object:
    """logsumexp (keepdims False), softmax or log_softmax's common case, or None."""
