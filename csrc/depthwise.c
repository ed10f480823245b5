/* Depthwise convolution (groups == C, OC = C * mult): a direct loop per plane. Each input
 * plane is first copied into a zero-padded buffer split into `stride_w` column phases
 * (phase q holds padded columns q, q + stride, ...), so every tap of every output row reads a
 * contiguous run with no bounds checks. Output rows are then laid out with the buffer's
 * pitch (stride_h buffer rows per output row, the columns past OW unused), which makes each
 * tap one long contiguous loop over the whole plane: a vectorised axpy or dot product
 * instead of a short loop per row and tap. */
#include "depthwise.h"

#include <math.h>
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

/* Output row pitch in the flat layout, and the floats it spans for the whole plane. */
static int64_t pitch(const conv2d_shape *s) {
    return s->stride_h * phase_w(s);
}

static int64_t flat_size(const conv2d_shape *s) {
    return (s->oh - 1) * pitch(s) + s->ow;
}

/* Per thread: the padded plane, then one plane in the flat layout. */
static size_t thread_size(const conv2d_shape *s) {
    return plane_size(s) + (size_t)flat_size(s);
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

/* Offset in the phase-split buffer of tap t's input for output (0, 0). */
static int64_t tap_offset(const conv2d_shape *s, int64_t t) {
    const int64_t pw = phase_w(s), c = t % s->kw * s->dilation_w;
    return (c % s->stride_w) * span_h(s) * pw + c / s->stride_w + t / s->kw * s->dilation_h * pw;
}

/* y[i] += a * x[i] */
WT_VECTOR_CLONES static void axpy(float *restrict y, const float *restrict x, float a,
                                  int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        y[i] += a * x[i];
    }
}

WT_VECTOR_CLONES static double dot(const float *a, const float *b, int64_t n) {
    return wt_dot_shifted(a, b, 0.0f, n);
}

/* flat (flat layout) = dy (OH, OW), zeros in the unused columns */
static void to_flat(float *flat, const float *dy, const conv2d_shape *s) {
    const int64_t ld = pitch(s);
    memset(flat, 0, (size_t)flat_size(s) * sizeof(float));
    for (int64_t oh = 0; oh < s->oh; oh++) {
        memcpy(flat + oh * ld, dy + oh * s->ow, (size_t)s->ow * sizeof(float));
    }
}

void depthwise_forward(float *y, float *workspace, const float *x, const float *w,
                       const float *bias, const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw;
    const int64_t flat = flat_size(s), ld = pitch(s);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        float *buf = workspace + (size_t)wt_thread_id() * thread_size(s);
        float *acc = buf + plane_size(s);
        const int64_t ni = p / s->c, ci = p % s->c;
        pad_plane(buf, x + p * s->h * s->w, s);
        for (int64_t m = 0; m < mult; m++) {
            const int64_t o = ci * mult + m;
            const float b = bias ? bias[o] : 0.0f;
            for (int64_t i = 0; i < flat; i++) {
                acc[i] = b;
            }
            for (int64_t t = 0; t < kk; t++) {
                axpy(acc, buf + tap_offset(s, t), w[o * kk + t], flat);
            }
            float *yo = y + (ni * s->oc + o) * ohw;
            for (int64_t oh = 0; oh < s->oh; oh++) {
                memcpy(yo + oh * s->ow, acc + oh * ld, (size_t)s->ow * sizeof(float));
            }
        }
    }
}

void depthwise_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                             const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw;
    const int64_t flat = flat_size(s);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->c; p++) {
        float *buf = workspace + (size_t)wt_thread_id() * thread_size(s);
        float *g = buf + plane_size(s);
        const int64_t ni = p / s->c, ci = p % s->c;
        memset(buf, 0, plane_size(s) * sizeof(float));
        for (int64_t m = 0; m < mult; m++) {
            const int64_t o = ci * mult + m;
            to_flat(g, dy + (ni * s->oc + o) * ohw, s);
            for (int64_t t = 0; t < kk; t++) {
                axpy(buf + tap_offset(s, t), g, w[o * kk + t], flat);
            }
        }
        memset(dx + p * s->h * s->w, 0, (size_t)(s->h * s->w) * sizeof(float));
        unpad_plane_add(dx + p * s->h * s->w, buf, s);
    }
}

/* Each tap's gradient is a dot product of the flat dy with the shifted padded input, added
 * image by image: the same order on every run. The flat dot also multiplies the zeros of
 * the unused columns with inputs no window reads; an infinity or NaN there would make the
 * product NaN, so a plane holding one is summed output row by output row instead. */
void depthwise_backward_weight(float *dw, float *workspace, const float *dy, const float *x,
                               const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw;
    const int64_t flat = flat_size(s), ld = pitch(s);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t o = 0; o < s->oc; o++) {
        float *buf = workspace + (size_t)wt_thread_id() * thread_size(s);
        float *g = buf + plane_size(s);
        for (int64_t ni = 0; ni < s->n; ni++) {
            pad_plane(buf, x + (ni * s->c + o / mult) * s->h * s->w, s);
            to_flat(g, dy + (ni * s->oc + o) * ohw, s);
            /* a float sum of the plane is finite unless it holds an infinity or NaN (or
             * overflows, which only costs the slower path) */
            const int finite = isfinite(wt_sum(buf, (int64_t)plane_size(s)));
            for (int64_t t = 0; t < kk; t++) {
                const float *in = buf + tap_offset(s, t);
                double sum = 0.0;
                if (finite) {
                    sum = dot(g, in, flat);
                } else {
                    for (int64_t oh = 0; oh < s->oh; oh++) {
                        sum += dot(g + oh * ld, in + oh * ld, s->ow);
                    }
                }
                dw[o * kk + t] += (float)sum;
            }
        }
    }
}
