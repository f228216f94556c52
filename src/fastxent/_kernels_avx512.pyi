# The same module as _kernels_baseline, compiled for AVX-512 (F, DQ, VL, BW) with FMA.
from ._kernels_baseline import *

__test__: dict[str, str]          # Cython's table of doctests (not re-exported by *)
