"""Picks the kernel module for this CPU, and owns the thread-count setting.

setup.py compiles the same kernels for the baseline instruction set and, on
x86-64, for AVX2+FMA.  The baseline module answers whether the CPU has AVX2 and
FMA; the faster module is imported only then.  FASTXENT_SIMD=baseline (or avx2)
overrides the choice, e.g. to test both paths on one machine.
"""
from __future__ import annotations

import os
import operator
from types import ModuleType

from . import _kernels_baseline

_CHOICES = ("auto", "baseline", "avx2")


def _select() -> tuple[ModuleType, str]:
    choice = os.environ.get("FASTXENT_SIMD", "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise ImportError(f"FASTXENT_SIMD must be one of {', '.join(_CHOICES)}, got {choice!r}")
    if choice != "baseline" and _kernels_baseline.cpu_features()["avx2_fma"]:
        try:
            from . import _kernels_avx2
        except ImportError:
            if choice == "avx2":
                raise
        else:
            return _kernels_avx2, "avx2"
    elif choice == "avx2":
        raise ImportError("FASTXENT_SIMD=avx2, but this CPU lacks AVX2 or FMA")
    return _kernels_baseline, "baseline"


kernels, simd_path = _select()

_num_threads: int | None = None     # set_num_threads's value, None until called


def set_num_threads(n: int) -> None:
    """Set the number of threads fastxent uses when a call passes ``n_threads=None``.

    It also sets OpenMP's thread count of the calling thread (as
    ``omp_set_num_threads`` does), so that more threads than OpenMP's default
    can be asked for.

    Examples
    --------
    >>> import fastxent
    >>> fastxent.set_num_threads(1)
    >>> fastxent.get_num_threads()
    1
    """
    global _num_threads
    _num_threads = _check_threads(n)
    _kernels_baseline.omp_set_num_threads(min(_num_threads, MAX_THREADS))   # a C int


def get_num_threads() -> int:
    """The number of threads a call with ``n_threads=None`` uses.

    OpenMP's current setting (its default honours ``OMP_NUM_THREADS``), capped by
    :func:`set_num_threads`.  Limits set through OpenMP in the calling thread, such
    as ``threadpoolctl.threadpool_limits(1)``, therefore always apply.  (PyTorch
    shares the OpenMP runtime on Linux: ``torch.set_num_threads(k)`` limits
    fastxent to ``k`` as well.)
    """
    omp = _kernels_baseline.omp_max_threads()
    return omp if _num_threads is None else min(_num_threads, omp)


def _check_threads(n) -> int:
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"n_threads must be an integer >= 1 or None, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"n_threads must be an integer >= 1 or None, got {n}")
    return n


# The most threads one call starts.  Results do not depend on the count, so the
# cap is invisible, except that an absurd request (n_threads=10**6, or such an
# OMP_NUM_THREADS) no longer makes OpenMP create threads until the system
# refuses one, which libgomp answers by exiting the whole process.
MAX_THREADS = max(256, 8 * (os.cpu_count() or 1))


# GNU OpenMP (libgomp) is not fork-safe: in a process forked after its parent
# ran a parallel region, the next parallel region waits forever for threads
# that were not copied (a DataLoader worker, a pre-forking server).  So a child
# forked after fastxent ran on several threads runs serially; the answers do
# not depend on the thread count.
_ran_parallel = False
_serial_after_fork = False


def _after_fork_in_child() -> None:
    global _serial_after_fork
    if _ran_parallel:
        _serial_after_fork = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def resolve_threads(n_threads) -> int:
    """The thread count of one call."""
    global _ran_parallel
    n = get_num_threads() if n_threads is None else _check_threads(n_threads)
    if _serial_after_fork:
        return 1
    if n > 1:
        _ran_parallel = True
    return min(n, MAX_THREADS)
