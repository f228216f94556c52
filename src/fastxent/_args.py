"""Argument checking and normalization shared by every public function: done once, here.

Two kinds of helper.  An option check (``check_reduction``, ``weight_option``,
...) takes one user value and returns it validated, or raises a TypeError or
ValueError naming the argument; the loss functions call them on every call and
the loss classes once, when an option is assigned, so both give the same errors
and a class call reuses the validated values.  A conversion (``as_input``,
``class_weight``, ``grad_buffer``, ...) turns a validated argument into what the
kernels take (a native-order, C-contiguous float32/float64 buffer) for one call.

Array arguments are first read with :func:`asarray` (a view where NumPy can make
one: ndarrays, memoryviews, tensors, DLPack).  ``out`` is checked against every
argument both as that view and as converted, so it can overlap nothing the user
passed, whatever object it came in as.  Nothing here modifies its input, and
nothing writes to ``out`` before every check of a call has passed.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Optional

import numpy as np

REDUCTIONS = ("mean", "sum", "none")
_F64 = np.dtype(np.float64)
_F32 = np.dtype(np.float32)
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
_NAN = float("nan")


# ----------------------------------------------------------------------------
# Options: each checked here, by the functions and the loss classes alike
# ----------------------------------------------------------------------------

def check_reduction(reduction: Any, name: str = "reduction") -> str:
    if type(reduction) is not str or reduction not in REDUCTIONS:
        raise ValueError(f"{name} must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def check_label_smoothing(label_smoothing: Any, name: str = "label_smoothing") -> float:
    """A real number in [0, 1]; a bool or a string is a TypeError, not a number."""
    if type(label_smoothing) is float:
        eps = label_smoothing
    elif isinstance(label_smoothing, numbers.Real) and not isinstance(label_smoothing, (bool, np.bool_)):
        eps = float(label_smoothing)
    else:
        raise TypeError(f"{name} must be a float in [0, 1], got {label_smoothing!r}")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {label_smoothing!r}")
    return eps


def check_bool(value: Any, name: str) -> bool:
    """True or False (NumPy's bool too); a number or a string is a TypeError."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {value!r}")


def check_int(value: Any, name: str) -> int:
    if type(value) is int:
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}") from None


def check_int64(value: Any, name: str) -> int:
    """An integer the kernels take as int64_t."""
    v = check_int(value, name)
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise ValueError(f"{name} must fit in a 64-bit signed integer, got {v}")
    return v


def check_threads(n: Any, name: str = "n_threads") -> int:
    """A thread count: an integer >= 1 (a bool is not one)."""
    if type(n) is not int:
        if isinstance(n, (bool, np.bool_)):
            raise TypeError(f"{name} must be an integer >= 1 or None, got {n!r}")
        try:
            n = operator.index(n)
        except TypeError:
            raise TypeError(f"{name} must be an integer >= 1 or None, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"{name} must be an integer >= 1 or None, got {n}")
    return n


def threads_option(n: Any, name: str = "n_threads") -> Optional[int]:
    """``n_threads`` of a call or a loss class: None (the default count) or a count."""
    return None if n is None else check_threads(n, name)


def axis_option(axis: Any, name: str = "axis") -> Optional[int]:
    """The class axis of the cross-entropy losses: None or an integer (its range
    is checked against the input, by :func:`class_axis`)."""
    return None if axis is None else check_int(axis, name)


def check_axis(axis: Any, ndim: int, name: str = "axis") -> int:
    ax = check_int(axis, name)
    if not -ndim <= ax < ndim:
        raise ValueError(f"{name}={axis} is out of range for an input with {ndim} dimension(s)")
    return ax % ndim


def class_axis(axis: Optional[int], ndim: int) -> int:
    """The class axis of a cross-entropy input (``axis`` from :func:`axis_option`):
    PyTorch's convention for None."""
    if ndim == 0:
        raise ValueError("input must have at least one dimension (the class axis), got a 0-d array")
    if axis is None:
        return 0 if ndim == 1 else 1
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for an input with {ndim} dimension(s)")
    return axis % ndim


def real_array(value: Any, name: str) -> np.ndarray:
    """A real-valued array argument as the view the user's object gives (see
    :func:`asarray`); converted per call to the kernels' dtype."""
    a = value if type(value) is np.ndarray else asarray(value, name)
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    return a


def real_array_option(value: Any, name: str) -> Optional[np.ndarray]:
    """A real-valued array option (``weight``, ``pos_weight``): None or :func:`real_array`."""
    return None if value is None else real_array(value, name)


def class_weight_option(weight: Any, name: str = "weight") -> Optional[np.ndarray]:
    """``weight`` of the cross-entropy losses: None or a 1-D real array (one weight
    per class; its length is checked against the input, by :func:`class_weight`)."""
    w = real_array_option(weight, name)
    if w is not None and w.ndim != 1:
        raise ValueError(f"{name} must have shape (C,), one weight per class, got {w.shape}")
    return w


# ----------------------------------------------------------------------------
# Arrays: read once, converted for one call
# ----------------------------------------------------------------------------

def asarray(x: Any, name: str) -> np.ndarray:
    """Any array argument as a NumPy array, without a copy where the layout allows.

    ``np.asarray`` takes NumPy arrays, sequences and anything with ``__array__``
    (PyTorch CPU tensors, JAX arrays: views of their memory) or the buffer
    protocol; an object offering only ``__dlpack__`` is read through
    ``np.from_dlpack`` (also a view).  A PyTorch tensor that requires grad, or
    whose negative or conjugate bit is set, is refused with a TypeError saying
    what to pass instead, rather than detached or resolved behind the caller's back.
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
        for bit, fix in (("is_neg", "resolve_neg"), ("is_conj", "resolve_conj")):
            test = getattr(x, bit, None)
            if callable(test) and test() is True:
                raise TypeError(
                    f"{name} is a tensor with its {bit[3:]} bit set (a lazy view); "
                    f"pass {name}.{fix}()") from None
        raise


def as_input(x: Any, name: str = "input"):
    """The floating input as a native C-contiguous float32/float64 array.

    Returns ``(array, result_dtype)``: float16 is computed in float32 and its
    results are returned as float16.
    """
    return read_input(x, name)[1:]


def read_input(x: Any, name: str = "input"):
    """:func:`as_input`, with the input as read by :func:`asarray` first.

    Returns ``(view, array, result_dtype)``: ``view`` is what ``out`` must not
    overlap besides ``array``, what the kernels read.
    """
    a = x if type(x) is np.ndarray else asarray(x, name)
    dt = a.dtype
    if dt is _F64 or dt is _F32:               # the common case, checked cheaply
        if a.flags.c_contiguous:
            return a, a, dt
        return a, np.asarray(a, order="C"), dt
    if dt.kind != "f" or dt.itemsize not in (2, 4, 8):
        raise TypeError(f"{name} must be a float16, float32 or float64 array, got dtype {dt}")
    result_dtype = dt.newbyteorder("=")
    compute = _F32 if dt.itemsize == 2 else result_dtype
    # order="C" rather than np.ascontiguousarray, which turns a 0-d array into 1-d
    return a, np.asarray(a, dtype=compute, order="C"), result_dtype


def as_real_array(a: np.ndarray, dtype) -> np.ndarray:
    """A checked real array (from :func:`real_array_option`) as ``dtype``, C-contiguous."""
    return np.asarray(a, dtype=dtype, order="C")


def split_shape(shape: tuple, ax: int):
    """(n_outer, C, inner) for the class axis ``ax`` of ``shape``."""
    return math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:])


def as_index_target(target: np.ndarray, sample_shape: tuple, input_shape: tuple) -> np.ndarray:
    """Class indices as a flat C-contiguous int64 array (any integer dtype accepted;
    a uint64 value beyond int64, in either byte order, is out of range)."""
    if target.shape != sample_shape:
        raise ValueError(
            f"target of class indices must have shape {sample_shape} (input {input_shape} "
            f"without its class axis), got target {target.shape}")
    dt = target.dtype
    if dt.kind == "u" and dt.itemsize == 8 and target.size and target.max() > _INT64_MAX:
        bad = int(np.argmax(target > _INT64_MAX))
        raise ValueError(
            f"target value {int(target.reshape(-1)[bad])} at index "
            f"{format_index(bad, sample_shape)} is out of range")
    return np.ascontiguousarray(target, dtype=np.int64).reshape(-1)


def probability_target_shape_error(target_shape: tuple, input_shape: tuple,
                                   sample_shape: tuple) -> ValueError:
    """A floating target whose shape is not the input's; when it has the shape of
    class indices, say how to pass it as such."""
    hint = ""
    if target_shape == sample_shape:
        hint = ("; a target of this shape holds class indices, which must be integers: "
                "pass target.astype(np.int64)")
    return ValueError(f"target of class probabilities must have the input's shape {input_shape}, "
                      f"got {target_shape}{hint}")


def sample_weight_array(value: Any, sample_shape: tuple, input_shape: tuple):
    """``sample_weight`` of a multi-class call: one weight per sample position.

    Returns ``(view, flat)``: the argument as read (what ``out`` must not
    overlap) and a flat C-contiguous float64 array (a view where it already is
    one), which the kernels check for negative and non-finite values.
    """
    a = real_array(value, "sample_weight")
    if a.shape != sample_shape:
        raise ValueError(
            f"sample_weight must have shape {sample_shape}, one weight per sample position "
            f"(input {input_shape} without its class axis), got {a.shape}")
    return a, np.ascontiguousarray(a, dtype=_F64).reshape(-1)


def sample_weight_error(flat: np.ndarray, first: int, shape: tuple) -> ValueError:
    """The error for a negative or non-finite sample weight (found by the kernels)."""
    return ValueError(
        f"sample_weight must be finite and non-negative, got {float(flat[first])!r} at index "
        f"{format_index(first, shape)}")


def format_index(flat: int, shape: tuple) -> str:
    """A flat position as the index a user would type: ``7`` or ``(1, 3)``."""
    idx = tuple(int(i) for i in np.unravel_index(flat, shape))
    return str(idx[0]) if len(idx) == 1 else str(idx)


def class_weight(w: Optional[np.ndarray], n_classes: int, dtype):
    """A checked ``weight`` (from :func:`class_weight_option`) as a (C,) array of
    ``dtype``, or None."""
    if w is None:
        return None
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},), one weight per class, got {w.shape}")
    return w if w.dtype is dtype and w.flags.c_contiguous else np.asarray(w, dtype=dtype, order="C")


def broadcast_operand(a: Optional[np.ndarray], name: str, shape: tuple, dtype):
    """An argument that broadcasts to the input (``weight``, ``pos_weight`` of the
    binary losses, checked by :func:`real_array_option`), described for the
    kernels without being copied to ``shape``.

    Returns ``(flat, dims, strides)``, or three Nones for None: ``flat`` is the
    argument as a C-contiguous ``dtype`` array of its own size, flattened;
    ``dims`` and ``strides`` (np.intp) describe it broadcast to ``shape`` in C
    order, with axes of size 1 dropped and neighbouring axes merged where the
    operand runs contiguously (or is broadcast) across them; strides count
    elements and are 0 along a broadcast axis.  A scalar becomes ``[size], [0]``,
    an array of the input's shape ``[size], [1]``, a ``(C,)`` vector for an
    ``(N, C)`` input ``[N, C], [0, 1]``.
    """
    if a is None:
        return None, None, None
    a = as_real_array(a, dtype)
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


# ----------------------------------------------------------------------------
# The gradient's buffers and the results
# ----------------------------------------------------------------------------

def grad_scale(grad_output, reduction: str, loss_shape: tuple):
    """(go, gout, gscale): ``grad_output`` as read (None for None), the per-sample
    float64 factors for "none" (None for ones), and the scalar factor of the
    reduced losses."""
    if grad_output is None:
        return None, None, 1.0
    go = asarray(grad_output, "grad_output")
    if go.dtype.kind not in "fiu":
        raise TypeError(f"grad_output must be real numbers, got dtype {go.dtype}")
    want = loss_shape if reduction == "none" else ()
    if go.shape != want:
        raise ValueError(f"grad_output must have the loss's shape {want}, got {go.shape}")
    if reduction == "none":
        return go, np.ascontiguousarray(go, dtype=np.float64).reshape(-1), 1.0
    return go, None, float(go)


def grad_buffer(out, shape: tuple, result_dtype, compute_dtype, reads: tuple, name: str = "out"):
    """Where the kernels write the gradient (or softmax) of one call.

    Returns ``(g, copy_to, result)``: the buffer the kernels write, the array to
    copy it into afterwards (only for float16, computed in float32), and the
    object to return (``out`` itself where given).  ``reads`` are every array
    argument of the call (None allowed), both as the user passed it (the
    :func:`asarray` view) and as converted for the kernels: ``out`` may overlap
    none of them (the kernels read them while writing ``out``, and the user's
    arrays are never modified).  An ndarray subclass (``np.memmap``,
    ``np.matrix``) is written through a plain ndarray view of it.
    """
    if out is None:
        g = np.empty(shape, dtype=compute_dtype)
        return g, None, g
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(out).__name__}")
    base = out if type(out) is np.ndarray else out.view(np.ndarray)
    if base.shape != shape:
        raise ValueError(f"{name} must have the input's shape {shape}, got {base.shape}")
    if base.dtype != result_dtype:
        raise TypeError(f"{name} must have the input's dtype {result_dtype}, got {base.dtype}")
    if not base.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if not base.flags.writeable:
        raise ValueError(f"{name} must be writeable")
    for a in reads:
        if a is not None and np.may_share_memory(base, a):
            raise ValueError(f"{name} must not overlap the input or the other arguments")
    if base.dtype != compute_dtype:
        return np.empty(shape, dtype=compute_dtype), base, out
    return base, None, out


def split_out(out):
    """``out`` of a call with ``return_hessian=True`` as ``(grad_out, hess_out)``:
    None, or a pair of arrays (either member may be None)."""
    if out is None:
        return None, None
    if type(out) is not tuple or len(out) != 2:
        raise TypeError("with return_hessian=True, out must be a pair (grad_out, hess_out), "
                        f"got {type(out).__name__}")
    for i, o in enumerate(out):
        if o is not None and not isinstance(o, np.ndarray):
            raise TypeError(f"out[{i}] must be a NumPy array or None, got {type(o).__name__}")
    return out


def hess_setup(out, x: np.ndarray, result_dtype, reads: tuple):
    """The buffer of the Hessian's diagonal (``return_hessian=True``, whose
    ``out[1]`` is ``out``): ``(h, (copy_to, result))`` as for the gradient (see
    :func:`grad_buffer`)."""
    h, copy_to, result = grad_buffer(out, x.shape, result_dtype, x.dtype, reads, "out[1]")
    return h, (copy_to, result)


def grad_setup(return_grad: bool, grad_output, out, reduction: str, loss_shape: tuple,
               denom: float, x: np.ndarray, result_dtype, reads: tuple, out_name: str = "out"):
    """Everything the kernels need for the gradient of one call.

    Returns ``(g, grad, gout, gscale)``: the buffer for the gradient (None
    without ``return_grad``), ``(copy_to, result)`` for :func:`finish`, the
    per-sample factors and the scalar factor (``grad_output`` divided by what a
    "mean" divides by; NaN when that is 0, as PyTorch's 0/0).  ``reads`` are the
    arrays ``out`` must not overlap (see :func:`grad_buffer`), besides
    ``grad_output``.  Nothing is written: every check of the call is done here
    or before.
    """
    if not return_grad:
        if grad_output is not None or out is not None:
            raise ValueError("grad_output and out are used only with return_grad=True")
        return None, None, None, 1.0
    go, gout, gscale = grad_scale(grad_output, reduction, loss_shape)
    if reduction == "mean":
        gscale = gscale / denom if denom != 0 else _NAN
    if out is not None:
        reads = reads + (go, gout)
    g, copy_to, result = grad_buffer(out, x.shape, result_dtype, x.dtype, reads, out_name)
    return g, (copy_to, result), gout, gscale


def finish(total: float, loss_out, denom: float, reduction: str, result_dtype, g, grad):
    """What a loss function returns: the loss (a scalar of the input's dtype, or the
    per-sample array for "none"), with the gradient when one was computed."""
    value = loss_out if reduction == "none" else reduce_loss(total, denom, reduction)
    loss = as_result(value, result_dtype)
    return loss if g is None else (loss, finish_grad(g, grad[0], grad[1], result_dtype))


_FINFO_MAX = {np.dtype(np.float32): float(np.finfo(np.float32).max),
              np.dtype(np.float16): float(np.finfo(np.float16).max)}


def as_result(value, result_dtype):
    """A computed value (array or float) in the caller's dtype.  A value beyond
    the dtype's range becomes +-inf and a value too small for it 0 or a
    subnormal, as IEEE rounding has it, without NumPy's overflow or underflow
    warning (an error under ``np.seterr(over="raise")`` or ``under="raise"``):
    the rounding is the answer, not a fault."""
    if isinstance(value, np.ndarray):
        if value.dtype == result_dtype:
            return value
        with np.errstate(over="ignore", under="ignore"):
            return value.astype(result_dtype)
    if result_dtype is _F64:
        return np.float64(value)
    limit = _FINFO_MAX.get(result_dtype, math.inf)
    if -limit <= value <= limit or value != value:     # no overflow: no errstate needed
        return result_dtype.type(value)
    with np.errstate(over="ignore", under="ignore"):
        return result_dtype.type(value)


def finish_grad(g: np.ndarray, copy_to, result, result_dtype):
    """The gradient (or softmax) as returned: ``out`` where given (a float16
    ``out`` receives the float32 result, rounded), else ``g`` in the caller's dtype."""
    if copy_to is not None:
        with np.errstate(over="ignore", under="ignore"):
            np.copyto(copy_to, g, casting="same_kind")
        return result
    if result is not g:
        return result
    return as_result(g, result_dtype)


def reduce_loss(total: float, denom: float, reduction: str) -> float:
    """The reduced loss in float64: NaN for a "mean" over a zero denominator (every
    target ignored or of weight 0, or an empty batch), with or without label
    smoothing, as PyTorch."""
    if reduction == "sum":
        return total
    return total / denom if denom != 0 else _NAN
