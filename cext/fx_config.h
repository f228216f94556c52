/*
 * fastxent: the constants that change results bitwise.  Nothing else may.
 *
 * Each constant below decides how a sum is grouped (partial sums, blocks,
 * chunks, tiles) or which of PyTorch's constants a formula uses.  Changing one
 * changes answers in the last bits (or, for the last group, their value), so
 * every one of them is defined here and nowhere else; the Cython drivers read
 * them through kernels.pxd.  None of them depends on the thread count or on
 * the CPU: the blocks of a call are fixed by its shape, and the block sums are
 * added in block order, which is why a result is the same for every thread
 * count.
 *
 * Not fixed here, and not the same everywhere: the compiler flags.  setup.py
 * compiles with -ffp-contract=fast, so the AVX2+FMA build fuses a * b + c into
 * one rounding where the baseline build rounds twice: the two SIMD builds may
 * differ in the last bit (each is deterministic).  Constants that only change
 * speed (the serial threshold, the thread cap, tile sizes of the binary
 * kernels) live beside the code they tune.
 */
#ifndef FASTXENT_FX_CONFIG_H
#define FASTXENT_FX_CONFIG_H

/* ---- multi-class kernels (fx_xent.h) ---- */
#define FX_LANES 8            /* partial sums of a reduction along contiguous memory:
                                 8 doubles = 2 AVX2 or 1 AVX-512 register */
/* Runs TERM(index, lane) for index in [j, n): FX_LANES lanes, each a partial
   sum of every FX_LANES-th term, the rest in lane 0; the lanes are then added
   in lane order.  This grouping is what FX_LANES fixes. */
#define FX_LANE_LOOP(TERM)                                                     \
    for (; j + FX_LANES <= n; j += FX_LANES)                                   \
        for (int l = 0; l < FX_LANES; l++) TERM(j + l, l)                      \
    for (; j < n; j++) TERM(j, 0)
#define FX_TILE 64            /* sample positions per tile (strided class axis, or
                                 FX_TILE rows of at most FX_SMALL_C classes) */
#define FX_CBLOCK 128         /* classes per partial sum in a tile: a sum over C
                                 classes rounds like C / FX_CBLOCK + FX_CBLOCK terms */
#define FX_SMALL_C 32         /* rows of at most this many classes are done as tiles */
#define FX_CHUNK_MIN 16384    /* classes per chunk of a long row: a chunk of floats
                                 fits in L2 (rows up to this length are read once) */
#define FX_MAX_CHUNKS 64      /* chunks per row at most (the chunk grows past that) */
#define FX_ROW_BLOCK 16384    /* elements per block of rows (at least one row) */
#define FX_CAP_BLOCK 256      /* logits soft-capped into a buffer at a time in a row
                                 (cross-entropy's softcap): one partial sum each */
#define FX_SAMPLE_BLOCK 65536 /* targets per block of the target check (the sums
                                 of a "mean" denominator) */

/* ---- binary kernels (fx_bce.h) ---- */
#define FX_BCE_BLOCK 16384    /* elements per block (a multiple of FX_LANES) */

/* ---- PyTorch's constants ---- */
#define FX_BCE_EPS 9.999999960041972e-13  /* float32(1e-12): the floor of x (1 - x)
                                             in binary_cross_entropy's gradient, in
                                             every dtype, as PyTorch */
#define FX_BCE_LOG_MIN (-100)             /* the floor of its logarithms */

#endif
