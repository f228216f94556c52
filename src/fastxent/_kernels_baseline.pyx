# Kernel module compiled for the baseline instruction set; see _kernels.pxi.
include "_kernels.pxi"
