/* Max, average and global average pooling over NCHW planes, with PyTorch's output-size
 * rule (ceil_mode, and the last window must start inside the input or its left padding). */
#ifndef WT_POOL2D_H
#define WT_POOL2D_H

#include "common.h"

typedef struct {
    int64_t n, c, h, w;
    int64_t kh, kw;
    int64_t stride_h, stride_w;
    int64_t pad_h, pad_w;
    int64_t dilation_h, dilation_w; /* max pool only; average pool requires 1 */
    int ceil_mode;
    int64_t oh, ow; /* filled in by pool2d_shape_init */
} pool2d_shape;

/* Checks the sizes (padding at most half the kernel) and fills in oh, ow. */
wt_status pool2d_shape_init(pool2d_shape *s);

/* y (N,C,OH,OW) = window max of x (N,C,H,W); argmax (N,C,OH,OW) = flat h*W+w of the max.
 * NaN wins, as in PyTorch. */
wt_status maxpool2d_forward(float *y, int64_t *argmax, const float *x, const pool2d_shape *s);

/* dx (N,C,H,W) += dy routed to the saved argmax positions. */
wt_status maxpool2d_backward(float *dx, const float *dy, const int64_t *argmax,
                             const pool2d_shape *s);

/* y (N,C,OH,OW) = window mean of x; the divisor counts padding when count_include_pad. */
wt_status avgpool2d_forward(float *y, const float *x, const pool2d_shape *s,
                            int count_include_pad);

/* dx (N,C,H,W) += dy spread evenly over each window. */
wt_status avgpool2d_backward(float *dx, const float *dy, const pool2d_shape *s,
                             int count_include_pad);

/* y (planes) = mean of each x plane (planes, hw). */
wt_status global_avgpool_forward(float *y, const float *x, int64_t planes, int64_t hw);

/* dx (planes, hw) += dy (planes) / hw */
wt_status global_avgpool_backward(float *dx, const float *dy, int64_t planes, int64_t hw);

#endif
