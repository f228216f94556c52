# The fast path of small calls (issue 19): the common case of a public
# function checked once, here, in typed code, and run through the same drivers
# and kernels as the general path (run_xent_blocks, sum_target_stats,
# run_bce_blocks, run_lse_blocks), serially: the same blocks, the same block
# order, so the same bits.
#
# The common case: every array an exact np.ndarray, C-contiguous, of native
# float32/float64 (class indices: int64), shapes that fit, options of their
# plain type (reduction a str, ignore_index an int, label_smoothing a float,
# return_grad True/False), fewer than SERIAL_BELOW elements.  Anything else,
# and any input the general path would refuse (a class index out of range),
# returns None: the Python function then takes its general path, which does
# every check and raises every error exactly as it always did.  The Python
# layer calls these only when the options that never take this path
# (grad_output, out, sample_weight, return_hessian, axis, n_threads, ...) are
# at their defaults.

from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBuffer_IsContiguous,
                             PyBUF_STRIDES, PyBUF_FORMAT, PyBUF_SIMPLE, PyBUF_WRITABLE)
from cpython.long cimport PyLong_AsLongLongAndOverflow
from libc.math cimport NAN

import numpy as _np

cdef object _ndarray = _np.ndarray
cdef object _empty = _np.empty
cdef object _scalar64 = _np.float64
cdef object _scalar32 = _np.float32
cdef object _F64 = _np.dtype(_np.float64)
cdef object _F32 = _np.dtype(_np.float32)

cdef enum:                  # what view_of found
    K_NONE = 0
    K_F32 = 1
    K_F64 = 2
    K_I64 = 3

cdef enum:                  # reductions
    R_MEAN = 0
    R_SUM = 1
    R_NONE = 2

cdef Py_ssize_t _fast_calls = 0     # calls that took the fast path (for the tests)


def fast_calls():
    """How many calls took the fast path of small calls in this module (tests
    use it to see which path ran)."""
    return _fast_calls


cdef int view_of(object a, Py_buffer *v) except -1:
    # The kind of an exact, C-contiguous, native float32/float64/int64 ndarray,
    # its buffer held in *v; K_NONE (nothing held) for anything else.
    cdef const char *f
    cdef int kind = K_NONE
    if type(a) is not _ndarray:
        return K_NONE
    try:
        PyObject_GetBuffer(a, v, PyBUF_STRIDES | PyBUF_FORMAT)
    except Exception:           # a dtype without a buffer format
        return K_NONE
    f = v.format
    if f != NULL and f[0] != 0 and f[1] == 0:
        if f[0] == b'd' and v.itemsize == 8:
            kind = K_F64
        elif f[0] == b'f' and v.itemsize == 4:
            kind = K_F32
        elif (f[0] == b'l' or f[0] == b'q') and v.itemsize == 8:
            kind = K_I64
    if kind == K_NONE or not PyBuffer_IsContiguous(v, b'C'):
        PyBuffer_Release(v)
        return K_NONE
    return kind


cdef void *data_of(object a, Py_ssize_t n) except? NULL:
    # The memory of an array this module just allocated (NULL when empty, as addr()).
    cdef Py_buffer v
    if n == 0:
        return NULL
    PyObject_GetBuffer(a, &v, PyBUF_SIMPLE | PyBUF_WRITABLE)
    cdef void *p = v.buf
    PyBuffer_Release(&v)
    return p


cdef inline const void *ptr(const Py_buffer *v, Py_ssize_t n) noexcept:
    return v.buf if n > 0 else NULL


cdef int reduction_of(object reduction) noexcept:
    if type(reduction) is not str:
        return -1
    if reduction == "mean":
        return R_MEAN
    if reduction == "sum":
        return R_SUM
    if reduction == "none":
        return R_NONE
    return -1


cdef object scalar_of(double value, int kind):
    # The reduced loss as the general path returns it (_args.as_result): a
    # float32 result is the double rounded once, without NumPy's warnings.
    if kind == K_F64:
        return _scalar64(value)
    return _scalar32(<float>value)


cdef bint same_shape(const Py_buffer *a, const Py_buffer *b) noexcept:
    cdef int d
    if a.ndim != b.ndim:
        return False
    for d in range(a.ndim):
        if a.shape[d] != b.shape[d]:
            return False
    return True


cdef Py_ssize_t size_below(const Py_buffer *v, Py_ssize_t limit) noexcept:
    # The number of elements of v, or -1 when it is not below limit.
    cdef Py_ssize_t n = 1
    cdef int d
    for d in range(v.ndim):
        if v.shape[d] >= limit:
            return -1
        n *= v.shape[d]
        if n >= limit:
            return -1
    return n


def fast_xent(x, target, weight, ignore_index, reduction, label_smoothing, return_grad):
    """cross_entropy(x, target, weight, ignore_index=..., reduction=...,
    label_smoothing=..., return_grad=...) for the common case (class-index
    targets, PyTorch's class axis), or None where the general path must run."""
    global _fast_calls
    cdef Py_buffer vx, vy, vw
    cdef int kx, ky = K_NONE, kw = K_NONE, ovf = 0, red = reduction_of(reduction)
    cdef long long ii
    cdef double eps
    if red < 0 or type(label_smoothing) is not float or type(ignore_index) is not int \
            or (return_grad is not True and return_grad is not False):
        return None
    eps = label_smoothing
    if not 0.0 <= eps <= 1.0:
        return None
    ii = PyLong_AsLongLongAndOverflow(ignore_index, &ovf)
    if ovf:
        return None
    kx = view_of(x, &vx)
    if kx != K_F32 and kx != K_F64:
        if kx != K_NONE:
            PyBuffer_Release(&vx)
        return None
    try:
        ky = view_of(target, &vy)
        if weight is not None:
            kw = view_of(weight, &vw)
        if ky != K_I64 or (weight is not None and kw != kx):
            return None
        result = xent_small(x, &vx, kx, &vy, weight, &vw if kw != K_NONE else NULL,
                            <int64_t>ii, red, eps, return_grad is True)
        if result is not None:
            _fast_calls += 1
        return result
    finally:
        PyBuffer_Release(&vx)
        if ky != K_NONE:
            PyBuffer_Release(&vy)
        if kw != K_NONE:
            PyBuffer_Release(&vw)


cdef object xent_small(object x, const Py_buffer *vx, int kx, const Py_buffer *vy, object weight,
                       const Py_buffer *vw, int64_t ignore_index, int red, double eps,
                       bint want_grad):
    # The common case once the arrays are read: checks their shapes, then
    # check_samples' and xent's work as the general path does it.
    cdef fx_xent_args A
    cdef Py_ssize_t n_outer = 1, C, inner = 1, n, n_x, d
    cdef double denom, total
    cdef double *w64 = NULL
    cdef fx_target_stats st
    if vx.ndim < 1 or vy.ndim != vx.ndim - 1:
        return None
    n_x = size_below(vx, SERIAL_BELOW)
    if n_x < 0:
        return None
    if vx.ndim == 1:
        C = vx.shape[0]
    else:
        n_outer, C = vx.shape[0], vx.shape[1]
        if vy.shape[0] != n_outer:
            return None
        for d in range(2, vx.ndim):
            if vy.shape[d - 1] != vx.shape[d]:
                return None
            inner *= vx.shape[d]
    n = n_outer * inner
    if vw != NULL and (vw.ndim != 1 or vw.shape[0] != C):
        return None

    # check_samples(y, C, ignore_index, w64): per sample, flat
    memset(&A, 0, sizeof(A))
    A.shape.n_outer, A.shape.C, A.shape.inner = n, C, 1
    A.y = <const int64_t *>ptr(vy, n)
    A.ignore_index = ignore_index
    try:
        if vw != NULL and C > 0:
            if kx == K_F64:
                w64 = <double *>vw.buf
            else:
                w64 = <double *>block_results(C, sizeof(double))
                for d in range(C):
                    w64[d] = (<const float *>vw.buf)[d]
        st = sum_target_stats(&A, w64, 1)
    finally:
        if w64 != NULL and kx == K_F32:
            free(w64)
    if st.first_bad >= 0:
        return None                     # the general path raises its error
    denom = <double>(<Py_ssize_t>st.n_kept) if vw == NULL else st.w_kept

    # xent(x, y, w, w_sum, eps, loss_out, grad, gscale)
    dtype = _F64 if kx == K_F64 else _F32
    loss_out = grad = None
    if red == R_NONE:
        loss_out = _empty(x.shape[:1] + x.shape[2:] if vx.ndim > 1 else (), dtype)
    if want_grad:
        grad = _empty(x.shape, dtype)
    A.shape.n_outer, A.shape.C, A.shape.inner = n_outer, C, inner
    A.x = ptr(vx, n_x)
    A.w = ptr(vw, C) if vw != NULL else NULL
    A.w_sum = <double>C if vw == NULL else float(weight.sum(dtype=_scalar64))
    A.eps = eps
    A.loss = data_of(loss_out, n) if loss_out is not None else NULL
    A.grad = data_of(grad, n_x) if grad is not None else NULL
    A.gscale = 1.0 if red != R_MEAN else (1.0 / denom if denom != 0 else NAN)
    if kx == K_F32:
        total = run_xent_blocks(fx_xent_block_f, &A, 1)
    else:
        total = run_xent_blocks(fx_xent_block_d, &A, 1)

    if red == R_NONE:
        loss = loss_out
    elif red == R_SUM:
        loss = scalar_of(total, kx)
    else:
        loss = scalar_of(total / denom if denom != 0 else NAN, kx)
    return (loss, grad) if want_grad else loss


def fast_bce_logits(x, target, reduction, return_grad):
    """binary_cross_entropy_with_logits(x, target, reduction=...,
    return_grad=...) without weights, or None where the general path must run."""
    global _fast_calls
    cdef Py_buffer vx, vt
    cdef int kx, kt = K_NONE, red = reduction_of(reduction)
    cdef fx_bce_args A
    cdef Py_ssize_t n
    cdef double total
    if red < 0 or (return_grad is not True and return_grad is not False):
        return None
    kx = view_of(x, &vx)
    if kx != K_F32 and kx != K_F64:
        if kx != K_NONE:
            PyBuffer_Release(&vx)
        return None
    try:
        kt = view_of(target, &vt)
        if kt != kx or not same_shape(&vx, &vt):
            return None
        n = size_below(&vx, SERIAL_BELOW)
        if n < 0:
            return None
        dtype = _F64 if kx == K_F64 else _F32
        loss_out = _empty(x.shape, dtype) if red == R_NONE else None
        grad = _empty(x.shape, dtype) if return_grad is True else None
        memset(&A, 0, sizeof(A))
        A.logits = 1
        A.n = n
        A.x = ptr(&vx, n)
        A.t = ptr(&vt, n)
        A.loss = data_of(loss_out, n) if loss_out is not None else NULL
        A.grad = data_of(grad, n) if grad is not None else NULL
        A.gscale = 1.0 if red != R_MEAN else (1.0 / n if n != 0 else NAN)
        if kx == K_F32:
            total, bad_x, bad_t = run_bce_blocks(fx_bce_block_f, &A, 1)
        else:
            total, bad_x, bad_t = run_bce_blocks(fx_bce_block_d, &A, 1)
        if bad_x or bad_t:
            return None
    finally:
        PyBuffer_Release(&vx)
        if kt != K_NONE:
            PyBuffer_Release(&vt)
    if red == R_NONE:
        loss = loss_out
    elif red == R_SUM:
        loss = scalar_of(total, kx)
    else:
        loss = scalar_of(total / n if n != 0 else NAN, kx)
    _fast_calls += 1
    return (loss, grad) if return_grad is True else loss


def fast_lse(x, axis, int mode):
    """logsumexp(x, axis) (mode LSE; keepdims False) or softmax / log_softmax(x,
    axis) over one axis or all of them, or None where the general path must run."""
    global _fast_calls
    cdef Py_buffer vx
    cdef int kx, ax, d
    cdef fx_lse_args A
    cdef Py_ssize_t n_x, n_outer = 1, C = 1, inner = 1
    cdef double lse64
    cdef float lse32
    if axis is not None and type(axis) is not int:
        return None
    kx = view_of(x, &vx)
    if kx != K_F32 and kx != K_F64:
        if kx != K_NONE:
            PyBuffer_Release(&vx)
        return None
    try:
        n_x = size_below(&vx, SERIAL_BELOW)
        if vx.ndim < 1 or n_x < 0:
            return None
        if axis is None:
            C = n_x
            ax = -1
        else:
            if not -vx.ndim <= axis < vx.ndim:
                return None
            ax = axis % vx.ndim
            for d in range(vx.ndim):
                if d < ax:
                    n_outer *= vx.shape[d]
                elif d == ax:
                    C = vx.shape[d]
                else:
                    inner *= vx.shape[d]
        dtype = _F64 if kx == K_F64 else _F32
        memset(&A, 0, sizeof(A))
        A.shape.n_outer, A.shape.C, A.shape.inner = n_outer, C, inner
        A.x = ptr(&vx, n_x)
        A.mode = mode
        res = None
        if mode != FX_LSE:
            res = _empty(x.shape, dtype)
            A.out = data_of(res, n_x)
        elif axis is None or vx.ndim == 1:          # a scalar result
            A.lse = <void *>&lse64 if kx == K_F64 else <void *>&lse32
        else:
            shape = x.shape
            res = _empty(shape[:ax] + shape[ax + 1:], dtype)
            A.lse = data_of(res, n_outer * inner)
        if kx == K_F32:
            run_lse_blocks(fx_lse_block_f, &A, 1)
        else:
            run_lse_blocks(fx_lse_block_d, &A, 1)
    finally:
        PyBuffer_Release(&vx)
    _fast_calls += 1
    if res is not None:
        return res
    return _scalar64(lse64) if kx == K_F64 else _scalar32(lse32)
