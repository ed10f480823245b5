#include "dropout.h"
#include "threads.h"

/* SplitMix64 finaliser (Steele, Lea and Flood, "Fast splittable pseudorandom number
 * generators", 2014). */
static uint64_t splitmix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

wt_status dropout_forward(float *y, uint8_t *mask, const float *x, int64_t n, float p,
                          uint64_t seed) {
    if (!(p >= 0.0f && p <= 1.0f)) {
        return WT_ERR_VALUE;
    }
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    const uint64_t key = splitmix64(seed);
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n > WT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        /* 24 random bits give a uniform float in [0, 1) exactly representable. */
        const float u = (float)(splitmix64(key ^ (uint64_t)i) >> 40) * (1.0f / 16777216.0f);
        const uint8_t keep = u >= p;
        mask[i] = keep;
        y[i] = keep ? x[i] * scale : 0.0f;
    }
    return WT_OK;
}

wt_status dropout_backward(float *dx, const float *dy, const uint8_t *mask, int64_t n,
                           float p) {
    if (!(p >= 0.0f && p <= 1.0f)) {
        return WT_ERR_VALUE;
    }
    if (p == 1.0f) {
        return WT_OK;
    }
    const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) num_threads(wt_get_num_threads()) if (n > WT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
        const float g = dy[i] * scale;
        dx[i] += mask[i] ? g : 0.0f;
    }
    return WT_OK;
}
