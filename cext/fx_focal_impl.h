/*
 * Template of the sigmoid focal loss; fx_focal.h instantiates it once per
 * dtype (REAL, FX_SFX) through fx_dtypes.h.  See fx_focal.h for the design.
 */

/* m^k for an integer k in [0, 7], branch-free (a product of at most three of
   m, m^2, m^4): a few ulp, where exp(k log m) would lose |k log m| ulp. */
static FX_INLINE REAL FX_SFX(fx_powi7)(REAL m, int k)
{
    REAL m2 = m * m, m4 = m2 * m2;
    REAL p = (k & 1) ? m : (REAL)1;
    p *= (k & 2) ? m2 : (REAL)1;
    return p * ((k & 4) ? m4 : (REAL)1);
}

/*
 * One element: returns the loss, *g its derivative (unscaled).  alpha_w: the
 * weight of a positive (alpha), of a negative (1 - alpha) is beta_w; both 1
 * without weighting.  gamma = k + f with k = min(floor(gamma), 7):
 * m^gamma = m^k exp(f log m), and integer (f == 0, constant where the tile
 * inlines it) leaves the exp and the log out.  A -inf logit gives a NaN loss,
 * as PyTorch's binary_cross_entropy_with_logits (and so torchvision's formula)
 * does.
 */
static FX_INLINE REAL FX_SFX(fx_focal_elem)(REAL x, REAL t, REAL alpha_w, REAL beta_w, REAL gamma,
                                            int k, REAL f, int integer, REAL *g)
{
    REAL e = FX_SFX(fx_exp)(x < (REAL)0 ? x : -x);        /* exp(-|x|), in [0, 1] */
    REAL r;                                                /* 1 / (1 + e) = sigmoid(|x|) */
    REAL l = FX_SFX(fx_log1p_recip)(e, &r);                /* log1p(e) */
    REAL sp_pos = (x > (REAL)0 ? x : (REAL)0) + l;         /* softplus(x) = -log sigmoid(-x) */
    REAL sp_neg = (x < (REAL)0 ? -x : (REAL)0) + l;        /* softplus(-x) = -log sigmoid(x) */
    REAL s = x >= (REAL)0 ? r : e * r;                     /* sigmoid(x) */
    REAL sm = x >= (REAL)0 ? e * r : r;                    /* sigmoid(-x) */
    REAL u = (REAL)1 - t;
    REAL ce = u * sp_pos + t * sp_neg;
    REAL m = u * s + t * sm;                               /* 1 - p_t */
    REAL mg = FX_SFX(fx_powi7)(m, k);
    if (!integer) {
        REAL log_m = t == (REAL)0 ? -sp_neg : t == (REAL)1 ? -sp_pos : FX_SFX(fx_log)(m);
        mg *= FX_SFX(fx_exp)(f * log_m);
    }
    REAL ratio = t == (REAL)0 ? sm : t == (REAL)1 ? s : s * sm / m;   /* s sigmoid(-x) / m */
    REAL at = alpha_w * t + beta_w * u;
    *g = at * mg * ((u * s - t * sm) + gamma * ce * ratio * (u - t));
    REAL loss = at * ce * mg;
    return x == -(REAL)INFINITY ? (REAL)NAN : loss;
}

/* A tile of n elements: loss[i] and, when g is not NULL, g[i].  Separate loops
   so that each vectorizes with its constants folded in. */
static inline void FX_SFX(fx_focal_tile)(const fx_focal_args *A, const REAL *restrict x,
                                         const REAL *restrict t, Py_ssize_t n, REAL *restrict loss,
                                         REAL *restrict g)
{
    const int weighted = A->alpha >= 0.0;
    const REAL aw = weighted ? (REAL)A->alpha : (REAL)1, bw = weighted ? (REAL)(1.0 - A->alpha) : (REAL)1;
    const REAL gamma = (REAL)A->gamma;
    const int k = A->gamma < 7.0 ? (int)A->gamma : 7;
    const REAL f = (REAL)(A->gamma - (double)k);
    REAL unused;
    Py_ssize_t i;
#define FX_FOCAL_LOOP(INTEGER, G)                                                           \
    for (i = 0; i < n; i++) loss[i] = FX_SFX(fx_focal_elem)(x[i], t[i], aw, bw, gamma, k, f, INTEGER, G);
    if (f == (REAL)0) {
        if (g) FX_FOCAL_LOOP(1, &g[i]) else FX_FOCAL_LOOP(1, &unused)
    } else {
        if (g) FX_FOCAL_LOOP(0, &g[i]) else FX_FOCAL_LOOP(0, &unused)
    }
#undef FX_FOCAL_LOOP
}

/*
 * Block b of a focal loss call (elements [b * FX_BCE_BLOCK, ...)): per-element
 * losses and gradient, and the block's loss sum in double (FX_LANES partial
 * sums).  *n_bad receives how many targets of the block lie outside [0, 1]
 * (NaN included): the caller raises.
 */
static double FX_SFX(fx_focal_block)(const fx_focal_args *A, Py_ssize_t b, Py_ssize_t *n_bad)
{
    REAL lbuf[FX_BCE_TILE];
    double acc[FX_LANES];
    Py_ssize_t j0 = b * FX_BCE_BLOCK;
    Py_ssize_t n = A->n - j0 < FX_BCE_BLOCK ? A->n - j0 : FX_BCE_BLOCK;
    for (int l = 0; l < FX_LANES; l++) acc[l] = 0.0;
    *n_bad = 0;
    for (Py_ssize_t k0 = 0; k0 < n; k0 += FX_BCE_TILE) {
        Py_ssize_t jt = j0 + k0, j = 0, m = n - k0 < FX_BCE_TILE ? n - k0 : FX_BCE_TILE;
        const REAL *t = (const REAL *)A->t + jt;
        REAL *lt = A->loss ? (REAL *)A->loss + jt : lbuf;
        REAL *gt = A->grad ? (REAL *)A->grad + jt : NULL;
        FX_SFX(fx_focal_tile)(A, (const REAL *)A->x + jt, t, m, lt, gt);
        *n_bad += FX_SFX(fx_count_not_prob)(t, m);          /* the tile is still in cache */
        for (; j + FX_LANES <= m; j += FX_LANES)
            for (int l = 0; l < FX_LANES; l++) acc[l] += (double)lt[j + l];
        for (; j < m; j++) acc[0] += (double)lt[j];         /* the array's last tile only */
        if (gt) FX_SFX(fx_scale_tile)(A->gout, A->gscale, jt, m, gt);
    }
    double total = 0.0;
    for (int l = 0; l < FX_LANES; l++) total += acc[l];
    return total;
}
