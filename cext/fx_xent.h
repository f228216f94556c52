/*
 * fastxent: the multi-class kernels (cross-entropy, log-sum-exp, softmax).
 *
 * Design, in short:
 *  - One fused pass per row: the max, the sum of exponentials (stored into the
 *    gradient buffer when a gradient is wanted), the loss, then the stored
 *    exponentials rescaled in place into the gradient.  The row is read from
 *    memory once; the later sweeps hit cache.
 *  - Long rows are cut into chunks of at most fx_chunk_len(C) classes, each with
 *    its own max; chunk sums are rescaled to the row max and added in order.
 *  - Every sum runs in double, in FX_LANES independent partial sums added in a
 *    fixed order, so the compiler vectorizes it without reassociating and the
 *    answer is the same for any thread count and any SIMD width.
 *  - A class axis with a stride (N, C, d1...) is done in tiles of FX_TILE
 *    sample positions: each lane is one position, vectorized across positions;
 *    its sums over the classes add partial sums of FX_CBLOCK classes.
 *  - The Cython drivers (_xent.pxi) cut the work into blocks that depend on the
 *    shape only, run them under OpenMP, and add the block sums in order.
 */
#ifndef FASTXENT_FX_XENT_H
#define FASTXENT_FX_XENT_H

#include <string.h>
#include "fx_math.h"

#define FX_LANES 16          /* partial sums per reduction */
#define FX_TILE 64           /* sample positions per tile of a strided class axis */
#define FX_CBLOCK 128        /* classes per partial sum in a tile: a sum over C classes
                                rounds like C / FX_CBLOCK + FX_CBLOCK terms, not C */
#define FX_MAX_CHUNKS 64     /* chunks per row at most (fx_chunk_len grows past that) */
#define FX_CHUNK_MIN 16384   /* classes per chunk: a chunk of floats fits in L2 */

#define FX_LSE 0
#define FX_SOFTMAX 1
#define FX_LOG_SOFTMAX 2

static inline Py_ssize_t fx_chunk_len(Py_ssize_t C)
{
    Py_ssize_t K = FX_CHUNK_MIN;
    if (C > K * FX_MAX_CHUNKS) K = (C + FX_MAX_CHUNKS - 1) / FX_MAX_CHUNKS;
    return K;
}

#define REAL float
#define FX_SFX(name) name##_f
#include "fx_xent_impl.h"
#undef REAL
#undef FX_SFX

#define REAL double
#define FX_SFX(name) name##_d
#include "fx_xent_impl.h"
#undef REAL
#undef FX_SFX

#endif
