"""Typed use of fastxent's public API, checked by `mypy --strict` (not by pytest).

tests/test_typing.py runs mypy on this file.  Each assignment states the type a
user should get; a wrong overload or a missing annotation makes mypy fail.
"""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

import fastxent

Scalar = np.floating[Any]
Array = NDArray[np.floating[Any]]

logits = np.zeros((4, 3), dtype=np.float32)
labels = np.array([0, 1, 2, 1])

# A reduced loss is a NumPy scalar; reduction="none" gives an array.
loss: Scalar = fastxent.cross_entropy(logits, labels)
loss_sum: Scalar = fastxent.cross_entropy(logits, labels, reduction="sum", label_smoothing=0.1)
per_sample: Array = fastxent.cross_entropy(logits, labels, reduction="none")
kept = per_sample[labels > 0]

# return_grad=True: a (loss, grad) tuple.
loss_grad: tuple[Scalar, Array] = fastxent.cross_entropy(logits, labels, return_grad=True)
loss2, grad = fastxent.cross_entropy(logits, labels, weight=[1.0, 2.0, 3.0], return_grad=True)
scalar_loss: Scalar = loss2
grad_array: Array = grad
none_grad: tuple[Array, Array] = fastxent.cross_entropy(
    logits, labels, reduction="none", return_grad=True, grad_output=np.ones(4))
buffer = np.empty_like(logits)
_, into_out = fastxent.cross_entropy(logits, labels, return_grad=True, out=buffer, n_threads=1)

# A run-time choice of reduction or return_grad gives the union.
mode: Literal["mean", "sum", "none"] = "mean"
flag: bool = bool(len(labels))
either = fastxent.cross_entropy(logits, labels, reduction=mode, return_grad=flag)

logp = fastxent.log_softmax(logits, axis=-1)
nll: Scalar = fastxent.nll_loss(logp, labels, ignore_index=1)
nll_grad: tuple[Scalar, Array] = fastxent.nll_loss(logp, labels, return_grad=True)
nll_none: Array = fastxent.nll_loss(logp, labels, reduction="none")

probs: Array = fastxent.softmax(logits)
lse = fastxent.logsumexp(logits, axis=None)
as_float: float = float(lse)

# Modules: options at construction, (loss, grad) with return_grad=True.
loss_fn = fastxent.CrossEntropyLoss(weight=np.ones(3), label_smoothing=0.05)
module_loss = loss_fn(logits, labels)
module_loss_grad, module_grad = loss_fn(logits, labels, return_grad=True)
module_grad_array: Array = module_grad
nll_fn = fastxent.NLLLoss(reduction="sum")
nll_module_grad: Array = nll_fn(logp, labels, return_grad=True)[1]

threads: int = fastxent.get_num_threads()
fastxent.set_num_threads(threads)
include_dir: str = fastxent.get_include()
version: str = fastxent.__version__

# Options are attributes: read back with their types, assigned (checked at run
# time and by the type checker), used by the next call.
loss_fn.reduction = "sum"
loss_fn.label_smoothing = 0.2
loss_fn.ignore_index = -1
loss_fn.axis = -1
loss_fn.n_threads = None
loss_fn.weight = [1.0, 2.0, 3.0]
smoothing: float = loss_fn.label_smoothing
reduction: Literal["mean", "sum", "none"] = loss_fn.reduction
class_weights: NDArray[Any] | None = loss_fn.weight
threads_option: int | None = loss_fn.n_threads
# return_grad, grad_output and out are keyword-only in a call
keyword_grad: Array = loss_fn(logits, labels, return_grad=True, out=np.empty_like(logits))[1]
runtime_choice = loss_fn(logits, labels, return_grad=flag)

# Sample weights leave the types alone; return_hessian=True adds the Hessian.
weighted: Scalar = fastxent.cross_entropy(logits, labels, sample_weight=np.ones(4))
lgh: tuple[Scalar, Array, Array] = fastxent.cross_entropy(
    logits, labels, return_grad=True, return_hessian=True, sample_weight=np.ones(4))
lgh_none: tuple[Array, Array, Array] = fastxent.cross_entropy(
    logits, labels, reduction="none", return_grad=True, return_hessian=True)
hess_into: Array = fastxent.cross_entropy(logits, labels, return_grad=True, return_hessian=True,
                                          out=(np.empty_like(logits), None))[2]
either3 = fastxent.cross_entropy(logits, labels, return_grad=flag, return_hessian=flag)
hvp: Array = fastxent.cross_entropy_hvp(logits, labels, np.ones_like(logits), sample_weight=None,
                                        label_smoothing=0.1, out=np.empty_like(logits))
nll_weighted: tuple[Scalar, Array] = fastxent.nll_loss(logp, labels, return_grad=True,
                                                       sample_weight=[1, 2, 1, 1])
module_weighted: Array = loss_fn(logits, labels, return_grad=True, sample_weight=np.ones(4))[1]
