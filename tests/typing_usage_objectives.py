"""Typed use of fastxent.objectives, checked by `mypy --strict` and pyright
(not by pytest); see tests/typing_usage.py."""
from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from fastxent.objectives import (BoostingObjective, lightgbm_objective, logistic_objective,
                                 softmax_objective, xgboost_objective)

Array = NDArray[np.floating[Any]]

raw = np.zeros((4, 3), np.float32)
labels = np.array([0.0, 1.0, 2.0, 1.0], np.float32)
weights = np.ones(4)

grad, hess = softmax_objective(labels, raw)
pair: tuple[Array, Array] = softmax_objective(labels, raw, weights, hessian_factor="xgboost")
scaled: tuple[Array, Array] = softmax_objective(labels, raw, hessian_factor=2.0, n_threads=1)
binary: tuple[Array, Array] = logistic_objective([0, 1], np.zeros(2), sample_weight=[1.0, 2.0])

xgb_obj: BoostingObjective = xgboost_objective()
lgb_obj: BoostingObjective = lightgbm_objective("logistic", n_threads=2)
from_sklearn: tuple[Array, Array] = xgb_obj(labels, raw, sample_weight=weights)
from_lightgbm: tuple[Array, Array] = lgb_obj(np.zeros(4), labels, weights)
name: str = xgb_obj.objective
