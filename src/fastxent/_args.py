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


def asarray(x, name: str) -> np.ndarray:
    """Any array argument as a NumPy array, without a copy where the layout allows.

    ``np.asarray`` takes NumPy arrays, sequences and anything with ``__array__``
    (PyTorch CPU tensors, JAX arrays: views of their memory) or the buffer
    protocol; an object offering only ``__dlpack__`` is read through
    ``np.from_dlpack`` (also a view).  A PyTorch tensor that requires grad is
    refused with a TypeError rather than detached behind the caller's back.
    """
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__dlpack__") and not (hasattr(x, "__array__") or hasattr(x, "__array_interface__")):
        try:
            return np.from_dlpack(x)
        except (BufferError, RuntimeError, TypeError, ValueError) as e:
            raise TypeError(f"{name} could not be read through DLPack: {e}") from None
    try:
        return np.asarray(x)
    except RuntimeError:
        if getattr(x, "requires_grad", False) is True:
            raise TypeError(
                f"{name} is a tensor that requires grad; fastxent computes the gradient "
                f"itself: pass {name}.detach()") from None
        raise


def as_input(x, name: str = "input"):
    """The floating input as a native C-contiguous float32/float64 array.

    Returns ``(array, result_dtype)``: float16 is computed in float32 and its
    results are returned as float16.
    """
    a = asarray(x, name)
    if a.dtype.kind != "f" or a.dtype.itemsize not in (2, 4, 8):
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got dtype {a.dtype}")
    result_dtype = a.dtype.newbyteorder("=")
    compute = np.dtype(np.float32) if a.dtype.itemsize == 2 else result_dtype
    # order="C" rather than np.ascontiguousarray, which turns a 0-d array into 1-d
    return np.asarray(a, dtype=compute, order="C"), result_dtype


def as_real_array(x, name: str, dtype) -> np.ndarray:
    """A real-valued numeric argument (weights, probabilities) as ``dtype``, C-contiguous."""
    a = asarray(x, name)
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


def broadcast_operand(value, name: str, shape: tuple, dtype):
    """An argument that broadcasts to the input (``weight``, ``pos_weight`` of the
    binary losses), described for the kernels without being copied to ``shape``.

    Returns ``(flat, dims, strides)``, or three Nones for None: ``flat`` is the
    argument as a C-contiguous ``dtype`` array of its own size, flattened;
    ``dims`` and ``strides`` (np.intp) describe it broadcast to ``shape`` in C
    order, with axes of size 1 dropped and neighbouring axes merged where the
    operand runs contiguously (or is broadcast) across them; strides count
    elements and are 0 along a broadcast axis.  A scalar becomes ``[size], [0]``,
    an array of the input's shape ``[size], [1]``, a ``(C,)`` vector for an
    ``(N, C)`` input ``[N, C], [0, 1]``.
    """
    if value is None:
        return None, None, None
    a = as_real_array(value, name, dtype)
    try:
        view = np.broadcast_to(a, shape)     # a view: strides 0 along broadcast axes
    except ValueError:
        raise ValueError(f"{name} of shape {a.shape} does not broadcast to the input's shape {shape}") from None
    dims: list[int] = []
    strides: list[int] = []
    for n, st in zip(view.shape, view.strides):
        if n == 1:
            continue
        st //= a.itemsize
        if dims and strides[-1] == st * n:   # the outer axis continues this one: merge
            dims[-1] *= n
            strides[-1] = st
        else:
            dims.append(n)
            strides.append(st)
    if not dims:
        dims, strides = [1], [0]
    return a.reshape(-1), np.array(dims, dtype=np.intp), np.array(strides, dtype=np.intp)


def grad_scale(grad_output, reduction: str, loss_shape: tuple):
    """(gout, gscale) for the kernels: per-sample float64 factors for "none"
    (None for ones), and the scalar factor for the reduced losses."""
    if grad_output is None:
        return None, 1.0
    go = asarray(grad_output, "grad_output")
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


def grad_setup(return_grad: bool, grad_output, out, reduction: str, loss_shape: tuple,
               denom: float, x: np.ndarray, result_dtype, *inputs: np.ndarray):
    """Everything the kernels need for the gradient of one call.

    Returns ``(g, out_to, gout, gscale)``: the buffer for the gradient (None
    without ``return_grad``), the ``out`` to copy it to afterwards, the per-sample
    factors and the scalar factor (``grad_output`` divided by what a "mean"
    divides by).  ``inputs`` (None allowed) are the other arrays ``out`` must not
    overlap, besides ``x`` and ``grad_output``.
    """
    if not return_grad:
        if grad_output is not None or out is not None:
            raise ValueError("grad_output and out are used only with return_grad=True")
        return None, None, None, 1.0
    gout, gscale = grad_scale(grad_output, reduction, loss_shape)
    if reduction == "mean":
        with np.errstate(divide="ignore", invalid="ignore"):
            gscale = float(np.float64(gscale) / np.float64(denom))
    # out may overlap nothing the kernels read, nor the caller's input (a float16
    # input is read from a float32 copy, but out would overwrite the original)
    reads = [a for a in (x, *inputs, gout) if a is not None]
    g, out_to = grad_buffer(out, x.shape, result_dtype, x.dtype, *reads)
    return g, out_to, gout, gscale


def finish(total: float, loss_out, denom: float, reduction: str, result_dtype, g, out_to):
    """What a loss function returns: the loss (a scalar of the input's dtype, or the
    per-sample array for "none"), with the gradient when one was computed."""
    value = loss_out if reduction == "none" else reduce_loss(total, denom, reduction)
    loss = as_result(value, result_dtype)
    return loss if g is None else (loss, finish_grad(g, out_to, result_dtype))


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
