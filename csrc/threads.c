#include "threads.h"

#include "blas.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* One count for the whole process: omp_set_num_threads would only set it for the calling
 * OS thread, and Python users train from worker threads too. */
static volatile int g_threads = 1;

void wt_set_num_threads(int n) {
    g_threads = n > 0 ? n : 1;
    WT_BLAS(openblas_set_num_threads)(1);
}

int wt_get_num_threads(void) {
#ifdef _OPENMP
    return g_threads;
#else
    return 1;
#endif
}

int wt_thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

const char *wt_blas_config(void) {
    return WT_BLAS(openblas_get_config)();
}

const char *wt_blas_corename(void) {
    return WT_BLAS(openblas_get_corename)();
}
