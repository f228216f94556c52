# The binary drivers: binary cross-entropy on probabilities and on logits.
#
# The arithmetic is in cext/fx_bce.h; this function cuts the flat input into
# blocks of BCE_BLOCK elements (depending on the size only, never on the thread
# count), runs the blocks with prange and the GIL released, and adds the
# per-block loss sums in block order.  weight and pos_weight arrive as their own
# (small) arrays with a description of how they broadcast to the input (sizes
# and element strides of merged axes, from _args.broadcast_operand): they are
# never copied to the input's shape.

cdef extern from "fx_bce.h" nogil:
    ctypedef struct fx_bcast:
        int nd
        const Py_ssize_t *dims
        const Py_ssize_t *strides
    enum:
        FX_BCE_TILE
        FX_BCE_MAXDIM
    double fx_bce_block_f(int logits, const float *x, const float *t, Py_ssize_t j0, Py_ssize_t n,
                          const float *w, const fx_bcast *wl, const float *pw, const fx_bcast *pwl,
                          float *loss_out, float *g, const double *gout, double gscale,
                          Py_ssize_t *n_bad)
    double fx_bce_block_d(int logits, const double *x, const double *t, Py_ssize_t j0, Py_ssize_t n,
                          const double *w, const fx_bcast *wl, const double *pw, const fx_bcast *pwl,
                          double *loss_out, double *g, const double *gout, double gscale,
                          Py_ssize_t *n_bad)

cdef enum:
    BCE_BLOCK = 16384        # elements per block (a multiple of FX_BCE_TILE)


# ---- the dtype dispatch, in one place ------------------------------------------

cdef inline double bce_block(bint logits, const real *x, const real *t, Py_ssize_t j0, Py_ssize_t n,
                             const real *w, const fx_bcast *wl, const real *pw, const fx_bcast *pwl,
                             real *loss_out, real *g, const double *gout, double gscale,
                             Py_ssize_t *n_bad) noexcept nogil:
    if real is float:
        return fx_bce_block_f(logits, x, t, j0, n, w, wl, pw, pwl, loss_out, g, gout, gscale, n_bad)
    else:
        return fx_bce_block_d(logits, x, t, j0, n, w, wl, pw, pwl, loss_out, g, gout, gscale, n_bad)


cdef inline fx_bcast bcast_of(bint present, const Py_ssize_t[::1] dims,
                              const Py_ssize_t[::1] strides) except *:
    # The C view of a layout from _args.broadcast_operand (nd 0: an absent operand).
    cdef fx_bcast b
    b.nd = 0
    b.dims = NULL
    b.strides = NULL
    if not present:
        return b
    if not 1 <= dims.shape[0] <= FX_BCE_MAXDIM or strides.shape[0] != dims.shape[0]:
        raise ValueError(f"a broadcast layout has 1 to {FX_BCE_MAXDIM} axes, got {dims.shape[0]}")
    b.nd = <int>dims.shape[0]
    b.dims = &dims[0]
    b.strides = &strides[0]
    return b


# ---- Python-facing driver ------------------------------------------------------

def bce(bint logits, const real[::1] x, const real[::1] t,
        const real[::1] w, const Py_ssize_t[::1] w_dims, const Py_ssize_t[::1] w_strides,
        const real[::1] pw, const Py_ssize_t[::1] pw_dims, const Py_ssize_t[::1] pw_strides,
        real[::1] loss_out, real[::1] g, const double[::1] gout, double gscale, int n_threads):
    """Binary cross-entropy over flat ``x`` (logits, or probabilities) and ``t``.

    ``w`` and ``pw`` (pos_weight, with logits only) are flat C-contiguous
    operands, or None, broadcast to ``x`` as their ``*_dims`` / ``*_strides``
    describe.  ``loss_out`` (per element), ``g`` (like ``x``) and ``gout`` (per
    element) are optional.  Returns ``(loss_sum, n_bad_x, n_bad_t)``: the counts
    of probabilities outside [0, 1] in ``x`` and ``t`` (0 with logits); the
    caller raises when they are not 0.
    """
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t nb = (n + BCE_BLOCK - 1) // BCE_BLOCK
    if t.shape[0] != n or (loss_out is not None and loss_out.shape[0] != n) \
            or (g is not None and g.shape[0] != n) or (gout is not None and gout.shape[0] != n):
        raise ValueError("bce: every flat array must have the input's length")
    cdef fx_bcast wl = bcast_of(w is not None, w_dims, w_strides)
    cdef fx_bcast pwl = bcast_of(pw is not None, pw_dims, pw_strides)
    cdef const real *xp = &x[0] if n > 0 else NULL
    cdef const real *tp = &t[0] if n > 0 else NULL
    cdef const real *wp = &w[0] if w is not None and w.shape[0] > 0 else NULL
    cdef const real *pwp = &pw[0] if pw is not None and pw.shape[0] > 0 else NULL
    cdef real *lp = &loss_out[0] if loss_out is not None and loss_out.shape[0] > 0 else NULL
    cdef real *gp = &g[0] if g is not None and g.shape[0] > 0 else NULL
    cdef const double *gop = &gout[0] if gout is not None and gout.shape[0] > 0 else NULL
    cdef double *partials = alloc_partials(nb)
    cdef Py_ssize_t *bad = <Py_ssize_t*>malloc((2 * nb if nb > 0 else 1) * sizeof(Py_ssize_t))
    cdef Py_ssize_t blk, j0, m, n_bad_x = 0, n_bad_t = 0
    cdef int nt = threads_for(n, nb, n_threads)
    cdef double total
    if bad == NULL:
        free(partials)
        raise MemoryError(f"cannot allocate {2 * nb} block counts")
    try:
        with nogil:
            for blk in prange(nb, num_threads=nt, schedule="static"):
                j0 = blk * BCE_BLOCK
                m = BCE_BLOCK if j0 + BCE_BLOCK <= n else n - j0
                partials[blk] = bce_block(logits, xp, tp, j0, m, wp, &wl, pwp, &pwl,
                                          lp, gp, gop, gscale, bad + 2 * blk)
            total = sum_in_order(partials, nb)
            for blk in range(nb):
                n_bad_x = n_bad_x + bad[2 * blk]
                n_bad_t = n_bad_t + bad[2 * blk + 1]
    finally:
        free(partials)
        free(bad)
    return total, n_bad_x, n_bad_t
