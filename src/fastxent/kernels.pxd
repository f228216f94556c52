# fastxent's C kernels for downstream Cython code: `from fastxent.kernels cimport ...`
#
# These are the row kernels that fastxent's own drivers run on each block of a
# call; they are nogil, allocate nothing and take raw pointers, so a downstream
# extension can call them inside its own loops or prange.  Each comes in a float
# (_f) and a double (_d) version.  They are `static` functions of header files:
# nothing is imported from fastxent at run time, and the extension is compiled
# with fastxent's headers:
#
#     Extension(..., include_dirs=[fastxent.get_include()])
#
# (-Wno-unused-function quiets GCC about the kernels a module does not call.)
#
# Contracts (the callers check, the kernels do not):
#  * The *_rows kernels take a C-contiguous (n_rows, C) block of x.
#  * y (class indices, one per row) holds values in [0, C) or ignore_index.
#  * Sums are accumulated in double, in an order that depends on C only.

from libc.stdint cimport int64_t

cdef extern from "fx_xent.h" nogil:
    enum:
        FX_TILE             # positions per tile of the *_tile kernels, at most
        FX_LSE              # mode of fx_lse_*: log-sum-exp only
        FX_SOFTMAX          # ... and softmax into out
        FX_LOG_SOFTMAX      # ... and log_softmax into out

    # Cross-entropy of rows [0, n_rows), PyTorch's formula (label smoothing eps,
    # class weights w).  Targets are either y (class indices; rows equal to
    # ignore_index give loss 0 and gradient 0) or t (class probabilities, shaped
    # like x): pass the other as NULL.  w: C class weights or NULL; w_sum: their
    # sum (C without weights).  loss_out: per-row loss, or NULL.  g: the
    # gradient rows (shaped like x), or NULL; the gradient of row r is scaled by
    # gout[r] * gscale (gout NULL: by gscale alone): a "mean" passes 1 / what
    # it divides by (see fastxent.cross_entropy).  g may not alias x.
    # Returns the sum of the row losses.
    double fx_xent_rows_f(const float *x, Py_ssize_t n_rows, Py_ssize_t C,
                          const int64_t *y, int64_t ignore_index,
                          const float *t, const float *w, double w_sum, double eps,
                          float *loss_out, float *g, const double *gout, double gscale)
    double fx_xent_rows_d(const double *x, Py_ssize_t n_rows, Py_ssize_t C,
                          const int64_t *y, int64_t ignore_index,
                          const double *t, const double *w, double w_sum, double eps,
                          double *loss_out, double *g, const double *gout, double gscale)

    # The same for T <= FX_TILE sample positions whose classes are `inner`
    # elements apart (an (N, C, d1, ...) input): class c of position l is
    # x[c * inner + l]; y, loss_out and gout are indexed by position, t and g
    # like x.
    double fx_xent_tile_f(const float *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                          const int64_t *y, int64_t ignore_index,
                          const float *t, const float *w, double w_sum, double eps,
                          float *loss_out, float *g, const double *gout, double gscale)
    double fx_xent_tile_d(const double *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                          const int64_t *y, int64_t ignore_index,
                          const double *t, const double *w, double w_sum, double eps,
                          double *loss_out, double *g, const double *gout, double gscale)

    # log-sum-exp of each row into lse_out (or NULL) and, for mode FX_SOFTMAX or
    # FX_LOG_SOFTMAX, softmax or log_softmax into out (shaped like x); with
    # scipy.special's answers for rows of -inf, inf or NaN.
    void fx_lse_rows_f(const float *x, Py_ssize_t n_rows, Py_ssize_t C, int mode,
                       float *lse_out, float *out)
    void fx_lse_rows_d(const double *x, Py_ssize_t n_rows, Py_ssize_t C, int mode,
                       double *lse_out, double *out)
    void fx_lse_tile_f(const float *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner, int mode,
                       float *lse_out, float *out)
    void fx_lse_tile_d(const double *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner, int mode,
                       double *lse_out, double *out)
