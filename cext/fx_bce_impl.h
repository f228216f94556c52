/*
 * Template of the binary kernels; fx_bce.h instantiates it once per dtype
 * (REAL, FX_SFX) through fx_dtypes.h.  See fx_bce.h for the design.
 */

/* Elements [j0, j0 + n) of the flat input, of an operand broadcast to it:
   buf[k] = src[offset of element j0 + k]. */
static void FX_SFX(fx_bcast_gather)(const REAL *src, const fx_bcast *b, Py_ssize_t j0,
                                    Py_ssize_t n, REAL *buf)
{
    Py_ssize_t idx[FX_BCE_MAXDIM];
    Py_ssize_t off = 0, rem = j0;
    int last = b->nd - 1;
    for (int d = last; d >= 0; d--) {
        idx[d] = rem % b->dims[d];
        rem /= b->dims[d];
        off += idx[d] * b->strides[d];
    }
    Py_ssize_t k = 0, s = b->strides[last];
    while (k < n) {
        /* the rest of the innermost axis, or of the request */
        Py_ssize_t len = b->dims[last] - idx[last];
        if (len > n - k) len = n - k;
        if (s == 0) {
            REAL v = src[off];
            for (Py_ssize_t i = 0; i < len; i++) buf[k + i] = v;
        } else {
            for (Py_ssize_t i = 0; i < len; i++) buf[k + i] = src[off + i * s];
        }
        k += len;
        off += len * s;
        idx[last] += len;
        for (int d = last; d > 0 && idx[d] == b->dims[d]; d--) {   /* carry */
            off += b->strides[d - 1] - b->dims[d] * b->strides[d];
            idx[d] = 0;
            idx[d - 1]++;
        }
    }
}

/* Elements [j0, j0 + n) of an operand, contiguous: in place when it has the
   input's layout, else gathered into buf; `ones` when it is absent. */
static inline const REAL *FX_SFX(fx_bcast_tile)(const REAL *src, const fx_bcast *b, Py_ssize_t j0,
                                                Py_ssize_t n, REAL *buf, const REAL *ones)
{
    if (!src) return ones;
    if (fx_bcast_is_full(b)) return src + j0;
    FX_SFX(fx_bcast_gather)(src, b, j0, n, buf);
    return buf;
}

/*
 * One element of binary cross-entropy on probabilities, PyTorch's formulas:
 *   loss = w ((t - 1) max(log1p(-x), -100) - t max(log x, -100))    (returned)
 *   *g   = w (x - t) / max(x (1 - x), float32(1e-12))
 */
static FX_INLINE REAL FX_SFX(fx_bce_prob_elem)(REAL x, REAL t, REAL w, REAL *g)
{
    REAL lx = FX_SFX(fx_log)(x);
    REAL l1x = FX_SFX(fx_log1p)(-x);
    lx = lx < (REAL)FX_BCE_LOG_MIN ? (REAL)FX_BCE_LOG_MIN : lx;
    l1x = l1x < (REAL)FX_BCE_LOG_MIN ? (REAL)FX_BCE_LOG_MIN : l1x;
    REAL d = ((REAL)1 - x) * x;
    d = d < (REAL)FX_BCE_EPS ? (REAL)FX_BCE_EPS : d;   /* float32(1e-12) in every dtype */
    *g = w * (x - t) / d;
    return w * ((t - (REAL)1) * l1x - t * lx);
}

/* log1p(e) for e in [0, 1], and *r = 1 / (1 + e), with one division for both:
   log(v) of the rounded v = 1 + e, plus (e - (v - 1)) / v for the rounding
   (v - 1 is exact for v in [1, 2]). */
static FX_INLINE REAL FX_SFX(fx_log1p_recip)(REAL e, REAL *r)
{
    REAL v = (REAL)1 + e;
    *r = (REAL)1 / v;
    return FX_SFX(fx_log_1to2)(v) + (e - (v - (REAL)1)) * *r;
}

/*
 * One element of binary cross-entropy on logits:
 *   loss = w ((1 - t) softplus(x) + pw t softplus(-x))              (returned)
 *   *g   = w ((1 - t) sigmoid(x) - pw t sigmoid(-x))
 *   *h   = w (pw t + 1 - t) sigmoid(x) sigmoid(-x)        (the second derivative)
 * which are PyTorch's -w (pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))) and
 * w ((pw t + 1 - t) sigmoid(x) - pw t), with no overflow and no cancellation
 * for any finite x: softplus(+-x) and sigmoid(+-x) all come from the one
 * e = exp(-|x|).  A -inf logit gives a NaN loss, as PyTorch's
 * (1 - t) x - (1 + (pw - 1) t) log sigmoid(x) does.
 */
static FX_INLINE REAL FX_SFX(fx_bce_logits_elem2)(REAL x, REAL t, REAL w, REAL pw, REAL *g, REAL *h)
{
    REAL e = FX_SFX(fx_exp)(x < (REAL)0 ? x : -x);        /* exp(-|x|), in [0, 1] */
    REAL r;                                                /* 1 / (1 + e) = sigmoid(|x|) */
    REAL l = FX_SFX(fx_log1p_recip)(e, &r);                /* log1p(e) */
    REAL sp_pos = (x > (REAL)0 ? x : (REAL)0) + l;         /* softplus(x) = -log(1 - sigmoid(x)) */
    REAL sp_neg = (x < (REAL)0 ? -x : (REAL)0) + l;        /* softplus(-x) = -log(sigmoid(x)) */
    REAL s_pos = x >= (REAL)0 ? r : e * r;                 /* sigmoid(x) */
    REAL s_neg = x >= (REAL)0 ? e * r : r;                 /* sigmoid(-x) */
    REAL a = (REAL)1 - t;                                  /* weight of the negative term */
    REAL b = pw * t;                                       /* weight of the positive term */
    *g = w * (a * s_pos - b * s_neg);
    *h = w * (a + b) * (e * r * r);                        /* sigmoid(x) sigmoid(-x) = e r^2 */
    REAL loss = w * (a * sp_pos + b * sp_neg);
    return x == -(REAL)INFINITY ? (REAL)NAN : loss;
}

/* The loss and gradient of fx_bce_logits_elem2 (the compiler drops the rest). */
static FX_INLINE REAL FX_SFX(fx_bce_logits_elem)(REAL x, REAL t, REAL w, REAL pw, REAL *g)
{
    REAL unused;
    return FX_SFX(fx_bce_logits_elem2)(x, t, w, pw, g, &unused);
}

/* A tile of n elements: loss[i] and, when g is not NULL, g[i] (and h[i]).  A
   loop each, so that each vectorizes; without g the compiler drops the
   gradient's arithmetic.  restrict: the outputs never alias the inputs (w and
   pw may be the same read-only buffer), and without it the alias checks of
   three outputs are more than GCC versions a loop for. */
static inline void FX_SFX(fx_bce_prob_tile)(const REAL *restrict x, const REAL *restrict t,
                                            const REAL *restrict w, Py_ssize_t n,
                                            REAL *restrict loss, REAL *restrict g)
{
    Py_ssize_t i;
    REAL unused;
    if (g) for (i = 0; i < n; i++) loss[i] = FX_SFX(fx_bce_prob_elem)(x[i], t[i], w[i], &g[i]);
    else   for (i = 0; i < n; i++) loss[i] = FX_SFX(fx_bce_prob_elem)(x[i], t[i], w[i], &unused);
}

static inline void FX_SFX(fx_bce_logits_tile)(const REAL *restrict x, const REAL *restrict t,
                                              const REAL *restrict w, const REAL *restrict pw,
                                              Py_ssize_t n, REAL *restrict loss,
                                              REAL *restrict g, REAL *restrict h)
{
    Py_ssize_t i;
    REAL unused;
    if (h) for (i = 0; i < n; i++) loss[i] = FX_SFX(fx_bce_logits_elem2)(x[i], t[i], w[i], pw[i], &g[i], &h[i]);
    else if (g) for (i = 0; i < n; i++) loss[i] = FX_SFX(fx_bce_logits_elem)(x[i], t[i], w[i], pw[i], &g[i]);
    else   for (i = 0; i < n; i++) loss[i] = FX_SFX(fx_bce_logits_elem)(x[i], t[i], w[i], pw[i], &unused);
}

/* How many of a[0:n] lie outside [0, 1]; NaN counts (n <= FX_BCE_TILE). */
static inline int FX_SFX(fx_count_not_prob)(const REAL *a, Py_ssize_t n)
{
    int bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad += !(a[i] >= (REAL)0 && a[i] <= (REAL)1);
    return bad;
}

/* Tile [j, j + m) of a call: losses into lt, the gradient (if any) into gt, the
   Hessian's diagonal (if any) into ht, and how many probabilities of x and t lie
   outside [0, 1] added to n_bad.  Sample weights multiply w. */
static inline void FX_SFX(fx_bce_tile)(const fx_bce_args *A, Py_ssize_t j, Py_ssize_t m,
                                       REAL *lt, REAL *gt, REAL *ht, const REAL *ones,
                                       Py_ssize_t *n_bad)
{
    REAL wbuf[FX_BCE_TILE], pwbuf[FX_BCE_TILE], swbuf[FX_BCE_TILE];
    const REAL *x = (const REAL *)A->x + j, *t = (const REAL *)A->t + j;
    const REAL *wt = FX_SFX(fx_bcast_tile)((const REAL *)A->w, &A->wl, j, m, wbuf, ones);
    if (A->sw) {
        const REAL *swt = FX_SFX(fx_bcast_tile)((const REAL *)A->sw, &A->swl, j, m, swbuf, ones);
        for (Py_ssize_t i = 0; i < m; i++) wbuf[i] = wt[i] * swt[i];   /* wt may be wbuf */
        wt = wbuf;
    }
    if (A->logits) {
        const REAL *pwt = FX_SFX(fx_bcast_tile)((const REAL *)A->pw, &A->pwl, j, m, pwbuf, ones);
        FX_SFX(fx_bce_logits_tile)(x, t, wt, pwt, m, lt, gt, ht);
    } else {
        FX_SFX(fx_bce_prob_tile)(x, t, wt, m, lt, gt);
        n_bad[0] += FX_SFX(fx_count_not_prob)(x, m);   /* the tile is still in cache */
        n_bad[1] += FX_SFX(fx_count_not_prob)(t, m);
    }
}

/* gt[i] *= gout[j + i] * gscale (gout NULL: gscale) for the m elements of a tile;
   shared by every elementwise loss (binary, kl_div, focal). */
static inline void FX_SFX(fx_scale_tile)(const double *gout, double gscale, Py_ssize_t j,
                                         Py_ssize_t m, REAL *gt)
{
    Py_ssize_t i;
    if (gout) {
        const double *go = gout + j;
        for (i = 0; i < m; i++) gt[i] *= (REAL)(go[i] * gscale);
    } else if (gscale != 1.0) {
        REAL s = (REAL)gscale;
        for (i = 0; i < m; i++) gt[i] *= s;
    }
}

/*
 * Block b of a binary cross-entropy call (elements [b * FX_BCE_BLOCK, ...)):
 * per-element losses and gradient, and the block's loss sum in double (FX_LANES
 * partial sums).  n_bad[0] and n_bad[1] receive how many probabilities of x and
 * of t lie outside [0, 1] (0 with logits): the caller raises.
 */
static double FX_SFX(fx_bce_block)(const fx_bce_args *A, Py_ssize_t b, Py_ssize_t *n_bad)
{
    REAL ones[FX_BCE_TILE], lbuf[FX_BCE_TILE];
    double acc[FX_LANES];
    Py_ssize_t j0 = b * FX_BCE_BLOCK;
    Py_ssize_t n = A->n - j0 < FX_BCE_BLOCK ? A->n - j0 : FX_BCE_BLOCK;
    for (Py_ssize_t i = 0; i < FX_BCE_TILE; i++) ones[i] = (REAL)1;
    for (int l = 0; l < FX_LANES; l++) acc[l] = 0.0;
    n_bad[0] = 0;
    n_bad[1] = 0;
    for (Py_ssize_t k0 = 0; k0 < n; k0 += FX_BCE_TILE) {
        Py_ssize_t jt = j0 + k0, j = 0, m = n - k0 < FX_BCE_TILE ? n - k0 : FX_BCE_TILE;
        REAL *lt = A->loss ? (REAL *)A->loss + jt : lbuf;
        REAL *gt = A->grad ? (REAL *)A->grad + jt : NULL;
        REAL *ht = A->grad && A->hess && A->logits ? (REAL *)A->hess + jt : NULL;
        FX_SFX(fx_bce_tile)(A, jt, m, lt, gt, ht, ones, n_bad);
        for (; j + FX_LANES <= m; j += FX_LANES)
            for (int l = 0; l < FX_LANES; l++) acc[l] += (double)lt[j + l];
        for (; j < m; j++) acc[0] += (double)lt[j];      /* the array's last tile only */
        if (gt) FX_SFX(fx_scale_tile)(A->gout, A->gscale, jt, m, gt);
        if (ht) FX_SFX(fx_scale_tile)(A->gout, A->gscale, jt, m, ht);
    }
    double total = 0.0;
    for (int l = 0; l < FX_LANES; l++) total += acc[l];
    return total;
}
