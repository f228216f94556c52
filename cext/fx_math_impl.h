/*
 * One template for the element functions of fx_math.h; included once per dtype
 * with REAL, UINT, SINT, FX_SFX and the FX_C_* constants defined, which it
 * #undefs at its end.
 *
 * Every function is a straight line of arithmetic, compares and selects: no
 * branch, no table, no libm call, so that GCC and Clang vectorize any loop that
 * calls them.  Special values (NaN, +-inf, 0, subnormals) are handled by the
 * selects at the end of each function.
 */

static FX_INLINE UINT FX_SFX(fx_bits)(REAL x) { union { REAL f; UINT u; } v; v.f = x; return v.u; }
static FX_INLINE REAL FX_SFX(fx_from_bits)(UINT u) { union { REAL f; UINT u; } v; v.u = u; return v.f; }

/* exp(x), within about 1 ulp for every x; exp(-inf) = 0, exp(NaN) = NaN. */
static FX_INLINE REAL FX_SFX(fx_exp)(REAL x)
{
    /* No clamp of x: outside [EXP_LO, EXP_HI] the selects at the end replace the
       result, and the integer steps below cannot overflow for any x (|ni| < 2**31
       for float, 2**63 for double).  NaN flows through the arithmetic. */
    const REAL shifter = FX_C_SHIFTER;   /* 1.5 * 2**mantissa_bits: rounds to an integer */
    const REAL xc = x;
    REAL t = xc * (REAL)FX_C_LOG2E + shifter;
    REAL n = t - shifter;
    REAL r = xc - n * FX_C_LN2_HI;                 /* Cody-Waite: n * LN2_HI is exact */
    r = r - n * FX_C_LN2_LO;
    REAL p = FX_SFX(fx_exp_poly)(r);                /* exp(r), |r| <= ln(2)/2 */
    /* 2**n as two normal factors, so that subnormal results are reached too */
    SINT ni = (SINT)(FX_SFX(fx_bits)(t) - FX_SFX(fx_bits)(shifter));
    SINT n1 = ni >> 1;
    SINT n2 = ni - n1;
    REAL s1 = FX_SFX(fx_from_bits)(((UINT)(n1 + FX_C_BIAS)) << FX_C_MANT);
    REAL s2 = FX_SFX(fx_from_bits)(((UINT)(n2 + FX_C_BIAS)) << FX_C_MANT);
    REAL res = p * s1 * s2;
    res = x > FX_C_EXP_HI ? (REAL)INFINITY : res;
    res = x < FX_C_EXP_LO ? (REAL)0 : res;
    return res;
}

/* log(xs) + kadj ln2 for a positive, normal, finite xs (kadj: the exponent of a
   subnormal's scaling, else 0), within about 1 ulp: the arithmetic of fx_log,
   without its special values. */
static FX_INLINE REAL FX_SFX(fx_log_core)(REAL xs, SINT kadj)
{
    /* x = 2**k * m with m in [sqrt(1/2), sqrt(2)) */
    UINT ix = FX_SFX(fx_bits)(xs) + (FX_SFX(fx_bits)((REAL)1) - FX_C_SQRTH_BITS);
    /* int32 on purpose: int32 -> REAL converts in every SIMD set, int64 does not */
    int32_t k = (int32_t)((SINT)(ix >> FX_C_MANT) - FX_C_BIAS + kadj);
    UINT im = (ix & FX_C_MANT_MASK) + FX_C_SQRTH_BITS;
    REAL f = FX_SFX(fx_from_bits)(im) - (REAL)1;
    /* log(1 + f) = f - f*f/2 + s*(f*f/2 + R(s*s)), s = f / (2 + f) */
    REAL s = f / ((REAL)2 + f);
    REAL z = s * s;
    REAL R = z * FX_SFX(fx_log_poly)(z);
    REAL hfsq = (REAL)0.5 * f * f;
    REAL kf = (REAL)k;
    return kf * FX_C_LN2_HI + ((f - hfsq + s * (hfsq + R)) + kf * FX_C_LN2_LO);
}

/* log(x), within about 1 ulp; log(0) = -inf, log(x < 0) = NaN, log(inf) = inf. */
static FX_INLINE REAL FX_SFX(fx_log)(REAL x)
{
    /* subnormals are scaled into the normal range first */
    int sub = x < FX_C_MIN_NORMAL;
    REAL xs = sub ? x * FX_C_TWO_MANT : x;
    REAL res = FX_SFX(fx_log_core)(xs, sub ? -FX_C_MANT : 0);
    res = x == (REAL)0 ? -(REAL)INFINITY : res;
    res = x < (REAL)0 ? (REAL)NAN : res;
    res = x == (REAL)INFINITY ? (REAL)INFINITY : res;
    res = x != x ? x : res;
    return res;
}

/* fx_log of an x known to be in [1, 2] or NaN, bit for bit, without the
   selects of the special values that no such x is.  (The subnormals' scaling
   stays, though no such x needs it either: without it, GCC contracted the
   vector loop and its scalar remainder differently, and an element's bits
   depended on its place in the array.) */
static FX_INLINE REAL FX_SFX(fx_log_1to2)(REAL x)
{
    int sub = x < FX_C_MIN_NORMAL;
    REAL xs = sub ? x * FX_C_TWO_MANT : x;
    REAL res = FX_SFX(fx_log_core)(xs, sub ? -FX_C_MANT : 0);
    return x != x ? x : res;
}

/* log(1 + u) for u >= -1, accurate near 0 (Kahan's correction of log(1 + u)). */
static FX_INLINE REAL FX_SFX(fx_log1p)(REAL u)
{
    REAL v = (REAL)1 + u;
    REAL d = v - (REAL)1;
    REAL res = FX_SFX(fx_log)(v) * (u / (d == (REAL)0 ? (REAL)1 : d));
    res = d == (REAL)0 ? u : res;
    res = u == (REAL)INFINITY ? u : res;
    return res;
}

/* exp(z) - 1 for 0 <= z <= 2 FX_C_DTANH_ZERO, within about 1 ulp: exp's
   reduction z = n ln2 + r, then 2**n (exp(r) - 1) + (2**n - 1), which keeps
   the relative precision of a small z (n = 0) that exp(z) - 1 would lose. */
static FX_INLINE REAL FX_SFX(fx_expm1_pos)(REAL z)
{
    const REAL shifter = FX_C_SHIFTER;
    REAL t = z * (REAL)FX_C_LOG2E + shifter;
    REAL n = t - shifter;
    REAL r = z - n * FX_C_LN2_HI;
    r = r - n * FX_C_LN2_LO;
    REAL em1_r = r * FX_SFX(fx_expm1_poly)(r);
    SINT ni = (SINT)(FX_SFX(fx_bits)(t) - FX_SFX(fx_bits)(shifter));  /* 0 <= n < BIAS */
    REAL s = FX_SFX(fx_from_bits)(((UINT)(ni + FX_C_BIAS)) << FX_C_MANT);
    return s * em1_r + (s - (REAL)1);
}

/* tanh(u) = (e - 1) / (e + 1), e = exp(2 |u|), the sign of u restored; within
   a few ulp; +-1 beyond FX_C_TANH_ONE (where it rounds to 1) and for +-inf,
   NaN for NaN. */
static FX_INLINE REAL FX_SFX(fx_tanh)(REAL u)
{
    REAL a = u < (REAL)0 ? -u : u;
    a = a > FX_C_TANH_ONE ? (REAL)FX_C_TANH_ONE : a;            /* NaN stays NaN */
    REAL em1 = FX_SFX(fx_expm1_pos)((REAL)2 * a);
    REAL th = em1 / (em1 + (REAL)2);
    return u < (REAL)0 ? -th : th;
}

/* 1 - tanh(u)**2 = 4 e / (e + 1)**2, e = exp(2 |u|): its relative precision
   is kept where tanh(u) is near 1 (where 1 - tanh**2 would cancel); 0 beyond
   FX_C_DTANH_ZERO and for +-inf, NaN for NaN. */
static FX_INLINE REAL FX_SFX(fx_dtanh)(REAL u)
{
    REAL a = u < (REAL)0 ? -u : u;
    REAL ac = a > FX_C_DTANH_ZERO ? (REAL)FX_C_DTANH_ZERO : a;
    REAL em1 = FX_SFX(fx_expm1_pos)((REAL)2 * ac);
    REAL q = (REAL)1 / (em1 + (REAL)2);
    REAL d = ((REAL)4 * q) * ((em1 + (REAL)1) * q);
    return a > FX_C_DTANH_ZERO ? (REAL)0 : d;
}

/* Gemma 2's soft-capping of a logit, cap tanh(x / cap) (inv_cap = 1 / cap):
   +-cap for +-inf, NaN for NaN.  Its derivative is fx_dtanh(x inv_cap). */
static FX_INLINE REAL FX_SFX(fx_cap)(REAL x, REAL cap, REAL inv_cap)
{
    return cap * FX_SFX(fx_tanh)(x * inv_cap);
}

#undef REAL
#undef UINT
#undef SINT
#undef FX_SFX
#undef FX_C_SHIFTER
#undef FX_C_EXP_HI
#undef FX_C_EXP_LO
#undef FX_C_LOG2E
#undef FX_C_LN2_HI
#undef FX_C_LN2_LO
#undef FX_C_BIAS
#undef FX_C_MANT
#undef FX_C_MANT_MASK
#undef FX_C_SQRTH_BITS
#undef FX_C_MIN_NORMAL
#undef FX_C_TWO_MANT
#undef FX_C_TANH_ONE
#undef FX_C_DTANH_ZERO
