# The Kullback-Leibler drivers: kl_div (elementwise) and the distillation loss
# (two sets of logits over a class axis).
#
# The arithmetic and the blocks are in cext/fx_kl.h; each driver fills the
# kernel's struct from its keyword arguments (checking that every array fits
# the shape), runs the blocks with prange and the GIL released, and adds the
# per-block loss sums in block order.

from fastxent.kernels cimport (
    fx_kl_args, fx_kl_nblocks, fx_kl_block_f, fx_kl_block_d,
    fx_distill_args, fx_distill_block_f, fx_distill_block_d)

ctypedef double (*kl_block_fn)(const fx_kl_args *A, Py_ssize_t b) noexcept nogil
ctypedef double (*distill_block_fn)(const fx_distill_args *A, Py_ssize_t b) noexcept nogil


cdef double run_kl_blocks(kl_block_fn fn, const fx_kl_args *A, int n_threads) except? -1.0:
    # Every block of the call, the block sums added in block order.
    cdef Py_ssize_t nb = fx_kl_nblocks(A), blk
    cdef double *partials = <double *>block_results(nb, sizeof(double))
    cdef double total
    try:
        with nogil:
            for blk in prange(nb, num_threads=threads_for(A.n, nb, n_threads), schedule="dynamic"):
                partials[blk] = fn(A, blk)
            total = sum_in_order(partials, nb)
    finally:
        free(partials)
    return total


def kl_div(*, const real[::1] x, const real[::1] t, bint log_target, real[::1] loss_out,
           real[::1] grad, const double[::1] gout, double gscale, int n_threads):
    """kl_div over flat ``x`` (log-probabilities) and ``t`` (probabilities, or
    their logs with ``log_target``); returns the loss sum.  ``loss_out`` (per
    element), ``grad`` (like ``x``) and ``gout`` (per element) are optional; the
    gradient is scaled by ``gout * gscale``.
    """
    cdef fx_kl_args A
    cdef Py_ssize_t n = x.shape[0]
    memset(&A, 0, sizeof(A))
    A.n = n
    A.x = addr(x, n, "x")
    A.t = addr(t, n, "t")
    A.log_target = log_target
    A.loss = <void *>addr(loss_out, n, "loss_out")
    A.grad = <void *>addr(grad, n, "grad")
    A.gout = <const double *>addr(gout, n, "gout")
    A.gscale = gscale
    if real is float:
        return run_kl_blocks(fx_kl_block_f, &A, n_threads)
    else:
        return run_kl_blocks(fx_kl_block_d, &A, n_threads)


cdef double run_distill_blocks(distill_block_fn fn, const fx_distill_args *A,
                               int n_threads) except? -1.0:
    cdef Py_ssize_t nb = fx_nblocks(&A.shape), blk
    cdef Py_ssize_t n_x = A.shape.n_outer * A.shape.C * A.shape.inner
    cdef double *partials = <double *>block_results(nb, sizeof(double))
    cdef double total
    try:
        with nogil:
            for blk in prange(nb, num_threads=threads_for(n_x, nb, n_threads), schedule="dynamic"):
                partials[blk] = fn(A, blk)
            total = sum_in_order(partials, nb)
    finally:
        free(partials)
    return total


def distill(*, const real[::1] s, const real[::1] t, Py_ssize_t n_outer, Py_ssize_t C,
            Py_ssize_t inner, double temperature, real[::1] loss_out, real[::1] grad,
            const double[::1] gout, double gscale, int n_threads):
    """The distillation loss ``T^2 KL(softmax(t / T) || softmax(s / T))`` over
    (n_outer, C, inner) student logits ``s`` and teacher logits ``t``; returns
    the loss sum.  ``loss_out`` (per element: ``T^2 p_t (log p_t - log p_s)``),
    ``grad`` (like ``s``) and ``gout`` (per element) are optional; the gradient
    is scaled by ``gscale`` (and is that of ``sum(gout * loss_out)`` with
    ``gout``).
    """
    if not temperature > 0.0 or temperature == float("inf"):
        raise ValueError(f"temperature must be positive and finite, got {temperature}")
    cdef fx_distill_args A
    cdef Py_ssize_t n = s.shape[0]
    memset(&A, 0, sizeof(A))
    A.shape = layout_of(n, n_outer, C, inner)
    A.s = addr(s, n, "s")
    A.t = addr(t, n, "t")
    A.temperature = temperature
    A.loss = <void *>addr(loss_out, n, "loss_out")
    A.grad = <void *>addr(grad, n, "grad")
    A.gout = <const double *>addr(gout, n, "gout")
    A.gscale = gscale
    if real is float:
        return run_distill_blocks(fx_distill_block_f, &A, n_threads)
    else:
        return run_distill_blocks(fx_distill_block_d, &A, n_threads)
