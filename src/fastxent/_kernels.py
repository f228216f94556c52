"""Picks the kernel module for this CPU, and owns the thread-count setting.

setup.py compiles the same kernels for the baseline instruction set and, on
x86-64, for AVX2+FMA and for AVX-512 (F, DQ, VL, BW, with AVX2 and FMA).  The
baseline module answers which of them the CPU runs (cpu_features()); the
fastest it runs is imported.  FASTXENT_SIMD=baseline, avx2 or avx512 overrides
the choice, e.g. to test every path on one machine; a forced path the CPU lacks
(or this build has no module for) is an ImportError.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

from . import _args, _kernels_baseline

# The SIMD kernel modules, fastest first: (path, the cpu_features() key that
# says the CPU has every instruction set the module is compiled for, those sets).
_SIMD_PATHS = (
    ("avx512", "avx512", "AVX-512F, AVX-512DQ, AVX-512VL, AVX-512BW, AVX2, FMA"),
    ("avx2", "avx2_fma", "AVX2, FMA"),
)
_CHOICES = ("auto", "baseline") + tuple(path for path, _, _ in reversed(_SIMD_PATHS))


def _select() -> tuple[ModuleType, str]:
    choice = os.environ.get("FASTXENT_SIMD", "auto").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise ImportError(f"FASTXENT_SIMD must be one of {', '.join(_CHOICES)}, got {choice!r}")
    if choice == "baseline":
        return _kernels_baseline, "baseline"
    features = _kernels_baseline.cpu_features()
    for path, feature, needs in _SIMD_PATHS:
        if choice not in ("auto", path):
            continue
        if not features[feature]:
            if choice == path:
                raise ImportError(f"FASTXENT_SIMD={path}, but this CPU lacks at least one "
                                  f"of {needs}")
            continue
        try:
            module = importlib.import_module(f"._kernels_{path}", __package__)
        except ImportError as e:
            if choice == path:
                raise ImportError(f"FASTXENT_SIMD={path}, but fastxent._kernels_{path} "
                                  f"cannot be imported (not built here?): {e}") from e
            continue
        return module, path
    return _kernels_baseline, "baseline"


kernels, simd_path = _select()

_num_threads: int | None = None     # set_num_threads's value, None until called
_omp_floor = 0                      # OpenMP counts below this are limits (see get_num_threads)

# OpenMP's thread count in the thread that imported fastxent: its default
# (OMP_NUM_THREADS where set).
_omp_default = _kernels_baseline.omp_max_threads()


def set_num_threads(n: int) -> None:
    """Set the number of threads fastxent uses when a call passes ``n_threads=None``.

    The setting is process-wide: every Python thread sees it.  It is fastxent's
    own: OpenMP's thread count, and with it that of other libraries sharing the
    OpenMP runtime (PyTorch on Linux), is left alone; the count is passed to each
    parallel region instead.  It overrides an OpenMP count lowered before the
    call (``torch.set_num_threads(1)``, say); a limit set afterwards, such as
    ``threadpoolctl.threadpool_limits``, applies (see :func:`get_num_threads`).
    Results are bitwise the same for every thread count: only the speed changes.

    Parameters
    ----------
    n : int
        The number of threads, at least 1.  A count above what one call may
        start (256, or 8 per CPU where that is more) is capped there when a
        call runs.

    Raises
    ------
    TypeError
        If ``n`` is not an integer (a bool, a float or None included).
    ValueError
        If ``n`` is below 1.

    See Also
    --------
    get_num_threads : The count a call with ``n_threads=None`` uses.

    Examples
    --------
    >>> import fastxent
    >>> before = fastxent.get_num_threads()
    >>> fastxent.set_num_threads(1)
    >>> fastxent.get_num_threads()
    1
    >>> fastxent.set_num_threads(before)
    """
    global _num_threads, _omp_floor
    _num_threads = _args.check_threads(n)
    _omp_floor = min(_omp_default, _kernels_baseline.omp_max_threads())


def get_num_threads() -> int:
    """The number of threads a call with ``n_threads=None`` uses.

    Without :func:`set_num_threads`, OpenMP's current count in the calling thread
    (its default honours ``OMP_NUM_THREADS``; ``threadpoolctl.threadpool_limits``
    and, PyTorch sharing the OpenMP runtime on Linux, ``torch.set_num_threads``
    change it).  With it, its value, capped by a limit set through OpenMP in the
    calling thread: an OpenMP count below both the default fastxent saw at import
    and the count in force when :func:`set_num_threads` was called.  A limit at
    or above those cannot be told from no limit, and does not lower a larger
    :func:`set_num_threads`.

    Returns
    -------
    int
        The thread count, at least 1.  Inputs too small to gain from threads
        run on one whatever it says.

    See Also
    --------
    set_num_threads : Set the count, process-wide.

    Examples
    --------
    >>> import fastxent
    >>> fastxent.get_num_threads() >= 1
    True

    Under ``threadpoolctl.threadpool_limits(1)`` it is 1 in the calling
    thread, for as long as the limit lasts.
    """
    omp = _kernels_baseline.omp_max_threads()
    if _num_threads is None:
        return omp
    return min(_num_threads, omp) if omp < _omp_floor else _num_threads


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


def resolve_threads(n_threads: int | None) -> int:
    """The thread count of one call, from a checked ``n_threads``
    (:func:`fastxent._args.threads_option`)."""
    global _ran_parallel
    n = get_num_threads() if n_threads is None else n_threads
    if _serial_after_fork:
        return 1
    if n > 1:
        _ran_parallel = True
    return min(n, MAX_THREADS)


def sample_weight_total(sw, shape: tuple, n_threads: int) -> float:
    """The sum of the flat float64 sample weights ``sw`` (``shape`` as passed),
    added in block order by the kernels' check; a negative or non-finite
    weight is a ValueError naming it."""
    _, _, total, bad = kernels.check_samples(y=None, C=0, ignore_index=0, w=None,
                                             n_threads=n_threads, sw=sw)
    if bad >= 0:
        raise _args.sample_weight_error(sw, bad, shape)
    return total
