#include "linear.h"

#include <limits.h>

#include "blas.h"

wt_status linear_forward(float *y, const float *x, const float *w, const float *bias,
                         int64_t n, int64_t in, int64_t out) {
    if (n > INT_MAX || in > INT_MAX || out > INT_MAX) {
        return WT_ERR_TOO_LARGE;
    }
    if (n == 0) {
        return WT_OK;
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t o = 0; o < out; o++) {
            y[i * out + o] = bias ? bias[o] : 0.0f;
        }
    }
    if (in > 0) {
        WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)in,
                             1.0f, x, (int)in, w, (int)in, 1.0f, y, (int)out);
    }
    return WT_OK;
}

wt_status linear_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                          const float *w, int64_t n, int64_t in, int64_t out) {
    if (n > INT_MAX || in > INT_MAX || out > INT_MAX) {
        return WT_ERR_TOO_LARGE;
    }
    if (n == 0) {
        return WT_OK;
    }
    if (dx && in > 0 && out > 0) {
        WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in,
                             (int)out, 1.0f, dy, (int)out, w, (int)in, 1.0f, dx, (int)in);
    }
    if (dw && in > 0 && out > 0) {
        WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)n,
                             1.0f, dy, (int)out, x, (int)in, 1.0f, dw, (int)in);
    }
    if (dbias) {
        for (int64_t o = 0; o < out; o++) {
            double acc = 0.0;
            for (int64_t i = 0; i < n; i++) {
                acc += dy[i * out + o];
            }
            dbias[o] += (float)acc;
        }
    }
    return WT_OK;
}
