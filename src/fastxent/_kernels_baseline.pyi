# Stub of the kernel extension modules (_kernels_baseline, and _kernels_avx2 and
# _kernels_avx512, which re-export it: all are compiled from _kernels.pxi).
# Every driver takes keyword arguments only, all of them required (None for an
# absent array; the compiled drivers let the version 0.2 options default: sw,
# hess and v to None, z_loss and softcap to 0).
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
         n_threads: int, z_loss: float, softcap: float,
         sw: Optional[_Float64], hess: Optional[_Real],
         v: Optional[_Real]) -> float:
    """Cross-entropy of an (n_outer, C, inner) input against y or t; the loss sum
    (z_loss >= 0: the z-loss factor; softcap > 0, or 0 for none; with v, grad
    receives the Hessian times v)."""

def xent_slice(*, x: _Real, n_outer: int, C: int, inner: int, y: Optional[_Int64],
               ignore_index: int, t: Optional[_Real], w: Optional[_Real],
               w_sum: float, eps: float, loss_out: Optional[_Real],
               grad: Optional[_Real], gout: Optional[_Float64], gscale: float,
               row_max: _Float64, log_norm: _Float64, mass: Optional[_Float64],
               class_offset: int, n_classes: int, w_sum_all: float,
               n_threads: int) -> float:
    """Cross-entropy of classes [class_offset, class_offset + C) of n_classes,
    with each row's softmax over all of them (row_max + log_norm); the loss sum."""

def nll(*, x: _Real, n_outer: int, C: int, inner: int, y: _Int64, ignore_index: int,
        w: Optional[_Real], loss_out: Optional[_Real], grad: Optional[_Real],
        gout: Optional[_Float64], gscale: float, n_threads: int,
        sw: Optional[_Float64]) -> float:
    """nll of an (n_outer, C, inner) input of log-probabilities; the loss sum."""

def lse_family(*, x: _Real, n_outer: int, C: int, inner: int, mode: int,
               b: Optional[_Real], lse_out: Optional[_Real], sign_out: Optional[_Real],
               out: Optional[_Real], n_threads: int) -> None:
    """log-sum-exp into lse_out (of the sum weighted by b, like x; its sign into
    sign_out) and, by mode, softmax or log_softmax into out."""

def bce(*, logits: bool, x: _Real, t: _Real, w: Optional[_Real],
        w_dims: Optional[_Intp], w_strides: Optional[_Intp],
        pw: Optional[_Real], pw_dims: Optional[_Intp],
        pw_strides: Optional[_Intp], loss_out: Optional[_Real],
        grad: Optional[_Real], gout: Optional[_Float64], gscale: float,
        n_threads: int, sw: Optional[_Real], sw_dims: Optional[_Intp],
        sw_strides: Optional[_Intp],
        hess: Optional[_Real]) -> tuple[float, int, int]:
    """Binary cross-entropy; (loss sum, n_bad_x, n_bad_t)."""

def kl_div(*, x: _Real, t: _Real, log_target: bool, loss_out: Optional[_Real],
           grad: Optional[_Real], gout: Optional[_Float64], gscale: float,
           n_threads: int) -> float:
    """kl_div of log-probabilities x against t (log_target: log-probabilities); the loss sum."""

def distill(*, s: _Real, t: _Real, n_outer: int, C: int, inner: int, temperature: float,
            loss_out: Optional[_Real], grad: Optional[_Real], gout: Optional[_Float64],
            gscale: float, n_threads: int) -> float:
    """T^2 KL(softmax(t / T) || softmax(s / T)) over an (n_outer, C, inner) layout; the loss sum."""

def focal(*, x: _Real, t: _Real, alpha: float, gamma: float, loss_out: Optional[_Real],
          grad: Optional[_Real], gout: Optional[_Float64], gscale: float,
          n_threads: int) -> tuple[float, int]:
    """The sigmoid focal loss; (loss sum, targets outside [0, 1])."""
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
