/*
 * Template of the multi-class kernels; fx_xent.h includes it once per dtype
 * with REAL and FX_SFX defined.  See fx_xent.h for the design.
 */

/* ------------------------------------------------------------------------ */
/* Building blocks over one contiguous chunk (a row, or part of a long row)  */
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

/* sum_j exp(x[j] - shift), accumulated in double in FX_LANES partial sums that
   are added in a fixed order.  With e_out, exp(x[j] - shift) is stored too. */
static inline double FX_SFX(fx_chunk_sumexp)(const REAL *restrict x, Py_ssize_t n, REAL shift,
                                              REAL *restrict e_out)
{
    double acc[FX_LANES];
    for (int l = 0; l < FX_LANES; l++) acc[l] = 0.0;
    Py_ssize_t j = 0;
    if (e_out) {
        for (; j + FX_LANES <= n; j += FX_LANES)
            for (int l = 0; l < FX_LANES; l++) {
                REAL e = FX_SFX(fx_exp)(x[j + l] - shift);
                e_out[j + l] = e;
                acc[l] += (double)e;
            }
        for (; j < n; j++) { REAL e = FX_SFX(fx_exp)(x[j] - shift); e_out[j] = e; acc[0] += (double)e; }
    } else {
        for (; j + FX_LANES <= n; j += FX_LANES)
            for (int l = 0; l < FX_LANES; l++) acc[l] += (double)FX_SFX(fx_exp)(x[j + l] - shift);
        for (; j < n; j++) acc[0] += (double)FX_SFX(fx_exp)(x[j] - shift);
    }
    double s = 0.0;
    for (int l = 0; l < FX_LANES; l++) s += acc[l];
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
    for (int l = 0; l < FX_LANES; l++) { acc[l] = 0.0; accq[l] = 0.0; }
    Py_ssize_t j = 0;
#define FX_WQ_TERM(idx, l)                                                     \
    {                                                                          \
        double q = t ? a * (double)t[idx] + b : b;                             \
        double wq = w ? (double)w[idx] * q : q;                                \
        accq[l] += wq;                                                         \
        acc[l] += wq * (double)(x[idx] - shift);                              \
    }
    for (; j + FX_LANES <= n; j += FX_LANES)
        for (int l = 0; l < FX_LANES; l++) FX_WQ_TERM(j + l, l)
    for (; j < n; j++) FX_WQ_TERM(j, 0)
#undef FX_WQ_TERM
    double s = 0.0, sq = 0.0;
    for (int l = 0; l < FX_LANES; l++) { s += acc[l]; sq += accq[l]; }
    *wq_sum = sq;
    return s;
}

/* g[j] = g[j] * f - w_j (a t_j + b): turns stored exponentials into the gradient
   (t NULL: q_j = b; w NULL: w_j = 1). */
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

/* ------------------------------------------------------------------------ */
/* Rows with the class axis contiguous                                       */
/* ------------------------------------------------------------------------ */

/* Shift of a chunk for the exponentials: its max, or 0 when the max is not
   finite (all -inf, or +inf present), so that exp never sees inf - inf. */
static inline REAL FX_SFX(fx_shift_of)(REAL m) { return isfinite(m) ? m : (REAL)0; }

/* The statistics of one row in chunks: lse relative to the row max M, i.e.
   returns log(sum_j exp(x_j - M)) and stores M; per-chunk shifts in shifts[].
   e (may be NULL) receives exp(x_j - shift_of_its_chunk). */
static inline double FX_SFX(fx_row_stats)(const REAL *x, Py_ssize_t C, Py_ssize_t K,
                                          REAL *e, REAL *shifts, double *M_out,
                                          int *all_finite)
{
    Py_ssize_t nk = C ? (C + K - 1) / K : 0;
    double sk[FX_MAX_CHUNKS];
    REAL M = -(REAL)INFINITY;
    for (Py_ssize_t k = 0; k < nk; k++) {
        Py_ssize_t off = k * K, len = C - off < K ? C - off : K;
        REAL m = FX_SFX(fx_chunk_max)(x + off, len);
        REAL sh = FX_SFX(fx_shift_of)(m);
        shifts[k] = m == -(REAL)INFINITY ? -(REAL)INFINITY : sh;
        sk[k] = FX_SFX(fx_chunk_sumexp)(x + off, len, sh, e ? e + off : NULL);
        M = m > M ? m : M;
    }
    *M_out = (double)M;
    *all_finite = isfinite(M);
    double S = 0.0;
    if (*all_finite) {
        for (Py_ssize_t k = 0; k < nk; k++)
            /* a chunk of -inf only adds 0 (its sumexp may still be NaN: NaN counts) */
            if (shifts[k] != -(REAL)INFINITY || sk[k] != sk[k])
                S += sk[k] * (shifts[k] == -(REAL)INFINITY ? 1.0 : FX_SFX_D(fx_exp)((double)shifts[k] - (double)M));
    } else {
        for (Py_ssize_t k = 0; k < nk; k++) S += sk[k];   /* relative to shift 0 */
    }
    return FX_SFX_D(fx_log)(S);
}

/* ------------------------------------------------------------------------ */
/* Class axis with a stride (inner > 1): lanes are sample positions          */
/* ------------------------------------------------------------------------ */

/* The statistics of a tile, per lane l: max m[l], shift sh[l] (fx_shift_of)
   and s[l] = sum_c exp(x[c * inner + l] - sh[l]); e (may be NULL, laid out like
   x) receives the exponentials. */
static inline void FX_SFX(fx_tile_stats)(const REAL *restrict x, Py_ssize_t T, Py_ssize_t C,
                                         Py_ssize_t inner, REAL *restrict m, REAL *restrict sh,
                                         double *restrict s, REAL *restrict e)
{
    Py_ssize_t c;
    int l;
    for (l = 0; l < T; l++) { m[l] = -(REAL)INFINITY; s[l] = 0.0; }
    for (c = 0; c < C; c++) {
        const REAL *xc = x + c * inner;
        for (l = 0; l < T; l++) m[l] = xc[l] > m[l] ? xc[l] : m[l];
    }
    for (l = 0; l < T; l++) sh[l] = FX_SFX(fx_shift_of)(m[l]);
    /* partial sums of FX_CBLOCK classes: C terms added one by one would round
       like C terms (1e-12 relative at C = 1e5 in float64) */
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
        Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
        double sb[FX_TILE];
        for (l = 0; l < T; l++) sb[l] = 0.0;
        for (c = c0; c < c1; c++) {
            const REAL *xc = x + c * inner;
            if (e) {
                REAL *ec = e + c * inner;
                for (l = 0; l < T; l++) { REAL v = FX_SFX(fx_exp)(xc[l] - sh[l]); ec[l] = v; sb[l] += (double)v; }
            } else {
                for (l = 0; l < T; l++) sb[l] += (double)FX_SFX(fx_exp)(xc[l] - sh[l]);
            }
        }
        for (l = 0; l < T; l++) s[l] += sb[l];
    }
}

/*
 * Cross-entropy of one tile: positions [0, T) (T <= FX_TILE) of one outer index,
 * class c of lane l at x[c * inner + l].  y, loss_out, gout are indexed by lane;
 * t and g like x.  Same arguments and result as fx_xent_rows otherwise.
 * Every loop runs across lanes, so all of it vectorizes, the per-lane log and
 * exp included.
 */
static double FX_SFX(fx_xent_tile)(const REAL *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                                   const int64_t *y, int64_t ignore_index,
                                   const REAL *t, const REAL *w, double w_sum, double eps,
                                   REAL *loss_out, REAL *g, const double *gout, double gscale)
{
    REAL m[FX_TILE], sh[FX_TILE], f[FX_TILE], a[FX_TILE], b[FX_TILE], keep[FX_TILE];
    double s[FX_TILE], Q[FX_TILE], D[FX_TILE], wy[FX_TILE], xy[FX_TILE], loss[FX_TILE];
    const double b_smooth = eps / (double)C;
    const int by_index = y != NULL;
    Py_ssize_t c;
    int l;
    for (l = 0; l < T; l++) { Q[l] = 0.0; D[l] = 0.0; }
    FX_SFX(fx_tile_stats)(x, T, C, inner, m, sh, s, g);
    /* target mass: smoothing or probabilities need a pass over the classes */
    if (!by_index || eps > 0.0) {
        double qa = by_index ? 0.0 : 1.0 - eps, qb = by_index ? 1.0 : b_smooth;
        for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {     /* partial sums, as above */
            Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
            double Qb[FX_TILE], Db[FX_TILE];
            for (l = 0; l < T; l++) { Qb[l] = 0.0; Db[l] = 0.0; }
            for (c = c0; c < c1; c++) {
                const REAL *xc = x + c * inner;
                const REAL *tc = t ? t + c * inner : NULL;
                double wc = w ? (double)w[c] : 1.0;
                for (l = 0; l < T; l++) {
                    double q = tc ? qa * (double)tc[l] + qb : qb;
                    Qb[l] += wc * q;
                    Db[l] += wc * q * (double)(xc[l] - sh[l]);
                }
            }
            for (l = 0; l < T; l++) { Q[l] += Qb[l]; D[l] += Db[l]; }
        }
    }
    /* the target class of each lane (a gather: scalar, T per tile) */
    for (l = 0; l < T; l++) {
        int64_t v = by_index ? y[l] : 0;
        int kept = !by_index || v != ignore_index;
        keep[l] = (REAL)kept;
        wy[l] = !kept ? 0.0 : (w && by_index ? (double)w[v] : 1.0);
        xy[l] = kept && by_index ? (double)x[v * inner + l] : 0.0;
    }
    /* per-lane loss and gradient factors: loss = Q log S - D (see fx_xent_rows) */
    const double smooth_Q = eps > 0.0 ? b_smooth * w_sum : 0.0;
    for (l = 0; l < T; l++) {
        double logS = FX_SFX_D(fx_log)(s[l]);
        int finite = m[l] > -(REAL)INFINITY && m[l] < (REAL)INFINITY;
        double Ql = by_index ? (1.0 - eps) * wy[l] + smooth_Q : Q[l];
        double Dl = by_index ? (1.0 - eps) * wy[l] * (xy[l] - (double)m[l]) + b_smooth * D[l] : D[l];
        double lse_rel = finite ? logS : NAN;      /* lse - max, see fx_xent_rows */
        /* an ignored lane has a zero upstream gradient; as in PyTorch, its
           gradient is still NaN where its softmax is (NaN or +inf logits) */
        double gs = keep[l] != (REAL)0 ? (gout ? gout[l] * gscale : gscale) : 0.0;
        double li = finite ? Ql * logS - Dl : NAN;
        loss[l] = keep[l] != (REAL)0 && C > 0 ? li : 0.0;   /* C == 0: an empty sum */
        f[l] = (REAL)(gs * Ql * FX_SFX_D(fx_exp)(-lse_rel));   /* sh == m where finite */
        a[l] = (REAL)(by_index ? gs * (1.0 - eps) * wy[l] : gs * (1.0 - eps));
        b[l] = (REAL)(gs * b_smooth);
    }
    double total = 0.0;
    for (l = 0; l < T; l++) total += loss[l];
    if (loss_out)
        for (l = 0; l < T; l++) loss_out[l] = (REAL)loss[l];
    if (g) {
        for (c = 0; c < C; c++) {
            REAL *gc = g + c * inner;
            const REAL *tc = t ? t + c * inner : NULL;
            REAL wc = w ? w[c] : (REAL)1;
            if (tc)
                for (l = 0; l < T; l++) gc[l] = gc[l] * f[l] - wc * (a[l] * tc[l] + b[l]);
            else
                for (l = 0; l < T; l++) gc[l] = gc[l] * f[l] - wc * b[l];
        }
        if (by_index)
            for (l = 0; l < T; l++)
                if (keep[l] != (REAL)0) g[y[l] * inner + l] -= a[l];
    }
    return total;
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

/* Rows of few classes (C <= FX_SMALL_C): a row is too short to vectorize along,
   so FX_TILE rows at a time are transposed into a small buffer (cache only) and
   done by fx_xent_tile with one lane per row. */
static double FX_SFX(fx_xent_rows_small)(const REAL *x, Py_ssize_t n_rows, Py_ssize_t C,
                                         const int64_t *y, int64_t ignore_index,
                                         const REAL *t, const REAL *w, double w_sum, double eps,
                                         REAL *loss_out, REAL *g, const double *gout, double gscale)
{
    REAL xt[FX_SMALL_C * FX_TILE], gt[FX_SMALL_C * FX_TILE], tt[FX_SMALL_C * FX_TILE];
    double total = 0.0;
    for (Py_ssize_t r0 = 0; r0 < n_rows; r0 += FX_TILE) {
        Py_ssize_t T = n_rows - r0 < FX_TILE ? n_rows - r0 : FX_TILE;
        FX_SFX(fx_transpose)(x + r0 * C, T, C, C, xt, FX_TILE);
        if (t) FX_SFX(fx_transpose)(t + r0 * C, T, C, C, tt, FX_TILE);
        total += FX_SFX(fx_xent_tile)(xt, T, C, FX_TILE, y ? y + r0 : NULL, ignore_index,
                                      t ? tt : NULL, w, w_sum, eps,
                                      loss_out ? loss_out + r0 : NULL, g ? gt : NULL,
                                      gout ? gout + r0 : NULL, gscale);
        if (g) FX_SFX(fx_transpose)(gt, C, T, FX_TILE, g + r0 * C, C);
    }
    return total;
}

/*
 * Cross-entropy of rows [0, n_rows) of a block; classes contiguous.
 * y: class index per row (NULL: probability targets t, rows like x);
 * rows with y == ignore_index give 0 loss and 0 gradient.
 * w: class weights or NULL; w_sum: sum of w (C without weights); eps: smoothing.
 * loss_out: per-row loss or NULL.  g: gradient rows or NULL; the gradient of a
 * row is scaled by gout[row] * gscale (gout NULL: gscale).
 * Returns the sum of the block's row losses, in row order, in double.
 */
static double FX_SFX(fx_xent_rows)(const REAL *x, Py_ssize_t n_rows, Py_ssize_t C,
                                   const int64_t *y, int64_t ignore_index,
                                   const REAL *t, const REAL *w, double w_sum, double eps,
                                   REAL *loss_out, REAL *g, const double *gout, double gscale)
{
    if (C <= FX_SMALL_C)
        return FX_SFX(fx_xent_rows_small)(x, n_rows, C, y, ignore_index, t, w, w_sum, eps,
                                          loss_out, g, gout, gscale);
    Py_ssize_t K = fx_chunk_len(C);
    Py_ssize_t nk = (C + K - 1) / K;
    REAL shifts[FX_MAX_CHUNKS];
    double total = 0.0;
    double b_smooth = eps / (double)C;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        const REAL *xr = x + r * C;
        REAL *gr = g ? g + r * C : NULL;
        const REAL *tr = t ? t + r * C : NULL;
        int64_t yr = y ? y[r] : -1;
        if (y && yr == ignore_index) {
            if (loss_out) loss_out[r] = 0;
            if (gr) {
                /* a zero upstream gradient times the row's softmax: 0, or NaN
                   throughout where the softmax is NaN, as in PyTorch */
                REAL v = FX_SFX(fx_softmax_is_nan)(xr, C) ? (REAL)NAN : (REAL)0;
                for (Py_ssize_t j = 0; j < C; j++) gr[j] = v;
            }
            continue;
        }
        double M;
        int finite;
        double logS = FX_SFX(fx_row_stats)(xr, C, K, gr, shifts, &M, &finite);
        /* lse - M, NaN when the max is not finite (PyTorch: such a row is NaN).
           Kept relative to M: M + logS would lose logS to rounding when |M| is
           large, and p = exp(x - M - logS) with it. */
        double lse_rel = finite ? logS : NAN;
        /* Q = sum_c w_c q_c and D = sum_c w_c q_c (x_c - M): loss = Q log S - D */
        double Q, D, wy = 0.0;
        if (y) {
            wy = w ? (double)w[yr] : 1.0;
            Q = (1.0 - eps) * wy;
            D = (1.0 - eps) * wy * ((double)xr[yr] - M);
            if (eps > 0.0) {
                double dsum = 0.0, qsum;
                for (Py_ssize_t k = 0; k < nk; k++) {
                    Py_ssize_t off = k * K, len = C - off < K ? C - off : K;
                    REAL sh = FX_SFX(fx_shift_of)(shifts[k]);
                    dsum += FX_SFX(fx_chunk_wq_dot)(xr + off, w ? w + off : NULL, NULL, 0.0, 1.0, len, sh, &qsum)
                            + qsum * ((double)sh - M);
                }
                Q += b_smooth * w_sum;
                D += b_smooth * dsum;
            }
        } else {
            Q = 0.0;
            D = 0.0;
            for (Py_ssize_t k = 0; k < nk; k++) {
                Py_ssize_t off = k * K, len = C - off < K ? C - off : K;
                REAL sh = FX_SFX(fx_shift_of)(shifts[k]);
                double qsum;
                D += FX_SFX(fx_chunk_wq_dot)(xr + off, w ? w + off : NULL, tr + off, 1.0 - eps, b_smooth,
                                             len, sh, &qsum) + qsum * ((double)sh - M);
                Q += qsum;
            }
        }
        double loss = finite ? Q * logS - D : NAN;
        if (loss_out) loss_out[r] = (REAL)loss;
        total += loss;
        if (gr) {
            double gs = gout ? gout[r] * gscale : gscale;
            REAL a = (REAL)(gs * (1.0 - eps)), b = (REAL)(gs * b_smooth);
            for (Py_ssize_t k = 0; k < nk; k++) {
                Py_ssize_t off = k * K, len = C - off < K ? C - off : K;
                /* p_j = e_j exp(shift_k - M - logS); a chunk of -inf has p = 0 */
                REAL f = shifts[k] == -(REAL)INFINITY && finite
                             ? (REAL)0 : (REAL)(gs * Q * FX_SFX_D(fx_exp)(((double)shifts[k] - M) - lse_rel));
                if (y)
                    FX_SFX(fx_chunk_grad)(gr + off, len, f, w ? w + off : NULL, NULL, 0, b);
                else
                    FX_SFX(fx_chunk_grad)(gr + off, len, f, w ? w + off : NULL, tr + off, a, b);
            }
            if (y) gr[yr] -= (REAL)(gs * (1.0 - eps) * wy);
        }
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* log-sum-exp, softmax, log_softmax (scipy.special semantics)              */
/* ------------------------------------------------------------------------ */

/* Element j of a row whose lse is not finite (-inf: every entry -inf; +inf; NaN),
   as scipy.special computes it: softmax is NaN throughout, log_softmax x - lse. */
static inline REAL FX_SFX(fx_lse_elem)(REAL xj, double lse, int mode)
{
    return mode == FX_SOFTMAX ? (REAL)NAN : (REAL)((double)xj - lse);
}

/* One tile of positions [0, T) with class stride inner; lse_out by lane. */
static void FX_SFX(fx_lse_tile)(const REAL *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                                int mode, REAL *lse_out, REAL *out)
{
    REAL m[FX_TILE], sh[FX_TILE], f[FX_TILE];
    double s[FX_TILE], lse[FX_TILE], logs[FX_TILE];
    Py_ssize_t c;
    int l, any_odd = 0;
    FX_SFX(fx_tile_stats)(x, T, C, inner, m, sh, s, mode == FX_SOFTMAX ? out : NULL);
    for (l = 0; l < T; l++) {
        logs[l] = FX_SFX_D(fx_log)(s[l]);            /* lse relative to the shift */
        lse[l] = (double)sh[l] + logs[l];
        f[l] = (REAL)FX_SFX_D(fx_exp)(-logs[l]);
    }
    for (l = 0; l < T; l++) any_odd |= !(lse[l] > -INFINITY && lse[l] < INFINITY);
    if (lse_out)
        for (l = 0; l < T; l++) lse_out[l] = (REAL)lse[l];
    if (!out) return;
    for (c = 0; c < C; c++) {
        const REAL *xc = x + c * inner;
        REAL *oc = out + c * inner;
        if (any_odd)
            for (l = 0; l < T; l++)
                oc[l] = isfinite(lse[l]) ? (mode == FX_SOFTMAX ? oc[l] * f[l] : (REAL)(((double)xc[l] - sh[l]) - logs[l]))
                                         : FX_SFX(fx_lse_elem)(xc[l], lse[l], mode);
        else if (mode == FX_SOFTMAX)
            for (l = 0; l < T; l++) oc[l] *= f[l];
        else
            for (l = 0; l < T; l++) oc[l] = (REAL)(((double)xc[l] - sh[l]) - logs[l]);
    }
}

/* Rows [0, n_rows): lse_out[r] (may be NULL) and, for FX_SOFTMAX or
   FX_LOG_SOFTMAX, out (rows like x). */
static void FX_SFX(fx_lse_rows)(const REAL *x, Py_ssize_t n_rows, Py_ssize_t C, int mode,
                                REAL *lse_out, REAL *out)
{
    if (C <= FX_SMALL_C && C > 0) {      /* few classes: FX_TILE rows at a time, transposed */
        REAL xt[FX_SMALL_C * FX_TILE], ot[FX_SMALL_C * FX_TILE];
        for (Py_ssize_t r0 = 0; r0 < n_rows; r0 += FX_TILE) {
            Py_ssize_t T = n_rows - r0 < FX_TILE ? n_rows - r0 : FX_TILE;
            FX_SFX(fx_transpose)(x + r0 * C, T, C, C, xt, FX_TILE);
            FX_SFX(fx_lse_tile)(xt, T, C, FX_TILE, mode, lse_out ? lse_out + r0 : NULL, out ? ot : NULL);
            if (out) FX_SFX(fx_transpose)(ot, C, T, FX_TILE, out + r0 * C, C);
        }
        return;
    }
    Py_ssize_t K = fx_chunk_len(C);
    Py_ssize_t nk = C ? (C + K - 1) / K : 0;
    REAL shifts[FX_MAX_CHUNKS];
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        const REAL *xr = x + r * C;
        REAL *orow = out ? out + r * C : NULL;
        double M;
        int finite;
        double logS = FX_SFX(fx_row_stats)(xr, C, K, mode == FX_SOFTMAX ? orow : NULL, shifts, &M, &finite);
        /* max not finite: S is then only 0, inf or NaN, and log(S) is the scipy answer */
        double lse = finite ? M + logS : logS;
        if (lse_out) lse_out[r] = (REAL)lse;
        /* softmax and log_softmax relative to M: (x - M) - logS keeps full
           precision where M + logS would round logS away (|M| large) */
        if (!orow) continue;
        if (!isfinite(lse)) {
            for (Py_ssize_t j = 0; j < C; j++) orow[j] = FX_SFX(fx_lse_elem)(xr[j], lse, mode);
        } else if (mode == FX_SOFTMAX) {
            for (Py_ssize_t k = 0; k < nk; k++) {
                Py_ssize_t off = k * K, len = C - off < K ? C - off : K;
                REAL f = shifts[k] == -(REAL)INFINITY ? (REAL)0
                                                      : (REAL)FX_SFX_D(fx_exp)(((double)shifts[k] - M) - logS);
                FX_SFX(fx_chunk_grad)(orow + off, len, f, NULL, NULL, 0, 0);
            }
        } else {
            for (Py_ssize_t j = 0; j < C; j++) orow[j] = (REAL)(((double)xr[j] - M) - logS);
        }
    }
}

