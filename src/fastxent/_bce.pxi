# The binary drivers: binary cross-entropy on probabilities and on logits.
#
# The arithmetic and the blocks are in cext/fx_bce.h; this driver fills the
# kernel's struct from its keyword arguments, runs the blocks (FX_BCE_BLOCK
# elements each, fixed by the size alone) with prange and the GIL released,
# and adds the per-block loss sums in block order.  weight and pos_weight
# arrive as their own (small) arrays with a description of how they broadcast
# to the input (sizes and element strides of merged axes, from
# _args.broadcast_operand): they are never copied to the input's shape.

from fastxent.kernels cimport (
    FX_BCE_MAXDIM, fx_bcast, fx_bce_args, fx_bce_nblocks, fx_bce_block_f, fx_bce_block_d)

ctypedef double (*bce_block_fn)(const fx_bce_args *A, Py_ssize_t b, Py_ssize_t *n_bad) noexcept nogil


cdef inline fx_bcast bcast_of(const real[::1] a, const Py_ssize_t[::1] dims,
                              const Py_ssize_t[::1] strides, str name) except *:
    # The C view of a layout from _args.broadcast_operand (nd 0: an absent
    # operand), checked to stay inside the operand's a.shape[0] elements.
    cdef fx_bcast b
    cdef Py_ssize_t d, last = 0
    b.nd = 0
    b.dims = NULL
    b.strides = NULL
    if a is None:
        return b
    if dims is None or strides is None or not 1 <= dims.shape[0] <= FX_BCE_MAXDIM \
            or strides.shape[0] != dims.shape[0]:
        raise ValueError(f"{name}: a broadcast layout has 1 to {FX_BCE_MAXDIM} axes of sizes and strides")
    for d in range(dims.shape[0]):
        if dims[d] < 0 or strides[d] < 0:
            raise ValueError(f"{name}: negative size or stride in a broadcast layout")
        # last + (dims[d] - 1) * strides[d] < a.shape[0], tested without overflow
        if a.shape[0] > 0 and dims[d] > 1 and strides[d] > 0:
            if dims[d] - 1 > (a.shape[0] - 1 - last) // strides[d]:
                raise ValueError(f"{name}: the broadcast layout reaches past its {a.shape[0]} elements")
            last += (dims[d] - 1) * strides[d]
    b.nd = <int>dims.shape[0]
    b.dims = &dims[0]
    b.strides = &strides[0]
    return b


cdef tuple run_bce_blocks(bce_block_fn fn, const fx_bce_args *A, int n_threads):
    # Every block of the call: (loss sum in block order, bad x, bad t).
    cdef Py_ssize_t nb = fx_bce_nblocks(A), blk, n_bad_x = 0, n_bad_t = 0
    cdef double *partials = <double *>block_results(nb, sizeof(double))
    cdef Py_ssize_t *bad = <Py_ssize_t *>block_results(2 * nb, sizeof(Py_ssize_t))
    cdef double total
    cdef int nt = threads_for(A.n, nb, n_threads)
    try:
        with nogil:
            if nt == 1:                 # (no parallel region: small calls, issue 19)
                for blk in range(nb):
                    partials[blk] = fn(A, blk, bad + 2 * blk)
            else:
                for blk in prange(nb, num_threads=nt, schedule="dynamic"):
                    partials[blk] = fn(A, blk, bad + 2 * blk)
            total = sum_in_order(partials, nb)
            for blk in range(nb):
                n_bad_x = n_bad_x + bad[2 * blk]
                n_bad_t = n_bad_t + bad[2 * blk + 1]
    finally:
        free(partials)
        free(bad)
    return total, n_bad_x, n_bad_t


def bce(*, bint logits, const real[::1] x, const real[::1] t,
        const real[::1] w, const Py_ssize_t[::1] w_dims, const Py_ssize_t[::1] w_strides,
        const real[::1] pw, const Py_ssize_t[::1] pw_dims,
        const Py_ssize_t[::1] pw_strides, real[::1] loss_out, real[::1] grad,
        const double[::1] gout, double gscale, int n_threads, object sw=None,
        const Py_ssize_t[::1] sw_dims=None, const Py_ssize_t[::1] sw_strides=None,
        object hess=None):
    """Binary cross-entropy over flat ``x`` (logits, or probabilities) and ``t``.

    ``w``, ``pw`` (pos_weight, with logits only) and ``sw`` (sample weights,
    a factor of ``w``) are flat C-contiguous operands, or None, broadcast to
    ``x`` as their ``*_dims`` / ``*_strides`` describe.  ``loss_out`` (per
    element), ``grad`` (like ``x``), ``gout`` (per element) and ``hess`` (like
    ``x``, with logits and ``grad``: the Hessian's diagonal) are optional.
    (``sw`` and ``hess`` are typed as ``x`` below, not in the signature: each
    fused-typed argument would make every call's type dispatch slower.)  Returns ``(loss_sum, n_bad_x, n_bad_t)``: the
    counts of probabilities outside [0, 1] in ``x`` and ``t`` (0 with logits);
    the caller raises when they are not 0.
    """
    cdef fx_bce_args A
    cdef Py_ssize_t n = x.shape[0]
    cdef const real[::1] sw_mv = None
    cdef real[::1] hess_mv = None
    if sw is not None:
        sw_mv = sw
    if hess is not None:
        hess_mv = hess
    if hess is not None and (grad is None or not logits):
        raise ValueError("bce: hess needs logits and grad")
    memset(&A, 0, sizeof(A))
    A.logits = logits
    A.n = n
    A.x = addr(x, n, "x")
    A.t = addr(t, n, "t")
    A.w = addr(w, w.shape[0] if w is not None else 0, "w")
    A.wl = bcast_of(w, w_dims, w_strides, "w")
    A.pw = addr(pw, pw.shape[0] if pw is not None else 0, "pw")
    A.pwl = bcast_of(pw, pw_dims, pw_strides, "pw")
    A.loss = <void *>addr(loss_out, n, "loss_out")
    A.grad = <void *>addr(grad, n, "grad")
    A.gout = <const double *>addr(gout, n, "gout")
    A.gscale = gscale
    A.sw = addr(sw_mv, sw_mv.shape[0] if sw_mv is not None else 0, "sw")
    A.swl = bcast_of(sw_mv, sw_dims, sw_strides, "sw")
    A.hess = <void *>addr(hess_mv, n, "hess")
    if real is float:
        return run_bce_blocks(fx_bce_block_f, &A, n_threads)
    else:
        return run_bce_blocks(fx_bce_block_d, &A, n_threads)
