/* Depthwise convolution, the direct path conv2d takes when groups == C (> 1). Shapes and
 * conventions as conv2d.h; each thread pads one input plane, or a stack of small ones, at a
 * time into its part of the workspace. */
#ifndef WT_DEPTHWISE_H
#define WT_DEPTHWISE_H

#include "conv2d.h"

/* Floats of scratch memory for nthreads threads. */
size_t depthwise_workspace_size(const conv2d_shape *s, int nthreads);

/* y (N,OC,OH,OW) = depthwise conv of x (N,C,H,W) with w (OC,1,KH,KW), + bias (OC) if given */
void depthwise_forward(float *y, float *workspace, const float *x, const float *w,
                       const float *bias, const conv2d_shape *s, int nthreads);

/* dx (N,C,H,W) = transposed depthwise conv of dy (N,OC,OH,OW), overwriting dx */
void depthwise_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                             const conv2d_shape *s, int nthreads);

/* dw (OC,1,KH,KW) += correlation of dy with x */
void depthwise_backward_weight(float *dw, float *workspace, const float *dy, const float *x,
                               const conv2d_shape *s, int nthreads);

#endif
