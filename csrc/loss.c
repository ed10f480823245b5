#include "loss.h"

#include <math.h>

wt_status cross_entropy_forward_backward(double *loss, float *grad, const float *logits,
                                         const int64_t *labels, int64_t n, int64_t k,
                                         float smoothing) {
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k) {
            return WT_ERR_VALUE;
        }
    }
    double total = 0.0;
    const double on = 1.0 - smoothing, off = (double)smoothing / (double)k;
    for (int64_t i = 0; i < n; i++) {
        const float *z = logits + i * k;
        float zmax = z[0];
        for (int64_t j = 1; j < k; j++) {
            zmax = z[j] > zmax ? z[j] : zmax;
        }
        double sum_exp = 0.0, sum_z = 0.0;
        for (int64_t j = 0; j < k; j++) {
            sum_exp += exp((double)z[j] - zmax);
            sum_z += (double)z[j] - zmax;
        }
        const double lse = log(sum_exp);
        const double zy = (double)z[labels[i]] - zmax;
        total += lse - on * zy - off * sum_z;
        if (grad) {
            float *g = grad + i * k;
            for (int64_t j = 0; j < k; j++) {
                const double p = exp((double)z[j] - zmax - lse);
                g[j] = (float)((p - off - (j == labels[i] ? on : 0.0)) / (double)n);
            }
        }
    }
    *loss = n > 0 ? total / (double)n : NAN;
    return WT_OK;
}
