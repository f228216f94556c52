"""fastxent: fast, exact cross-entropy losses and their gradients for NumPy.

PyTorch's semantics (``torch.nn.functional.cross_entropy`` and friends), computed
by Cython/C kernels with OpenMP; the loss and its gradient come from one fused
pass.  See ``python -m fastxent info`` for how this build was configured.
"""
import os as _os

from ._version import __version__
from ._kernels import get_num_threads, set_num_threads
from ._binary import binary_cross_entropy, binary_cross_entropy_with_logits
from ._multiclass import cross_entropy, log_softmax, logsumexp, nll_loss, softmax
from ._class_slice import cross_entropy_class_slice
from ._second_order import cross_entropy_hvp
from ._linear import linear_cross_entropy
from ._modules import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss
from ._kl import distillation_loss, kl_div
from ._focal import sigmoid_focal_loss
from ._family_modules import KLDivLoss, SigmoidFocalLoss

__all__ = [
    "__version__",
    "cross_entropy",
    "cross_entropy_class_slice",
    "cross_entropy_hvp",
    "linear_cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "logsumexp",
    "softmax",
    "log_softmax",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "kl_div",
    "distillation_loss",
    "sigmoid_focal_loss",
    "KLDivLoss",
    "SigmoidFocalLoss",
    "get_num_threads",
    "set_num_threads",
    "get_include",
    "get_compile_args",
    "get_link_args",
    "get_simd_path",
    "get_simd_paths",
]


def get_include() -> str:
    """The directory of fastxent's C headers, for Cython extensions that cimport ``fastxent.kernels``.

    Pass it in ``include_dirs`` of the extension, with
    :func:`get_compile_args` and :func:`get_link_args` for fastxent's speed.
    The headers (``fx_xent.h``, ``fx_bce.h``, ``fx_math.h`` and the others
    ``kernels.pxd`` declares) are those the installed kernels were built from.

    Returns
    -------
    str
        The absolute path of the ``include`` directory inside the installed
        package (or inside ``src/fastxent`` after an in-place build).

    See Also
    --------
    get_compile_args : The compiler flags of fastxent's own kernel module.

    Examples
    --------
    >>> import os, fastxent
    >>> os.path.isfile(os.path.join(fastxent.get_include(), "fx_xent.h"))
    True
    """
    return _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "include")


def get_compile_args(simd: str | None = None) -> list[str]:
    """The compiler flags of fastxent's own kernel module, for C extensions that cimport its kernels.

    With them a downstream extension that cimports ``fastxent.kernels`` runs
    the same kernels at fastxent's speed and gets bitwise fastxent's results.

    The flags include OpenMP's, and ``-ffp-contract=fast``, which changes
    results in the last bit where the instruction set has FMA.

    Parameters
    ----------
    simd : str, optional
        The kernel module whose flags to return, one of :func:`get_simd_paths`
        ("baseline", and "avx2" and "avx512" on x86-64); None is the one
        fastxent runs on this CPU (:func:`get_simd_path`).

    Returns
    -------
    list of str
        The flags, to pass as ``extra_compile_args`` of a setuptools
        ``Extension``.

    Raises
    ------
    RuntimeError
        This fastxent was not built by its own setup.py (no record of the flags).
    ValueError
        ``simd`` is not one of this build's kernel modules.

    Notes
    -----
    An extension built with the flags of "avx2" runs only on CPUs with AVX2 and
    FMA, one built with those of "avx512" only on CPUs with AVX-512 F, DQ, VL
    and BW as well.  A package that ships binaries builds one module per path
    and imports the one fastxent chose::

        # setup.py
        Extension(f"mypkg._ext_{simd}", ["mypkg/_ext.pyx"],
                  include_dirs=[fastxent.get_include()],
                  extra_compile_args=fastxent.get_compile_args(simd),
                  extra_link_args=fastxent.get_link_args(simd))
        for simd in fastxent.get_simd_paths()
        # mypkg/__init__.py
        _ext = importlib.import_module(f"mypkg._ext_{fastxent.get_simd_path()}")

    Examples
    --------
    >>> import fastxent
    >>> "-ffp-contract=fast" in fastxent.get_compile_args("baseline")
    True
    """
    from ._info import compile_args
    return compile_args(simd)


def get_link_args(simd: str | None = None) -> list[str]:
    """The linker flags that go with :func:`get_compile_args` (OpenMP's).

    Parameters
    ----------
    simd : str, optional
        The kernel module, as for :func:`get_compile_args`.

    Returns
    -------
    list of str
        The flags, to pass as ``extra_link_args`` of a setuptools ``Extension``.

    Examples
    --------
    >>> import fastxent
    >>> isinstance(fastxent.get_link_args(), list)
    True
    """
    from ._info import link_args
    return link_args(simd)


def get_simd_path() -> str:
    """The kernel module fastxent runs on this CPU.

    Returns
    -------
    str
        "baseline", "avx2" or "avx512": the fastest this CPU runs, unless
        ``FASTXENT_SIMD`` chose one.

    Examples
    --------
    >>> import fastxent
    >>> fastxent.get_simd_path() in fastxent.get_simd_paths()
    True
    """
    from ._kernels import simd_path
    return simd_path


def get_simd_paths() -> list[str]:
    """The kernel modules of this build.

    Returns
    -------
    list of str
        E.g. ``["baseline", "avx2", "avx512"]`` on x86-64: one downstream
        module per entry covers every CPU (see :func:`get_compile_args`).

    Examples
    --------
    >>> import fastxent
    >>> "baseline" in fastxent.get_simd_paths()
    True
    """
    from ._info import simd_paths_compiled
    return simd_paths_compiled()
