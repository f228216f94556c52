/*
 * Template of the Kullback-Leibler kernels; fx_kl.h instantiates it once per
 * dtype (REAL, FX_SFX) through fx_dtypes.h.  See fx_kl.h for the design.
 */

/* ------------------------------------------------------------------------ */
/* kl_div: elementwise                                                       */
/* ------------------------------------------------------------------------ */

/*
 * A tile of n elements of kl_div, PyTorch's formulas:
 *   loss = xlogy(t, t) - t x,   d loss / d x = -t            (probabilities)
 *   loss = exp(t) (t - x),      d loss / d x = -exp(t)       (log_target)
 * with xlogy(0, 0) = 0: a target of 0 adds 0 (NaN where x is infinite or NaN,
 * 0 * x, as in PyTorch).  g (may be NULL) receives the unscaled gradient.
 */
static inline void FX_SFX(fx_kl_tile)(const REAL *restrict x, const REAL *restrict t, Py_ssize_t n,
                                      int log_target, REAL *restrict loss, REAL *restrict g)
{
    Py_ssize_t i;
    if (log_target) {
        for (i = 0; i < n; i++) {
            REAL e = FX_SFX(fx_exp)(t[i]);
            loss[i] = e * (t[i] - x[i]);
            if (g) g[i] = -e;
        }
    } else {
        for (i = 0; i < n; i++) {
            REAL xlogx = t[i] == (REAL)0 ? (REAL)0 : t[i] * FX_SFX(fx_log)(t[i]);
            loss[i] = xlogx - t[i] * x[i];
            if (g) g[i] = -t[i];
        }
    }
}

/*
 * Block b of a kl_div call (elements [b * FX_BCE_BLOCK, ...)): per-element
 * losses and gradient, and the block's loss sum in double (FX_LANES partial
 * sums added in lane order).
 */
static double FX_SFX(fx_kl_block)(const fx_kl_args *A, Py_ssize_t b)
{
    REAL lbuf[FX_KL_TILE];
    double acc[FX_LANES];
    Py_ssize_t j0 = b * FX_BCE_BLOCK;
    Py_ssize_t n = A->n - j0 < FX_BCE_BLOCK ? A->n - j0 : FX_BCE_BLOCK;
    for (int l = 0; l < FX_LANES; l++) acc[l] = 0.0;
    for (Py_ssize_t k0 = 0; k0 < n; k0 += FX_KL_TILE) {
        Py_ssize_t jt = j0 + k0, j = 0, m = n - k0 < FX_KL_TILE ? n - k0 : FX_KL_TILE;
        REAL *lt = A->loss ? (REAL *)A->loss + jt : lbuf;
        REAL *gt = A->grad ? (REAL *)A->grad + jt : NULL;
        FX_SFX(fx_kl_tile)((const REAL *)A->x + jt, (const REAL *)A->t + jt, m, A->log_target, lt, gt);
        for (; j + FX_LANES <= m; j += FX_LANES)
            for (int l = 0; l < FX_LANES; l++) acc[l] += (double)lt[j + l];
        for (; j < m; j++) acc[0] += (double)lt[j];       /* the array's last tile only */
        if (gt) FX_SFX(fx_scale_tile)(A->gout, A->gscale, jt, m, gt);
    }
    double total = 0.0;
    for (int l = 0; l < FX_LANES; l++) total += acc[l];
    return total;
}

/* ------------------------------------------------------------------------ */
/* Distillation: one row (inner == 1), classes contiguous                    */
/* ------------------------------------------------------------------------ */

/* Elements [0, m) of a row: e_s = exp(a (s - ms)) into es, e_t = exp(a (t -
   mt)) into et, and e_t d into ed with d = (t - mt) - (s - ms), 0 where e_t
   is 0 (a class of teacher weight 0 adds 0, whatever d is).  Elementwise, no
   sum: the loop vectorizes. */
static inline void FX_SFX(fx_distill_exps)(const REAL *restrict s, const REAL *restrict t,
                                           Py_ssize_t m, REAL a, REAL ms, REAL mt,
                                           REAL *restrict es, REAL *restrict et,
                                           REAL *restrict ed)
{
    for (Py_ssize_t j = 0; j < m; j++) {
        REAL e_s = FX_SFX(fx_exp)(a * (s[j] - ms));
        REAL e_t = FX_SFX(fx_exp)(a * (t[j] - mt));
        REAL d = (t[j] - mt) - (s[j] - ms);
        es[j] = e_s;
        et[j] = e_t;
        ed[j] = e_t > (REAL)0 ? e_t * d : (REAL)0;
    }
}

/* acc[l] += the elements l, l + FX_LANES, ... of b[0:m] (the last few, past
   a multiple of FX_LANES, into acc[0]), in double.  One array per loop: the
   loop vectorizes (three arrays in one loop did not). */
static FX_INLINE void FX_SFX(fx_lane_add)(const REAL *restrict b, Py_ssize_t m, double *restrict acc)
{
    Py_ssize_t j = 0;
    for (; j + FX_LANES <= m; j += FX_LANES)
        for (int l = 0; l < FX_LANES; l++) acc[l] += (double)b[j + l];
    for (; j < m; j++) acc[0] += (double)b[j];
}

/* The sums of a row, in FX_LANES double partial sums (element j in lane j mod
   FX_LANES, the row's last few in lane 0): exp(a (s - ms)) (stored into es
   where es is not NULL), exp(a (t - mt)) (stored into et where et is not
   NULL), the teacher-weighted difference
   (fx_distill_exps) and, with go, sum go * exp(a (t - mt)).  ms, mt: the
   shifts (fx_shift_of).  Done FX_KL_TILE elements at a time: the
   exponentials into buffers (fx_distill_exps), then the lanes' sums, two
   loops that each vectorize. */
static inline fx_distill_stats FX_SFX(fx_distill_row_sums)(const REAL *s, const REAL *t, Py_ssize_t n,
                                                           REAL a, REAL ms, REAL mt, REAL *es,
                                                           REAL *et, const double *go)
{
    REAL sbuf[FX_KL_TILE], tloc[FX_KL_TILE], dbuf[FX_KL_TILE];
    double aS[FX_LANES], aT[FX_LANES], aD[FX_LANES], aR[FX_LANES];
    for (int l = 0; l < FX_LANES; l++) { aS[l] = 0.0; aT[l] = 0.0; aD[l] = 0.0; aR[l] = 0.0; }
    for (Py_ssize_t k0 = 0; k0 < n; k0 += FX_KL_TILE) {
        Py_ssize_t m = n - k0 < FX_KL_TILE ? n - k0 : FX_KL_TILE, j;
        REAL *sv = es ? es + k0 : sbuf, *tbuf = et ? et + k0 : tloc;
        FX_SFX(fx_distill_exps)(s + k0, t + k0, m, a, ms, mt, sv, tbuf, dbuf);
        FX_SFX(fx_lane_add)(sv, m, aS);
        FX_SFX(fx_lane_add)(tbuf, m, aT);
        FX_SFX(fx_lane_add)(dbuf, m, aD);
        if (go) {
            const double *gk = go + k0;
            for (j = 0; j + FX_LANES <= m; j += FX_LANES)
                for (int l = 0; l < FX_LANES; l++) aR[l] += gk[j + l] * (double)tbuf[j + l];
            for (; j < m; j++) aR[0] += gk[j] * (double)tbuf[j];
        }
    }
    fx_distill_stats st = {0.0, 0.0, 0.0, 0.0, 1};
    for (int l = 0; l < FX_LANES; l++) { st.Ss += aS[l]; st.St += aT[l]; st.D += aD[l]; st.R += aR[l]; }
    return st;
}

/* One per-element loss: lt e_t (a d + L), 0 where e_t is 0 (NaN in a NaN row). */
static FX_INLINE REAL FX_SFX(fx_distill_elem_loss)(REAL e_t, REAL d, REAL a, const fx_distill_coef *r)
{
    return (REAL)(e_t > (REAL)0 ? r->lt * (double)e_t * ((double)(a * d) + r->L) : 0.0 * r->lt);
}

/* The row's gradient (g holds exp(a (s - ms)), made T (p_s R - go p_t)) and
   per-element losses (lo, may be NULL), from its finish r; et: the teacher's
   exponentials kept by fx_distill_row_sums, or NULL (then formed again). */
static inline void FX_SFX(fx_distill_row_out)(const REAL *restrict s, const REAL *restrict t,
                                              const REAL *restrict et, Py_ssize_t n, REAL a,
                                              REAL ms, REAL mt, fx_distill_coef r,
                                              REAL *restrict g, REAL *restrict lo,
                                              const double *go)
{
    const REAL gs_e = (REAL)r.gs_e, gt_e = (REAL)r.gt_e;
    Py_ssize_t j;
    if (g && !lo && !go) {           /* the reduced losses' gradient: the common case */
        if (et) for (j = 0; j < n; j++) g[j] = gs_e * g[j] - gt_e * et[j];
        else    for (j = 0; j < n; j++) g[j] = gs_e * g[j] - gt_e * FX_SFX(fx_exp)(a * (t[j] - mt));
        return;
    }
    for (j = 0; j < n; j++) {
        REAL e_t = et ? et[j] : FX_SFX(fx_exp)(a * (t[j] - mt));
        if (g) g[j] = gs_e * g[j] - (go ? (REAL)go[j] * gt_e : gt_e) * e_t;
        if (lo) lo[j] = FX_SFX(fx_distill_elem_loss)(e_t, (t[j] - mt) - (s[j] - ms), a, &r);
    }
}

/* The rows of block k (classes contiguous); returns the sum of their losses.
   A row of up to FX_KL_KEEP classes keeps its teacher's exponentials on the
   stack for the gradient, one exp per element fewer. */
static double FX_SFX(fx_distill_rows)(const fx_distill_args *A, fx_block k)
{
    REAL keep[FX_KL_KEEP];
    const Py_ssize_t C = A->shape.C;
    REAL *et = (A->grad || A->loss) && C <= FX_KL_KEEP ? keep : NULL;
    const REAL a = (REAL)(1.0 / A->temperature);
    double total = 0.0;
    for (Py_ssize_t n = k.n0; n < k.n0 + k.count; n++) {
        const REAL *s = (const REAL *)A->s + n * C, *t = (const REAL *)A->t + n * C;
        REAL *g = A->grad ? (REAL *)A->grad + n * C : NULL;
        REAL *lo = A->loss ? (REAL *)A->loss + n * C : NULL;
        const double *go = A->gout ? A->gout + n * C : NULL;
        REAL m_s = FX_SFX(fx_chunk_max)(s, C), m_t = FX_SFX(fx_chunk_max)(t, C);
        REAL ms = FX_SFX(fx_shift_of)(m_s), mt = FX_SFX(fx_shift_of)(m_t);
        fx_distill_stats st = FX_SFX(fx_distill_row_sums)(s, t, C, a, ms, mt, g, et, go);
        st.ok = isfinite(m_s) && isfinite(m_t);
        fx_distill_coef r = fx_distill_finish(A, st);
        total += r.loss;
        if (g || lo) FX_SFX(fx_distill_row_out)(s, t, et, C, a, ms, mt, r, g, lo, go);
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* Distillation: a tile, T <= FX_TILE lanes (sample positions), class c of    */
/* lane l at [c * stride + l] of s, t, g, lo and go; every loop across lanes  */
/* ------------------------------------------------------------------------ */

typedef struct {
    const REAL *s, *t;
    REAL *g, *lo;              /* gradient, per-element losses (either may be NULL) */
    const double *go;          /* per-element factor of the gradient, or NULL */
    Py_ssize_t stride, T;
} FX_SFX(fx_distill_tile);

/* Per lane: the shifts (fx_shift_of of the maxima) and whether both maxima are finite. */
static FX_INLINE void FX_SFX(fx_distill_tile_max)(const FX_SFX(fx_distill_tile) *v, Py_ssize_t C,
                                                  REAL *ms, REAL *mt, int *ok)
{
    Py_ssize_t T = v->T, l;
    for (l = 0; l < T; l++) { ms[l] = -(REAL)INFINITY; mt[l] = -(REAL)INFINITY; }
    for (Py_ssize_t c = 0; c < C; c++) {
        const REAL *sc = v->s + c * v->stride, *tc = v->t + c * v->stride;
        for (l = 0; l < T; l++) ms[l] = sc[l] > ms[l] ? sc[l] : ms[l];
        for (l = 0; l < T; l++) mt[l] = tc[l] > mt[l] ? tc[l] : mt[l];
    }
    for (l = 0; l < T; l++) {
        ok[l] = isfinite(ms[l]) && isfinite(mt[l]);
        ms[l] = FX_SFX(fx_shift_of)(ms[l]);
        mt[l] = FX_SFX(fx_shift_of)(mt[l]);
    }
}

/* Per lane, the sums of fx_distill_row_sums over the classes, in partial sums
   of FX_CBLOCK classes; the student's exponentials into v->g where given. */
static FX_INLINE void FX_SFX(fx_distill_tile_sums)(const FX_SFX(fx_distill_tile) *v, Py_ssize_t C,
                                                   REAL a, const REAL *ms, const REAL *mt,
                                                   fx_distill_stats *st)
{
    Py_ssize_t T = v->T, l;
    for (l = 0; l < T; l++) { st[l].Ss = 0.0; st[l].St = 0.0; st[l].D = 0.0; st[l].R = 0.0; }
    for (Py_ssize_t c0 = 0; c0 < C; c0 += FX_CBLOCK) {
        Py_ssize_t c1 = C - c0 > FX_CBLOCK ? c0 + FX_CBLOCK : C;
        double bS[FX_TILE], bT[FX_TILE], bD[FX_TILE], bR[FX_TILE];
        for (l = 0; l < T; l++) { bS[l] = 0.0; bT[l] = 0.0; bD[l] = 0.0; bR[l] = 0.0; }
        for (Py_ssize_t c = c0; c < c1; c++) {
            const REAL *sc = v->s + c * v->stride, *tc = v->t + c * v->stride;
            REAL *gc = v->g ? v->g + c * v->stride : NULL;
            const double *goc = v->go ? v->go + c * v->stride : NULL;
            for (l = 0; l < T; l++) {
                REAL e_s = FX_SFX(fx_exp)(a * (sc[l] - ms[l]));
                REAL e_t = FX_SFX(fx_exp)(a * (tc[l] - mt[l]));
                REAL d = (tc[l] - mt[l]) - (sc[l] - ms[l]);
                if (gc) gc[l] = e_s;
                bS[l] += (double)e_s;
                bT[l] += (double)e_t;
                bD[l] += (double)(e_t > (REAL)0 ? e_t * d : (REAL)0);
                if (goc) bR[l] += goc[l] * (double)e_t;
            }
        }
        for (l = 0; l < T; l++) {
            st[l].Ss += bS[l]; st[l].St += bT[l]; st[l].D += bD[l]; st[l].R += bR[l];
        }
    }
}

/* Per class, across lanes: the gradient (v->g holds the student's
   exponentials) and the per-element losses, from each lane's finish. */
static FX_INLINE void FX_SFX(fx_distill_tile_out)(const FX_SFX(fx_distill_tile) *v, Py_ssize_t C,
                                                  REAL a, const REAL *ms, const REAL *mt,
                                                  const fx_distill_coef *r)
{
    REAL gs_e[FX_TILE], gt_e[FX_TILE];
    Py_ssize_t T = v->T, l;
    for (l = 0; l < T; l++) { gs_e[l] = (REAL)r[l].gs_e; gt_e[l] = (REAL)r[l].gt_e; }
    for (Py_ssize_t c = 0; c < C; c++) {
        const REAL *sc = v->s + c * v->stride, *tc = v->t + c * v->stride;
        REAL *gc = v->g ? v->g + c * v->stride : NULL;
        REAL *lc = v->lo ? v->lo + c * v->stride : NULL;
        const double *goc = v->go ? v->go + c * v->stride : NULL;
        for (l = 0; l < T; l++) {
            REAL e_t = FX_SFX(fx_exp)(a * (tc[l] - mt[l]));
            if (gc) gc[l] = gs_e[l] * gc[l] - (goc ? (REAL)goc[l] * gt_e[l] : gt_e[l]) * e_t;
            if (lc) lc[l] = FX_SFX(fx_distill_elem_loss)(e_t, (tc[l] - mt[l]) - (sc[l] - ms[l]), a, &r[l]);
        }
    }
}

/* The distillation loss of a tile: returns the sum of its lanes' losses (lane
   order); the gradient and per-element losses where v asks for them. */
static double FX_SFX(fx_distill_tile_run)(const fx_distill_args *A, const FX_SFX(fx_distill_tile) *v)
{
    REAL ms[FX_TILE], mt[FX_TILE];
    int ok[FX_TILE];
    fx_distill_stats st[FX_TILE];
    fx_distill_coef r[FX_TILE];
    const Py_ssize_t C = A->shape.C, T = v->T;
    const REAL a = (REAL)(1.0 / A->temperature);
    FX_SFX(fx_distill_tile_max)(v, C, ms, mt, ok);
    FX_SFX(fx_distill_tile_sums)(v, C, a, ms, mt, st);
    double total = 0.0;
    for (Py_ssize_t l = 0; l < T; l++) {
        st[l].ok = ok[l];
        r[l] = fx_distill_finish(A, st[l]);
        total += r[l].loss;
    }
    if (v->g || v->lo) FX_SFX(fx_distill_tile_out)(v, C, a, ms, mt, r);
    return total;
}

/* Rows of few classes (C <= FX_SMALL_C): FX_TILE rows at a time transposed
   into buffers (cache only), done as a tile with one lane per row. */
static double FX_SFX(fx_distill_rows_small)(const fx_distill_args *A, fx_block k)
{
    REAL st[FX_SMALL_C * FX_TILE], tt[FX_SMALL_C * FX_TILE];
    REAL gt[FX_SMALL_C * FX_TILE], lt[FX_SMALL_C * FX_TILE];
    double got[FX_SMALL_C * FX_TILE];
    const Py_ssize_t C = A->shape.C;
    REAL *g = (REAL *)A->grad, *lo = (REAL *)A->loss;
    double total = 0.0;
    for (Py_ssize_t r0 = k.n0; r0 < k.n0 + k.count; r0 += FX_TILE) {
        Py_ssize_t T = k.n0 + k.count - r0 < FX_TILE ? k.n0 + k.count - r0 : FX_TILE;
        FX_SFX(fx_distill_tile) v = {st, tt, g ? gt : NULL, lo ? lt : NULL,
                                     A->gout ? got : NULL, FX_TILE, T};
        FX_SFX(fx_transpose)((const REAL *)A->s + r0 * C, T, C, C, st, FX_TILE);
        FX_SFX(fx_transpose)((const REAL *)A->t + r0 * C, T, C, C, tt, FX_TILE);
        if (A->gout)
            for (Py_ssize_t r = 0; r < T; r++)
                for (Py_ssize_t c = 0; c < C; c++) got[c * FX_TILE + r] = A->gout[(r0 + r) * C + c];
        total += FX_SFX(fx_distill_tile_run)(A, &v);
        if (g) FX_SFX(fx_transpose)(gt, C, T, FX_TILE, g + r0 * C, C);
        if (lo) FX_SFX(fx_transpose)(lt, C, T, FX_TILE, lo + r0 * C, C);
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* The block entry point                                                     */
/* ------------------------------------------------------------------------ */

/* The distillation loss of block b of the call (fx_block_at): the gradient
   and per-element losses of its samples, and the sum of its losses.  An empty
   class axis has loss 0. */
static double FX_SFX(fx_distill_block)(const fx_distill_args *A, Py_ssize_t b)
{
    fx_block k = fx_block_at(&A->shape, b);
    if (A->shape.C == 0) return 0.0;
    if (A->shape.inner > 1) {
        REAL *g = (REAL *)A->grad, *lo = (REAL *)A->loss;
        FX_SFX(fx_distill_tile) v = {(const REAL *)A->s + k.x_off, (const REAL *)A->t + k.x_off,
                                     g ? g + k.x_off : NULL, lo ? lo + k.x_off : NULL,
                                     A->gout ? A->gout + k.x_off : NULL, A->shape.inner, k.count};
        return FX_SFX(fx_distill_tile_run)(A, &v);
    }
    if (A->shape.C <= FX_SMALL_C) return FX_SFX(fx_distill_rows_small)(A, k);
    return FX_SFX(fx_distill_rows)(A, k);
}
