"""The docstrings of the loss classes' calls, made from one template.

``loss_fn(input, target, ...)`` runs ``_modules._Loss.__call__`` for every loss
class.  Each class gets that function under a docstring of its own, so that
``help(fastxent.NLLLoss.__call__)`` and the API reference say what the call of
that class takes, returns and raises, with an example.  The shared parts
(``return_grad``, ``grad_output``, ``out``, the returns) are written once, in
``_TEMPLATE``; the parts that differ are in ``_CALLS``.  (To add an argument
to every call, add it to ``_Loss.__call__`` and to ``_TEMPLATE``.)
"""
from __future__ import annotations

import types
from typing import Any, Callable

_TEMPLATE = """The loss of ``input`` against ``target`` with this {cls}'s options.

``loss_fn(input, target, return_grad=..., grad_output=..., out=...,
sample_weight=...)`` is :func:`{function}` with the options the object holds
as attributes (``loss_fn.reduction`` and the others) passed as keywords.

Parameters
----------
input : array_like
    {input}
target : array_like
    {target}
return_grad : bool, default False
    Also return the gradient of the returned loss with respect to ``input``,
    computed in the same pass.  Keyword-only, as ``grad_output`` and ``out``.
grad_output : array_like, optional
    The upstream gradient that the returned gradient is multiplied by (with
    ``return_grad=True`` only): a scalar for ``reduction`` "mean" and "sum";
    an array of the loss's shape for "none", and the gradient is then that
    of ``sum(grad_output * loss)``.  Default: 1.
out : ndarray, optional
    Receives the gradient (with ``return_grad=True`` only), returned as
    ``grad``: ``input``'s shape and dtype, C-contiguous, writeable, and
    sharing memory with no argument.  Nothing is written to it unless every
    argument passes its checks{out_note}.
{sw_doc}
Returns
-------
loss : numpy scalar or ndarray
    The loss in ``input``'s dtype: a NumPy scalar for ``reduction`` "mean"
    and "sum", an array {none_shape} for "none".
grad : ndarray
    Only with ``return_grad=True``: the derivative of ``loss`` with respect
    to ``input`` (of ``sum(grad_output * loss)`` for "none"), times
    ``grad_output`` for "mean" and "sum"; ``input``'s shape and dtype.  It
    is ``out`` where ``out`` is given.

Raises
------
TypeError
    {type_errors}
    If ``return_grad`` is not True or False, or ``out`` is not an ndarray
    of ``input``'s dtype.
ValueError
    {value_errors}
    If ``grad_output`` or ``out`` does not fit (shape, layout,
    writeability, an overlap with an argument), or is given without
    ``return_grad=True``; if ``sample_weight`` does not fit or has a
    negative or non-finite value.

See Also
--------
{function} : The function, with the formulas.

Examples
--------
{examples}
"""

_SW_DOC = """sample_weight : array_like, optional
    A non-negative weight per sample ({sw_shape}): it multiplies the losses
    and the gradient, and "mean" divides by the summed weights, so that
    integer weights are the same as repeating samples.  A call argument, not
    an option: it goes with the data.  Default: 1.
"""

_NO_SW_DOC = """sample_weight : None
    Must be None: a {cls} takes no sample weights (the parameter is the
    cross-entropy losses' call argument); anything else is a TypeError.
"""

_CALLS: dict[str, dict[str, str]] = {
    "CrossEntropyLoss": dict(
        function="fastxent.cross_entropy",
        input="""Logits, shape ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``, the class
    axis where ``axis`` says: float32, float64 or float16 (computed in float32).""",
        target="""Class indices (any integer dtype, ``input``'s shape without the class
    axis, each in ``[0, C)`` or equal to ``ignore_index``) or class
    probabilities (floating, ``input``'s shape).""",
        none_shape="shaped like ``input`` without its class axis",
        sw_shape="``input``'s shape without the class axis",
        type_errors="If ``input`` is not floating, or ``target`` neither integer nor floating.",
        value_errors="""If a class index is outside ``[0, C)`` and is not ``ignore_index``,
    or ``target`` or ``weight`` does not fit ``input``'s shape.""",
        examples=""">>> import numpy as np, fastxent
>>> loss_fn = fastxent.CrossEntropyLoss(label_smoothing=0.1)
>>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
>>> loss, grad = loss_fn(logits, [0, 1], return_grad=True)
>>> round(float(loss), 4)
0.5047
>>> grad.round(4)
array([[-0.0739,  0.071 ,  0.0029],
       [ 0.0893, -0.1786,  0.0893]])"""),
    "NLLLoss": dict(
        function="fastxent.nll_loss",
        input="""Log-probabilities (e.g. from :func:`fastxent.log_softmax`), shape
    ``(C,)``, ``(N, C)`` or ``(N, C, d1, ..., dk)``, the class axis where
    ``axis`` says: float32, float64 or float16 (computed in float32).""",
        target="""Class indices: any integer dtype, ``input``'s shape without the class
    axis, each in ``[0, C)`` or equal to ``ignore_index``.""",
        none_shape="shaped like ``target``",
        sw_shape="``target``'s shape",
        type_errors="If ``input`` is not floating, or ``target`` is not integer (floating included).",
        value_errors="""If a class index is outside ``[0, C)`` and is not ``ignore_index``,
    or ``target`` or ``weight`` does not fit ``input``'s shape.""",
        examples=""">>> import numpy as np, fastxent
>>> loss_fn = fastxent.NLLLoss()
>>> logp = np.log([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
>>> loss, grad = loss_fn(logp, [0, 1], return_grad=True)
>>> round(float(loss), 4)
0.4338
>>> grad
array([[-0.5,  0. ,  0. ],
       [ 0. , -0.5,  0. ]])"""),
    "BCELoss": dict(
        function="fastxent.binary_cross_entropy",
        input="""Probabilities in ``[0, 1]``, any shape: float32, float64 or float16
    (computed in float32).""",
        target="Targets in ``[0, 1]`` (soft labels allowed), ``input``'s shape.",
        none_shape="of ``input``'s shape",
        sw_shape="broadcasting to ``input``, e.g. an ``(N, 1)`` column",
        out_note=""", except for the ``[0, 1]`` check of the
    values, made in the kernel's one pass""",
        type_errors="If ``input`` is not floating, or ``target`` is not real.",
        value_errors="""If a value of ``input`` or ``target`` is outside ``[0, 1]`` or NaN
    (the message says how many and where the first is), or if ``target`` or
    ``weight`` does not fit ``input``'s shape.""",
        examples=""">>> import numpy as np, fastxent
>>> loss_fn = fastxent.BCELoss()
>>> loss, grad = loss_fn(np.array([0.9, 0.2, 0.6]), [1.0, 0.0, 1.0], return_grad=True)
>>> round(float(loss), 4)
0.2798
>>> grad.round(4)
array([-0.3704,  0.4167, -0.5556])"""),
    "BCEWithLogitsLoss": dict(
        function="fastxent.binary_cross_entropy_with_logits",
        input="Logits, any shape: float32, float64 or float16 (computed in float32).",
        target="Targets, ``input``'s shape; soft labels in ``[0, 1]`` allowed (not checked).",
        none_shape="of ``input``'s shape",
        sw_shape="broadcasting to ``input``, e.g. an ``(N, 1)`` column",
        type_errors="If ``input`` is not floating, or ``target`` is not real.",
        value_errors="If ``target``, ``weight`` or ``pos_weight`` does not fit ``input``'s shape.",
        examples=""">>> import numpy as np, fastxent
>>> loss_fn = fastxent.BCEWithLogitsLoss(reduction="none")
>>> logits = np.array([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
>>> labels = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
>>> loss, grad = loss_fn(logits, labels, return_grad=True)
>>> loss.round(4)
array([[0.1269, 0.3133, 0.9741],
       [0.6931, 0.0486, 2.1269]])
>>> grad.round(4)
array([[-0.1192,  0.2689,  0.6225],
       [ 0.5   , -0.0474, -0.8808]])"""),
    "KLDivLoss": dict(
        function="fastxent.kl_div",
        input="""Log-probabilities, any shape: float32, float64 or float16 (computed
    in float32).""",
        target="""Probabilities (log-probabilities with ``log_target``), ``input``'s
    shape, any real dtype.""",
        none_shape="of ``input``'s shape",
        type_errors="If ``input`` is not floating, or ``target`` is not real.",
        value_errors="If ``target``'s shape is not ``input``'s.",
        examples=""">>> import numpy as np, fastxent
>>> loss_fn = fastxent.KLDivLoss(reduction="batchmean")
>>> logp = np.log([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
>>> loss, grad = loss_fn(logp, np.array([[0.5, 0.5, 0.0], [0.2, 0.5, 0.3]]), return_grad=True)
>>> round(float(loss), 4)
0.1687
>>> grad
array([[-0.25, -0.25, -0.  ],
       [-0.1 , -0.25, -0.15]])"""),
    "SigmoidFocalLoss": dict(
        function="fastxent.sigmoid_focal_loss",
        input="Logits, any shape: float32, float64 or float16 (computed in float32).",
        target="Targets in ``[0, 1]``, ``input``'s shape, any real dtype.",
        none_shape="of ``input``'s shape",
        out_note=""", except for the ``[0, 1]`` check of the
    targets, made in the kernel's one pass""",
        type_errors="If ``input`` is not floating, or ``target`` is not real.",
        value_errors="""If a target is outside ``[0, 1]`` or NaN (the message says how many
    and where the first is), or ``target``'s shape is not ``input``'s.""",
        examples=""">>> import numpy as np, fastxent
>>> loss_fn = fastxent.SigmoidFocalLoss(reduction="mean")
>>> loss, grad = loss_fn(np.array([3.0, -1.0, 0.5, -4.0]), [1.0, 0.0, 1.0, 1.0],
...                      return_grad=True)
>>> round(float(loss), 4)
0.2507
>>> grad.round(4)
array([-0.    ,  0.0099, -0.0086, -0.0679])"""),
}


def documented_call(call: Callable[..., Any], cls: str) -> Callable[..., Any]:
    """``call`` (``_Loss.__call__``) under the docstring of class ``cls``'s
    call: a new function object over the same code, so there is one
    implementation and no extra call per use."""
    fields = dict(_CALLS[cls])
    fields.setdefault("out_note", "")
    sw_shape = fields.pop("sw_shape", None)    # None: the call takes no sample_weight
    fields["sw_doc"] = _NO_SW_DOC.format(cls=cls) if sw_shape is None else _SW_DOC.format(sw_shape=sw_shape)
    f = types.FunctionType(call.__code__, call.__globals__, call.__name__, call.__defaults__,
                           call.__closure__)
    f.__kwdefaults__ = call.__kwdefaults__
    f.__annotations__ = call.__annotations__
    f.__module__ = call.__module__
    f.__qualname__ = f"{cls}.__call__"
    f.__doc__ = _TEMPLATE.format(cls=cls, **fields)
    return f
