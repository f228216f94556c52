"""SciPy's conventions for logsumexp, softmax and log_softmax: the arguments, once.

``scipy.special``'s log-sum-exp family accepts more than the losses do: integer
and bool input (computed as float64), a tuple of axes, weights ``b`` that
broadcast against the input (negative and zero weights included), and it turns a
0-d result into a NumPy scalar.  This module turns those arguments into what the
kernels take, an ``(n_outer, C, inner)`` C-contiguous array reduced over ``C``,
and says how to shape the results back.

Reduced axes that are adjacent (axes of length 1 do not count: they can sit
anywhere) are merged by a reshape, which is free for a C-contiguous array.
Axes that are not adjacent are moved together to the end, one copy, so that
the kernels see rows.
"""
from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numpy as np

from . import _args


def _real_operand(value, name: str) -> np.ndarray:
    """An operand of the family as a NumPy array of a real numeric dtype."""
    a = _args.asarray(value, name)
    kind = a.dtype.kind
    if kind == "c":
        raise TypeError(
            f"{name} is complex ({a.dtype}): fastxent's logsumexp, softmax and log_softmax "
            f"take real input only (scipy.special also takes complex input)")
    if kind not in "biuf" or (kind == "f" and a.dtype.itemsize not in (2, 4, 8)):
        raise TypeError(f"{name} must be a real number array (float16/32/64, integer or bool), "
                        f"got dtype {a.dtype}")
    return a


def _weak(value, a: np.ndarray):
    """What NumPy's promotion takes for an operand: a Python number itself (a
    "weak" scalar that adopts the other operand's precision), else the dtype."""
    return value if type(value) in (int, float, bool) else a.dtype


def operands(x, b=None):
    """``(view, x, b, result_dtype)``: ``x`` (and ``b``, None allowed) as native
    C-contiguous arrays of the computing dtype, broadcast against each other;
    ``view`` is ``x`` as the caller passed it (what ``out`` must not overlap).

    The result dtype is SciPy's: that of ``x`` (and ``b``) promoted, float64
    where that is an integer or bool dtype.  float16 is computed in float32.
    """
    a = view = _real_operand(x, "x")
    w = None if b is None else _real_operand(b, "b")
    # Python numbers promote weakly (NEP 50), as in SciPy: b=2.0 keeps float32
    result = a.dtype if w is None else np.result_type(_weak(x, a), _weak(b, w))
    if result.kind != "f":
        result = np.dtype(np.float64)
    elif not result.isnative:
        result = result.newbyteorder("=")
    compute = np.dtype(np.float32) if result.itemsize == 2 else result
    if w is not None and w.shape != a.shape:
        try:
            shape = np.broadcast_shapes(a.shape, w.shape)
        except ValueError:
            raise ValueError(f"b of shape {w.shape} does not broadcast against x of shape "
                             f"{a.shape}") from None
        a, w = np.broadcast_to(a, shape), np.broadcast_to(w, shape)
    # order="C" rather than np.ascontiguousarray, which turns a 0-d array into 1-d
    a = np.asarray(a, dtype=compute, order="C")
    w = None if w is None else np.asarray(w, dtype=compute, order="C")
    return view, a, w, result


def reduced_axes(axis, ndim: int) -> tuple:
    """``axis`` (None, an integer or a tuple of integers) as sorted axes of an
    array of ``ndim`` dimensions (a 0-d array counts as 1-d, as in SciPy)."""
    ndim = max(ndim, 1)
    if type(axis) is int and -ndim <= axis < ndim:      # the common case, quickly
        return (axis % ndim,)
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, tuple):
        axes = [_args.check_axis(ax, ndim) for ax in axis]
        if len(set(axes)) != len(axes):
            raise ValueError(f"axis {axis} names an axis twice")
        return tuple(sorted(axes))
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an integer, a tuple of integers or None, got {axis!r}")
    try:
        operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an integer, a tuple of integers or None, "
                        f"got {type(axis).__name__}") from None
    return (_args.check_axis(axis, ndim),)


class Layout(NamedTuple):
    """How an array is laid out for the kernels: ``perm`` (None: a reshape is
    enough) puts the reduced axes last; then ``(n_outer, C, inner)``."""
    n_outer: int
    C: int
    inner: int
    perm: tuple | None


def layout(shape: tuple, axes: tuple) -> Layout:
    """The kernel layout of a C-contiguous array of ``shape`` reduced over ``axes``."""
    shape = shape or (1,)
    if len(axes) == 1 or len(axes) == len(shape):     # one axis, or all: a reshape
        first, last = axes[0], axes[-1] + 1
        return Layout(math.prod(shape[:first]), math.prod(shape[first:last]),
                      math.prod(shape[last:]), None)
    big = [ax for ax in range(len(shape)) if shape[ax] != 1]
    flags = [ax in axes for ax in big]
    first = flags.index(True) if True in flags else len(flags)
    last = len(flags) - flags[::-1].index(True) if True in flags else first
    if all(flags[first:last]):      # one run of reduced axes: a reshape
        n_outer = math.prod(shape[ax] for ax in big[:first])
        C = math.prod(shape[ax] for ax in big[first:last])
        return Layout(n_outer, C, math.prod(shape[ax] for ax in big[last:]), None)
    kept = tuple(ax for ax in range(len(shape)) if ax not in axes)
    return Layout(math.prod(shape[ax] for ax in kept), math.prod(shape[ax] for ax in axes), 1,
                  kept + axes)


def for_kernels(a: np.ndarray, lay: Layout) -> np.ndarray:
    """``a`` flat in the layout's order (a view when no axes move)."""
    if lay.perm is None:
        return a.reshape(-1)
    return np.ascontiguousarray(a.reshape(a.shape or (1,)).transpose(lay.perm)).reshape(-1)


def reduced_shape(shape: tuple, axes: tuple, keepdims: bool) -> tuple:
    """The shape of a reduction's result: SciPy's, with a 0-d input as 1-d."""
    shape = shape or (1,)
    if keepdims:
        return tuple(1 if ax in axes else n for ax, n in enumerate(shape))
    return tuple(n for ax, n in enumerate(shape) if ax not in axes)


def from_kernels(flat: np.ndarray, shape: tuple, lay: Layout) -> np.ndarray:
    """An elementwise result (softmax, log_softmax) written by the kernels in
    the layout's order, seen in ``shape``: a view, transposed where axes moved."""
    if lay.perm is None:
        return flat.reshape(shape)
    moved = flat.reshape(tuple((shape or (1,))[ax] for ax in lay.perm))
    return moved.transpose(np.argsort(lay.perm)).reshape(shape)
