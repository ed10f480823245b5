/* Shared definitions for the weitiao C kernels: status codes and index types.
 * Kernels never allocate and never call Python; callers validate shapes and pass
 * workspace. A kernel returns WT_OK or a status that module.c turns into an exception. */
#ifndef WT_COMMON_H
#define WT_COMMON_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    WT_OK = 0,
    WT_ERR_SHAPE = 1,     /* sizes inconsistent or an output dimension would be < 1 */
    WT_ERR_TOO_LARGE = 2, /* a dimension exceeds what the BLAS (32-bit ints) accepts */
    WT_ERR_VALUE = 3      /* a hyperparameter or label is out of range */
} wt_status;

const char *wt_status_string(wt_status status);

#endif
