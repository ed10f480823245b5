/* Batch normalisation over the channels of NCHW tensors, PyTorch semantics: the batch
 * variance normalises, the unbiased variance (n / (n - 1)) feeds the running estimate. */
#ifndef WT_BATCHNORM_H
#define WT_BATCHNORM_H

#include "common.h"

/* Training: y (N,C,H,W) from batch statistics of x; save_mean, save_invstd (C) for backward;
 * running_mean, running_var (C) updated with momentum unless NULL. weight, bias (C) or NULL
 * for 1 and 0. Needs N*H*W > 1. */
wt_status batchnorm2d_forward_train(float *y, float *save_mean, float *save_invstd,
                                    float *running_mean, float *running_var, const float *x,
                                    const float *weight, const float *bias, int64_t n,
                                    int64_t c, int64_t hw, float momentum, float eps);

/* Evaluation: y = (x - running_mean) / sqrt(running_var + eps) * weight + bias. */
wt_status batchnorm2d_forward_eval(float *y, const float *x, const float *running_mean,
                                   const float *running_var, const float *weight,
                                   const float *bias, int64_t n, int64_t c, int64_t hw,
                                   float eps);

/* dx (N,C,H,W) = input gradient (overwritten), or skipped if dx is NULL; dweight, dbias (C) += their
 * gradients, each skipped if NULL. mean and invstd (C) are the saved batch statistics when
 * training is 1, or the running mean and 1/sqrt(running_var + eps) when training is 0 (then
 * the statistics are constants and dx = dy * weight * invstd). */
wt_status batchnorm2d_backward(float *dx, float *dweight, float *dbias, const float *dy,
                               const float *x, const float *weight, const float *mean,
                               const float *invstd, int64_t n, int64_t c, int64_t hw,
                               int training);

#endif
