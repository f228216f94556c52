/*
 * Template of cross-entropy and nll; fx_xent.h instantiates it once per dtype
 * (REAL, FX_SFX) through fx_dtypes.h.  See fx_xent.h for the design.
 */

/* A tile: T <= FX_TILE lanes, the samples n0 .. n0 + T - 1, class c of lane l
   at [c * stride + l] of x, t, g, v and h: the call's own arrays (a strided
   class axis) or buffers of FX_TILE transposed rows (few classes). */
typedef struct {
    const REAL *x, *t;
    REAL *g;
    Py_ssize_t stride, T, n0;
    const REAL *v;             /* A->v's part, or NULL */
    REAL *h;                   /* A->hess's part, or NULL: class c of lane l at
                                  [c * h_c + l * h_l], in place (a strided class
                                  axis: h_c = stride, h_l = 1) or transposed back
                                  to rows (few classes: h_c = 1, h_l = C) */
    Py_ssize_t h_c, h_l;
} FX_SFX(fx_tile);

/* The target of sample n (read once and checked: fx_class_of): its class in
   x, FX_IGNORED, FX_BAD_INDEX or, in a class slice, FX_ELSEWHERE (a class of
   another slice); *wy: the target's class weight (0 unless kept). */
static FX_INLINE Py_ssize_t FX_SFX(fx_target_of)(const fx_xent_args *A, Py_ssize_t n, double *wy)
{
    const REAL *w = (const REAL *)A->w;
    const Py_ssize_t off = A->row_max ? (Py_ssize_t)A->class_offset : 0;
    Py_ssize_t c = fx_class_of(A->y + n, A->ignore_index,
                               A->row_max ? (Py_ssize_t)A->n_classes : A->shape.C);
    *wy = c < 0 ? 0.0 : w ? (double)w[c - off] : 1.0;   /* (w + off: the slice's weights) */
    if (c < 0) return c;
    c -= off;
    return c >= 0 && c < A->shape.C ? c : FX_ELSEWHERE;
}

/* ------------------------------------------------------------------------ */
/* Cross-entropy of a tile                                                   */
/* ------------------------------------------------------------------------ */

/* Each lane's class (fx_target_of), its target's weight (0 where ignored) and
   x_y - m (0 where ignored or in another slice; x_y soft-capped where cap > 0).
   An index out of range is reported in *bad and its lane treated as ignored. */
static FX_INLINE void FX_SFX(fx_tile_targets)(const fx_xent_args *A, const FX_SFX(fx_tile) *v,
                                              const REAL *m, Py_ssize_t *cls, double *wy,
                                              double *xy, Py_ssize_t *bad, REAL cap)
{
    const REAL *x = v->x, *w = (const REAL *)A->w;
    const Py_ssize_t T = v->T, stride = v->stride;
    Py_ssize_t l;
    int any_bad = 0;
    if (A->row_max) {
        for (l = 0; l < T; l++) {
            Py_ssize_t c = FX_SFX(fx_target_of)(A, v->n0 + l, &wy[l]);
            cls[l] = c;
            xy[l] = c >= 0 ? (double)x[c * stride + l] - (double)m[l] : 0.0;
            any_bad |= c == FX_BAD_INDEX;
        }
    } else {
        /* fx_target_of without a slice's tests */
        for (l = 0; l < T; l++) {
            Py_ssize_t c = fx_class_of(A->y + v->n0 + l, A->ignore_index, A->shape.C);
            double xv = 0.0, wv = 0.0;
            if (c >= 0) {
                xv = (double)x[c * stride + l] - (double)m[l];
                wv = w ? (double)w[c] : 1.0;
            }
            cls[l] = c;
            xy[l] = xv;
            wy[l] = wv;
            any_bad |= c == FX_BAD_INDEX;
        }
    }
    if (cap > (REAL)0)                        /* x_y soft-capped */
        for (l = 0; l < T; l++)
            if (cls[l] >= 0)
                xy[l] = (double)FX_SFX(fx_cap)(x[cls[l] * stride + l], cap, (REAL)1 / cap) - (double)m[l];
    for (l = 0; any_bad && *bad < 0; l++)     /* the first lane out of range */
        if (cls[l] == FX_BAD_INDEX) *bad = v->n0 + l;
}

/* g = f e - w_c (a t + b), class by class across lanes, then - ay at each kept
   lane's target class; each term times the derivative of the cap at x where
   cap > 0 (capped).  Without smoothing or probabilities the weights are not
   touched (an unused infinite weight changes nothing). */
static FX_INLINE void FX_SFX(fx_tile_grad_body)(const fx_xent_args *A, const FX_SFX(fx_tile) *v,
                                             const REAL *f, const REAL *a, const REAL *b,
                                             const REAL *ay, const Py_ssize_t *cls, REAL cap,
                                             const int capped)
{
    const REAL *w = (const REAL *)A->w;
    const REAL inv_cap = capped ? (REAL)1 / cap : (REAL)0;
    Py_ssize_t T = v->T, l;
    for (Py_ssize_t c = 0; c < A->shape.C; c++) {
        REAL *gc = v->g + c * v->stride;
        const REAL *xc = v->x + c * v->stride;
        const REAL *tc = v->t ? v->t + c * v->stride : NULL;
        REAL wc = w ? w[c] : (REAL)1;
        if (tc)
            for (l = 0; l < T; l++) gc[l] = FX_DCAP(gc[l] * f[l] - wc * (a[l] * tc[l] + b[l]), xc[l]);
        else if (A->eps > 0.0)
            for (l = 0; l < T; l++) gc[l] = FX_DCAP(gc[l] * f[l] - wc * b[l], xc[l]);
        else
            for (l = 0; l < T; l++) gc[l] = FX_DCAP(gc[l] * f[l], xc[l]);
    }
    if (A->y)
        for (l = 0; l < T; l++)
            if (cls[l] >= 0) {
                Py_ssize_t i = cls[l] * v->stride + l;
                v->g[i] -= FX_DCAP(ay[l], v->x[i]);
            }
}
static FX_INLINE void FX_SFX(fx_tile_grad)(const fx_xent_args *A, const FX_SFX(fx_tile) *v, const REAL *f,
                                 const REAL *a, const REAL *b, const REAL *ay, const Py_ssize_t *cls,
                                 REAL cap)
{
    if (cap > (REAL)0) FX_SFX(fx_tile_grad_body)(A, v, f, a, b, ay, cls, cap, 1);
    else FX_SFX(fx_tile_grad_body)(A, v, f, a, b, ay, cls, (REAL)0, 0);
}

/* The second order of a tile, from the exponentials stored in v->g (before
   fx_tile_grad): the Hessian's diagonal into v->h, or (with v->v) the Hessian
   times v into v->g; f as for fx_tile_grad, m and log_s as fx_tile_stats gave
   them.  Not forced inline: the lanes' loop of fx_xent_tile, which a call
   without second order runs alone, keeps its registers. */
static void FX_SFX(fx_tile_second)(const FX_SFX(fx_tile) *v, Py_ssize_t C, const REAL *f,
                                   const REAL *m, const double *log_s)
{
    REAL p1[FX_TILE];                  /* 1 / S: the shift is the max */
    Py_ssize_t T = v->T, l, c;
    for (l = 0; l < T; l++)
        p1[l] = (REAL)fx_exp_d(m[l] > -(REAL)INFINITY && m[l] < (REAL)INFINITY ? -log_s[l] : NAN);
    if (v->h) {
        const Py_ssize_t h_l = v->h_l;
        for (c = 0; c < C; c++) {
            const REAL *gc = v->g + c * v->stride;
            REAL *hc = v->h + c * v->h_c;
            if (h_l == 1)
                for (l = 0; l < T; l++) hc[l] = gc[l] * f[l] * ((REAL)1 - gc[l] * p1[l]);
            else        /* rows: written where they go, without a buffer to transpose */
                for (l = 0; l < T; l++) hc[l * h_l] = gc[l] * f[l] * ((REAL)1 - gc[l] * p1[l]);
        }
        return;
    }
    double acc[FX_TILE];
    REAL pv[FX_TILE];
    for (l = 0; l < T; l++) acc[l] = 0.0;
    for (c = 0; c < C; c++) {
        const REAL *gc = v->g + c * v->stride, *vc = v->v + c * v->stride;
        for (l = 0; l < T; l++) acc[l] += (double)gc[l] * (double)vc[l];
    }
    for (l = 0; l < T; l++) pv[l] = (REAL)(acc[l] * (double)p1[l]);   /* sum_c p_c v_c */
    for (c = 0; c < C; c++) {
        REAL *gc = v->g + c * v->stride;
        const REAL *vc = v->v + c * v->stride;
        for (l = 0; l < T; l++) gc[l] = gc[l] * f[l] * (vc[l] - pv[l]);
    }
}

/* The per-lane finish of a tile (fx_xent_finish): loss, gq, the argument of
   the exp that turns gq into the factor of the stored exponentials, and a, b,
   ay.  plain (a constant at each call): the call has class indices and no
   class slice, per-sample upstream gradient, smoothing or option; the copy of
   the arguments then says so in constants, the finish folds to a few
   operations, and the loop runs in vectors. */
static FX_INLINE void FX_SFX(fx_tile_finish)(const fx_xent_args *A, const FX_SFX(fx_tile) *v,
                                             const REAL *m, const REAL *sh, const double *log_s,
                                             const Py_ssize_t *cls, const double *wy, const double *xy,
                                             const double *q, const double *d, double *loss,
                                             double *gq, double *e_arg, REAL *a, REAL *b, REAL *ay,
                                             const int opts, const int plain)
{
    const Py_ssize_t T = v->T;
    const int by_index = plain || A->y != NULL;
    const double b_smooth = plain ? 0.0 : A->eps / fx_n_classes(A);
    const double smooth_q = !plain && A->eps > 0.0 ? b_smooth * A->w_sum : 0.0;
    const double *row_max = !plain && A->row_max ? A->row_max + v->n0 : NULL;
    fx_xent_args opt = *A;   /* a private copy: its fields stay in registers across lanes */
    opt.z_loss = opts ? opt.z_loss : 0.0;
    if (plain) {
        opt.softcap = 0.0;
        opt.eps = 0.0;
        opt.row_max = NULL;
        opt.gout = NULL;
    }
    Py_ssize_t l;
    for (l = 0; l < T; l++) {
        fx_xent_stats s;
        double rel = 0.0;      /* the stored exponentials' shift relative to the lse's max */
        s.log_s = m[l] > -(REAL)INFINITY && m[l] < (REAL)INFINITY ? log_s[l] : NAN;
        if (row_max) {
            s.log_s = isfinite(row_max[l]) && isfinite(A->log_norm[v->n0 + l]) ? A->log_norm[v->n0 + l] : NAN;
            rel = (double)sh[l] - row_max[l];
        }
        s.wy = cls[l] >= 0 ? wy[l] : 0.0;
        s.xy = xy[l];
        s.q = by_index ? smooth_q : q[l];
        s.d = by_index ? b_smooth * d[l] : d[l];
        s.gs = fx_gs(&opt, v->n0 + l);
        s.kept = cls[l] >= 0 || cls[l] == FX_ELSEWHERE;
        s.mass = row_max ? fx_slice_mass(&opt, v->n0 + l, wy[l]) : 0.0;
        s.m = (double)m[l];
        fx_xent_coef r = fx_xent_finish(&opt, s);
        loss[l] = r.loss;
        gq[l] = r.gq;
        e_arg[l] = rel - s.log_s;
        a[l] = (REAL)r.a;
        b[l] = (REAL)r.b;
        ay[l] = (REAL)r.ay;
    }
}

/* Cross-entropy of a tile: returns the sum of its losses (lane order); per-lane
   losses into A->loss, the gradient (if v->g) into v->g, or its second order
   (fx_tile_second).  In a class slice the target and mass terms are taken
   relative to the row's max over all classes (ref), and the stored exponentials
   scaled by exp(sh - row_max - log_norm).  opts: whether z_loss or softcap may
   be on (see fx_xent_block; never with the second order). */
static FX_INLINE double FX_SFX(fx_xent_tile)(const fx_xent_args *A, const FX_SFX(fx_tile) *v, Py_ssize_t *bad,
                                          const int opts)
{
    REAL m[FX_TILE], sh[FX_TILE], f[FX_TILE], a[FX_TILE], b[FX_TILE], ay[FX_TILE], ref[FX_TILE];
    double log_s[FX_TILE], q[FX_TILE], d[FX_TILE], wy[FX_TILE], xy[FX_TILE], loss[FX_TILE];
    double gq[FX_TILE], e_arg[FX_TILE];
    Py_ssize_t cls[FX_TILE], T = v->T, l;
    const int by_index = A->y != NULL;
    const double b_smooth = A->eps / fx_n_classes(A);
    const double *row_max = A->row_max ? A->row_max + v->n0 : NULL;    /* a class slice */
    const REAL cap = opts ? (REAL)A->softcap : (REAL)0;
    FX_SFX(fx_tile_stats)(v->x, T, A->shape.C, v->stride, m, sh, log_s, v->g, 0, cap);
    if (row_max)
        for (l = 0; l < T; l++) ref[l] = (REAL)row_max[l];
    if (!by_index || A->eps > 0.0)      /* smoothing or probabilities: a pass over the classes */
        FX_SFX(fx_tile_mass)(v->x, v->t, (const REAL *)A->w, T, A->shape.C, v->stride,
                             row_max ? ref : sh, by_index ? 0.0 : 1.0 - A->eps,
                             by_index ? 1.0 : b_smooth, q, d, cap);
    else
        for (l = 0; l < T; l++) { q[l] = 0.0; d[l] = 0.0; }
    if (by_index)
        FX_SFX(fx_tile_targets)(A, v, row_max ? ref : m, cls, wy, xy, bad, cap);
    else
        for (l = 0; l < T; l++) { wy[l] = 0.0; xy[l] = 0.0; cls[l] = 0; }
    if (by_index && !row_max && !A->gout && A->eps == 0.0 && !opts)     /* the common case */
        FX_SFX(fx_tile_finish)(A, v, m, sh, log_s, cls, wy, xy, q, d, loss, gq, e_arg, a, b, ay, 0, 1);
    else
        FX_SFX(fx_tile_finish)(A, v, m, sh, log_s, cls, wy, xy, q, d, loss, gq, e_arg, a, b, ay, opts, 0);
    /* gq / S (the shift is the max): a loop of its own, so that its exp runs
       in vectors, and none without a gradient */
    if (v->g)
        for (l = 0; l < T; l++) f[l] = (REAL)(gq[l] * fx_exp_d(e_arg[l]));
    else
        for (l = 0; l < T; l++) f[l] = (REAL)0;
    if (A->sw)         /* the sample weights: a loop of their own (f carries gq) */
        for (l = 0; l < T; l++) {
            fx_xent_coef r = {loss[l], (double)f[l], (double)a[l], (double)b[l], (double)ay[l]};
            r = fx_xent_weigh(r, A->sw[v->n0 + l]);
            loss[l] = r.loss;
            f[l] = (REAL)r.gq;
            a[l] = (REAL)r.a;
            b[l] = (REAL)r.b;
            ay[l] = (REAL)r.ay;
        }
    double total = 0.0;
    for (l = 0; l < T; l++) total += loss[l];
    if (A->loss)
        for (l = 0; l < T; l++) ((REAL *)A->loss)[v->n0 + l] = (REAL)loss[l];
    if (v->g && (v->h || v->v)) FX_SFX(fx_tile_second)(v, A->shape.C, f, m, log_s);
    if (v->g && !v->v) FX_SFX(fx_tile_grad)(A, v, f, a, b, ay, cls, cap);
    return total;
}

/* Rows of few classes (C <= FX_SMALL_C): a row is too short to vectorize along,
   so FX_TILE rows at a time are transposed into a small buffer (cache only) and
   done as a tile with one lane per row. */
static FX_INLINE double FX_SFX(fx_xent_rows_small)(const fx_xent_args *A, fx_block k, Py_ssize_t *bad,
                                                const int opts)
{
    REAL xt[FX_SMALL_C * FX_TILE], gt[FX_SMALL_C * FX_TILE], tt[FX_SMALL_C * FX_TILE];
    REAL vt[FX_SMALL_C * FX_TILE];
    Py_ssize_t C = A->shape.C;
    const REAL *x = (const REAL *)A->x, *t = (const REAL *)A->t, *vv = (const REAL *)A->v;
    REAL *g = (REAL *)A->grad, *h = (REAL *)A->hess;
    double total = 0.0;
    for (Py_ssize_t r0 = k.n0; r0 < k.n0 + k.count; r0 += FX_TILE) {
        FX_SFX(fx_tile) v = {xt, t ? tt : NULL, g ? gt : NULL, FX_TILE, 0, r0,
                             vv ? vt : NULL, h ? h + r0 * C : NULL, 1, C};
        v.T = k.n0 + k.count - r0 < FX_TILE ? k.n0 + k.count - r0 : FX_TILE;
        FX_SFX(fx_transpose)(x + r0 * C, v.T, C, C, xt, FX_TILE);
        if (t) FX_SFX(fx_transpose)(t + r0 * C, v.T, C, C, tt, FX_TILE);
        if (vv) FX_SFX(fx_transpose)(vv + r0 * C, v.T, C, C, vt, FX_TILE);
        total += FX_SFX(fx_xent_tile)(A, &v, bad, opts);
        if (g) FX_SFX(fx_transpose)(gt, C, v.T, FX_TILE, g + r0 * C, C);
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* Cross-entropy of rows, class axis contiguous                              */
/* ------------------------------------------------------------------------ */

/* The statistics fx_xent_finish takes, for row xr (targets tr, or class c),
   soft-capped where cap > 0. */
static inline fx_xent_stats FX_SFX(fx_row_target)(const fx_xent_args *A, const FX_SFX(fx_row) *row,
                                                  const REAL *xr, const REAL *tr, Py_ssize_t c, REAL cap)
{
    const REAL *w = (const REAL *)A->w;
    const double b_smooth = A->eps / fx_n_classes(A);
    fx_xent_stats s = {0};
    s.kept = 1;
    /* lse - M, NaN when the max is not finite (PyTorch: such a row is NaN).
       Kept relative to M: M + log_s would lose log_s to rounding when |M| is
       large, and p = exp(x - M - log_s) with it. */
    s.log_s = row->finite ? row->log_s : NAN;
    s.m = row->M;
    if (A->y) {
        s.wy = c < 0 ? 0.0 : w ? (double)w[c] : 1.0;           /* c < 0: in another slice */
        s.xy = c < 0 ? 0.0 : (double)(cap > (REAL)0 ? FX_SFX(fx_cap)(xr[c], cap, (REAL)1 / cap) : xr[c]) - row->M;
        if (A->eps > 0.0) {
            double unused;
            s.d = b_smooth * FX_SFX(fx_row_mass)(row, xr, A->shape.C, w, NULL, 0.0, 1.0, &unused, cap);
            s.q = b_smooth * A->w_sum;
        }
    } else {
        s.d = FX_SFX(fx_row_mass)(row, xr, A->shape.C, w, tr, 1.0 - A->eps, b_smooth, &s.q, cap);
    }
    return s;
}

/* Turns the exponentials stored in gr into the row's gradient (of logits xr:
   where cap > 0, each term times the cap's derivative), and its Hessian's
   diagonal into hr (if not NULL; never with a cap). */
static inline void FX_SFX(fx_row_grad)(const fx_xent_args *A, const FX_SFX(fx_row) *row, REAL *gr,
                                       REAL *hr, const REAL *xr, const REAL *tr, Py_ssize_t c,
                                       fx_xent_coef r, double log_s, REAL cap)
{
    const REAL *w = (const REAL *)A->w;
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        Py_ssize_t len, off = fx_chunk_at(A->shape.C, row->K, k, &len);
        REAL f = (REAL)FX_SFX(fx_row_chunk_factor)(row, k, log_s, r.gq);
        if (hr)
            FX_SFX(fx_chunk_hess)(gr + off, hr + off, len, f,
                                  (REAL)FX_SFX(fx_row_chunk_factor)(row, k, log_s, 1.0));
        FX_SFX(fx_chunk_grad)(gr + off, len, f, w ? w + off : NULL, tr ? tr + off : NULL,
                              (REAL)r.a, (REAL)r.b, xr + off, cap);
    }
    if (A->y && c >= 0)
        gr[c] -= cap > (REAL)0 ? (REAL)r.ay * FX_SFX(fx_dtanh)(xr[c] * ((REAL)1 / cap)) : (REAL)r.ay;
}

/* Turns the exponentials stored in gr into the row's Hessian times vr. */
static inline void FX_SFX(fx_row_hvp)(const FX_SFX(fx_row) *row, Py_ssize_t C, REAL *gr,
                                      const REAL *vr, double gq, double log_s)
{
    double pv = 0.0;                    /* sum_j p_j v_j */
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        Py_ssize_t len, off = fx_chunk_at(C, row->K, k, &len);
        double p1 = FX_SFX(fx_row_chunk_factor)(row, k, log_s, 1.0);
        pv += p1 * FX_SFX(fx_chunk_dot)(gr + off, vr + off, len);
    }
    for (Py_ssize_t k = 0; k < row->nk; k++) {
        Py_ssize_t len, off = fx_chunk_at(C, row->K, k, &len);
        REAL f = (REAL)FX_SFX(fx_row_chunk_factor)(row, k, log_s, gq);
        FX_SFX(fx_chunk_hvp)(gr + off, vr + off, len, f, (REAL)pv);
    }
}

/* A class slice: the row's statistics become those of the whole row (its max
   over all classes, and its log-sum-exp relative to it). */
static inline void FX_SFX(fx_row_use_totals)(FX_SFX(fx_row) *row, double row_max, double log_norm)
{
    row->M = row_max;
    row->log_s = log_norm;
    row->finite = isfinite(row_max) && isfinite(log_norm);
}

/* Cross-entropy of the rows of block k; returns the sum of their losses.
   opts: see fx_xent_block. */
static FX_INLINE double FX_SFX(fx_xent_rows)(const fx_xent_args *A, fx_block k, Py_ssize_t *bad,
                                          const int opts)
{
    fx_xent_args opt = *A;   /* a private copy: its fields stay in registers */
    opt.z_loss = opts ? opt.z_loss : 0.0;
    const REAL cap = opts ? (REAL)A->softcap : (REAL)0;
    Py_ssize_t C = A->shape.C;
    double total = 0.0;
    for (Py_ssize_t n = k.n0; n < k.n0 + k.count; n++) {
        const REAL *xr = (const REAL *)A->x + n * C;
        const REAL *tr = A->t ? (const REAL *)A->t + n * C : NULL;
        REAL *gr = A->grad ? (REAL *)A->grad + n * C : NULL;
        REAL *hr = A->hess ? (REAL *)A->hess + n * C : NULL;
        double wy = 0.0;
        Py_ssize_t c = A->y ? FX_SFX(fx_target_of)(A, n, &wy) : 0;
        if (c < 0 && c != FX_ELSEWHERE) {   /* ignored, or out of range (reported) */
            if (c == FX_BAD_INDEX && *bad < 0) *bad = n;
            if (A->loss) ((REAL *)A->loss)[n] = 0;
            if (gr) {                       /* its gradient, Hessian and H v alike */
                int nan_row = A->row_max ? !(isfinite(A->row_max[n]) && isfinite(A->log_norm[n]))
                                         : FX_SFX(fx_softmax_is_nan)(xr, C, cap);
                REAL v = (REAL)fx_xent_ignored_grad(A, nan_row ? NAN : 0.0);
                for (Py_ssize_t j = 0; j < C; j++) gr[j] = v;
                if (hr) for (Py_ssize_t j = 0; j < C; j++) hr[j] = v;
            }
            continue;
        }
        FX_SFX(fx_row) row;
        FX_SFX(fx_row_stats)(xr, C, &row, gr, 0, cap);
        if (A->row_max) FX_SFX(fx_row_use_totals)(&row, A->row_max[n], A->log_norm[n]);
        fx_xent_stats s = FX_SFX(fx_row_target)(A, &row, xr, tr, c, cap);
        s.gs = fx_gs(&opt, n);
        s.mass = A->row_max ? fx_slice_mass(&opt, n, wy) : 0.0;
        fx_xent_coef r = fx_xent_finish(&opt, s);
        if (opt.sw) r = fx_xent_weigh(r, opt.sw[n]);
        if (A->loss) ((REAL *)A->loss)[n] = (REAL)r.loss;
        total += r.loss;
        if (gr && A->v) FX_SFX(fx_row_hvp)(&row, C, gr, (const REAL *)A->v + n * C, r.gq, s.log_s);
        else if (gr) FX_SFX(fx_row_grad)(A, &row, gr, hr, xr, tr, c, r, s.log_s, cap);
    }
    return total;
}

/* ------------------------------------------------------------------------ */
/* The block entry points                                                    */
/* ------------------------------------------------------------------------ */

/* Cross-entropy of block b of the call (fx_block_at): per-sample losses and the
   gradient of its samples, and the sum of its losses.  *bad: the first sample
   of the block whose class index is out of range (its loss is 0, its gradient
   that of an ignored sample), or -1.  The paths are compiled twice (opts, a
   constant in each call): without z_loss and softcap, where every test of
   them folds away and the kernel is the plain one, and with them. */
static FX_INLINE double FX_SFX(fx_xent_block_of)(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad,
                                              const int opts)
{
    fx_block k = fx_block_at(&A->shape, b);
    *bad = -1;
    if (A->shape.inner > 1) {
        const REAL *t = (const REAL *)A->t, *vv = (const REAL *)A->v;
        REAL *g = (REAL *)A->grad, *h = (REAL *)A->hess;
        FX_SFX(fx_tile) v = {(const REAL *)A->x + k.x_off, t ? t + k.x_off : NULL,
                             g ? g + k.x_off : NULL, A->shape.inner, k.count, k.n0,
                             vv ? vv + k.x_off : NULL, h ? h + k.x_off : NULL,
                             A->shape.inner, 1};
        return FX_SFX(fx_xent_tile)(A, &v, bad, opts);
    }
    if (A->shape.C <= FX_SMALL_C) return FX_SFX(fx_xent_rows_small)(A, k, bad, opts);
    return FX_SFX(fx_xent_rows)(A, k, bad, opts);
}
static double FX_SFX(fx_xent_block)(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad)
{
    if (A->z_loss > 0.0 || A->softcap > 0.0) return FX_SFX(fx_xent_block_of)(A, b, bad, 1);
    return FX_SFX(fx_xent_block_of)(A, b, bad, 0);
}

/* nll of block b: loss -w_y x_y sw per sample (0 where ignored); the whole
   gradient of the block, -w_y gs sw at each target and 0 elsewhere.  *bad as for
   fx_xent_block. */
static double FX_SFX(fx_nll_block)(const fx_xent_args *A, Py_ssize_t b, Py_ssize_t *bad)
{
    fx_block k = fx_block_at(&A->shape, b);
    Py_ssize_t C = A->shape.C, inner = A->shape.inner;
    Py_ssize_t lane = inner == 1 ? C : 1, cstride = inner == 1 ? 1 : inner;  /* sample, class steps */
    const REAL *x = (const REAL *)A->x + k.x_off, *w = (const REAL *)A->w;
    REAL *g = A->grad ? (REAL *)A->grad + k.x_off : NULL;
    double total = 0.0;
    *bad = -1;
    if (g && inner == 1) memset(g, 0, (size_t)(k.count * C) * sizeof(REAL));
    if (g && inner > 1)
        for (Py_ssize_t c = 0; c < C; c++) memset(g + c * inner, 0, (size_t)k.count * sizeof(REAL));
    for (Py_ssize_t j = 0; j < k.count; j++) {
        Py_ssize_t n = k.n0 + j, c = fx_class_of(A->y + n, A->ignore_index, C);
        if (c == FX_BAD_INDEX && *bad < 0) *bad = n;
        double wy = c < 0 ? 0.0 : (w ? (double)w[c] : 1.0);
        double loss = c < 0 ? 0.0 : -wy * (double)x[j * lane + c * cstride] * fx_sw(A, n);
        if (A->loss) ((REAL *)A->loss)[n] = (REAL)loss;
        total += loss;
        if (g && c >= 0) g[j * lane + c * cstride] = (REAL)(-wy * (fx_gs(A, n) * fx_sw(A, n)));
    }
    return total;
}
