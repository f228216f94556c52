# Stub of the kernel extension modules (_kernels_baseline and _kernels_avx2,
# both compiled from _kernels.pxi): the functions the Python layer calls.
# Arrays are flat, C-contiguous, of one dtype per call (float32 or float64).
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

_Real = NDArray[Any]                 # float32 or float64, the same for every argument
_Int64 = NDArray[np.int64]
_Float64 = NDArray[np.float64]

LSE: int
SOFTMAX: int
LOG_SOFTMAX: int

def openmp_enabled() -> bool: ...
def omp_max_threads() -> int: ...
def omp_set_num_threads(n: int) -> None: ...
def cpu_features() -> dict[str, bool]: ...
def check_index_targets(y: _Int64, C: int, ignore_index: int, w: Optional[_Float64],
                        n_threads: int) -> tuple[int, int, float]: ...
def xent(x: _Real, n_outer: int, C: int, inner: int, y: Optional[_Int64], ignore_index: int,
         t: Optional[_Real], w: Optional[_Real], w_sum: float, eps: float,
         loss_out: Optional[_Real], g: Optional[_Real], gout: Optional[_Float64], gscale: float,
         n_threads: int) -> float: ...
def nll(x: _Real, n_outer: int, C: int, inner: int, y: _Int64, ignore_index: int,
        w: Optional[_Real], loss_out: Optional[_Real], g: Optional[_Real],
        gout: Optional[_Float64], gscale: float, n_threads: int) -> float: ...
def lse_family(x: _Real, n_outer: int, C: int, inner: int, mode: int,
               lse_out: Optional[_Real], out: Optional[_Real], n_threads: int) -> None: ...
