/* Shared definitions for the weitiao C kernels: status codes and index types.
 * Kernels never allocate and never call Python; callers validate shapes and pass
 * workspace. A kernel returns WT_OK or a status that the boundary (csrc/py/) turns into an
 * exception. */
#ifndef WT_COMMON_H
#define WT_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    WT_OK = 0,
    WT_ERR_SHAPE = 1,     /* sizes inconsistent or an output dimension would be < 1 */
    WT_ERR_TOO_LARGE = 2, /* a size exceeds 32-bit ints (the BLAS's, max-pool's indices) */
    WT_ERR_VALUE = 3      /* a hyperparameter or label is out of range */
} wt_status;

/* Below this many elements a loop is not worth waking the OpenMP team for: a parallel
 * region costs microseconds when the cores are idle and a scheduler time slice when another
 * process holds one of them. */
#define WT_PARALLEL_MIN (1 << 18)

/* Hot loops compiled for AVX-512, AVX2 + FMA and the baseline, the best chosen when the
 * library loads (GCC function multi-versioning): the build machine's CPU is not the user's,
 * so there is no -march=native. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(WT_NO_CLONES)
#define WT_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WT_VECTOR_CLONES
#endif

const char *wt_status_string(wt_status status);

#endif
