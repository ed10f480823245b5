/* Softmax cross-entropy with integer labels, loss and logit gradient in one pass. */
#ifndef WT_LOSS_H
#define WT_LOSS_H

#include "common.h"

/* loss = mean over rows of -sum_k t_k log softmax(logits)_k with t = (1 - smoothing) onehot
 * + smoothing / K (PyTorch's label_smoothing); grad (N,K) = (softmax - t) / N, skipped if
 * NULL. logits (N,K), labels (N) in [0, K). Stable for large logits (max subtracted).
 * Returns WT_ERR_VALUE, touching nothing, if a label is out of range. */
wt_status cross_entropy_forward_backward(double *loss, float *grad, const float *logits,
                                         const int64_t *labels, int64_t n, int64_t k,
                                         float smoothing);

#endif
