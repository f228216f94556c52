/*
 * fastxent: the sigmoid focal loss (torchvision.ops.sigmoid_focal_loss), loss
 * and gradient in one pass.
 *
 * Design, in short:
 *  - Elementwise, beside the binary kernels (fx_bce.h): a call (fx_focal_args)
 *    is cut into blocks of FX_BCE_BLOCK elements fixed by the size alone, each
 *    done in tiles of FX_BCE_TILE elements; a block's loss sum runs in
 *    FX_LANES double partial sums added in a fixed order, and the drivers
 *    (_focal.pxi) add the block sums in block order.
 *  - Per element, with s = sigmoid(x) and its complement sigmoid(-x), both
 *    from the one e = exp(-|x|) as in fx_bce_logits_elem (fx_log1p_recip):
 *      ce   = (1 - t) softplus(x) + t softplus(-x)        (BCE with logits)
 *      m    = 1 - p_t = (1 - t) s + t sigmoid(-x)         (no cancellation)
 *      loss = a_t ce m^gamma,  a_t = alpha t + (1 - alpha)(1 - t), or 1 for alpha < 0
 *      grad = a_t m^gamma ((1 - t) s - t sigmoid(-x) + gamma ce (1 - 2 t) s sigmoid(-x) / m)
 *    m^gamma is m^k exp(f log m) with gamma = k + f, k = min(floor(gamma), 7):
 *    products of m for the integer part (a few ulp, where exp(gamma log m)
 *    would lose |gamma log m| ulp), and for a fractional part log m =
 *    -softplus(-+x) exactly for a hard label (t = 0 or 1), so that no m
 *    underflows to a 0 whose log is -inf (gamma = 0 gives m^0 = 1 and the
 *    loss is BCE with logits); for a soft label m is at least
 *    min(t, 1 - t) / 2.  s sigmoid(-x) / m is the other sigmoid for a hard
 *    label.  Every factor is finite for finite x: no overflow for any logit.
 *  - Targets outside [0, 1] (NaN included) are counted during the pass (m
 *    would be negative); the caller raises.
 */
#ifndef FASTXENT_FX_FOCAL_H
#define FASTXENT_FX_FOCAL_H

#include "fx_config.h"
#include "fx_math.h"
#include "fx_bce.h"      /* FX_BCE_TILE, fx_log1p_recip, fx_count_not_prob */

/*
 * One call of the sigmoid focal loss.  "REAL" arrays hold float for the _f
 * kernels and double for the _d kernels.  Zero the struct, then fill it.
 */
typedef struct fx_focal_args {
    Py_ssize_t n;              /* elements of x (flat, C order) */
    const void *x, *t;         /* REAL [n]: logits and targets in [0, 1] */
    double alpha;              /* the weight of the positives; < 0: no weighting */
    double gamma;              /* the focusing exponent, >= 0 */
    void *loss;                /* REAL [n] per-element loss, or NULL */
    void *grad;                /* REAL [n] gradient, or NULL */
    const double *gout;        /* [n] per-element factor of the gradient, or NULL (1) */
    double gscale;             /* the gradient's scalar factor (NaN gives NaN) */
} fx_focal_args;

/* Blocks of a call: FX_BCE_BLOCK elements each, the last one shorter. */
static inline Py_ssize_t fx_focal_nblocks(const fx_focal_args *A)
{
    return (A->n + FX_BCE_BLOCK - 1) / FX_BCE_BLOCK;
}

#define FX_TEMPLATE "fx_focal_impl.h"
#include "fx_dtypes.h"
#undef FX_TEMPLATE

#endif
