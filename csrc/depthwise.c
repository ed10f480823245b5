/* Depthwise convolution (groups == C, OC = C * mult): a direct loop per plane. Each input
 * plane is first copied into a zero-padded buffer split into `stride_w` column phases
 * (phase q holds padded columns q, q + stride, ...), so every tap of every output row reads a
 * contiguous run with no bounds checks, and the inner loops vectorise for any stride. */
#include "depthwise.h"

#include <string.h>

#include "reduce.h"
#include "threads.h"

/* Rows and columns of the padded region the outputs read. */
static int64_t span_h(const conv2d_shape *s) {
    return (s->oh - 1) * s->stride_h + (s->kh - 1) * s->dilation_h + 1;
}

static int64_t span_w(const conv2d_shape *s) {
    return (s->ow - 1) * s->stride_w + (s->kw - 1) * s->dilation_w + 1;
}

/* Width of one column phase. */
static int64_t phase_w(const conv2d_shape *s) {
    return (span_w(s) + s->stride_w - 1) / s->stride_w;
}

static size_t plane_size(const conv2d_shape *s) {
    return (size_t)(span_h(s) * s->stride_w * phase_w(s));
}

/* Per thread: the padded plane, then one row of partial sums per kernel tap (weight
 * gradient). */
static size_t thread_size(const conv2d_shape *s) {
    return plane_size(s) + (size_t)(s->kh * s->kw * s->ow);
}

size_t depthwise_workspace_size(const conv2d_shape *s, int nthreads) {
    return (size_t)nthreads * thread_size(s);
}

static int64_t ceil_div(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

/* Indices [*lo, *hi) of phase q's columns that fall inside the input row (the rest is
 * padding). Padded column q + j * stride is input column q + j * stride - pad_left. */
static void phase_range(const conv2d_shape *s, int64_t q, int64_t *lo, int64_t *hi) {
    const int64_t pw = phase_w(s);
    int64_t a = ceil_div(s->pad_left - q, s->stride_w);
    int64_t b = ceil_div(s->w + s->pad_left - q, s->stride_w);
    a = a < 0 ? 0 : (a > pw ? pw : a);
    b = b < a ? a : (b > pw ? pw : b);
    *lo = a;
    *hi = b;
}

/* buf = the padded, phase-split copy of plane x (H, W). */
static void pad_plane(float *buf, const float *x, const conv2d_shape *s) {
    const int64_t rows = span_h(s), pw = phase_w(s), st = s->stride_w;
    for (int64_t q = 0; q < st; q++) {
        int64_t lo, hi;
        phase_range(s, q, &lo, &hi);
        for (int64_t r = 0; r < rows; r++) {
            float *dst = buf + (q * rows + r) * pw;
            const int64_t ih = r - s->pad_top;
            if (ih < 0 || ih >= s->h) {
                memset(dst, 0, (size_t)pw * sizeof(float));
                continue;
            }
            const float *src = x + ih * s->w + q - s->pad_left;
            memset(dst, 0, (size_t)lo * sizeof(float));
            if (st == 1) {
                memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
            } else {
                for (int64_t j = lo; j < hi; j++) {
                    dst[j] = src[j * st];
                }
            }
            memset(dst + hi, 0, (size_t)(pw - hi) * sizeof(float));
        }
    }
}

/* dx (H, W) += the interior of the padded, phase-split gradient buf. */
static void unpad_plane_add(float *dx, const float *buf, const conv2d_shape *s) {
    const int64_t rows = span_h(s), pw = phase_w(s), st = s->stride_w;
    for (int64_t q = 0; q < st; q++) {
        int64_t lo, hi;
        phase_range(s, q, &lo, &hi);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t ih = r - s->pad_top;
            if (ih < 0 || ih >= s->h) {
                continue;
            }
            const float *src = buf + (q * rows + r) * pw;
            float *dst = dx + ih * s->w + q - s->pad_left;
            for (int64_t j = lo; j < hi; j++) {
                dst[j * st] += src[j];
            }
        }
    }
}

/* Offsets in the phase-split buffer of padded row 0 at each kernel column's first tap. */
static void tap_offsets(int64_t *off, const conv2d_shape *s) {
    const int64_t rows = span_h(s), pw = phase_w(s);
    for (int64_t kj = 0; kj < s->kw; kj++) {
        const int64_t c = kj * s->dilation_w;
        off[kj] = (c % s->stride_w) * rows * pw + c / s->stride_w;
    }
}

/* y (OH, OW) = bias + sum over taps of w[tap] * the padded input shifted by the tap. */
WT_VECTOR_CLONES static void forward_plane(float *y, const float *buf, const float *w, float bias,
                          const int64_t *off, const conv2d_shape *s) {
    const int64_t ow = s->ow, pw = phase_w(s);
    for (int64_t oh = 0; oh < s->oh; oh++) {
        float *yr = y + oh * ow;
        for (int64_t j = 0; j < ow; j++) {
            yr[j] = bias;
        }
        for (int64_t ki = 0; ki < s->kh; ki++) {
            const float *row = buf + (oh * s->stride_h + ki * s->dilation_h) * pw;
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float wv = w[ki * s->kw + kj];
                const float *src = row + off[kj];
                for (int64_t j = 0; j < ow; j++) {
                    yr[j] += wv * src[j];
                }
            }
        }
    }
}

/* buf (padded, phase-split) += the transposed convolution of dy (OH, OW). */
WT_VECTOR_CLONES static void backward_data_plane(float *buf, const float *dy, const float *w,
                                const int64_t *off, const conv2d_shape *s) {
    const int64_t ow = s->ow, pw = phase_w(s);
    for (int64_t oh = 0; oh < s->oh; oh++) {
        const float *g = dy + oh * ow;
        for (int64_t ki = 0; ki < s->kh; ki++) {
            float *row = buf + (oh * s->stride_h + ki * s->dilation_h) * pw;
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float wv = w[ki * s->kw + kj];
                float *dst = row + off[kj];
                for (int64_t j = 0; j < ow; j++) {
                    dst[j] += wv * g[j];
                }
            }
        }
    }
}

/* acc (KH*KW, OW) += per-position products of dy (OH, OW) with the padded input, summed
 * over rows; the caller reduces each tap's row once per plane. Same loop shape as forward,
 * so it vectorises however short the rows are. */
WT_VECTOR_CLONES static void backward_weight_plane(float *acc, const float *buf, const float *dy,
                                                   const int64_t *off, const conv2d_shape *s) {
    const int64_t ow = s->ow, pw = phase_w(s);
    for (int64_t oh = 0; oh < s->oh; oh++) {
        const float *g = dy + oh * ow;
        for (int64_t ki = 0; ki < s->kh; ki++) {
            const float *row = buf + (oh * s->stride_h + ki * s->dilation_h) * pw;
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float *src = row + off[kj];
                float *a = acc + (ki * s->kw + kj) * ow;
                for (int64_t j = 0; j < ow; j++) {
                    a[j] += g[j] * src[j];
                }
            }
        }
    }
}

void depthwise_forward(float *y, float *workspace, const float *x, const float *w,
                       const float *bias, const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        float *buf = workspace + (size_t)wt_thread_id() * thread_size(s);
        const int64_t ni = p / s->c, ci = p % s->c;
        int64_t off[s->kw];
        tap_offsets(off, s);
        pad_plane(buf, x + p * s->h * s->w, s);
        for (int64_t m = 0; m < mult; m++) {
            const int64_t o = ci * mult + m;
            forward_plane(y + (ni * s->oc + o) * ohw, buf, w + o * kk, bias ? bias[o] : 0.0f,
                          off, s);
        }
    }
}

void depthwise_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                             const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        float *buf = workspace + (size_t)wt_thread_id() * thread_size(s);
        const int64_t ni = p / s->c, ci = p % s->c;
        int64_t off[s->kw];
        tap_offsets(off, s);
        memset(buf, 0, plane_size(s) * sizeof(float));
        for (int64_t m = 0; m < mult; m++) {
            const int64_t o = ci * mult + m;
            backward_data_plane(buf, dy + (ni * s->oc + o) * ohw, w + o * kk, off, s);
        }
        unpad_plane_add(dx + p * s->h * s->w, buf, s);
    }
}

void depthwise_backward_weight(float *dw, float *workspace, const float *dy, const float *x,
                               const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t o = 0; o < s->oc; o++) {
        float *buf = workspace + (size_t)wt_thread_id() * thread_size(s);
        float *acc = buf + plane_size(s);
        int64_t off[s->kw];
        tap_offsets(off, s);
        memset(acc, 0, (size_t)(kk * s->ow) * sizeof(float));
        for (int64_t ni = 0; ni < s->n; ni++) {
            pad_plane(buf, x + (ni * s->c + o / mult) * s->h * s->w, s);
            backward_weight_plane(acc, buf, dy + (ni * s->oc + o) * ohw, off, s);
        }
        for (int64_t t = 0; t < kk; t++) {
            dw[o * kk + t] += (float)wt_sum(acc + t * s->ow, s->ow);
        }
    }
}
