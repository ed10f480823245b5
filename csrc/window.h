/* Which outputs of a sliding window read inside the input, along one axis: shared by the
 * convolution (im2col, col2im) and max-pool kernels. */
#ifndef WT_WINDOW_H
#define WT_WINDOW_H

#include <stdint.h>

/* Output positions [lo, hi) along one axis whose input index pos*stride + off lies in
 * [0, size), for out output positions. */
static inline void wt_valid_range(int64_t off, int64_t stride, int64_t size, int64_t out,
                                  int64_t *lo, int64_t *hi) {
    int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int64_t b = size - 1 - off < 0 ? 0 : (size - 1 - off) / stride + 1;
    if (b > out) {
        b = out;
    }
    if (a > b) {
        a = b;
    }
    *lo = a;
    *hi = b;
}

#endif
