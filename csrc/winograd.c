/* Winograd F(2x2, 3x3) convolution (Lavin and Gray 2016). With B, G, A the transform
 * matrices of F(2, 3), one 2x2 output tile of a correlation is
 *     y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A
 * over 4x4 input tiles d_c and 3x3 filters g_c; for each of the 16 positions of the 4x4
 * products the sum over channels is a matrix product, one sgemm per position for a whole
 * chunk of images. The data gradient is the same correlation of dy with the flipped,
 * transposed filters. The weight gradient of one tile, obtained by differentiating the
 * expression above, is G^T [ (A dy A^T) . (B^T d B) ] G: again 16 sgemms, summing over
 * tiles and images. */
#include "winograd.h"

#include <limits.h>
#include <string.h>

#include "blas.h"
#include "threads.h"

#define POSITIONS 16            /* entries of a transformed 4x4 tile */
#define CHUNK_FLOATS (1 << 22)  /* transformed tiles of one chunk of images: 16 MB */
#define MIN_CHANNELS 16         /* below this the transforms cost more than they save */

/* One correlation out (N,OC,OH,OW) = in (N,C,H,W) zero-padded top/left, with 3x3 filters. */
typedef struct {
    int64_t n, c, h, w, oc, oh, ow, pad_top, pad_left;
    int64_t tiles_w, tiles;  /* 2x2 output tiles per row and per image */
    int64_t images;          /* images per chunk */
} plan;

static plan make_plan(int64_t n, int64_t c, int64_t h, int64_t w, int64_t oc, int64_t oh,
                      int64_t ow, int64_t pad_top, int64_t pad_left) {
    plan p = {n, c, h, w, oc, oh, ow, pad_top, pad_left, (ow + 1) / 2, 0, 1};
    p.tiles = (oh + 1) / 2 * p.tiles_w;
    const int64_t per_image = POSITIONS * (c + oc) * p.tiles;
    p.images = CHUNK_FLOATS / per_image;
    if (p.images > n) {
        p.images = n;
    }
    if (p.images < 1) {
        p.images = 1;
    }
    return p;
}

static plan forward_plan(const conv2d_shape *s) {
    return make_plan(s->n, s->c, s->h, s->w, s->oc, s->oh, s->ow, s->pad_top, s->pad_left);
}

/* dx[i] = sum_k dy[i + pad - k] w[k] = sum_k dy_padded[i + k] w[2 - k], dy padded by 2 - pad */
static plan backward_data_plan(const conv2d_shape *s) {
    return make_plan(s->n, s->oc, s->oh, s->ow, s->c, s->h, s->w, 2 - s->pad_top,
                     2 - s->pad_left);
}

int winograd_applies(const conv2d_shape *s) {
    return s->kh == 3 && s->kw == 3 && s->stride_h == 1 && s->stride_w == 1 &&
           s->dilation_h == 1 && s->dilation_w == 1 && s->groups == 1 && s->pad_top <= 2 &&
           s->pad_left <= 2 && s->c >= MIN_CHANNELS && s->oc >= MIN_CHANNELS &&
           (s->h + 1) * (s->w + 1) < INT_MAX && (s->oh + 1) * (s->ow + 1) < INT_MAX;
}

/* Floats of per-thread scratch: four transformed input rows and one row of zeros. */
static int64_t row_scratch(const plan *p) {
    return 4 * (2 * p->tiles_w + 2) + p->w;
}

/* Transformed filters (or their gradient), one chunk's transformed inputs and outputs, and
 * each thread's rows. */
static size_t plan_floats(const plan *p, int nthreads) {
    return (size_t)POSITIONS * ((size_t)(p->c * p->oc) +
                                (size_t)((p->c + p->oc) * p->images * p->tiles)) +
           (size_t)nthreads * (size_t)row_scratch(p);
}

size_t winograd_workspace_size(const conv2d_shape *s, int nthreads) {
    plan f = forward_plan(s), b = backward_data_plan(s);
    size_t a = plan_floats(&f, nthreads), d = plan_floats(&b, nthreads);
    return a > d ? a : d;
}

/* u (4x4) = G g G^T for a 3x3 filter g */
static void filter_tile(float u[16], const float g[9]) {
    float t[12];
    for (int j = 0; j < 3; j++) {
        t[j] = g[j];
        t[3 + j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[6 + j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[9 + j] = g[6 + j];
    }
    for (int i = 0; i < 4; i++) {
        const float *r = t + 3 * i;
        u[4 * i] = r[0];
        u[4 * i + 1] = 0.5f * (r[0] + r[1] + r[2]);
        u[4 * i + 2] = 0.5f * (r[0] - r[1] + r[2]);
        u[4 * i + 3] = r[2];
    }
}

/* dg (3x3) += G^T m G */
static void add_weight_tile(float dg[9], const float m[16]) {
    float t[12];
    for (int j = 0; j < 4; j++) {
        t[j] = m[j] + 0.5f * (m[4 + j] + m[8 + j]);
        t[4 + j] = 0.5f * (m[4 + j] - m[8 + j]);
        t[8 + j] = 0.5f * (m[4 + j] + m[8 + j]) + m[12 + j];
    }
    for (int i = 0; i < 3; i++) {
        const float *r = t + 4 * i;
        dg[3 * i] += r[0] + 0.5f * (r[1] + r[2]);
        dg[3 * i + 1] += 0.5f * (r[1] - r[2]);
        dg[3 * i + 2] += 0.5f * (r[1] + r[2]) + r[3];
    }
}

/* u (16, out_c, in_c): transformed filters. w is (OC,C,3,3); the data gradient correlates
 * with filter (ci, co) = w[co][ci] rotated by 180 degrees. */
static void transform_filters(float *u, const float *w, int64_t out_c, int64_t in_c,
                              int rotate, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t o = 0; o < out_c; o++) {
        float g[9], t[16];
        for (int64_t i = 0; i < in_c; i++) {
            const float *src = rotate ? w + (i * out_c + o) * 9 : w + (o * in_c + i) * 9;
            for (int k = 0; k < 9; k++) {
                g[k] = rotate ? src[8 - k] : src[k];
            }
            filter_tile(t, g);
            for (int xi = 0; xi < POSITIONS; xi++) {
                u[(xi * out_c + o) * in_c + i] = t[xi];
            }
        }
    }
}

/* Down the four input rows of a tile row: t = B^T d, elementwise along the row. */
WT_VECTOR_CLONES
static void input_columns(float *restrict t0, float *restrict t1, float *restrict t2,
                          float *restrict t3, const float *restrict d0,
                          const float *restrict d1, const float *restrict d2,
                          const float *restrict d3, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        t0[i] = d0[i] - d2[i];
        t1[i] = d1[i] + d2[i];
        t2[i] = d2[i] - d1[i];
        t3[i] = d1[i] - d3[i];
    }
}

/* Across one row of t = B^T d: (t B) for every tile of the row, stored along the row. */
WT_VECTOR_CLONES
static void input_rows(float *restrict v0, float *restrict v1, float *restrict v2,
                       float *restrict v3, const float *restrict t, int64_t tiles) {
    for (int64_t i = 0; i < tiles; i++) {
        const float a = t[2 * i], b = t[2 * i + 1], c = t[2 * i + 2], d = t[2 * i + 3];
        v0[i] = a - c;
        v1[i] = b + c;
        v2[i] = c - b;
        v3[i] = b - d;
    }
}

/* v (16, C, ldv): B^T d B for every input tile of `images` images, column = image * tiles +
 * tile row * tiles_w + tile column, a tile row at a time. */
static void transform_inputs(float *v, int64_t ldv, float *scratch, const float *x,
                             int64_t images, const plan *p, int nthreads) {
    const int64_t width = 2 * p->tiles_w + 2, ldp = p->c * ldv;
    const int64_t lo = p->pad_left, hi = p->pad_left + p->w < width ? p->pad_left + p->w : width;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t ic = 0; ic < images * p->c; ic++) {
        const int64_t img = ic / p->c, c = ic % p->c;
        const float *xc = x + ic * p->h * p->w;
        float *t = scratch + wt_thread_id() * row_scratch(p), *zero = t + 4 * width;
        memset(zero, 0, (size_t)p->w * sizeof(float));
        for (int64_t r = 0; r < p->tiles / p->tiles_w; r++) {
            const float *d[4];
            for (int i = 0; i < 4; i++) {
                const int64_t row = 2 * r - p->pad_top + i;
                d[i] = (row >= 0 && row < p->h ? xc + row * p->w : zero) - lo;
            }
            for (int k = 0; k < 4; k++) {
                memset(t + k * width, 0, (size_t)lo * sizeof(float));
                memset(t + k * width + hi, 0, (size_t)(width - hi) * sizeof(float));
            }
            input_columns(t + lo, t + width + lo, t + 2 * width + lo, t + 3 * width + lo,
                          d[0] + lo, d[1] + lo, d[2] + lo, d[3] + lo, hi - lo);
            float *dst = v + c * ldv + img * p->tiles + r * p->tiles_w;
            for (int k = 0; k < 4; k++) {
                float *row = dst + 4 * k * ldp;
                input_rows(row, row + ldp, row + 2 * ldp, row + 3 * ldp, t + k * width,
                           p->tiles_w);
            }
        }
    }
}

/* One tile row of outputs: y = A^T m A for every tile, m (16 positions, ldm apart), into two
 * output rows of 2 * tiles floats. */
WT_VECTOR_CLONES
static void output_row(float *restrict y0, float *restrict y1, const float *restrict m,
                       int64_t ldm, int64_t tiles) {
    for (int64_t i = 0; i < tiles; i++) {
        float t0[4], t1[4];
        for (int j = 0; j < 4; j++) {
            const float a = m[j * ldm + i], b = m[(4 + j) * ldm + i];
            const float c = m[(8 + j) * ldm + i], d = m[(12 + j) * ldm + i];
            t0[j] = a + b + c;
            t1[j] = b - c - d;
        }
        y0[2 * i] = t0[0] + t0[1] + t0[2];
        y0[2 * i + 1] = t0[1] - t0[2] - t0[3];
        y1[2 * i] = t1[0] + t1[1] + t1[2];
        y1[2 * i + 1] = t1[1] - t1[2] - t1[3];
    }
}

/* out (images, OC, OH, OW) = (or +=) the inverse transform of m (16, OC, ldm) */
static void transform_outputs(float *out, int accumulate, float *scratch, const float *m,
                              int64_t ldm, int64_t images, const plan *p, int nthreads) {
    const int64_t ldp = p->oc * ldm, width = 2 * p->tiles_w;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t io = 0; io < images * p->oc; io++) {
        const int64_t img = io / p->oc, o = io % p->oc;
        float *yc = out + io * p->oh * p->ow;
        float *y = scratch + wt_thread_id() * row_scratch(p);
        for (int64_t r = 0; r < p->tiles / p->tiles_w; r++) {
            output_row(y, y + width, m + o * ldm + img * p->tiles + r * p->tiles_w, ldp,
                       p->tiles_w);
            for (int i = 0; i < 2 && 2 * r + i < p->oh; i++) {
                float *dst = yc + (2 * r + i) * p->ow;
                const float *src = y + i * width;
                if (accumulate) {
                    for (int64_t j = 0; j < p->ow; j++) {
                        dst[j] += src[j];
                    }
                } else {
                    memcpy(dst, src, (size_t)p->ow * sizeof(float));
                }
            }
        }
    }
}

/* One tile row of output-gradient tiles: e = A g A^T for the 2x2 tiles of rows g0, g1. */
WT_VECTOR_CLONES
static void gradient_row(float *restrict e, int64_t lde, const float *restrict g0,
                         const float *restrict g1, int64_t tiles) {
    for (int64_t i = 0; i < tiles; i++) {
        const float a = g0[2 * i], b = g0[2 * i + 1], c = g1[2 * i], d = g1[2 * i + 1];
        const float t[8] = {a, b, a + c, b + d, a - c, b - d, -c, -d};
        for (int k = 0; k < 4; k++) {
            e[4 * k * lde + i] = t[2 * k];
            e[(4 * k + 1) * lde + i] = t[2 * k] + t[2 * k + 1];
            e[(4 * k + 2) * lde + i] = t[2 * k] - t[2 * k + 1];
            e[(4 * k + 3) * lde + i] = -t[2 * k + 1];
        }
    }
}

/* e (16, OC, lde): transformed output-gradient tiles */
static void transform_gradients(float *e, int64_t lde, float *scratch, const float *dy,
                                int64_t images, const plan *p, int nthreads) {
    const int64_t width = 2 * p->tiles_w;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t io = 0; io < images * p->oc; io++) {
        const int64_t img = io / p->oc, o = io % p->oc;
        const float *dyc = dy + io * p->oh * p->ow;
        float *g = scratch + wt_thread_id() * row_scratch(p);
        memset(g, 0, (size_t)(2 * width) * sizeof(float));
        for (int64_t r = 0; r < p->tiles / p->tiles_w; r++) {
            for (int i = 0; i < 2; i++) {
                if (2 * r + i < p->oh) {
                    memcpy(g + i * width, dyc + (2 * r + i) * p->ow,
                           (size_t)p->ow * sizeof(float));
                } else {
                    memset(g + i * width, 0, (size_t)p->ow * sizeof(float));
                }
            }
            gradient_row(e + o * lde + img * p->tiles + r * p->tiles_w, p->oc * lde, g,
                         g + width, p->tiles_w);
        }
    }
}

/* out = (or +=) the correlation of in with the filters already transformed into ws */
static void correlate(float *out, int accumulate, float *ws, const float *in, const plan *p,
                      int nthreads) {
    const float *u = ws;
    float *v = ws + POSITIONS * p->c * p->oc;
    float *m = v + POSITIONS * p->c * p->images * p->tiles;
    float *scratch = m + POSITIONS * p->oc * p->images * p->tiles;
    for (int64_t n0 = 0; n0 < p->n; n0 += p->images) {
        const int64_t images = p->n - n0 < p->images ? p->n - n0 : p->images;
        const int64_t cols = images * p->tiles;
        transform_inputs(v, cols, scratch, in + n0 * p->c * p->h * p->w, images, p, nthreads);
#pragma omp parallel for schedule(dynamic) num_threads(nthreads)
        for (int xi = 0; xi < POSITIONS; xi++) {
            WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->oc,
                                 (int)cols, (int)p->c, 1.0f, u + xi * p->oc * p->c, (int)p->c,
                                 v + xi * p->c * cols, (int)cols, 0.0f, m + xi * p->oc * cols,
                                 (int)cols);
        }
        transform_outputs(out + n0 * p->oc * p->oh * p->ow, accumulate, scratch, m, cols, images,
                          p, nthreads);
    }
}

void winograd_forward(float *y, float *workspace, const float *x, const float *w,
                      const conv2d_shape *s, int nthreads) {
    plan p = forward_plan(s);
    transform_filters(workspace, w, s->oc, s->c, 0, nthreads);
    correlate(y, 0, workspace, x, &p, nthreads);
}

void winograd_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                            const conv2d_shape *s, int nthreads) {
    plan p = backward_data_plan(s);
    transform_filters(workspace, w, s->c, s->oc, 1, nthreads);
    correlate(dx, 1, workspace, dy, &p, nthreads);
}

/* Each position's sgemm sums its chunk into one accumulator, chunk after chunk, so the
 * result does not depend on the thread count. */
void winograd_backward_weight(float *dw, float *workspace, const float *dy, const float *x,
                              const conv2d_shape *s, int nthreads) {
    if (s->n == 0) {
        return;
    }
    plan p = forward_plan(s);
    float *acc = workspace;
    float *v = acc + POSITIONS * p.c * p.oc;
    float *e = v + POSITIONS * p.c * p.images * p.tiles;
    float *scratch = e + POSITIONS * p.oc * p.images * p.tiles;
    for (int64_t n0 = 0; n0 < p.n; n0 += p.images) {
        const int64_t images = p.n - n0 < p.images ? p.n - n0 : p.images;
        const int64_t cols = images * p.tiles;
        transform_inputs(v, cols, scratch, x + n0 * p.c * p.h * p.w, images, &p, nthreads);
        transform_gradients(e, cols, scratch, dy + n0 * p.oc * p.oh * p.ow, images, &p,
                            nthreads);
#pragma omp parallel for schedule(dynamic) num_threads(nthreads)
        for (int xi = 0; xi < POSITIONS; xi++) {
            WT_BLAS(cblas_sgemm)(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p.oc, (int)p.c,
                                 (int)cols, 1.0f, e + xi * p.oc * cols, (int)cols,
                                 v + xi * p.c * cols, (int)cols, n0 == 0 ? 0.0f : 1.0f,
                                 acc + xi * p.oc * p.c, (int)p.c);
        }
    }
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t oi = 0; oi < p.oc * p.c; oi++) {
        float t[16];
        for (int xi = 0; xi < POSITIONS; xi++) {
            t[xi] = acc[xi * p.oc * p.c + oi];
        }
        add_weight_tile(dw + oi * 9, t);
    }
}
