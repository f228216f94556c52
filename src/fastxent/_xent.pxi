# The multi-class drivers: cross-entropy, nll, log-sum-exp / softmax, and the
# check of class-index targets and sample weights.
#
# The arithmetic, the block layout and the per-sample rules are in
# cext/fx_xent.h; each driver here fills the kernel's struct from its keyword
# arguments (checking that every array fits the shape), runs the blocks with
# prange and the GIL released, and adds the per-block sums in block order.

from libc.math cimport INFINITY
from fastxent.kernels cimport (
    FX_LSE, FX_SOFTMAX, FX_LOG_SOFTMAX, fx_layout, fx_xent_args, fx_lse_args, fx_target_stats,
    fx_nblocks, fx_sample_nblocks, fx_check_targets, fx_xent_block_f, fx_xent_block_d,
    fx_nll_block_f, fx_nll_block_d, fx_lse_block_f, fx_lse_block_d)

ctypedef double (*xent_block_fn)(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad) noexcept nogil
ctypedef void (*lse_block_fn)(const fx_lse_args *A, Py_ssize_t b) noexcept nogil


cdef inline fx_layout layout_of(Py_ssize_t n_x, Py_ssize_t n_outer, Py_ssize_t C,
                                Py_ssize_t inner) except *:
    # The (n_outer, C, inner) shape of an input of n_x elements, checked.
    # (Divisions first: a product of three sizes may overflow Py_ssize_t.)
    cdef fx_layout s
    cdef bint fits
    if n_outer < 0 or C < 0 or inner < 0:
        fits = False
    elif n_outer == 0 or C == 0 or inner == 0:
        fits = n_x == 0
    else:
        fits = C <= n_x // inner and n_outer <= n_x // (C * inner) and n_outer * C * inner == n_x
    if not fits:
        raise ValueError(f"an input of {n_x} elements is not ({n_outer}, {C}, {inner})")
    s.n_outer = n_outer
    s.C = C
    s.inner = inner
    return s


cdef double run_xent_blocks(xent_block_fn fn, const fx_xent_args *A, int n_threads) except? -1.0:
    # Every block of the call, the block sums added in block order.  A class
    # index the kernel found out of range (the target changed after the check)
    # raises once the blocks are done.  Every driver's prange hands the blocks
    # out dynamically: a thread the OS holds back (behind BLAS's spinning
    # workers, say) takes fewer of them, and as each block's sum has its own
    # slot, the bits do not depend on who took which.
    cdef Py_ssize_t nb = fx_nblocks(&A.shape)
    cdef Py_ssize_t n_x = A.shape.n_outer * A.shape.C * A.shape.inner
    cdef double *partials = <double *>block_results(nb, sizeof(double))
    cdef Py_ssize_t *bad = <Py_ssize_t *>block_results(nb, sizeof(Py_ssize_t))
    cdef Py_ssize_t blk, first_bad = -1
    cdef double total
    cdef int nt = threads_for(n_x, nb, n_threads)
    try:
        with nogil:
            if nt == 1:                 # (no parallel region: small calls, issue 19)
                for blk in range(nb):
                    partials[blk] = fn(A, blk, &bad[blk])
            else:
                for blk in prange(nb, num_threads=nt, schedule="dynamic"):
                    partials[blk] = fn(A, blk, &bad[blk])
            total = sum_in_order(partials, nb)
            for blk in range(nb):
                if bad[blk] >= 0:
                    first_bad = bad[blk]
                    break
        if first_bad >= 0:
            raise ValueError(
                f"the target at flat position {first_bad} held a class index outside "
                f"[0, {A.shape.C}) that is not ignore_index ({A.ignore_index}) when the kernel "
                f"read it: was the target changed during the call (by another thread)?")
    finally:
        free(partials)
        free(bad)
    return total


cdef fx_target_stats sum_target_stats(const fx_xent_args *A, const double *w64,
                                      int n_threads) except *:
    # fx_check_targets over every sample block of A: the first bad index and
    # sample weight, and the kept counts and weights added in block order.
    cdef Py_ssize_t nb = fx_sample_nblocks(&A.shape), blk
    cdef fx_target_stats *st = <fx_target_stats *>block_results(nb, sizeof(fx_target_stats))
    cdef fx_target_stats tot
    tot.first_bad = -1
    tot.first_bad_sw = -1
    tot.n_kept = 0.0
    tot.w_kept = 0.0
    cdef int nt = threads_for(A.shape.n_outer, nb, n_threads)
    try:
        with nogil:
            if nt == 1:                 # (no parallel region: small calls, issue 19)
                for blk in range(nb):
                    st[blk] = fx_check_targets(A, w64, blk)
            else:
                for blk in prange(nb, num_threads=nt, schedule="dynamic"):
                    st[blk] = fx_check_targets(A, w64, blk)
            for blk in range(nb):       # in block order
                if tot.first_bad < 0 and st[blk].first_bad >= 0:
                    tot.first_bad = st[blk].first_bad
                if tot.first_bad_sw < 0 and st[blk].first_bad_sw >= 0:
                    tot.first_bad_sw = st[blk].first_bad_sw
                tot.n_kept = tot.n_kept + st[blk].n_kept
                tot.w_kept = tot.w_kept + st[blk].w_kept
    finally:
        free(st)
    return tot


def check_samples(*, const int64_t[::1] y, Py_ssize_t C, int64_t ignore_index,
                  const double[::1] w, int n_threads, const double[::1] sw=None):
    """Check the per-sample arguments of a call and total what a "mean" divides by.

    ``y`` (class indices, or None: every sample kept) and ``sw`` (sample
    weights, or None: 1; not both None) have one element per sample.  Returns
    ``(first_bad, n_kept,
    w_kept, first_bad_sw)``: the flat position of the first target outside
    ``[0, C)`` that is not ``ignore_index`` (-1 if none), the number of samples
    kept, the sum of ``sw[i] * w[y[i]]`` over them (``w`` None: 1), each added
    in block order, and the position of the first sample weight that is
    negative or not finite (-1 if none).
    """
    if y is None and sw is None:
        raise ValueError("check_samples takes y or sw, or both")
    cdef Py_ssize_t n = y.shape[0] if y is not None else sw.shape[0]
    cdef fx_xent_args A
    memset(&A, 0, sizeof(A))
    if C < 0:
        raise ValueError(f"C ({C}) must be >= 0")
    A.shape.n_outer = n
    A.shape.C = C
    A.shape.inner = 1
    A.y = <const int64_t *>addr(y, n, "y")
    A.sw = <const double *>addr(sw, n, "sw")
    A.ignore_index = ignore_index
    cdef const double *w64 = <const double *>addr(w, C, "w")
    cdef fx_target_stats tot = sum_target_stats(&A, w64, n_threads)
    return tot.first_bad, int(tot.n_kept), tot.w_kept, tot.first_bad_sw


cdef inline fx_xent_args xent_args(const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C,
                                   Py_ssize_t inner, const int64_t[::1] y, int64_t ignore_index,
                                   const real[::1] w, real[::1] loss_out, real[::1] grad,
                                   const double[::1] gout, double gscale,
                                   const double[::1] sw) except *:
    # What cross-entropy and nll share of their struct, from checked arrays.
    cdef fx_xent_args A
    memset(&A, 0, sizeof(A))
    A.shape = layout_of(x.shape[0], n_outer, C, inner)
    cdef Py_ssize_t n = n_outer * inner
    A.x = addr(x, x.shape[0], "x")
    A.y = <const int64_t *>addr(y, n, "y")
    A.ignore_index = ignore_index
    A.w = addr(w, C, "w")
    A.loss = <void *>addr(loss_out, n, "loss_out")
    A.grad = <void *>addr(grad, x.shape[0], "grad")
    A.gout = <const double *>addr(gout, n, "gout")
    A.gscale = gscale
    A.sw = <const double *>addr(sw, n, "sw")
    return A


def xent(*, const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner,
         const int64_t[::1] y, int64_t ignore_index, const real[::1] t,
         const real[::1] w, double w_sum, double eps,
         real[::1] loss_out, real[::1] grad, const double[::1] gout,
         double gscale, int n_threads, double z_loss=0.0, double softcap=0.0,
         const double[::1] sw=None, object hess=None, object v=None):
    """Cross-entropy over an (n_outer, C, inner) input; returns the loss sum.

    Exactly one of ``y`` (class indices, checked by check_samples) and
    ``t`` (probabilities, like ``x``) is given.  ``w_sum`` is the sum of ``w``
    (C without weights).  ``loss_out`` (per sample), ``grad``
    (like ``x``), ``gout`` and ``sw`` (per sample: sample weights, checked
    by check_samples) are optional; the loss is scaled by ``sw``, the
    gradient by ``gout * sw * gscale``.  ``z_loss`` (>= 0) adds
    ``z_loss * lse**2`` to each kept sample's loss; ``softcap`` (> 0; 0: off)
    reads each logit as ``softcap * tanh(x / softcap)``.  ``hess`` (like
    ``x``, with ``grad``) receives the Hessian's diagonal; with ``v`` (like
    ``x``), ``grad`` receives the Hessian times ``v`` instead of the gradient;
    neither with ``z_loss`` or ``softcap``.  (``hess`` and ``v`` are typed as
    ``x`` below, not in the signature: each fused-typed argument would make
    every call's type dispatch slower.)
    """
    cdef real[::1] hess_mv = None
    cdef const real[::1] v_mv = None
    if hess is not None:
        hess_mv = hess
    if v is not None:
        v_mv = v
    if (y is None) == (t is None):
        raise ValueError("xent takes class indices y or probabilities t, exactly one")
    if (hess is not None or v is not None) and grad is None:
        raise ValueError("xent: hess and v need grad")
    if hess is not None and v is not None:
        raise ValueError("xent takes hess or v, not both")
    cdef fx_xent_args A = xent_args(x, n_outer, C, inner, y, ignore_index, w, loss_out, grad,
                                    gout, gscale, sw)
    A.t = addr(t, x.shape[0], "t")
    A.eps = eps
    A.w_sum = w_sum
    if not (0.0 <= z_loss < INFINITY and 0.0 <= softcap < INFINITY):
        raise ValueError(f"z_loss and softcap must be finite and >= 0, got {z_loss} and {softcap}")
    if (hess is not None or v is not None) and (z_loss != 0.0 or softcap != 0.0):
        raise ValueError("the Hessian and the Hessian-vector product do not take z_loss or "
                         "softcap (not implemented)")
    A.z_loss = z_loss
    A.softcap = softcap
    A.hess = <void *>addr(hess_mv, x.shape[0], "hess")
    A.v = addr(v_mv, x.shape[0], "v")
    if real is float:
        return run_xent_blocks(fx_xent_block_f, &A, n_threads)
    else:
        return run_xent_blocks(fx_xent_block_d, &A, n_threads)


def xent_slice(*, const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner,
               const int64_t[::1] y, int64_t ignore_index, const real[::1] t,
               const real[::1] w, double w_sum, double eps,
               real[::1] loss_out, real[::1] grad, const double[::1] gout,
               double gscale, const double[::1] row_max, const double[::1] log_norm,
               const double[::1] mass, int64_t class_offset, int64_t n_classes,
               double w_sum_all, int n_threads):
    """Cross-entropy of the classes ``[class_offset, class_offset + C)`` of an
    ``n_classes`` problem (a class slice); returns the slice's loss sum.

    As :func:`xent`, with the softmax of the whole row: ``row_max`` and
    ``log_norm`` (per sample) give each sample's log-sum-exp over all the
    classes.  ``y`` holds indices in ``[0, n_classes)``; ``w`` (optional) the
    weights of all ``n_classes`` classes, ``w_sum`` the sum of the slice's and
    ``w_sum_all`` of all of them; ``mass`` (per sample, probabilities ``t``
    only) the total target mass ``sum_c w_c q_c`` over all the classes.
    """
    if (y is None) == (t is None):
        raise ValueError("xent_slice takes class indices y or probabilities t, exactly one")
    if (t is None) != (mass is None):
        raise ValueError("xent_slice takes mass with probabilities t, and only then")
    if class_offset < 0 or C > n_classes or class_offset > n_classes - C:   # (no overflow)
        # (the end in Python integers: class_offset + C may overflow int64)
        raise ValueError(f"classes [{class_offset}, {int(class_offset) + C}) are not a slice of "
                         f"{n_classes} classes")
    cdef const real[::1] no_w = None      # w covers all n_classes: set below
    cdef const double[::1] no_sw = None
    cdef fx_xent_args A = xent_args(x, n_outer, C, inner, y, ignore_index, no_w, loss_out, grad,
                                    gout, gscale, no_sw)
    cdef Py_ssize_t n = n_outer * inner
    A.t = addr(t, x.shape[0], "t")
    A.eps = eps
    A.w_sum = w_sum
    A.w = addr(w, n_classes, "w")
    if A.w != NULL:
        A.w = <const void *>(<const real *>A.w + class_offset)
    A.row_max = <const double *>addr(row_max, n, "row_max")
    A.log_norm = <const double *>addr(log_norm, n, "log_norm")
    if n > 0 and (A.row_max == NULL or A.log_norm == NULL):
        raise ValueError("xent_slice needs row_max and log_norm")
    A.mass = <const double *>addr(mass, n, "mass")
    A.class_offset = class_offset
    A.n_classes = n_classes
    A.w_sum_all = w_sum_all
    if real is float:
        return run_xent_blocks(fx_xent_block_f, &A, n_threads)
    else:
        return run_xent_blocks(fx_xent_block_d, &A, n_threads)


def nll(*, const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner,
        const int64_t[::1] y, int64_t ignore_index, const real[::1] w,
        real[::1] loss_out, real[::1] grad, const double[::1] gout,
        double gscale, int n_threads, const double[::1] sw=None):
    """Negative log-likelihood over an (n_outer, C, inner) input of
    log-probabilities; returns the loss sum.  The whole of ``grad`` is written
    (0 but at the targets).  Arguments as for :func:`xent`.
    """
    if y is None:
        raise ValueError("nll takes class indices y")
    cdef fx_xent_args A = xent_args(x, n_outer, C, inner, y, ignore_index, w, loss_out, grad,
                                    gout, gscale, sw)
    if real is float:
        return run_xent_blocks(fx_nll_block_f, &A, n_threads)
    else:
        return run_xent_blocks(fx_nll_block_d, &A, n_threads)


cdef void run_lse_blocks(lse_block_fn fn, const fx_lse_args *A, int n_threads) noexcept:
    cdef Py_ssize_t nb = fx_nblocks(&A.shape), blk
    cdef Py_ssize_t n_x = A.shape.n_outer * A.shape.C * A.shape.inner
    cdef int nt = threads_for(n_x, nb, n_threads)
    with nogil:
        if nt == 1:                     # (no parallel region: small calls, issue 19)
            for blk in range(nb):
                fn(A, blk)
        else:
            for blk in prange(nb, num_threads=nt, schedule="dynamic"):
                fn(A, blk)


def lse_family(*, const real[::1] x, Py_ssize_t n_outer, Py_ssize_t C, Py_ssize_t inner,
               int mode, const real[::1] b, real[::1] lse_out, real[::1] sign_out,
               real[::1] out, int n_threads):
    """log-sum-exp over the class axis into ``lse_out`` (per sample, optional)
    and, for mode SOFTMAX / LOG_SOFTMAX, softmax or log_softmax into ``out``.
    For mode LSE, ``b`` (like ``x``) weighs the exponentials and ``sign_out``
    (per sample) receives the sign of the sum, ``lse_out`` then ``log|sum|``
    (without it, a negative sum's log-sum-exp is NaN)."""
    if mode not in (FX_LSE, FX_SOFTMAX, FX_LOG_SOFTMAX):
        raise ValueError(f"mode must be LSE, SOFTMAX or LOG_SOFTMAX, got {mode}")
    if mode != FX_LSE and (b is not None or sign_out is not None):
        raise ValueError("b and sign_out are options of mode LSE only")
    cdef fx_lse_args A
    memset(&A, 0, sizeof(A))
    A.shape = layout_of(x.shape[0], n_outer, C, inner)
    A.x = addr(x, x.shape[0], "x")
    A.mode = mode
    A.lse = <void *>addr(lse_out, n_outer * inner, "lse_out")
    A.out = <void *>addr(out, x.shape[0], "out")
    A.b = addr(b, x.shape[0], "b")
    A.sign = <void *>addr(sign_out, n_outer * inner, "sign_out")
    if real is float:
        run_lse_blocks(fx_lse_block_f, &A, n_threads)
    else:
        run_lse_blocks(fx_lse_block_d, &A, n_threads)


LSE = FX_LSE
SOFTMAX = FX_SOFTMAX
LOG_SOFTMAX = FX_LOG_SOFTMAX
