"""Argument normalization shared by every public function: done once, here.

Each helper turns one user argument into what the kernels take (a native-order,
C-contiguous float32/float64 buffer, a checked option) or raises a TypeError or
ValueError that names the argument.  Nothing here modifies its input.
"""
from __future__ import annotations

import math
import operator

import numpy as np

REDUCTIONS = ("mean", "sum", "none")


def as_input(x, name: str = "input"):
    """The floating input as a native C-contiguous float32/float64 array.

    Returns ``(array, result_dtype)``: float16 is computed in float32 and its
    results are returned as float16.
    """
    a = np.asarray(x)
    if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4, 8):
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got dtype {a.dtype}")
    result_dtype = a.dtype.newbyteorder("=")
    compute = np.dtype(np.float32) if a.dtype.itemsize == 2 else result_dtype
    # not np.ascontiguousarray: it turns a 0-d array into a 1-d one
    return np.asarray(a, dtype=compute, order="C"), result_dtype


def as_real_array(x, name: str, dtype) -> np.ndarray:
    """A real-valued numeric argument (weights, probabilities) as ``dtype``, C-contiguous."""
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    return np.asarray(a, dtype=dtype, order="C")


def check_reduction(reduction) -> str:
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def check_label_smoothing(label_smoothing) -> float:
    try:
        eps = float(label_smoothing)
    except (TypeError, ValueError):
        raise TypeError(f"label_smoothing must be a float in [0, 1], got {label_smoothing!r}") from None
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    return eps


def check_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


_INT64 = np.iinfo(np.int64)


def check_int64(value, name: str) -> int:
    """An integer the kernels take as int64_t."""
    v = check_int(value, name)
    if not _INT64.min <= v <= _INT64.max:
        raise ValueError(f"{name} must fit in a 64-bit signed integer, got {v}")
    return v


def check_axis(axis, ndim: int, name: str = "axis") -> int:
    ax = check_int(axis, name)
    if not -ndim <= ax < ndim:
        raise ValueError(f"{name}={axis} is out of range for an input with {ndim} dimension(s)")
    return ax % ndim


def class_axis(axis, ndim: int) -> int:
    """The class axis of a cross-entropy input: PyTorch's convention for None."""
    if ndim == 0:
        raise ValueError("input must have at least one dimension (the class axis), got a 0-d array")
    if axis is None:
        return 0 if ndim == 1 else 1
    return check_axis(axis, ndim)


def split_shape(shape: tuple, ax: int):
    """(n_outer, C, inner) for the class axis ``ax`` of ``shape``."""
    return math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:])


def as_index_target(target: np.ndarray, sample_shape: tuple, input_shape: tuple) -> np.ndarray:
    """Class indices as a flat C-contiguous int64 array (any integer dtype accepted)."""
    if target.shape != sample_shape:
        raise ValueError(
            f"target of class indices must have shape {sample_shape} (input {input_shape} "
            f"without its class axis), got target {target.shape}")
    if target.dtype == np.uint64 and target.size and target.max() > np.iinfo(np.int64).max:
        bad = int(np.argmax(target > np.iinfo(np.int64).max))
        raise ValueError(
            f"target value {int(target.reshape(-1)[bad])} at index "
            f"{format_index(bad, sample_shape)} is out of range")
    return np.ascontiguousarray(target, dtype=np.int64).reshape(-1)


def format_index(flat: int, shape: tuple) -> str:
    """A flat position as the index a user would type: ``7`` or ``(1, 3)``."""
    idx = tuple(int(i) for i in np.unravel_index(flat, shape))
    return str(idx[0]) if len(idx) == 1 else str(idx)


def class_weight(weight, n_classes: int, dtype):
    """``weight`` as a (C,) array of ``dtype``, or None."""
    if weight is None:
        return None
    w = as_real_array(weight, "weight", dtype)
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},), one weight per class, got {w.shape}")
    return w


def grad_scale(grad_output, reduction: str, loss_shape: tuple):
    """(gout, gscale) for the kernels: per-sample float64 factors for "none"
    (None for ones), and the scalar factor for the reduced losses."""
    if grad_output is None:
        return None, 1.0
    go = np.asarray(grad_output)
    if go.dtype.kind not in "fiu":
        raise TypeError(f"grad_output must be real numbers, got dtype {go.dtype}")
    want = loss_shape if reduction == "none" else ()
    if go.shape != want:
        raise ValueError(f"grad_output must have the loss's shape {want}, got {go.shape}")
    if reduction == "none":
        return np.ascontiguousarray(go, dtype=np.float64).reshape(-1), 1.0
    return None, float(go)


def grad_buffer(out, shape: tuple, result_dtype, compute_dtype, *inputs):
    """The array the kernels write the gradient into, and the ``out`` to copy it
    to afterwards (only for float16, computed in float32).

    ``inputs`` are every array argument, both as the user passed it and as
    converted for the kernels: ``out`` may overlap none of them (the kernels read
    them while writing ``out``, and the user's arrays are never modified).
    """
    if out is None:
        return np.empty(shape, dtype=compute_dtype), None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a NumPy array, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out must have the input's shape {shape}, got {out.shape}")
    if out.dtype != result_dtype:
        raise TypeError(f"out must have the input's dtype {result_dtype}, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    if any(isinstance(a, np.ndarray) and np.may_share_memory(out, a) for a in inputs):
        raise ValueError("out must not overlap the input or the other arguments")
    if out.dtype != compute_dtype:
        return np.empty(shape, dtype=compute_dtype), out
    return out, None


def as_result(value, result_dtype):
    """A computed value (array or float) in the caller's dtype.  A value beyond
    the dtype's range becomes +-inf, as IEEE rounding has it, without NumPy's
    overflow warning (an error under ``np.seterr(over="raise")``): the overflow
    is the answer, not a fault."""
    with np.errstate(over="ignore"):
        if isinstance(value, np.ndarray):
            return value.astype(result_dtype, copy=False)
        return result_dtype.type(value)


def finish_grad(g: np.ndarray, out, result_dtype):
    """The gradient as returned: copied into ``out`` or cast back to float16."""
    if out is not None:
        with np.errstate(over="ignore"):
            np.copyto(out, g, casting="same_kind")
        return out
    return as_result(g, result_dtype)


def reduce_loss(total: float, denom: float, reduction: str):
    """The reduced loss in float64 (IEEE division: 0/0 is NaN, as in PyTorch)."""
    if reduction == "sum":
        return total
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(total) / np.float64(denom))
