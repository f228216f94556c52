/*
 * Template of the statistics every multi-class kernel gathers: maxima, sums of
 * exponentials, target masses, over contiguous chunks (rows) or across the lanes
 * of a tile.  fx_xent.h instantiates it once per dtype (REAL, FX_SFX) through
 * fx_dtypes.h.
 */

/* ------------------------------------------------------------------------ */
/* Over one contiguous chunk (a row, or part of a long row)                  */
/* ------------------------------------------------------------------------ */

/* max of x[0:n].  A max is exact in any order, so the loop may be vectorized
   freely.  NaN may or may not win here; either way it reaches the result through
   the sum of exponentials, as in PyTorch's log_softmax. */
static inline REAL FX_SFX(fx_chunk_max)(const REAL *restrict x, Py_ssize_t n)
{
    REAL m = -(REAL)INFINITY;
#pragma omp simd reduction(max:m)
    for (Py_ssize_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* 1 when the softmax of x[0:n] is NaN throughout: a NaN, a +inf, or no entry
   above -inf. */
static inline int FX_SFX(fx_softmax_is_nan)(const REAL *restrict x, Py_ssize_t n)
{
    REAL m = -(REAL)INFINITY;
    int nan = 0;
#pragma omp simd reduction(max:m) reduction(|:nan)
    for (Py_ssize_t j = 0; j < n; j++) {
        m = x[j] > m ? x[j] : m;
        nan |= x[j] != x[j];
    }
    return nan || !(m > -(REAL)INFINITY && m < (REAL)INFINITY);
}

/* Shift of a chunk for the exponentials: its max, or 0 when the max is not
   finite (all -inf, or +inf present), so that exp never sees inf - inf. */
static inline REAL FX_SFX(fx_shift_of)(REAL m) { return isfinite(m) ? m : (REAL)0; }

/*
 * sum_j exp(x[j] - shift) in double, in FX_LANES partial sums added in a fixed
 * order; e_out (may be NULL) receives the exponentials.  With n_top (the
 * precise sums of logsumexp and log_softmax), entries equal to shift are left
 * out of the sum and counted in *n_top instead: their exponential is exactly
 * 1, and a sum dominated by it would round the other terms away.
 */
static inline double FX_SFX(fx_chunk_sumexp)(const REAL *restrict x, Py_ssize_t n, REAL shift,
                                              REAL *restrict e_out, double *n_top)
{
    double acc[FX_LANES], top[FX_LANES];
    Py_ssize_t j = 0;
    for (int l = 0; l < FX_LANES; l++) { acc[l] = 0.0; top[l] = 0.0; }
#define FX_SUM_TERM(i, l) acc[l] += (double)FX_SFX(fx_exp)(x[i] - shift);
#define FX_STORE_TERM(i, l) { REAL e = FX_SFX(fx_exp)(x[i] - shift); e_out[i] = e; acc[l] += (double)e; }
#define FX_TOP_TERM(i, l)                                                      \
    { int t_ = x[i] == shift; REAL e = FX_SFX(fx_exp)(x[i] - shift);           \
      acc[l] += t_ ? 0.0 : (double)e; top[l] += t_ ? 1.0 : 0.0; }
    if (e_out) { FX_LANE_LOOP(FX_STORE_TERM) }
    else if (n_top) { FX_LANE_LOOP(FX_TOP_TERM) }
    else { FX_LANE_LOOP(FX_SUM_TERM) }
#undef FX_SUM_TERM
#undef FX_STORE_TERM
#undef FX_TOP_TERM
    double s = 0.0, tops = 0.0;
    for (int l = 0; l < FX_LANES; l++) { s += acc[l]; tops += top[l]; }
    if (n_top) *n_top = tops;
    return s;
}

/* The weighted target mass of a chunk: returns sum_j w_j q_j (x_j - shift) and
   stores sum_j w_j q_j in *wq_sum, with q_j = a t_j + b (t NULL: q_j = b) and
   w_j = 1 where w is NULL. */
static inline double FX_SFX(fx_chunk_wq_dot)(const REAL *x, const REAL *w, const REAL *t,
                                             double a, double b, Py_ssize_t n, REAL shift,
                                             double *wq_sum)
{
    double acc[FX_LANES], accq[FX_LANES];
    Py_ssize_t j = 0;
    for (int l = 0; l < FX_LANES; l++) { acc[l] = 0.0; accq[l] = 0.0; }
#define FX_WQ_TERM(idx, l)                                                     \
    {                                                                          \
        double q = t ? a * (double)t[idx] + b : b;                             \
        double wq = w ? (double)w[idx] * q : q;                                \
        accq[l] += wq;                                                         \
        acc[l] += wq * (double)(x[idx] - shift);                               \
    }
    FX_LANE_LOOP(FX_WQ_TERM)
#undef FX_WQ_TERM
    double s = 0.0, sq = 0.0;
    for (int l = 0; l < FX_LANES; l++) { s += acc[l]; sq += accq[l]; }
    *wq_sum = sq;
    return s;
}

/* g[j] = g[j] * f - w_j (a t_j + b): turns stored exponentials into the gradient
   (t NULL: q_j = b; w NULL: w_j = 1).  Without probabilities and with b == 0
   the weights are not touched: an unused infinite weight changes nothing. */
static inline void FX_SFX(fx_chunk_grad)(REAL *restrict g, Py_ssize_t n, REAL f,
                                         const REAL *restrict w, const REAL *restrict t, REAL a, REAL b)
{
    Py_ssize_t j;
    if (!t && b == (REAL)0) {
        for (j = 0; j < n; j++) g[j] *= f;
    } else if (!t) {
        if (w) for (j = 0; j < n; j++) g[j] = g[j] * f - w[j] * b;
        else   for (j = 0; j < n; j++) g[j] = g[j] * f - b;
    } else {
        if (w) for (j = 0; j < n; j++) g[j] = g[j] * f - w[j] * (a * t[j] + b);
        else   for (j = 0; j < n; j++) g[j] = g[j] * f - (a * t[j] + b);
    }
}

/* h[j] = e f (1 - e p1) with e = g[j], the stored exponentials: the diagonal
   of the Hessian, gq p_j (1 - p_j), where e f is the gradient's gq p_j
   (fx_chunk_grad's product, bit for bit) and e p1 is p_j.  Runs before
   fx_chunk_grad overwrites e. */
static inline void FX_SFX(fx_chunk_hess)(const REAL *restrict g, REAL *restrict h, Py_ssize_t n,
                                         REAL f, REAL p1)
{
    for (Py_ssize_t j = 0; j < n; j++) {
        REAL e = g[j];
        h[j] = e * f * ((REAL)1 - e * p1);
    }
}

/* sum_j e[j] v[j] in double, in FX_LANES partial sums. */
static inline double FX_SFX(fx_chunk_dot)(const REAL *restrict e, const REAL *restrict v,
                                          Py_ssize_t n)
{
    double acc[FX_LANES];
    Py_ssize_t j = 0;
    for (int l = 0; l < FX_LANES; l++) acc[l] = 0.0;
#define FX_DOT_TERM(i, l) acc[l] += (double)e[i] * (double)v[i];
    FX_LANE_LOOP(FX_DOT_TERM)
#undef FX_DOT_TERM
    double s = 0.0;
    for (int l = 0; l < FX_LANES; l++) s += acc[l];
    return s;
}

/* g[j] = g[j] f (v[j] - pv): turns stored exponentials into the Hessian times
   v, gq p_j (v_j - sum_k p_k v_k), with f as for fx_chunk_grad. */
static inline void FX_SFX(fx_chunk_hvp)(REAL *restrict g, const REAL *restrict v, Py_ssize_t n,
                                        REAL f, REAL pv)
{
    for (Py_ssize_t j = 0; j < n; j++) g[j] = g[j] * f * (v[j] - pv);
}

/* ------------------------------------------------------------------------ */
/* One row, class axis contiguous, cut into chunks                           */
/* ------------------------------------------------------------------------ */

/* The statistics of a row. */
typedef struct {
    Py_ssize_t K, nk;                /* chunk length and count (fx_chunk_at) */
    REAL shift[FX_MAX_CHUNKS];       /* a chunk's shift (fx_shift_of); -inf for a chunk of -inf */
    double M;                        /* the row max */
    double log_s;                    /* log sum_j exp(x_j - M) (relative to 0 where M is not finite) */
    int finite;                      /* M is finite */
} FX_SFX(fx_row);

/* log S of a row from its chunks' sums s[k] (relative to their shifts) and,
   for precise sums, their counts top[k] of entries equal to the shift. */
static FX_INLINE double FX_SFX(fx_row_log_s)(const FX_SFX(fx_row) *row, const double *s,
                                          const double *top)
{
    double S = 0.0, ones = 0.0;
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        double sk = s[k] + (top && !row->finite ? top[k] : 0.0);
        if (!row->finite) { S += sk; continue; }            /* 0, inf or NaN: relative to 0 */
        if (row->shift[k] == -(REAL)INFINITY && sk == sk) continue;   /* adds 0 (NaN counts) */
        double f = row->shift[k] == -(REAL)INFINITY ? 1.0 : fx_exp_d((double)row->shift[k] - row->M);
        S += sk * f;
        if (top && (double)row->shift[k] == row->M) ones += top[k];
        else if (top) S += top[k] * f;
    }
    /* precise: S holds every term but one exp(0) = 1, so log S = log1p(S) */
    return top && row->finite ? fx_log1p_d(S + (ones - 1.0)) : fx_log_d(S);
}

/* Fills row (shifts, max, log S) for x[0:C]; e (may be NULL) receives
   exp(x_j - the shift of its chunk); precise: see fx_chunk_sumexp. */
static inline void FX_SFX(fx_row_stats)(const REAL *x, Py_ssize_t C, FX_SFX(fx_row) *row,
                                        REAL *e, int precise)
{
    double s[FX_MAX_CHUNKS], top[FX_MAX_CHUNKS];
    REAL M = -(REAL)INFINITY;
    row->K = fx_chunk_len(C);
    row->nk = C ? (C + row->K - 1) / row->K : 0;
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        Py_ssize_t len, off = fx_chunk_at(C, row->K, k, &len);
        REAL m = FX_SFX(fx_chunk_max)(x + off, len);
        REAL sh = FX_SFX(fx_shift_of)(m);
        row->shift[k] = m == -(REAL)INFINITY ? -(REAL)INFINITY : sh;
        s[k] = FX_SFX(fx_chunk_sumexp)(x + off, len, sh, e ? e + off : NULL, precise ? &top[k] : NULL);
        M = m > M ? m : M;
    }
    row->M = (double)M;
    row->finite = isfinite(M);
    row->log_s = FX_SFX(fx_row_log_s)(row, s, precise ? top : NULL);
}

/* The row's weighted target mass relative to M: returns sum_j w_j q_j (x_j - M)
   and stores sum_j w_j q_j in *q, with q_j = a t_j + b (see fx_chunk_wq_dot). */
static inline double FX_SFX(fx_row_mass)(const FX_SFX(fx_row) *row, const REAL *x, Py_ssize_t C,
                                         const REAL *w, const REAL *t, double a, double b,
                                         double *q)
{
    double d = 0.0;
    *q = 0.0;
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        Py_ssize_t len, off = fx_chunk_at(C, row->K, k, &len);
        REAL sh = FX_SFX(fx_shift_of)(row->shift[k]);
        double qk;
        d += FX_SFX(fx_chunk_wq_dot)(x + off, w ? w + off : NULL, t ? t + off : NULL, a, b, len, sh, &qk)
             + qk * ((double)sh - row->M);
        *q += qk;
    }
    return d;
}

/* mult * exp(shift_k - M - log_s): what turns chunk k's stored exponentials
   into mult * the softmax (0 for a chunk of -inf in a row whose max is finite). */
static inline double FX_SFX(fx_row_chunk_factor)(const FX_SFX(fx_row) *row, Py_ssize_t k,
                                                 double log_s, double mult)
{
    if (row->shift[k] == -(REAL)INFINITY && row->finite) return 0.0;
    return mult * fx_exp_d(((double)row->shift[k] - row->M) - log_s);
}

/* ------------------------------------------------------------------------ */
/* A tile: T <= FX_TILE lanes (sample positions), class c of lane l at       */
/* x[c * stride + l]; every loop runs across lanes                           */
/* ------------------------------------------------------------------------ */

/* Per lane l: max m[l], shift sh[l] (fx_shift_of) and log_s[l] =
   log sum_c exp(x[c * stride + l] - sh[l]); e (may be NULL, laid out like x)
   receives the exponentials.  The sum over classes adds partial sums of
   FX_CBLOCK classes (C terms added one by one would round like C terms: 1e-12
   relative at C = 1e5 in float64).  precise: see fx_chunk_sumexp. */
static FX_INLINE void FX_SFX(fx_tile_stats)(const REAL *restrict x, Py_ssize_t T, Py_ssize_t C,
                                         Py_ssize_t stride, REAL *restrict m, REAL *restrict sh,
                                         double *restrict log_s, REAL *restrict e, int precise)
{
    double s[FX_TILE], top[FX_TILE];
    Py_ssize_t c;
    int l;
    for (l = 0; l < T; l++) { m[l] = -(REAL)INFINITY; s[l] = 0.0; top[l] = 0.0; }
    for (c = 0; c < C; c++) {
        const REAL *xc = x + c * stride;      /* (x[c * stride + l] would not vectorize under -fwrapv) */
        for (l = 0; l < T; l++) m[l] = xc[l] > m[l] ? xc[l] : m[l];
    }
    for (l = 0; l < T; l++) sh[l] = FX_SFX(fx_shift_of)(m[l]);
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
        Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
        double sb[FX_TILE];
        for (l = 0; l < T; l++) sb[l] = 0.0;
        for (c = c0; c < c1; c++) {
            const REAL *xc = x + c * stride;
            if (e) {
                REAL *ec = e + c * stride;
                for (l = 0; l < T; l++) { REAL v = FX_SFX(fx_exp)(xc[l] - sh[l]); ec[l] = v; sb[l] += (double)v; }
            } else if (precise) {
                for (l = 0; l < T; l++) {
                    int t_ = xc[l] == sh[l];
                    REAL v = FX_SFX(fx_exp)(xc[l] - sh[l]);
                    sb[l] += t_ ? 0.0 : (double)v;
                    top[l] += t_ ? 1.0 : 0.0;
                }
            } else {
                for (l = 0; l < T; l++) sb[l] += (double)FX_SFX(fx_exp)(xc[l] - sh[l]);
            }
        }
        for (l = 0; l < T; l++) s[l] += sb[l];
    }
    /* precise: s holds every term but one exp(0) = 1 where the max is finite
       (elsewhere s + top is 0, inf or NaN, and so is log1p(s + top - 1)) */
    for (l = 0; l < T; l++)
        log_s[l] = precise ? fx_log1p_d(s[l] + (top[l] - 1.0)) : fx_log_d(s[l]);
}

/* Per lane: the weighted target mass relative to sh, as fx_chunk_wq_dot:
   d[l] = sum_c w_c q (x - sh[l]) and q_out[l] = sum_c w_c q, q = a t + b, in
   partial sums of FX_CBLOCK classes. */
static FX_INLINE void FX_SFX(fx_tile_mass)(const REAL *x, const REAL *t, const REAL *w, Py_ssize_t T,
                                        Py_ssize_t C, Py_ssize_t stride, const REAL *sh,
                                        double a, double b, double *q_out, double *d)
{
    int l;
    for (l = 0; l < T; l++) { q_out[l] = 0.0; d[l] = 0.0; }
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
        Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
        double Qb[FX_TILE], Db[FX_TILE];
        for (l = 0; l < T; l++) { Qb[l] = 0.0; Db[l] = 0.0; }
        for (Py_ssize_t c = c0; c < c1; c++) {
            const REAL *xc = x + c * stride;
            const REAL *tc = t ? t + c * stride : NULL;
            double wc = w ? (double)w[c] : 1.0;
            for (l = 0; l < T; l++) {
                double q = tc ? a * (double)tc[l] + b : b;
                Qb[l] += wc * q;
                Db[l] += wc * q * (double)(xc[l] - sh[l]);
            }
        }
        for (l = 0; l < T; l++) { q_out[l] += Qb[l]; d[l] += Db[l]; }
    }
}

/* Copies a (rows x cols) block with row stride ld_src into dst with row stride
   ld_dst, transposed: dst[c * ld_dst + r] = src[r * ld_src + c]. */
static inline void FX_SFX(fx_transpose)(const REAL *restrict src, Py_ssize_t rows, Py_ssize_t cols,
                                        Py_ssize_t ld_src, REAL *restrict dst, Py_ssize_t ld_dst)
{
    /* the inner loop runs along the longer side, contiguous on one end */
    if (rows >= cols) {
        for (Py_ssize_t c = 0; c < cols; c++)
#pragma omp simd
            for (Py_ssize_t r = 0; r < rows; r++)
                dst[c * ld_dst + r] = src[r * ld_src + c];
    } else {
        for (Py_ssize_t r = 0; r < rows; r++)
#pragma omp simd
            for (Py_ssize_t c = 0; c < cols; c++)
                dst[c * ld_dst + r] = src[r * ld_src + c];
    }
}
