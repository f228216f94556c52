# The same module as _kernels_baseline, compiled for AVX2+FMA.
from ._kernels_baseline import *

__test__: dict[str, str]          # Cython's table of doctests (not re-exported by *)
