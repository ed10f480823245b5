#include "batchnorm.h"

#include <math.h>

#include "reduce.h"
#include "threads.h"

wt_status batchnorm2d_forward_train(float *y, float *save_mean, float *save_invstd,
                                    float *running_mean, float *running_var, const float *x,
                                    const float *weight, const float *bias, int64_t n,
                                    int64_t c, int64_t hw, float momentum, float eps) {
    const int64_t count = n * hw;
    if (count < 2) {
        return WT_ERR_SHAPE;
    }
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n * c * hw > WT_PARALLEL_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        double sum = 0.0;
        for (int64_t ni = 0; ni < n; ni++) {
            sum += wt_sum(x + (ni * c + ci) * hw, hw);
        }
        const double mean = sum / (double)count;
        /* Two passes (mean, then squared deviations) for accuracy when |mean| >> std; the
         * deviations are taken from the float mean and corrected to the exact one. */
        const float mean_f = (float)mean;
        double sq = 0.0;
        for (int64_t ni = 0; ni < n; ni++) {
            const float *xc = x + (ni * c + ci) * hw;
            sq += wt_sum_sq_dev(xc, mean_f, hw);
        }
        const double rounding = mean - (double)mean_f;
        const double var = fmax(sq / (double)count - rounding * rounding, 0.0);
        const float invstd = (float)(1.0 / sqrt(var + eps));
        const float scale = (weight ? weight[ci] : 1.0f) * invstd;
        const float shift = (bias ? bias[ci] : 0.0f) - (float)mean * scale;
        for (int64_t ni = 0; ni < n; ni++) {
            const float *xc = x + (ni * c + ci) * hw;
            float *yc = y + (ni * c + ci) * hw;
            for (int64_t i = 0; i < hw; i++) {
                yc[i] = xc[i] * scale + shift;
            }
        }
        save_mean[ci] = (float)mean;
        save_invstd[ci] = invstd;
        if (running_mean) {
            running_mean[ci] = (1.0f - momentum) * running_mean[ci] + momentum * (float)mean;
        }
        if (running_var) {
            const double unbiased = var * (double)count / (double)(count - 1);
            running_var[ci] = (1.0f - momentum) * running_var[ci] + momentum * (float)unbiased;
        }
    }
    return WT_OK;
}

wt_status batchnorm2d_forward_eval(float *y, const float *x, const float *running_mean,
                                   const float *running_var, const float *weight,
                                   const float *bias, int64_t n, int64_t c, int64_t hw,
                                   float eps) {
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n * c * hw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < n * c; p++) {
        const int64_t ci = p % c;
        const float invstd = 1.0f / sqrtf(running_var[ci] + eps);
        const float scale = (weight ? weight[ci] : 1.0f) * invstd;
        const float shift = (bias ? bias[ci] : 0.0f) - running_mean[ci] * scale;
        const float *xc = x + p * hw;
        float *yc = y + p * hw;
        for (int64_t i = 0; i < hw; i++) {
            yc[i] = xc[i] * scale + shift;
        }
    }
    return WT_OK;
}

/* With xhat = (x - mean) * invstd and g = dy * weight, the training gradient is
 * dx = invstd * (g - mean(g) - xhat * mean(g * xhat)), per channel. */
wt_status batchnorm2d_backward(float *dx, float *dweight, float *dbias, const float *dy,
                               const float *x, const float *weight, const float *mean,
                               const float *invstd, int64_t n, int64_t c, int64_t hw,
                               int training) {
    const int64_t count = n * hw;
    if (count < 1) {
        return WT_OK;
    }
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n * c * hw > WT_PARALLEL_MIN)
    for (int64_t ci = 0; ci < c; ci++) {
        const float m = mean[ci], is = invstd[ci];
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (int64_t ni = 0; ni < n; ni++) {
            const float *xc = x + (ni * c + ci) * hw;
            const float *dyc = dy + (ni * c + ci) * hw;
            sum_dy += wt_sum(dyc, hw);
            sum_dy_xhat += wt_dot_shifted(dyc, xc, m, hw);
        }
        sum_dy_xhat *= is;
        if (dweight) {
            dweight[ci] += (float)sum_dy_xhat;
        }
        if (dbias) {
            dbias[ci] += (float)sum_dy;
        }
        if (!dx) {
            continue;
        }
        const float w = weight ? weight[ci] : 1.0f;
        const float scale = w * is;
        const float mean_dy = training ? (float)(sum_dy / (double)count) : 0.0f;
        const float k = training ? (float)(sum_dy_xhat / (double)count) * is : 0.0f;
        for (int64_t ni = 0; ni < n; ni++) {
            const float *xc = x + (ni * c + ci) * hw;
            const float *dyc = dy + (ni * c + ci) * hw;
            float *dxc = dx + (ni * c + ci) * hw;
            for (int64_t i = 0; i < hw; i++) {
                dxc[i] = scale * (dyc[i] - mean_dy - (xc[i] - m) * k);
            }
        }
    }
    return WT_OK;
}
