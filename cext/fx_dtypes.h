/*
 * fastxent: instantiates the template named by FX_TEMPLATE once per dtype,
 * with REAL float and names suffixed _f, then REAL double and names suffixed
 * _d.  Included (no include guard) as
 *
 *     #define FX_TEMPLATE "fx_xent_impl.h"
 *     #include "fx_dtypes.h"
 *     #undef FX_TEMPLATE
 */
#define REAL float
#define FX_SFX(name) name##_f
#include FX_TEMPLATE
#undef REAL
#undef FX_SFX

#define REAL double
#define FX_SFX(name) name##_d
#include FX_TEMPLATE
#undef REAL
#undef FX_SFX
