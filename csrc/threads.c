#include "threads.h"

#include "blas.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void wt_set_num_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
    WT_BLAS(openblas_set_num_threads)(1);
}

int wt_get_num_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
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
