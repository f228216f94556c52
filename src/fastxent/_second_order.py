"""cross_entropy_hvp: the Hessian of cross_entropy's loss times a vector.

The diagonal of the Hessian comes with the gradient (``return_hessian=True``
of :func:`fastxent.cross_entropy` and :func:`fastxent.binary_cross_entropy_with_logits`);
the product with a whole vector, which Newton-CG and trust-region solvers need,
is its own function here.  It runs cross_entropy's kernel with ``v``: the pass
that would store the gradient stores ``H v`` instead.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import _args
from ._multiclass import _multiclass

if TYPE_CHECKING:
    from ._typing import Array, ArrayInput, Reduction


def cross_entropy_hvp(input: ArrayInput, target: ArrayInput, v: ArrayInput,
                      weight: ArrayInput | None = None, *, ignore_index: int = -100,
                      reduction: Reduction = "mean", label_smoothing: float = 0.0,
                      axis: int | None = None, grad_output: ArrayInput | None = None,
                      sample_weight: ArrayInput | None = None, out: Array | None = None,
                      n_threads: int | None = None) -> Array:
    """The Hessian of :func:`cross_entropy`'s loss with respect to ``input``, times ``v``.

    For Newton-CG, trust-region and other solvers that need the Hessian's
    action rather than the Hessian: one pass over the logits, like the
    gradient's, with the same options and the same scaling.  The Hessian of
    the returned loss is block-diagonal (one ``C x C`` block per sample
    position), so the product is computed sample by sample without ever
    forming it.

    Parameters
    ----------
    input : array_like, shape (C,), (N, C) or (N, C, d1, ..., dk)
        Logits, as for :func:`cross_entropy`: float32 or float64, or float16
        (computed in float32, returned as float16).
    target : array_like
        Class indices (integer, ``input``'s shape without the class axis) or
        class probabilities (floating, ``input``'s shape), as for
        :func:`cross_entropy`.
    v : array_like
        The vector, ``input``'s shape, any real dtype (read as ``input``'s).
    weight : array_like, shape (C,), optional
        A weight per class, as for :func:`cross_entropy`.
    ignore_index : int, default -100
        Class-index targets equal to it contribute nothing.
    reduction : {"mean", "sum", "none"}, default "mean"
        The loss whose Hessian is taken: the mean, the sum, or (with "none")
        ``sum(grad_output * loss)``.
    label_smoothing : float, default 0.0
        As for :func:`cross_entropy`.
    axis : int, optional
        The class axis, as for :func:`cross_entropy` (read in place).
    grad_output : array_like, optional
        A factor of the result, as for the gradient: a scalar for "mean" and
        "sum", the loss's shape for "none".  Default: 1.
    sample_weight : array_like, optional
        A non-negative weight per sample position, as for :func:`cross_entropy`.
    out : ndarray, optional
        Receives the result: ``input``'s shape and dtype, C-contiguous,
        writeable and overlapping no argument.
    n_threads : int, optional
        Threads for this call (default :func:`fastxent.get_num_threads`); the
        result is bitwise the same for every count.

    Returns
    -------
    hv : ndarray
        ``H @ v`` with ``H`` the Hessian of the loss :func:`cross_entropy`
        returns with these options, ``input``'s shape and dtype; ``out``
        where given.

    Raises
    ------
    TypeError
        As for :func:`cross_entropy`; also if ``v`` is not real.
    ValueError
        As for :func:`cross_entropy`; also if ``v`` does not have ``input``'s
        shape.

    See Also
    --------
    cross_entropy : The loss, its gradient and (``return_hessian=True``) the
        Hessian's diagonal.

    Notes
    -----
    With ``p_n`` the softmax of sample ``n`` and ``A_n`` its total target mass
    (``sum_k w_k * q[n, k]``: ``w[y_n]`` for a class index without smoothing,
    see :func:`cross_entropy`), the Hessian of ``loss_n`` is ``A_n *
    (diag(p_n) - p_n p_n^T)``, so ::

        (H v)[n, c] = s_n * A_n * p[n, c] * (v[n, c] - sum_k p[n, k] * v[n, k])

    with ``s_n`` the gradient's factor of the sample (its sample weight times
    ``grad_output`` over the mean's divisor).  Ignored samples give 0.

    Examples
    --------
    >>> import numpy as np, fastxent
    >>> x = np.array([[2.0, 0.5, -1.0],
    ...               [0.0, 1.0, 0.0]])
    >>> v = np.array([[1.0, 0.0, 0.0],
    ...               [0.0, 0.0, 0.0]])
    >>> fastxent.cross_entropy_hvp(x, [0, 1], v).round(4)
    array([[ 0.0842, -0.0689, -0.0154],
           [ 0.    ,  0.    ,  0.    ]])

    A Newton-CG step of a multinomial model needs ``H v`` for many ``v``;
    its diagonal is ``cross_entropy``'s ``return_hessian``:

    >>> _, _, hess = fastxent.cross_entropy(x, [0, 1], return_grad=True, return_hessian=True)
    >>> bool(np.isclose(hess[0, 0], fastxent.cross_entropy_hvp(x, [0, 1], v)[0, 0]))
    True
    """
    return _multiclass("xent", input, target, _args.class_weight_option(weight),
                       _args.check_int64(ignore_index, "ignore_index"), _args.check_reduction(reduction),
                       _args.check_label_smoothing(label_smoothing), _args.axis_option(axis),
                       True, grad_output, out, _args.threads_option(n_threads), sample_weight,
                       False, v)
