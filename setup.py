"""Build of fastxent's Cython/C kernels.

Three things are decided here, once, for the compiler in use:

* OpenMP: the flags are found by compiling and linking a tiny test program.
  Without them (or with FASTXENT_NO_OPENMP=1) the kernels build serially.
* SIMD: the kernel module is compiled three times on x86-64, for the baseline
  instruction set, for AVX2+FMA and for AVX-512 (F, DQ, VL, BW) with FMA;
  fastxent/_kernels.py picks one at import.
* Where generated files go: Cython's .c output goes to the build directory
  (build_temp); the build info (_build_info.py) and the C headers (include/,
  what fastxent.get_include() names) go to build_lib, so `pip install .` writes
  nothing into src/ or cext/.  Only `build_ext --inplace` (a development build)
  puts the modules, the build info and include/ next to the sources, where
  .gitignore covers them.  A read-only checkout builds in a temporary directory.

The flags each kernel module was compiled with are recorded in the build info:
fastxent.get_compile_args() hands them to downstream extensions that cimport
fastxent.kernels, so that the same kernels give them the same speed and bits.

FASTXENT_SANITIZE=1 builds with AddressSanitizer and UBSan (for tests only; GCC
or Clang; tools/run_sanitized.sh builds a copy of the tree that way and runs the
tests under it, with libasan preloaded into the uninstrumented python).

The Cython code uses typed memoryviews only, not NumPy's C API: NumPy is not
needed to build.
"""
import atexit
import glob
import os
import platform
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build import build
from setuptools.command.build_ext import build_ext
from setuptools.command.egg_info import egg_info

HERE = os.path.dirname(os.path.abspath(__file__))
CEXT = os.path.join(HERE, "cext")
PKG_SRC = os.path.join("src", "fastxent")

# Compiler flags (GCC and Clang; MSVC below).  Which of them change results:
#
# -ffp-contract=fast  CHANGES RESULTS.  It lets the compiler fuse a * b + c into
#     one FMA instruction (one rounding instead of two) wherever the target has
#     FMA.  The baseline x86-64 target has none, the AVX2 module is built with
#     -mfma: so the two modules' results differ in the last bit, and a
#     downstream build must use the same flags to get the same bits (see
#     get_compile_args).  It is explicit because -std=c11 (ISO C) would turn
#     contraction off, which costs the AVX2 kernels speed.
# -O3, -fopenmp-simd  Speed only.  Vectorization never reorders a floating-point
#     sum without -ffast-math; the `omp simd` loops reduce with max and |,
#     whose order does not matter.
# -fno-trapping-math, -fno-math-errno  Speed only: the selects of cext/fx_math.h
#     may be if-converted and vectorized, and libm calls need not set errno.
#     No -ffast-math: NaN and inf must behave.
OPTIMIZE = ["-O3"]
FP_FLAGS = ["-fno-trapping-math", "-fno-math-errno", "-ffp-contract=fast"]
COMMON = ["-fopenmp-simd", "-std=c11"]
# For FASTXENT_SANITIZE=1 these replace OPTIMIZE.  -fno-wrapv: CPython's CFLAGS
# carry -fwrapv, which defines signed overflow and so turns UBSan's check of it
# off.  Errors abort the run (-fno-sanitize-recover).
SANITIZE_OPTIMIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fno-wrapv"]
SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]
# The sanitized build also compiles cext/fx_selftest.h's deliberate faults, which
# tools/run_sanitized.sh requires ASan and UBSan to report.
SANITIZE_SELFTEST = ["-DFX_SANITIZE_SELFTEST=1"]
# Per kernel module: the instruction set.  -mfma changes results (above); the
# avx512 module has FMA too.  fastxent/_kernels.py imports a module only where
# the CPU has every feature its flags enable (cext/fx_omp.h).
# -mprefer-vector-width=512  Speed only (the vector width does not reorder a
#     sum: the same bits as 256).  GCC 12's generic tuning already uses 512-bit
#     vectors with -mavx512f (the same code); a tuning for Intel's AVX-512 cores
#     (-mtune=skylake-avx512 and later) would prefer 256 bits, which measured
#     1.4x slower on binary_cross_entropy_with_logits (4M float32) and 1.15-1.4x
#     on float64 8192 x 1000 rows, and at best 7% faster (tiles, loss+grad), on
#     one Zen 4 thread.
SIMD_FLAGS = {
    "baseline": [],
    "avx2": ["-mavx2", "-mfma"],
    "avx512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma",
               "-mprefer-vector-width=512"],
}
SIMD_FLAGS_MSVC = {"baseline": [], "avx2": ["/arch:AVX2"], "avx512": ["/arch:AVX512"]}

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


_scratch = []


def _scratch_dir():
    """A temporary directory for this process's build files, removed at exit."""
    if not _scratch:
        _scratch.append(tempfile.mkdtemp(prefix="fastxent-build-"))
        atexit.register(shutil.rmtree, _scratch[0], True)
    return _scratch[0]


def _tree_is_writable():
    return os.access(HERE, os.W_OK) and os.access(os.path.join(HERE, "src"), os.W_OK)


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
    for cflags, lflags in candidates:
        with open(os.devnull, "w") as devnull:     # the failed probes' compiler errors
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


class Build(build):
    """A read-only source tree builds in a temporary directory."""

    def finalize_options(self):
        if self.build_base in (None, "build") and not _tree_is_writable():
            self.build_base = os.path.join(_scratch_dir(), "build")
        super().finalize_options()


class EggInfo(egg_info):
    """setuptools' own metadata: next to the sources, or in a temporary
    directory when the tree is read-only."""

    def finalize_options(self):
        if self.egg_base is None and not _tree_is_writable():
            self.egg_base = _scratch_dir()
        super().finalize_options()


class BuildExt(build_ext):
    """Adds the flags that depend on the compiler: optimization, OpenMP, SIMD;
    records them; writes Cython's C output into the build directory."""

    def initialize_options(self):
        super().initialize_options()
        self.cython_c_in_temp = 1      # Cython's .c files go to build_temp, not src/

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:      # the kernel modules compile side by side
            self.parallel = os.cpu_count() or 1

    def run(self):
        # setuptools builds an in-place build in build_lib too, and copies the
        # modules to the sources afterwards: remember which it was asked for
        self.fx_inplace = bool(self.inplace)
        super().run()

    def build_extensions(self):
        cc = self.compiler
        msvc = cc.compiler_type == "msvc"
        omp = _openmp_flags(cc)
        sanitize = _env_flag("FASTXENT_SANITIZE") and not msvc
        if msvc:
            base, link = ["/O2", "/fp:precise"], []
        else:
            base = ((SANITIZE_OPTIMIZE + SANITIZE + SANITIZE_SELFTEST if sanitize else OPTIMIZE)
                    + FP_FLAGS + COMMON)
            link = SANITIZE if sanitize else []
        omp_compile, omp_link = omp if omp else ([], [])
        info = {
            "compiler": cc.compiler_type,
            "compiler_version": _compiler_version(cc),
            "openmp": omp is not None,
            "openmp_flags": " ".join(omp_compile),
            "base_flags": " ".join(base),
            "sanitize": sanitize,
            "simd_flags": {},
            # the exact argument lists, for fastxent.get_compile_args()/get_link_args()
            "compile_args": {},
            "link_args": {},
        }
        for ext in self.extensions:
            module = ext.name.rsplit(".", 1)[-1]
            simd = (SIMD_FLAGS_MSVC if msvc else SIMD_FLAGS)[module.rsplit("_", 1)[-1]]
            ext.extra_compile_args = base + simd + omp_compile
            ext.extra_link_args = link + omp_link
            info["simd_flags"][module] = " ".join(simd)
            info["compile_args"][module] = list(ext.extra_compile_args)
            info["link_args"][module] = list(ext.extra_link_args)
        for pkg in self._package_dirs():
            _write_build_info(pkg, info)
            _install_headers(pkg)
        super().build_extensions()

    def _package_dirs(self):
        """Where the package's generated files go: next to the sources for an
        in-place build (what it imports), else build_lib (what is installed)."""
        if getattr(self, "fx_inplace", self.inplace):
            return [os.path.join(HERE, PKG_SRC)]
        return [os.path.join(self.build_lib, "fastxent")]


def _compiler_version(cc):
    exe = getattr(cc, "compiler", None)
    if not exe:
        return cc.compiler_type
    try:
        out = subprocess.run([exe[0], "--version"], capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except Exception:
        return exe[0]


def _write_build_info(pkg, info):
    """Record how the kernels were built, for `python -m fastxent info` and
    fastxent.get_compile_args()."""
    os.makedirs(pkg, exist_ok=True)
    with open(os.path.join(pkg, "_build_info.py"), "w") as f:
        f.write("# Written by setup.py at build time.\nBUILD_INFO = " + repr(info) + "\n")


def _headers():
    """The C headers of cext/, as paths relative to it."""
    return sorted(os.path.relpath(p, CEXT)
                  for p in glob.glob(os.path.join(CEXT, "**", "*.h"), recursive=True))


def _install_headers(pkg):
    """Copy cext's headers to fastxent/include/, the directory fastxent.get_include() names."""
    for name in _headers():
        dest = os.path.join(pkg, "include", name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(os.path.join(CEXT, name), dest)


def _dependencies():
    """What a kernel module is rebuilt after: every header, .pxi and .pxd."""
    sources = [os.path.join("cext", name) for name in _headers()]
    for pattern in ("*.pxi", "*.pxd"):
        sources += sorted(glob.glob(os.path.join(PKG_SRC, pattern)))
    return sources


def _extensions():
    variants = ["baseline"] + (["avx2", "avx512"] if _is_x86_64() else [])
    return [
        Extension(
            f"fastxent._kernels_{v}",
            [os.path.join(PKG_SRC, f"_kernels_{v}.pyx")],
            include_dirs=[CEXT],
            depends=_dependencies(),
        )
        for v in variants
    ]


setup(
    ext_modules=_extensions(),
    cmdclass={"build": Build, "build_ext": BuildExt, "egg_info": EggInfo},
    options={"build_ext": {"cython_directives": {
        "language_level": 3,
        "boundscheck": False,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": False,
        "nonecheck": False,
        "embedsignature": True,
    }}},
)
