/* Convolution forward and backward. The im2col/col2im formulation follows darknet
 * (Redmon, "im2col.c"): forward y = W . cols(x), dW += dy . cols(x)^T, dx += col2im(W^T . dy). */
#include "conv2d.h"

#include <limits.h>
#include <string.h>

#include "blas.h"
#include "depthwise.h"
#include "reduce.h"
#include "threads.h"
#include "winograd.h"


static int is_pointwise(const conv2d_shape *s) {
    return s->kh == 1 && s->kw == 1 && s->stride_h == 1 && s->stride_w == 1 &&
           s->pad_top == 0 && s->pad_bottom == 0 && s->pad_left == 0 && s->pad_right == 0;
}

static int is_depthwise(const conv2d_shape *s) {
    return s->groups > 1 && s->groups == s->c;
}

wt_status conv2d_shape_init(conv2d_shape *s) {
    if (s->n < 0 || s->c < 1 || s->h < 1 || s->w < 1 || s->oc < 1 || s->kh < 1 || s->kw < 1 ||
        s->stride_h < 1 || s->stride_w < 1 || s->dilation_h < 1 || s->dilation_w < 1 ||
        s->pad_top < 0 || s->pad_bottom < 0 || s->pad_left < 0 || s->pad_right < 0 ||
        s->groups < 1 || s->c % s->groups != 0 || s->oc % s->groups != 0) {
        return WT_ERR_SHAPE;
    }
    int64_t span_h = s->dilation_h * (s->kh - 1) + 1;
    int64_t span_w = s->dilation_w * (s->kw - 1) + 1;
    int64_t in_h = s->h + s->pad_top + s->pad_bottom;
    int64_t in_w = s->w + s->pad_left + s->pad_right;
    if (in_h < span_h || in_w < span_w) {
        return WT_ERR_SHAPE;
    }
    s->oh = (in_h - span_h) / s->stride_h + 1;
    s->ow = (in_w - span_w) / s->stride_w + 1;
    int64_t kdim = (s->c / s->groups) * s->kh * s->kw;
    if (s->oh * s->ow > INT_MAX || kdim > INT_MAX || s->oc > INT_MAX) {
        return WT_ERR_TOO_LARGE;
    }
    return WT_OK;
}

/* Per thread: one image's columns (unless pointwise or depthwise) and, for the weight
 * gradient, one dW accumulator per chunk of the batch, reduced at the end. */
static size_t cols_size(const conv2d_shape *s) {
    if (is_pointwise(s) || is_depthwise(s)) {
        return 0;
    }
    return (size_t)((s->c / s->groups) * s->kh * s->kw) * (size_t)(s->oh * s->ow);
}

static size_t weight_size(const conv2d_shape *s) {
    return (size_t)s->oc * (size_t)((s->c / s->groups) * s->kh * s->kw);
}

size_t conv2d_workspace_size(const conv2d_shape *s, int nthreads) {
    if (is_depthwise(s)) {
        return depthwise_workspace_size(s, nthreads);
    }
    if (winograd_applies(s)) {
        return winograd_workspace_size(s, nthreads);
    }
    return (size_t)nthreads * (cols_size(s) + weight_size(s));
}

/* Output positions [lo, hi) along one axis whose input index pos*stride + off lies in
 * [0, size). */
static void valid_range(int64_t off, int64_t stride, int64_t size, int64_t out, int64_t *lo,
                        int64_t *hi) {
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

/* out[i] = in[2 * i]: the stride-2 rows of im2col, vectorised (a constant stride becomes
 * shuffles; a variable one would not) */
WT_VECTOR_CLONES
static void copy_every_second(float *restrict out, const float *restrict in, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        out[i] = in[2 * i];
    }
}

/* cols (channels*KH*KW, OH*OW) from x (channels, H, W), zeros where the window is padding. */
static void im2col(float *cols, const float *x, int64_t channels, const conv2d_shape *s) {
    const int64_t kk = s->kh * s->kw, ohw = s->oh * s->ow, rows = channels * kk;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (rows * ohw > WT_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t ci = r / kk, ki = (r % kk) / s->kw, kj = r % s->kw;
        const float *xc = x + ci * s->h * s->w;
        const int64_t off_w = kj * s->dilation_w - s->pad_left;
        int64_t lo, hi;
        valid_range(off_w, s->stride_w, s->w, s->ow, &lo, &hi);
        for (int64_t oh = 0; oh < s->oh; oh++) {
            float *out = cols + r * ohw + oh * s->ow;
            const int64_t ih = oh * s->stride_h - s->pad_top + ki * s->dilation_h;
            if (ih < 0 || ih >= s->h) {
                memset(out, 0, (size_t)s->ow * sizeof(float));
                continue;
            }
            const float *row = xc + ih * s->w;
            for (int64_t ow = 0; ow < lo; ow++) {
                out[ow] = 0.0f;
            }
            if (s->stride_w == 1) {
                memcpy(out + lo, row + lo + off_w, (size_t)(hi - lo) * sizeof(float));
            } else if (s->stride_w == 2) {
                copy_every_second(out + lo, row + 2 * lo + off_w, hi - lo);
            } else {
                for (int64_t ow = lo; ow < hi; ow++) {
                    out[ow] = row[ow * s->stride_w + off_w];
                }
            }
            for (int64_t ow = hi; ow < s->ow; ow++) {
                out[ow] = 0.0f;
            }
        }
    }
}

/* dx (channels, H, W) += the columns scattered back to the positions they came from. */
static void col2im_add(float *dx, const float *cols, int64_t channels, const conv2d_shape *s) {
    const int64_t ohw = s->oh * s->ow;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (channels * s->kh * s->kw * ohw > WT_PARALLEL_MIN)
    for (int64_t ci = 0; ci < channels; ci++) {
        float *dxc = dx + ci * s->h * s->w;
        for (int64_t ki = 0; ki < s->kh; ki++) {
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float *col = cols + ((ci * s->kh + ki) * s->kw + kj) * ohw;
                const int64_t off_w = kj * s->dilation_w - s->pad_left;
                int64_t lo, hi;
                valid_range(off_w, s->stride_w, s->w, s->ow, &lo, &hi);
                for (int64_t oh = 0; oh < s->oh; oh++) {
                    const int64_t ih = oh * s->stride_h - s->pad_top + ki * s->dilation_h;
                    if (ih < 0 || ih >= s->h) {
                        continue;
                    }
                    float *row = dxc + ih * s->w;
                    const float *src = col + oh * s->ow;
                    for (int64_t ow = lo; ow < hi; ow++) {
                        row[ow * s->stride_w + off_w] += src[ow];
                    }
                }
            }
        }
    }
}

static void add_bias(float *y, const float *bias, const conv2d_shape *s) {
    const int64_t ohw = s->oh * s->ow;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (s->n * s->oc * ohw > WT_PARALLEL_MIN)
    for (int64_t p = 0; p < s->n * s->oc; p++) {
        const float b = bias[p % s->oc];
        float *yc = y + p * ohw;
        for (int64_t i = 0; i < ohw; i++) {
            yc[i] += b;
        }
    }
}

static void bias_grad(float *dbias, const float *dy, const conv2d_shape *s) {
    const int64_t ohw = s->oh * s->ow;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (s->n * s->oc * ohw > WT_PARALLEL_MIN)
    for (int64_t o = 0; o < s->oc; o++) {
        double acc = 0.0;
        for (int64_t ni = 0; ni < s->n; ni++) {
            acc += wt_sum(dy + (ni * s->oc + o) * ohw, ohw);
        }
        dbias[o] += (float)acc;
    }
}

/* The columns of one group of one image: the input itself for pointwise convolutions,
 * else im2col into the caller's scratch. */
static const float *group_columns(float *cols_ws, const float *xg, int64_t cg,
                                  const conv2d_shape *s) {
    if (is_pointwise(s)) {
        return xg;
    }
    im2col(cols_ws, xg, cg, s);
    return cols_ws;
}

/* One image's convolution, all groups, single-threaded: y_img (OC, OH*OW). */
static void forward_image(float *y, float *cols_ws, const float *x, const float *w,
                          const conv2d_shape *s) {
    const int64_t cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t kdim = cg * s->kh * s->kw, ohw = s->oh * s->ow;
    for (int64_t g = 0; g < s->groups; g++) {
        const float *cols = group_columns(cols_ws, x + g * cg * s->h * s->w, cg, s);
        WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ocg, (int)ohw,
                             (int)kdim, 1.0f, w + g * ocg * kdim, (int)kdim, cols, (int)ohw, 0.0f,
                             y + g * ocg * ohw, (int)ohw);
    }
}

/* dx_img (C, H, W) = the data gradient of one image. */
static void backward_data_image(float *dx, float *cols_ws, const float *dy, const float *w,
                                const conv2d_shape *s) {
    const int64_t cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t kdim = cg * s->kh * s->kw, ohw = s->oh * s->ow;
    for (int64_t g = 0; g < s->groups; g++) {
        float *dxg = dx + g * cg * s->h * s->w;
        const float *dyg = dy + g * ocg * ohw;
        const float *wg = w + g * ocg * kdim;
        if (is_pointwise(s)) {
            WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kdim, (int)ohw,
                                 (int)ocg, 1.0f, wg, (int)kdim, dyg, (int)ohw, 0.0f, dxg,
                                 (int)ohw);
        } else {
            memset(dxg, 0, (size_t)(cg * s->h * s->w) * sizeof(float));
            WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kdim, (int)ohw,
                                 (int)ocg, 1.0f, wg, (int)kdim, dyg, (int)ohw, 0.0f, cols_ws,
                                 (int)ohw);
            col2im_add(dxg, cols_ws, cg, s);
        }
    }
}

/* dw (OC, C/groups*KH*KW) += the weight gradient of one image. */
static void backward_weight_image(float *dw, float *cols_ws, const float *dy, const float *x,
                                  const conv2d_shape *s) {
    const int64_t cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t kdim = cg * s->kh * s->kw, ohw = s->oh * s->ow;
    for (int64_t g = 0; g < s->groups; g++) {
        const float *cols = group_columns(cols_ws, x + g * cg * s->h * s->w, cg, s);
        WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ocg, (int)kdim,
                             (int)ohw, 1.0f, dy + g * ocg * ohw, (int)ohw, cols, (int)ohw, 1.0f,
                             dw + g * ocg * kdim, (int)kdim);
    }
}

/* Images are spread over the threads (dynamic schedule, so a thread the OS delays does not
 * hold up the rest); each thread has its own columns in the workspace and calls a
 * single-threaded sgemm. */
wt_status conv2d_forward(float *y, float *workspace, const float *x, const float *w,
                         const float *bias, const conv2d_shape *s, int nthreads) {
    if (is_depthwise(s)) {
        depthwise_forward(y, workspace, x, w, bias, s, nthreads);
        return WT_OK;
    }
    if (winograd_applies(s)) {
        winograd_forward(y, workspace, x, w, s, nthreads);
    } else {
#pragma omp parallel for schedule(dynamic) num_threads(nthreads) if (s->n > 1)
        for (int64_t ni = 0; ni < s->n; ni++) {
            float *ws = workspace + (size_t)wt_thread_id() * cols_size(s);
            forward_image(y + ni * s->oc * s->oh * s->ow, ws, x + ni * s->c * s->h * s->w, w,
                          s);
        }
    }
    if (bias) {
        add_bias(y, bias, s);
    }
    return WT_OK;
}

wt_status conv2d_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                               const conv2d_shape *s, int nthreads) {
    if (is_depthwise(s)) {
        depthwise_backward_data(dx, workspace, dy, w, s, nthreads);
        return WT_OK;
    }
    if (winograd_applies(s)) {
        winograd_backward_data(dx, workspace, dy, w, s, nthreads);
        return WT_OK;
    }
#pragma omp parallel for schedule(dynamic) num_threads(nthreads) if (s->n > 1)
    for (int64_t ni = 0; ni < s->n; ni++) {
        float *ws = workspace + (size_t)wt_thread_id() * cols_size(s);
        backward_data_image(dx + ni * s->c * s->h * s->w, ws, dy + ni * s->oc * s->oh * s->ow,
                            w, s);
    }
    return WT_OK;
}

/* The batch is cut into one contiguous chunk of images per thread, each summed into its own
 * accumulator, and the accumulators are added in chunk order: the same result on every run,
 * whichever OS thread happens to take which chunk. */
wt_status conv2d_backward_weight(float *dw, float *dbias, float *workspace, const float *dy,
                                 const float *x, const conv2d_shape *s, int nthreads) {
    if (dbias) {
        bias_grad(dbias, dy, s);
    }
    if (is_depthwise(s)) {
        depthwise_backward_weight(dw, workspace, dy, x, s, nthreads);
        return WT_OK;
    }
    if (winograd_applies(s)) {
        winograd_backward_weight(dw, workspace, dy, x, s, nthreads);
        return WT_OK;
    }
    const size_t cols = cols_size(s), wsize = weight_size(s);
    const int chunks = nthreads < s->n ? nthreads : (int)s->n;
    if (chunks < 1) {
        return WT_OK;
    }
    float *acc = workspace + (size_t)nthreads * cols;
    memset(acc, 0, (size_t)chunks * wsize * sizeof(float));
#pragma omp parallel num_threads(chunks) if (chunks > 1)
    {
        float *ws = workspace + (size_t)wt_thread_id() * cols;
#pragma omp for schedule(static)
        for (int c = 0; c < chunks; c++) {
            const int64_t lo = s->n * c / chunks, hi = s->n * (c + 1) / chunks;
            for (int64_t ni = lo; ni < hi; ni++) {
                backward_weight_image(acc + (size_t)c * wsize, ws,
                                      dy + ni * s->oc * s->oh * s->ow,
                                      x + ni * s->c * s->h * s->w, s);
            }
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < (int64_t)wsize; i++) {
            float sum = 0.0f;
            for (int c = 0; c < chunks; c++) {
                sum += acc[(size_t)c * wsize + (size_t)i];
            }
            dw[i] += sum;
        }
    }
    return WT_OK;
}
