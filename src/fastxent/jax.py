"""fastxent's losses for JAX: ``jax.custom_vjp`` over a host callback.

``import fastxent.jax`` imports JAX; ``import fastxent`` never does.

Design: the loss is a host callback that runs the public NumPy function on the
arrays' memory.  Under differentiation the forward rule asks for the fused
gradient in the same call and keeps it as the residual; the backward rule only
scales it by the cotangent (per sample, broadcast along the class axis, for
``reduction="none"``).  The primal alone (no differentiation) computes the loss
without a gradient.

The callback, and what it costs (``callback=``, the keyword of every function):

* ``"buffer"`` (the default where JAX has it): ``jax.experimental.buffer_callback``
  hands the callback XLA's own buffers: the logits are read where they are, the
  gradient is written by fastxent (``out=``) straight into XLA's output buffer.
  No copy.  The API is experimental in JAX.
* ``"pure"`` (the fallback, and on request): ``jax.pure_callback``.  JAX copies
  each argument into a fresh array before the callback, and copies each result
  into XLA's buffer after it: for logits of N x C, two extra passes over N x C
  (one read and write for the input, one for the gradient), which for a fused
  kernel that runs at a few times the copy's speed is a large share.
* ``"auto"``: ``"buffer"`` where it imports, else ``"pure"``.

Under ``jax.vmap`` the callback is called once with the batch (``vmap_method=
"expand_dims"``) and loops over it on the host, one kernel call per batch
element, writing into slices of the batched outputs.

Options (reduction, label_smoothing, ...) are static Python values; arrays may
be traced.  Argument errors that depend on options, ranks or shapes are raised
while tracing; errors that depend on values (a class index out of range, a
probability outside [0, 1]) are raised by the callback when the computation
runs, wrapped by JAX in its runtime error.  Forward-mode differentiation
(``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``) is not available: a TypeError
says so (JAX's own for ``jax.jvp`` of a custom_vjp function).  Gradients flow to ``input`` only:
differentiating with respect to a target, weight or pos_weight raises a
TypeError.  float16 is computed in float32 by fastxent; bfloat16 is converted to
float32 (by JAX) and the results back.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import fastxent as _fx

_buffer_callback: Any
try:
    from jax.experimental import buffer_callback as _buffer_callback_module
    _buffer_callback = _buffer_callback_module.buffer_callback
except ImportError:                                      # older JAX
    _buffer_callback = None

__all__ = ["cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]

CALLBACKS = ("auto", "buffer", "pure")


@dataclasses.dataclass(frozen=True)
class _Spec:
    """Everything static about one call: hashable, so that JAX caches by it."""
    function: str                  # the fastxent function's name
    names: tuple                   # names of the array arguments after input (None ones left out)
    ndims: tuple                   # unbatched ndim of input and of each of them
    options: tuple                 # (keyword, value) pairs for the fastxent function
    loss_shape: tuple
    class_axis: int | None         # where the per-sample cotangent broadcasts; None: elementwise
    callback: str                  # "buffer" or "pure"


# ----------------------------------------------------------------------------
# Host side: NumPy arrays in, results written into preallocated outputs


def _host(spec: _Spec, want_grad: bool, arrays: list, outs: list) -> None:
    """Runs the fastxent function on ``arrays`` (input first) into ``outs``
    (loss, and gradient when ``want_grad``).  Leading dimensions beyond the
    unbatched ranks are vmap's batch (size 1 where an argument is not batched):
    one call per batch element."""
    fn = getattr(_fx, spec.function)
    options = dict(spec.options)
    leads = [a.ndim - n for a, n in zip(arrays, spec.ndims)]
    batch = np.broadcast_shapes(*(a.shape[:k] for a, k in zip(arrays, leads)))
    for idx in np.ndindex(batch):
        # views (the Ellipsis keeps a 0-d result an array); size-1 batch axes broadcast
        parts = [a[tuple(i if a.shape[d] > 1 else 0
                         for d, i in enumerate(idx[len(idx) - k:])) + (Ellipsis,)]
                 for a, k in zip(arrays, leads)]
        named = dict(zip(spec.names, parts[1:]))
        loss_out = outs[0][idx + (Ellipsis,)]
        if want_grad:
            loss, _ = fn(parts[0], **named, return_grad=True, out=outs[1][idx + (Ellipsis,)],
                         **options)
        else:
            loss = fn(parts[0], **named, **options)
        loss_out[...] = loss


@functools.lru_cache(maxsize=None)
def _callback(spec: _Spec, want_grad: bool) -> Callable:
    """The host function for one spec, made once: JAX caches compilations by it."""
    if spec.callback == "buffer":
        def on_buffers(ctx: Any, outs: Any, *args: Any) -> None:
            _host(spec, want_grad, [np.asarray(a) for a in args], [np.asarray(o) for o in outs])
        return on_buffers

    def on_arrays(*args: Any) -> tuple:
        arrays = [np.asarray(a) for a in args]
        lead = arrays[0].ndim - spec.ndims[0]
        batch = np.broadcast_shapes(*(a.shape[:a.ndim - n] for a, n in zip(arrays, spec.ndims)))
        assert len(batch) >= lead
        x = arrays[0]
        outs = [np.empty(batch + spec.loss_shape, x.dtype)]
        if want_grad:
            outs.append(np.empty(batch + x.shape[lead:], x.dtype))
        _host(spec, want_grad, arrays, outs)
        return tuple(outs)
    return on_arrays


def _call(spec: _Spec, want_grad: bool, x: Any, others: tuple) -> tuple:
    shapes = [jax.ShapeDtypeStruct(spec.loss_shape, x.dtype)]
    if want_grad:
        shapes.append(jax.ShapeDtypeStruct(x.shape, x.dtype))
    cb = _callback(spec, want_grad)
    if spec.callback == "buffer":
        return tuple(_buffer_callback(cb, tuple(shapes), vmap_method="expand_dims")(x, *others))
    return tuple(jax.pure_callback(cb, tuple(shapes), x, *others, vmap_method="expand_dims"))


# A callback has no derivative of its own.  The first derivative comes from the
# custom VJP below; a second one (jax.hessian, jax.jacfwd of jax.grad) would
# push tangents through the callback itself: say so clearly.
@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _host_call(spec: _Spec, want_grad: bool, x: Any, others: tuple) -> tuple:
    return _call(spec, want_grad, x, others)


@_host_call.defjvp
def _host_call_jvp(spec: _Spec, want_grad: bool, primals: tuple, tangents: tuple) -> tuple:
    raise TypeError(
        f"fastxent.jax.{spec.function} has no forward-mode derivative (jax.jvp, jax.jacfwd, "
        f"jax.hessian): its gradient comes from fastxent's kernel through a host callback. "
        f"Use reverse mode (jax.grad, jax.value_and_grad, jax.vjp, jax.jacrev).")


# ----------------------------------------------------------------------------
# The custom VJP: forward keeps the fused gradient, backward scales it


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _loss(spec: _Spec, x: Any, others: tuple) -> Any:
    return _host_call(spec, False, x, others)[0]


def _loss_fwd(spec: _Spec, x: Any, others: tuple) -> tuple:
    for name, a in zip(spec.names, others):
        if a.perturbed:
            raise TypeError(f"fastxent.jax.{spec.function} differentiates with respect to input "
                            f"only, not {name}: wrap {name} in jax.lax.stop_gradient, or use a "
                            f"jax.numpy formula for gradients with respect to it")
    loss, grad = _host_call(spec, True, x.value, tuple(a.value for a in others))
    return loss, grad


def _loss_bwd(spec: _Spec, grad: Any, ct: Any) -> tuple:
    no_others = (None,) * len(spec.names)
    if isinstance(ct, jax.custom_derivatives.SymbolicZero):
        return jnp.zeros_like(grad), no_others
    ct = ct.astype(grad.dtype)
    if ct.ndim and spec.class_axis is not None:      # one factor per sample
        ct = jnp.expand_dims(ct, spec.class_axis)
    return grad * ct, no_others


_loss.defvjp(_loss_fwd, _loss_bwd, symbolic_zeros=True)
_loss_jit = jax.jit(_loss, static_argnums=0)         # one dispatch for eager calls


# ----------------------------------------------------------------------------
# Arguments, checked while tracing


def _which_callback(callback: str) -> str:
    if callback not in CALLBACKS:
        raise ValueError(f"callback must be one of {', '.join(map(repr, CALLBACKS))}, "
                         f"got {callback!r}")
    if callback == "auto":
        return "buffer" if _buffer_callback is not None else "pure"
    if callback == "buffer" and _buffer_callback is None:
        raise ValueError("callback='buffer' needs jax.experimental.buffer_callback, "
                         f"which JAX {jax.__version__} lacks; use callback='pure'")
    return callback


def _dry_run(function: str, x: Any, named: dict, options: dict) -> None:
    """Calls the fastxent function on tiny arrays of the same ranks and dtypes:
    it raises fastxent's own errors for the options, ranks and dtypes, at once."""
    def tiny(a: Any) -> np.ndarray:
        return np.zeros((1,) * a.ndim, dtype=a.dtype)
    getattr(_fx, function)(tiny(x), **{k: tiny(v) for k, v in named.items()}, **options)


def _as_array(a: Any, name: str) -> Any:
    try:
        return jnp.asarray(a)
    except TypeError as e:
        raise TypeError(f"{name} could not be converted to a JAX array: {e}") from None


def _apply(function: str, multiclass: bool, input: Any, arrays: dict, options: dict,
           callback: str) -> Any:
    kind = _which_callback(callback)
    x = _as_array(input, "input")
    named = {k: _as_array(v, k) for k, v in arrays.items() if v is not None}
    if x.dtype == jnp.bfloat16:                # NumPy has no bfloat16: compute in float32
        floats = {k: v.astype(jnp.float32) if v.dtype == jnp.bfloat16 else v
                  for k, v in named.items()}
        return _apply(function, multiclass, x.astype(jnp.float32), floats, options,
                      kind).astype(jnp.bfloat16)
    _dry_run(function, x, named, options)
    reduction = options.get("reduction", "mean")
    if multiclass:
        axis = options.get("axis")
        ax = (0 if x.ndim == 1 else 1) if axis is None else axis % x.ndim
        sample_shape = x.shape[:ax] + x.shape[ax + 1:]
        C = x.shape[ax]
        t = named["target"]
        want = sample_shape if jnp.issubdtype(t.dtype, jnp.integer) else x.shape
        if t.shape != want:
            raise ValueError(f"target must have shape {want} for input {x.shape} "
                             f"(class axis {ax}), got target {t.shape}")
        if "weight" in named and named["weight"].shape != (C,):
            raise ValueError(f"weight must have shape ({C},), got {named['weight'].shape}")
        class_axis: int | None = ax
    else:
        sample_shape, class_axis = x.shape, None
        if named["target"].shape != x.shape:
            raise ValueError(f"target must have the input's shape {x.shape}, "
                             f"got target {named['target'].shape}")
        for k in ("weight", "pos_weight"):
            if k in named and np.broadcast_shapes(named[k].shape, x.shape) != x.shape:
                raise ValueError(f"{k} of shape {named[k].shape} does not broadcast to the "
                                 f"input's shape {x.shape}")
    names = tuple(named)
    spec = _Spec(function, names, (x.ndim,) + tuple(named[k].ndim for k in names),
                 tuple(sorted(options.items())),
                 sample_shape if reduction == "none" else (), class_axis, kind)
    return _loss_jit(spec, x, tuple(named[k] for k in names))


# ----------------------------------------------------------------------------
# The public functions


def cross_entropy(input: Any, target: Any, weight: Any = None, *, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0,
                  axis: int | None = None, n_threads: int | None = None,
                  callback: str = "auto") -> Any:
    """Cross-entropy of JAX arrays, as :func:`fastxent.cross_entropy`, with ``jax.grad`` through its fused gradient.

    A ``jax.custom_vjp`` over a host callback: usable under ``jax.jit``,
    ``jax.grad``, ``jax.value_and_grad``, ``jax.vjp`` and ``jax.vmap``.  Under
    differentiation the forward pass computes the loss and its gradient in
    one kernel call, and the backward pass scales that gradient.

    Parameters
    ----------
    input : jax.Array or array_like
        Logits (float32 or float64; float16 and bfloat16 computed in float32),
        shaped ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    target : jax.Array or array_like
        Class indices (integers, ``input``'s shape without the class axis) or
        class probabilities (floating, ``input``'s shape); not differentiated.
    weight : jax.Array or array_like, optional
        A weight per class, shape ``(C,)``; not differentiated.
    ignore_index : int, default -100
        Class-index targets equal to it add nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-sample losses are combined: "mean" divides by the weight
        of the targets not ignored (the number of samples for probability
        targets), "sum" adds them, "none" returns them.
    label_smoothing : float, default 0.0
        In ``[0, 1]``: the share of the target spread evenly over the classes.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).
    callback : {"auto", "buffer", "pure"}, default "auto"
        How the host is called: ``jax.experimental.buffer_callback``, which
        hands fastxent XLA's own buffers (no copy); ``jax.pure_callback``,
        which copies each argument and result; or the first where JAX has it.

    Returns
    -------
    jax.Array
        The loss in ``input``'s dtype: a scalar, or per sample for
        ``reduction="none"``.  The options are static: a new value traces again.

    Raises
    ------
    TypeError
        While tracing: a non-floating ``input``, a ``target`` neither integer
        nor floating, an option of the wrong type; differentiation with respect
        to an argument other than ``input``; forward-mode differentiation
        (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``), which the host callback
        does not have.
    ValueError
        While tracing: shapes that do not fit, an unknown ``reduction``,
        ``label_smoothing`` outside ``[0, 1]``, ``axis`` out of range, an
        unknown ``callback``.
    jax.errors.JaxRuntimeError
        When the computation runs (``XlaRuntimeError`` in older JAX), wrapping
        fastxent's ValueError for a bad value (a class index outside ``[0, C)``
        that is not ``ignore_index``).

    See Also
    --------
    fastxent.cross_entropy : The NumPy function, with the formulas.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastxent.jax as fxj
    >>> x = jnp.array([[0., 1., 2., 3.]])
    >>> loss, g = jax.value_and_grad(fxj.cross_entropy)(x, jnp.array([3]))
    >>> round(float(loss), 4), g.shape
    (0.4402, (1, 4))
    >>> fxj.cross_entropy(jnp.zeros((2, 5, 7)), jnp.zeros((2, 5), jnp.int32), axis=-1,
    ...                   reduction="none").shape
    (2, 5)
    """
    return _apply("cross_entropy", True, input, {"target": target, "weight": weight},
                  dict(ignore_index=ignore_index, reduction=reduction,
                       label_smoothing=label_smoothing, axis=axis, n_threads=n_threads),
                  callback)


def nll_loss(input: Any, target: Any, weight: Any = None, *, ignore_index: int = -100,
             reduction: str = "mean", axis: int | None = None, n_threads: int | None = None,
             callback: str = "auto") -> Any:
    """Negative log-likelihood of JAX arrays, as :func:`fastxent.nll_loss`, with ``jax.grad`` through its fused gradient.

    A ``jax.custom_vjp`` over a host callback: usable under ``jax.jit``,
    ``jax.grad``, ``jax.value_and_grad``, ``jax.vjp`` and ``jax.vmap``.  The
    loss of a sample is ``-weight[y] * input[n, y]``.

    Parameters
    ----------
    input : jax.Array or array_like
        Log-probabilities (float32 or float64; float16 and bfloat16 computed in
        float32), shaped ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)``.
    target : jax.Array or array_like
        Class indices (integers, ``input``'s shape without the class axis).
    weight : jax.Array or array_like, optional
        A weight per class, shape ``(C,)``; not differentiated.
    ignore_index : int, default -100
        Targets equal to it add nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the per-sample losses are combined: "mean" divides by the weight
        of the targets not ignored, "sum" adds them, "none" returns them.
    axis : int, optional
        The class axis; None is PyTorch's convention (0 for 1-D input, else 1).
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).
    callback : {"auto", "buffer", "pure"}, default "auto"
        How the host is called: ``jax.experimental.buffer_callback``, which
        hands fastxent XLA's own buffers (no copy); ``jax.pure_callback``,
        which copies each argument and result; or the first where JAX has it.

    Returns
    -------
    jax.Array
        The loss in ``input``'s dtype: a scalar, or per sample for
        ``reduction="none"``; differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        While tracing: a non-floating ``input``, a ``target`` that is not
        integer, an option of the wrong type; differentiation with respect to an
        argument other than ``input``; forward-mode differentiation
        (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``), which the host callback
        does not have.
    ValueError
        While tracing: shapes that do not fit, an unknown ``reduction``,
        ``axis`` out of range, an unknown ``callback``.
    jax.errors.JaxRuntimeError
        When the computation runs (``XlaRuntimeError`` in older JAX), wrapping
        fastxent's ValueError for a bad value (a class index outside ``[0, C)``
        that is not ``ignore_index``).

    See Also
    --------
    fastxent.nll_loss : The NumPy function, with the formulas.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastxent.jax as fxj
    >>> logp = jax.nn.log_softmax(jnp.array([[0., 1., 2., 3.]]))
    >>> round(float(fxj.nll_loss(logp, jnp.array([3]))), 4)
    0.4402
    """
    return _apply("nll_loss", True, input, {"target": target, "weight": weight},
                  dict(ignore_index=ignore_index, reduction=reduction, axis=axis,
                       n_threads=n_threads), callback)


def binary_cross_entropy(input: Any, target: Any, weight: Any = None, *,
                         reduction: str = "mean", n_threads: int | None = None,
                         callback: str = "auto") -> Any:
    """Binary cross-entropy of JAX arrays of probabilities, as :func:`fastxent.binary_cross_entropy`.

    A ``jax.custom_vjp`` over a host callback: usable under ``jax.jit``,
    ``jax.grad``, ``jax.value_and_grad``, ``jax.vjp`` and ``jax.vmap``, the
    gradient coming from the same kernel call as the loss.

    Parameters
    ----------
    input : jax.Array or array_like
        Probabilities in ``[0, 1]`` (float32 or float64; float16 and bfloat16
        computed in float32), any shape.
    target : jax.Array or array_like
        Targets in ``[0, 1]``, ``input``'s shape; not differentiated.
    weight : jax.Array or array_like, optional
        Weights that broadcast to ``input``'s shape; not differentiated.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the elementwise losses are combined: "mean" divides by the number
        of elements, "sum" adds them, "none" returns them.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).
    callback : {"auto", "buffer", "pure"}, default "auto"
        How the host is called: ``jax.experimental.buffer_callback``, which
        hands fastxent XLA's own buffers (no copy); ``jax.pure_callback``,
        which copies each argument and result; or the first where JAX has it.

    Returns
    -------
    jax.Array
        The loss in ``input``'s dtype, differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        While tracing: a non-floating ``input``, a ``target`` or ``weight`` that
        is not real, an option of the wrong type; differentiation with respect
        to an argument other than ``input``; forward-mode differentiation
        (``jax.jvp``, ``jax.jacfwd``, ``jax.hessian``), which the host callback
        does not have.
    ValueError
        While tracing: shapes that do not fit, an unknown ``reduction``, an
        unknown ``callback``.
    jax.errors.JaxRuntimeError
        When the computation runs (``XlaRuntimeError`` in older JAX),
        wrapping fastxent's ValueError for a bad value (a value of ``input``
        or ``target`` outside ``[0, 1]``).

    See Also
    --------
    fastxent.binary_cross_entropy : The NumPy function, with the formulas.

    Examples
    --------
    >>> import jax.numpy as jnp, fastxent.jax as fxj
    >>> round(float(fxj.binary_cross_entropy(jnp.array([0.9, 0.2]), jnp.array([1., 0.]),
    ...                                      reduction="sum")), 4)
    0.3285
    """
    return _apply("binary_cross_entropy", False, input, {"target": target, "weight": weight},
                  dict(reduction=reduction, n_threads=n_threads), callback)


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None, *,
                                     pos_weight: Any = None, reduction: str = "mean",
                                     n_threads: int | None = None,
                                     callback: str = "auto") -> Any:
    """Binary cross-entropy of JAX arrays of logits, as :func:`fastxent.binary_cross_entropy_with_logits`.

    A ``jax.custom_vjp`` over a host callback: usable under ``jax.jit``,
    ``jax.grad``, ``jax.value_and_grad``, ``jax.vjp`` and ``jax.vmap``, the
    gradient coming from the same kernel call as the loss.

    Parameters
    ----------
    input : jax.Array or array_like
        Logits (float32 or float64; float16 and bfloat16 computed in float32),
        any shape.
    target : jax.Array or array_like
        Targets in ``[0, 1]``, ``input``'s shape; not differentiated.
    weight : jax.Array or array_like, optional
        Weights that broadcast to ``input``'s shape; not differentiated.
    pos_weight : jax.Array or array_like, optional
        Weights of the positive term, broadcast to ``input``'s shape (a ``(C,)``
        one along the last axis); not differentiated.
    reduction : {"mean", "sum", "none"}, default "mean"
        How the elementwise losses are combined: "mean" divides by the number
        of elements, "sum" adds them, "none" returns them.
    n_threads : int, optional
        Threads for the kernel (default :func:`fastxent.get_num_threads`).
    callback : {"auto", "buffer", "pure"}, default "auto"
        How the host is called: ``jax.experimental.buffer_callback``, which
        hands fastxent XLA's own buffers (no copy); ``jax.pure_callback``,
        which copies each argument and result; or the first where JAX has it.

    Returns
    -------
    jax.Array
        The loss in ``input``'s dtype, differentiable with respect to ``input``.

    Raises
    ------
    TypeError
        While tracing: a non-floating ``input``, a ``target``, ``weight`` or
        ``pos_weight`` that is not real, an option of the wrong type;
        differentiation with respect to an argument other than ``input``;
        forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``,
        ``jax.hessian``), which the host callback does not have.
    ValueError
        While tracing: shapes that do not fit, an unknown ``reduction``, an
        unknown ``callback``.

    See Also
    --------
    fastxent.binary_cross_entropy_with_logits : The NumPy function, with the formulas.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, fastxent.jax as fxj
    >>> f = lambda x: fxj.binary_cross_entropy_with_logits(x, jnp.ones((2, 3)))
    >>> loss, g = jax.value_and_grad(f)(jnp.full((2, 3), 1.0))
    >>> round(float(loss), 4), round(float(g[0, 0]), 4)
    (0.3133, -0.0448)
    """
    return _apply("binary_cross_entropy_with_logits", False, input,
                  {"target": target, "weight": weight, "pos_weight": pos_weight},
                  dict(reduction=reduction, n_threads=n_threads), callback)
