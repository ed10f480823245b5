/* Thread control. The kernels use one pool, OpenMP's: convolutions spread images (or
 * Winograd's matrix products) over the threads and call a single-threaded sgemm, so the
 * BLAS's own pool stays at 1 thread and two pools never fight over the cores (on a 2-core
 * machine that fight cost 30x under load). */
#ifndef WT_THREADS_H
#define WT_THREADS_H

void wt_set_num_threads(int n);
int wt_get_num_threads(void);
int wt_thread_id(void);
const char *wt_blas_config(void);
const char *wt_blas_corename(void);

#endif
