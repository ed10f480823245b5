/* 3x3 stride-1 convolutions by Winograd's minimal filtering F(4x4, 3x3) (Lavin and Gray,
 * "Fast Algorithms for Convolutional Neural Networks", 2016): each 4x4 output tile costs 36
 * multiplications per channel pair instead of 144, and the multiplications of a batch become
 * 36 independent sgemms. The price is rounding: errors of about 1e-6 of the largest output
 * instead of 1e-7. conv2d.c chooses this path for the shapes winograd_applies accepts. */
#ifndef WT_WINOGRAD_H
#define WT_WINOGRAD_H

#include "conv2d.h"

/* 3x3 kernel, stride 1, dilation 1, one group, top and left padding at most 2, enough
 * channels and enough output tiles in the batch for the sgemms to pay for the transforms. */
int winograd_applies(const conv2d_shape *s);

/* Floats of scratch the three functions below need on nthreads threads. */
size_t winograd_workspace_size(const conv2d_shape *s, int nthreads);

/* y (N,OC,OH,OW) = conv(x (N,C,H,W), w (OC,C,3,3)); no bias */
void winograd_forward(float *y, float *workspace, const float *x, const float *w,
                      const conv2d_shape *s, int nthreads);

/* dx (N,C,H,W) = conv_transpose(dy (N,OC,OH,OW), w), overwriting dx */
void winograd_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                            const conv2d_shape *s, int nthreads);

/* dw (OC,C,3,3) += the weight gradient of dy (N,OC,OH,OW) against x (N,C,H,W) */
void winograd_backward_weight(float *dw, float *workspace, const float *dy, const float *x,
                              const conv2d_shape *s, int nthreads);

#endif
