/* Elementwise activations and the residual add, over flat float arrays of n elements. */
#ifndef WT_ACTIVATION_H
#define WT_ACTIVATION_H

#include "common.h"

/* y = min(max(x, 0), cap); cap = INFINITY gives ReLU, 6 gives ReLU6. y may alias x. */
wt_status clamp_forward(float *y, const float *x, int64_t n, float cap);

/* dx = dy where 0 < y < cap, else 0 (y is the forward output; dx is overwritten, not added
 * to). Same gradient as PyTorch's, which passes it where 0 < x < cap: the two conditions are
 * equivalent. */
wt_status clamp_backward(float *dx, const float *dy, const float *y, int64_t n, float cap);

/* y = a + b; y may alias a or b. */
wt_status add_forward(float *y, const float *a, const float *b, int64_t n);

#endif
