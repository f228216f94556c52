/*
 * Template of log-sum-exp, softmax and log_softmax (scipy.special semantics);
 * fx_xent.h instantiates it once per dtype (REAL, FX_SFX) through fx_dtypes.h.
 *
 * Where a plain sum S may lose a result near 0 (fx_lse_wants_precise), the
 * sample is summed again with the precise sums (fx_chunk_sumexp's n_top):
 * log S = log1p(the sum of the terms other than the max's), so that
 * logsumexp([0, -40]) is 4.25e-18, not 0.  Only such samples pay for the second
 * sweep (in a tile, one lane's need sweeps the tile); softmax needs only 1 / S,
 * which is precise without it.
 *
 * logsumexp's weights b (scipy's b=) enter the same sweep: the max is taken
 * over the entries of nonzero weight, each exponential is multiplied by its
 * weight, and the sums are always the precise ones (fx_log_abs_sum), so a
 * weighted sample is read once.  The sum may be negative: its sign goes to
 * A->sign, or makes the result NaN (fx_lse_finish).
 */

/* fx_lse_wants_precise's bound on the result: the plain double sum of C terms
   near 1 is off by about C ulp of 1 (C 2^-53); a float result needs that below
   a quarter of its own ulp (R 2^-26), a double one cannot have it for any R
   under 1. */
static FX_INLINE double FX_SFX(fx_precise_bound)(Py_ssize_t C)
{
    return sizeof(REAL) == sizeof(float) ? (double)C * 0x1p-26 : 1.0;
}

/* Replaces log_s[l] by its precise value in the lanes that want it: a second
   sweep of the tile, made only when a lane needs it. */
static inline void FX_SFX(fx_lse_tile_refine)(const fx_lse_args *A, const REAL *x, Py_ssize_t T,
                                              Py_ssize_t stride, const REAL *m, const REAL *sh,
                                              double *log_s)
{
    REAL m2[FX_TILE], sh2[FX_TILE];
    double precise[FX_TILE];
    const double bound = FX_SFX(fx_precise_bound)(A->shape.C);
    const int mode = A->mode;
    int want[FX_TILE], any = 0;
    Py_ssize_t l;
    for (l = 0; l < T; l++) {
        want[l] = fx_lse_wants_precise((double)sh[l], log_s[l], isfinite(m[l]), mode, bound);
        any |= want[l];
    }
    if (!any) return;
    FX_SFX(fx_tile_stats)(x, T, A->shape.C, stride, m2, sh2, precise, NULL, 1, 0);
    for (l = 0; l < T; l++)
        if (want[l]) log_s[l] = precise[l];
}

/* A tile of positions (lanes) [0, T), samples n0 .. n0 + T - 1, class c of lane
   l at x[c * stride + l], b[c * stride + l] (b may be NULL) and out[c * stride + l]. */
static FX_INLINE void FX_SFX(fx_lse_tile)(const fx_lse_args *A, const REAL *x, const REAL *b, REAL *out,
                                Py_ssize_t stride, Py_ssize_t T, Py_ssize_t n0)
{
    REAL m[FX_TILE], sh[FX_TILE], f[FX_TILE];
    double lse[FX_TILE], log_s[FX_TILE], sgn[FX_TILE];
    const int softmax = A->mode == FX_SOFTMAX;
    Py_ssize_t c, l;
    int any_odd = 0;
    for (l = 0; l < T; l++) sgn[l] = 1.0;
    FX_SFX(fx_tile_stats_w)(x, b, T, A->shape.C, stride, m, sh, log_s, sgn, softmax ? out : NULL, 0);
    if (!softmax && !b) FX_SFX(fx_lse_tile_refine)(A, x, T, stride, m, sh, log_s);
    for (l = 0; l < T; l++) {
        lse[l] = fx_lse_finish((double)sh[l], log_s[l], isfinite(m[l]), sgn[l], A->sign != NULL);
        any_odd |= !(lse[l] > -INFINITY && lse[l] < INFINITY);
    }
    if (softmax && out)      /* 1 / S, the shift being the max */
        for (l = 0; l < T; l++) f[l] = (REAL)fx_exp_d(-log_s[l]);
    if (A->lse)
        for (l = 0; l < T; l++) ((REAL *)A->lse)[n0 + l] = (REAL)lse[l];
    if (A->sign)
        for (l = 0; l < T; l++) ((REAL *)A->sign)[n0 + l] = (REAL)fx_lse_sign(log_s[l], sgn[l]);
    if (!out) return;
    for (c = 0; c < A->shape.C; c++) {
        const REAL *xc = x + c * stride;
        REAL *oc = out + c * stride;
        if (any_odd)
            for (l = 0; l < T; l++)
                oc[l] = !isfinite(lse[l]) ? (REAL)fx_lse_odd_elem(xc[l], lse[l], A->mode)
                        : softmax ? oc[l] * f[l] : (REAL)fx_log_softmax_elem(xc[l], sh[l], log_s[l]);
        else if (softmax)
            for (l = 0; l < T; l++) oc[l] *= f[l];
        else
            for (l = 0; l < T; l++) oc[l] = (REAL)fx_log_softmax_elem(xc[l], sh[l], log_s[l]);
    }
}

/* Softmax or log_softmax of one row into orow, given its statistics. */
static inline void FX_SFX(fx_lse_row_out)(const fx_lse_args *A, const FX_SFX(fx_row) *row,
                                          const REAL *xr, REAL *orow, double lse)
{
    Py_ssize_t C = A->shape.C, j;
    if (!isfinite(lse)) {
        for (j = 0; j < C; j++) orow[j] = (REAL)fx_lse_odd_elem(xr[j], lse, A->mode);
    } else if (A->mode == FX_SOFTMAX) {
        for (Py_ssize_t k = 0; k < row->nk; k++) {
            Py_ssize_t len, off = fx_chunk_at(C, row->K, k, &len);
            REAL f = (REAL)FX_SFX(fx_row_chunk_factor)(row, k, row->log_s, 1.0);
            FX_SFX(fx_chunk_grad)(orow + off, len, f, NULL, NULL, 0, 0, NULL, 0);
        }
    } else {
        for (j = 0; j < C; j++) orow[j] = (REAL)fx_log_softmax_elem(xr[j], row->M, row->log_s);
    }
}

/* Rows of block k, class axis contiguous, more than FX_SMALL_C classes (or none). */
static void FX_SFX(fx_lse_rows)(const fx_lse_args *A, fx_block k)
{
    Py_ssize_t C = A->shape.C;
    for (Py_ssize_t n = k.n0; n < k.n0 + k.count; n++) {
        const REAL *xr = (const REAL *)A->x + n * C;
        const REAL *br = A->b ? (const REAL *)A->b + n * C : NULL;
        REAL *orow = A->out ? (REAL *)A->out + n * C : NULL;
        FX_SFX(fx_row) row;
        FX_SFX(fx_row_stats_w)(xr, br, C, &row, A->mode == FX_SOFTMAX ? orow : NULL, 0);
        if (!br && fx_lse_wants_precise(row.M, row.log_s, row.finite, A->mode,
                                        FX_SFX(fx_precise_bound)(C)))
            FX_SFX(fx_row_stats)(xr, C, &row, NULL, 1, 0);
        double lse = fx_lse_finish(row.M, row.log_s, row.finite, row.sgn, A->sign != NULL);
        if (A->lse) ((REAL *)A->lse)[n] = (REAL)lse;
        if (A->sign) ((REAL *)A->sign)[n] = (REAL)fx_lse_sign(row.log_s, row.sgn);
        if (orow) FX_SFX(fx_lse_row_out)(A, &row, xr, orow, lse);
    }
}

/* log-sum-exp of block b of the call (fx_block_at) into A->lse and, for
   FX_SOFTMAX or FX_LOG_SOFTMAX, softmax or log_softmax into A->out. */
static void FX_SFX(fx_lse_block)(const fx_lse_args *A, Py_ssize_t b)
{
    fx_block k = fx_block_at(&A->shape, b);
    Py_ssize_t C = A->shape.C;
    const REAL *x = (const REAL *)A->x, *wb = (const REAL *)A->b;   /* (b: the block) */
    REAL *out = (REAL *)A->out;
    if (A->shape.inner > 1) {
        FX_SFX(fx_lse_tile)(A, x + k.x_off, wb ? wb + k.x_off : NULL, out ? out + k.x_off : NULL,
                            A->shape.inner, k.count, k.n0);
    } else if (C <= FX_SMALL_C && C > 0) {  /* few classes: FX_TILE rows at a time, transposed */
        REAL xt[FX_SMALL_C * FX_TILE], ot[FX_SMALL_C * FX_TILE], bt[FX_SMALL_C * FX_TILE];
        for (Py_ssize_t r0 = k.n0; r0 < k.n0 + k.count; r0 += FX_TILE) {
            Py_ssize_t T = k.n0 + k.count - r0 < FX_TILE ? k.n0 + k.count - r0 : FX_TILE;
            FX_SFX(fx_transpose)(x + r0 * C, T, C, C, xt, FX_TILE);
            if (wb) FX_SFX(fx_transpose)(wb + r0 * C, T, C, C, bt, FX_TILE);
            FX_SFX(fx_lse_tile)(A, xt, wb ? bt : NULL, out ? ot : NULL, FX_TILE, T, r0);
            if (out) FX_SFX(fx_transpose)(ot, C, T, FX_TILE, out + r0 * C, C);
        }
    } else {
        FX_SFX(fx_lse_rows)(A, k);
    }
}
