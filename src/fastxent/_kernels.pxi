# The body of the kernel modules.  _kernels_baseline.pyx, _kernels_avx2.pyx and
# _kernels_avx512.pyx include it and differ only in the compiler flags setup.py
# gives them, so that the CPU picks its SIMD path at import (fastxent/_kernels.py).
include "_common.pxi"
include "_xent.pxi"
include "_bce.pxi"
include "_kl.pxi"
include "_focal.pxi"
include "_small.pxi"
