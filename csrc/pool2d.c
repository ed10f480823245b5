#include "pool2d.h"

#include <math.h>
#include <stdint.h>
#include "reduce.h"
#include "threads.h"
#include "window.h"

static int64_t out_size(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dilation,
                        int ceil_mode) {
    int64_t span = in + 2 * pad - dilation * (k - 1) - 1;
    if (span < 0) {
        return 0;
    }
    int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad) {
        out--;
    }
    return out;
}

wt_status pool2d_shape_init(pool2d_shape *s) {
    if (s->n < 0 || s->c < 0 || s->h < 1 || s->w < 1 || s->kh < 1 || s->kw < 1 ||
        s->stride_h < 1 || s->stride_w < 1 || s->pad_h < 0 || s->pad_w < 0 ||
        s->dilation_h < 1 || s->dilation_w < 1 || 2 * s->pad_h > s->kh || 2 * s->pad_w > s->kw) {
        return WT_ERR_SHAPE;
    }
    s->oh = out_size(s->h, s->kh, s->stride_h, s->pad_h, s->dilation_h, s->ceil_mode);
    s->ow = out_size(s->w, s->kw, s->stride_w, s->pad_w, s->dilation_w, s->ceil_mode);
    if (s->oh < 1 || s->ow < 1) {
        return WT_ERR_SHAPE;
    }
    return WT_OK;
}

#define ROW_CHUNK 256 /* outputs of a row processed together by max-pool forward */

/* One tap of a row of max-pool windows: for outputs i < n, take v = row[i * step] if no
 * input was taken yet, if it is larger, or if it is NaN and the best so far is not (the
 * first NaN wins and stays), recording its index base + i * step. Taps come in the window's
 * scan order, so ties keep the first maximum, as PyTorch does. */
WT_VECTOR_CLONES
static void max_tap(float *restrict best, int32_t *restrict index, const float *restrict row,
                    int64_t n, int64_t step, int32_t base) {
    if (step == 2) {
        for (int64_t i = 0; i < n; i++) {
            const float v = row[2 * i], b = best[i];
            const int take = (index[i] < 0) | (v > b) | ((v != v) & (b == b));
            best[i] = take ? v : b;
            index[i] = take ? base + (int32_t)(2 * i) : index[i];
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            const float v = row[i * step], b = best[i];
            const int take = (index[i] < 0) | (v > b) | ((v != v) & (b == b));
            best[i] = take ? v : b;
            index[i] = take ? base + (int32_t)(i * step) : index[i];
        }
    }
}

/* Outputs [o0, o0 + n) of output row oh of plane xc: the taps in scan order, each a pass
 * along the row (vectorised, stride-2 reads as shuffles). A window with no input at all
 * (possible with ceil_mode) gets -inf and the index of its first padded position, as
 * before; max-pool backward refuses it. */
static void max_row_chunk(float *y, int64_t *argmax, const float *xc, int64_t oh, int64_t o0,
                          int64_t n, const pool2d_shape *s) {
    float best[ROW_CHUNK];
    int32_t index[ROW_CHUNK];
    for (int64_t i = 0; i < n; i++) {
        best[i] = -INFINITY;
        index[i] = -1;
    }
    for (int64_t ki = 0; ki < s->kh; ki++) {
        const int64_t ih = oh * s->stride_h - s->pad_h + ki * s->dilation_h;
        if (ih < 0 || ih >= s->h) {
            continue;
        }
        for (int64_t kj = 0; kj < s->kw; kj++) {
            const int64_t off = kj * s->dilation_w - s->pad_w;
            int64_t lo, hi;
            wt_valid_range(off, s->stride_w, s->w, s->ow, &lo, &hi);
            lo = lo > o0 ? lo : o0;
            hi = hi < o0 + n ? hi : o0 + n;
            if (lo >= hi) {
                continue;
            }
            const int64_t col = lo * s->stride_w + off;
            max_tap(best + (lo - o0), index + (lo - o0), xc + ih * s->w + col, hi - lo,
                    s->stride_w, (int32_t)(ih * s->w + col));
        }
    }
    for (int64_t i = 0; i < n; i++) {
        y[i] = best[i];
        if (index[i] >= 0) {
            argmax[i] = index[i];
            continue;
        }
        int64_t h0 = oh * s->stride_h - s->pad_h, w0 = (o0 + i) * s->stride_w - s->pad_w;
        while (h0 < 0) {
            h0 += s->dilation_h;
        }
        while (w0 < 0) {
            w0 += s->dilation_w;
        }
        argmax[i] = h0 * s->w + w0;
    }
}

wt_status maxpool2d_forward(float *y, int64_t *argmax, const float *x, const pool2d_shape *s) {
    const int64_t ohw = s->oh * s->ow, hw = s->h * s->w;
    if (hw > INT32_MAX) {
        return WT_ERR_TOO_LARGE;
    }
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (s->n * s->c * hw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        for (int64_t oh = 0; oh < s->oh; oh++) {
            for (int64_t o0 = 0; o0 < s->ow; o0 += ROW_CHUNK) {
                const int64_t n = s->ow - o0 < ROW_CHUNK ? s->ow - o0 : ROW_CHUNK;
                const int64_t at = p * ohw + oh * s->ow + o0;
                max_row_chunk(y + at, argmax + at, x + p * hw, oh, o0, n, s);
            }
        }
    }
    return WT_OK;
}

wt_status maxpool2d_backward(float *dx, const float *dy, const int64_t *argmax,
                             const pool2d_shape *s) {
    const int64_t ohw = s->oh * s->ow, hw = s->h * s->w;
    for (int64_t i = 0; i < s->n * s->c * ohw; i++) {
        if (argmax[i] < 0 || argmax[i] >= hw) {
            return WT_ERR_VALUE;
        }
    }
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (s->n * s->c * hw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        float *dxc = dx + p * hw;
        for (int64_t i = 0; i < ohw; i++) {
            dxc[argmax[p * ohw + i]] += dy[p * ohw + i];
        }
    }
    return WT_OK;
}

/* The window of output (oh, ow) clipped to the input, and its divisor. Returns 0 when the
 * window holds no input element. */
static int avg_window(const pool2d_shape *s, int64_t oh, int64_t ow, int count_include_pad,
                      int64_t *h0, int64_t *h1, int64_t *w0, int64_t *w1, float *divisor) {
    int64_t hs = oh * s->stride_h - s->pad_h, ws = ow * s->stride_w - s->pad_w;
    int64_t he = hs + s->kh, we = ws + s->kw;
    if (he > s->h + s->pad_h) {
        he = s->h + s->pad_h;
    }
    if (we > s->w + s->pad_w) {
        we = s->w + s->pad_w;
    }
    const int64_t padded = (he - hs) * (we - ws);
    *h0 = hs < 0 ? 0 : hs;
    *w0 = ws < 0 ? 0 : ws;
    *h1 = he > s->h ? s->h : he;
    *w1 = we > s->w ? s->w : we;
    if (*h0 >= *h1 || *w0 >= *w1) {
        return 0;
    }
    *divisor = (float)(count_include_pad ? padded : (*h1 - *h0) * (*w1 - *w0));
    return 1;
}

wt_status avgpool2d_forward(float *y, const float *x, const pool2d_shape *s,
                            int count_include_pad) {
    const int64_t ohw = s->oh * s->ow, hw = s->h * s->w;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (s->n * s->c * hw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        const float *xc = x + p * hw;
        for (int64_t oh = 0; oh < s->oh; oh++) {
            for (int64_t ow = 0; ow < s->ow; ow++) {
                int64_t h0, h1, w0, w1;
                float divisor, sum = 0.0f;
                float *out = y + p * ohw + oh * s->ow + ow;
                if (!avg_window(s, oh, ow, count_include_pad, &h0, &h1, &w0, &w1, &divisor)) {
                    *out = 0.0f;
                    continue;
                }
                for (int64_t ih = h0; ih < h1; ih++) {
                    for (int64_t iw = w0; iw < w1; iw++) {
                        sum += xc[ih * s->w + iw];
                    }
                }
                *out = sum / divisor;
            }
        }
    }
    return WT_OK;
}

wt_status avgpool2d_backward(float *dx, const float *dy, const pool2d_shape *s,
                             int count_include_pad) {
    const int64_t ohw = s->oh * s->ow, hw = s->h * s->w;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (s->n * s->c * hw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        float *dxc = dx + p * hw;
        for (int64_t oh = 0; oh < s->oh; oh++) {
            for (int64_t ow = 0; ow < s->ow; ow++) {
                int64_t h0, h1, w0, w1;
                float divisor;
                if (!avg_window(s, oh, ow, count_include_pad, &h0, &h1, &w0, &w1, &divisor)) {
                    continue;
                }
                const float g = dy[p * ohw + oh * s->ow + ow] / divisor;
                for (int64_t ih = h0; ih < h1; ih++) {
                    for (int64_t iw = w0; iw < w1; iw++) {
                        dxc[ih * s->w + iw] += g;
                    }
                }
            }
        }
    }
    return WT_OK;
}

wt_status global_avgpool_forward(float *y, const float *x, int64_t planes, int64_t hw) {
    if (hw < 1) {
        return WT_ERR_SHAPE;
    }
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (planes * hw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < planes; p++) {
        y[p] = (float)(wt_sum(x + p * hw, hw) / (double)hw);
    }
    return WT_OK;
}

wt_status global_avgpool_backward(float *dx, const float *dy, int64_t planes, int64_t hw) {
    if (hw < 1) {
        return WT_ERR_SHAPE;
    }
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (planes * hw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < planes; p++) {
        const float g = dy[p] / (float)hw;
        for (int64_t i = 0; i < hw; i++) {
            dx[p * hw + i] += g;
        }
    }
    return WT_OK;
}
