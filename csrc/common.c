#include "common.h"

const char *wt_status_string(wt_status status) {
    switch (status) {
    case WT_OK:
        return "ok";
    case WT_ERR_SHAPE:
        return "inconsistent sizes";
    case WT_ERR_TOO_LARGE:
        return "a size is too large for 32-bit BLAS sizes or indices (more than 2^31-1)";
    case WT_ERR_VALUE:
        return "a value is out of range";
    }
    return "unknown status";
}
