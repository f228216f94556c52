/*
 * fastxent: the binary kernels (binary cross-entropy on probabilities and on
 * logits), loss and gradient in one pass.
 *
 * Design, in short:
 *  - The input, target, per-element loss and gradient are flat C-order arrays;
 *    the drivers (_bce.pxi) cut them into blocks of a fixed number of elements
 *    (depending on the size only), run the blocks with OpenMP and add the block
 *    sums in order.  Within a block, sums run in double in FX_LANES partial sums
 *    added in a fixed order: the same answer for any thread count or SIMD width.
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

#include "fx_math.h"

#ifndef FX_LANES
#define FX_LANES 16          /* partial sums per reduction, as in fx_xent.h */
#endif
#define FX_BCE_TILE 512      /* elements per tile (a multiple of FX_LANES) */
#define FX_BCE_MAXDIM 64     /* axes of an fx_bcast at most: NumPy's limit */
#define FX_BCE_EPS 1e-12     /* PyTorch's floor of x (1 - x) in the gradient */
#define FX_BCE_LOG_MIN -100  /* PyTorch's floor of the logarithms */

/* An operand (weight, pos_weight) broadcast to the input: nd axes, merged where
   possible, with their sizes and the operand's element strides along them (0
   where it is broadcast), in C order.  A NULL operand is absent. */
typedef struct {
    int nd;
    const Py_ssize_t *dims;
    const Py_ssize_t *strides;
} fx_bcast;

/* True when the operand is laid out exactly like the input. */
static inline int fx_bcast_is_full(const fx_bcast *b)
{
    return b->nd == 1 && b->strides[0] == 1;
}

#define REAL float
#define FX_SFX(name) name##_f
#include "fx_bce_impl.h"
#undef REAL
#undef FX_SFX

#define REAL double
#define FX_SFX(name) name##_d
#include "fx_bce_impl.h"
#undef REAL
#undef FX_SFX

#endif
