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
from ._linear import linear_cross_entropy
from ._modules import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, NLLLoss

__all__ = [
    "__version__",
    "cross_entropy",
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
    "get_num_threads",
    "set_num_threads",
    "get_include",
]


def get_include() -> str:
    """The directory of fastxent's C headers, for Cython code that cimports
    ``fastxent.kernels``: pass it in ``include_dirs`` of the extension.

    Examples
    --------
    >>> import os, fastxent
    >>> os.path.isfile(os.path.join(fastxent.get_include(), "fx_xent.h"))
    True
    """
    return _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "include")
