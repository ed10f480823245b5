/* Float reductions the compiler can vectorise: 16 independent partial sums (no
 * reassociation needed, so no -ffast-math), combined in double. A plain `sum += x[i]` loop is
 * one dependent add per element, several times slower on the long planes batch norm and
 * bias gradients reduce. */
#ifndef WT_REDUCE_H
#define WT_REDUCE_H

#include <stdint.h>

#define WT_LANES 16

/* sum of x[i] */
static inline double wt_sum(const float *x, int64_t n) {
    float acc[WT_LANES] = {0};
    int64_t i = 0;
    for (; i + WT_LANES <= n; i += WT_LANES) {
        for (int k = 0; k < WT_LANES; k++) {
            acc[k] += x[i + k];
        }
    }
    double total = 0.0;
    for (int k = 0; k < WT_LANES; k++) {
        total += acc[k];
    }
    for (; i < n; i++) {
        total += x[i];
    }
    return total;
}

/* sum of (x[i] - shift)^2 */
static inline double wt_sum_sq_dev(const float *x, float shift, int64_t n) {
    float acc[WT_LANES] = {0};
    int64_t i = 0;
    for (; i + WT_LANES <= n; i += WT_LANES) {
        for (int k = 0; k < WT_LANES; k++) {
            const float d = x[i + k] - shift;
            acc[k] += d * d;
        }
    }
    double total = 0.0;
    for (int k = 0; k < WT_LANES; k++) {
        total += acc[k];
    }
    for (; i < n; i++) {
        const double d = (double)x[i] - shift;
        total += d * d;
    }
    return total;
}

/* sum of a[i] * (b[i] - shift) */
static inline double wt_dot_shifted(const float *a, const float *b, float shift, int64_t n) {
    float acc[WT_LANES] = {0};
    int64_t i = 0;
    for (; i + WT_LANES <= n; i += WT_LANES) {
        for (int k = 0; k < WT_LANES; k++) {
            acc[k] += a[i + k] * (b[i + k] - shift);
        }
    }
    double total = 0.0;
    for (int k = 0; k < WT_LANES; k++) {
        total += acc[k];
    }
    for (; i < n; i++) {
        total += (double)a[i] * (b[i] - shift);
    }
    return total;
}

#endif
