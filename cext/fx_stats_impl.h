/*
 * Template of the statistics every multi-class kernel gathers: maxima, sums of
 * exponentials, target masses, over contiguous chunks (rows) or across the lanes
 * of a tile.  fx_xent.h instantiates it once per dtype (REAL, FX_SFX) through
 * fx_dtypes.h.
 *
 * Soft-capping (cross-entropy's softcap, `cap` > 0; 0: off) is applied where a
 * logit is loaded.  The sums along a row cap FX_CAP_BLOCK logits into a stack
 * buffer and run their plain loop on it (a cap inside their lanes' loop
 * vectorizes poorly); the other loops are `_body` functions that read logits
 * through FX_LOGIT / FX_DCAP and take a constant `capped`, called once with 1
 * and once with 0, so that the uncapped loop compiles exactly as without the
 * option (a test per chunk or tile, none per element).  The max needs no
 * capping pass: cap tanh(x / cap) increases with x, so the capped max is the
 * cap of the max.
 */

#ifndef FX_LOGIT
/* The logit x as a loop of a `_body` function sees it (`capped`, `cap` and
   `inv_cap` in scope); FX_DCAP(v, x): v times the derivative of the cap at x. */
#define FX_LOGIT(x) (capped ? FX_SFX(fx_cap)((x), cap, inv_cap) : (x))
#define FX_DCAP(v, x) (capped ? (v) * FX_SFX(fx_dtanh)((x) * inv_cap) : (v))
#endif

/* The cap of a chunk's or a lane's max (a no-op without softcap). */
static FX_INLINE REAL FX_SFX(fx_cap_max)(REAL m, REAL cap)
{
    return cap > (REAL)0 ? FX_SFX(fx_cap)(m, cap, (REAL)1 / cap) : m;
}

/* c[0:n] = the soft-capped x[0:n] (cap > 0). */
static FX_INLINE void FX_SFX(fx_cap_block)(const REAL *restrict x, Py_ssize_t n, REAL cap,
                                        REAL *restrict c)
{
    const REAL inv_cap = (REAL)1 / cap;
    for (Py_ssize_t j = 0; j < n; j++) c[j] = FX_SFX(fx_cap)(x[j], cap, inv_cap);
}

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

/* fx_chunk_max over the entries whose weight b[j] is not 0 (logsumexp's b=). */
static inline REAL FX_SFX(fx_chunk_max_w)(const REAL *restrict x, const REAL *restrict b, Py_ssize_t n)
{
    REAL m = -(REAL)INFINITY;
#pragma omp simd reduction(max:m)
    for (Py_ssize_t j = 0; j < n; j++) m = b[j] != (REAL)0 && x[j] > m ? x[j] : m;
    return m;
}

/* 1 when the softmax of x[0:n] is NaN throughout: a NaN, a +inf, or no entry
   above -inf; with softcap (every capped logit in [-cap, cap]) a NaN only. */
static inline int FX_SFX(fx_softmax_is_nan)(const REAL *restrict x, Py_ssize_t n, REAL cap)
{
    REAL m = -(REAL)INFINITY;
    int nan = 0;
#pragma omp simd reduction(max:m) reduction(|:nan)
    for (Py_ssize_t j = 0; j < n; j++) {
        m = x[j] > m ? x[j] : m;
        nan |= x[j] != x[j];
    }
    return nan || (cap == (REAL)0 && !(m > -(REAL)INFINITY && m < (REAL)INFINITY));
}

/* Shift of a chunk for the exponentials: its max, or 0 when the max is not
   finite (all -inf, or +inf present), so that exp never sees inf - inf. */
static inline REAL FX_SFX(fx_shift_of)(REAL m) { return isfinite(m) ? m : (REAL)0; }

/*
 * sum_j exp(x[j] - shift) in double, in FX_LANES partial sums added in a fixed
 * order; e_out (may be NULL) receives the exponentials.  With n_top (the
 * precise sums of logsumexp and log_softmax), entries equal to shift are left
 * out of the sum and counted in *n_top instead: their exponential is exactly
 * 1, and a sum dominated by it would round the other terms away.  With b
 * (logsumexp's weights; n_top given, e_out NULL) the terms are b_j exp(..),
 * *n_top adds the weights of the entries equal to shift, and a zero weight
 * leaves its term out even where x is inf or NaN (as scipy).
 */
static inline double FX_SFX(fx_chunk_sumexp)(const REAL *restrict x, const REAL *restrict b,
                                              Py_ssize_t n, REAL shift, REAL *restrict e_out,
                                              double *n_top)
{
    double acc[FX_LANES], top[FX_LANES];
    Py_ssize_t j = 0;
    for (int l = 0; l < FX_LANES; l++) { acc[l] = 0.0; top[l] = 0.0; }
#define FX_SUM_TERM(i, l) acc[l] += (double)FX_SFX(fx_exp)(x[i] - shift);
#define FX_STORE_TERM(i, l) { REAL e = FX_SFX(fx_exp)(x[i] - shift); e_out[i] = e; acc[l] += (double)e; }
#define FX_TOP_TERM(i, l)                                                      \
    { int t_ = x[i] == shift; REAL e = FX_SFX(fx_exp)(x[i] - shift);           \
      acc[l] += t_ ? 0.0 : (double)e; top[l] += t_ ? 1.0 : 0.0; }
#define FX_WTOP_TERM(i, l)                                                     \
    { int t_ = x[i] == shift; REAL e = FX_SFX(fx_exp)(x[i] - shift);           \
      double v = b[i] != (REAL)0 ? (double)b[i] * (double)e : 0.0;             \
      acc[l] += t_ ? 0.0 : v; top[l] += t_ ? v : 0.0; }
    if (e_out) { FX_LANE_LOOP(FX_STORE_TERM) }
    else if (b) { FX_LANE_LOOP(FX_WTOP_TERM) }
    else if (n_top) { FX_LANE_LOOP(FX_TOP_TERM) }
    else { FX_LANE_LOOP(FX_SUM_TERM) }
#undef FX_SUM_TERM
#undef FX_STORE_TERM
#undef FX_TOP_TERM
#undef FX_WTOP_TERM
    double s = 0.0, tops = 0.0;
    for (int l = 0; l < FX_LANES; l++) { s += acc[l]; tops += top[l]; }
    if (n_top) *n_top = tops;
    return s;
}

/* fx_chunk_sumexp of the soft-capped x[0:n] (cap > 0), capped into a buffer
   FX_CAP_BLOCK at a time (the loop on the buffer is the plain one: a cap inside
   the lanes' loop vectorizes poorly), whose sums are added in order. */
static inline double FX_SFX(fx_chunk_sumexp_capped)(const REAL *restrict x, Py_ssize_t n, REAL shift,
                                                     REAL *restrict e_out, REAL cap)
{
    REAL c[FX_CAP_BLOCK];
    double s = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_CAP_BLOCK) {
        Py_ssize_t len = n - j0 < FX_CAP_BLOCK ? n - j0 : FX_CAP_BLOCK;
        FX_SFX(fx_cap_block)(x + j0, len, cap, c);
        s += FX_SFX(fx_chunk_sumexp)(c, NULL, len, shift, e_out ? e_out + j0 : NULL, NULL);
    }
    return s;
}

/* The weighted target mass of a chunk: returns sum_j w_j q_j (x_j - shift) and
   stores sum_j w_j q_j in *wq_sum, with q_j = a t_j + b (t NULL: q_j = b) and
   w_j = 1 where w is NULL; x_j soft-capped where cap > 0 (as fx_chunk_sumexp). */
static FX_INLINE double FX_SFX(fx_chunk_wq_dot_plain)(const REAL *x, const REAL *w, const REAL *t,
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
static inline double FX_SFX(fx_chunk_wq_dot)(const REAL *x, const REAL *w, const REAL *t,
                                             double a, double b, Py_ssize_t n, REAL shift,
                                             double *wq_sum, REAL cap)
{
    if (cap == (REAL)0) return FX_SFX(fx_chunk_wq_dot_plain)(x, w, t, a, b, n, shift, wq_sum);
    REAL c[FX_CAP_BLOCK];         /* as fx_chunk_sumexp_capped */
    double d = 0.0, q;
    *wq_sum = 0.0;
    for (Py_ssize_t j0 = 0; j0 < n; j0 += FX_CAP_BLOCK) {
        Py_ssize_t len = n - j0 < FX_CAP_BLOCK ? n - j0 : FX_CAP_BLOCK;
        FX_SFX(fx_cap_block)(x + j0, len, cap, c);
        d += FX_SFX(fx_chunk_wq_dot_plain)(c, w ? w + j0 : NULL, t ? t + j0 : NULL, a, b, len, shift, &q);
        *wq_sum += q;
    }
    return d;
}

/* g[j] = g[j] * f - w_j (a t_j + b): turns stored exponentials into the gradient
   (t NULL: q_j = b; w NULL: w_j = 1), times the derivative of the cap at x[j]
   where cap > 0 (x: the chunk's logits; unread otherwise).  Without
   probabilities and with b == 0 the weights are not touched: an unused
   infinite weight changes nothing. */
static FX_INLINE void FX_SFX(fx_chunk_grad_body)(REAL *restrict g, Py_ssize_t n, REAL f,
                                                 const REAL *restrict w, const REAL *restrict t,
                                                 REAL a, REAL b, const REAL *restrict x,
                                                 REAL cap, const int capped)
{
    const REAL inv_cap = capped ? (REAL)1 / cap : (REAL)0;
    Py_ssize_t j;
    if (!t && b == (REAL)0) {
        for (j = 0; j < n; j++) g[j] = FX_DCAP(g[j] * f, x[j]);
    } else if (!t) {
        if (w) for (j = 0; j < n; j++) g[j] = FX_DCAP(g[j] * f - w[j] * b, x[j]);
        else   for (j = 0; j < n; j++) g[j] = FX_DCAP(g[j] * f - b, x[j]);
    } else {
        if (w) for (j = 0; j < n; j++) g[j] = FX_DCAP(g[j] * f - w[j] * (a * t[j] + b), x[j]);
        else   for (j = 0; j < n; j++) g[j] = FX_DCAP(g[j] * f - (a * t[j] + b), x[j]);
    }
}
static inline void FX_SFX(fx_chunk_grad)(REAL *restrict g, Py_ssize_t n, REAL f,
                                         const REAL *restrict w, const REAL *restrict t, REAL a, REAL b,
                                         const REAL *restrict x, REAL cap)
{
    if (cap > (REAL)0) FX_SFX(fx_chunk_grad_body)(g, n, f, w, t, a, b, x, cap, 1);
    else FX_SFX(fx_chunk_grad_body)(g, n, f, w, t, a, b, x, (REAL)0, 0);
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
    double log_s;                    /* log sum_j exp(x_j - M) (relative to 0 where M is not finite);
                                        with weights b, log |sum_j b_j exp(x_j - M)| */
    double sgn;                      /* the sign of that sum (1 without weights) */
    int finite;                      /* M is finite */
} FX_SFX(fx_row);

/* log S of a row from its chunks' sums s[k] (relative to their shifts) and,
   for precise sums, their counts top[k] of entries equal to the shift (their
   weights, for weighted sums: then log |S| and row->sgn, S's sign). */
static FX_INLINE double FX_SFX(fx_row_log_s)(FX_SFX(fx_row) *row, const double *s,
                                          const double *top, int weighted)
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
    row->sgn = 1.0;
    if (weighted) return fx_log_abs_sum(ones, S, &row->sgn);
    /* precise: S holds every term but one exp(0) = 1, so log S = log1p(S) */
    return top && row->finite ? fx_log1p_d(S + (ones - 1.0)) : fx_log_d(S);
}

/* Fills row (shifts, max, log S) for x[0:C]; e (may be NULL) receives
   exp(x_j - the shift of its chunk); precise: see fx_chunk_sumexp.  b (may be
   NULL): logsumexp's weights, b[0:C]; weighted sums are always precise and
   store no exponentials.  cap > 0 (b NULL, not precise): of the soft-capped x. */
static inline void FX_SFX(fx_row_stats_of)(const REAL *x, const REAL *b, Py_ssize_t C,
                                           FX_SFX(fx_row) *row, REAL *e, int precise, REAL cap)
{
    double s[FX_MAX_CHUNKS], top[FX_MAX_CHUNKS];
    REAL M = -(REAL)INFINITY;
    row->K = fx_chunk_len(C);
    row->nk = C ? (C + row->K - 1) / row->K : 0;
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        Py_ssize_t len, off = fx_chunk_at(C, row->K, k, &len);
        REAL m = b ? FX_SFX(fx_chunk_max_w)(x + off, b + off, len)
                   : FX_SFX(fx_cap_max)(FX_SFX(fx_chunk_max)(x + off, len), cap);
        REAL sh = FX_SFX(fx_shift_of)(m);
        row->shift[k] = m == -(REAL)INFINITY ? -(REAL)INFINITY : sh;
        if (cap > (REAL)0)
            s[k] = FX_SFX(fx_chunk_sumexp_capped)(x + off, len, sh, e ? e + off : NULL, cap);
        else
            s[k] = FX_SFX(fx_chunk_sumexp)(x + off, b ? b + off : NULL, len, sh, e ? e + off : NULL,
                                           precise || b ? &top[k] : NULL);
        M = m > M ? m : M;
    }
    row->M = (double)M;
    row->finite = isfinite(M);
    row->log_s = FX_SFX(fx_row_log_s)(row, s, precise || b ? top : NULL, b != NULL);
}

/* With logsumexp's weights b (may be NULL). */
static inline void FX_SFX(fx_row_stats_w)(const REAL *x, const REAL *b, Py_ssize_t C,
                                          FX_SFX(fx_row) *row, REAL *e, int precise)
{
    FX_SFX(fx_row_stats_of)(x, b, C, row, e, precise, (REAL)0);
}

/* Without weights, soft-capped where cap > 0 (then not precise). */
static inline void FX_SFX(fx_row_stats)(const REAL *x, Py_ssize_t C, FX_SFX(fx_row) *row,
                                        REAL *e, int precise, REAL cap)
{
    FX_SFX(fx_row_stats_of)(x, NULL, C, row, e, precise, cap);
}

/* The row's weighted target mass relative to M: returns sum_j w_j q_j (x_j - M)
   and stores sum_j w_j q_j in *q, with q_j = a t_j + b (see fx_chunk_wq_dot). */
static inline double FX_SFX(fx_row_mass)(const FX_SFX(fx_row) *row, const REAL *x, Py_ssize_t C,
                                         const REAL *w, const REAL *t, double a, double b,
                                         double *q, REAL cap)
{
    double d = 0.0;
    *q = 0.0;
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        Py_ssize_t len, off = fx_chunk_at(C, row->K, k, &len);
        REAL sh = FX_SFX(fx_shift_of)(row->shift[k]);
        double qk;
        d += FX_SFX(fx_chunk_wq_dot)(x + off, w ? w + off : NULL, t ? t + off : NULL, a, b, len, sh, &qk,
                                     cap)
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

/* Lanes per group of fx_tile_sumexp_group: their partial sums stay in
   registers across the classes (a vector of floats in an AVX-512 build). */
#define FX_LANE_GROUP 16

/* sb[j] = sum_{c0 <= c < c1} exp(x[c * stride + j] - sh[j]) in double, the
   classes added in order, for the G lanes j at x (G <= FX_LANE_GROUP, a
   constant at each call; each lane's sum as the plain lanes' loop forms it:
   the same bits); e (may be NULL) receives the exponentials; soft-capped
   where capped. */
static FX_INLINE void FX_SFX(fx_tile_sumexp_group)(const REAL *restrict x, REAL *restrict e,
                                                  const REAL *restrict sh, Py_ssize_t c0,
                                                  Py_ssize_t c1, Py_ssize_t stride,
                                                  double *restrict sb, REAL cap, const int capped,
                                                  const int G)
{
    const REAL inv_cap = capped ? (REAL)1 / cap : (REAL)0;
    double acc[FX_LANE_GROUP];
    REAL shl[FX_LANE_GROUP];
    int j;
    for (j = 0; j < G; j++) { acc[j] = 0.0; shl[j] = sh[j]; }
    for (Py_ssize_t c = c0; c < c1; c++) {
        const REAL *xc = x + c * stride;
        if (e) {
            REAL *ec = e + c * stride;
            for (j = 0; j < G; j++) {
                REAL v = FX_SFX(fx_exp)(FX_LOGIT(xc[j]) - shl[j]);
                ec[j] = v;
                acc[j] += (double)v;
            }
        } else {
            for (j = 0; j < G; j++) acc[j] += (double)FX_SFX(fx_exp)(FX_LOGIT(xc[j]) - shl[j]);
        }
    }
    for (j = 0; j < G; j++) sb[j] = acc[j];
}

/* Per lane l: max m[l], shift sh[l] (fx_shift_of) and log_s[l] =
   log sum_c exp(x[c * stride + l] - sh[l]); e (may be NULL, laid out like x)
   receives the exponentials.  The sum over classes adds partial sums of
   FX_CBLOCK classes (C terms added one by one would round like C terms: 1e-12
   relative at C = 1e5 in float64).  precise: see fx_chunk_sumexp.  b (may be
   NULL, laid out like x): logsumexp's weights, as in fx_row_stats_w; then
   log_s[l] = log |sum_c b_c exp(..)| and sgn[l] its sign.  capped (b NULL, not
   precise): of the soft-capped logits (m and sh too). */
static FX_INLINE void FX_SFX(fx_tile_stats_body)(const REAL *restrict x, const REAL *restrict b,
                                              Py_ssize_t T, Py_ssize_t C, Py_ssize_t stride,
                                              REAL *restrict m, REAL *restrict sh,
                                              double *restrict log_s, double *restrict sgn,
                                              REAL *restrict e, int precise, REAL cap,
                                              const int capped)
{
    const REAL inv_cap = capped ? (REAL)1 / cap : (REAL)0;
    double s[FX_TILE], top[FX_TILE];
    Py_ssize_t c;
    int l;
    for (l = 0; l < T; l++) { m[l] = -(REAL)INFINITY; s[l] = 0.0; top[l] = 0.0; }
    for (c = 0; c < C; c++) {
        const REAL *xc = x + c * stride;      /* (x[c * stride + l] would not vectorize under -fwrapv) */
        const REAL *bc = b ? b + c * stride : NULL;
        if (bc)
            for (l = 0; l < T; l++) m[l] = bc[l] != (REAL)0 && xc[l] > m[l] ? xc[l] : m[l];
        else
            for (l = 0; l < T; l++) m[l] = xc[l] > m[l] ? xc[l] : m[l];
    }
    if (capped)
        for (l = 0; l < T; l++) m[l] = FX_LOGIT(m[l]);
    for (l = 0; l < T; l++) sh[l] = FX_SFX(fx_shift_of)(m[l]);
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
        Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
        double sb[FX_TILE];
        for (l = 0; l < T; l++) sb[l] = 0.0;
        if (!b && !precise) {          /* the common sums: lanes in groups, in registers */
            int l0 = 0;
            for (; l0 + FX_LANE_GROUP <= T; l0 += FX_LANE_GROUP)
                FX_SFX(fx_tile_sumexp_group)(x + l0, e ? e + l0 : NULL, sh + l0, c0, c1, stride,
                                             sb + l0, cap, capped, FX_LANE_GROUP);
            for (; l0 < T; l0++)       /* the last few lanes of the array, one at a time */
                FX_SFX(fx_tile_sumexp_group)(x + l0, e ? e + l0 : NULL, sh + l0, c0, c1, stride,
                                             sb + l0, cap, capped, 1);
            for (l = 0; l < T; l++) s[l] += sb[l];
            continue;
        }
        for (c = c0; c < c1; c++) {
            const REAL *xc = x + c * stride;
            if (e) {
                REAL *ec = e + c * stride;
                for (l = 0; l < T; l++) { REAL v = FX_SFX(fx_exp)(FX_LOGIT(xc[l]) - sh[l]); ec[l] = v; sb[l] += (double)v; }
            } else if (b) {                   /* weighted: always precise */
                const REAL *bc = b + c * stride;
                for (l = 0; l < T; l++) {
                    int t_ = xc[l] == sh[l];
                    REAL v = FX_SFX(fx_exp)(xc[l] - sh[l]);
                    double wv = bc[l] != (REAL)0 ? (double)bc[l] * (double)v : 0.0;
                    sb[l] += t_ ? 0.0 : wv;
                    top[l] += t_ ? wv : 0.0;
                }
            } else if (precise) {
                for (l = 0; l < T; l++) {
                    int t_ = xc[l] == sh[l];
                    REAL v = FX_SFX(fx_exp)(xc[l] - sh[l]);
                    sb[l] += t_ ? 0.0 : (double)v;
                    top[l] += t_ ? 1.0 : 0.0;
                }
            } else {
                for (l = 0; l < T; l++) sb[l] += (double)FX_SFX(fx_exp)(FX_LOGIT(xc[l]) - sh[l]);
            }
        }
        for (l = 0; l < T; l++) s[l] += sb[l];
    }
    /* precise: s holds every term but one exp(0) = 1 where the max is finite
       (elsewhere s + top is 0, inf or NaN, and so is log1p(s + top - 1)) */
    if (b) {       /* top: the weights at the shift (at 0 where the max is not finite) */
        for (l = 0; l < T; l++) log_s[l] = fx_log_abs_sum(top[l], s[l], &sgn[l]);
        return;
    }
    for (l = 0; l < T; l++)
        log_s[l] = precise ? fx_log1p_d(s[l] + (top[l] - 1.0)) : fx_log_d(s[l]);
}

/* With logsumexp's weights b (may be NULL). */
static FX_INLINE void FX_SFX(fx_tile_stats_w)(const REAL *restrict x, const REAL *restrict b,
                                           Py_ssize_t T, Py_ssize_t C, Py_ssize_t stride,
                                           REAL *restrict m, REAL *restrict sh,
                                           double *restrict log_s, double *restrict sgn,
                                           REAL *restrict e, int precise)
{
    FX_SFX(fx_tile_stats_body)(x, b, T, C, stride, m, sh, log_s, sgn, e, precise, (REAL)0, 0);
}

/* Without weights, soft-capped where cap > 0 (then not precise). */
static FX_INLINE void FX_SFX(fx_tile_stats)(const REAL *restrict x, Py_ssize_t T, Py_ssize_t C,
                                         Py_ssize_t stride, REAL *restrict m, REAL *restrict sh,
                                         double *restrict log_s, REAL *restrict e, int precise,
                                         REAL cap)
{
    if (cap > (REAL)0)
        FX_SFX(fx_tile_stats_body)(x, NULL, T, C, stride, m, sh, log_s, NULL, e, 0, cap, 1);
    else
        FX_SFX(fx_tile_stats_body)(x, NULL, T, C, stride, m, sh, log_s, NULL, e, precise, (REAL)0, 0);
}

/* Per lane: the weighted target mass relative to sh, as fx_chunk_wq_dot:
   d[l] = sum_c w_c q (x - sh[l]) and q_out[l] = sum_c w_c q, q = a t + b, in
   partial sums of FX_CBLOCK classes; x soft-capped where cap > 0. */
static FX_INLINE void FX_SFX(fx_tile_mass_body)(const REAL *x, const REAL *t, const REAL *w, Py_ssize_t T,
                                             Py_ssize_t C, Py_ssize_t stride, const REAL *sh,
                                             double a, double b, double *q_out, double *d,
                                             REAL cap, const int capped)
{
    const REAL inv_cap = capped ? (REAL)1 / cap : (REAL)0;
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
                Db[l] += wc * q * (double)(FX_LOGIT(xc[l]) - sh[l]);
            }
        }
        for (l = 0; l < T; l++) { q_out[l] += Qb[l]; d[l] += Db[l]; }
    }
}
static FX_INLINE void FX_SFX(fx_tile_mass)(const REAL *x, const REAL *t, const REAL *w, Py_ssize_t T,
                                        Py_ssize_t C, Py_ssize_t stride, const REAL *sh,
                                        double a, double b, double *q_out, double *d, REAL cap)
{
    if (cap > (REAL)0) FX_SFX(fx_tile_mass_body)(x, t, w, T, C, stride, sh, a, b, q_out, d, cap, 1);
    else FX_SFX(fx_tile_mass_body)(x, t, w, T, C, stride, sh, a, b, q_out, d, (REAL)0, 0);
}

/* Copies a (rows x cols) block with row stride ld_src into dst with row stride
   ld_dst, transposed: dst[c * ld_dst + r] = src[r * ld_src + c]. */
static FX_NOINLINE void FX_SFX(fx_transpose)(const REAL *restrict src, Py_ssize_t rows, Py_ssize_t cols,
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
