/* Deliberate faults for tools/run_sanitized.sh, compiled into the sanitized
 * build only (setup.py defines FX_SANITIZE_SELFTEST with FASTXENT_SANITIZE=1).
 * The drivers check every length before a kernel runs, so no public call can
 * make a kernel read out of bounds; these prove instead that code compiled into
 * the kernel modules is instrumented: each must be reported by ASan or UBSan.
 * Elsewhere they do nothing and FX_HAS_SELFTEST is 0. */
#ifndef FX_SELFTEST_H
#define FX_SELFTEST_H

#include <stddef.h>
#include <stdlib.h>

#ifdef FX_SANITIZE_SELFTEST
#define FX_HAS_SELFTEST 1
/* kind 0: read one element past a heap buffer of n doubles.
 * kind 1: multiply two signed sizes whose product overflows (n * n). */
static double fx_selftest_fault(int kind, ptrdiff_t n)
{
    if (kind == 0) {
        volatile double *p = (volatile double *)calloc((size_t)n, sizeof(double));
        double v;
        if (p == NULL)
            return 0.0;
        v = p[n];
        free((void *)p);
        return v;
    }
    return (double)(n * n);
}
#else
#define FX_HAS_SELFTEST 0
static double fx_selftest_fault(int kind, ptrdiff_t n) { (void)kind; (void)n; return 0.0; }
#endif

#endif
