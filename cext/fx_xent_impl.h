/*
 * Template of the multi-class kernels; fx_xent.h includes it once per dtype
 * with REAL and FX_SFX defined.  See fx_xent.h for the design.
 */

/* ------------------------------------------------------------------------ */
/* Building blocks over one contiguous chunk (a row, or part of a long row)  */
/* ------------------------------------------------------------------------ */

/* max of x[0:n].  NaN is skipped here; it reaches the result through the sum of
   exponentials, as in PyTorch's log_softmax. */
static inline REAL FX_SFX(fx_chunk_max)(const REAL *x, Py_ssize_t n)
{
    REAL acc[FX_LANES];
    for (int l = 0; l < FX_LANES; l++) acc[l] = -(REAL)INFINITY;
    Py_ssize_t j = 0;
    for (; j + FX_LANES <= n; j += FX_LANES)
        for (int l = 0; l < FX_LANES; l++) {
            REAL v = x[j + l];
            acc[l] = v > acc[l] ? v : acc[l];
        }
    for (; j < n; j++) acc[0] = x[j] > acc[0] ? x[j] : acc[0];
    REAL m = acc[0];
    for (int l = 1; l < FX_LANES; l++) m = acc[l] > m ? acc[l] : m;
    return m;
}

/* sum_j exp(x[j] - shift), accumulated in double in FX_LANES partial sums that
   are added in a fixed order.  With e_out, exp(x[j] - shift) is stored too. */
static inline double FX_SFX(fx_chunk_sumexp)(const REAL *x, Py_ssize_t n, REAL shift, REAL *e_out)
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
static inline void FX_SFX(fx_chunk_grad)(REAL *g, Py_ssize_t n, REAL f,
                                         const REAL *w, const REAL *t, REAL a, REAL b)
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
                S += sk[k] * (shifts[k] == -(REAL)INFINITY ? 1.0 : exp((double)shifts[k] - (double)M));
    } else {
        for (Py_ssize_t k = 0; k < nk; k++) S += sk[k];   /* relative to shift 0 */
    }
    return log(S);
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
    Py_ssize_t K = fx_chunk_len(C);
    Py_ssize_t nk = C ? (C + K - 1) / K : 0;
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
            if (gr) memset(gr, 0, (size_t)C * sizeof(REAL));
            continue;
        }
        double M;
        int finite;
        double logS = FX_SFX(fx_row_stats)(xr, C, K, gr, shifts, &M, &finite);
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
        double loss = finite ? Q * logS - D : NAN;   /* PyTorch: a row whose max is not finite is NaN */
        if (loss_out) loss_out[r] = (REAL)loss;
        total += loss;
        if (gr) {
            double gs = gout ? gout[r] * gscale : gscale;
            REAL a = (REAL)(gs * (1.0 - eps)), b = (REAL)(gs * b_smooth);
            for (Py_ssize_t k = 0; k < nk; k++) {
                Py_ssize_t off = k * K, len = C - off < K ? C - off : K;
                /* p_j = e_j exp((shift_k - M) - logS), never through lse = M + logS:
                   that sum loses logS to rounding when |M| is large.  A chunk of -inf
                   has p = 0; a row whose max is not finite is NaN. */
                REAL f = !finite ? (REAL)NAN
                         : shifts[k] == -(REAL)INFINITY ? (REAL)0
                         : (REAL)(gs * Q * exp(((double)shifts[k] - M) - logS));
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
/* Class axis with a stride (inner > 1): lanes are sample positions          */
/* ------------------------------------------------------------------------ */

/*
 * Cross-entropy of one tile: positions [0, T) (T <= FX_TILE) of one outer index,
 * class c of lane l at x[c * inner + l].  y, loss_out, gout are indexed by lane;
 * t and g like x.  Same arguments and result as fx_xent_rows otherwise.
 */
static double FX_SFX(fx_xent_tile)(const REAL *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                                   const int64_t *y, int64_t ignore_index,
                                   const REAL *t, const REAL *w, double w_sum, double eps,
                                   REAL *loss_out, REAL *g, const double *gout, double gscale)
{
    REAL m[FX_TILE], sh[FX_TILE], f[FX_TILE], a[FX_TILE], b[FX_TILE], keep[FX_TILE];
    double s[FX_TILE], Q[FX_TILE], D[FX_TILE];
    double b_smooth = eps / (double)C;
    Py_ssize_t c;
    int l;
    for (l = 0; l < T; l++) { m[l] = -(REAL)INFINITY; s[l] = 0.0; Q[l] = 0.0; D[l] = 0.0; }
    for (c = 0; c < C; c++) {
        const REAL *xc = x + c * inner;
        for (l = 0; l < T; l++) m[l] = xc[l] > m[l] ? xc[l] : m[l];
    }
    for (l = 0; l < T; l++) sh[l] = FX_SFX(fx_shift_of)(m[l]);
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
        Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
        double sb[FX_TILE];
        for (l = 0; l < T; l++) sb[l] = 0.0;
        for (c = c0; c < c1; c++) {
            const REAL *xc = x + c * inner;
            if (g) {
                REAL *gc = g + c * inner;
                for (l = 0; l < T; l++) { REAL e = FX_SFX(fx_exp)(xc[l] - sh[l]); gc[l] = e; sb[l] += (double)e; }
            } else {
                for (l = 0; l < T; l++) sb[l] += (double)FX_SFX(fx_exp)(xc[l] - sh[l]);
            }
        }
        for (l = 0; l < T; l++) s[l] += sb[l];
    }
    /* target mass: smoothing or probabilities need a pass over the classes */
    if (!y || eps > 0.0) {
        double qa = y ? 0.0 : 1.0 - eps, qb = y ? 1.0 : b_smooth;
        for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
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
    double total = 0.0;
    for (l = 0; l < T; l++) {
        int finite = isfinite(m[l]);
        double logS = log(s[l]);
        double gs = gout ? gout[l] * gscale : gscale;
        double loss, Ql;
        keep[l] = 1;
        if (y) {
            if (y[l] == ignore_index) {
                keep[l] = 0; f[l] = 0; a[l] = 0; b[l] = 0;
                if (loss_out) loss_out[l] = 0;
                continue;
            }
            double wy = w ? (double)w[y[l]] : 1.0;
            double xy = (double)x[y[l] * inner + l];
            Ql = (1.0 - eps) * wy + (eps > 0.0 ? b_smooth * w_sum : 0.0);
            double Dl = (1.0 - eps) * wy * (xy - (double)m[l]) + (eps > 0.0 ? b_smooth * D[l] : 0.0);
            loss = Ql * logS - Dl;
            a[l] = (REAL)(gs * (1.0 - eps) * wy);   /* subtracted at the target class */
        } else {
            Ql = Q[l];
            loss = Ql * logS - D[l];
            a[l] = (REAL)(gs * (1.0 - eps));
        }
        loss = finite ? loss : NAN;
        if (loss_out) loss_out[l] = (REAL)loss;
        total += loss;
        /* p = e exp(-logS) (sh is the max here); NaN where the max is not finite */
        f[l] = finite ? (REAL)(gs * Ql * exp(-logS)) : (REAL)NAN;
        b[l] = (REAL)(gs * b_smooth);
    }
    if (g) {
        for (c = 0; c < C; c++) {
            REAL *gc = g + c * inner;
            const REAL *tc = t ? t + c * inner : NULL;
            REAL wc = w ? w[c] : (REAL)1;
            if (tc)
                for (l = 0; l < T; l++) gc[l] = keep[l] ? gc[l] * f[l] - wc * (a[l] * tc[l] + b[l]) : (REAL)0;
            else
                for (l = 0; l < T; l++) gc[l] = keep[l] ? gc[l] * f[l] - wc * b[l] : (REAL)0;
        }
        if (y)
            for (l = 0; l < T; l++)
                if (keep[l]) g[y[l] * inner + l] -= a[l];
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

/* Rows [0, n_rows): lse_out[r] (may be NULL) and, for FX_SOFTMAX or
   FX_LOG_SOFTMAX, out (rows like x). */
static void FX_SFX(fx_lse_rows)(const REAL *x, Py_ssize_t n_rows, Py_ssize_t C, int mode,
                                REAL *lse_out, REAL *out)
{
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
        if (!orow) continue;
        if (!isfinite(lse)) {
            for (Py_ssize_t j = 0; j < C; j++) orow[j] = FX_SFX(fx_lse_elem)(xr[j], lse, mode);
        } else if (mode == FX_SOFTMAX) {
            for (Py_ssize_t k = 0; k < nk; k++) {
                Py_ssize_t off = k * K, len = C - off < K ? C - off : K;
                /* relative to M, not through lse: see fx_xent_rows */
                REAL f = shifts[k] == -(REAL)INFINITY ? (REAL)0 : (REAL)exp(((double)shifts[k] - M) - logS);
                FX_SFX(fx_chunk_grad)(orow + off, len, f, NULL, NULL, 0, 0);
            }
        } else {
            for (Py_ssize_t j = 0; j < C; j++) orow[j] = (REAL)(((double)xr[j] - M) - logS);
        }
    }
}

/* One tile of positions [0, T) with class stride inner; lse_out by lane. */
static void FX_SFX(fx_lse_tile)(const REAL *x, Py_ssize_t T, Py_ssize_t C, Py_ssize_t inner,
                                int mode, REAL *lse_out, REAL *out)
{
    REAL m[FX_TILE], sh[FX_TILE], f[FX_TILE], lser[FX_TILE];
    double s[FX_TILE], lse[FX_TILE], logS[FX_TILE];
    Py_ssize_t c;
    int l, any_odd = 0;
    for (l = 0; l < T; l++) { m[l] = -(REAL)INFINITY; s[l] = 0.0; }
    for (c = 0; c < C; c++) {
        const REAL *xc = x + c * inner;
        for (l = 0; l < T; l++) m[l] = xc[l] > m[l] ? xc[l] : m[l];
    }
    for (l = 0; l < T; l++) sh[l] = FX_SFX(fx_shift_of)(m[l]);
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
        Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
        double sb[FX_TILE];
        for (l = 0; l < T; l++) sb[l] = 0.0;
        for (c = c0; c < c1; c++) {
            const REAL *xc = x + c * inner;
            if (mode == FX_SOFTMAX) {
                REAL *oc = out + c * inner;
                for (l = 0; l < T; l++) { REAL e = FX_SFX(fx_exp)(xc[l] - sh[l]); oc[l] = e; sb[l] += (double)e; }
            } else {
                for (l = 0; l < T; l++) sb[l] += (double)FX_SFX(fx_exp)(xc[l] - sh[l]);
            }
        }
        for (l = 0; l < T; l++) s[l] += sb[l];
    }
    for (l = 0; l < T; l++) {
        logS[l] = log(s[l]);
        lse[l] = (double)sh[l] + logS[l];
        lser[l] = (REAL)lse[l];
        if (lse_out) lse_out[l] = lser[l];
        any_odd |= !isfinite(lse[l]);
        /* where lse is finite, sh is the max: p = e exp(-logS), log p = (x - sh) - logS,
           never through lse, which loses logS to rounding when |sh| is large */
        f[l] = (REAL)exp(-logS[l]);
    }
    if (!out) return;
    for (c = 0; c < C; c++) {
        const REAL *xc = x + c * inner;
        REAL *oc = out + c * inner;
        if (any_odd)
            for (l = 0; l < T; l++)
                oc[l] = isfinite(lse[l]) ? (mode == FX_SOFTMAX ? oc[l] * f[l]
                                                          : (REAL)(((double)xc[l] - (double)sh[l]) - logS[l]))
                                         : FX_SFX(fx_lse_elem)(xc[l], lse[l], mode);
        else if (mode == FX_SOFTMAX)
            for (l = 0; l < T; l++) oc[l] *= f[l];
        else
            for (l = 0; l < T; l++) oc[l] = (REAL)(((double)xc[l] - (double)sh[l]) - logS[l]);
    }
}
