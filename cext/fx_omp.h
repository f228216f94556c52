/* fastxent: every OpenMP call in one place, with serial fallbacks for a build
   without OpenMP. */
#ifndef FASTXENT_FX_OMP_H
#define FASTXENT_FX_OMP_H
#ifdef _OPENMP
#include <omp.h>
static inline int fx_openmp_enabled(void) { return 1; }
static inline int fx_omp_max_threads(void) { return omp_get_max_threads(); }
static inline void fx_omp_set_num_threads(int n) { omp_set_num_threads(n); }
#else
static inline int fx_openmp_enabled(void) { return 0; }
static inline int fx_omp_max_threads(void) { return 1; }
static inline void fx_omp_set_num_threads(int n) { (void)n; }
#endif

/* CPU features for choosing the kernel module at import (x86-64 only). */
static inline int fx_cpu_has_avx2_fma(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}
/* Everything the avx512 module is compiled for (setup.py's SIMD_FLAGS: AVX-512
   F, DQ, VL and BW, with AVX2 and FMA), each enabled by the OS as well. */
static inline int fx_cpu_has_avx512(void)
{
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}
#endif
