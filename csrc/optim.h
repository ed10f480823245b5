/* SGD update of one parameter tensor in place, torch.optim.SGD semantics. */
#ifndef WT_OPTIM_H
#define WT_OPTIM_H

#include "common.h"

typedef struct {
    float lr, momentum, dampening, weight_decay;
    int nesterov;
} sgd_options;

/* d = grad + weight_decay * param; with momentum, buf = d on the first step (first_step = 1)
 * and buf = momentum * buf + (1 - dampening) * d after; d = d + momentum * buf (Nesterov) or
 * d = buf; param -= lr * d. buf (n) may be NULL when momentum is 0. */
wt_status sgd_step(float *param, float *buf, const float *grad, int64_t n,
                   const sgd_options *opt, int first_step);

#endif
