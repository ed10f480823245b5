/* Fully connected layer: y = x W^T + b with W in PyTorch's (out, in) layout. */
#ifndef WT_LINEAR_H
#define WT_LINEAR_H

#include "common.h"

/* y (N,OUT) = x (N,IN) . w (OUT,IN)^T + bias (OUT), or no bias if NULL */
wt_status linear_forward(float *y, const float *x, const float *w, const float *bias,
                         int64_t n, int64_t in, int64_t out);

/* dx (N,IN) += dy . w, skipped if dx is NULL; dw (OUT,IN) += dy^T . x, skipped if NULL;
 * dbias (OUT) += column sums of dy, skipped if NULL. */
wt_status linear_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                          const float *w, int64_t n, int64_t in, int64_t out);

#endif
