#include "optim.h"
#include "threads.h"

wt_status sgd_step(float *param, float *buf, const float *grad, int64_t n,
                   const sgd_options *opt, int first_step) {
    if (opt->momentum != 0.0f && !buf) {
        return WT_ERR_VALUE;
    }
    if (opt->nesterov && (opt->momentum <= 0.0f || opt->dampening != 0.0f)) {
        return WT_ERR_VALUE;
    }
    const float lr = opt->lr, mom = opt->momentum, wd = opt->weight_decay;
    const float keep = 1.0f - opt->dampening;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n > WT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        float d = grad[i];
        if (wd != 0.0f) {
            d += wd * param[i];
        }
        if (mom != 0.0f) {
            const float b = first_step ? d : mom * buf[i] + keep * d;
            buf[i] = b;
            d = opt->nesterov ? d + mom * b : b;
        }
        param[i] -= lr * d;
    }
    return WT_OK;
}
