/* Inverted dropout with a counter-based generator: element i of a call with seed s is kept
 * or dropped from a hash of (s, i) alone, so the mask is the same whatever the thread count. */
#ifndef WT_DROPOUT_H
#define WT_DROPOUT_H

#include "common.h"

/* y = x * mask / (1 - p); mask (n) = 1 where kept (probability 1 - p), else 0. p in [0, 1]. */
wt_status dropout_forward(float *y, uint8_t *mask, const float *x, int64_t n, float p,
                          uint64_t seed);

/* dx += dy * mask / (1 - p); adds nothing when p == 1. */
wt_status dropout_backward(float *dx, const float *dy, const uint8_t *mask, int64_t n,
                           float p);

#endif
