/* The one place that names the BLAS. The scipy-openblas32 wheel prefixes every symbol
 * with "scipy_" and its pkg-config passes -DBLAS_SYMBOL_PREFIX=scipy_; a system OpenBLAS
 * has no prefix. WT_BLAS(cblas_sgemm) expands to the right name for either. */
#ifndef WT_BLAS_H
#define WT_BLAS_H

#include <cblas.h>

#define WT_PASTE_(a, b) a##b
#define WT_PASTE(a, b) WT_PASTE_(a, b)
#ifdef BLAS_SYMBOL_PREFIX
#define WT_BLAS(name) WT_PASTE(BLAS_SYMBOL_PREFIX, name)
#else
#define WT_BLAS(name) name
#endif

#endif
