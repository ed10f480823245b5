/* Depthwise convolution (groups == C, OC = C * mult): a direct loop per plane. Each input
 * plane is first copied into a zero-padded buffer split into `stride_w` column phases
 * (phase q holds padded columns q, q + stride, ...), so every tap of every output row reads a
 * contiguous run with no bounds checks. Output rows are then laid out with the buffer's
 * pitch (stride_h buffer rows per output row, the columns past OW unused), which makes each
 * tap one long contiguous loop over the whole plane: a vectorised axpy or dot product
 * instead of a short loop per row and tap. Small planes (the 2x2 to 16x16 maps of a network
 * at 64-128 px) are stacked, several images of one channel one under another, so that the
 * loop stays long. */
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

/* Output row pitch in the flat layout. */
static int64_t pitch(const conv2d_shape *s) {
    return s->stride_h * phase_w(s);
}

/* A stack: the padded planes of `count` images of one channel laid one under another, each
 * in a block of `block` padded rows (a multiple of stride_h, so every image's outputs start
 * on an output row of the tall plane), so that a tap is one loop over all of them. Small
 * planes stack up to STACK_FLOATS; a large one stands alone (count 1: the plain layout). The
 * output rows between two images' outputs are computed and thrown away. */
typedef struct {
    int64_t count, block;
    int64_t rows;   /* padded rows per column phase: (count - 1) * block + span_h */
    int64_t flat;   /* floats of the stack's outputs in the flat layout */
    int64_t offset; /* from one image's outputs to the next's in the flat layout */
} stack;

#define STACK_FLOATS 16384

static stack stack_of(const conv2d_shape *s, int64_t count) {
    const int64_t st = s->stride_h, block = (span_h(s) + st - 1) / st * st;
    const int64_t out_rows = (count - 1) * (block / st) + s->oh;
    return (stack){.count = count, .block = block, .rows = (count - 1) * block + span_h(s),
                   .flat = (out_rows - 1) * pitch(s) + s->ow, .offset = block / st * pitch(s)};
}

/* Images per stack: as many as fit in STACK_FLOATS, at least 1, at most N. */
static int64_t stack_images(const conv2d_shape *s) {
    const int64_t fit = STACK_FLOATS / (int64_t)plane_size(s);
    const int64_t per = fit < s->n ? fit : s->n;
    return per < 1 ? 1 : per;
}

/* The stack of the images from n0 on: per of them, or the rest of the batch. */
static stack stack_at(const conv2d_shape *s, int64_t n0, int64_t per) {
    return stack_of(s, s->n - n0 < per ? s->n - n0 : per);
}

static size_t stack_floats(const conv2d_shape *s, const stack *k) {
    return (size_t)(k->rows * s->stride_w * phase_w(s));
}

/* Per thread: a full stack's padded planes, then its outputs in the flat layout. */
static size_t thread_size(const conv2d_shape *s) {
    const stack full = stack_of(s, stack_images(s));
    return stack_floats(s, &full) + (size_t)full.flat;
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

/* buf = the first `rows` padded rows of the phase-split copy of plane x (H, W), in a
 * buffer whose phases hold `phase_rows` rows each; rows past the span the windows read are
 * zeros, so an input no window reads never enters the buffer. */
static void pad_plane(float *buf, const float *x, const conv2d_shape *s, int64_t phase_rows,
                      int64_t rows) {
    const int64_t pw = phase_w(s), st = s->stride_w, span = span_h(s);
    for (int64_t q = 0; q < st; q++) {
        int64_t lo, hi;
        phase_range(s, q, &lo, &hi);
        for (int64_t r = 0; r < rows; r++) {
            float *dst = buf + (q * phase_rows + r) * pw;
            const int64_t ih = r - s->pad_top;
            if (ih < 0 || ih >= s->h || r >= span) {
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

/* dx (H, W) += the interior of the padded, phase-split gradient buf, whose phases hold
 * `phase_rows` rows each. */
static void unpad_plane_add(float *dx, const float *buf, const conv2d_shape *s,
                            int64_t phase_rows) {
    const int64_t rows = span_h(s), pw = phase_w(s), st = s->stride_w;
    for (int64_t q = 0; q < st; q++) {
        int64_t lo, hi;
        phase_range(s, q, &lo, &hi);
        for (int64_t r = 0; r < rows; r++) {
            const int64_t ih = r - s->pad_top;
            if (ih < 0 || ih >= s->h) {
                continue;
            }
            const float *src = buf + (q * phase_rows + r) * pw;
            float *dst = dx + ih * s->w + q - s->pad_left;
            for (int64_t j = lo; j < hi; j++) {
                dst[j * st] += src[j];
            }
        }
    }
}

/* Offset in the phase-split buffer (phases of `phase_rows` rows) of tap t's input for
 * output (0, 0). */
static int64_t tap_offset(const conv2d_shape *s, int64_t phase_rows, int64_t t) {
    const int64_t pw = phase_w(s), c = t % s->kw * s->dilation_w;
    return (c % s->stride_w) * phase_rows * pw + c / s->stride_w +
           t / s->kw * s->dilation_h * pw;
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

/* flat (the stack's flat layout) = the planes dy, dy + step, ... (OH, OW) of k's images,
 * zeros in the unused columns and the rows between images */
static void to_flat(float *flat, const float *dy, int64_t step, const conv2d_shape *s,
                    const stack *k) {
    const int64_t ld = pitch(s);
    memset(flat, 0, (size_t)k->flat * sizeof(float));
    for (int64_t j = 0; j < k->count; j++) {
        for (int64_t oh = 0; oh < s->oh; oh++) {
            memcpy(flat + j * k->offset + oh * ld, dy + j * step + oh * s->ow,
                   (size_t)s->ow * sizeof(float));
        }
    }
}

/* buf = the padded planes of k's images: x, x + step, ... (H, W). */
static void pad_stack(float *buf, const float *x, int64_t step, const conv2d_shape *s,
                      const stack *k) {
    for (int64_t j = 0; j < k->count; j++) {
        pad_plane(buf + j * k->block * phase_w(s), x + j * step, s, k->rows,
                  j + 1 < k->count ? k->block : span_h(s));
    }
}

void depthwise_forward(float *y, float *workspace, const float *x, const float *w,
                       const float *bias, const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw, hw = s->h * s->w;
    const int64_t ld = pitch(s), per = stack_images(s), stacks = (s->n + per - 1) / per;
    const stack full = stack_of(s, per);
    const size_t per_thread = thread_size(s);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < stacks * s->c; p++) {
        float *buf = workspace + (size_t)wt_thread_id() * per_thread;
        float *acc = buf + stack_floats(s, &full);
        const int64_t n0 = p / s->c * per, ci = p % s->c;
        const stack k = stack_at(s, n0, per);
        pad_stack(buf, x + (n0 * s->c + ci) * hw, s->c * hw, s, &k);
        for (int64_t m = 0; m < mult; m++) {
            const int64_t o = ci * mult + m;
            const float b = bias ? bias[o] : 0.0f;
            for (int64_t i = 0; i < k.flat; i++) {
                acc[i] = b;
            }
            for (int64_t t = 0; t < kk; t++) {
                axpy(acc, buf + tap_offset(s, k.rows, t), w[o * kk + t], k.flat);
            }
            for (int64_t j = 0; j < k.count; j++) {
                float *yo = y + ((n0 + j) * s->oc + o) * ohw;
                for (int64_t oh = 0; oh < s->oh; oh++) {
                    memcpy(yo + oh * s->ow, acc + j * k.offset + oh * ld,
                           (size_t)s->ow * sizeof(float));
                }
            }
        }
    }
}

void depthwise_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                             const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw, hw = s->h * s->w;
    const int64_t per = stack_images(s), stacks = (s->n + per - 1) / per;
    const stack full = stack_of(s, per);
    const size_t per_thread = thread_size(s);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < stacks * s->c; p++) {
        float *buf = workspace + (size_t)wt_thread_id() * per_thread;
        float *g = buf + stack_floats(s, &full);
        const int64_t n0 = p / s->c * per, ci = p % s->c;
        const stack k = stack_at(s, n0, per);
        memset(buf, 0, stack_floats(s, &k) * sizeof(float));
        for (int64_t m = 0; m < mult; m++) {
            const int64_t o = ci * mult + m;
            to_flat(g, dy + (n0 * s->oc + o) * ohw, s->oc * ohw, s, &k);
            for (int64_t t = 0; t < kk; t++) {
                axpy(buf + tap_offset(s, k.rows, t), g, w[o * kk + t], k.flat);
            }
        }
        for (int64_t j = 0; j < k.count; j++) {
            float *dxj = dx + ((n0 + j) * s->c + ci) * hw;
            memset(dxj, 0, (size_t)hw * sizeof(float));
            unpad_plane_add(dxj, buf + j * k.block * phase_w(s), s, k.rows);
        }
    }
}

/* Each tap's gradient is a dot product of the stack's flat dy with the shifted padded
 * input, added stack by stack: the same order on every run and at any thread count. The
 * flat dot also multiplies the zeros of the unused columns and of the rows between images
 * with inputs no window reads; an infinity or NaN there would make the product NaN, so a
 * stack holding one is summed output row by output row instead. */
void depthwise_backward_weight(float *dw, float *workspace, const float *dy, const float *x,
                               const conv2d_shape *s, int nthreads) {
    const int64_t mult = s->oc / s->c, ohw = s->oh * s->ow, kk = s->kh * s->kw, hw = s->h * s->w;
    const int64_t ld = pitch(s), per = stack_images(s);
    const stack full = stack_of(s, per);
    const size_t per_thread = thread_size(s);
#pragma omp parallel for schedule(static) num_threads(nthreads) if (s->n * s->c * ohw * kk * mult > WT_PARALLEL_MIN)
    for (int64_t o = 0; o < s->oc; o++) {
        float *buf = workspace + (size_t)wt_thread_id() * per_thread;
        float *g = buf + stack_floats(s, &full);
        for (int64_t n0 = 0; n0 < s->n; n0 += per) {
            const stack k = stack_at(s, n0, per);
            pad_stack(buf, x + (n0 * s->c + o / mult) * hw, s->c * hw, s, &k);
            to_flat(g, dy + (n0 * s->oc + o) * ohw, s->oc * ohw, s, &k);
            /* a float sum of the stack is finite unless it holds an infinity or NaN (or
             * overflows, which only costs the slower path) */
            const int finite = isfinite(wt_sum(buf, (int64_t)stack_floats(s, &k)));
            for (int64_t t = 0; t < kk; t++) {
                const float *in = buf + tap_offset(s, k.rows, t);
                double sum = 0.0;
                if (finite) {
                    sum = dot(g, in, k.flat);
                } else {
                    for (int64_t r = 0; r < k.count * s->oh; r++) {
                        const int64_t at = r / s->oh * k.offset + r % s->oh * ld;
                        sum += dot(g + at, in + at, s->ow);
                    }
                }
                dw[o * kk + t] += (float)sum;
            }
        }
    }
}
