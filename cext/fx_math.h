/*
 * fastxent: vectorizable elementary functions for float and double.
 *
 * Why not libm: a call per element stops the compiler from vectorizing the loop
 * around it, and the loss kernels spend most of their time in exp and log.
 * These are the classic reductions (Cody-Waite for exp, the fdlibm log) with
 * polynomials long enough for about 1 ulp, written without branches.
 */
#ifndef FASTXENT_FX_MATH_H
#define FASTXENT_FX_MATH_H

#include <math.h>
#include <stdint.h>

#if defined(_MSC_VER)
#define FX_INLINE __forceinline
#define FX_NOINLINE __declspec(noinline)
#else
#define FX_INLINE inline __attribute__((always_inline))
#define FX_NOINLINE __attribute__((noinline))
#endif

/* ---- float: Taylor terms of exp to degree 7 (|r| <= ln2/2: < 0.1 ulp) ---- */
/* (exp(r) - 1) / r: fx_expm1_pos needs it apart from the leading 1 */
static FX_INLINE float fx_expm1_poly_f(float r)
{
    float p = 1.0f / 5040.0f + r * (1.0f / 40320.0f);
    p = 1.0f / 720.0f + r * p;
    p = 1.0f / 120.0f + r * p;
    p = 1.0f / 24.0f + r * p;
    p = 1.0f / 6.0f + r * p;
    p = 0.5f + r * p;
    return 1.0f + r * p;
}
static FX_INLINE float fx_exp_poly_f(float r) { return 1.0f + r * fx_expm1_poly_f(r); }
/* log: R(z) / z with the odd-series terms 2/(2k+1), |s| <= 0.1716 */
static FX_INLINE float fx_log_poly_f(float z)
{
    float p = 2.0f / 11.0f;
    p = 2.0f / 9.0f + z * p;
    p = 2.0f / 7.0f + z * p;
    p = 2.0f / 5.0f + z * p;
    return 2.0f / 3.0f + z * p;
}

/* ---- double: Taylor terms of exp to degree 13 ---- */
static FX_INLINE double fx_expm1_poly_d(double r)
{
    double p = 1.0 / 6227020800.0;              /* 1/13! */
    p = 1.0 / 479001600.0 + r * p;              /* 1/12! */
    p = 1.0 / 39916800.0 + r * p;
    p = 1.0 / 3628800.0 + r * p;
    p = 1.0 / 362880.0 + r * p;
    p = 1.0 / 40320.0 + r * p;
    p = 1.0 / 5040.0 + r * p;
    p = 1.0 / 720.0 + r * p;
    p = 1.0 / 120.0 + r * p;
    p = 1.0 / 24.0 + r * p;
    p = 1.0 / 6.0 + r * p;
    p = 0.5 + r * p;
    return 1.0 + r * p;
}
static FX_INLINE double fx_exp_poly_d(double r) { return 1.0 + r * fx_expm1_poly_d(r); }
static FX_INLINE double fx_log_poly_d(double z)
{
    double p = 2.0 / 23.0;
    p = 2.0 / 21.0 + z * p;
    p = 2.0 / 19.0 + z * p;
    p = 2.0 / 17.0 + z * p;
    p = 2.0 / 15.0 + z * p;
    p = 2.0 / 13.0 + z * p;
    p = 2.0 / 11.0 + z * p;
    p = 2.0 / 9.0 + z * p;
    p = 2.0 / 7.0 + z * p;
    p = 2.0 / 5.0 + z * p;
    return 2.0 / 3.0 + z * p;
}

/* ---- float instance ---- */
#define REAL float
#define UINT uint32_t
#define SINT int32_t
#define FX_SFX(name) name##_f
#define FX_C_SHIFTER 12582912.0f              /* 0x1.8p23 */
#define FX_C_EXP_HI 88.72283935546875f        /* above: overflow to inf */
#define FX_C_EXP_LO -103.972084045410f        /* below: 0 */
#define FX_C_LOG2E 1.44269504088896341
#define FX_C_LN2_HI 0.693359375f
#define FX_C_LN2_LO -2.12194440e-4f
#define FX_C_BIAS 127
#define FX_C_MANT 23
#define FX_C_MANT_MASK 0x007fffffu
#define FX_C_SQRTH_BITS 0x3f3504f3u           /* sqrt(1/2) */
#define FX_C_MIN_NORMAL 1.17549435e-38f
#define FX_C_TWO_MANT 8388608.0f
#define FX_C_TANH_ONE 10.0f                   /* above: tanh rounds to 1 */
#define FX_C_DTANH_ZERO 40.0f                 /* above: 1 - tanh**2 < 1e-34, taken as 0 */
#include "fx_math_impl.h"   /* it #undefs its parameters */

/* ---- double instance ---- */
#define REAL double
#define UINT uint64_t
#define SINT int64_t
#define FX_SFX(name) name##_d
#define FX_C_SHIFTER 6755399441055744.0       /* 0x1.8p52 */
#define FX_C_EXP_HI 709.782712893383973
#define FX_C_EXP_LO -745.133219101941108
#define FX_C_LOG2E 1.44269504088896341
#define FX_C_LN2_HI 6.93147180369123816490e-01
#define FX_C_LN2_LO 1.90821492927058770002e-10
#define FX_C_BIAS 1023
#define FX_C_MANT 52
#define FX_C_MANT_MASK 0x000fffffffffffffull
#define FX_C_SQRTH_BITS 0x3fe6a09e667f3bcdull
#define FX_C_MIN_NORMAL 2.2250738585072014e-308
#define FX_C_TWO_MANT 4503599627370496.0
#define FX_C_TANH_ONE 20.0
#define FX_C_DTANH_ZERO 350.0                 /* 1 - tanh**2 < 1e-303 */
#include "fx_math_impl.h"

#endif
