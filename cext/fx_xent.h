/*
 * fastxent: the multi-class kernels (cross-entropy, nll, log-sum-exp, softmax).
 *
 * Design, in short:
 *  - A call is one struct (fx_xent_args, fx_lse_args) describing an input of
 *    shape (n_outer, C, inner) in C order, its targets, options and outputs.
 *    It is cut into blocks fixed by the shape alone (fx_block_at); the drivers
 *    (_xent.pxi) run the blocks under OpenMP and add the block sums in block
 *    order, so a result does not depend on the thread count.
 *  - Rows (inner == 1, more than FX_SMALL_C classes): per row the max, then the
 *    sum of exponentials (stored into the gradient or softmax buffer when one is
 *    wanted), then the stored exponentials rescaled in place.  A row of up to
 *    FX_CHUNK_MIN classes is read from memory once; longer rows are cut into
 *    chunks (fx_chunk_at) with their own max, rescaled to the row max.
 *  - Tiles (a strided class axis, or FX_TILE rows of few classes transposed
 *    into a buffer): each lane is one sample position and every loop runs
 *    across lanes, so all of it vectorizes.
 *  - Rows and tiles gather the same statistics of a sample (its max, the log of
 *    its sum of exponentials, its target mass) and hand them to one finish per
 *    family, fx_xent_finish or fx_lse_finish, which owns the loss, the
 *    gradient's factors and the ignored/NaN rules.  A new per-sample option goes
 *    there once (see docs/ARCHITECTURE.md).
 *  - Sums run in double, in FX_LANES (rows) or FX_CBLOCK-class (tiles) partial
 *    sums added in a fixed order: the same answer for any thread count.  The
 *    AVX2 and baseline builds may differ in the last bit (FMA contraction, see
 *    fx_config.h).
 *  - Class indices are read once each and checked before use: a target changed
 *    by another thread during a call is reported (the *bad outputs), never used
 *    to index memory.
 */
#ifndef FASTXENT_FX_XENT_H
#define FASTXENT_FX_XENT_H

#include <float.h>
#include <string.h>
#include <stdint.h>
#include "fx_config.h"
#include "fx_math.h"

#define FX_LSE 0              /* fx_lse_args.mode: log-sum-exp only */
#define FX_SOFTMAX 1          /* ... and softmax into out */
#define FX_LOG_SOFTMAX 2      /* ... and log_softmax into out */

/* The shape of a multi-class call: x is (n_outer, C, inner) in C order, class c
   of sample n = o * inner + i at x[(o * C + c) * inner + i]. */
typedef struct fx_layout {
    Py_ssize_t n_outer, C, inner;
} fx_layout;

/*
 * One call of cross-entropy or nll.  "REAL" arrays hold float for the _f
 * kernels and double for the _d kernels; every array may be NULL where marked.
 * A struct zeroed with memset and then filled is the intended use: an option
 * added later defaults to off at zero.
 */
typedef struct fx_xent_args {
    fx_layout shape;
    const void *x;             /* REAL: logits (log-probabilities for nll) */
    /* targets: class indices y, or class probabilities t (cross-entropy only) */
    const int64_t *y;          /* per sample, in [0, C) or ignore_index; or NULL */
    int64_t ignore_index;
    const void *t;             /* REAL, laid out like x; or NULL */
    const void *w;             /* REAL [C] class weights, or NULL (all 1) */
    double w_sum;              /* sum of w (C without weights) */
    double eps;                /* label smoothing, in [0, 1] */
    /* outputs */
    void *loss;                /* REAL per sample, or NULL */
    void *grad;                /* REAL like x, or NULL; may not alias any input */
    const double *gout;        /* per-sample factor of the gradient, or NULL (1) */
    double gscale;             /* the gradient's scalar factor: grad_output, over the
                                  denominator for a "mean"; NaN gives NaN */
    /* second order and sample weights (version 0.2) */
    const double *sw;          /* per-sample weight (sample_weight), or NULL (1): a
                                  factor of the loss and of every derivative */
    void *hess;                /* REAL like x: the diagonal of the Hessian, or NULL */
    const void *v;             /* REAL like x, or NULL; given, grad receives the
                                  Hessian times v instead of the gradient (and hess
                                  must be NULL) */
} fx_xent_args;

/* One call of log-sum-exp, softmax or log_softmax (scipy.special semantics). */
typedef struct fx_lse_args {
    fx_layout shape;
    const void *x;             /* REAL */
    int mode;                  /* FX_LSE, FX_SOFTMAX or FX_LOG_SOFTMAX */
    void *lse;                 /* REAL per sample, or NULL */
    void *out;                 /* REAL like x (softmax / log_softmax), or NULL */
} fx_lse_args;

/* What the target check of a block of samples finds (fx_check_targets). */
typedef struct fx_target_stats {
    Py_ssize_t first_bad;      /* first sample whose index is neither in [0, C) nor
                                  ignore_index, or -1 */
    double n_kept;             /* samples not ignored */
    double w_kept;             /* the sum of their class weights (w64: float64),
                                  each times its sample weight (sw) */
    Py_ssize_t first_bad_sw;   /* first sample whose weight is negative, NaN or
                                  infinite, or -1 */
} fx_target_stats;

/* ---- the blocks of a call: fixed by the shape alone ---- */

/* One block: rows [n0, n0 + count) (inner == 1), or the tile of positions
   [i0, i0 + count) of one outer index; x_off: its first element, n0: its first
   sample. */
typedef struct fx_block {
    Py_ssize_t x_off, n0, count;
} fx_block;

static inline Py_ssize_t fx_rows_per_block(Py_ssize_t C)
{
    /* about FX_ROW_BLOCK elements, at least one row (an empty row counts as one) */
    Py_ssize_t r = C > 0 ? FX_ROW_BLOCK / C : FX_ROW_BLOCK;
    return r > 0 ? r : 1;
}

static inline Py_ssize_t fx_tiles_per_outer(Py_ssize_t inner)
{
    return (inner + FX_TILE - 1) / FX_TILE;
}

static inline Py_ssize_t fx_nblocks(const fx_layout *s)
{
    if (s->inner == 1) {
        Py_ssize_t r = fx_rows_per_block(s->C);
        return (s->n_outer + r - 1) / r;
    }
    return s->n_outer * fx_tiles_per_outer(s->inner);
}

static inline fx_block fx_block_at(const fx_layout *s, Py_ssize_t b)
{
    fx_block k;
    if (s->inner == 1) {
        Py_ssize_t r = fx_rows_per_block(s->C);
        k.n0 = b * r;
        k.count = s->n_outer - k.n0 < r ? s->n_outer - k.n0 : r;
        k.x_off = k.n0 * s->C;
    } else {
        Py_ssize_t tiles = fx_tiles_per_outer(s->inner);
        Py_ssize_t o = b / tiles, i0 = (b - o * tiles) * FX_TILE;
        k.count = s->inner - i0 < FX_TILE ? s->inner - i0 : FX_TILE;
        k.x_off = o * s->C * s->inner + i0;
        k.n0 = o * s->inner + i0;
    }
    return k;
}

/* Blocks of the target check: FX_SAMPLE_BLOCK samples each. */
static inline Py_ssize_t fx_sample_nblocks(const fx_layout *s)
{
    return (s->n_outer * s->inner + FX_SAMPLE_BLOCK - 1) / FX_SAMPLE_BLOCK;
}

/* ---- chunks of a long row ---- */

/* Classes per chunk of a row of C: FX_CHUNK_MIN, grown so that a row has at
   most FX_MAX_CHUNKS chunks. */
static inline Py_ssize_t fx_chunk_len(Py_ssize_t C)
{
    Py_ssize_t K = FX_CHUNK_MIN;
    if (C > K * FX_MAX_CHUNKS) K = (C + FX_MAX_CHUNKS - 1) / FX_MAX_CHUNKS;
    return K;
}

/* Chunk k of a row of C classes cut every K: returns its first class, and its
   length in *len. */
static inline Py_ssize_t fx_chunk_at(Py_ssize_t C, Py_ssize_t K, Py_ssize_t k, Py_ssize_t *len)
{
    Py_ssize_t off = k * K;
    *len = C - off < K ? C - off : K;
    return off;
}

/* ---- class indices ---- */

#define FX_IGNORED (-1)        /* fx_class_of: the sample is ignored */
#define FX_BAD_INDEX (-2)      /* fx_class_of: neither a class nor ignore_index */

/* The class of one target, read exactly once (volatile: the value checked is
   the value used, even if another thread writes the target meanwhile). */
static inline Py_ssize_t fx_class_of(const int64_t *y, int64_t ignore_index, Py_ssize_t C)
{
    int64_t v = *(const volatile int64_t *)y;
    Py_ssize_t c = (uint64_t)v < (uint64_t)C ? (Py_ssize_t)v : FX_BAD_INDEX;   /* 0 <= v < C */
    return v == ignore_index ? FX_IGNORED : c;        /* ignore_index may be a class */
}

/* The sample weights sw[j0:j1] of a call without class indices: their sum (in
   FX_LANES partial sums: this loop vectorizes) and the first that is negative
   or not finite. */
static inline fx_target_stats fx_check_weights(const double *sw, Py_ssize_t j0, Py_ssize_t j1)
{
    double acc[FX_LANES];
    int bad = 0;
    Py_ssize_t j = j0, n = j1;
    fx_target_stats st = {-1, (double)(j1 - j0), 0.0, -1};
    for (int l = 0; l < FX_LANES; l++) acc[l] = 0.0;
#define FX_SW_TERM(i, l) { acc[l] += sw[i]; bad |= !(sw[i] >= 0.0 && sw[i] <= DBL_MAX); }
    FX_LANE_LOOP(FX_SW_TERM)
#undef FX_SW_TERM
    for (int l = 0; l < FX_LANES; l++) st.w_kept += acc[l];
    for (j = j0; bad && j < j1; j++)          /* NaN fails both comparisons */
        if (!(sw[j] >= 0.0 && sw[j] <= DBL_MAX)) { st.first_bad_sw = j; break; }
    return st;
}

/* The target check of sample block b (the first pass of a call with class
   indices, or of one with sample weights): what a "mean" divides by,
   sum_n sw_n w[y_n] over the samples kept (every sample without y), the first
   index out of range and the first sample weight that is negative or not
   finite. */
static inline fx_target_stats fx_check_targets(const fx_xent_args *A, const double *w64,
                                               Py_ssize_t b)
{
    const int64_t *y = A->y, ignore_index = A->ignore_index;
    const double *sw = A->sw;
    Py_ssize_t n = A->shape.n_outer * A->shape.inner, C = A->shape.C;
    Py_ssize_t first_bad = -1, first_bad_sw = -1;
    Py_ssize_t j1 = (b + 1) * FX_SAMPLE_BLOCK < n ? (b + 1) * FX_SAMPLE_BLOCK : n;
    double n_kept = 0.0, w_kept = 0.0;
    if (!y && sw) return fx_check_weights(sw, b * FX_SAMPLE_BLOCK, j1);
    for (Py_ssize_t j = b * FX_SAMPLE_BLOCK; j < j1; j++) {
        Py_ssize_t c = y ? fx_class_of(y + j, ignore_index, C) : 0;
        double s = sw ? sw[j] : 1.0;
        if (c >= 0) {
            n_kept += 1.0;
            w_kept += w64 ? s * w64[c] : s;
        } else if (c == FX_BAD_INDEX && first_bad < 0) {
            first_bad = j;
        }
        if (!(s >= 0.0 && s <= DBL_MAX) && first_bad_sw < 0) first_bad_sw = j;  /* NaN too */
    }
    fx_target_stats st = {first_bad, n_kept, w_kept, first_bad_sw};
    return st;
}

/* ---- the per-sample finish of cross-entropy, shared by rows and tiles ---- */

/* What the class pass of rows or tiles knows of one sample. */
typedef struct fx_xent_stats {
    double log_s;     /* log sum_c exp(x_c - m), m the max; NaN where m is not finite */
    double wy;        /* class-index target: its weight (0 for probabilities) */
    double xy;        /* class-index target: x_y - m */
    double q, d;      /* smoothing or probability mass: sum_c w_c q_c and
                         sum_c w_c q_c (x_c - m) (0 without smoothing) */
    double gs;        /* the gradient's factor, gout * gscale * sw (fx_gs) */
    double sw;        /* the sample weight (1 without) */
    int kept;         /* 0: ignored (or an index out of range) */
} fx_xent_stats;

/* The weight of sample n: sw[n], or 1. */
static FX_INLINE double fx_sw(const fx_xent_args *A, Py_ssize_t n)
{
    return A->sw ? A->sw[n] : 1.0;
}

/* The gradient factor of sample n: gout[n] * gscale * sw[n]. */
static FX_INLINE double fx_gs(const fx_xent_args *A, Py_ssize_t n)
{
    double g = A->gout ? A->gout[n] * A->gscale : A->gscale;
    return A->sw ? g * A->sw[n] : g;
}

/* The loss of one sample and the factors of its gradient:
     grad_c = gq p_c - w_c (a t_c + b) - [c == y] ay,   p = softmax(x)
   (t_c = 0 for class indices; the w_c term is left out where there is no
   smoothing and no probabilities, so that an unused infinite weight changes
   nothing).  The paths form gq p_c from the stored exponentials:
   gq exp(shift - m - log_s) exp(x_c - shift).  An ignored sample has
   gq = its gradient's value throughout (fx_xent_ignored_grad), a = b = ay = 0.
   The targets' terms do not depend on x, so the second derivatives need gq
   alone (gq = A_n times the scale, A_n = Q the total target mass):
     hess_c = gq p_c (1 - p_c),   (H v)_c = gq p_c (v_c - sum_k p_k v_k). */
typedef struct fx_xent_coef {
    double loss, gq, a, b, ay;
} fx_xent_coef;

/* The gradient of an ignored sample is 0 * (its softmax): 0, or NaN throughout
   where the softmax is NaN (log_s NaN); also NaN where smoothing multiplies the
   zero upstream gradient by an infinite or NaN class weight, as PyTorch does.
   Written as those products (no -ffast-math: 0 * NaN is NaN), so that a tile's
   lanes take it in vectors and the weights' part is computed once a call. */
static FX_INLINE double fx_xent_ignored_grad(const fx_xent_args *A, double log_s)
{
    return 0.0 * log_s + (A->eps > 0.0 ? 0.0 * A->w_sum : 0.0);
}

/*
 * loss = Q log S - D with Q = sum_c w_c q_c the total target mass and
 * D = sum_c w_c q_c (x_c - m) (q: the smoothed target distribution), i.e.
 * PyTorch's -sum_c w_c q_c log_softmax(x)_c, without forming log_softmax.
 * S is the plain sum here, not the precise one of logsumexp (fx_chunk_sumexp's
 * n_top): a confident right answer's loss, log S, is exact to an ulp of 1 (as
 * in PyTorch) rather than to its own ulp.  Its relative precision would cost a
 * compare and a select per element of every row, and would change no reduced
 * loss (whose error is that of its largest terms).
 * Sample weights, z-loss and softcap enter here (docs/ARCHITECTURE.md).
 */
static FX_INLINE fx_xent_coef fx_xent_finish(const fx_xent_args *A, fx_xent_stats s)
{
    fx_xent_coef r;
    double Q = (1.0 - A->eps) * s.wy + s.q;
    double D = (1.0 - A->eps) * s.wy * s.xy + s.d;
    double gs = s.kept ? s.gs : 0.0;
    r.loss = s.kept && A->shape.C > 0 ? s.sw * (Q * s.log_s - D) : 0.0;
    r.gq = s.kept ? gs * Q : fx_xent_ignored_grad(A, s.log_s);
    r.a = gs * (1.0 - A->eps);
    r.b = gs * (A->eps / (double)A->shape.C);
    r.ay = r.a * s.wy;
    return r;
}

/* ---- the per-sample finish of log-sum-exp, shared by rows and tiles ---- */

/* log-sum-exp from the shift m and log_s = log sum_c exp(x_c - m): m + log_s,
   or log_s itself where the max is not finite (m = 0: the sum is 0, inf or
   NaN, and its log is scipy's answer).  The b= weights and return_sign of
   scipy's logsumexp enter here (docs/ARCHITECTURE.md). */
static FX_INLINE double fx_lse_finish(double m, double log_s, int finite)
{
    return finite ? m + log_s : log_s;
}

/* Whether the plain sum S of a sample may lose its result's relative
   precision, so that the precise sums are worth a second sweep.  The plain
   sum rounds like its terms' count times an ulp of 1 in double; that matters
   only where S < 2 (log S < ln 2; beyond, the precise sums round alike) and
   the result R is below `bound` (fx_precise_bound: about C ulp of 1 in the
   output's precision), R = log S for log_softmax (its value at the max is
   -log S) and |m + log S| for logsumexp.  Branch-free, so that a tile's lanes
   are tested in vectors. */
static FX_INLINE int fx_lse_wants_precise(double m, double log_s, int finite, int mode,
                                          double bound)
{
    double r = mode == FX_LOG_SOFTMAX ? log_s : fabs(m + log_s);
    return finite & (mode != FX_SOFTMAX) & (log_s < 0.6931471805599453) & (r < bound);
}

/* log_softmax of x from its row's shift m and log_s (a finite lse): kept
   relative to m, since m + log_s would round log_s away where |m| is large. */
static FX_INLINE double fx_log_softmax_elem(double x, double m, double log_s)
{
    return (x - m) - log_s;
}

/* An element of a row whose lse is not finite (every entry -inf; +inf; NaN), as
   scipy.special computes it: softmax is NaN throughout, log_softmax x - lse. */
static FX_INLINE double fx_lse_odd_elem(double x, double lse, int mode)
{
    return mode == FX_SOFTMAX ? NAN : x - lse;
}

#define FX_TEMPLATE "fx_stats_impl.h"
#include "fx_dtypes.h"
#undef FX_TEMPLATE
#define FX_TEMPLATE "fx_xent_impl.h"
#include "fx_dtypes.h"
#undef FX_TEMPLATE
#define FX_TEMPLATE "fx_lse_impl.h"
#include "fx_dtypes.h"
#undef FX_TEMPLATE

#endif
