/*
 * fastxent: the Kullback-Leibler kernels: kl_div (elementwise, on
 * log-probabilities, PyTorch's torch.nn.functional.kl_div) and the
 * distillation loss (from two sets of logits), loss and gradient in one pass.
 *
 * Design, in short:
 *  - kl_div is elementwise: a call (fx_kl_args) is cut into blocks of
 *    FX_BCE_BLOCK elements, as the binary kernels are, and each block's loss
 *    sum runs in FX_LANES double partial sums added in a fixed order.
 *  - The distillation loss is KL(softmax(t / T) || softmax(s / T)) * T^2 per
 *    sample: a call (fx_distill_args) has the multi-class layout (fx_layout:
 *    (n_outer, C, inner)) and the multi-class blocks (fx_nblocks, fx_block_at
 *    of fx_xent.h), so it is cut by the shape alone and the drivers add the
 *    block sums in block order: the same answer for any thread count.
 *  - Per sample, both log-softmaxes come from one sweep (fx_kl_impl.h): the
 *    maxima of s and t (fx_chunk_max of fx_stats_impl.h), then one sweep that
 *    forms exp(a (s - ms)) and exp(a (t - mt)) (a = 1 / T), their sums and the
 *    teacher-weighted difference of the logits (the exponentials into
 *    buffers of FX_KL_TILE, then their lanes' sums: two loops that each
 *    vectorize), then (for the gradient or the per-element losses) one loop
 *    that writes T (p_s - p_t) from the stored exponentials (the teacher's
 *    kept on the stack for rows of up to FX_KL_KEEP classes, else formed
 *    again).  The sample's loss is T^2 (a sum_c p_t,c d_c + log S_s -
 *    log S_t), d_c = (t_c - mt) - (s_c - ms): log_softmax is never formed,
 *    and a class of teacher probability 0 adds 0 (0 log 0 = 0), whatever the
 *    student says of it.
 *  - Rows (inner == 1, more than FX_SMALL_C classes) are read in place; tiles
 *    (a strided class axis, or FX_TILE rows of few classes transposed into a
 *    buffer) run every loop across lanes, one lane per sample position.
 *  - A sample whose student or teacher row has a NaN, a +inf, or no entry
 *    above -inf has NaN loss and gradient, as log_softmax gives in PyTorch.
 */
#ifndef FASTXENT_FX_KL_H
#define FASTXENT_FX_KL_H

#include "fx_config.h"
#include "fx_math.h"
#include "fx_xent.h"     /* fx_layout, the multi-class blocks, fx_stats_impl.h */
#include "fx_bce.h"      /* fx_scale_tile */

#define FX_KL_TILE 512       /* elements per tile of kl_div: speed only, a multiple of
                                FX_LANES dividing FX_BCE_BLOCK */
#if FX_KL_TILE % FX_LANES != 0 || FX_BCE_BLOCK % FX_KL_TILE != 0
#error "FX_KL_TILE must be a multiple of FX_LANES and divide FX_BCE_BLOCK"
#endif
#define FX_KL_KEEP 4096      /* distillation rows of up to this many classes keep the
                                teacher's exponentials on the stack (speed only) */

/*
 * One call of kl_div: x holds log-probabilities, t probabilities (or their
 * logs, log_target).  "REAL" arrays hold float for the _f kernels and double
 * for the _d kernels.  Zero the struct, then fill it.
 */
typedef struct fx_kl_args {
    Py_ssize_t n;              /* elements (flat, C order) */
    const void *x, *t;         /* REAL [n]: input and target */
    int log_target;            /* 1: t holds log-probabilities */
    void *loss;                /* REAL [n] per-element loss, or NULL */
    void *grad;                /* REAL [n] gradient, or NULL */
    const double *gout;        /* [n] per-element factor of the gradient, or NULL (1) */
    double gscale;             /* the gradient's scalar factor (NaN gives NaN) */
} fx_kl_args;

/* Blocks of a kl_div call: FX_BCE_BLOCK elements each, the last one shorter. */
static inline Py_ssize_t fx_kl_nblocks(const fx_kl_args *A)
{
    return (A->n + FX_BCE_BLOCK - 1) / FX_BCE_BLOCK;
}

/*
 * One call of the distillation loss: s (student) and t (teacher) are logits
 * laid out as fx_layout says, class c of sample n = o * inner + i at
 * [(o * C + c) * inner + i].
 */
typedef struct fx_distill_args {
    fx_layout shape;
    const void *s, *t;         /* REAL: student and teacher logits */
    double temperature;        /* T > 0: both are divided by it, the loss multiplied by T^2 */
    void *loss;                /* REAL like s: the per-element losses
                                  T^2 p_t (log p_t - log p_s), or NULL */
    void *grad;                /* REAL like s, or NULL; may not alias an input */
    const double *gout;        /* like s: per-element factor of the loss's gradient, or
                                  NULL (1) */
    double gscale;             /* the gradient's scalar factor */
} fx_distill_args;

/* The statistics of one sample (both rows), the finish's input. */
typedef struct fx_distill_stats {
    double St, Ss;             /* sum_c exp(a (t_c - mt)), sum_c exp(a (s_c - ms)) */
    double D;                  /* sum_c exp(a (t_c - mt)) d_c, 0 where that exponential is 0 */
    double R;                  /* sum_c gout_c exp(a (t_c - mt)) (0 without gout) */
    int ok;                    /* both maxima finite */
} fx_distill_stats;

/* What a sample's losses and gradient are made of:
     loss        = T^2 (a D / St + L),  L = log Ss - log St
     loss_c      = lt e_t,c (a d_c + L)             (0 where e_t,c = 0)
     grad_c      = gs_e e_s,c - gt_e gout_c e_t,c   (gout_c = 1 without gout)
   with e the stored or recomputed exponentials. */
typedef struct fx_distill_coef {
    double loss, L, lt, gs_e, gt_e;
} fx_distill_coef;

/* The finish of one sample: its loss and the factors above, from its
   statistics; NaN throughout where a max is not finite (the row's softmax is
   NaN).  gs: the gradient's factor of the sample (gscale; gout enters through R
   and per element). */
static FX_INLINE fx_distill_coef fx_distill_finish(const fx_distill_args *A, fx_distill_stats s)
{
    fx_distill_coef r;
    const double T = A->temperature, a = 1.0 / T;
    double L = fx_log_d(s.Ss) - fx_log_d(s.St);
    double nan_or_0 = s.ok ? 0.0 : NAN;
    r.L = L + nan_or_0;
    r.loss = T * T * (a * s.D / s.St + L) + nan_or_0;
    r.lt = T * T / s.St + nan_or_0;
    /* d loss / d s_c = T (p_s,c sum_k g_k p_t,k - g_c p_t,c) */
    double Rn = A->gout ? s.R / s.St : 1.0;
    r.gs_e = T * A->gscale * Rn / s.Ss + nan_or_0;
    r.gt_e = T * A->gscale / s.St + nan_or_0;
    return r;
}

#define FX_TEMPLATE "fx_kl_impl.h"
#include "fx_dtypes.h"
#undef FX_TEMPLATE

#endif
