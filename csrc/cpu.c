/* The vector code path the loader picked for the WT_VECTOR_CLONES loops. */
#include "cpu.h"

#include "common.h"

/* GCC's target_clones resolver takes the first clone, in the order x86-64-v4, x86-64-v3,
 * default, whose level __builtin_cpu_supports accepts; asking the same question here names
 * the clone without reaching into the resolver. */
const char *wt_vector_isa(void) {
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(WT_NO_CLONES)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) {
        return "x86-64-v4 (AVX-512)";
    }
    if (__builtin_cpu_supports("x86-64-v3")) {
        return "x86-64-v3 (AVX2, FMA)";
    }
    return "x86-64 (SSE2)";
#else
    return "default (built without vector clones)";
#endif
}
