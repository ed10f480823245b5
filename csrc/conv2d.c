/* Convolution forward and backward. The im2col/col2im formulation follows darknet
 * (Redmon, "im2col.c"): forward y = W . cols(x), dW += dy . cols(x)^T, dx += col2im(W^T . dy). */
#include "conv2d.h"

#include <limits.h>
#include <string.h>

#include "blas.h"
#include "depthwise.h"
#include "reduce.h"
#include "threads.h"
#include "window.h"
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

/* The im2col path splits the batch the same way whatever the thread count, so that its
 * results are the same bits on 1, 2, 3 or 4 threads: as if for BATCH_SPLIT threads. The
 * tile size sets the matrix products' shapes and the channel blocking (both change the
 * rounding), and the weight gradient sums one accumulator per chunk in chunk order. */
#define BATCH_SPLIT 4

/* Images per matrix product on the im2col path. A small output map makes a thin product (a
 * 7x7 map is 49 columns, far from sgemm's best), so several images share one: at least
 * MIN_COLUMNS columns, but no more images than one BATCH_SPLIT-th of the batch. */
#define MIN_COLUMNS 256

static int64_t tile_images(const conv2d_shape *s) {
    const int64_t ohw = s->oh * s->ow, share = (s->n + BATCH_SPLIT - 1) / BATCH_SPLIT;
    int64_t g = (MIN_COLUMNS + ohw - 1) / ohw;
    g = g < share ? g : share;
    return g > 1 ? g : 1;
}

/* The chunks of the batch whose weight gradients are summed separately, then in order. */
static int batch_chunks(const conv2d_shape *s) {
    return s->n < BATCH_SPLIT ? (int)s->n : BATCH_SPLIT;
}

/* The columns of one tile of images: none for one pointwise image (the input is its own
 * columns). */
static size_t cols_size(const conv2d_shape *s, int64_t images) {
    if (is_pointwise(s) && images == 1) {
        return 0;
    }
    return (size_t)((s->c / s->groups) * s->kh * s->kw) * (size_t)(images * s->oh * s->ow);
}

/* Channels per block of columns in the forward pass. A block's columns (channels*KH*KW
 * rows of a tile's images*OH*OW) stay within BLOCK_FLOATS, half of a 512 KB L2, so the
 * sgemm packs them from L2 right after im2col wrote them, and the blocks' products add up
 * in the output: 4-11% faster on ResNet-18's strided forward convs than one block of all
 * channels (A/B in one process). The data and weight gradients were not faster blocked
 * (10% slower on layer2.0: the blocks make thin products) and keep one block. */
#define BLOCK_FLOATS (1 << 16)

static int64_t channel_block(const conv2d_shape *s, int64_t images) {
    const int64_t cg = s->c / s->groups, rows = s->kh * s->kw * images * s->oh * s->ow;
    if (is_pointwise(s)) {
        return cg;
    }
    const int64_t cb = BLOCK_FLOATS / rows;
    return cb < 1 ? 1 : cb > cg ? cg : cb;
}

/* For tiles of several images, the tile's output or output gradient gathered into one
 * matrix. */
static size_t tile_size(const conv2d_shape *s, int64_t images) {
    return images == 1 ? 0 : (size_t)(s->oc / s->groups) * (size_t)(images * s->oh * s->ow);
}

/* Per thread: the columns and the gathered tile. After all threads' scratch, for the
 * weight gradient, one dW accumulator per chunk of the batch (batch_chunks), reduced at
 * the end. */
static size_t thread_size(const conv2d_shape *s, int64_t images) {
    return cols_size(s, images) + tile_size(s, images);
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
    return (size_t)nthreads * thread_size(s, tile_images(s)) +
           (size_t)batch_chunks(s) * weight_size(s);
}

/* Row r = (channel, ki, kj) of im2col: what tap (ki, kj) of every one of the OH x OW
 * windows reads from plane xc, zeros where it reads padding. One call per row rather than
 * per output row, so that short rows (7, 14, 28 outputs) are not each a call; a constant
 * stride of 2 becomes shuffles in the vectorised clones. */
WT_VECTOR_CLONES
static void im2col_row(float *restrict out, const float *restrict xc, int64_t ki, int64_t kj,
                       const conv2d_shape *s) {
    const int64_t off_w = kj * s->dilation_w - s->pad_left;
    int64_t lo, hi;
    wt_valid_range(off_w, s->stride_w, s->w, s->ow, &lo, &hi);
    for (int64_t oh = 0; oh < s->oh; oh++, out += s->ow) {
        const int64_t ih = oh * s->stride_h - s->pad_top + ki * s->dilation_h;
        if (ih < 0 || ih >= s->h) {
            memset(out, 0, (size_t)s->ow * sizeof(float));
            continue;
        }
        const float *row = xc + ih * s->w + off_w;
        for (int64_t ow = 0; ow < lo; ow++) {
            out[ow] = 0.0f;
        }
        if (s->stride_w == 1) {
            memcpy(out + lo, row + lo, (size_t)(hi - lo) * sizeof(float));
        } else if (s->stride_w == 2) {
            for (int64_t ow = lo; ow < hi; ow++) {
                out[ow] = row[2 * ow];
            }
        } else {
            for (int64_t ow = lo; ow < hi; ow++) {
                out[ow] = row[ow * s->stride_w];
            }
        }
        for (int64_t ow = hi; ow < s->ow; ow++) {
            out[ow] = 0.0f;
        }
    }
}

/* cols (channels*KH*KW, OH*OW), rows ld floats apart, from x (channels, H, W). */
static void im2col(float *cols, int64_t ld, const float *x, int64_t channels,
                   const conv2d_shape *s) {
    const int64_t kk = s->kh * s->kw, ohw = s->oh * s->ow, rows = channels * kk;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (rows * ohw > WT_PARALLEL_MIN)
    for (int64_t r = 0; r < rows; r++) {
        im2col_row(cols + r * ld, x + (r / kk) * s->h * s->w, (r % kk) / s->kw, r % s->kw, s);
    }
}

/* out[2i] += in[i] for i < n. The odd slots between get += 0.0f, so that every slot of
 * the span is written and the loop vectorises as contiguous loads and stores (a slot with
 * gaps would not); the last even slot is done alone so nothing past it is touched. */
WT_VECTOR_CLONES
static void add_every_second(float *restrict out, const float *restrict in, int64_t n) {
    for (int64_t i = 0; i + 1 < n; i++) {
        out[2 * i] += in[i];
        out[2 * i + 1] += 0.0f;
    }
    if (n > 0) {
        out[2 * (n - 1)] += in[n - 1];
    }
}

/* dx (channels, H, W) += the columns (rows ld floats apart) scattered back to the positions
 * they came from. */
static void col2im_add(float *dx, const float *cols, int64_t ld, int64_t channels,
                       const conv2d_shape *s) {
    const int64_t ohw = s->oh * s->ow;
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (channels * s->kh * s->kw * ohw > WT_PARALLEL_MIN)
    for (int64_t ci = 0; ci < channels; ci++) {
        float *dxc = dx + ci * s->h * s->w;
        for (int64_t ki = 0; ki < s->kh; ki++) {
            for (int64_t kj = 0; kj < s->kw; kj++) {
                const float *col = cols + ((ci * s->kh + ki) * s->kw + kj) * ld;
                const int64_t off_w = kj * s->dilation_w - s->pad_left;
                int64_t lo, hi;
                wt_valid_range(off_w, s->stride_w, s->w, s->ow, &lo, &hi);
                for (int64_t oh = 0; oh < s->oh; oh++) {
                    const int64_t ih = oh * s->stride_h - s->pad_top + ki * s->dilation_h;
                    if (ih < 0 || ih >= s->h) {
                        continue;
                    }
                    float *row = dxc + ih * s->w;
                    const float *src = col + oh * s->ow;
                    if (s->stride_w == 2) {
                        add_every_second(row + 2 * lo + off_w, src + lo, hi - lo);
                        continue;
                    }
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

/* The columns of one group of a tile of images, image i in columns [i*OH*OW, (i+1)*OH*OW):
 * one pointwise image is its own columns; several are copied side by side; other
 * convolutions go through im2col. xg is the group's first channel in the first image. */
static const float *tile_columns(float *cols, const float *xg, int64_t images, int64_t cg,
                                 const conv2d_shape *s) {
    const int64_t ohw = s->oh * s->ow, ld = images * ohw;
    if (is_pointwise(s) && images == 1) {
        return xg;
    }
    for (int64_t i = 0; i < images; i++) {
        const float *xi = xg + i * s->c * s->h * s->w;
        if (is_pointwise(s)) {
            for (int64_t r = 0; r < cg; r++) {
                memcpy(cols + r * ld + i * ohw, xi + r * ohw, (size_t)ohw * sizeof(float));
            }
        } else {
            im2col(cols + i * ohw, ld, xi, cg, s);
        }
    }
    return cols;
}

/* The output gradient of one group of a tile, (OC/groups, images*OH*OW): dy itself for one
 * image, else gathered into tile. */
static const float *tile_gradient(float *tile, const float *dyg, int64_t images,
                                  const conv2d_shape *s) {
    const int64_t ohw = s->oh * s->ow, ocg = s->oc / s->groups, ld = images * ohw;
    if (images == 1) {
        return dyg;
    }
    for (int64_t i = 0; i < images; i++) {
        for (int64_t o = 0; o < ocg; o++) {
            memcpy(tile + o * ld + i * ohw, dyg + (i * s->oc + o) * ohw,
                   (size_t)ohw * sizeof(float));
        }
    }
    return tile;
}

/* y (images, OC, OH*OW) for a tile of images, all groups, single-threaded. */
static void forward_tile(float *y, float *ws, const float *x, const float *w, int64_t images,
                         const conv2d_shape *s) {
    const int64_t cg = s->c / s->groups, ocg = s->oc / s->groups, kk = s->kh * s->kw;
    const int64_t kdim = cg * kk, ohw = s->oh * s->ow, ld = images * ohw;
    const int64_t cb = channel_block(s, images);
    float *tile = ws + cols_size(s, images);
    for (int64_t g = 0; g < s->groups; g++) {
        float *out = images == 1 ? y + g * ocg * ohw : tile;
        for (int64_t c0 = 0; c0 < cg; c0 += cb) {
            const int64_t nc = cg - c0 < cb ? cg - c0 : cb;
            const float *cols = tile_columns(ws, x + (g * cg + c0) * s->h * s->w, images, nc,
                                             s);
            WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ocg, (int)ld,
                                 (int)(nc * kk), 1.0f, w + g * ocg * kdim + c0 * kk, (int)kdim,
                                 cols, (int)ld, c0 > 0 ? 1.0f : 0.0f, out, (int)ld);
        }
        if (images == 1) {
            continue;
        }
        for (int64_t i = 0; i < images; i++) {
            for (int64_t o = 0; o < ocg; o++) {
                memcpy(y + (i * s->oc + g * ocg + o) * ohw, tile + o * ld + i * ohw,
                       (size_t)ohw * sizeof(float));
            }
        }
    }
}

/* dx (images, C, H, W) = the data gradient of a tile of images. */
static void backward_data_tile(float *dx, float *ws, const float *dy, const float *w,
                               int64_t images, const conv2d_shape *s) {
    const int64_t cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t kdim = cg * s->kh * s->kw, ohw = s->oh * s->ow, ld = images * ohw;
    const int64_t plane = s->h * s->w;
    for (int64_t g = 0; g < s->groups; g++) {
        const float *dyg = tile_gradient(ws + cols_size(s, images), dy + g * ocg * ohw, images,
                                         s);
        const float *wg = w + g * ocg * kdim;
        if (is_pointwise(s) && images == 1) {
            WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kdim, (int)ohw,
                                 (int)ocg, 1.0f, wg, (int)kdim, dyg, (int)ohw, 0.0f,
                                 dx + g * cg * plane, (int)ohw);
            continue;
        }
        WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasTrans, CblasNoTrans, (int)kdim, (int)ld,
                             (int)ocg, 1.0f, wg, (int)kdim, dyg, (int)ld, 0.0f, ws, (int)ld);
        for (int64_t i = 0; i < images; i++) {
            float *dxg = dx + i * s->c * plane + g * cg * plane;
            if (is_pointwise(s)) {
                for (int64_t r = 0; r < cg; r++) {
                    memcpy(dxg + r * plane, ws + r * ld + i * ohw, (size_t)ohw * sizeof(float));
                }
            } else {
                memset(dxg, 0, (size_t)(cg * plane) * sizeof(float));
                col2im_add(dxg, ws + i * ohw, ld, cg, s);
            }
        }
    }
}

/* dw (OC, C/groups*KH*KW) += the weight gradient of a tile of images. */
static void backward_weight_tile(float *dw, float *ws, const float *dy, const float *x,
                                 int64_t images, const conv2d_shape *s) {
    const int64_t cg = s->c / s->groups, ocg = s->oc / s->groups;
    const int64_t kdim = cg * s->kh * s->kw, ohw = s->oh * s->ow, ld = images * ohw;
    for (int64_t g = 0; g < s->groups; g++) {
        const float *cols = tile_columns(ws, x + g * cg * s->h * s->w, images, cg, s);
        const float *dyg = tile_gradient(ws + cols_size(s, images), dy + g * ocg * ohw, images,
                                         s);
        WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ocg, (int)kdim,
                             (int)ld, 1.0f, dyg, (int)ld, cols, (int)ld, 1.0f,
                             dw + g * ocg * kdim, (int)kdim);
    }
}

/* Tiles of images are spread over the threads (dynamic schedule, so a thread the OS delays
 * does not hold up the rest); each thread has its own scratch in the workspace and calls a
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
        const int64_t per = tile_images(s), tiles = (s->n + per - 1) / per;
#pragma omp parallel for schedule(dynamic) num_threads(nthreads) if (tiles > 1)
        for (int64_t t = 0; t < tiles; t++) {
            const int64_t n0 = t * per, images = s->n - n0 < per ? s->n - n0 : per;
            float *ws = workspace + (size_t)wt_thread_id() * thread_size(s, per);
            forward_tile(y + n0 * s->oc * s->oh * s->ow, ws, x + n0 * s->c * s->h * s->w, w,
                         images, s);
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
    const int64_t per = tile_images(s), tiles = (s->n + per - 1) / per;
#pragma omp parallel for schedule(dynamic) num_threads(nthreads) if (tiles > 1)
    for (int64_t t = 0; t < tiles; t++) {
        const int64_t n0 = t * per, images = s->n - n0 < per ? s->n - n0 : per;
        float *ws = workspace + (size_t)wt_thread_id() * thread_size(s, per);
        backward_data_tile(dx + n0 * s->c * s->h * s->w, ws, dy + n0 * s->oc * s->oh * s->ow,
                           w, images, s);
    }
    return WT_OK;
}

/* The batch is cut into batch_chunks contiguous chunks of images (however many threads
 * share them), each summed tile by tile into its own accumulator, and the accumulators are
 * added in chunk order: the same bits on every run and at every thread count. */
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
    const int64_t per = tile_images(s);
    const size_t scratch = thread_size(s, per), wsize = weight_size(s);
    const int chunks = batch_chunks(s);
    if (chunks < 1) {
        return WT_OK;
    }
    float *acc = workspace + (size_t)nthreads * scratch;
    memset(acc, 0, (size_t)chunks * wsize * sizeof(float));
    const int team = nthreads < chunks ? nthreads : chunks;
#pragma omp parallel num_threads(team) if (team > 1)
    {
        float *ws = workspace + (size_t)wt_thread_id() * scratch;
#pragma omp for schedule(static)
        for (int c = 0; c < chunks; c++) {
            const int64_t lo = s->n * c / chunks, hi = s->n * (c + 1) / chunks;
            for (int64_t n0 = lo; n0 < hi; n0 += per) {
                const int64_t images = hi - n0 < per ? hi - n0 : per;
                backward_weight_tile(acc + (size_t)c * wsize, ws,
                                     dy + n0 * s->oc * s->oh * s->ow,
                                     x + n0 * s->c * s->h * s->w, images, s);
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
