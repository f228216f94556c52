"""Typed use of fastxent's binary losses, checked by `mypy --strict` (not by
pytest); see tests/typing_usage.py."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

import fastxent

Scalar = np.floating[Any]
Array = NDArray[np.floating[Any]]

probs = np.full((2, 3), 0.7)
logits = np.full((2, 3), 1.0)
targets = np.ones((2, 3))

bce: Scalar = fastxent.binary_cross_entropy(probs, targets)
bce_none: Array = fastxent.binary_cross_entropy(probs, targets, reduction="none")
bce_grad: tuple[Scalar, Array] = fastxent.binary_cross_entropy(probs, targets, return_grad=True)
bcel: Scalar = fastxent.binary_cross_entropy_with_logits(logits, targets, pos_weight=np.ones(3))
bcel_pair: tuple[Array, Array] = fastxent.binary_cross_entropy_with_logits(
    logits, targets, reduction="none", return_grad=True, grad_output=np.ones((2, 3)))

bce_fn = fastxent.BCEWithLogitsLoss(pos_weight=np.ones(3))
module_grad: Array = bce_fn(logits, targets, return_grad=True)[1]
module_loss_b = fastxent.BCELoss(reduction="sum")(probs, targets)

bce_fn.pos_weight = np.full(3, 2.0)
bce_fn.reduction = "none"
pos: NDArray[Any] | None = bce_fn.pos_weight
bce_none_grad: Array = bce_fn(logits, targets, return_grad=True, grad_output=np.ones((2, 3)))[1]

bcel_hess: tuple[Scalar, Array, Array] = fastxent.binary_cross_entropy_with_logits(
    logits, targets, return_grad=True, return_hessian=True, sample_weight=np.ones((2, 1)),
    out=(None, np.empty((2, 3))))
bce_weighted: Scalar = fastxent.binary_cross_entropy(probs, targets, sample_weight=2.0)
module_weighted_b: Array = bce_fn(logits, targets, return_grad=True, sample_weight=[[1.0], [2.0]])[1]
