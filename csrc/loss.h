/* Softmax cross-entropy, loss and logit gradient in one pass, with PyTorch's semantics for
 * integer labels or target probabilities, class weights and label smoothing. */
#ifndef WT_LOSS_H
#define WT_LOSS_H

#include "common.h"

/* logits (N,K); exactly one of labels (N) in [0, K) or targets (N,K) in [0, 1]; weight (K)
 * >= 0 or NULL (all ones). With t the target row smoothed to (1 - smoothing) t +
 * smoothing / K (for labels, t is one-hot), row i costs -sum_k w_k t_k log softmax(z_i)_k.
 * loss is the sum over rows divided by N for targets, or by sum_i w[labels[i]] for labels
 * (torch.nn.functional.cross_entropy's "mean"); grad (N,K) is its gradient, skipped if NULL.
 * Stable for large logits (max subtracted). Returns WT_ERR_VALUE, touching nothing, if a
 * label, target or weight is out of range or not finite. */
wt_status cross_entropy_forward_backward(double *loss, float *grad, const float *logits,
                                         const int64_t *labels, const float *targets,
                                         const float *weight, int64_t n, int64_t k,
                                         float smoothing);

#endif
