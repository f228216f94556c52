# What the drivers share: fused types, threads, block sums, flat-array helpers,
# and the runtime queries (OpenMP, CPU features).  Included by _kernels.pxi.
#
# Every kernel is declared once, in kernels.pxd; its struct is filled here from
# keyword arguments (the Python layer calls each driver by keyword).

from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memset

cdef extern from "fx_omp.h" nogil:
    int fx_openmp_enabled()
    int fx_omp_max_threads()
    void fx_omp_set_num_threads(int n)
    int fx_cpu_has_avx2_fma()
    int fx_cpu_has_avx512()

cdef extern from "fx_selftest.h" nogil:
    int FX_HAS_SELFTEST
    double fx_selftest_fault(int kind, Py_ssize_t n)

# One fused type for every floating buffer of a call: input, targets, weights,
# outputs.  float16 is converted to float32 by the Python layer.
ctypedef fused real:
    float
    double

# Any flat array the drivers take a pointer of.
ctypedef fused flat:
    float
    double
    int64_t

# Below this many elements a call runs on one thread: starting a parallel region
# costs more than it saves.  (Speed only: results do not depend on it.)
cdef enum:
    SERIAL_BELOW = 32768


cdef inline int threads_for(Py_ssize_t n_elements, Py_ssize_t n_blocks, int n_threads) noexcept nogil:
    if n_elements < SERIAL_BELOW or n_threads < 1:
        return 1
    if n_threads > n_blocks:
        return <int>n_blocks if n_blocks > 0 else 1
    return n_threads


cdef inline void *block_results(Py_ssize_t n, size_t size) except NULL:
    # One result per block, never a zero-size allocation.
    cdef void *p = malloc((n if n > 0 else 1) * size)
    if p == NULL:
        raise MemoryError(f"cannot allocate {n} block results")
    return p


cdef inline double sum_in_order(const double *partials, Py_ssize_t n) noexcept nogil:
    # Block sums are added in block order: the same answer for every thread count.
    cdef double total = 0.0
    cdef Py_ssize_t b
    for b in range(n):
        total += partials[b]
    return total


cdef inline const void *addr(const flat[::1] a, Py_ssize_t n, str name) except? NULL:
    # The first element of a flat array of n elements, or NULL for None (or an
    # empty array).  The length is checked: the kernels trust it.
    if a is None:
        return NULL
    if a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} elements, the call needs {n}")
    return <const void *>&a[0] if n > 0 else NULL


def openmp_enabled():
    """True when the extension was compiled with OpenMP."""
    return bool(fx_openmp_enabled())


def omp_max_threads():
    """OpenMP's current default number of threads (1 without OpenMP)."""
    return fx_omp_max_threads()


def omp_set_num_threads(int n):
    """OpenMP's omp_set_num_threads, for the calling thread (no-op without OpenMP)."""
    fx_omp_set_num_threads(n)


def cpu_features():
    """The CPU features the kernel modules are chosen by: "avx2_fma" (AVX2 and
    FMA, what _kernels_avx2 needs) and "avx512" (AVX-512 F, DQ, VL and BW with
    AVX2 and FMA, what _kernels_avx512 needs)."""
    return {"avx2_fma": bool(fx_cpu_has_avx2_fma()), "avx512": bool(fx_cpu_has_avx512())}


def _sanitizer_selftest(str kind, Py_ssize_t n=10):
    """Commit a deliberate fault in compiled code: ``"read"`` one element past a
    heap buffer, or ``"overflow"`` a signed multiplication.  Only in a build with
    FASTXENT_SANITIZE=1, where ASan/UBSan must report it (tools/run_sanitized.sh);
    elsewhere a RuntimeError."""
    if not FX_HAS_SELFTEST:
        raise RuntimeError("_sanitizer_selftest exists only in a FASTXENT_SANITIZE=1 build")
    if kind not in ("read", "overflow"):
        raise ValueError(f"kind must be 'read' or 'overflow', got {kind!r}")
    return fx_selftest_fault(0 if kind == "read" else 1, n)
