"""Misuses of fastxent's API that type checkers must reject (not run by pytest).

tests/test_typing_strict.py runs mypy and pyright on this file and requires an
error on exactly the lines marked ``# error`` (and on no other line).
"""
from __future__ import annotations

import numpy as np

import fastxent

logits = np.zeros((4, 3))
labels = np.array([0, 1, 2, 1])
weights = np.ones(3)

fastxent.cross_entropy(logits, labels, reduction="avg")  # error
fastxent.nll_loss(logits, labels, reduction="elementwise_mean")  # error
fastxent.binary_cross_entropy(logits, logits, reduction="Mean")  # error
fastxent.binary_cross_entropy_with_logits(logits, logits, reduction="avg")  # error
fastxent.cross_entropy(logits, labels, return_grad="no")  # error
fastxent.cross_entropy(logits, labels, label_smothing=0.1)  # error

loss_fn = fastxent.CrossEntropyLoss(weights)
fastxent.CrossEntropyLoss(reduction="avg")  # error
loss_fn.reduction = "avg"  # error
loss_fn.label_smothing = 0.1  # error
smoothing = loss_fn.label_smothing  # error
loss_fn.label_smoothing = "0.1"  # error
loss_fn.ignore_index = None  # error
loss_fn.z_loss = None  # error
loss_fn.softcap = "30"  # error
fastxent.cross_entropy(logits, labels, softcap="30")  # error
loss_fn(logits, labels, weights)  # error
loss_fn(logits, labels, True)  # error
fastxent.BCEWithLogitsLoss().pos_wieght = weights  # error
fastxent.NLLLoss().reduction = "average"  # error
fastxent.cross_entropy(logits, labels, return_hessian="yes")  # error
fastxent.binary_cross_entropy(logits, logits, return_hessian=True)  # error
fastxent.nll_loss(logits, labels, return_grad=True, return_hessian=True)  # error
fastxent.cross_entropy_hvp(logits, labels)  # error

fastxent.kl_div(logits, logits, reduction="avg")  # error
fastxent.kl_div(logits, logits, log_taget=True)  # error
fastxent.distillation_loss(logits, logits, reduction="elementwise_mean")  # error
fastxent.distillation_loss(logits, logits, temprature=2.0)  # error
fastxent.sigmoid_focal_loss(logits, logits, reduction="batchmean")  # error
fastxent.sigmoid_focal_loss(logits, logits, gamma="2")  # error
kl_fn = fastxent.KLDivLoss()
kl_fn.reduction = "avg"  # error
focal_fn = fastxent.SigmoidFocalLoss()
focal_fn.gama = 2.0  # error
from fastxent.objectives import softmax_objective, xgboost_objective  # noqa: E402

softmax_objective(labels, logits, hessian_factor="xgb")  # error
xgboost_objective("multiclass")  # error
softmax_objective(labels, logits, weights, 2.0)  # error
