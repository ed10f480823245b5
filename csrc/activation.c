#include "activation.h"
#include "threads.h"

wt_status clamp_forward(float *y, const float *x, int64_t n, float cap) {
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n > WT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        y[i] = v > 0.0f ? (v < cap ? v : cap) : (v != v ? v : 0.0f);
    }
    return WT_OK;
}

wt_status clamp_backward(float *dx, const float *dy, const float *y, int64_t n, float cap) {
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n > WT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        /* Unconditional loads and two selects, not `&&` around a load: that is control
         * flow, which stops the loop from vectorising. */
        const float v = y[i];
        float g = dy[i];
        g = v > 0.0f ? g : 0.0f;
        g = v < cap ? g : 0.0f;
        dx[i] = g;
    }
    return WT_OK;
}

wt_status add_forward(float *y, const float *a, const float *b, int64_t n) {
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n > WT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        y[i] = a[i] + b[i];
    }
    return WT_OK;
}
