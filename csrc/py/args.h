/* The one way the boundary takes arguments apart: every csrc/py file checks dtype, rank,
 * every shape and contiguity through these helpers, so the "expected ..., got ..." messages
 * read the same for every function. Only csrc/py/ and module.c include Python.h; the
 * kernels they call live in the plain C files of csrc/. */
#ifndef WT_PY_ARGS_H
#define WT_PY_ARGS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
/* NumPy's C API is a table of function pointers that import_array fills in. Every boundary
 * file must share one table, so it gets a name here, and only module.c (which defines
 * WT_IMPORT_ARRAY and calls import_array in its exec slot) defines it. */
#define PY_ARRAY_UNIQUE_SYMBOL wt_numpy_api
#ifndef WT_IMPORT_ARRAY
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "common.h"

/* status = call, a kernel call, with the GIL released: the kernels touch no Python object,
 * and other Python threads (a DataLoader's workers) run meanwhile. */
#define RUN_KERNEL(status, call) \
    do {                         \
        Py_BEGIN_ALLOW_THREADS;  \
        status = (call);         \
        Py_END_ALLOW_THREADS;    \
    } while (0)

/* RUN_KERNEL, then result = value (an expression giving the entry point's new reference,
 * evaluated only on success) when the kernel returned WT_OK, else NULL with check_status's
 * ValueError. The end of every entry point whose statuses need no message of their own. */
#define RUN_KERNEL_RETURN(result, fn, call, value)                   \
    do {                                                             \
        wt_status status_;                                           \
        RUN_KERNEL(status_, call);                                   \
        result = check_status(status_, fn) < 0 ? NULL : (value);     \
    } while (0)

/* Py_XDECREF of every array listed, NULL ones included: an entry point's cleanup. */
#define RELEASE(...)                                                                       \
    release_arrays((PyArrayObject *const[]){__VA_ARGS__},                                  \
                   sizeof((PyArrayObject *const[]){__VA_ARGS__}) / sizeof(PyArrayObject *))
void release_arrays(PyArrayObject *const *arrays, size_t count);

/* Largest value accepted for a stride, padding, dilation or kernel size: far above any real
 * network, low enough that no size product below can overflow int64. */
#define MAX_HYPER 65536

/* A new reference to obj as a C-contiguous, aligned float32 array of rank ndim, or NULL with
 * TypeError (wrong dtype or type) or ValueError (wrong rank) set. Arrays of another dtype are
 * refused, not cast, so float64 data never loses precision silently. */
PyArrayObject *input_f32(PyObject *obj, const char *fn, const char *name, int ndim,
                         const char *layout);

/* input_f32 for elementwise functions: any rank. */
static inline PyArrayObject *input_f32_any(PyObject *obj, const char *fn, const char *name) {
    return input_f32(obj, fn, name, -1, "");
}

/* *out = input_f32(obj, ...), or NULL when obj is None or NULL (an argument not passed):
 * 0, or -1 with the exception set. */
int optional_f32(PyArrayObject **out, PyObject *obj, const char *fn, const char *name, int ndim,
                 const char *layout);

/* A new reference to obj if it is an array the kernel may update in place: float32,
 * C-contiguous, aligned and writeable. */
PyArrayObject *inplace_f32(PyObject *obj, const char *fn, const char *name);

/* *out = inplace_f32(obj, ...), or NULL when obj is None or NULL: 0, or -1. */
int optional_inplace_f32(PyArrayObject **out, PyObject *obj, const char *fn, const char *name);

/* A new reference to obj as a C-contiguous int64 array of rank ndim; any integer dtype is
 * accepted and widened. */
PyArrayObject *input_i64(PyObject *obj, const char *fn, const char *name, int ndim);

/* 0 if a has rank ndim, else -1 with a ValueError that shows the layout wanted, such as
 * "(N, C, H, W)", and a's shape. */
int expect_ndim(PyArrayObject *a, const char *fn, const char *name, int ndim,
                const char *layout);

/* 0 if a has exactly the dimensions in dims (ndim of them), else -1 with ValueError set. */
int expect_shape(PyArrayObject *a, const char *fn, const char *name, int ndim,
                 const npy_intp *dims);

/* An int or an object with __index__, but not a bool. */
int is_integer(PyObject *obj);

/* The value of an integer object, saturated to MAX_HYPER + 1 when it does not fit. */
long long integer_value(PyObject *obj);

/* Parses an int or a sequence of ints into out[count]; a single int is repeated. Values
 * must lie in [lo, MAX_HYPER]. */
int parse_ints(PyObject *obj, const char *fn, const char *name, int64_t *out, int count,
               int64_t lo);

/* A shape tuple of 4 non-negative ints, e.g. the input shape a backward must produce. */
int parse_shape4(PyObject *obj, const char *fn, const char *name, npy_intp dims[4]);

/* 0 if the product of dims fits in a NumPy array, else -1 with ValueError. */
int check_size(const npy_intp *dims, int ndim, const char *fn, const char *what);

/* 0 if x's C, H and W are all at least 1 (N may be 0), else -1 with ValueError. */
int expect_nonempty_chw(const npy_intp *xd, const char *fn, const char *name);

/* 0 if v lies in [0, 1], else -1 with "fn: name: expected <what> in [0, 1], got v". */
int expect_unit_interval(const char *fn, const char *name, const char *what, double v);

/* A ValueError from a printf format: PyErr_Format knows no %g. */
void value_error(const char *format, ...);

/* 0 for WT_OK, else -1 with a ValueError naming fn and the status. */
int check_status(wt_status status, const char *fn);

/* New C-contiguous float32 arrays, uninitialised or zero-filled (for gradients the kernels
 * add into); NULL with MemoryError. */
static inline PyArrayObject *new_f32(int ndim, const npy_intp *dims) {
    return (PyArrayObject *)PyArray_SimpleNew(ndim, dims, NPY_FLOAT32);
}
static inline PyArrayObject *zeros_f32(int ndim, const npy_intp *dims) {
    return (PyArrayObject *)PyArray_ZEROS(ndim, dims, NPY_FLOAT32, 0);
}

/* Scratch memory for a kernel; NULL with MemoryError set on failure. A zero size gives a
 * valid one-float block so the caller need not special-case it. Free with PyMem_RawFree. */
float *alloc_workspace(size_t floats);

/* The data of a float32 array, NULL for an absent optional one. */
static inline float *f32(PyArrayObject *a) {
    return a ? (float *)PyArray_DATA(a) : NULL;
}

#endif
