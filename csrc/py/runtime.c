/* Process-wide settings and information: threads, the linked BLAS and NumPy's allocator
 * (the block cache). */
#include "args.h"
#include "methods.h"

#include <limits.h>

#include "block_cache.h"
#include "cpu.h"
#include "threads.h"

/* *out = arg, an int in [lo, hi]: 0, or -1 with a TypeError (not an int) or a ValueError
 * "fn: expected <range>, got arg". */
static int int_in_range(PyObject *arg, const char *fn, const char *range, long long lo,
                        long long hi, long long *out) {
    if (!is_integer(arg)) {
        PyErr_Format(PyExc_TypeError, "%s: expected an int, got %s", fn, Py_TYPE(arg)->tp_name);
        return -1;
    }
    PyObject *index = PyNumber_Index(arg);
    *out = index ? PyLong_AsLongLong(index) : -1;
    Py_XDECREF(index);
    if (PyErr_Occurred() || *out < lo || *out > hi) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "%s: expected %s, got %R", fn, range, arg);
        return -1;
    }
    return 0;
}

static PyObject *py_set_num_threads(PyObject *Py_UNUSED(self), PyObject *arg) {
    long long n;
    if (int_in_range(arg, "set_num_threads", "1 to 1024 threads", 1, 1024, &n) < 0) {
        return NULL;
    }
    wt_set_num_threads((int)n);
    Py_RETURN_NONE;
}

static PyObject *py_get_num_threads(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyLong_FromLong(wt_get_num_threads());
}

static PyObject *py_vector_isa(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyUnicode_FromString(wt_vector_isa());
}

static PyObject *py_blas_info(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return Py_BuildValue("{ssss}", "config", wt_blas_config(), "corename", wt_blas_corename());
}

/* ---------------------------------------------------------------- array cache */

static void *cache_malloc(void *Py_UNUSED(ctx), size_t size) {
    return wt_cache_malloc(size);
}

static void *cache_calloc(void *Py_UNUSED(ctx), size_t nelem, size_t elsize) {
    return wt_cache_calloc(nelem, elsize);
}

static void *cache_realloc(void *Py_UNUSED(ctx), void *ptr, size_t new_size) {
    return wt_cache_realloc(ptr, new_size);
}

static void cache_free(void *Py_UNUSED(ctx), void *ptr, size_t Py_UNUSED(size)) {
    wt_cache_free(ptr);
}

static PyDataMem_Handler cache_handler = {
    "weitiao_block_cache",
    1,
    {NULL, cache_malloc, cache_calloc, cache_realloc, cache_free},
};

static PyObject *py_array_cache_handler(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return PyCapsule_New(&cache_handler, "mem_handler", NULL);
}

static PyObject *py_set_array_handler(PyObject *Py_UNUSED(self), PyObject *arg) {
    if (!PyCapsule_IsValid(arg, "mem_handler")) {
        PyErr_SetString(PyExc_TypeError,
                        "set_array_handler: expected a NumPy mem_handler capsule");
        return NULL;
    }
    return PyDataMem_SetHandler(arg);
}

static PyObject *py_array_cache_info(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    return Py_BuildValue("{snsn}", "held", (Py_ssize_t)wt_cache_held(), "limit",
                         (Py_ssize_t)wt_cache_limit());
}

static PyObject *py_array_cache_clear(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused)) {
    wt_cache_clear();
    Py_RETURN_NONE;
}

static PyObject *py_set_array_cache_limit(PyObject *Py_UNUSED(self), PyObject *arg) {
    long long bytes;
    if (int_in_range(arg, "set_array_cache_limit", "a number of bytes >= 0", 0, LLONG_MAX,
                     &bytes) < 0) {
        return NULL;
    }
    wt_cache_set_limit((size_t)bytes);
    Py_RETURN_NONE;
}

PyMethodDef wt_runtime_methods[] = {
    {"array_cache_handler", py_array_cache_handler, METH_NOARGS,
     "array_cache_handler() -> the NumPy memory-handler capsule of the block cache."},
    {"set_array_handler", py_set_array_handler, METH_O,
     "set_array_handler(capsule) -> the previous one: NumPy's allocator for this context."},
    {"array_cache_info", py_array_cache_info, METH_NOARGS,
     "array_cache_info() -> {'held': bytes in freed blocks, 'limit': bytes}."},
    {"array_cache_clear", py_array_cache_clear, METH_NOARGS,
     "array_cache_clear(): return every cached block to the system."},
    {"set_array_cache_limit", py_set_array_cache_limit, METH_O,
     "set_array_cache_limit(bytes): most bytes kept in freed blocks; 0 disables caching."},
    {"set_num_threads", py_set_num_threads, METH_O,
     "set_num_threads(n): threads for the kernels and the BLAS."},
    {"get_num_threads", py_get_num_threads, METH_NOARGS, "get_num_threads() -> int."},
    {"vector_isa", py_vector_isa, METH_NOARGS,
     "vector_isa() -> the instruction set of the kernel versions this CPU runs."},
    {"blas_info", py_blas_info, METH_NOARGS,
     "blas_info() -> {'config': ..., 'corename': ...} of the linked OpenBLAS."},
    {NULL, NULL, 0, NULL},
};
