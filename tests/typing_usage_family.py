"""Typed use of kl_div, distillation_loss, sigmoid_focal_loss and their classes,
checked by `mypy --strict` and pyright (not by pytest); see tests/typing_usage.py."""
from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

import fastxent

Scalar = np.floating[Any]
Array = NDArray[np.floating[Any]]

logp = np.log(np.full((2, 3), 1.0 / 3.0))
probs = np.full((2, 3), 1.0 / 3.0)
logits = np.zeros((2, 3))
teacher = np.ones((2, 3))
labels = np.ones((2, 3))

# kl_div: "mean" is the default, "batchmean" reduces too, "none" gives an array
kl: Scalar = fastxent.kl_div(logp, probs)
kl_batch: Scalar = fastxent.kl_div(logp, probs, reduction="batchmean", log_target=False)
kl_none: Array = fastxent.kl_div(logp, probs, reduction="none")
kl_grad: tuple[Scalar, Array] = fastxent.kl_div(logp, probs, reduction="batchmean",
                                                return_grad=True)
kl_none_grad: tuple[Array, Array] = fastxent.kl_div(logp, logp, reduction="none", log_target=True,
                                                    return_grad=True, grad_output=np.ones((2, 3)))

# distillation_loss: "batchmean" by default
distill: Scalar = fastxent.distillation_loss(logits, teacher, temperature=2.0)
distill_grad: tuple[Scalar, Array] = fastxent.distillation_loss(logits, teacher, axis=-1,
                                                                return_grad=True, n_threads=1)
distill_none: Array = fastxent.distillation_loss(logits, teacher, reduction="none")
mode: Literal["mean", "batchmean", "sum", "none"] = "sum"
either = fastxent.distillation_loss(logits, teacher, reduction=mode)

# sigmoid_focal_loss: "none" by default, as torchvision
focal: Array = fastxent.sigmoid_focal_loss(logits, labels)
focal_mean: Scalar = fastxent.sigmoid_focal_loss(logits, labels, reduction="mean", gamma=1.5)
focal_grad: tuple[Array, Array] = fastxent.sigmoid_focal_loss(logits, labels, alpha=-1.0,
                                                              return_grad=True)
focal_sum_grad: tuple[Scalar, Array] = fastxent.sigmoid_focal_loss(
    logits, labels, reduction="sum", return_grad=True, out=np.empty((2, 3)))

# the classes: options as attributes
kl_fn = fastxent.KLDivLoss(reduction="batchmean", log_target=True)
kl_fn.reduction = "none"
kl_fn.log_target = False
kl_reduction: Literal["mean", "batchmean", "sum", "none"] = kl_fn.reduction
kl_module_grad: Array = kl_fn(logp, probs, return_grad=True)[1]
focal_fn = fastxent.SigmoidFocalLoss(alpha=0.5, gamma=3.0, reduction="sum")
focal_fn.gamma = 2.0
focal_fn.alpha = 0.25
alpha: float = focal_fn.alpha
focal_module_grad: Array = focal_fn(logits, labels, return_grad=True)[1]
