# Kernel module compiled for the avx2 instruction set; see _kernels.pxi.
include "_kernels.pxi"
