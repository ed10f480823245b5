/* Thread control for the kernels (OpenMP loops) and the BLAS (its own pool). Both pools
 * get the same count; sgemm is never called from inside an OpenMP region, so the two never
 * run at once and the cores are not oversubscribed. */
#ifndef WT_THREADS_H
#define WT_THREADS_H

void wt_set_num_threads(int n);
int wt_get_num_threads(void);
const char *wt_blas_config(void);
const char *wt_blas_corename(void);

#endif
