/* Winograd F(4x4, 3x3) convolution (Lavin and Gray 2016). With B, G, A the transform
 * matrices of F(4, 3) (interpolation points 0, 1, -1, 2, -2 and infinity), one 4x4 output
 * tile of a correlation is
 *     y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A
 * over 6x6 input tiles d_c and 3x3 filters g_c: 36 multiplications per tile and channel
 * pair instead of 144. For each of the 36 positions of the 6x6 products the sum over
 * channels is a matrix product, one sgemm per position for a whole chunk of images. The
 * data gradient is the same correlation of dy with the flipped, transposed filters. The
 * weight gradient of one tile, obtained by differentiating the expression above, is
 * G^T [ (A dy A^T) . (B^T d B) ] G: again 36 sgemms, summing over tiles and images.
 * Transforms run a tile row at a time: the 1-D transform down the rows of the tile row
 * (elementwise along the row, vectorised), then across each tile, stored along the row. */
#include "winograd.h"

#include <limits.h>
#include <string.h>

#include "blas.h"
#include "threads.h"

#define TILE 4                  /* output tile side */
#define ALPHA 6                 /* input tile side: TILE + 3 - 1 */
#define POSITIONS 36            /* entries of a transformed 6x6 tile */
#define CHUNK_MIN (1 << 20)     /* floats of transformed tiles per chunk of images: 4 MB */
#define CHUNK_MAX (1 << 22)     /* to 16 MB */
#define MIN_CHANNELS 16         /* below this the transforms cost more than they save */

/* One correlation out (N,OC,OH,OW) = in (N,C,H,W) zero-padded top/left, with 3x3 filters. */
typedef struct {
    int64_t n, c, h, w, oc, oh, ow, pad_top, pad_left;
    int64_t tiles_w, tiles;  /* 4x4 output tiles per row and per image */
    int64_t images;          /* images per chunk */
} plan;

static plan make_plan(int64_t n, int64_t c, int64_t h, int64_t w, int64_t oc, int64_t oh,
                      int64_t ow, int64_t pad_top, int64_t pad_left) {
    plan p = {n, c, h, w, oc, oh, ow, pad_top, pad_left, (ow + TILE - 1) / TILE, 0, 1};
    p.tiles = (oh + TILE - 1) / TILE * p.tiles_w;
    /* As many images as fit in a budget, then the batch split into chunks of equal size
     * (32 images that fit 28 at a time: 16 and 16, not 28 and a narrow 4). Chunks small
     * enough to stay in cache are faster (ResNet-18's layer1 1.5x, layer2 1.15x with 4 MB
     * rather than 16 MB, one-process A/B), but each chunk's sgemms read all the transformed
     * filters again, 37 MB for 512 channels (layer4 10 % slower with 4 MB chunks). The
     * budget is half the transformed filters, kept within CHUNK_MIN..CHUNK_MAX. */
    const int64_t per_image = POSITIONS * (c + oc) * p.tiles, half = POSITIONS * c * oc / 2;
    const int64_t budget = half < CHUNK_MIN ? CHUNK_MIN : half > CHUNK_MAX ? CHUNK_MAX : half;
    const int64_t fit = budget / per_image > 1 ? budget / per_image : 1;
    const int64_t chunks = n > fit ? (n + fit - 1) / fit : 1;
    p.images = n > 1 ? (n + chunks - 1) / chunks : 1;
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

/* Whether the batch has enough 4x4 output tiles to pay for transforming the filters on
 * every call (36 x C x OC floats): at least MIN_TILES, and BIG_TILES once the transformed
 * filters outgrow the caches (C x OC above BIG_FILTERS). Read off
 * benchmarks/winograd_switch.py (docs/performance.md): one image on a 7x7 map (4 tiles) ran
 * 0.4x im2col's speed at 64 and 256 channels, 32 tiles at 512 channels 0.4x. */
#define MIN_TILES 16
#define BIG_FILTERS (256 * 256)
#define BIG_TILES 128

static int enough_tiles(const conv2d_shape *s) {
    const int64_t tiles = s->n * ((s->oh + TILE - 1) / TILE) * ((s->ow + TILE - 1) / TILE);
    return tiles >= MIN_TILES && (s->c * s->oc <= BIG_FILTERS || tiles >= BIG_TILES);
}

int winograd_applies(const conv2d_shape *s) {
    return !s->no_winograd && s->kh == 3 && s->kw == 3 && s->stride_h == 1 && s->stride_w == 1 &&
           s->dilation_h == 1 && s->dilation_w == 1 && s->groups == 1 && s->pad_top <= 2 &&
           s->pad_left <= 2 && s->c >= MIN_CHANNELS && s->oc >= MIN_CHANNELS &&
           (s->h + 3) * (s->w + 3) < INT_MAX && (s->oh + 3) * (s->ow + 3) < INT_MAX &&
           enough_tiles(s);
}

/* Floats of per-thread scratch, the most any transform needs: for the inputs, the six
 * transformed rows of every tile row of a plane (rows of 4 tiles_w + 2), a row of zeros and
 * six split lines of all its tiles; for the output gradients, the plane's rows padded the
 * same way, their six transformed rows per tile row and six split lines; for the outputs,
 * four output rows and 40 lines of partial transforms; or 27 rows of filter taps (of C, or
 * of 64 filters). */
static int64_t row_scratch(const plan *p) {
    const int64_t th = p->tiles / p->tiles_w, width = TILE * p->tiles_w + 2;
    const int64_t inputs = ALPHA * th * width + p->w + ALPHA * p->tiles;
    const int64_t gradients = (TILE + ALPHA) * th * width + ALPHA * p->tiles;
    const int64_t outputs = 14 * TILE * p->tiles_w;
    const int64_t taps = 27 * (p->c > 64 ? p->c : 64);
    int64_t most = inputs > gradients ? inputs : gradients;
    most = most > outputs ? most : outputs;
    return most > taps ? most : taps;
}

/* Transformed filters (or their gradient), one chunk's transformed inputs and outputs, and
 * each thread's rows. */
static size_t plan_floats(const plan *p, int nthreads) {
    return (size_t)POSITIONS * ((size_t)(p->c * p->oc) +
                                (size_t)((p->c + p->oc) * p->images * p->tiles)) +
           (size_t)nthreads * (size_t)row_scratch(p);
}

/* The per-thread scratch, after the filters and one chunk's transformed tiles. */
static float *scratch_of(float *workspace, const plan *p) {
    return workspace + POSITIONS * (p->c * p->oc + (p->c + p->oc) * p->images * p->tiles);
}

size_t winograd_workspace_size(const conv2d_shape *s, int nthreads) {
    plan f = forward_plan(s), b = backward_data_plan(s);
    size_t a = plan_floats(&f, nthreads), d = plan_floats(&b, nthreads);
    return a > d ? a : d;
}

/* The 1-D transforms, each on one line of a tile: B^T d (6 -> 6), G g (3 -> 6),
 * A^T m (6 -> 4), A e (4 -> 6) and G^T m (6 -> 3). */
static inline void input_1d(float t[6], float d0, float d1, float d2, float d3, float d4,
                            float d5) {
    t[0] = 4.0f * d0 - 5.0f * d2 + d4;
    t[1] = d3 + d4 - 4.0f * (d1 + d2);
    t[2] = d4 - d3 + 4.0f * (d1 - d2);
    t[3] = d4 - d2 + 2.0f * (d3 - d1);
    t[4] = d4 - d2 + 2.0f * (d1 - d3);
    t[5] = 4.0f * d1 - 5.0f * d3 + d5;
}

static inline void filter_1d(float t[6], float g0, float g1, float g2) {
    t[0] = 0.25f * g0;
    t[1] = -(g0 + g1 + g2) / 6.0f;
    t[2] = -(g0 - g1 + g2) / 6.0f;
    t[3] = g0 / 24.0f + g1 / 12.0f + g2 / 6.0f;
    t[4] = g0 / 24.0f - g1 / 12.0f + g2 / 6.0f;
    t[5] = g2;
}

static inline void output_1d(float y[4], float m0, float m1, float m2, float m3, float m4,
                             float m5) {
    const float a = m1 + m2, b = m1 - m2, c = m3 + m4, d = m3 - m4;
    y[0] = m0 + a + c;
    y[1] = b + 2.0f * d;
    y[2] = a + 4.0f * c;
    y[3] = b + 8.0f * d + m5;
}

static inline void gradient_1d(float t[6], float e0, float e1, float e2, float e3) {
    const float even = e0 + e2, odd = e1 + e3;
    const float even2 = e0 + 4.0f * e2, odd2 = 2.0f * e1 + 8.0f * e3;
    t[0] = e0;
    t[1] = even + odd;
    t[2] = even - odd;
    t[3] = even2 + odd2;
    t[4] = even2 - odd2;
    t[5] = e3;
}

static inline void weight_1d(float w[3], float m0, float m1, float m2, float m3, float m4,
                             float m5) {
    w[0] = 0.25f * m0 - (m1 + m2) / 6.0f + (m3 + m4) / 24.0f;
    w[1] = (m2 - m1) / 6.0f + (m3 - m4) / 12.0f;
    w[2] = (m3 + m4 - m1 - m2) / 6.0f + m5;
}

/* The 1-D transforms applied elementwise to whole rows: o[] = B^T a[] (6 -> 6),
 * A^T a[] (6 -> 4) and A a[] (4 -> 6). Each row is contiguous, so the loops vectorise. */
WT_VECTOR_CLONES
static void input_lines(float *restrict o0, float *restrict o1, float *restrict o2,
                        float *restrict o3, float *restrict o4, float *restrict o5,
                        const float *restrict a0, const float *restrict a1,
                        const float *restrict a2, const float *restrict a3,
                        const float *restrict a4, const float *restrict a5, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v[6];
        input_1d(v, a0[i], a1[i], a2[i], a3[i], a4[i], a5[i]);
        o0[i] = v[0];
        o1[i] = v[1];
        o2[i] = v[2];
        o3[i] = v[3];
        o4[i] = v[4];
        o5[i] = v[5];
    }
}

WT_VECTOR_CLONES
static void output_lines(float *restrict o0, float *restrict o1, float *restrict o2,
                         float *restrict o3, const float *restrict a0,
                         const float *restrict a1, const float *restrict a2,
                         const float *restrict a3, const float *restrict a4,
                         const float *restrict a5, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v[4];
        output_1d(v, a0[i], a1[i], a2[i], a3[i], a4[i], a5[i]);
        o0[i] = v[0];
        o1[i] = v[1];
        o2[i] = v[2];
        o3[i] = v[3];
    }
}

WT_VECTOR_CLONES
static void gradient_lines(float *restrict o0, float *restrict o1, float *restrict o2,
                           float *restrict o3, float *restrict o4, float *restrict o5,
                           const float *restrict a0, const float *restrict a1,
                           const float *restrict a2, const float *restrict a3, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v[6];
        gradient_1d(v, a0[i], a1[i], a2[i], a3[i]);
        o0[i] = v[0];
        o1[i] = v[1];
        o2[i] = v[2];
        o3[i] = v[3];
        o4[i] = v[4];
        o5[i] = v[5];
    }
}

WT_VECTOR_CLONES
static void filter_lines(float *restrict o0, float *restrict o1, float *restrict o2,
                         float *restrict o3, float *restrict o4, float *restrict o5,
                         const float *restrict a0, const float *restrict a1,
                         const float *restrict a2, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v[6];
        filter_1d(v, a0[i], a1[i], a2[i]);
        o0[i] = v[0];
        o1[i] = v[1];
        o2[i] = v[2];
        o3[i] = v[3];
        o4[i] = v[4];
        o5[i] = v[5];
    }
}

WT_VECTOR_CLONES
static void weight_lines(float *restrict o0, float *restrict o1, float *restrict o2,
                         const float *restrict a0, const float *restrict a1,
                         const float *restrict a2, const float *restrict a3,
                         const float *restrict a4, const float *restrict a5, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v[3];
        weight_1d(v, a0[i], a1[i], a2[i], a3[i], a4[i], a5[i]);
        o0[i] = v[0];
        o1[i] = v[1];
        o2[i] = v[2];
    }
}

/* w[m * ld + r * tw + i] = t[r * width + 4 i + m], m < 6: the windows of every tile of a
 * plane, from the rows t (one per tile row, width floats apart) of one 1-D transform. */
WT_VECTOR_CLONES
static void split_rows(float *restrict w, int64_t ld, const float *restrict t, int64_t width,
                       int64_t th, int64_t tw) {
    for (int64_t r = 0; r < th; r++) {
        const float *row = t + r * width;
        float *dst = w + r * tw;
        for (int64_t i = 0; i < tw; i++) {
            const float *a = row + TILE * i;
            dst[i] = a[0];
            dst[ld + i] = a[1];
            dst[2 * ld + i] = a[2];
            dst[3 * ld + i] = a[3];
            dst[4 * ld + i] = a[4];
            dst[5 * ld + i] = a[5];
        }
    }
}

/* v (36, C, ldv): B^T d B for every input tile of `images` images, column = image * tiles +
 * tile row * tiles_w + tile column. Per plane: B^T down the rows of each tile row (six rows
 * of t per tile row), then, for each of the six, the windows of all the plane's tiles split
 * into six lines and B^T across them: a few long loops per plane rather than a dozen short
 * ones per tile row. */
static void transform_inputs(float *v, int64_t ldv, float *scratch, const float *x,
                             int64_t images, const plan *p, int nthreads) {
    const int64_t width = TILE * p->tiles_w + 2, ldp = p->c * ldv;
    const int64_t th = p->tiles / p->tiles_w, tw = p->tiles_w, tiles = p->tiles;
    const int64_t lo = p->pad_left, hi = p->pad_left + p->w < width ? p->pad_left + p->w : width;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t ic = 0; ic < images * p->c; ic++) {
        const int64_t img = ic / p->c, c = ic % p->c;
        const float *xc = x + ic * p->h * p->w;
        float *t = scratch + wt_thread_id() * row_scratch(p), *zero = t + ALPHA * th * width;
        float *w = zero + p->w;
        memset(zero, 0, (size_t)p->w * sizeof(float));
        for (int64_t row = 0; row < ALPHA * th; row++) {
            float *line = t + row * width;
            for (int64_t j = 0; j < lo; j++) {
                line[j] = 0.0f;
            }
            for (int64_t j = hi; j < width; j++) {
                line[j] = 0.0f;
            }
        }
        for (int64_t r = 0; r < th; r++) {
            const float *d[6];
            for (int i = 0; i < ALPHA; i++) {
                const int64_t row = TILE * r - p->pad_top + i;
                d[i] = row >= 0 && row < p->h ? xc + row * p->w : zero;
            }
            float *o = t + r * width + lo;
            const int64_t ld = th * width;
            input_lines(o, o + ld, o + 2 * ld, o + 3 * ld, o + 4 * ld, o + 5 * ld, d[0], d[1],
                        d[2], d[3], d[4], d[5], hi - lo);
        }
        for (int k = 0; k < ALPHA; k++) {
            split_rows(w, tiles, t + k * th * width, width, th, tw);
            float *o = v + c * ldv + img * tiles + ALPHA * k * ldp;
            input_lines(o, o + ldp, o + 2 * ldp, o + 3 * ldp, o + 4 * ldp, o + 5 * ldp, w,
                        w + tiles, w + 2 * tiles, w + 3 * tiles, w + 4 * tiles, w + 5 * tiles,
                        tiles);
        }
    }
}

/* One tile row of outputs: y = A^T m A for every tile, m's position j of tile i at
 * m[j * ldm + i], into four output rows y[r * width + 4i + c]: A^T down the columns of the
 * tiles into s (24 rows of tiles), A^T across into q (16 rows), then interleaved. */
static void output_rows(float *y, int64_t width, float *s, const float *m, int64_t ldm,
                        int64_t tiles) {
    float *q = s + 24 * tiles;
    for (int j = 0; j < ALPHA; j++) {
        const float *a = m + j * ldm;
        output_lines(s + j * tiles, s + (6 + j) * tiles, s + (12 + j) * tiles,
                     s + (18 + j) * tiles, a, a + 6 * ldm, a + 12 * ldm, a + 18 * ldm,
                     a + 24 * ldm, a + 30 * ldm, tiles);
    }
    for (int r = 0; r < TILE; r++) {
        const float *a = s + 6 * r * tiles;
        float *o = q + TILE * r * tiles;
        output_lines(o, o + tiles, o + 2 * tiles, o + 3 * tiles, a, a + tiles, a + 2 * tiles,
                     a + 3 * tiles, a + 4 * tiles, a + 5 * tiles, tiles);
        float *dst = y + r * width;
        for (int64_t i = 0; i < tiles; i++) {
            for (int c = 0; c < TILE; c++) {
                dst[TILE * i + c] = o[c * tiles + i];
            }
        }
    }
}

/* out (images, OC, OH, OW) = the inverse transform of m (36, OC, ldm) */
static void transform_outputs(float *out, float *scratch, const float *m, int64_t ldm,
                              int64_t images, const plan *p, int nthreads) {
    const int64_t ldp = p->oc * ldm, width = TILE * p->tiles_w;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t io = 0; io < images * p->oc; io++) {
        const int64_t img = io / p->oc, o = io % p->oc;
        float *yc = out + io * p->oh * p->ow;
        float *y = scratch + wt_thread_id() * row_scratch(p);
        for (int64_t r = 0; r < p->tiles / p->tiles_w; r++) {
            output_rows(y, width, y + TILE * width, m + o * ldm + img * p->tiles +
                        r * p->tiles_w, ldp, p->tiles_w);
            for (int i = 0; i < TILE && TILE * r + i < p->oh; i++) {
                memcpy(yc + (TILE * r + i) * p->ow, y + i * width, (size_t)p->ow * sizeof(float));
            }
        }
    }
}

/* e (36, OC, lde): A g A^T for every 4x4 output-gradient tile, zero beyond OH, OW. Laid
 * out like the inputs: the plane's rows (two spare columns, so that split_rows may read
 * six entries per tile, of which A's across pass uses four), A down the rows of each tile
 * row, then the tiles' lines split and A across them. */
static void transform_gradients(float *e, int64_t lde, float *scratch, const float *dy,
                                int64_t images, const plan *p, int nthreads) {
    const int64_t th = p->tiles / p->tiles_w, tw = p->tiles_w, tiles = p->tiles;
    const int64_t width = TILE * tw + 2, ldp = p->oc * lde, ld = th * width;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t io = 0; io < images * p->oc; io++) {
        const int64_t img = io / p->oc, o = io % p->oc;
        const float *dyc = dy + io * p->oh * p->ow;
        float *g = scratch + wt_thread_id() * row_scratch(p), *t = g + TILE * ld;
        float *w = t + ALPHA * ld;
        memset(g, 0, (size_t)(TILE * ld) * sizeof(float));
        for (int64_t oh = 0; oh < p->oh; oh++) {
            memcpy(g + oh * width, dyc + oh * p->ow, (size_t)p->ow * sizeof(float));
        }
        for (int64_t r = 0; r < th; r++) {
            const float *a = g + TILE * r * width;
            float *out = t + r * width;
            gradient_lines(out, out + ld, out + 2 * ld, out + 3 * ld, out + 4 * ld, out + 5 * ld,
                           a, a + width, a + 2 * width, a + 3 * width, width);
        }
        for (int k = 0; k < ALPHA; k++) {
            split_rows(w, tiles, t + k * ld, width, th, tw);
            float *out = e + o * lde + img * tiles + ALPHA * k * ldp;
            gradient_lines(out, out + ldp, out + 2 * ldp, out + 3 * ldp, out + 4 * ldp,
                           out + 5 * ldp, w, w + tiles, w + 2 * tiles, w + 3 * tiles, tiles);
        }
    }
}

/* u (36, out_c, in_c): G g G^T for every filter. w is (OC,C,3,3); the data gradient
 * correlates with filter (o, i) = w[i][o] rotated by 180 degrees. For each o the filters
 * are first laid out as 9 rows of in_c taps so that both 1-D passes vectorise. */
static void transform_filters(float *u, float *scratch, int64_t stride, const float *w,
                              int64_t out_c, int64_t in_c, int rotate, int nthreads) {
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t o = 0; o < out_c; o++) {
        float *g = scratch + wt_thread_id() * stride, *t = g + 9 * in_c;
        for (int64_t i = 0; i < in_c; i++) {
            const float *src = rotate ? w + (i * out_c + o) * 9 : w + (o * in_c + i) * 9;
            for (int k = 0; k < 9; k++) {
                g[k * in_c + i] = rotate ? src[8 - k] : src[k];
            }
        }
        for (int j = 0; j < 3; j++) {
            float *r = t + 6 * j * in_c;
            filter_lines(r, r + in_c, r + 2 * in_c, r + 3 * in_c, r + 4 * in_c, r + 5 * in_c,
                         g + j * in_c, g + (3 + j) * in_c, g + (6 + j) * in_c, in_c);
        }
        const int64_t ldp = out_c * in_c;
        for (int a = 0; a < ALPHA; a++) {
            float *r = u + 6 * a * ldp + o * in_c;
            filter_lines(r, r + ldp, r + 2 * ldp, r + 3 * ldp, r + 4 * ldp, r + 5 * ldp,
                         t + a * in_c, t + (6 + a) * in_c, t + (12 + a) * in_c, in_c);
        }
    }
}

/* dw (OC,C,3,3) += G^T m G for the 6x6 gradients in acc (36, OC*C), BLOCK filters at a
 * time: both 1-D passes along rows of filters, then the 9 taps scattered into dw. */
static void add_weight_gradients(float *dw, float *scratch, int64_t stride, const float *acc,
                                 int64_t filters, int nthreads) {
    enum { BLOCK = 64 };
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int64_t f0 = 0; f0 < filters; f0 += BLOCK) {
        const int64_t n = filters - f0 < BLOCK ? filters - f0 : BLOCK;
        float *t = scratch + wt_thread_id() * stride, *r = t + 18 * BLOCK;
        for (int j = 0; j < ALPHA; j++) {
            const float *a = acc + j * filters + f0;
            weight_lines(t + j * BLOCK, t + (6 + j) * BLOCK, t + (12 + j) * BLOCK, a,
                         a + 6 * filters, a + 12 * filters, a + 18 * filters, a + 24 * filters,
                         a + 30 * filters, n);
        }
        for (int i = 0; i < 3; i++) {
            const float *a = t + 6 * i * BLOCK;
            weight_lines(r + 3 * i * BLOCK, r + (3 * i + 1) * BLOCK, r + (3 * i + 2) * BLOCK, a,
                         a + BLOCK, a + 2 * BLOCK, a + 3 * BLOCK, a + 4 * BLOCK, a + 5 * BLOCK, n);
        }
        for (int64_t f = 0; f < n; f++) {
            for (int k = 0; k < 9; k++) {
                dw[(f0 + f) * 9 + k] += r[k * BLOCK + f];
            }
        }
    }
}

/* out = the correlation of in with the filters already transformed into ws */
static void correlate(float *out, float *ws, const float *in, const plan *p, int nthreads) {
    const float *u = ws;
    float *v = ws + POSITIONS * p->c * p->oc;
    float *m = v + POSITIONS * p->c * p->images * p->tiles;
    float *scratch = scratch_of(ws, p);
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
        transform_outputs(out + n0 * p->oc * p->oh * p->ow, scratch, m, cols, images, p,
                          nthreads);
    }
}

void winograd_forward(float *y, float *workspace, const float *x, const float *w,
                      const conv2d_shape *s, int nthreads) {
    plan p = forward_plan(s);
    transform_filters(workspace, scratch_of(workspace, &p), row_scratch(&p), w, s->oc, s->c, 0,
                      nthreads);
    correlate(y, workspace, x, &p, nthreads);
}

void winograd_backward_data(float *dx, float *workspace, const float *dy, const float *w,
                            const conv2d_shape *s, int nthreads) {
    plan p = backward_data_plan(s);
    transform_filters(workspace, scratch_of(workspace, &p), row_scratch(&p), w, s->c, s->oc, 1,
                      nthreads);
    correlate(dx, workspace, dy, &p, nthreads);
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
    float *scratch = scratch_of(workspace, &p);
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
    add_weight_gradients(dw, scratch, row_scratch(&p), acc, p.oc * p.c, nthreads);
}
