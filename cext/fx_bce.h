/*
 * fastxent: the binary kernels (binary cross-entropy on probabilities and on
 * logits), loss and gradient in one pass.
 *
 * Design, in short:
 *  - The input, target, per-element loss and gradient are flat C-order arrays;
 *    a call is one struct (fx_bce_args), cut into blocks of FX_BCE_BLOCK
 *    elements (fixed by the size alone); the drivers (_bce.pxi) run the blocks
 *    with OpenMP and add the block sums in order.  Within a block, sums run in
 *    double in FX_LANES partial sums added in a fixed order: the same answer
 *    for any thread count.  (The AVX2 and baseline builds may differ in the
 *    last bit: FMA contraction, see fx_config.h.)
 *  - A block is done in tiles of FX_BCE_TILE elements.  weight and pos_weight
 *    broadcast to the input as in NumPy without being copied to its shape: each
 *    is described by its own shape merged with the input's (fx_bcast: sizes and
 *    element strides, 0 along a broadcast axis), and the few values a tile needs
 *    are gathered into a small buffer on the stack.  The element loops then see
 *    plain contiguous arrays and vectorize; a weight of the input's full shape
 *    is read in place.
 *  - With logits, softplus(+-x) = max(+-x, 0) + log1p(exp(-|x|)) and the two
 *    sigmoids are all formed from the one e = exp(-|x|) (never overflows), for
 *    both the loss and the gradient; log1p(e) and 1 / (1 + e) share a division.
 *    Each term is a product of non-negative factors: no cancellation, so tiny
 *    losses (a confident right answer) keep their relative precision.
 *  - Probabilities outside [0, 1] (NaN included) are counted during the pass,
 *    so the check costs no extra sweep; the caller raises.
 */
#ifndef FASTXENT_FX_BCE_H
#define FASTXENT_FX_BCE_H

#include "fx_config.h"
#include "fx_math.h"

#define FX_BCE_TILE 512      /* elements per tile: speed only, as long as it is a
                                multiple of FX_LANES (then the lanes of a block's
                                sum are the same whatever the tile) */
#if FX_BCE_TILE % FX_LANES != 0 || FX_BCE_BLOCK % FX_BCE_TILE != 0
#error "FX_BCE_TILE must be a multiple of FX_LANES and divide FX_BCE_BLOCK"
#endif
#define FX_BCE_MAXDIM 64     /* axes of an fx_bcast at most: NumPy's limit */

/* An operand (weight, pos_weight) broadcast to the input: nd axes, merged where
   possible, with their sizes and the operand's element strides along them (0
   where it is broadcast), in C order.  A NULL operand is absent. */
typedef struct {
    int nd;
    const Py_ssize_t *dims;
    const Py_ssize_t *strides;
} fx_bcast;

/*
 * One call of a binary loss.  "REAL" arrays hold float for the _f kernels and
 * double for the _d kernels.  Zero the struct, then fill it: an option added
 * later defaults to off at zero.
 */
typedef struct fx_bce_args {
    int logits;                /* 1: x holds logits; 0: probabilities */
    Py_ssize_t n;              /* elements of x (flat, C order) */
    const void *x, *t;         /* REAL [n]: input and target */
    const void *w;             /* REAL weight broadcast by wl, or NULL */
    fx_bcast wl;
    const void *pw;            /* REAL pos_weight broadcast by pwl, or NULL (logits only) */
    fx_bcast pwl;
    void *loss;                /* REAL [n] per-element loss, or NULL */
    void *grad;                /* REAL [n] gradient, or NULL */
    const double *gout;        /* [n] per-element factor of the gradient, or NULL (1) */
    double gscale;             /* the gradient's scalar factor (NaN gives NaN) */
    /* second order and sample weights (version 0.2) */
    const void *sw;            /* REAL sample_weight broadcast by swl, or NULL: a
                                  factor of w, so of the loss and its derivatives */
    fx_bcast swl;
    void *hess;                /* REAL [n] the Hessian's diagonal (logits only), or NULL */
} fx_bce_args;

/* Blocks of a call: FX_BCE_BLOCK elements each, the last one shorter. */
static inline Py_ssize_t fx_bce_nblocks(const fx_bce_args *A)
{
    return (A->n + FX_BCE_BLOCK - 1) / FX_BCE_BLOCK;
}

/* True when the operand is laid out exactly like the input. */
static inline int fx_bcast_is_full(const fx_bcast *b)
{
    return b->nd == 1 && b->strides[0] == 1;
}

#define FX_TEMPLATE "fx_bce_impl.h"
#include "fx_dtypes.h"
#undef FX_TEMPLATE

#endif
