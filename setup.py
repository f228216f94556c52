"""Build of fastxent's Cython/C kernels.

Two things are decided here, once, for the compiler in use:

* OpenMP: the flags are found by compiling and linking a tiny test program.
  Without them (or with FASTXENT_NO_OPENMP=1) the kernels build serially.
* SIMD: the kernel module is compiled twice on x86-64, for the baseline
  instruction set and for AVX2+FMA; fastxent/_kernels.py picks one at import.

The C headers of cext/ are also installed as fastxent/include/, for downstream
Cython code that cimports fastxent.kernels (see fastxent.get_include()).

FASTXENT_SANITIZE=1 builds with AddressSanitizer and UBSan (for tests only; GCC
or Clang; tools/run_sanitized.sh builds a copy of the tree that way and runs the
tests under it, with libasan preloaded into the uninstrumented python).
"""
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
CEXT = os.path.join(HERE, "cext")

_OMP_TEST = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return n > 0 && omp_get_max_threads() > 0 ? 0 : 1;
}
"""


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _compiles(compiler, source, compile_args, link_args):
    """True if `source` compiles and links with the given flags."""
    tmp = tempfile.mkdtemp(prefix="fastxent-probe-")
    try:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=compile_args)
        compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=link_args)
        return True
    except Exception:
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _openmp_flags(compiler):
    """(compile_args, link_args) for OpenMP, or None when it cannot be used."""
    if _env_flag("FASTXENT_NO_OPENMP"):
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    elif sys.platform == "darwin":
        # Apple clang has no -fopenmp of its own: it needs libomp (brew or conda)
        prefix = os.environ.get("OPENMP_PREFIX", "")
        inc = [f"-I{prefix}/include"] if prefix else []
        lib = [f"-L{prefix}/lib"] if prefix else []
        candidates = [(["-Xpreprocessor", "-fopenmp"] + inc, lib + ["-lomp"]), (["-fopenmp"], ["-fopenmp"])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"])]
    quiet = os.devnull
    for cflags, lflags in candidates:
        with open(quiet, "w") as devnull:
            old = os.dup(2)
            os.dup2(devnull.fileno(), 2)
            try:
                ok = _compiles(compiler, _OMP_TEST, cflags, lflags)
            finally:
                os.dup2(old, 2)
                os.close(old)
        if ok:
            return cflags, lflags
    return None


def _is_x86_64():
    return platform.machine().lower() in ("x86_64", "amd64", "x64")


class BuildExt(build_ext):
    """Adds the flags that depend on the compiler: optimization, OpenMP, SIMD."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:   # the kernel modules compile side by side
            self.parallel = os.cpu_count() or 1

    def build_extensions(self):
        cc = self.compiler
        msvc = cc.compiler_type == "msvc"
        omp = _openmp_flags(cc)
        sanitize = _env_flag("FASTXENT_SANITIZE")
        if msvc:
            base = ["/O2", "/fp:precise"]
        else:
            # No -ffast-math: NaN and inf must behave.  No trapping math lets the
            # compiler if-convert the selects of cext/fx_math.h and vectorize.
            base = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=fast", "-fopenmp-simd", "-std=c11"]
            if sanitize:
                # -fno-wrapv: CPython's CFLAGS carry -fwrapv, which defines signed
                # overflow and so turns UBSan's check of it off.  Errors abort the
                # run (-fno-sanitize-recover).  See tools/run_sanitized.sh.
                base = ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-wrapv",
                        "-fsanitize=address,undefined,float-cast-overflow",
                        "-fno-sanitize-recover=all", "-fno-trapping-math", "-fopenmp-simd",
                        "-ffp-contract=fast", "-std=c11"]
        link = ["-fsanitize=address,undefined,float-cast-overflow"] if sanitize and not msvc else []
        info = {
            "compiler": cc.compiler_type,
            "compiler_version": _compiler_version(cc),
            "openmp": omp is not None,
            "openmp_flags": " ".join(omp[0]) if omp else "",
            "base_flags": " ".join(base),
            "sanitize": sanitize,
            "simd_flags": {},
        }
        for ext in self.extensions:
            simd = _simd_flags(ext.name, msvc)
            info["simd_flags"][ext.name.rsplit(".", 1)[-1]] = " ".join(simd)
            ext.extra_compile_args = base + simd + (omp[0] if omp else [])
            ext.extra_link_args = link + (omp[1] if omp else [])
        _write_build_info(self, info)
        _install_headers(self)
        super().build_extensions()


def _simd_flags(ext_name, msvc):
    if not ext_name.endswith("_avx2"):
        return []
    return ["/arch:AVX2"] if msvc else ["-mavx2", "-mfma", "-mf16c"]


def _compiler_version(cc):
    exe = getattr(cc, "compiler", None)
    if not exe:
        return cc.compiler_type
    try:
        out = subprocess.run([exe[0], "--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except Exception:
        return exe[0]


def _write_build_info(cmd, info):
    """Record how the kernels were built, for `python -m fastxent info`."""
    text = "# Written by setup.py at build time.\nBUILD_INFO = " + repr(info) + "\n"
    for pkg in _package_targets(cmd):
        os.makedirs(pkg, exist_ok=True)
        with open(os.path.join(pkg, "_build_info.py"), "w") as f:
            f.write(text)


def _package_targets(cmd):
    """The package directories a build writes generated files into: the source
    tree (what an in-place or editable build imports) and build_lib (the wheel)."""
    targets = [os.path.join(HERE, "src", "fastxent")]
    if not cmd.inplace:
        targets.append(os.path.join(cmd.build_lib, "fastxent"))
    return targets


def _install_headers(cmd):
    """Copy cext/*.h to fastxent/include/, the directory fastxent.get_include() names."""
    for pkg in _package_targets(cmd):
        inc = os.path.join(pkg, "include")
        os.makedirs(inc, exist_ok=True)
        for name in sorted(os.listdir(CEXT)):
            if name.endswith(".h"):
                shutil.copy2(os.path.join(CEXT, name), os.path.join(inc, name))


def _extensions():
    variants = ["baseline"] + (["avx2"] if _is_x86_64() else [])
    return [
        Extension(
            f"fastxent._kernels_{v}",
            [f"src/fastxent/_kernels_{v}.pyx"],
            include_dirs=[CEXT, np.get_include()],
            depends=[os.path.join("cext", f) for f in sorted(os.listdir(CEXT))]
            + ["src/fastxent/_common.pxi", "src/fastxent/_xent.pxi", "src/fastxent/_bce.pxi",
               "src/fastxent/_kernels.pxi"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_2_0_API_VERSION")],
        )
        for v in variants
    ]


setup(
    ext_modules=cythonize(
        _extensions(),
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "nonecheck": False,
            "embedsignature": True,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
