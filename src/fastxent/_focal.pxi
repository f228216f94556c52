# The sigmoid focal loss driver (torchvision's sigmoid_focal_loss).
#
# The arithmetic and the blocks are in cext/fx_focal.h; this driver fills the
# kernel's struct from its keyword arguments, runs the blocks (FX_BCE_BLOCK
# elements each, fixed by the size alone) with prange and the GIL released,
# and adds the per-block loss sums in block order.

from fastxent.kernels cimport fx_focal_args, fx_focal_nblocks, fx_focal_block_f, fx_focal_block_d

ctypedef double (*focal_block_fn)(const fx_focal_args *A, Py_ssize_t b, Py_ssize_t *n_bad) noexcept nogil


cdef tuple run_focal_blocks(focal_block_fn fn, const fx_focal_args *A, int n_threads):
    # Every block of the call: (loss sum in block order, targets outside [0, 1]).
    cdef Py_ssize_t nb = fx_focal_nblocks(A), blk, n_bad = 0
    cdef double *partials = <double *>block_results(nb, sizeof(double))
    cdef Py_ssize_t *bad = <Py_ssize_t *>block_results(nb, sizeof(Py_ssize_t))
    cdef double total
    try:
        with nogil:
            for blk in prange(nb, num_threads=threads_for(A.n, nb, n_threads), schedule="dynamic"):
                partials[blk] = fn(A, blk, bad + blk)
            total = sum_in_order(partials, nb)
            for blk in range(nb):
                n_bad = n_bad + bad[blk]
    finally:
        free(partials)
        free(bad)
    return total, n_bad


def focal(*, const real[::1] x, const real[::1] t, double alpha, double gamma,
          real[::1] loss_out, real[::1] grad, const double[::1] gout, double gscale,
          int n_threads):
    """The sigmoid focal loss over flat logits ``x`` and targets ``t``.

    ``alpha < 0`` turns the class weighting off; ``gamma >= 0``.  ``loss_out``
    (per element), ``grad`` (like ``x``) and ``gout`` (per element) are
    optional; the gradient is scaled by ``gout * gscale``.  Returns
    ``(loss_sum, n_bad_t)``: the count of targets outside [0, 1] (NaN
    included); the caller raises when it is not 0.
    """
    if not gamma >= 0.0 or gamma == float("inf"):
        raise ValueError(f"gamma must be finite and >= 0, got {gamma}")
    if alpha != alpha or alpha == float("inf"):
        raise ValueError(f"alpha must be finite, got {alpha}")
    cdef fx_focal_args A
    cdef Py_ssize_t n = x.shape[0]
    memset(&A, 0, sizeof(A))
    A.n = n
    A.x = addr(x, n, "x")
    A.t = addr(t, n, "t")
    A.alpha = alpha
    A.gamma = gamma
    A.loss = <void *>addr(loss_out, n, "loss_out")
    A.grad = <void *>addr(grad, n, "grad")
    A.gout = <const double *>addr(gout, n, "gout")
    A.gscale = gscale
    if real is float:
        return run_focal_blocks(fx_focal_block_f, &A, n_threads)
    else:
        return run_focal_blocks(fx_focal_block_d, &A, n_threads)
