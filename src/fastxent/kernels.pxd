# fastxent's C kernels: the one declaration of each, for fastxent's own drivers
# (_xent.pxi, _bce.pxi) and for downstream Cython code:
#
#     from fastxent.kernels cimport fx_xent_args, fx_nblocks, fx_xent_block_d
#
# A call is described by a struct (fx_xent_args, fx_lse_args, fx_bce_args) and
# cut into blocks fixed by its shape alone; each block function is nogil,
# allocates nothing and may run on any thread, and a call's result is the sum
# of its block results added in block order (which is what fastxent itself
# does, under OpenMP).  Zero a struct (memset) before filling it: options added
# in later versions are off at zero.  Arrays are flat C-order pointers:
# "REAL" marks float for the _f kernels and double for the _d kernels.
#
# The kernels are `static` functions of header files: nothing is imported from
# fastxent at run time, and the extension is compiled with fastxent's headers,
#
#     Extension(..., include_dirs=[fastxent.get_include()])
#
# (-Wno-unused-function quiets GCC about the kernels a module does not call.)
#
# Contracts (the callers check, the kernels do not): array lengths fit the
# shape; g / out / loss do not alias an input.  Class indices are the
# exception: each is checked as it is used, and one outside [0, C) that is not
# ignore_index is reported through `bad`, never used to index memory.

from libc.stdint cimport int64_t

cdef extern from "fx_config.h" nogil:
    # The constants that change results bitwise (see fx_config.h).
    enum:
        FX_LANES
        FX_TILE
        FX_CBLOCK
        FX_SMALL_C
        FX_CHUNK_MIN
        FX_MAX_CHUNKS
        FX_ROW_BLOCK
        FX_SAMPLE_BLOCK
        FX_BCE_BLOCK


cdef extern from "fx_xent.h" nogil:
    enum:
        FX_LSE              # fx_lse_args.mode: log-sum-exp only
        FX_SOFTMAX          # ... and softmax into out
        FX_LOG_SOFTMAX      # ... and log_softmax into out

    # x is (n_outer, C, inner) in C order: class c of sample n = o * inner + i
    # at x[(o * C + c) * inner + i].
    ctypedef struct fx_layout:
        Py_ssize_t n_outer
        Py_ssize_t C
        Py_ssize_t inner

    # One call of cross-entropy (or nll: then t, eps and w_sum are unused).
    ctypedef struct fx_xent_args:
        fx_layout shape
        const void *x           # REAL: logits (log-probabilities for nll)
        const int64_t *y        # class index per sample, or NULL (then t)
        int64_t ignore_index
        const void *t           # REAL class probabilities like x, or NULL
        const void *w           # REAL [C] class weights, or NULL
        double w_sum            # their sum (C without weights)
        double eps              # label smoothing
        void *loss              # REAL per-sample loss, or NULL
        void *grad              # REAL gradient like x, or NULL
        const double *gout      # per-sample factor of the gradient, or NULL
        double gscale           # its scalar factor: a "mean" passes
                                # grad_output / what it divides by
        # A class slice (vocabulary-parallel; off where row_max is NULL): x holds
        # classes [class_offset, class_offset + C) of n_classes, y indices of all
        # of them, w points at the slice's weights inside all n_classes weights,
        # w_sum sums the slice's; the softmax is the whole row's.
        const double *row_max   # per sample: the max over all classes
        const double *log_norm  # per sample: log sum exp(x - row_max), all classes
        const double *mass      # probabilities: per sample, sum w_c q_c over all classes
        int64_t class_offset
        int64_t n_classes
        double w_sum_all        # the sum of all n_classes weights
        # language-model options (0: off; not with a class slice)
        double z_loss           # adds z_loss * lse**2 to each kept sample's loss
        double softcap          # logits read as softcap * tanh(x / softcap)
        const double *sw        # per-sample weight, or NULL (1)
        void *hess              # REAL diagonal of the Hessian like x, or NULL
        const void *v           # REAL like x, or NULL; given, grad receives
                                # the Hessian times v (hess must be NULL)

    # One call of log-sum-exp / softmax / log_softmax (scipy.special semantics).
    ctypedef struct fx_lse_args:
        fx_layout shape
        const void *x           # REAL
        int mode                # FX_LSE, FX_SOFTMAX or FX_LOG_SOFTMAX
        void *lse               # REAL per sample, or NULL
        void *out               # REAL like x, or NULL
        const void *b           # REAL like x: logsumexp's weights (FX_LSE), or NULL
        void *sign              # REAL per sample: the sum's sign (FX_LSE), or NULL

    ctypedef struct fx_target_stats:
        Py_ssize_t first_bad    # first sample with an index out of range, or -1
        double n_kept           # samples not ignored
        double w_kept           # the sum of their class weights, times sw
        Py_ssize_t first_bad_sw # first negative or non-finite sample weight, or -1

    # The blocks of a call (the same for every kernel of fx_xent.h).
    Py_ssize_t fx_nblocks(const fx_layout *shape)

    # Cross-entropy / nll of block b: per-sample losses and the block's whole
    # gradient; returns the block's loss sum.  *bad: the first sample of the
    # block whose class index is out of range (its loss 0, its gradient that of
    # an ignored sample), or -1.
    double fx_xent_block_f(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad)
    double fx_xent_block_d(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad)
    double fx_nll_block_f(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad)
    double fx_nll_block_d(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad)

    # log-sum-exp of block b into A.lse and softmax / log_softmax into A.out.
    void fx_lse_block_f(const fx_lse_args *A, Py_ssize_t b)
    void fx_lse_block_d(const fx_lse_args *A, Py_ssize_t b)

    # The target check (blocks of FX_SAMPLE_BLOCK samples, A.y (or NULL: every
    # sample kept), A.ignore_index and A.sw over A.shape): what a "mean" divides
    # by (w64: the class weights in float64, or NULL), the first index out of
    # range and the first negative or non-finite sample weight.
    Py_ssize_t fx_sample_nblocks(const fx_layout *shape)
    fx_target_stats fx_check_targets(const fx_xent_args *A, const double *w64, Py_ssize_t b)


cdef extern from "fx_bce.h" nogil:
    # An operand (weight, pos_weight) broadcast to the flat input: nd merged
    # axes, their sizes and the operand's element strides (0 where broadcast).
    ctypedef struct fx_bcast:
        int nd
        const Py_ssize_t *dims
        const Py_ssize_t *strides

    enum:
        FX_BCE_MAXDIM           # axes of an fx_bcast at most

    # One call of binary cross-entropy (on logits, or on probabilities).
    ctypedef struct fx_bce_args:
        int logits              # 1: x holds logits; 0: probabilities
        Py_ssize_t n            # elements
        const void *x           # REAL [n]
        const void *t           # REAL [n]
        const void *w           # REAL weight broadcast by wl, or NULL
        fx_bcast wl
        const void *pw          # REAL pos_weight broadcast by pwl, or NULL
        fx_bcast pwl
        void *loss              # REAL [n], or NULL
        void *grad              # REAL [n], or NULL
        const double *gout      # [n] per-element factor of the gradient, or NULL
        double gscale
        const void *sw          # REAL sample weight broadcast by swl, or NULL
        fx_bcast swl
        void *hess              # REAL [n] the Hessian's diagonal (logits), or NULL

    Py_ssize_t fx_bce_nblocks(const fx_bce_args *A)
    # Block b: per-element losses and gradient, the block's loss sum; n_bad[0],
    # n_bad[1]: probabilities of x and t outside [0, 1] (0 with logits).
    double fx_bce_block_f(const fx_bce_args *A, Py_ssize_t b, Py_ssize_t *n_bad)
    double fx_bce_block_d(const fx_bce_args *A, Py_ssize_t b, Py_ssize_t *n_bad)


cdef extern from "fx_kl.h" nogil:
    # One call of kl_div (elementwise): x log-probabilities, t probabilities
    # (or log-probabilities with log_target).
    ctypedef struct fx_kl_args:
        Py_ssize_t n            # elements
        const void *x           # REAL [n]
        const void *t           # REAL [n]
        int log_target
        void *loss              # REAL [n], or NULL
        void *grad              # REAL [n], or NULL
        const double *gout      # [n] per-element factor of the gradient, or NULL
        double gscale

    Py_ssize_t fx_kl_nblocks(const fx_kl_args *A)
    # Block b (FX_BCE_BLOCK elements): per-element losses and gradient; returns
    # the block's loss sum.
    double fx_kl_block_f(const fx_kl_args *A, Py_ssize_t b)
    double fx_kl_block_d(const fx_kl_args *A, Py_ssize_t b)

    # One call of the distillation loss, T^2 KL(softmax(t / T) || softmax(s / T))
    # per sample, over the layout of fx_layout (blocks: fx_nblocks).
    ctypedef struct fx_distill_args:
        fx_layout shape
        const void *s           # REAL: student logits
        const void *t           # REAL: teacher logits, like s
        double temperature      # T > 0
        void *loss              # REAL like s: per-element losses, or NULL
        void *grad              # REAL like s, or NULL
        const double *gout      # like s: per-element factor of the gradient, or NULL
        double gscale

    # Block b (fx_block_at): the gradient and per-element losses of its samples;
    # returns the sum of their losses.
    double fx_distill_block_f(const fx_distill_args *A, Py_ssize_t b)
    double fx_distill_block_d(const fx_distill_args *A, Py_ssize_t b)


cdef extern from "fx_focal.h" nogil:
    # One call of the sigmoid focal loss (torchvision's): x logits, t targets.
    ctypedef struct fx_focal_args:
        Py_ssize_t n            # elements
        const void *x           # REAL [n]
        const void *t           # REAL [n], in [0, 1]
        double alpha            # < 0: no weighting
        double gamma            # >= 0
        void *loss              # REAL [n], or NULL
        void *grad              # REAL [n], or NULL
        const double *gout      # [n] per-element factor of the gradient, or NULL
        double gscale

    Py_ssize_t fx_focal_nblocks(const fx_focal_args *A)
    # Block b (FX_BCE_BLOCK elements): per-element losses and gradient, the
    # block's loss sum; *n_bad: targets outside [0, 1] (NaN included).
    double fx_focal_block_f(const fx_focal_args *A, Py_ssize_t b, Py_ssize_t *n_bad)
    double fx_focal_block_d(const fx_focal_args *A, Py_ssize_t b, Py_ssize_t *n_bad)
