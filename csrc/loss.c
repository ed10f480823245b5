#include "loss.h"

#include <math.h>

static int in_unit_range(const float *v, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        if (!(v[i] >= 0.0f && v[i] <= 1.0f)) {
            return 0;
        }
    }
    return 1;
}

static int non_negative(const float *v, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        if (!(v[i] >= 0.0f && isfinite(v[i]))) {
            return 0;
        }
    }
    return 1;
}

/* The coefficient of log softmax(z_i)_j in row i's cost: w_j t_ij after smoothing. */
static double coefficient(const int64_t *labels, const float *targets, const float *weight,
                          int64_t i, int64_t j, int64_t k, double on, double off) {
    const double w = weight ? (double)weight[j] : 1.0;
    const double t = targets ? (double)targets[i * k + j] : (labels[i] == j ? 1.0 : 0.0);
    return w * (on * t + off);
}

wt_status cross_entropy_forward_backward(double *loss, float *grad, const float *logits,
                                         const int64_t *labels, const float *targets,
                                         const float *weight, int64_t n, int64_t k,
                                         float smoothing) {
    if ((labels == NULL) == (targets == NULL)) {
        return WT_ERR_VALUE;
    }
    for (int64_t i = 0; labels && i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k) {
            return WT_ERR_VALUE;
        }
    }
    if ((targets && !in_unit_range(targets, n * k)) || (weight && !non_negative(weight, k))) {
        return WT_ERR_VALUE;
    }
    double denominator = (double)n;
    if (labels && weight) {
        denominator = 0.0;
        for (int64_t i = 0; i < n; i++) {
            denominator += (double)weight[labels[i]];
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
        double sum_exp = 0.0;
        for (int64_t j = 0; j < k; j++) {
            sum_exp += exp((double)z[j] - zmax);
        }
        const double lse = log(sum_exp);
        double row = 0.0, mass = 0.0;
        for (int64_t j = 0; j < k; j++) {
            const double a = coefficient(labels, targets, weight, i, j, k, on, off);
            row -= a * ((double)z[j] - zmax - lse);
            mass += a;
        }
        total += row;
        if (grad) {
            float *g = grad + i * k;
            for (int64_t j = 0; j < k; j++) {
                const double p = exp((double)z[j] - zmax - lse);
                const double a = coefficient(labels, targets, weight, i, j, k, on, off);
                g[j] = (float)((mass * p - a) / denominator);
            }
        }
    }
    *loss = n > 0 ? total / denominator : NAN;
    return WT_OK;
}
