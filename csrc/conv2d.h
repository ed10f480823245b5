/* 2-D convolution, NCHW activations, OIHW weights (PyTorch layouts).
 * Four paths chosen from the shape: 1x1 stride-1 unpadded convs multiply the input
 * directly; depthwise convs (groups == C, OC a multiple of C) use a direct loop; 3x3
 * stride-1 convs with 16 or more channels use Winograd F(4x4, 3x3) (winograd.h); all
 * others are im2col + sgemm as in darknet. */
#ifndef WT_CONV2D_H
#define WT_CONV2D_H

#include "common.h"

typedef struct {
    int64_t n, c, h, w;  /* input */
    int64_t oc, kh, kw;  /* weight (oc, c / groups, kh, kw) */
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_bottom, pad_left, pad_right;
    int64_t dilation_h, dilation_w;
    int64_t groups;
    int64_t oh, ow;      /* output, filled in by conv2d_shape_init */
    int no_winograd;     /* nonzero: the im2col path even where Winograd applies */
} conv2d_shape;

/* Checks the sizes and fills in oh, ow. */
wt_status conv2d_shape_init(conv2d_shape *s);

/* Floats of scratch memory the three functions below need for this shape when run on
 * nthreads threads. */
size_t conv2d_workspace_size(const conv2d_shape *s, int nthreads);

/* y (N,OC,OH,OW) = conv(x (N,C,H,W), w (OC,C/groups,KH,KW)) + bias (OC) or no bias if NULL */
wt_status conv2d_forward(float *y, float *workspace, const float *x, const float *w,
                         const float *bias, const conv2d_shape *s, int nthreads);

/* dx (N,C,H,W) = conv_transpose(dy (N,OC,OH,OW), w), overwriting dx */
wt_status conv2d_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                               const conv2d_shape *s, int nthreads);

/* dw (OC,C/groups,KH,KW) += dy x cols(x); dbias (OC) += sum of dy if dbias is not NULL */
wt_status conv2d_backward_weight(float *dw, float *dbias, float *workspace, const float *dy,
                                 const float *x, const conv2d_shape *s, int nthreads);

#endif
