"""What ``python -m fastxent info`` prints: how this build was made and what it runs.

The build half comes from ``_build_info.py``, which setup.py writes at build time;
a build made some other way has none, and says so.  The run half (OpenMP, SIMD path,
threads) is asked of the loaded kernel modules, so it is true of this process.
"""
from __future__ import annotations

import importlib.util
import os
import platform
import sys

import numpy as np

from . import __version__, _kernels


def build_info() -> dict:
    """The BUILD_INFO dict setup.py recorded, or {} when there is none."""
    try:
        from ._build_info import BUILD_INFO
    except ImportError:
        return {}
    return dict(BUILD_INFO)


def compile_args(simd: str | None = None) -> list:
    """The compiler flags kernel module ``simd`` was built with (see
    fastxent.get_compile_args)."""
    return _recorded_args("compile_args", simd)


def link_args(simd: str | None = None) -> list:
    """The linker flags kernel module ``simd`` was built with (see
    fastxent.get_link_args)."""
    return _recorded_args("link_args", simd)


def _recorded_args(key: str, simd: str | None) -> list:
    info = build_info()
    if key not in info:
        raise RuntimeError(f"this fastxent ({os.path.dirname(os.path.abspath(__file__))}) has no "
                           f"record of its build flags: it was not built by fastxent's setup.py, "
                           f"or by an older one")
    paths = simd_paths_compiled()
    path = _kernels.simd_path if simd is None else simd
    if path not in paths or f"_kernels_{path}" not in info[key]:
        raise ValueError(f"simd must be None or one of {', '.join(map(repr, paths))} "
                         f"(the kernel modules of this build), got {simd!r}")
    return list(info[key][f"_kernels_{path}"])


def simd_paths_compiled() -> list:
    """The kernel modules of this installation, e.g. ["baseline", "avx2", "avx512"]."""
    paths = ["baseline"] + [p for p, _, _ in reversed(_kernels._SIMD_PATHS)]
    return [p for p in paths if importlib.util.find_spec(f"fastxent._kernels_{p}") is not None]


def openmp_enabled() -> bool:
    return _kernels._kernels_baseline.openmp_enabled()


def summary() -> str:
    """One line for the header of the bench table."""
    return (f"fastxent {__version__}, NumPy {np.__version__}, Python {platform.python_version()}; "
            f"SIMD {_kernels.simd_path}, OpenMP {'on' if openmp_enabled() else 'off'}, "
            f"{os.cpu_count()} CPUs")


def report() -> str:
    """The text of ``python -m fastxent info``."""
    info = build_info()
    omp = openmp_enabled()
    flags = info.get("simd_flags", {})
    features = _kernels._kernels_baseline.cpu_features()
    lines = [
        ("fastxent", f"{__version__} ({os.path.dirname(os.path.abspath(__file__))})"),
        ("Python", f"{platform.python_version()} ({platform.python_implementation()}, "
                   f"{sys.platform}, {platform.machine()})"),
        ("NumPy", np.__version__),
    ]
    if info:
        lines += [
            ("compiler", f"{info.get('compiler_version', '?')} ({info.get('compiler', '?')})"),
            ("flags", info.get("base_flags", "?") + ("  [sanitizers]" if info.get("sanitize") else "")),
        ]
    else:
        lines.append(("build info", "not recorded (no fastxent/_build_info.py: "
                                    "not built by this repository's setup.py)"))
    omp_flags = info.get("openmp_flags")
    lines += [
        ("OpenMP", ("on" if omp else "off") + (f" ({omp_flags})" if omp and omp_flags else "")),
        ("SIMD compiled", ", ".join(
            p + (f" ({flags[f'_kernels_{p}']})" if flags.get(f"_kernels_{p}") else "")
            for p in simd_paths_compiled())),
        ("SIMD chosen", f"{_kernels.simd_path} (CPU: "
                        + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in features.items())
                        + (f"; FASTXENT_SIMD={os.environ['FASTXENT_SIMD']}"
                           if os.environ.get("FASTXENT_SIMD") else "") + ")"),
        ("threads", f"{_kernels.get_num_threads()} by default (fastxent.get_num_threads()); "
                    f"{os.cpu_count()} CPUs"),
        ("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "not set")),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in lines)
