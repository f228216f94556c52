# The multi-class drivers: cross-entropy, nll, log-sum-exp / softmax.
#
# The arithmetic is in cext/fx_xent.h; these functions cut the work into blocks
# that depend on the shape only (never on the thread count), run the blocks with
# prange and the GIL released, and add the per-block loss sums in block order.
#
# Layout: the input is (n_outer, C, inner) in C order.  inner == 1 means the
# class axis is contiguous ("rows"); otherwise blocks are tiles of FX_TILE
# sample positions of one outer index.  Sample n = o * inner + i indexes the
# targets, per-sample losses and grad_output.

cdef extern from "fx_xent.h" nogil:
    enum:
        FX_TILE
        FX_LSE
        FX_SOFTMAX
        FX_LOG_SOFTMAX
    double fx_xent_rows_f(const float *x, Py_ssize_t n_rows, Py_ssize_t C,
                          const int64_t *y, int64_t ignore_index,
                          const float *t, const float *w, double w_sum, double eps,
                          float *loss_out, float *g, const double *gout, double gscale)
    double fx_xent_rows_d(const double *x, Py_ssize_t n_rows, Py_ssize_t C,
                          const int64_t *y, int64_t ignore_index,
                          const double *t, const double *w, double w_sum, double eps,
                          double *loss_out, double *g, const double *gout, double gscale)
    double fx_xent_tile_f(const float *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                          const int64_t *y, int64_t ignore_index,
                          const float *t, const float *w, double w_sum, double eps,
                          float *loss_out, float *g, const double *gout, double gscale)
    double fx_xent_tile_d(const double *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                          const int64_t *y, int64_t ignore_index,
                          const double *t, const double *w, double w_sum, double eps,
                          double *loss_out, double *g, const double *gout, double gscale)
    void fx_lse_rows_f(const float *x, Py_ssize_t n_rows, Py_ssize_t C, int mode,
                       float *lse_out, float *out)
    void fx_lse_rows_d(const double *x, Py_ssize_t n_rows, Py_ssize_t C, int mode,
                       double *lse_out, double *out)
    void fx_lse_tile_f(const float *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner, int mode,
                       float *lse_out, float *out)
    void fx_lse_tile_d(const double *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner, int mode,
                       double *lse_out, double *out)

cdef enum:
    BLOCK_ELEMS = 16384      # elements per block of rows (at least one row)
    TARGET_BLOCK = 65536     # targets per block of the target check


# ---- the dtype dispatch, in one place ------------------------------------------

cdef inline double xent_rows(const real *x, Py_ssize_t n_rows, Py_ssize_t C,
                             const int64_t *y, int64_t ignore_index,
                             const real *t, const real *w, double w_sum, double eps,
                             real *loss_out, real *g, const double *gout,
                             double gscale) noexcept nogil:
    if real is float:
        return fx_xent_rows_f(x, n_rows, C, y, ignore_index, t, w, w_sum, eps, loss_out, g, gout, gscale)
    else:
        return fx_xent_rows_d(x, n_rows, C, y, ignore_index, t, w, w_sum, eps, loss_out, g, gout, gscale)


cdef inline double xent_tile(const real *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                             const int64_t *y, int64_t ignore_index,
                             const real *t, const real *w, double w_sum, double eps,
                             real *loss_out, real *g, const double *gout,
                             double gscale) noexcept nogil:
    if real is float:
        return fx_xent_tile_f(x, T, C, inner, y, ignore_index, t, w, w_sum, eps, loss_out, g, gout, gscale)
    else:
        return fx_xent_tile_d(x, T, C, inner, y, ignore_index, t, w, w_sum, eps, loss_out, g, gout, gscale)


cdef inline void lse_rows(const real *x, Py_ssize_t n_rows, Py_ssize_t C, int mode,
                          real *lse_out, real *out) noexcept nogil:
    if real is float:
        fx_lse_rows_f(x, n_rows, C, mode, lse_out, out)
    else:
        fx_lse_rows_d(x, n_rows, C, mode, lse_out, out)


cdef inline void lse_tile(const real *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner, int mode,
                          real *lse_out, real *out) noexcept nogil:
    if real is float:
        fx_lse_tile_f(x, T, C, inner, mode, lse_out, out)
    else:
        fx_lse_tile_d(x, T, C, inner, mode, lse_out, out)


# ---- blocks -------------------------------------------------------------------

cdef struct Blocks:
    Py_ssize_t n            # number of blocks
    Py_ssize_t rows         # rows per block (row layout)
    Py_ssize_t tiles        # tiles per outer index (strided layout)


cdef inline Blocks make_blocks(Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner) noexcept nogil:
    cdef Blocks b
    if inner == 1:
        # about BLOCK_ELEMS elements, at least one row (an empty row counts as one element)
        b.rows = BLOCK_ELEMS // C if C > 0 else BLOCK_ELEMS
        if b.rows < 1:
            b.rows = 1
        b.tiles = 0
        b.n = (n_outer + b.rows - 1) // b.rows
    else:
        b.rows = 0
        b.tiles = (inner + FX_TILE - 1) // FX_TILE
        b.n = n_outer * b.tiles
    return b


# ---- Python-facing drivers -----------------------------------------------------

def check_index_targets(const int64_t[::1] y, Py_ssize_t C, int64_t ignore_index,
                        const double[::1] w, int n_threads):
    """Check class-index targets and total what a "mean" divides by.

    Returns ``(first_bad, n_kept, w_kept)``: the flat position of the first
    target outside ``[0, C)`` that is not ``ignore_index`` (-1 if none), the
    number of targets not ignored and the sum of their class weights (their
    number without weights), each added in block order.
    """
    cdef Py_ssize_t n = y.shape[0]
    cdef Py_ssize_t nb = (n + TARGET_BLOCK - 1) // TARGET_BLOCK
    cdef const int64_t *yp = &y[0] if n > 0 else NULL
    cdef const double *wp = &w[0] if w is not None and w.shape[0] > 0 else NULL
    cdef double *wsum = alloc_partials(nb)
    cdef double *cnt = alloc_partials(nb)
    cdef double *bad = alloc_partials(nb)
    cdef Py_ssize_t blk, j, j0, j1, first_bad = -1
    cdef double c_acc, w_acc, n_kept = 0.0, w_kept = 0.0
    cdef int64_t v
    cdef int nt = threads_for(n, nb, n_threads)
    try:
        with nogil:
            for blk in prange(nb, num_threads=nt, schedule="static"):
                j0 = blk * TARGET_BLOCK
                j1 = j0 + TARGET_BLOCK if j0 + TARGET_BLOCK < n else n
                c_acc = 0.0
                w_acc = 0.0
                bad[blk] = -1.0
                for j in range(j0, j1):
                    v = yp[j]
                    if v == ignore_index:
                        continue
                    if v < 0 or v >= C:
                        if bad[blk] < 0:
                            bad[blk] = <double>j
                        continue
                    c_acc = c_acc + 1.0
                    w_acc = w_acc + (wp[v] if wp != NULL else 1.0)
                cnt[blk] = c_acc
                wsum[blk] = w_acc
            for blk in range(nb):
                if bad[blk] >= 0:
                    first_bad = <Py_ssize_t>bad[blk]
                    break
            n_kept = sum_in_order(cnt, nb)
            w_kept = sum_in_order(wsum, nb)
    finally:
        free(wsum)
        free(cnt)
        free(bad)
    return first_bad, int(n_kept), w_kept


def xent(const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner,
         const int64_t[::1] y, int64_t ignore_index, const real[::1] t,
         const real[::1] w, double w_sum, double eps,
         real[::1] loss_out, real[::1] g, const double[::1] gout, double gscale,
         int n_threads):
    """Cross-entropy over an (n_outer, C, inner) input; returns the loss sum.

    ``y`` (class indices) or ``t`` (probabilities, like ``x``) is given, the
    other None.  ``loss_out`` (per sample), ``g`` (like ``x``) and ``gout``
    (per sample) are optional.  Targets must have been checked.
    """
    cdef Blocks bl = make_blocks(n_outer, C, inner)
    cdef const real *xp = &x[0] if x.shape[0] > 0 else NULL
    cdef const int64_t *yp = &y[0] if y is not None and y.shape[0] > 0 else NULL
    cdef const real *tp = &t[0] if t is not None and t.shape[0] > 0 else NULL
    cdef const real *wp = &w[0] if w is not None and w.shape[0] > 0 else NULL
    cdef real *lp = &loss_out[0] if loss_out is not None and loss_out.shape[0] > 0 else NULL
    cdef real *gp = &g[0] if g is not None and g.shape[0] > 0 else NULL
    cdef const double *gop = &gout[0] if gout is not None and gout.shape[0] > 0 else NULL
    cdef bint by_index = y is not None
    cdef double *partials = alloc_partials(bl.n)
    cdef Py_ssize_t blk, r0, nr, o, i0, T, off, n0
    cdef int nt = threads_for(x.shape[0], bl.n, n_threads)
    cdef double total
    try:
        with nogil:
            if inner == 1:
                for blk in prange(bl.n, num_threads=nt, schedule="static"):
                    r0 = blk * bl.rows
                    nr = bl.rows if r0 + bl.rows <= n_outer else n_outer - r0
                    off = r0 * C
                    partials[blk] = xent_rows(
                        xp + off, nr, C, (yp + r0) if by_index else NULL, ignore_index,
                        (tp + off) if not by_index else NULL, wp, w_sum, eps,
                        (lp + r0) if lp != NULL else NULL, (gp + off) if gp != NULL else NULL,
                        (gop + r0) if gop != NULL else NULL, gscale)
            else:
                for blk in prange(bl.n, num_threads=nt, schedule="static"):
                    o = blk // bl.tiles
                    i0 = (blk - o * bl.tiles) * FX_TILE
                    T = FX_TILE if i0 + FX_TILE <= inner else inner - i0
                    off = o * C * inner + i0
                    n0 = o * inner + i0
                    partials[blk] = xent_tile(
                        xp + off, T, C, inner, (yp + n0) if by_index else NULL, ignore_index,
                        (tp + off) if not by_index else NULL, wp, w_sum, eps,
                        (lp + n0) if lp != NULL else NULL, (gp + off) if gp != NULL else NULL,
                        (gop + n0) if gop != NULL else NULL, gscale)
            total = sum_in_order(partials, bl.n)
    finally:
        free(partials)
    return total


def nll(const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner,
        const int64_t[::1] y, int64_t ignore_index, const real[::1] w,
        real[::1] loss_out, real[::1] g, const double[::1] gout, double gscale,
        int n_threads):
    """Negative log-likelihood over an (n_outer, C, inner) input of log-probabilities.

    Returns the loss sum.  ``g`` (like ``x``) must arrive zeroed: only the
    target entries are written.  Targets must have been checked.
    """
    cdef Py_ssize_t n = n_outer * inner
    cdef Py_ssize_t nb = (n + TARGET_BLOCK - 1) // TARGET_BLOCK
    cdef const real *xp = &x[0] if x.shape[0] > 0 else NULL
    cdef const int64_t *yp = &y[0] if y.shape[0] > 0 else NULL
    cdef const real *wp = &w[0] if w is not None and w.shape[0] > 0 else NULL
    cdef real *lp = &loss_out[0] if loss_out is not None and loss_out.shape[0] > 0 else NULL
    cdef real *gp = &g[0] if g is not None and g.shape[0] > 0 else NULL
    cdef const double *gop = &gout[0] if gout is not None and gout.shape[0] > 0 else NULL
    cdef double *partials = alloc_partials(nb)
    cdef Py_ssize_t blk, j, j0, j1, o, idx
    cdef int64_t v
    cdef double acc, wy, loss, gs, total
    cdef int nt = threads_for(n, nb, n_threads)
    try:
        with nogil:
            for blk in prange(nb, num_threads=nt, schedule="static"):
                j0 = blk * TARGET_BLOCK
                j1 = j0 + TARGET_BLOCK if j0 + TARGET_BLOCK < n else n
                acc = 0.0
                for j in range(j0, j1):
                    v = yp[j]
                    if v == ignore_index:
                        if lp != NULL:
                            lp[j] = 0
                        continue
                    o = j // inner
                    idx = (o * C + v) * inner + (j - o * inner)
                    wy = wp[v] if wp != NULL else 1.0
                    loss = -wy * xp[idx]
                    if lp != NULL:
                        lp[j] = <real>loss
                    acc = acc + loss
                    if gp != NULL:
                        gs = gop[j] * gscale if gop != NULL else gscale
                        gp[idx] = <real>(-wy * gs)
                partials[blk] = acc
            total = sum_in_order(partials, nb)
    finally:
        free(partials)
    return total


def lse_family(const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner,
               int mode, real[::1] lse_out, real[::1] out, int n_threads):
    """log-sum-exp over the class axis into ``lse_out`` (per sample, optional)
    and, for mode FX_SOFTMAX / FX_LOG_SOFTMAX, softmax or log_softmax into ``out``."""
    cdef Blocks bl = make_blocks(n_outer, C, inner)
    cdef const real *xp = &x[0] if x.shape[0] > 0 else NULL
    cdef real *lp = &lse_out[0] if lse_out is not None and lse_out.shape[0] > 0 else NULL
    cdef real *op = &out[0] if out is not None and out.shape[0] > 0 else NULL
    cdef Py_ssize_t blk, r0, nr, o, i0, T, off, n0
    cdef int nt = threads_for(x.shape[0], bl.n, n_threads)
    with nogil:
        if inner == 1:
            for blk in prange(bl.n, num_threads=nt, schedule="static"):
                r0 = blk * bl.rows
                nr = bl.rows if r0 + bl.rows <= n_outer else n_outer - r0
                off = r0 * C
                lse_rows(xp + off, nr, C, mode, (lp + r0) if lp != NULL else NULL,
                         (op + off) if op != NULL else NULL)
        else:
            for blk in prange(bl.n, num_threads=nt, schedule="static"):
                o = blk // bl.tiles
                i0 = (blk - o * bl.tiles) * FX_TILE
                T = FX_TILE if i0 + FX_TILE <= inner else inner - i0
                off = o * C * inner + i0
                n0 = o * inner + i0
                lse_tile(xp + off, T, C, inner, mode, (lp + n0) if lp != NULL else NULL,
                         (op + off) if op != NULL else NULL)


LSE = FX_LSE
SOFTMAX = FX_SOFTMAX
LOG_SOFTMAX = FX_LOG_SOFTMAX
